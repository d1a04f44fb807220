//! How closely a model follows another on images no one labelled: the other's boxes (a
//! distilled layer's teacher, as `predict` keeps them) are taken as the ground truth and
//! the model's detections at the validator's thresholds are scored against them, mAP as
//! `val` computes it. A measure that needs no labels, so it can use images nothing was
//! trained on or chosen by.

use std::path::{Path, PathBuf};

use super::metrics::{ImageStats, Label};
use super::{EvalError, validation_nms};
use crate::inference::detector::Detector;
use crate::inference::postprocess::{Detection, NmsOptions};
use crate::source::load_rgb;

/// The teacher's boxes that count as ground truth: those `predict` keeps by default.
pub const TEACHER_CONF: f32 = 0.25;

/// A teacher's boxes on a set of images, found once and scored against by every model
/// compared on them.
pub struct TeacherBoxes {
    images: Vec<PathBuf>,
    /// Per image, the teacher's boxes as labels.
    labels: Vec<Vec<Label>>,
}

impl TeacherBoxes {
    /// `teacher`'s boxes on each of `images`. `on_image` hears of each image done.
    pub fn find(
        teacher: &Detector,
        images: Vec<PathBuf>,
        on_image: &mut dyn FnMut(),
    ) -> Result<Self, EvalError> {
        let truth = NmsOptions {
            conf: TEACHER_CONF,
            ..NmsOptions::default()
        };
        let labels = images
            .iter()
            .map(|path| {
                let boxes = detect(teacher, path, &truth)?
                    .iter()
                    .map(|d| Label {
                        xyxy: d.xyxy,
                        class: d.class,
                    })
                    .collect();
                on_image();
                Ok(boxes)
            })
            .collect::<Result<_, EvalError>>()?;
        Ok(Self { images, labels })
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Each image scored: `student`'s detections (the validator's thresholds) against the
    /// teacher's boxes. `on_image` hears of each image done.
    pub fn score(
        &self,
        student: &Detector,
        on_image: &mut dyn FnMut(),
    ) -> Result<Vec<ImageStats>, EvalError> {
        let options = validation_nms();
        self.images
            .iter()
            .zip(&self.labels)
            .map(|(path, labels)| {
                let detections = detect(student, path, &options)?;
                on_image();
                Ok(ImageStats::new(&detections, labels))
            })
            .collect()
    }
}

/// `detector`'s boxes on the image at `path`.
fn detect(
    detector: &Detector,
    path: &Path,
    options: &NmsOptions,
) -> Result<Vec<Detection>, EvalError> {
    let image = load_rgb(path)?;
    Ok(detector
        .run(&image, options, false)
        .map_err(|source| EvalError::Detect {
            path: path.to_path_buf(),
            source,
        })?
        .detections)
}
