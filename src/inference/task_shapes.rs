//! What a task head adds to each kept box — a segmentation mask with its outlines, pose
//! keypoints, or an oriented box — read from the prediction rows after the classes.

use std::sync::Arc;

use rayon::prelude::*;

use crate::inference::masks::{InstanceMask, Prototypes};
use crate::inference::postprocess::{Detection, Layout};
use crate::inference::preprocess::Letterbox;
use crate::inference::rotated;
use crate::model::Task;

/// What a task head adds to a detection's box, in source-image pixels.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Shape {
    /// A detection model's box alone.
    #[default]
    Box,
    /// The instance's mask on the model's input canvas (`letterbox` maps it onto the image)
    /// and the outline of each of its parts in image pixels.
    Mask {
        mask: Arc<InstanceMask>,
        outlines: Arc<Vec<Vec<[f32; 2]>>>,
        letterbox: Letterbox,
    },
    /// Keypoints as x, y and visibility (1 where the model predicts none).
    Keypoints(Arc<Vec<[f32; 3]>>),
    /// The oriented box: centre, size, rotation in [0, π/2) radians; `xyxy` is its corners'
    /// bounding box.
    Oriented([f32; 5]),
}

impl Shape {
    /// The oriented box's corners, for an oriented box.
    pub fn corners(&self) -> Option<[[f32; 2]; 4]> {
        match self {
            Shape::Oriented(xywhr) => Some(rotated::corners(xywhr)),
            _ => None,
        }
    }
}

/// Each detection's mask, keypoints or oriented box, from the rows after its classes at its
/// anchor (canvas pixels, as the boxes still are); a segmentation model's detections whose
/// mask came out empty are dropped, as Ultralytics drops them.
pub fn attach_shapes(
    detections: &mut Vec<Detection>,
    predictions: &[f32],
    layout: Layout,
    prototypes: Option<&Prototypes>,
    letterbox: &Letterbox,
) {
    let anchors = predictions.len() / layout.rows();
    let first = 4 + layout.num_classes;
    let at = |row: usize, anchor: usize| predictions[row * anchors + anchor];
    match layout.task {
        Task::Detect => {}
        Task::Pose {
            keypoints, dims, ..
        } => {
            for d in detections.iter_mut() {
                let points = (0..keypoints)
                    .map(|k| {
                        let row = first + k * dims;
                        let visible = if dims == 3 {
                            at(row + 2, d.anchor)
                        } else {
                            1.0
                        };
                        [at(row, d.anchor), at(row + 1, d.anchor), visible]
                    })
                    .collect();
                d.shape = Shape::Keypoints(Arc::new(points));
            }
        }
        Task::Obb { .. } => {
            for d in detections.iter_mut() {
                let [x1, y1, x2, y2] = d.xyxy;
                let (w, h) = (x2 - x1, y2 - y1);
                let xywhr = [x1 + w / 2.0, y1 + h / 2.0, w, h, at(first, d.anchor)];
                d.shape = Shape::Oriented(rotated::regularize(xywhr));
            }
        }
        Task::Segment { masks, .. } => {
            let Some(prototypes) = prototypes else {
                return;
            };
            let coefficients: Vec<f32> = detections
                .iter()
                .flat_map(|d| (0..masks).map(|k| at(first + k, d.anchor)))
                .collect();
            let logits = prototypes.logits(&coefficients, detections.len());
            // Instances are independent: one a thread.
            let planes: Vec<_> = logits.planes().collect();
            let shapes: Vec<Option<Shape>> = detections
                .par_iter()
                .zip(planes)
                .map(|(d, plane)| {
                    let mask = InstanceMask::from_logits(
                        d.xyxy,
                        &plane,
                        letterbox.canvas_width,
                        letterbox.canvas_height,
                    );
                    mask.pixels.contains(&true).then(|| Shape::Mask {
                        outlines: Arc::new(mask.outlines()),
                        mask: Arc::new(mask),
                        letterbox: *letterbox,
                    })
                })
                .collect();
            // A box whose mask is empty goes, as in Ultralytics' predictor.
            let mut shapes = shapes.into_iter();
            detections.retain_mut(|d| match shapes.next().flatten() {
                Some(shape) => {
                    d.shape = shape;
                    true
                }
                None => false,
            });
        }
    }
}
