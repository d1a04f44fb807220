//! Video files decoded by the `ffmpeg` program: any container and codec ffmpeg reads,
//! every decoded frame exactly once (`-fps_mode passthrough`: no frame is duplicated or
//! dropped to fit a constant rate), as RGB, with each frame's own timestamp.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::ffmpeg::{ASSUMED_FRAME_RATE, Decoder, FrameClock, LogLine};
use super::{Frame, FrameSource, SourceError};

/// How many of ffmpeg's last error lines an error message quotes.
const QUOTED_ERRORS: usize = 3;

pub struct VideoSource {
    path: PathBuf,
    decoder: Option<Decoder>,
    frame_rate: Option<f64>,
    duration: Option<f64>,
    /// Frame times and numbers of the current decode: ffmpeg restarts them at a seek.
    clock: FrameClock,
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
            clock: FrameClock::starting_at(0.0),
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
        self.clock = FrameClock::starting_at(start);
        self.decoder = Some(Decoder::start(&self.path, &[], start).map_err(
            |e| match e.kind() {
                ErrorKind::NotFound => SourceError::FfmpegMissing,
                _ => self.video_error(e.to_string()),
            },
        )?);
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
            let line = self.decoder.as_ref()?.next_line(None).ok()?;
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
        match decoder.wait() {
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
            (Some((n, pts, width, height)), Some(decoder)) => decoder
                .read_image(width, height)
                .map(|image| (n, pts, image)),
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
        Ok(Some(self.clock.frame(n, pts, rate, self.seeks, image)))
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
