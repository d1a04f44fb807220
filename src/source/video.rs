//! Video files decoded by the `ffmpeg` program (through ffmpeg-sidecar): any container and
//! codec ffmpeg reads, every decoded frame exactly once (`-fps_mode passthrough`: no frame is
//! duplicated or dropped to fit a constant rate), with each frame's own timestamp (read from
//! ffmpeg's `showinfo` filter), as RGB.

use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use ffmpeg_sidecar::child::FfmpegChild;
use ffmpeg_sidecar::command::{FfmpegCommand, ffmpeg_is_installed};
use ffmpeg_sidecar::event::{FfmpegEvent, LogLevel, OutputVideoFrame};
use ffmpeg_sidecar::iter::FfmpegIterator;
use image::RgbImage;

use super::{Frame, FrameSource, SourceError};

/// The rate ffmpeg itself assumes for streams that carry no timing (raw MJPEG, raw H.264).
const ASSUMED_FRAME_RATE: f64 = 25.0;

/// How many of ffmpeg's last error lines an error message quotes.
const QUOTED_ERRORS: usize = 3;

/// Whether the `ffmpeg` program can be run.
pub fn ffmpeg_available() -> bool {
    ffmpeg_is_installed()
}

/// One running decode of a file, from a start position.
struct Decoder {
    child: FfmpegChild,
    events: FfmpegIterator,
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
    /// Frames that arrived before their timestamp did, and timestamps before their frames.
    frames: VecDeque<OutputVideoFrame>,
    timestamps: HashMap<u32, f64>,
    errors: Vec<String>,
    finished: bool,
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
            frames: VecDeque::new(),
            timestamps: HashMap::new(),
            errors: Vec::new(),
            finished: false,
        };
        source.start_decoder(0.0)?;
        // Decode up to the first frame so a file ffmpeg cannot read fails here, not later.
        source.fill();
        if source.frames.is_empty() {
            return Err(source.error_or("no video frames"));
        }
        Ok(source)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn start_decoder(&mut self, start: f64) -> Result<(), SourceError> {
        self.decoder = None;
        self.frames.clear();
        self.timestamps.clear();
        self.errors.clear();
        self.finished = false;
        self.start = start;
        let mut command = FfmpegCommand::new();
        command.hide_banner();
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
        let events = child.iter().map_err(|e| self.video_error(e.to_string()))?;
        self.decoder = Some(Decoder { child, events });
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

    /// Read ffmpeg's events until the oldest frame has its timestamp or ffmpeg is done.
    fn fill(&mut self) {
        while !self.finished && !self.front_is_ready() {
            let event = self.decoder.as_mut().and_then(|d| d.events.next());
            match event {
                // Not at `Done` (stdout's end): stderr may still hold the last frames'
                // timestamps and ffmpeg's errors. The events end when both pipes have.
                None => self.finish(),
                Some(FfmpegEvent::OutputFrame(frame)) => self.frames.push_back(frame),
                Some(FfmpegEvent::Log(LogLevel::Info, line)) => self.read_log_line(&line),
                Some(FfmpegEvent::Log(LogLevel::Error | LogLevel::Fatal, line)) => {
                    self.errors.push(clean_log_line(&line));
                }
                Some(FfmpegEvent::Error(message)) => self.errors.push(message),
                // The input's rate, else (raw streams ffmpeg cannot describe) the output's.
                Some(
                    FfmpegEvent::ParsedInputStream(stream)
                    | FfmpegEvent::ParsedOutputStream(stream),
                ) => {
                    if let Some(video) = stream.video_data().filter(|_| self.frame_rate.is_none()) {
                        self.frame_rate = Some(if video.fps > 0.0 {
                            f64::from(video.fps)
                        } else {
                            ASSUMED_FRAME_RATE
                        });
                    }
                }
                Some(FfmpegEvent::ParsedDuration(duration)) if duration.input_index == 0 => {
                    self.duration = Some(duration.duration);
                }
                Some(_) => {}
            }
        }
    }

    fn front_is_ready(&self) -> bool {
        self.frames
            .front()
            .is_some_and(|f| self.timestamps.contains_key(&f.frame_num))
    }

    /// ffmpeg is done: a failed exit with no error line of its own still counts as an error.
    fn finish(&mut self) {
        self.finished = true;
        let status = match self.decoder.as_mut() {
            Some(decoder) => decoder.child.wait(),
            None => return,
        };
        match status {
            Ok(status) if status.success() => {}
            Ok(status) if self.errors.is_empty() => {
                self.errors.push(format!("ffmpeg exited with {status}"));
            }
            Ok(_) => {}
            Err(e) => self.errors.push(e.to_string()),
        }
    }

    /// Keep the timestamp of a `showinfo` line (`n:  12 pts: 6006 pts_time:0.2002 …`).
    fn read_log_line(&mut self, line: &str) {
        if !line.contains("showinfo") {
            return;
        }
        let field = |name: &str| {
            let start = line.find(name)? + name.len();
            line[start..].split_whitespace().next()
        };
        let (Some(n), Some(time)) = (field(" n:"), field("pts_time:")) else {
            return;
        };
        if let (Ok(n), Ok(time)) = (n.parse::<u32>(), time.parse::<f64>()) {
            self.timestamps.insert(n, time);
        }
    }

    fn to_frame(&mut self, raw: OutputVideoFrame) -> Result<Frame, SourceError> {
        let rate = self.frame_rate.unwrap_or(ASSUMED_FRAME_RATE);
        let pts = self.start
            + self
                .timestamps
                .remove(&raw.frame_num)
                .unwrap_or(f64::from(raw.frame_num) / rate);
        let (width, height) = (raw.width, raw.height);
        let image = RgbImage::from_raw(width, height, raw.data).ok_or_else(|| {
            self.video_error(format!("ffmpeg sent a short {width}×{height} frame"))
        })?;
        Ok(Frame {
            index: (self.start * rate).round() as u64 + u64::from(raw.frame_num),
            pts,
            image,
        })
    }
}

impl FrameSource for VideoSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        self.fill();
        match self.frames.pop_front() {
            Some(raw) => self.to_frame(raw).map(Some),
            None if self.errors.is_empty() => Ok(None),
            // Damage ffmpeg reported (a corrupt or truncated file) ends the source with an
            // error after the frames it could decode, not quietly.
            None => {
                let error = self.error_or("");
                self.errors.clear();
                Err(error)
            }
        }
    }

    fn frame_rate(&self) -> Option<f64> {
        self.frame_rate
    }

    fn duration(&self) -> Option<f64> {
        self.duration
    }

    fn seek(&mut self, seconds: f64) -> Result<(), SourceError> {
        let seconds = match self.duration {
            Some(duration) => seconds.clamp(0.0, duration),
            None => seconds.max(0.0),
        };
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
    fn log_prefixes_are_removed() {
        assert_eq!(
            clean_log_line("[in#0 @ 0x55d] [error] Error opening input: Invalid data"),
            "Error opening input: Invalid data"
        );
        assert_eq!(clean_log_line("moov atom not found"), "moov atom not found");
    }
}
