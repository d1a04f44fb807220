//! From the model's decoded predictions to detections on the source image: confidence
//! filter, class-aware NMS (ProbIoU for oriented boxes), each kept box's mask, keypoints or
//! angle, and the undoing of the letterbox, as Ultralytics' predictor does.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::inference::masks::Prototypes;
use crate::inference::preprocess::Letterbox;
use crate::inference::rotated;
pub use crate::inference::task_shapes::Shape;
use crate::inference::task_shapes::attach_shapes;
use crate::model::Task;

/// Offset that keeps boxes of different classes apart in class-aware NMS (Ultralytics' `max_wh`).
const CLASS_OFFSET: f32 = 7680.0;
/// Most candidates NMS looks at (Ultralytics' `max_nms`).
const MAX_NMS: usize = 30_000;

/// Thresholds and filters of the detection step.
#[derive(Debug, Clone, PartialEq)]
pub struct NmsOptions {
    pub conf: f32,
    pub iou: f32,
    pub max_det: usize,
    /// One NMS across classes instead of one per class.
    pub agnostic: bool,
    /// Keep only these class ids (all when `None`).
    pub classes: Option<Vec<usize>>,
    /// Every class above `conf` at an anchor is a candidate, not only the best one
    /// (what Ultralytics' validator does).
    pub multi_label: bool,
    /// YOLO26's one-to-one head and its top-k, no NMS (`predict(nms=False)`); a model
    /// without that head ignores it.
    pub nms_free: bool,
}

impl Default for NmsOptions {
    fn default() -> Self {
        Self {
            conf: 0.25,
            iou: 0.7,
            max_det: 300,
            agnostic: false,
            classes: None,
            multi_label: false,
            nms_free: false,
        }
    }
}

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

/// Candidates the one-to-one head's top-k keeps before the confidence filter (Ultralytics
/// sets the head's `max_det` to at least this, so a class filter still finds its boxes).
const TOP_K_CANDIDATES: usize = 300;

/// The anchor's best classes, best first (three at most).
fn top_classes(at: impl Fn(usize) -> f32, num_classes: usize) -> Vec<(usize, f32)> {
    let mut scores: Vec<(usize, f32)> = (0..num_classes).map(|c| (c, at(c))).collect();
    let top = scores.len().min(3);
    if top > 0 {
        scores.select_nth_unstable_by(top - 1, |a, b| b.1.total_cmp(&a.1));
        scores.truncate(top);
        scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    }
    scores
}

/// `count` indices of `scores`, highest first (ties to the lower index, as a stable sort).
fn top_indices(scores: &[f32], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order.truncate(count);
    order
}

/// Detections in canvas pixels from a one-to-one head's predictions, laid out
/// `(4 + nc) × anchors` (one image), as Ultralytics' end-to-end head and predictor pick them:
/// the anchors with the best top scores, then the best (anchor, class) pairs among theirs
/// (one anchor may give boxes of two classes), then the confidence and class filters.
pub fn top_k(predictions: &[f32], layout: Layout, options: &NmsOptions) -> Vec<Detection> {
    let num_classes = layout.num_classes;
    let anchors = predictions.len() / layout.rows();
    let at = |row: usize, anchor: usize| predictions[row * anchors + anchor];
    let k = options.max_det.max(TOP_K_CANDIDATES).min(anchors);
    let best: Vec<(usize, f32)> =
        (0..anchors)
            .map(|a| {
                (0..num_classes).map(|c| (c, at(4 + c, a))).fold(
                    (0, f32::NEG_INFINITY),
                    |best, x| if x.1 > best.1 { x } else { best },
                )
            })
            .collect();
    let best_scores: Vec<f32> = best.iter().map(|&(_, s)| s).collect();
    let chosen = top_indices(&best_scores, k);
    let picks: Vec<(usize, usize, f32)> = if options.agnostic {
        chosen
            .into_iter()
            .map(|a| (a, best[a].0, best[a].1))
            .collect()
    } else {
        let pairs: Vec<f32> = chosen
            .iter()
            .flat_map(|&a| (0..num_classes).map(move |c| at(4 + c, a)))
            .collect();
        top_indices(&pairs, k)
            .into_iter()
            .map(|i| (chosen[i / num_classes], i % num_classes, pairs[i]))
            .collect()
    };
    picks
        .into_iter()
        .filter(|&(_, class, conf)| {
            conf > options.conf
                && options
                    .classes
                    .as_ref()
                    .is_none_or(|keep| keep.contains(&class))
        })
        .take(options.max_det)
        .map(|(anchor, class, conf)| {
            let (cx, cy, w, h) = (at(0, anchor), at(1, anchor), at(2, anchor), at(3, anchor));
            Detection {
                xyxy: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
                conf,
                class,
                anchor,
                top_classes: top_classes(|c| at(4 + c, anchor), num_classes),
                shape: Shape::Box,
            }
        })
        .collect()
}

