//! Video files decoded by the `ffmpeg` program (spawned through ffmpeg-sidecar): any
//! container and codec ffmpeg reads, every decoded frame exactly once (`-fps_mode
//! passthrough`: no frame is duplicated or dropped to fit a constant rate), as RGB, with each
//! frame's own timestamp.
//!
//! The timestamps come from ffmpeg's `showinfo` filter, which logs a line for each frame
//! (number, time, size) before that frame is written to stdout. A thread drains stderr into
//! a channel as fast as ffmpeg writes it, and the reader takes a frame's line, then its
//! bytes: the two stay in step without buffering frames, however long the file.

use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::process::ChildStdout;
use std::sync::mpsc::{Receiver, channel};

use ffmpeg_sidecar::child::FfmpegChild;
use ffmpeg_sidecar::command::FfmpegCommand;
use image::RgbImage;

use super::{Frame, FrameSource, SourceError};

/// The rate ffmpeg itself assumes for streams that carry no timing (raw MJPEG, raw H.264).
const ASSUMED_FRAME_RATE: f64 = 25.0;

/// How many of ffmpeg's last error lines an error message quotes.
const QUOTED_ERRORS: usize = 3;

/// What a line of ffmpeg's log says that the reader needs.
#[derive(Debug, Clone, PartialEq)]
enum LogLine {
    /// `showinfo`: frame `n` (from 0 in this decode) at `pts` seconds, `width`×`height`;
    /// `pts` is `None` for frames ffmpeg has no time for.
    Frame {
        n: u64,
        pts: Option<f64>,
        width: u32,
        height: u32,
    },
    /// The input video stream's rate (`25 fps`, or `25 tbr` when it states no rate).
    FrameRate(f64),
    /// The input's `Duration: 00:01:20.00`.
    Duration(f64),
    Error(String),
}

impl LogLine {
    fn parse(line: &str) -> Option<Self> {
        if line.contains("[error]") || line.contains("[fatal]") {
            return Some(Self::Error(clean_log_line(line)));
        }
        let field = |name: &str| {
            let start = line.find(name)? + name.len();
            line[start..].split_whitespace().next()
        };
        if line.contains("showinfo") {
            let n = field(" n:")?.parse().ok()?;
            let (width, height) = field(" s:")?.split_once('x')?;
            return Some(Self::Frame {
                n,
                pts: field("pts_time:").and_then(|t| t.parse().ok()),
                width: width.parse().ok()?,
                height: height.parse().ok()?,
            });
        }
        if let Some(rest) = line.split_once("Duration: ").map(|(_, rest)| rest) {
            let clock = rest.split(',').next()?;
            let mut parts = clock.split(':').map(|p| p.trim().parse::<f64>());
            let (h, m, s) = (
                parts.next()?.ok()?,
                parts.next()?.ok()?,
                parts.next()?.ok()?,
            );
            return Some(Self::Duration(h * 3600.0 + m * 60.0 + s));
        }
        if line.contains("Stream #0:") && line.contains("Video:") {
            let rate = |unit: &str| {
                line.split(',')
                    .filter_map(|part| part.trim().strip_suffix(unit))
                    .find_map(|v| v.trim().parse::<f64>().ok())
            };
            return rate(" fps").or_else(|| rate(" tbr")).map(Self::FrameRate);
        }
        None
    }
}

/// One running decode of a file, from a start position.
struct Decoder {
    child: FfmpegChild,
    stdout: BufReader<ChildStdout>,
    log: Receiver<LogLine>,
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // Closing early (seek, loop, window closed) must not leave ffmpeg running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct VideoSource {
    path: PathBuf,
    decoder: Option<Decoder>,
    frame_rate: Option<f64>,
    duration: Option<f64>,
    /// Where the current decode started, in seconds: ffmpeg restarts timestamps at a seek.
    start: f64,
    /// The time of the last frame, for one that comes without its own.
    last_pts: Option<f64>,
    /// The first frame, read by `open` to prove the file decodes.
    first: Option<Frame>,
    errors: Vec<String>,
    seeks: u64,
}

