//! How closely a model follows another on images no one labelled: the other's boxes (a
//! distilled layer's teacher, as `predict` keeps them) are taken as the ground truth and
//! the model's detections at the validator's thresholds are scored against them, mAP as
//! `val` computes it. A measure that needs no labels, so it can use images nothing was
//! trained on or chosen by.

use std::path::PathBuf;

use super::metrics::{ImageStats, Label};
use super::{EvalError, validation_nms};
use crate::inference::detector::Detector;
use crate::inference::postprocess::NmsOptions;
use crate::source::load_rgb;

/// The teacher's boxes that count as ground truth: those `predict` keeps by default.
pub const TEACHER_CONF: f32 = 0.25;

/// Each of `images` scored: `student`'s detections against `teacher`'s boxes. `on_image`
/// hears of each image done.
pub fn agreement_images(
    student: &Detector,
    teacher: &Detector,
    images: &[PathBuf],
    on_image: &mut dyn FnMut(),
) -> Result<Vec<ImageStats>, EvalError> {
    let truth = NmsOptions {
        conf: TEACHER_CONF,
        ..NmsOptions::default()
    };
    let scored = validation_nms();
    images
        .iter()
        .map(|path| {
            let image = load_rgb(path)?;
            let detect_error = |source| EvalError::Detect {
                path: path.clone(),
                source,
            };
            let labels: Vec<Label> = teacher
                .run(&image, &truth, false)
                .map_err(detect_error)?
                .detections
                .iter()
                .map(|d| Label {
                    xyxy: d.xyxy,
                    class: d.class,
                })
                .collect();
            let detections = student
                .run(&image, &scored, false)
                .map_err(detect_error)?
                .detections;
            on_image();
            Ok(ImageStats::new(&detections, &labels))
        })
        .collect()
}
