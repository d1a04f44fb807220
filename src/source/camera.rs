//! Cameras through nokhwa (V4L2 on Linux, Media Foundation on Windows, AVFoundation on
//! macOS): list them, open one at a chosen resolution and rate, read RGB frames.

use std::time::Instant;

use nokhwa::Camera;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};

use super::{Frame, FrameSource, SourceError};

/// Consecutive frames that may fail to decode before the camera counts as broken.
const MAX_UNDECODABLE_FRAMES: usize = 30;

/// A camera as the system lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraDescription {
    pub index: u32,
    pub name: String,
}

/// A capture resolution and rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CameraMode {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl std::fmt::Display for CameraMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{} @ {} fps", self.width, self.height, self.fps)
    }
}

/// The cameras present now; none is an empty list, not an error.
pub fn list_cameras() -> Result<Vec<CameraDescription>, SourceError> {
    let cameras = nokhwa::query(ApiBackend::Auto).map_err(|e| SourceError::Camera {
        index: 0,
        reason: format!("cannot list cameras: {e}"),
    })?;
    Ok(cameras
        .iter()
        .filter_map(|info| {
            Some(CameraDescription {
                index: info.index().as_index().ok()?,
                name: info.human_name(),
            })
        })
        .collect())
}

pub struct CameraSource {
    index: u32,
    camera: Camera,
    started: Instant,
    next_index: u64,
}

impl CameraSource {
    /// Open camera `index`, at `mode` when given, else at its highest frame rate.
    pub fn open(index: u32, mode: Option<CameraMode>) -> Result<Self, SourceError> {
        let error = |reason: String| SourceError::Camera { index, reason };
        let requested = match mode {
            Some(mode) => RequestedFormatType::Closest(CameraFormat::new(
                Resolution::new(mode.width, mode.height),
                FrameFormat::MJPEG,
                mode.fps,
            )),
            None => RequestedFormatType::AbsoluteHighestFrameRate,
        };
        let mut camera = Camera::new(
            CameraIndex::Index(index),
            RequestedFormat::new::<RgbFormat>(requested),
        )
        .map_err(|e| error(format!("cannot open it ({e}); is it connected?")))?;
        camera
            .open_stream()
            .map_err(|e| error(format!("cannot start streaming ({e})")))?;
        Ok(Self {
            index,
            camera,
            started: Instant::now(),
            next_index: 0,
        })
    }
}

impl FrameSource for CameraSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let error = |reason: String| SourceError::Camera {
            index: self.index,
            reason,
        };
        // A corrupt MJPEG frame now and then is skipped; only a run of them is an error.
        let mut undecodable = 0;
        let image = loop {
            let buffer = self
                .camera
                .frame()
                .map_err(|e| error(format!("lost the camera ({e}); was it unplugged?")))?;
            match buffer.decode_image::<RgbFormat>() {
                Ok(image) => break image,
                Err(e) if undecodable >= MAX_UNDECODABLE_FRAMES => {
                    return Err(error(format!("cannot decode its frames ({e})")));
                }
                Err(_) => undecodable += 1,
            }
        };
        let index = self.next_index;
        self.next_index += 1;
        Ok(Some(Frame {
            index,
            pts: self.started.elapsed().as_secs_f64(),
            segment: 0,
            image,
        }))
    }

    fn frame_rate(&self) -> Option<f64> {
        Some(f64::from(self.camera.frame_rate()))
    }

    fn is_live(&self) -> bool {
        true
    }

    fn seek(&mut self, _seconds: f64) -> Result<(), SourceError> {
        Ok(())
    }
}

impl Drop for CameraSource {
    fn drop(&mut self) {
        let _ = self.camera.stop_stream();
    }
}