impl VideoSource {
    /// Start decoding `path`. Fails at once, with ffmpeg's reason, when it cannot be read.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        if !path.is_file() {
            return Err(SourceError::NotFound(path.display().to_string()));
        }
        let mut source = Self {
            path: path.to_path_buf(),
            decoder: None,
            frame_rate: None,
            duration: None,
            start: 0.0,
            last_pts: None,
            first: None,
            errors: Vec::new(),
            seeks: 0,
        };
        source.start_decoder(0.0)?;
        source.first = match source.read_frame() {
            Ok(Some(frame)) => Some(frame),
            Ok(None) => return Err(source.error_or("no video frames")),
            Err(err) => return Err(err),
        };
        Ok(source)
    }

    fn start_decoder(&mut self, start: f64) -> Result<(), SourceError> {
        self.decoder = None;
        self.first = None;
        self.errors.clear();
        self.start = start;
        self.last_pts = None;
        let mut command = FfmpegCommand::new();
        command.hide_banner().args(["-nostats", "-nostdin"]);
        if start > 0.0 {
            command.seek(format!("{start:.6}"));
        }
        command
            .input(&self.path)
            .args(["-map", "0:v:0", "-fps_mode", "passthrough"])
            .filter("showinfo")
            .rawvideo();
        let mut child = command.spawn().map_err(|e| match e.kind() {
            ErrorKind::NotFound => SourceError::FfmpegMissing,
            _ => self.video_error(e.to_string()),
        })?;
        let (Some(stdout), Some(stderr)) = (child.take_stdout(), child.take_stderr()) else {
            return Err(self.video_error("ffmpeg's output is not piped".into()));
        };
        let (lines, log) = channel();
        std::thread::Builder::new()
            .name("ffmpeg log".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(parsed) = LogLine::parse(&line)
                        && lines.send(parsed).is_err()
                    {
                        break;
                    }
                }
            })
            .map_err(|e| self.video_error(e.to_string()))?;
        self.decoder = Some(Decoder {
            child,
            stdout: BufReader::new(stdout),
            log,
        });
        Ok(())
    }

    fn video_error(&self, reason: String) -> SourceError {
        SourceError::Video {
            path: self.path.clone(),
            reason,
        }
    }

    /// ffmpeg's own last error lines when it gave any, else `fallback`.
    fn error_or(&self, fallback: &str) -> SourceError {
        let reason = if self.errors.is_empty() {
            fallback.to_string()
        } else {
            let first = self.errors.len().saturating_sub(QUOTED_ERRORS);
            self.errors[first..].join("; ")
        };
        self.video_error(reason)
    }

    /// The next frame's log line; `None` once ffmpeg's log has ended.
    fn next_frame_line(&mut self) -> Option<(u64, Option<f64>, u32, u32)> {
        loop {
            let line = self.decoder.as_ref()?.log.recv().ok()?;
            match line {
                LogLine::Frame {
                    n,
                    pts,
                    width,
                    height,
                } => return Some((n, pts, width, height)),
                LogLine::FrameRate(rate) if self.frame_rate.is_none() && rate > 0.0 => {
                    self.frame_rate = Some(rate);
                }
                LogLine::Duration(duration) if self.duration.is_none() => {
                    self.duration = Some(duration);
                }
                LogLine::Error(message) => self.errors.push(message),
                _ => {}
            }
        }
    }

    /// ffmpeg is done: a failed exit with no error line of its own still counts as one.
    fn finish(&mut self) {
        let Some(mut decoder) = self.decoder.take() else {
            return;
        };
        match decoder.child.wait() {
            Ok(status) if status.success() => {}
            Ok(status) if self.errors.is_empty() => {
                self.errors.push(format!("ffmpeg exited with {status}"));
            }
            Ok(_) => {}
            Err(e) => self.errors.push(e.to_string()),
        }
    }

    /// Decode one frame; `None` at the end. Damage ffmpeg reported (a corrupt or truncated
    /// file) ends the source with an error after the frames it could decode.
    fn read_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let line = self.next_frame_line();
        let read = match (line, self.decoder.as_mut()) {
            (Some((n, pts, width, height)), Some(decoder)) => {
                let mut pixels = vec![0u8; width as usize * height as usize * 3];
                decoder
                    .stdout
                    .read_exact(&mut pixels)
                    .ok()
                    .and_then(|()| RgbImage::from_raw(width, height, pixels))
                    .map(|image| (n, pts, image))
            }
            _ => None,
        };
        let Some((n, pts, image)) = read else {
            self.finish();
            if self.errors.is_empty() {
                return Ok(None);
            }
            let error = self.error_or("");
            self.errors.clear();
            return Err(error);
        };
        let rate = self.frame_rate.unwrap_or(ASSUMED_FRAME_RATE);
        let pts = match (pts, self.last_pts) {
            (Some(pts), _) => self.start + pts,
            (None, Some(last)) => last + 1.0 / rate,
            (None, None) => self.start,
        };
        self.last_pts = Some(pts);
        Ok(Some(Frame {
            index: (self.start * rate).round() as u64 + n,
            pts,
            segment: self.seeks,
            image,
        }))
    }
}

