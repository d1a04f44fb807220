//! How far a difference in mAP between two models can be trusted: a paired bootstrap over
//! images. A set of ~120 images holds ~950 boxes, and a difference moves by a point or more
//! from one such set to another; resampling the images (with replacement) and scoring both
//! models on each resample gives the spread of that difference, paired because both
//! models meet the same images.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::metrics::{DetectionStats, ImageStats};

/// Resamples `val` draws by default.
pub const RESAMPLES: usize = 1000;

/// The difference of two models' mAP50-95 on the same images (`second − first`), with the
/// 2.5th and 97.5th percentiles of that difference over the resamples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedDifference {
    pub difference: f64,
    pub low: f64,
    pub high: f64,
    pub resamples: usize,
}

impl PairedDifference {
    /// Whether the 95% interval leaves out no difference at all.
    pub fn includes_zero(&self) -> bool {
        self.low <= 0.0 && 0.0 <= self.high
    }
}

/// `second`'s mAP50-95 minus `first`'s, both scored on the same images (one entry per image,
/// in the same order), and its 95% interval over `resamples` resamples drawn from `seed`.
pub fn paired_difference(
    first: &[ImageStats],
    second: &[ImageStats],
    resamples: usize,
    seed: u64,
) -> PairedDifference {
    assert_eq!(
        first.len(),
        second.len(),
        "both models scored on the same images"
    );
    // mAP50-95 of the images of `stats` at `picked` (an index may come more than once).
    let score = |stats: &[ImageStats], picked: &[usize]| {
        DetectionStats::of(picked.iter().map(|&i| &stats[i]))
            .report()
            .map50_95
    };
    let every: Vec<usize> = (0..first.len()).collect();
    let difference = score(second, &every) - score(first, &every);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut differences: Vec<f64> = (0..resamples)
        .map(|_| {
            let picked: Vec<usize> = (0..first.len())
                .map(|_| rng.random_range(0..first.len()))
                .collect();
            score(second, &picked) - score(first, &picked)
        })
        .collect();
    differences.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        differences
            .get(((differences.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(difference)
    };
    PairedDifference {
        difference,
        low: percentile(0.025),
        high: percentile(0.975),
        resamples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::Label;
    use crate::inference::postprocess::Detection;

    /// An image with one label at `x`, and a prediction on it (`hit`) or beside it.
    fn image(x: f32, hit: bool) -> ImageStats {
        let label = Label {
            xyxy: [x, 0.0, x + 10.0, 10.0],
            class: 0,
        };
        let shift = if hit { 0.0 } else { 50.0 };
        let prediction = Detection {
            xyxy: [x + shift, 0.0, x + shift + 10.0, 10.0],
            conf: 0.9,
            class: 0,
            ..Detection::default()
        };
        ImageStats::new(&[prediction], &[label])
    }

    #[test]
    fn a_model_against_itself_differs_by_nothing_on_any_resample() {
        let images: Vec<ImageStats> = (0..12).map(|i| image(i as f32, i % 3 != 0)).collect();
        let result = paired_difference(&images, &images, 200, 7);
        assert_eq!(
            (result.difference, result.low, result.high),
            (0.0, 0.0, 0.0)
        );
        assert!(result.includes_zero());
    }

    #[test]
    fn a_model_right_on_every_image_is_surely_better_than_one_right_on_half() {
        let half: Vec<ImageStats> = (0..20).map(|i| image(i as f32, i % 2 == 0)).collect();
        let all: Vec<ImageStats> = (0..20).map(|i| image(i as f32, true)).collect();
        let result = paired_difference(&half, &all, 500, 1);
        assert!(result.difference > 0.5, "{result:?}");
        assert!(result.low > 0.3 && result.high <= 1.0, "{result:?}");
        assert!(result.low <= result.difference && result.difference <= result.high);
        assert!(!result.includes_zero());
        // The other way round, the same interval negated.
        let reverse = paired_difference(&all, &half, 500, 1);
        assert!((reverse.difference + result.difference).abs() < 1e-12);
        assert!((reverse.low + result.high).abs() < 1e-12, "{reverse:?}");
    }

    #[test]
    fn models_differing_on_one_image_of_forty_are_not_told_apart() {
        let first: Vec<ImageStats> = (0..40).map(|i| image(i as f32, i % 2 == 0)).collect();
        let mut second = first.clone();
        second[1] = image(1.0, true);
        let result = paired_difference(&first, &second, 1000, 3);
        assert!(result.difference > 0.0, "{result:?}");
        assert!(result.includes_zero(), "{result:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_interval() {
        let first: Vec<ImageStats> = (0..15).map(|i| image(i as f32, i % 3 == 0)).collect();
        let second: Vec<ImageStats> = (0..15).map(|i| image(i as f32, i % 2 == 0)).collect();
        assert_eq!(
            paired_difference(&first, &second, 300, 11),
            paired_difference(&first, &second, 300, 11)
        );
    }
}
