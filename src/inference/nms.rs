//! Which boxes survive: Ultralytics' class-aware NMS (ProbIoU Fast-NMS for oriented boxes)
//! over the one-to-many head's candidates, or the one-to-one head's top-k with no NMS.

use crate::inference::postprocess::{Detection, Layout, Shape, box_iou};
use crate::inference::rotated;
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
/// oriented box's `xyxy` is its unrotated extent until [`super::task_shapes::attach_shapes`]
/// turns it.
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
}
