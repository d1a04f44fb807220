//! Network streams (RTSP, RTMP, HTTP MJPEG feeds and HLS, TCP, UDP, SRT) decoded by the
//! `ffmpeg` program, read with as little buffering as ffmpeg allows.
//!
//! A stream never blocks its reader for long: a frame that does not come within the stall
//! timeout (a server that accepts and sends nothing, a network gone quiet) ends the
//! connection with an error, as does the stream ending or changing its frame size. The
//! capture thread then reconnects (`pipeline::capture`). A stream that states a duration is
//! a file on a server: it ends like a file and can seek.

use std::io::ErrorKind;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::ffmpeg::{ASSUMED_FRAME_RATE, Decoder, FrameClock, LogLine};
use super::{Frame, FrameSource, SourceError, StreamUrl};

/// How RTSP carries the video: TCP (interleaved, the default: no losses through NAT and
/// firewalls) or UDP (lower latency on a clean local network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
pub enum RtspTransport {
    #[default]
    Tcp,
    Udp,
}

/// How a stream is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamOptions {
    pub rtsp_transport: RtspTransport,
    /// The longest wait for a frame before the connection counts as lost.
    pub stall_timeout: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            rtsp_transport: RtspTransport::Tcp,
            stall_timeout: Duration::from_secs(10),
        }
    }
}

/// How long ffmpeg may look at the start of a stream to learn its format: enough for any
/// codec's parameters, short enough that a live picture appears within a second.
const PROBE_BYTES: &str = "1000000";
const PROBE_MICROSECONDS: &str = "1000000";

pub struct StreamSource {
    url: StreamUrl,
    options: StreamOptions,
    decoder: Option<Decoder>,
    frame_rate: Option<f64>,
    duration: Option<f64>,
    /// The frame size of this connection; another one ends it.
    size: Option<(u32, u32)>,
    /// Frame times and numbers of the current decode (from a seek into a remote file).
    clock: FrameClock,
    first: Option<Frame>,
    /// ffmpeg's last error line.
    last_error: Option<String>,
    seeks: u64,
}

impl StreamSource {
    /// Connect to `url` and wait for its first frame, at most `first_frame_within` (the
    /// stall timeout when `None`).
    pub fn open(
        url: &StreamUrl,
        options: StreamOptions,
        first_frame_within: Option<Duration>,
    ) -> Result<Self, SourceError> {
        let mut source = Self {
            url: url.clone(),
            options,
            decoder: None,
            frame_rate: None,
            duration: None,
            size: None,
            clock: FrameClock::starting_at(0.0),
            first: None,
            last_error: None,
            seeks: 0,
        };
        source.connect(0.0)?;
        let within = first_frame_within.unwrap_or(options.stall_timeout);
        source.first = source.read_frame(within)?;
        if source.first.is_none() {
            return Err(source.error_or("the stream ended before its first frame"));
        }
        Ok(source)
    }

    fn connect(&mut self, start: f64) -> Result<(), SourceError> {
        self.decoder = None;
        self.first = None;
        self.size = None;
        self.last_error = None;
        self.clock = FrameClock::starting_at(start);
        // Decode each frame as soon as its data is in, without waiting for reordering a
        // live encoder does not do; look at little of the stream to learn its format.
        let mut options = vec![
            "-flags",
            "low_delay",
            "-probesize",
            PROBE_BYTES,
            "-analyzeduration",
            PROBE_MICROSECONDS,
        ];
        if matches!(self.url.scheme().as_str(), "rtsp" | "rtsps") {
            let transport = match self.options.rtsp_transport {
                RtspTransport::Tcp => "tcp",
                RtspTransport::Udp => "udp",
            };
            options.extend(["-rtsp_transport", transport]);
        }
        self.decoder = Some(
            Decoder::start(self.url.as_str(), &options, start).map_err(|e| match e.kind() {
                ErrorKind::NotFound => SourceError::FfmpegMissing,
                _ => self.error(e.to_string()),
            })?,
        );
        Ok(())
    }

