//! Oriented boxes (`xywhr`: centre, size, rotation in radians) as Ultralytics' OBB predictor
//! treats them: overlap as ProbIoU (each box a Gaussian), NMS that drops a box when any
//! more confident box overlaps it (`fast_nms`), the angle regularised to [0, π/2).

use std::f32::consts::{FRAC_PI_2, PI};

/// A box's Gaussian covariance terms (a, b, c), as Ultralytics' `_get_covariance_matrix`.
fn covariance(b: &[f32; 5]) -> (f32, f32, f32) {
    let (a, bb) = (b[2].powi(2) / 12.0, b[3].powi(2) / 12.0);
    let (cos, sin) = (b[4].cos(), b[4].sin());
    let (cos2, sin2) = (cos.powi(2), sin.powi(2));
    (
        a * cos2 + bb * sin2,
        a * sin2 + bb * cos2,
        (a - bb) * cos * sin,
    )
}

/// ProbIoU of two oriented boxes (Ultralytics' `batch_probiou`, eps 1e-7): 1 minus the
/// Hellinger distance of their Gaussians.
pub fn probiou(p: &[f32; 5], q: &[f32; 5]) -> f32 {
    gaussian_probiou(&Gaussian::of(p), &Gaussian::of(q))
}

/// An oriented box as a Gaussian: its centre and covariance terms, worked out once per box
/// rather than once per pair.
struct Gaussian {
    x: f32,
    y: f32,
    covariance: (f32, f32, f32),
}

impl Gaussian {
    fn of(b: &[f32; 5]) -> Self {
        Self {
            x: b[0],
            y: b[1],
            covariance: covariance(b),
        }
    }
}

fn gaussian_probiou(p: &Gaussian, q: &Gaussian) -> f32 {
    const EPS: f32 = 1e-7;
    let (a1, b1, c1) = p.covariance;
    let (a2, b2, c2) = q.covariance;
    let (dx, dy) = (p.x - q.x, p.y - q.y);
    let denominator = (a1 + a2) * (b1 + b2) - (c1 + c2).powi(2) + EPS;
    let t1 = ((a1 + a2) * dy.powi(2) + (b1 + b2) * dx.powi(2)) / denominator * 0.25;
    let t2 = ((c1 + c2) * (-dx) * dy) / denominator * 0.5;
    let t3 = (((a1 + a2) * (b1 + b2) - (c1 + c2).powi(2))
        / (4.0 * ((a1 * b1 - c1.powi(2)).max(0.0) * (a2 * b2 - c2.powi(2)).max(0.0)).sqrt() + EPS)
        + EPS)
        .ln()
        * 0.5;
    let bhattacharyya = (t1 + t2 + t3).clamp(EPS, 100.0);
    let hellinger = (1.0 - (-bhattacharyya).exp() + EPS).sqrt();
    1.0 - hellinger
}

/// The indices of `boxes` (sorted most confident first) that NMS keeps: those no earlier
/// box overlaps at ProbIoU `iou` or more, whether that box was kept or not (Fast-NMS, as
/// Ultralytics runs it for oriented boxes).
pub fn fast_nms(boxes: &[[f32; 5]], iou: f32) -> Vec<usize> {
    let gaussians: Vec<Gaussian> = boxes.iter().map(Gaussian::of).collect();
    // ProbIoU ≥ iou needs a Bhattacharyya distance of at most -ln(1 - (1 - iou)²), and that
    // distance is at least a quarter of |d|² over the summed covariances' trace: boxes
    // whose centres lie farther apart cannot overlap enough, and skip the logarithms.
    let most = -(1.0 - (1.0 - f64::from(iou)).powi(2)).ln();
    let far = |p: &Gaussian, q: &Gaussian| {
        let (dx, dy) = (f64::from(p.x - q.x), f64::from(p.y - q.y));
        let trace = f64::from(p.covariance.0 + p.covariance.1 + q.covariance.0 + q.covariance.1);
        0.25 * (dx * dx + dy * dy) > most * 1.001 * trace
    };
    (0..boxes.len())
        .filter(|&i| {
            (0..i).all(|j| {
                let (p, q) = (&gaussians[j], &gaussians[i]);
                far(p, q) || gaussian_probiou(p, q) < iou
            })
        })
        .collect()
}

/// `xywhr` with its angle in [0, π/2), width and height swapped where the angle was in
/// [π/2, π) (Ultralytics' `regularize_rboxes`).
pub fn regularize(b: [f32; 5]) -> [f32; 5] {
    let swap = b[4].rem_euclid(PI) >= FRAC_PI_2;
    let (w, h) = if swap { (b[3], b[2]) } else { (b[2], b[3]) };
    [b[0], b[1], w, h, b[4].rem_euclid(FRAC_PI_2)]
}

