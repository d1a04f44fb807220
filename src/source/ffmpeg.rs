//! The `ffmpeg` program as a decoder (spawned through ffmpeg-sidecar), shared by video
//! files and network streams: every decoded frame as RGB on stdout, and ffmpeg's log on
//! stderr, where the `showinfo` filter writes a line for each frame (number, time, size)
//! before that frame's bytes. A thread drains stderr into a channel as fast as ffmpeg
//! writes it, and the reader takes a frame's line, then its bytes: the two stay in step
//! without buffering frames.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{ChildStdout, ExitStatus};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use ffmpeg_sidecar::child::FfmpegChild;
use ffmpeg_sidecar::command::FfmpegCommand;
use image::RgbImage;

use super::Frame;

/// The rate ffmpeg itself assumes for streams that carry no timing (raw MJPEG, raw H.264).
pub const ASSUMED_FRAME_RATE: f64 = 25.0;

/// What a line of ffmpeg's log says that the reader needs.
#[derive(Debug, Clone, PartialEq)]
pub enum LogLine {
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
    pub fn parse(line: &str) -> Option<Self> {
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

/// Frame numbers and times of one decode that started `start` seconds into its input
/// (ffmpeg counts and times from there).
#[derive(Debug, Clone, Copy)]
pub struct FrameClock {
    start: f64,
    last_pts: Option<f64>,
}

impl FrameClock {
    pub fn starting_at(start: f64) -> Self {
        Self {
            start,
            last_pts: None,
        }
    }

    /// The decode's frame `n`, whose own time is `pts` (a frame without one follows the last
    /// at `rate`), numbered and timed in the input, in `segment`.
    pub fn frame(
        &mut self,
        n: u64,
        pts: Option<f64>,
        rate: f64,
        segment: u64,
        image: RgbImage,
    ) -> Frame {
        let pts = match (pts, self.last_pts) {
            (Some(pts), _) => self.start + pts,
            (None, Some(last)) => last + 1.0 / rate,
            (None, None) => self.start,
        };
        self.last_pts = Some(pts);
        Frame {
            index: (self.start * rate).round() as u64 + n,
            pts,
            segment,
            image,
        }
    }
}

/// One running ffmpeg, decoding one input into RGB frames.
pub struct Decoder {
    child: FfmpegChild,
    stdout: BufReader<ChildStdout>,
    log: Receiver<LogLine>,
}

impl Decoder {
    /// Decode the first video stream of `input` from `start` seconds, every frame exactly
    /// once (`-fps_mode passthrough`: none duplicated or dropped to fit a constant rate);
    /// `input_options` go before the input.
    pub fn start(
        input: impl AsRef<OsStr>,
        input_options: &[&str],
        start: f64,
    ) -> std::io::Result<Self> {
        let mut command = FfmpegCommand::new();
        command
            .hide_banner()
            .args(["-nostats", "-nostdin"])
            .args(input_options);
        if start > 0.0 {
            command.seek(format!("{start:.6}"));
        }
        command
            .input(input)
            .args(["-map", "0:v:0", "-fps_mode", "passthrough"])
            .filter("showinfo")
            .rawvideo();
        let mut child = command.spawn()?;
        let (Some(stdout), Some(stderr)) = (child.take_stdout(), child.take_stderr()) else {
            return Err(std::io::Error::other("ffmpeg's output is not piped"));
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
            })?;
        Ok(Self {
            child,
            stdout: BufReader::new(stdout),
            log,
        })
    }

    /// ffmpeg's next log line that matters, waiting at most `timeout` (forever with
    /// `None`); `Disconnected` once its log has ended.
    pub fn next_line(&self, timeout: Option<Duration>) -> Result<LogLine, RecvTimeoutError> {
        match timeout {
            Some(timeout) => self.log.recv_timeout(timeout),
            None => self.log.recv().map_err(|_| RecvTimeoutError::Disconnected),
        }
    }

    /// The pixels of the frame whose log line was just read; `None` when ffmpeg ended
    /// before writing them all.
    pub fn read_image(&mut self, width: u32, height: u32) -> Option<RgbImage> {
        let mut pixels = vec![0u8; width as usize * height as usize * 3];
        self.stdout.read_exact(&mut pixels).ok()?;
        RgbImage::from_raw(width, height, pixels)
    }

    /// Wait for ffmpeg to exit.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait()
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // Closing early (seek, loop, window closed, stream stalled) must not leave ffmpeg
        // running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ffmpeg's error line without its `[component @ 0x…]` and `[error]` prefixes.
pub fn clean_log_line(line: &str) -> String {
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
