//! Measuring a detector as Ultralytics' `val` does: a YOLO-format labelled folder
//! ([`dataset`]), its images letterboxed in Ultralytics' rectangular batches, detections at
//! the validator's thresholds, and COCO-style mAP ([`metrics`]). `focalyolo val` prints it;
//! `distill --val` judges a layer in training by it. Without labels, a model is scored
//! against another's boxes ([`agreement`]); two models' difference gets its interval from a
//! paired bootstrap over the images ([`bootstrap`]).

pub mod agreement;
pub mod bootstrap;
pub mod dataset;
pub mod metrics;

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::inference::detector::{DetectError, Detector};
use crate::inference::postprocess::NmsOptions;
use crate::inference::preprocess::{Canvas, Letterbox, validation_canvases};
use crate::source::{SourceError, load_rgb, upright_size};
use dataset::{DatasetError, labelled_images, read_labels};
use metrics::{DetectionStats, ImageStats, MapReport};

#[derive(Debug, Error)]
pub enum EvalError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{path}: {source}")]
    Detect { path: PathBuf, source: DetectError },
    #[error("{0}: no images")]
    Empty(PathBuf),
}

/// Ultralytics' default validation batch size, which decides the rectangular canvases.
const VALIDATION_BATCH: usize = 16;

/// A labelled folder, its images' sizes read once (they decide the batch canvases).
pub struct LabelledSet {
    /// (image, labels file, upright width × height) per image.
    images: Vec<(PathBuf, PathBuf, (u32, u32))>,
}

impl LabelledSet {
    pub fn open(dir: &Path) -> Result<Self, EvalError> {
        let images = labelled_images(dir)?
            .into_iter()
            .map(|(image, labels)| {
                let size = upright_size(&image)?;
                Ok((image, labels, size))
            })
            .collect::<Result<Vec<_>, EvalError>>()?;
        if images.is_empty() {
            return Err(EvalError::Empty(dir.into()));
        }
        Ok(Self { images })
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// The validator's thresholds: every box down to 0.001, several classes per box.
pub fn validation_nms() -> NmsOptions {
    NmsOptions {
        conf: 0.001,
        iou: 0.7,
        max_det: 300,
        multi_label: true,
        ..NmsOptions::default()
    }
}

/// mAP of `detector` on `set` (see [`validate_images`]).
pub fn validate(
    detector: &Detector,
    set: &LabelledSet,
    on_image: &mut dyn FnMut(),
) -> Result<MapReport, EvalError> {
    Ok(DetectionStats::of(&validate_images(detector, set, on_image)?).report())
}

/// Each image of `set` scored by `detector`, in the set's order. Each image is fitted as
/// the detector's input says: on its rectangular batch canvas (Ultralytics' `rect`
/// validation) for the minimal canvas, on the full square otherwise. `on_image` hears of
/// each image done.
pub fn validate_images(
    detector: &Detector,
    set: &LabelledSet,
    on_image: &mut dyn FnMut(),
) -> Result<Vec<ImageStats>, EvalError> {
    let imgsz = detector.input.imgsz;
    let sizes: Vec<(u32, u32)> = set.images.iter().map(|(_, _, size)| *size).collect();
    let canvases = match detector.input.canvas {
        Canvas::Minimal => validation_canvases(&sizes, imgsz, VALIDATION_BATCH),
        Canvas::Square => vec![(imgsz, imgsz); sizes.len()],
    };
    let options = validation_nms();
    let mut scored = Vec::with_capacity(set.len());
    for ((image_path, label_path, _), (canvas_width, canvas_height)) in
        set.images.iter().zip(canvases)
    {
        let image = load_rgb(image_path)?;
        let labels = read_labels(label_path, image.width(), image.height())?;
        let detect_error = |source| EvalError::Detect {
            path: image_path.clone(),
            source,
        };
        let letterbox = Letterbox::for_validation(
            image.width(),
            image.height(),
            imgsz,
            canvas_width,
            canvas_height,
        )
        .map_err(|e| detect_error(e.into()))?;
        let detections = detector
            .run_letterboxed(&image, &letterbox, &options, false)
            .map_err(detect_error)?
            .detections;
        scored.push(ImageStats::new(&detections, &labels));
        on_image();
    }
    Ok(scored)
}