/// The four corners of `xywhr` (Ultralytics' `xywhr2xyxyxyxy` order).
pub fn corners(b: &[f32; 5]) -> [[f32; 2]; 4] {
    let (cos, sin) = (b[4].cos(), b[4].sin());
    let v1 = [b[2] / 2.0 * cos, b[2] / 2.0 * sin];
    let v2 = [-b[3] / 2.0 * sin, b[3] / 2.0 * cos];
    let at = |s1: f32, s2: f32| {
        [
            b[0] + s1 * v1[0] + s2 * v2[0],
            b[1] + s1 * v1[1] + s2 * v2[1],
        ]
    };
    [at(1.0, 1.0), at(1.0, -1.0), at(-1.0, -1.0), at(-1.0, 1.0)]
}

/// The axis-aligned box around the corners.
pub fn bounding_box(corners: &[[f32; 2]; 4]) -> [f32; 4] {
    let xs = corners.map(|c| c[0]);
    let ys = corners.map(|c| c[1]);
    let min = |v: [f32; 4]| v.into_iter().fold(f32::INFINITY, f32::min);
    let max = |v: [f32; 4]| v.into_iter().fold(f32::NEG_INFINITY, f32::max);
    [min(xs), min(ys), max(xs), max(ys)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probiou_is_one_for_a_box_and_itself_and_falls_with_distance() {
        let a = [50.0, 50.0, 40.0, 20.0, 0.3];
        assert!((probiou(&a, &a) - 1.0).abs() < 1e-3);
        let near = [52.0, 50.0, 40.0, 20.0, 0.3];
        let far = [150.0, 50.0, 40.0, 20.0, 0.3];
        assert!(probiou(&a, &near) > 0.8 && probiou(&a, &far) < 0.01);
        // A box and the same box turned by a quarter turn with its sides swapped are one.
        let turned = [50.0, 50.0, 20.0, 40.0, 0.3 + FRAC_PI_2];
        assert!((probiou(&a, &turned) - 1.0).abs() < 1e-3);
    }

    #[test]
    fn fast_nms_drops_a_box_overlapped_by_a_suppressed_one_too() {
        // 1 overlaps 0; 2 overlaps 1 but not 0: Fast-NMS drops 2 as well.
        let boxes = [
            [50.0, 50.0, 40.0, 20.0, 0.0],
            [60.0, 50.0, 40.0, 20.0, 0.0],
            [70.0, 50.0, 40.0, 20.0, 0.0],
        ];
        // ProbIoU 0.70 for boxes 10 apart, 0.44 for 20 apart.
        assert!(probiou(&boxes[0], &boxes[2]) < 0.5 && probiou(&boxes[1], &boxes[2]) > 0.5);
        assert_eq!(fast_nms(&boxes, 0.5), vec![0]);
        assert_eq!(fast_nms(&boxes, 0.8), vec![0, 1, 2]);
    }

    #[test]
    fn boxes_skipped_as_far_apart_never_reach_the_threshold() {
        // Pairs along a line, at thresholds from loose to strict: the distance bound never
        // skips a pair whose ProbIoU reaches the threshold.
        for iou in [0.05, 0.3, 0.5, 0.7, 0.95] {
            for step in 0..200 {
                let d = step as f32 * 0.5;
                let boxes = [
                    [50.0, 50.0, 40.0, 12.0, 0.4],
                    [50.0 + d, 50.0 + d / 3.0, 18.0, 30.0, 1.1],
                ];
                let overlapping = probiou(&boxes[0], &boxes[1]) >= iou;
                assert_eq!(
                    fast_nms(&boxes, iou).len() == 1,
                    overlapping,
                    "iou {iou}, d {d}"
                );
            }
        }
    }

    #[test]
    fn angles_are_regularised_into_the_first_quarter_turn() {
        assert_eq!(
            regularize([1.0, 2.0, 30.0, 10.0, 0.5]),
            [1.0, 2.0, 30.0, 10.0, 0.5]
        );
        let turned = regularize([1.0, 2.0, 30.0, 10.0, 0.5 + FRAC_PI_2]);
        assert_eq!(turned[..4], [1.0, 2.0, 10.0, 30.0]);
        assert!((turned[4] - 0.5).abs() < 1e-6);
        let negative = regularize([1.0, 2.0, 30.0, 10.0, -0.25]);
        assert_eq!(negative[..4], [1.0, 2.0, 10.0, 30.0]);
        assert!((negative[4] - (FRAC_PI_2 - 0.25)).abs() < 1e-6);
    }

    #[test]
    fn corners_of_an_unrotated_box_are_its_corners() {
        let c = corners(&[10.0, 20.0, 8.0, 4.0, 0.0]);
        assert_eq!(c, [[14.0, 22.0], [14.0, 18.0], [6.0, 18.0], [6.0, 22.0]]);
        assert_eq!(bounding_box(&c), [6.0, 18.0, 14.0, 22.0]);
    }
}
