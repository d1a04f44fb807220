//! Frame sources: still images, video files and network streams (decoded by the `ffmpeg`
//! program) and cameras (nokhwa). Each yields [`Frame`]s in order, with their presentation
//! time.

mod camera;
mod ffmpeg;
mod images;
mod stream;
mod stream_url;
mod video;

use std::path::{Path, PathBuf};

use image::RgbImage;
use thiserror::Error;

pub use camera::{CameraDescription, CameraMode, CameraSource, list_cameras};
pub use images::{ImageSequence, image_paths, image_paths_recursive, load_rgb, upright_size};
pub use stream::{RtspTransport, StreamOptions, StreamSource};
pub use stream_url::{STREAM_SCHEMES, StreamUrl};
pub use video::VideoSource;

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("{0}: no such file, folder or matching pattern")]
    NotFound(String),
    #[error("{0}: not a valid glob pattern ({1})")]
    BadPattern(String, String),
    #[error("{0}: no images found")]
    Empty(String),
    #[error("{path}: cannot decode image ({reason})")]
    Decode { path: PathBuf, reason: String },
    #[error(
        "the `ffmpeg` program is needed to read and write video but was not found on PATH \
         (Debian/Ubuntu: apt install ffmpeg; macOS: brew install ffmpeg; Windows: winget install ffmpeg)"
    )]
    FfmpegMissing,
    #[error("{path}: cannot read video ({reason})")]
    Video { path: PathBuf, reason: String },
    #[error("camera {index}: {reason}")]
    Camera { index: u32, reason: String },
    /// `url` with its password masked; `reason` too.
    #[error("{url}: {reason}")]
    Stream { url: String, reason: String },
}

impl SourceError {
    /// Whether trying again later may succeed: a stream's server may come back, where a
    /// missing file or camera stays missing.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Stream { .. })
    }
}

/// One decoded frame: its position in the source, its presentation time, its pixels.
#[derive(Debug, Clone)]
pub struct Frame {
    /// 0, 1, 2, … in decoding order.
    pub index: u64,
    /// Presentation time in seconds from the start of the source.
    pub pts: f64,
    /// Seeks the source made before this frame: frames of one segment follow each other
    /// in the source, so a tracker starts over where the segment changes.
    pub segment: u64,
    pub image: RgbImage,
}

/// Anything that yields frames in order. A source lives on the thread that opened it
/// (a camera handle may not move between threads), so it need not be `Send`.
pub trait FrameSource {
    /// The next frame; `None` at the end of a file. A camera never ends.
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;
    /// Frames per second the source is meant to play at, when it says.
    fn frame_rate(&self) -> Option<f64>;
    /// Length in seconds, when known.
    fn duration(&self) -> Option<f64> {
        None
    }
    /// Whether frames should be shown at their presentation times (files) or as they come
    /// (cameras, live streams: a live source is reconnected when it fails).
    fn is_live(&self) -> bool {
        false
    }
    /// Continue from the frame at `seconds`.
    fn seek(&mut self, seconds: f64) -> Result<(), SourceError>;
}

/// What the user pointed at: `camera:N`, a stream URL, a video file, or images (file,
/// folder, glob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Camera(u32),
    Stream(StreamUrl),
    Video(PathBuf),
    Images(String),
}

/// How sources are opened.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OpenOptions {
    /// A camera's resolution and rate; its highest rate when `None`.
    pub camera_mode: Option<CameraMode>,
    pub stream: StreamOptions,
}

const VIDEO_EXTENSIONS: [&str; 13] = [
    "mp4", "m4v", "mkv", "webm", "avi", "mov", "mjpeg", "mjpg", "mpg", "mpeg", "ts", "wmv", "flv",
];

impl SourceSpec {
    pub fn parse(text: &str) -> Self {
        if let Some(index) = text
            .strip_prefix("camera:")
            .and_then(|n| n.trim().parse().ok())
        {
            return Self::Camera(index);
        }
        if let Some(url) = StreamUrl::parse(text) {
            return Self::Stream(url);
        }
        let path = Path::new(text);
        let is_video = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if is_video || (path.is_file() && !images::is_image(path)) {
            Self::Video(path.to_path_buf())
        } else {
            Self::Images(text.to_string())
        }
    }

