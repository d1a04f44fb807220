//! Annotated video out: RGB frames piped into the `ffmpeg` program, which encodes them
//! (H.264 in mp4/mkv/mov/avi, VP9 in webm).

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::ChildStdin;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ffmpeg_sidecar::child::FfmpegChild;
use ffmpeg_sidecar::command::FfmpegCommand;
use image::RgbImage;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum VideoWriteError {
    #[error(
        "the `ffmpeg` program is needed to write video but was not found on PATH \
         (Debian/Ubuntu: apt install ffmpeg)"
    )]
    FfmpegMissing,
    #[error("{path}: cannot write video ({reason})")]
    Encode { path: PathBuf, reason: String },
}

/// How many of ffmpeg's last stderr lines an error quotes.
const QUOTED_LINES: usize = 3;

pub struct VideoWriter {
    path: PathBuf,
    width: u32,
    height: u32,
    child: FfmpegChild,
    stdin: Option<ChildStdin>,
    stderr_lines: Arc<Mutex<Vec<String>>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl VideoWriter {
    /// Start encoding `width`×`height` frames at `fps` into `path` (overwritten).
    pub fn create(path: &Path, width: u32, height: u32, fps: f64) -> Result<Self, VideoWriteError> {
        Self::spawn(path, width, height, fps, false)
    }

    /// As [`VideoWriter::create`], with the encoder's fastest settings that still compress
    /// well: for recording beside the model as it runs.
    pub fn create_realtime(
        path: &Path,
        width: u32,
        height: u32,
        fps: f64,
    ) -> Result<Self, VideoWriteError> {
        Self::spawn(path, width, height, fps, true)
    }

    fn spawn(
        path: &Path,
        width: u32,
        height: u32,
        fps: f64,
        realtime: bool,
    ) -> Result<Self, VideoWriteError> {
        let webm = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|ext| ext.eq_ignore_ascii_case("webm"));
        let (codec, fast) = if webm {
            (
                "libvpx-vp9",
                ["-deadline", "realtime", "-cpu-used", "8"].as_slice(),
            )
        } else {
            ("libx264", ["-preset", "veryfast"].as_slice())
        };
        let mut command = FfmpegCommand::new();
        command
            .hide_banner()
            .args(["-nostats", "-loglevel", "error", "-y"])
            .format("rawvideo")
            .pix_fmt("rgb24")
            .size(width, height)
            .args(["-framerate", &format!("{fps:.6}")])
            .input("-")
            // 4:2:0 needs even sides; odd-sized frames get one black row or column.
            .filter("pad=ceil(iw/2)*2:ceil(ih/2)*2")
            .codec_video(codec);
        if realtime {
            command.args(fast);
        }
        command.pix_fmt("yuv420p").output(path);
        let mut child = command.spawn().map_err(|e| match e.kind() {
            ErrorKind::NotFound => VideoWriteError::FfmpegMissing,
            _ => VideoWriteError::Encode {
                path: path.into(),
                reason: e.to_string(),
            },
        })?;
        let stdin = child.take_stdin();
        // ffmpeg blocks once its stderr pipe is full, so it is always drained.
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let stderr_reader = child.take_stderr().map(|stderr| {
            let lines = stderr_lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
                    lines.push(line);
                    let excess = lines.len().saturating_sub(QUOTED_LINES);
                    lines.drain(..excess);
                }
            })
        });
        Ok(Self {
            path: path.into(),
            width,
            height,
            child,
            stdin,
            stderr_lines,
            stderr_reader,
        })
    }

    fn encode_error(&self, fallback: String) -> VideoWriteError {
        let lines = self
            .stderr_lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("; ");
        VideoWriteError::Encode {
            path: self.path.clone(),
            reason: if lines.is_empty() { fallback } else { lines },
        }
    }

    /// Append `frame`. One of another size (a stream back at another resolution) is scaled
    /// to fit the video's, centred on black: the file stays one playable video.
    pub fn write(&mut self, frame: &RgbImage) -> Result<(), VideoWriteError> {
        let fitted;
        let frame = if frame.dimensions() == (self.width, self.height) {
            frame
        } else {
            fitted = fit(frame, self.width, self.height);
            &fitted
        };
        let written = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(frame.as_raw()),
            None => Err(ErrorKind::BrokenPipe.into()),
        };
        written.map_err(|e| {
            self.wait_for_stderr();
            self.encode_error(e.to_string())
        })
    }

    fn wait_for_stderr(&mut self) {
        let _ = self.child.wait();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
    }

    /// Flush the last frames and wait for ffmpeg to close the file.
    pub fn finish(mut self) -> Result<(), VideoWriteError> {
        drop(self.stdin.take());
        let status = self.child.wait();
        self.wait_for_stderr();
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(self.encode_error(format!("ffmpeg exited with {status}"))),
            Err(e) => Err(self.encode_error(e.to_string())),
        }
    }
}

/// `picture` scaled to fit `width`×`height` without distortion, centred on black.
pub fn fit(picture: &RgbImage, width: u32, height: u32) -> RgbImage {
    let scale = (width as f32 / picture.width().max(1) as f32)
        .min(height as f32 / picture.height().max(1) as f32);
    let scaled_width = ((picture.width() as f32 * scale).round() as u32).clamp(1, width.max(1));
    let scaled_height = ((picture.height() as f32 * scale).round() as u32).clamp(1, height.max(1));
    let scaled = image::imageops::resize(
        picture,
        scaled_width,
        scaled_height,
        image::imageops::FilterType::Triangle,
    );
    let mut out = RgbImage::new(width, height);
    let x = (width - scaled_width) / 2;
    let y = (height - scaled_height) / 2;
    image::imageops::replace(&mut out, &scaled, i64::from(x), i64::from(y));
    out
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        // Dropped without `finish` (an error elsewhere): let ffmpeg close what it has.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn a_picture_of_another_size_is_fitted_centred_without_distortion() {
        // 640×360 into 480×360: scaled to 480×270, 45 black rows above and below.
        let white = RgbImage::from_pixel(640, 360, Rgb([255, 255, 255]));
        let fitted = fit(&white, 480, 360);
        assert_eq!(fitted.dimensions(), (480, 360));
        assert_eq!(fitted.get_pixel(240, 44), &Rgb([0, 0, 0]));
        assert_eq!(fitted.get_pixel(240, 45), &Rgb([255, 255, 255]));
        assert_eq!(fitted.get_pixel(0, 180), &Rgb([255, 255, 255]));
        assert_eq!(fitted.get_pixel(240, 314), &Rgb([255, 255, 255]));
        assert_eq!(fitted.get_pixel(240, 315), &Rgb([0, 0, 0]));
    }
}