/// Detections in canvas pixels from predictions laid out `rows × anchors` (one image); an
/// oriented box's `xyxy` is its unrotated extent until [`attach_shapes`] turns it.
pub fn non_max_suppression(
    predictions: &[f32],
    layout: Layout,
    options: &NmsOptions,
) -> Vec<Detection> {
    let num_classes = layout.num_classes;
    let anchors = predictions.len() / layout.rows();
    let at = |row: usize, anchor: usize| predictions[row * anchors + anchor];
    let wanted = |class: usize, conf: f32| {
        conf > options.conf
            && options
                .classes
                .as_ref()
                .is_none_or(|keep| keep.contains(&class))
    };
    let corners = |a: usize| {
        let (cx, cy, w, h) = (at(0, a), at(1, a), at(2, a), at(3, a));
        [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
    };
    let mut candidates: Vec<Detection> = Vec::new();
    if options.multi_label {
        for a in 0..anchors {
            candidates.extend(
                (0..num_classes)
                    .filter(|&c| wanted(c, at(4 + c, a)))
                    .map(|class| Detection {
                        xyxy: corners(a),
                        conf: at(4 + class, a),
                        class,
                        anchor: a,
                        ..Detection::default()
                    }),
            );
        }
    } else {
        // Each anchor's best class (the first of equals), row by row: a class's scores lie
        // side by side, an anchor's 80 apart by a whole row.
        let mut best = vec![(0usize, f32::NEG_INFINITY); anchors];
        for class in 0..num_classes {
            let scores = &predictions[(4 + class) * anchors..][..anchors];
            for (b, &score) in best.iter_mut().zip(scores) {
                if score > b.1 {
                    *b = (class, score);
                }
            }
        }
        candidates.extend(
            best.into_iter()
                .enumerate()
                .filter(|&(_, (class, conf))| wanted(class, conf))
                .map(|(a, (class, conf))| Detection {
                    xyxy: corners(a),
                    conf,
                    class,
                    anchor: a,
                    ..Detection::default()
                }),
        );
    }
    candidates.sort_by(|a, b| b.conf.total_cmp(&a.conf));
    candidates.truncate(MAX_NMS);

    let offset = |d: &Detection| {
        if options.agnostic {
            0.0
        } else {
            d.class as f32 * CLASS_OFFSET
        }
    };
    let kept = if let Task::Obb { .. } = layout.task {
        // Ultralytics offsets an oriented box's centre by its class.
        let angle_row = 4 + num_classes;
        let boxes: Vec<[f32; 5]> = candidates
            .iter()
            .map(|d| {
                let o = offset(d);
                let (a, [x1, y1, x2, y2]) = (d.anchor, d.xyxy);
                let (w, h) = (x2 - x1, y2 - y1);
                [x1 + w / 2.0 + o, y1 + h / 2.0 + o, w, h, at(angle_row, a)]
            })
            .collect();
        rotated::fast_nms(&boxes, options.iou)
    } else {
        let shifted: Vec<[f32; 4]> = candidates
            .iter()
            .map(|d| d.xyxy.map(|v| v + offset(d)))
            .collect();
        greedy_nms(&shifted, options.iou, options.max_det)
    };
    kept.into_iter()
        .take(options.max_det)
        .map(|i| {
            let mut detection = candidates[i].clone();
            detection.top_classes = top_classes(|c| at(4 + c, detection.anchor), num_classes);
            detection
        })
        .collect()
}

/// The indices of `boxes` (most confident first) that greedy NMS keeps: each box not
/// overlapping a kept one above `iou`, stopping at `max_det`.
fn greedy_nms(boxes: &[[f32; 4]], iou: f32, max_det: usize) -> Vec<usize> {
    let mut suppressed = vec![false; boxes.len()];
    let mut kept = Vec::new();
    for i in 0..boxes.len() {
        if suppressed[i] {
            continue;
        }
        kept.push(i);
        if kept.len() == max_det {
            break;
        }
        for j in i + 1..boxes.len() {
            if !suppressed[j] && box_iou(&boxes[i], &boxes[j]) > iou {
                suppressed[j] = true;
            }
        }
    }
    kept
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

    /// Predictions for 2 classes over the given anchors (cx, cy, w, h, p0, p1).
    fn predictions(anchors: &[[f32; 6]]) -> Vec<f32> {
        (0..6)
            .flat_map(|row| anchors.iter().map(move |a| a[row]))
            .collect()
    }

    #[test]
    fn overlapping_boxes_of_one_class_are_suppressed() {
        let p = predictions(&[
            [50.0, 50.0, 20.0, 20.0, 0.9, 0.1],
            [51.0, 50.0, 20.0, 20.0, 0.8, 0.1],
            [51.0, 50.0, 20.0, 20.0, 0.1, 0.7],
            [150.0, 50.0, 20.0, 20.0, 0.6, 0.1],
            [150.0, 150.0, 20.0, 20.0, 0.2, 0.1],
        ]);
        let kept = non_max_suppression(&p, Layout::detection(2), &NmsOptions::default());
        let summary: Vec<(usize, f32)> = kept.iter().map(|d| (d.class, d.conf)).collect();
        assert_eq!(summary, vec![(0, 0.9), (1, 0.7), (0, 0.6)]);
        assert_eq!(kept[0].xyxy, [40.0, 40.0, 60.0, 60.0]);
        let provenance: Vec<(usize, Vec<(usize, f32)>)> = kept
            .iter()
            .map(|d| (d.anchor, d.top_classes.clone()))
            .collect();
        assert_eq!(
            provenance,
            [
                (0, vec![(0, 0.9), (1, 0.1)]),
                (2, vec![(1, 0.7), (0, 0.1)]),
                (3, vec![(0, 0.6), (1, 0.1)])
            ]
        );

        let agnostic = NmsOptions {
            agnostic: true,
            ..NmsOptions::default()
        };
        assert_eq!(
            non_max_suppression(&p, Layout::detection(2), &agnostic).len(),
            2
        );
        let only_one = NmsOptions {
            classes: Some(vec![1]),
            ..NmsOptions::default()
        };
        assert_eq!(
            non_max_suppression(&p, Layout::detection(2), &only_one).len(),
            1
        );
        let capped = NmsOptions {
            max_det: 1,
            ..NmsOptions::default()
        };
        assert_eq!(
            non_max_suppression(&p, Layout::detection(2), &capped).len(),
            1
        );
    }

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