    /// Open the source. Still images play at one per second. A stream waits for its first
    /// frame at most `first_frame_within` (its stall timeout when `None`).
    pub fn open(
        &self,
        options: &OpenOptions,
        first_frame_within: Option<std::time::Duration>,
    ) -> Result<Box<dyn FrameSource>, SourceError> {
        Ok(match self {
            Self::Camera(index) => Box::new(CameraSource::open(*index, options.camera_mode)?),
            Self::Stream(url) => {
                Box::new(StreamSource::open(url, options.stream, first_frame_within)?)
            }
            Self::Video(path) => Box::new(VideoSource::open(path)?),
            Self::Images(pattern) => Box::new(ImageSequence::open(pattern, 1.0)?),
        })
    }

    /// What to remember of this source (settings, recent lists): a stream without its
    /// secrets.
    pub fn to_remembered(&self) -> String {
        match self {
            Self::Stream(url) => url.without_secrets(),
            _ => self.to_string(),
        }
    }

    /// The last path component (`clip.mp4`, `*.jpg`), `camera:N` or the stream's address
    /// (password masked): short enough for a status line, where the full path would push
    /// everything else off.
    pub fn short_name(&self) -> String {
        let path = match self {
            Self::Camera(_) | Self::Stream(_) => return self.to_string(),
            Self::Video(path) => path.as_path(),
            Self::Images(pattern) => Path::new(pattern),
        };
        path.file_name().map_or_else(
            || self.to_string(),
            |name| name.to_string_lossy().into_owned(),
        )
    }
}

impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Camera(index) => write!(f, "camera:{index}"),
            Self::Stream(url) => write!(f, "{url}"),
            Self::Video(path) => write!(f, "{}", path.display()),
            Self::Images(pattern) => f.write_str(pattern),
        }
    }
}

/// A finite source replayed from its start each time it ends; frame indices and
/// presentation times keep counting up across the replays.
pub struct Looping {
    inner: Box<dyn FrameSource>,
    index_offset: u64,
    pts_offset: f64,
    last: Option<(u64, f64)>,
}

impl Looping {
    pub fn new(inner: Box<dyn FrameSource>) -> Self {
        Self {
            inner,
            index_offset: 0,
            pts_offset: 0.0,
            last: None,
        }
    }
}

impl FrameSource for Looping {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let frame = match self.inner.next_frame()? {
            Some(frame) => frame,
            None => {
                // An empty pass would loop forever without a frame: end instead.
                let Some((index, pts)) = self.last else {
                    return Ok(None);
                };
                let step = self.inner.frame_rate().map_or(0.0, |fps| 1.0 / fps);
                self.index_offset = index + 1;
                self.pts_offset = pts + step;
                self.inner.seek(0.0)?;
                match self.inner.next_frame()? {
                    Some(frame) => frame,
                    None => return Ok(None),
                }
            }
        };
        let frame = Frame {
            index: frame.index + self.index_offset,
            pts: frame.pts + self.pts_offset,
            segment: frame.segment,
            image: frame.image,
        };
        self.last = Some((frame.index, frame.pts));
        Ok(Some(frame))
    }

    fn frame_rate(&self) -> Option<f64> {
        self.inner.frame_rate()
    }

    fn duration(&self) -> Option<f64> {
        self.inner.duration()
    }

    fn seek(&mut self, seconds: f64) -> Result<(), SourceError> {
        self.index_offset = 0;
        self.pts_offset = 0.0;
        self.last = None;
        self.inner.seek(seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_recognised() {
        assert_eq!(SourceSpec::parse("camera:2"), SourceSpec::Camera(2));
        assert_eq!(
            SourceSpec::parse("clips/a.MP4"),
            SourceSpec::Video("clips/a.MP4".into())
        );
        assert_eq!(
            SourceSpec::parse("photos/*.jpg"),
            SourceSpec::Images("photos/*.jpg".into())
        );
        assert_eq!(
            SourceSpec::parse("camera:x"),
            SourceSpec::Images("camera:x".into())
        );
        let stream = SourceSpec::parse("rtsp://admin:secret@10.0.0.2/live");
        assert!(matches!(stream, SourceSpec::Stream(_)));
        assert_eq!(stream.to_string(), "rtsp://admin:***@10.0.0.2/live");
        assert_eq!(stream.to_remembered(), "rtsp://admin@10.0.0.2/live");
        // A URL-looking file name with an unknown scheme stays a path.
        assert!(matches!(
            SourceSpec::parse("notes://x.mp4"),
            SourceSpec::Video(_)
        ));
    }

    #[test]
    fn short_names_drop_the_folders() {
        assert_eq!(SourceSpec::parse("/data/clips/a.mp4").short_name(), "a.mp4");
        assert_eq!(SourceSpec::parse("photos/*.jpg").short_name(), "*.jpg");
        assert_eq!(SourceSpec::parse("camera:1").short_name(), "camera:1");
    }
}