impl FrameSource for VideoSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        match self.first.take() {
            Some(frame) => Ok(Some(frame)),
            None => self.read_frame(),
        }
    }

    fn frame_rate(&self) -> Option<f64> {
        Some(self.frame_rate.unwrap_or(ASSUMED_FRAME_RATE))
    }

    fn duration(&self) -> Option<f64> {
        self.duration
    }

    fn seek(&mut self, seconds: f64) -> Result<(), SourceError> {
        let seconds = match self.duration {
            Some(duration) => seconds.clamp(0.0, duration),
            None => seconds.max(0.0),
        };
        self.seeks += 1;
        self.start_decoder(seconds)
    }
}

/// ffmpeg's error line without its `[component @ 0x…]` and `[error]` prefixes.
fn clean_log_line(line: &str) -> String {
    let mut line = line.trim();
    while let Some((_, rest)) = line
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    {
        line = rest.trim_start();
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_read() {
        let showinfo = "[Parsed_showinfo_0 @ 0x55] [info] n:  12 pts:  6006 pts_time:0.2002  \
                        duration: 1 pos: 837 fmt:yuv420p sar:1/1 s:640x360 i:P iskey:0";
        assert_eq!(
            LogLine::parse(showinfo),
            Some(LogLine::Frame {
                n: 12,
                pts: Some(0.2002),
                width: 640,
                height: 360
            })
        );
        let untimed = "[Parsed_showinfo_0 @ 0x55] [info] n: 794 pts:NOPTS pts_time:NOPTS \
                       pos: 1 fmt:yuv420p sar:1/1 s:480x360 i:P";
        assert!(matches!(
            LogLine::parse(untimed),
            Some(LogLine::Frame { pts: None, .. })
        ));
        assert_eq!(
            LogLine::parse("[info]   Duration: 00:01:20.50, start: 0.000000, bitrate: 311 kb/s"),
            Some(LogLine::Duration(80.5))
        );
        assert_eq!(
            LogLine::parse(
                "[info]   Stream #0:0: Video: vp8, yuv420p(progressive), 640x360, SAR 1:1 DAR 16:9, 29.97 fps, 29.97 tbr, 1k tbn (default)"
            ),
            Some(LogLine::FrameRate(29.97))
        );
        assert_eq!(
            LogLine::parse(
                "[info]   Stream #0:0: Video: mjpeg (Baseline), yuvj420p(pc), 640x360, 25 tbr, 1200k tbn"
            ),
            Some(LogLine::FrameRate(25.0))
        );
    }

    #[test]
    fn log_prefixes_are_removed() {
        assert_eq!(
            clean_log_line("[in#0 @ 0x55d] [error] Error opening input: Invalid data"),
            "Error opening input: Invalid data"
        );
        assert_eq!(clean_log_line("moov atom not found"), "moov atom not found");
    }
}
