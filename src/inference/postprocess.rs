//! From the model's decoded predictions to detections on the source image: the kept boxes
//! ([`crate::inference::nms`]), each one's mask, keypoints or angle, and the undoing of the
//! letterbox, as Ultralytics' predictor does.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::inference::masks::Prototypes;
pub use crate::inference::nms::{NmsOptions, non_max_suppression, top_k};
use crate::inference::preprocess::Letterbox;
use crate::inference::rotated;
pub use crate::inference::task_shapes::Shape;
use crate::inference::task_shapes::attach_shapes;
use crate::model::Task;

/// How a model's predictions are laid out for each anchor: the box (4 rows), the class
/// probabilities, then the task's rows (mask coefficients, keypoints or the angle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub num_classes: usize,
    pub task: Task,
}

impl Layout {
    /// A detection model's: box and classes only.
    pub fn detection(num_classes: usize) -> Self {
        Self {
            num_classes,
            task: Task::Detect,
        }
    }

    /// Rows per anchor.
    pub fn rows(&self) -> usize {
        4 + self.num_classes + self.task.extra_rows()
    }
}

/// One detected object, in source-image pixels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub xyxy: [f32; 4],
    pub conf: f32,
    pub class: usize,
    /// The output anchor that produced it: its pyramid level and cell follow from the
    /// input size ([`AnchorPlace::of`]).
    #[serde(skip)]
    pub anchor: usize,
    /// The anchor's highest class probabilities, best first (three at most).
    #[serde(skip)]
    pub top_classes: Vec<(usize, f32)>,
    /// The mask, keypoints or oriented box of a task model.
    #[serde(skip)]
    pub shape: Shape,
}

/// Where an output anchor sits: Detect's pyramid level and the cell of its grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchorPlace {
    /// 3, 4 or 5 (P3/P4/P5).
    pub level: usize,
    /// Input pixels per cell (8, 16 or 32).
    pub stride: usize,
    pub column: usize,
    pub row: usize,
}

impl AnchorPlace {
    /// Where `anchor` sits for a `canvas_width`×`canvas_height` input (multiples of 32):
    /// Detect lays out P3's cells, then P4's, then P5's, each row by row.
    pub fn of(anchor: usize, canvas_width: usize, canvas_height: usize) -> Option<Self> {
        let mut first = 0;
        for (level, stride) in [(3, 8), (4, 16), (5, 32)] {
            let (columns, rows) = (canvas_width / stride, canvas_height / stride);
            if anchor < first + columns * rows {
                let cell = anchor - first;
                return Some(Self {
                    level,
                    stride,
                    column: cell % columns,
                    row: cell / columns,
                });
            }
            first += columns * rows;
        }
        None
    }
}

/// The name of `class` in `names`, or its number when the model names none.
pub fn class_name(names: &[String], class: usize) -> String {
    names
        .get(class)
        .map_or_else(|| class.to_string(), String::clone)
}

/// Intersection over union of two `xyxy` boxes (Ultralytics' `box_iou`, eps 1e-7).
pub fn box_iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter + 1e-7)
}

/// IoU at which two models' boxes of one class count as the same object.
pub const SAME_OBJECT_IOU: f32 = 0.5;

/// Which boxes of `a` and of `b` the other model has no box for: one of the same class at
/// [`SAME_OBJECT_IOU`] or more, each box matched once, the most confident pairs first.
pub fn found_by_one(a: &[Detection], b: &[Detection]) -> (Vec<bool>, Vec<bool>) {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            let overlap = box_iou(&x.xyxy, &y.xyxy);
            if x.class == y.class && overlap >= SAME_OBJECT_IOU {
                pairs.push((x.conf.min(y.conf), i, j));
            }
        }
    }
    pairs.sort_by(|p, q| q.0.total_cmp(&p.0));
    let (mut only_a, mut only_b) = (vec![true; a.len()], vec![true; b.len()]);
    for (_, i, j) in pairs {
        if only_a[i] && only_b[j] {
            only_a[i] = false;
            only_b[j] = false;
        }
    }
    (only_a, only_b)
}

