//! Random tensors from a seed of their own, for tests.
//!
//! burn's `Tensor::random` draws from one generator per backend, shared by every thread of
//! the process: under parallel tests a test's values depend on what the others drew first
//! (and training reseeds that generator), so a failing case cannot be drawn again.
//! [`seeded_random`] draws from its own generator, seeded by the caller: the same seed
//! gives the same values on every run, whatever else runs beside it.

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A float tensor of `shape` on `device`, its values drawn from `distribution` by a
/// `ChaCha8Rng` seeded with `seed`, in row-major order.
///
/// `Default` is uniform on `[0, 1)`, `Uniform(low, high)` uniform on `[low, high)`,
/// `Normal(mean, std)` normal (Box–Muller), `Bernoulli(p)` 1 with probability `p`, else 0.
///
/// # Panics
///
/// Where `Uniform`'s range is empty or not finite, or `Bernoulli`'s `p` is outside
/// `[0, 1]`, as `Tensor::random` does.
pub fn seeded_random<const D: usize>(
    shape: [usize; D],
    distribution: Distribution,
    seed: u64,
    device: &Device,
) -> Tensor<D> {
    let count = shape.iter().product::<usize>();
    let values = seeded_values(count, distribution, seed);
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// `count` values drawn as [`seeded_random`] draws them.
fn seeded_values(count: usize, distribution: Distribution, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    match distribution {
        Distribution::Default => (0..count).map(|_| rng.random::<f32>()).collect(),
        Distribution::Uniform(low, high) => {
            let (low, high) = (low as f32, high as f32);
            (0..count).map(|_| rng.random_range(low..high)).collect()
        }
        Distribution::Normal(mean, std) => (0..count)
            .map(|_| (mean + std * standard_normal(&mut rng)) as f32)
            .collect(),
        Distribution::Bernoulli(p) => (0..count)
            .map(|_| if rng.random_bool(p) { 1.0 } else { 0.0 })
            .collect(),
    }
}

/// One draw from the standard normal distribution (Box–Muller, the cosine half).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    // `random::<f64>()` is in [0, 1): `1 - u` is in (0, 1], so its logarithm is finite.
    let radius = (-2.0 * (1.0 - rng.random::<f64>()).ln()).sqrt();
    let angle = std::f64::consts::TAU * rng.random::<f64>();
    radius * angle.cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::device::ComputeDevice;

    fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
        tensor.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn same_seed_same_values_and_shape() {
        let device = ComputeDevice::cpu().device;
        let normal = Distribution::Normal(0.0, 1.0);
        let a = seeded_random([2, 3, 4], normal, 7, &device);
        let b = seeded_random([2, 3, 4], normal, 7, &device);
        let c = seeded_random([2, 3, 4], normal, 8, &device);
        assert_eq!(a.dims(), [2, 3, 4]);
        let (a, b, c) = (values(a), values(b), values(c));
        assert_eq!(a.len(), 24);
        assert_eq!(a, b, "seed 7 drew different values twice");
        assert_ne!(a, c, "seeds 7 and 8 drew the same values");
    }

    #[test]
    fn values_follow_the_distribution() {
        let device = ComputeDevice::cpu().device;
        let n = 20_000;
        let seed = 11;

        let uniform = Distribution::Uniform(-2.0, 3.0);
        let uniform = values(seeded_random([n], uniform, seed, &device));
        assert!(
            uniform.iter().all(|&v| (-2.0f32..3.0).contains(&v)),
            "seed {seed}: a uniform value outside [-2, 3)"
        );
        let mean = uniform.iter().sum::<f32>() / n as f32;
        assert!(
            (mean - 0.5).abs() < 0.05,
            "seed {seed}: uniform mean {mean}"
        );

        let unit = values(seeded_random([n], Distribution::Default, seed, &device));
        assert!(
            unit.iter().all(|&v| (0.0f32..1.0).contains(&v)),
            "seed {seed}: a default value outside [0, 1)"
        );

        let normal = values(seeded_random(
            [n],
            Distribution::Normal(1.0, 2.0),
            seed,
            &device,
        ));
        assert!(
            normal.iter().all(|v| v.is_finite()),
            "seed {seed}: a normal value not finite"
        );
        let mean = normal.iter().sum::<f32>() / n as f32;
        let var = normal.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n as f32;
        assert!((mean - 1.0).abs() < 0.07, "seed {seed}: normal mean {mean}");
        let deviation = var.sqrt();
        assert!(
            (deviation - 2.0).abs() < 0.07,
            "seed {seed}: normal deviation {deviation}"
        );

        let coin = values(seeded_random(
            [n],
            Distribution::Bernoulli(0.25),
            seed,
            &device,
        ));
        assert!(
            coin.iter().all(|&v| v == 0.0 || v == 1.0),
            "seed {seed}: a Bernoulli value not 0 or 1"
        );
        let p = coin.iter().sum::<f32>() / n as f32;
        assert!((p - 0.25).abs() < 0.02, "seed {seed}: Bernoulli mean {p}");
    }
}