    fn error(&self, reason: String) -> SourceError {
        SourceError::Stream {
            url: self.url.to_string(),
            reason: self.url.redact(&reason),
        }
    }

    /// ffmpeg's last error line (its summary of the earlier ones) when it gave any, else
    /// `fallback`.
    fn error_or(&self, fallback: &str) -> SourceError {
        let Some(last) = &self.last_error else {
            return self.error(fallback.to_string());
        };
        // ffmpeg starts it with the address, which the message already names.
        let prefix = format!("{}: ", self.url.as_str());
        self.error(last.strip_prefix(&prefix).unwrap_or(last).to_string())
    }

    /// The next frame, waiting at most `within`. `None` at the end of a remote file; the
    /// end of a live stream is an error (the connection is lost).
    fn read_frame(&mut self, within: Duration) -> Result<Option<Frame>, SourceError> {
        let deadline = Instant::now() + within;
        let (n, pts, width, height) = loop {
            let Some(decoder) = self.decoder.as_ref() else {
                return Err(self.error("not connected".into()));
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match decoder.next_line(Some(left)) {
                Ok(LogLine::Frame {
                    n,
                    pts,
                    width,
                    height,
                }) => break (n, pts, width, height),
                Ok(LogLine::FrameRate(rate)) if self.frame_rate.is_none() && rate > 0.0 => {
                    self.frame_rate = Some(rate);
                }
                Ok(LogLine::Duration(duration)) if self.duration.is_none() => {
                    self.duration = Some(duration);
                }
                Ok(LogLine::Error(message)) => {
                    // A live stream's decoding errors (lost packets) come and go: only the
                    // last says why it ended.
                    self.last_error = Some(message);
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.decoder = None;
                    return Err(self.error(format!(
                        "no frame for {:.0} s (the server sends nothing)",
                        within.as_secs_f64()
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => return self.ended(),
            }
        };
        if let Some((w, h)) = self.size.filter(|&size| size != (width, height)) {
            self.decoder = None;
            return Err(self.error(format!(
                "the stream changed from {w}×{h} to {width}×{height}"
            )));
        }
        self.size = Some((width, height));
        let Some(image) = self
            .decoder
            .as_mut()
            .and_then(|d| d.read_image(width, height))
        else {
            return self.ended();
        };
        let rate = self.frame_rate.unwrap_or(ASSUMED_FRAME_RATE);
        Ok(Some(self.clock.frame(n, pts, rate, self.seeks, image)))
    }

    /// ffmpeg stopped: a remote file ended, or a live stream was lost.
    fn ended(&mut self) -> Result<Option<Frame>, SourceError> {
        let status = self.decoder.take().map(|mut decoder| decoder.wait());
        let clean = matches!(status, Some(Ok(status)) if status.success());
        if clean && self.last_error.is_none() && !self.is_live() {
            return Ok(None);
        }
        Err(self.error_or("the stream ended"))
    }
}

impl FrameSource for StreamSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        match self.first.take() {
            Some(frame) => Ok(Some(frame)),
            None => self.read_frame(self.options.stall_timeout),
        }
    }

    fn frame_rate(&self) -> Option<f64> {
        Some(self.frame_rate.unwrap_or(ASSUMED_FRAME_RATE))
    }

    fn duration(&self) -> Option<f64> {
        self.duration
    }

    /// A stream without a duration is live: shown as it comes, never paced or replayed.
    fn is_live(&self) -> bool {
        self.duration.is_none()
    }

    /// A remote file seeks like a local one; a live stream is always at its newest frame.
    fn seek(&mut self, seconds: f64) -> Result<(), SourceError> {
        let Some(duration) = self.duration else {
            return Ok(());
        };
        self.seeks += 1;
        self.connect(seconds.clamp(0.0, duration))
    }
}
