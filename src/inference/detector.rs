//! One image in, detections out: letterbox, forward, decode, NMS, boxes back on the image.

use std::path::Path;
use std::time::{Duration, Instant};

use burn::tensor::Device;
use image::RgbImage;
use thiserror::Error;

use super::preprocess::letterbox_on_device;
use crate::compute::kernels::runs_wgsl;
use crate::inference::masks::Prototypes;
use crate::inference::postprocess::{Detection, NmsOptions, postprocess};
use crate::inference::preprocess::{Canvas, Letterbox, PreprocessError};
use crate::model::{Activations, FocalTaps, Head, ModelError, ModelInfo, TakeFocalTaps, Yolo};
use crate::weights::Weights;

#[derive(Debug, Error)]
pub enum DetectError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error("reading the model output failed: {0}")]
    Readback(String),
}

/// How images are fitted to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSize {
    pub imgsz: usize,
    pub canvas: Canvas,
}

impl Default for InputSize {
    fn default() -> Self {
        Self {
            imgsz: 640,
            canvas: Canvas::Minimal,
        }
    }
}

/// Time spent in each stage of one detection.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub preprocess: Duration,
    pub inference: Duration,
    pub postprocess: Duration,
    /// The letterbox ran as a GPU kernel: `preprocess` is only the upload and the queueing,
    /// and the kernel's own time is in `inference`, which waits for the device.
    pub preprocess_queued: bool,
}

/// Everything one frame produced.
pub struct FrameResult {
    pub detections: Vec<Detection>,
    pub letterbox: Letterbox,
    pub taps: Option<FocalTaps>,
    pub times: StageTimes,
}

/// A loaded model on a device, ready for images.
pub struct Detector {
    model: Yolo,
    info: ModelInfo,
    device: Device,
    pub input: InputSize,
}

impl Detector {
    pub fn load(
        weights_path: &Path,
        device: Device,
        input: InputSize,
    ) -> Result<Self, DetectError> {
        let weights = Weights::load(weights_path).map_err(ModelError::from)?;
        Self::from_weights(&weights, device, input)
    }

    pub fn from_weights(
        weights: &Weights,
        device: Device,
        input: InputSize,
    ) -> Result<Self, DetectError> {
        let (model, info) = Yolo::load(weights, &device)?;
        Ok(Self::from_model(model, info, device, input))
    }

    /// A model already loaded (or in training) on `device`.
    pub fn from_model(model: Yolo, info: ModelInfo, device: Device, input: InputSize) -> Self {
        Self {
            model,
            info,
            device,
            input,
        }
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn model(&self) -> &Yolo {
        &self.model
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Detections on `image`, in its own pixel coordinates.
    pub fn detect(
        &self,
        image: &RgbImage,
        options: &NmsOptions,
    ) -> Result<Vec<Detection>, DetectError> {
        Ok(self.run(image, options, false)?.detections)
    }

    /// Detections plus, when `taps` is set, what FocalModulation attended to.
    pub fn run(
        &self,
        image: &RgbImage,
        options: &NmsOptions,
        taps: bool,
    ) -> Result<FrameResult, DetectError> {
        self.run_sized(image, self.input, options, taps)
    }

    /// As [`run`](Self::run), fitting the image to `input` instead of the detector's own.
    pub fn run_sized(
        &self,
        image: &RgbImage,
        input: InputSize,
        options: &NmsOptions,
        taps: bool,
    ) -> Result<FrameResult, DetectError> {
        let letterbox = Letterbox::new(image.width(), image.height(), input.imgsz, input.canvas)?;
        self.run_letterboxed(image, &letterbox, options, taps)
    }

    /// As [`run`](Self::run), on a letterbox the caller chose (validation batches).
    pub fn run_letterboxed(
        &self,
        image: &RgbImage,
        letterbox: &Letterbox,
        options: &NmsOptions,
        taps: bool,
    ) -> Result<FrameResult, DetectError> {
        let letterbox = *letterbox;
        let start = Instant::now();
        let input = letterbox_on_device(image.as_raw(), 3, &letterbox, &self.device);
        let preprocessed = Instant::now();

        let nms_free = options.nms_free && self.info.has_one_to_one;
        let head = if nms_free {
            Head::OneToOne
        } else {
            Head::OneToMany
        };
        let mut focal = TakeFocalTaps::default();
        let outputs = if taps {
            self.model
                .run(
                    Activations::input(input).with_head(head),
                    self.model.last_layer(),
                    &mut focal,
                )
                .into_outputs()
                .expect("the pass ran Detect")
        } else {
            self.model.forward_outputs(input, head)
        };
        let readback = |e: burn::tensor::TensorReadError| DetectError::Readback(e.to_string());
        let prototypes = outputs
            .protos
            .map(Prototypes::read)
            .transpose()
            .map_err(readback)?;
        let predictions = outputs
            .predictions
            .try_into_vec_as::<f32>()
            .map_err(readback)?;
        let inferred = Instant::now();

        let detections = postprocess(
            &predictions,
            prototypes.as_ref(),
            self.info.layout(),
            &letterbox,
            options,
            nms_free,
        );
        let done = Instant::now();
        Ok(FrameResult {
            detections,
            letterbox,
            taps: focal.0,
            times: StageTimes {
                preprocess: preprocessed - start,
                inference: inferred - preprocessed,
                postprocess: done - inferred,
                preprocess_queued: runs_wgsl(&self.device),
            },
        })
    }
}
