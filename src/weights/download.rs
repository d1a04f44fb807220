//! Fetching Ultralytics' official checkpoints, as `YOLO('yolo11n.pt')` does, for users who
//! have no weights yet. The file lands under a temporary name and is renamed into place
//! only once it has arrived whole and loads as a YOLO11 model, so an interrupted or broken
//! download never leaves a half file where the app looks for weights.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::Weights;

/// Where Ultralytics publishes `yolo11n.pt` (the address its own downloader uses).
pub const YOLO11N_URL: &str =
    "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11n.pt";

/// How long connecting, and waiting for the server to answer, may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum DownloadError {
    #[error("downloading {url} failed: {reason}")]
    Http { url: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{url} sent {got} bytes but announced {expected}: the download was cut short")]
    Truncated {
        url: String,
        got: u64,
        expected: u64,
    },
    #[error("the downloaded file is not a usable model: {0}")]
    Unusable(#[from] super::WeightsError),
}

/// Download `url` to `destination`, reporting `(bytes so far, total if known)` as it goes.
pub fn download(
    url: &str,
    destination: &Path,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<(), DownloadError> {
    let http_error = |reason: String| DownloadError::Http {
        url: url.to_string(),
        reason,
    };
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DownloadError::Io { path, source }
    };
    if let Some(folder) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(io_error(folder))?;
    }
    let partial = destination.with_extension("part");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(TIMEOUT))
        .timeout_recv_response(Some(TIMEOUT))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| http_error(e.to_string()))?;
    let expected: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut body = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut file = File::create(&partial).map_err(io_error(&partial))?;
    let mut buffer = vec![0u8; 1 << 16];
    let mut got = 0u64;
    let copied: Result<(), DownloadError> = loop {
        let n = match body.read(&mut buffer) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(http_error(e.to_string())),
        };
        if let Err(e) = file.write_all(&buffer[..n]) {
            break Err(io_error(&partial)(e));
        }
        got += n as u64;
        progress(got, expected);
    };
    let finished = copied
        .and_then(|()| file.sync_all().map_err(io_error(&partial)))
        .and_then(|()| match expected {
            Some(expected) if expected != got => Err(DownloadError::Truncated {
                url: url.to_string(),
                got,
                expected,
            }),
            _ => Ok(()),
        })
        .and_then(|()| {
            Weights::load(&partial)
                .map(drop)
                .map_err(DownloadError::from)
        })
        .and_then(|()| std::fs::rename(&partial, destination).map_err(io_error(destination)));
    if finished.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    finished
}