/// Map canvas-pixel boxes, and the masks' outlines, keypoints and oriented boxes, back onto
/// the source image: boxes, outlines and keypoints clipped to it (an oriented box is not:
/// its `xyxy` becomes its corners' bounding box). Outlines map through the padding and
/// resize actually applied, axis by axis, as Ultralytics' `masks.xy` maps them.
pub fn unletterbox(detections: &mut [Detection], letterbox: &Letterbox) {
    let (gain, pad_x, pad_y) = letterbox.box_transform();
    let (w, h) = (
        letterbox.source_width as f32,
        letterbox.source_height as f32,
    );
    let point = |[x, y]: [f32; 2]| {
        [
            ((x - pad_x) / gain).clamp(0.0, w),
            ((y - pad_y) / gain).clamp(0.0, h),
        ]
    };
    let (scale_x, scale_y) = (
        w / letterbox.resized_width as f32,
        h / letterbox.resized_height as f32,
    );
    let outline_point = |[x, y]: [f32; 2]| {
        [
            ((x - letterbox.pad_left as f32) * scale_x).clamp(0.0, w),
            ((y - letterbox.pad_top as f32) * scale_y).clamp(0.0, h),
        ]
    };
    for d in detections {
        let [x1, y1, x2, y2] = d.xyxy;
        let ([x1, y1], [x2, y2]) = (point([x1, y1]), point([x2, y2]));
        d.xyxy = [x1, y1, x2, y2];
        match &mut d.shape {
            Shape::Box => {}
            Shape::Mask { outlines, .. } => {
                *outlines = Arc::new(
                    outlines
                        .iter()
                        .map(|outline| outline.iter().map(|&p| outline_point(p)).collect())
                        .collect(),
                );
            }
            Shape::Keypoints(points) => {
                *points = Arc::new(
                    points
                        .iter()
                        .map(|&[x, y, visible]| {
                            let [x, y] = point([x, y]);
                            [x, y, visible]
                        })
                        .collect(),
                );
            }
            Shape::Oriented(xywhr) => {
                let [x, y, bw, bh, r] = *xywhr;
                *xywhr = [
                    (x - pad_x) / gain,
                    (y - pad_y) / gain,
                    bw / gain,
                    bh / gain,
                    r,
                ];
                d.xyxy = rotated::bounding_box(&rotated::corners(xywhr));
            }
        }
    }
}

/// Detections on the source image from one image's predictions (and a segmentation head's
/// prototypes): the one-to-one head's top-k where `nms_free`, else NMS; then each box's
/// mask, keypoints or angle; then the letterbox undone.
pub fn postprocess(
    predictions: &[f32],
    prototypes: Option<&Prototypes>,
    layout: Layout,
    letterbox: &Letterbox,
    options: &NmsOptions,
    nms_free: bool,
) -> Vec<Detection> {
    let mut detections = if nms_free {
        top_k(predictions, layout, options)
    } else {
        non_max_suppression(predictions, layout, options)
    };
    attach_shapes(&mut detections, predictions, layout, prototypes, letterbox);
    unletterbox(&mut detections, letterbox);
    detections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_only_one_model_finds_are_those_without_a_same_class_match() {
        let at = |x: f32, class: usize, conf: f32| Detection {
            xyxy: [x, 0.0, x + 10.0, 10.0],
            conf,
            class,
            ..Detection::default()
        };
        // a[0] and b[0] are one object; a[1] overlaps b[1] but is another class; b[2] is
        // a second box on a[0]'s object, which a[0] cannot match twice.
        let a = [at(0.0, 0, 0.9), at(50.0, 1, 0.8), at(100.0, 0, 0.7)];
        let b = [at(1.0, 0, 0.8), at(50.0, 2, 0.6), at(0.5, 0, 0.4)];
        let (only_a, only_b) = found_by_one(&a, &b);
        assert_eq!(only_a, [false, true, true]);
        assert_eq!(only_b, [false, true, true]);
        assert_eq!(found_by_one(&a, &a), (vec![false; 3], vec![false; 3]));
    }

    #[test]
    fn anchors_are_placed_on_p3_then_p4_then_p5_row_by_row() {
        // A 64×32 input: P3 is 8×4 cells (anchors 0–31), P4 4×2 (32–39), P5 2×1 (40–41).
        let place = |anchor| AnchorPlace::of(anchor, 64, 32).map(|p| (p.level, p.column, p.row));
        assert_eq!(place(0), Some((3, 0, 0)));
        assert_eq!(place(9), Some((3, 1, 1)));
        assert_eq!(place(31), Some((3, 7, 3)));
        assert_eq!(place(32), Some((4, 0, 0)));
        assert_eq!(place(39), Some((4, 3, 1)));
        assert_eq!(place(41), Some((5, 1, 0)));
        assert_eq!(place(42), None);
    }

    #[test]
    fn boxes_map_back_through_the_letterbox() {
        let lb = Letterbox::new(
            1280,
            720,
            640,
            crate::inference::preprocess::Canvas::Minimal,
        )
        .unwrap();
        let mut d = vec![Detection {
            xyxy: [0.0, 12.0, 640.0, 372.0],
            conf: 0.5,
            ..Detection::default()
        }];
        unletterbox(&mut d, &lb);
        assert_eq!(d[0].xyxy, [0.0, 0.0, 1280.0, 720.0]);
    }
}
