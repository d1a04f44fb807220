//! COCO-style detection metrics computed the way Ultralytics' `DetectionValidator` does:
//! predictions matched to labels greedily by IoU at ten thresholds 0.50:0.05:0.95, then
//! per-class average precision from the 101-point interpolated precision envelope
//! (trapezoidal integral), averaged over the classes that have labels.

use crate::inference::postprocess::{Detection, box_iou};

/// The IoU thresholds of mAP50-95.
pub const IOU_THRESHOLDS: [f32; 10] = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

/// A ground-truth box in image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub xyxy: [f32; 4],
    pub class: usize,
}

/// AP of one class, at IoU 0.5 and averaged over 0.5:0.95.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassAp {
    pub class: usize,
    pub images: usize,
    pub instances: usize,
    pub ap50: f64,
    pub ap50_95: f64,
}

/// The summary `val` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct MapReport {
    pub per_class: Vec<ClassAp>,
    pub map50: f64,
    pub map50_95: f64,
    pub images: usize,
    pub instances: usize,
}

/// For each prediction, whether it is a true positive at each IoU threshold, matched as
/// Ultralytics' `match_predictions` does: each prediction takes its highest-IoU label of
/// the same class, then each label keeps the first such prediction in confidence order.
/// `predictions` must be sorted by confidence, highest first, as NMS returns them.
pub fn match_predictions(predictions: &[Detection], labels: &[Label]) -> Vec<[bool; 10]> {
    let mut correct = vec![[false; 10]; predictions.len()];
    let ious: Vec<Vec<f32>> = labels
        .iter()
        .map(|l| {
            predictions
                .iter()
                .map(|p| {
                    if p.class == l.class {
                        box_iou(&l.xyxy, &p.xyxy)
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    for (t, &threshold) in IOU_THRESHOLDS.iter().enumerate() {
        let mut label_taken = vec![false; labels.len()];
        for (p, hit) in correct.iter_mut().enumerate() {
            let best = (0..labels.len())
                .filter(|&l| ious[l][p] >= threshold)
                .max_by(|&a, &b| ious[a][p].total_cmp(&ious[b][p]));
            if let Some(l) = best
                && !label_taken[l]
            {
                label_taken[l] = true;
                hit[t] = true;
            }
        }
    }
    correct
}

/// Area under the precision envelope, sampled at 101 recall points and integrated with
/// the trapezoidal rule (Ultralytics' `compute_ap`).
pub fn average_precision(recall: &[f64], precision: &[f64]) -> f64 {
    let mut mrec = Vec::with_capacity(recall.len() + 2);
    mrec.push(0.0);
    mrec.extend_from_slice(recall);
    mrec.push(1.0);
    let mut mpre = Vec::with_capacity(precision.len() + 2);
    mpre.push(1.0);
    mpre.extend_from_slice(precision);
    mpre.push(0.0);
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    let samples: Vec<f64> = (0..101).map(|i| i as f64 / 100.0).collect();
    let values: Vec<f64> = samples.iter().map(|&x| interp(x, &mrec, &mpre)).collect();
    samples
        .windows(2)
        .zip(values.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0)
        .sum()
}

/// NumPy's `interp`: piecewise-linear through (xp, fp), xp non-decreasing, clamped at the ends.
fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    if x < xp[0] {
        return fp[0];
    }
    if x >= xp[xp.len() - 1] {
        return fp[fp.len() - 1];
    }
    // The last segment whose left end is ≤ x, as NumPy's binary search picks it.
    let j = xp.partition_point(|&v| v <= x) - 1;
    let (x0, x1) = (xp[j], xp[j + 1]);
    if x1 == x0 {
        fp[j + 1]
    } else {
        fp[j] + (x - x0) * (fp[j + 1] - fp[j]) / (x1 - x0)
    }
}

/// One image's predictions matched to its labels: its part of [`DetectionStats`], kept
/// apart so that resamples of the images can be scored ([`super::bootstrap`]).
#[derive(Debug, Clone, Default)]
pub struct ImageStats {
    /// (confidence, class, true positive at each threshold) of every prediction.
    predictions: Vec<(f32, usize, [bool; 10])>,
    label_classes: Vec<usize>,
    /// The classes it has labels of, each once.
    labelled_classes: Vec<usize>,
}

impl ImageStats {
    pub fn new(predictions: &[Detection], labels: &[Label]) -> Self {
        let correct = match_predictions(predictions, labels);
        Self {
            predictions: predictions
                .iter()
                .zip(correct)
                .map(|(p, c)| (p.conf, p.class, c))
                .collect(),
            label_classes: labels.iter().map(|l| l.class).collect(),
            labelled_classes: labels
                .iter()
                .map(|l| l.class)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        }
    }
}

/// Everything needed for mAP, accumulated one image at a time.
#[derive(Debug, Default)]
pub struct DetectionStats {
    /// (confidence, class, true positive at each threshold) of every prediction.
    predictions: Vec<(f32, usize, [bool; 10])>,
    label_classes: Vec<usize>,
    /// Per class, the images that have at least one label of it.
    images_per_class: std::collections::BTreeMap<usize, usize>,
    images: usize,
}

impl DetectionStats {
    pub fn add(&mut self, image: &ImageStats) {
        self.predictions.extend_from_slice(&image.predictions);
        self.label_classes.extend_from_slice(&image.label_classes);
        for &class in &image.labelled_classes {
            *self.images_per_class.entry(class).or_default() += 1;
        }
        self.images += 1;
    }

    /// The statistics of `images`, one after another (an image may come more than once).
    pub fn of<'a>(images: impl IntoIterator<Item = &'a ImageStats>) -> Self {
        let mut stats = Self::default();
        for image in images {
            stats.add(image);
        }
        stats
    }

    pub fn report(&self) -> MapReport {
        let mut order: Vec<usize> = (0..self.predictions.len()).collect();
        order.sort_by(|&a, &b| self.predictions[b].0.total_cmp(&self.predictions[a].0));
        let per_class: Vec<ClassAp> = self
            .images_per_class
            .iter()
            .map(|(&class, &images)| {
                let instances = self.label_classes.iter().filter(|&&c| c == class).count();
                let hits: Vec<&[bool; 10]> = order
                    .iter()
                    .map(|&i| &self.predictions[i])
                    .filter(|p| p.1 == class)
                    .map(|p| &p.2)
                    .collect();
                let aps: Vec<f64> = (0..IOU_THRESHOLDS.len())
                    .map(|t| {
                        if hits.is_empty() {
                            return 0.0;
                        }
                        let (mut tp, mut fp) = (0.0, 0.0);
                        let (mut recall, mut precision) = (
                            Vec::with_capacity(hits.len()),
                            Vec::with_capacity(hits.len()),
                        );
                        for hit in &hits {
                            if hit[t] {
                                tp += 1.0
                            } else {
                                fp += 1.0
                            }
                            recall.push(tp / (instances as f64 + 1e-16));
                            precision.push(tp / (tp + fp));
                        }
                        average_precision(&recall, &precision)
                    })
                    .collect();
                ClassAp {
                    class,
                    images,
                    instances,
                    ap50: aps[0],
                    ap50_95: aps.iter().sum::<f64>() / aps.len() as f64,
                }
            })
            .collect();
        let mean = |f: fn(&ClassAp) -> f64| {
            if per_class.is_empty() {
                0.0
            } else {
                per_class.iter().map(f).sum::<f64>() / per_class.len() as f64
            }
        };
        MapReport {
            map50: mean(|c| c.ap50),
            map50_95: mean(|c| c.ap50_95),
            images: self.images,
            instances: self.label_classes.len(),
            per_class,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(xyxy: [f32; 4], conf: f32, class: usize) -> Detection {
        Detection {
            xyxy,
            conf,
            class,
            ..Detection::default()
        }
    }

    #[test]
    fn perfect_predictions_score_what_ultralytics_gives() {
        // The envelope drops to 0 at recall 1, so the trapezoid tops out at 0.995, as in Ultralytics.
        let labels = vec![
            Label {
                xyxy: [0.0, 0.0, 10.0, 10.0],
                class: 0,
            },
            Label {
                xyxy: [20.0, 20.0, 40.0, 30.0],
                class: 1,
            },
        ];
        let predictions = vec![
            det([0.0, 0.0, 10.0, 10.0], 0.9, 0),
            det([20.0, 20.0, 40.0, 30.0], 0.8, 1),
        ];
        let mut stats = DetectionStats::default();
        stats.add(&ImageStats::new(&predictions, &labels));
        let report = stats.report();
        assert!(
            (report.map50 - 0.995).abs() < 1e-12 && (report.map50_95 - 0.995).abs() < 1e-12,
            "{report:?}"
        );
    }

    #[test]
    fn hand_computed_average_precision() {
        // Two labels; predictions by confidence: hit, miss, hit → recall .5 .5 1, precision 1 .5 2/3.
        // mrec [0 .5 .5 1 1], envelope [1 1 2/3 2/3 0]; sampled at 0, .01, ..., 1 (NumPy's interp
        // takes the right-hand value at the repeated .5): 1 on [0, .49], 2/3 on [.5, .99], 0 at 1.
        let expected =
            0.49 + 0.01 * (1.0 + 2.0 / 3.0) / 2.0 + 0.49 * (2.0 / 3.0) + 0.01 * (2.0 / 3.0) / 2.0;
        let labels = vec![
            Label {
                xyxy: [0.0, 0.0, 10.0, 10.0],
                class: 0,
            },
            Label {
                xyxy: [50.0, 50.0, 60.0, 60.0],
                class: 0,
            },
        ];
        let predictions = vec![
            det([0.0, 0.0, 10.0, 10.0], 0.9, 0),
            det([100.0, 100.0, 110.0, 110.0], 0.8, 0),
            det([50.0, 50.0, 60.0, 60.0], 0.7, 0),
        ];
        let mut stats = DetectionStats::default();
        stats.add(&ImageStats::new(&predictions, &labels));
        let report = stats.report();
        assert!(
            (report.map50 - expected).abs() < 1e-12,
            "{} vs {expected}",
            report.map50
        );
        assert!((report.map50_95 - expected).abs() < 1e-12);
    }

    #[test]
    fn loose_boxes_count_only_at_low_thresholds() {
        // IoU 0.62: a true positive at 0.50, 0.55 and 0.60 only.
        let labels = vec![Label {
            xyxy: [0.0, 0.0, 10.0, 10.0],
            class: 0,
        }];
        let predictions = vec![det([0.0, 0.0, 10.0, 6.2], 0.9, 0)];
        let correct = match_predictions(&predictions, &labels);
        assert_eq!(
            correct[0],
            [
                true, true, true, false, false, false, false, false, false, false
            ]
        );
        let mut stats = DetectionStats::default();
        stats.add(&ImageStats::new(&predictions, &labels));
        let report = stats.report();
        assert!((report.map50 - 0.995).abs() < 1e-12);
        assert!(
            (report.map50_95 - 0.3 * 0.995).abs() < 1e-12,
            "{}",
            report.map50_95
        );
    }

    #[test]
    fn a_prediction_matches_one_label_and_wrong_classes_never_match() {
        let labels = vec![
            Label {
                xyxy: [0.0, 0.0, 10.0, 10.0],
                class: 0,
            },
            Label {
                xyxy: [0.0, 0.0, 10.0, 10.0],
                class: 0,
            },
        ];
        let predictions = vec![
            det([0.0, 0.0, 10.0, 10.0], 0.9, 0),
            det([0.0, 0.0, 10.0, 10.0], 0.9, 3),
        ];
        let correct = match_predictions(&predictions, &labels);
        assert!(correct[0][9] && !correct[1][0]);
        let mut stats = DetectionStats::default();
        stats.add(&ImageStats::new(&predictions, &labels));
        // Class 0: one of two labels at precision 1 → 0.5 + the ramp from 1 to 0 over [.5, 1] = 0.75.
        let report = stats.report();
        assert_eq!(report.per_class.len(), 1, "only labelled classes count");
        assert!((report.map50 - 0.75).abs() < 1e-12, "{}", report.map50);
    }
}
