//! A network stream's address, and keeping its secrets out of sight: the password in
//! `rtsp://user:pass@host/…` (and secret query values such as `?password=…`) never shows in
//! what is displayed, logged, stored or quoted from ffmpeg.

/// The protocols `--source` reads through ffmpeg.
pub const STREAM_SCHEMES: [&str; 9] = [
    "rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "tcp", "udp", "srt",
];

/// Query parameters whose values are secrets (what IP cameras and SRT use).
const SECRET_QUERY_KEYS: [&str; 7] = [
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "token",
    "secret",
];

/// What a secret shows as.
const MASK: &str = "***";

/// A stream URL. `Display` and `Debug` mask its secrets; [`StreamUrl::as_str`] is for ffmpeg
/// alone.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamUrl {
    url: String,
}

impl StreamUrl {
    /// `text` as a stream address when its scheme is one of [`STREAM_SCHEMES`].
    pub fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.trim().split_once("://")?;
        let known = STREAM_SCHEMES
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scheme));
        (known && !rest.is_empty()).then(|| Self {
            url: text.trim().to_string(),
        })
    }

    /// The full address, secrets included: only for the ffmpeg command line.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    pub fn scheme(&self) -> String {
        self.url
            .split_once("://")
            .map_or(String::new(), |(scheme, _)| scheme.to_ascii_lowercase())
    }

    /// `user:pass` between `://` and the host, when present.
    fn userinfo(&self) -> Option<&str> {
        let (_, rest) = self.url.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        authority.rsplit_once('@').map(|(userinfo, _)| userinfo)
    }

    /// The user name in the address, when it has one.
    pub fn user(&self) -> Option<&str> {
        self.userinfo()
            .map(|userinfo| userinfo.split_once(':').map_or(userinfo, |(user, _)| user))
            .filter(|user| !user.is_empty())
    }

    fn password(&self) -> Option<&str> {
        self.userinfo()?
            .split_once(':')
            .map(|(_, password)| password)
            .filter(|password| !password.is_empty())
    }

    fn secret_query_values(&self) -> impl Iterator<Item = &str> {
        let query = self.url.split_once('?').map_or("", |(_, query)| query);
        query
            .split('#')
            .next()
            .unwrap_or("")
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(key, value)| {
                !value.is_empty()
                    && SECRET_QUERY_KEYS
                        .iter()
                        .any(|secret| secret.eq_ignore_ascii_case(key))
            })
            .map(|(_, value)| value)
    }

    /// Every secret in the address, as written and percent-decoded, longest first (so a
    /// secret containing another is masked whole).
    fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self
            .password()
            .into_iter()
            .chain(self.secret_query_values())
            .flat_map(|secret| [secret.to_string(), percent_decode(secret)])
            .collect();
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        secrets
    }

    /// `text` (an ffmpeg message, say) with this address's secrets masked.
    pub fn redact(&self, text: &str) -> String {
        self.secrets()
            .iter()
            .fold(text.to_string(), |text, secret| text.replace(secret, MASK))
    }

    /// The address to remember (settings, recent list): the password left out, secret
    /// query values emptied. Reopening it asks for them again.
    pub fn without_secrets(&self) -> String {
        let mut url = self.url.clone();
        if let Some(password) = self.password() {
            url = url.replacen(&format!(":{password}@"), "@", 1);
        }
        for value in self.secret_query_values() {
            url = url.replace(&format!("={value}"), "=");
        }
        url
    }

    /// Whether the address names a user but carries no password (one remembered without
    /// it): it must be given before the stream can open.
    pub fn needs_password(&self) -> bool {
        self.user().is_some() && self.password().is_none()
    }

    /// This address with `password` for its user.
    pub fn with_password(&self, password: &str) -> Self {
        let Some(user) = self.user() else {
            return self.clone();
        };
        let userinfo = self.userinfo().unwrap_or(user);
        Self {
            url: self
                .url
                .replacen(&format!("{userinfo}@"), &format!("{user}:{password}@"), 1),
        }
    }
}

impl std::fmt::Display for StreamUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redact(&self.url))
    }
}

impl std::fmt::Debug for StreamUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamUrl({self})")
    }
}

/// `%xx` escapes decoded (invalid ones kept as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stream_schemes_are_streams() {
        for url in [
            "rtsp://10.0.0.2:554/stream1",
            "RTSPS://cam/x",
            "rtmp://host/live/key",
            "http://phone:8080/video",
            "https://host/live.m3u8",
            "tcp://127.0.0.1:5000",
            "udp://@:1234",
            "srt://host:9000",
        ] {
            assert!(StreamUrl::parse(url).is_some(), "{url}");
        }
        for text in [
            "clip.mp4",
            "file:///tmp/a.mp4",
            "camera:0",
            "ftp://host/a",
            "rtsp://",
        ] {
            assert!(StreamUrl::parse(text).is_none(), "{text}");
        }
    }

    #[test]
    fn passwords_never_show() {
        let url = StreamUrl::parse("rtsp://admin:p%40ss:w0rd@10.0.0.2:554/live?channel=1").unwrap();
        assert_eq!(
            url.to_string(),
            "rtsp://admin:***@10.0.0.2:554/live?channel=1"
        );
        assert_eq!(
            format!("{url:?}"),
            "StreamUrl(rtsp://admin:***@10.0.0.2:554/live?channel=1)"
        );
        assert_eq!(url.user(), Some("admin"));
        // ffmpeg quotes the address, and sometimes the decoded password.
        assert_eq!(
            url.redact("rtsp://admin:p%40ss:w0rd@10.0.0.2:554/live: 401 (p@ss:w0rd)"),
            "rtsp://admin:***@10.0.0.2:554/live: 401 (***)"
        );
        assert_eq!(
            url.without_secrets(),
            "rtsp://admin@10.0.0.2:554/live?channel=1"
        );
        let remembered = StreamUrl::parse(&url.without_secrets()).unwrap();
        assert!(remembered.needs_password());
        assert!(!url.needs_password());
        assert_eq!(remembered.with_password("p%40ss:w0rd"), url);
    }

    #[test]
    fn secret_query_values_never_show() {
        let url = StreamUrl::parse("srt://host:9000?mode=caller&passphrase=longsecret1&latency=20")
            .unwrap();
        assert_eq!(
            url.to_string(),
            "srt://host:9000?mode=caller&passphrase=***&latency=20"
        );
        assert_eq!(
            url.without_secrets(),
            "srt://host:9000?mode=caller&passphrase=&latency=20"
        );
        let plain = StreamUrl::parse("http://phone:8080/video").unwrap();
        assert_eq!(plain.to_string(), "http://phone:8080/video");
        assert!(!plain.needs_password());
        // ffmpeg's "any address" for UDP is not a user.
        assert!(!StreamUrl::parse("udp://@:1234").unwrap().needs_password());
    }
}
