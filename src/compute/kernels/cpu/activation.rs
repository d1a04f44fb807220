//! SiLU and GELU vectorised (the widest SIMD the CPU has, see [`super::vectorised`]) and
//! split over rayon's threads. flex evaluates both one element at a time on one thread
//! (`expf`, `erff`).

use burn::tensor::Tensor;
use rayon::prelude::*;

use super::vectorised;
use crate::compute::kernels::Activation;

/// Elements per rayon task: large enough that scheduling costs nothing next to the work.
const CHUNK: usize = 1 << 14;

/// `activation(x)` on a CPU tensor, in place when `x` holds its buffer alone.
pub fn activate_in_place<const D: usize>(x: Tensor<D>, activation: Activation) -> Tensor<D> {
    if activation == Activation::Identity {
        return x;
    }
    let device = x.device();
    let mut data = x.into_data();
    let values = data
        .as_mut_slice::<f32>()
        .expect("on_flex checked the dtype is f32");
    values
        .par_chunks_mut(CHUNK)
        .for_each(|chunk| activate(chunk, activation));
    Tensor::from_data(data, &device)
}

/// `activation` on every value, in place.
pub(super) fn activate(values: &mut [f32], activation: Activation) {
    vectorised(
        #[inline(always)]
        || activate_inline(values, activation),
    );
}

/// [`activate`] for callers already inside [`vectorised`].
#[inline(always)]
pub(super) fn activate_inline(values: &mut [f32], activation: Activation) {
    match activation {
        Activation::Identity => {}
        Activation::Silu => values.iter_mut().for_each(|v| *v = silu(*v)),
        Activation::Gelu => values.iter_mut().for_each(|v| *v = gelu(*v)),
    }
}

/// `activation(value + bias)` on every value, in one pass, for callers already inside
/// [`vectorised`].
#[inline(always)]
pub(super) fn add_and_activate(values: &mut [f32], bias: f32, activation: Activation) {
    match activation {
        Activation::Identity => values.iter_mut().for_each(|v| *v += bias),
        Activation::Silu => values.iter_mut().for_each(|v| *v = silu(*v + bias)),
        Activation::Gelu => values.iter_mut().for_each(|v| *v = gelu(*v + bias)),
    }
}

/// `x / (1 + e^-x)`, within 2 ulp of the exact value.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `1 / (1 + e^-x)`, within 2 ulp of the exact value.
#[inline(always)]
pub(super) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// The exact GELU, `x · Φ(x) = x / 2 · erfc(-x / √2)`, within a few ulp: erfc by Numerical
/// Recipes' Chebyshev fit (`erfcc`, fractional error below 1.2e-7 everywhere), which keeps
/// GELU's negative tail relatively accurate where `1 + erf` would cancel. `e^(-z²)`, with
/// `z² = x² / 2`, is taken as `e^(-h² / 2) · e^(-(|x| - h)(|x| + h) / 2)` with `h` holding
/// `|x|`'s top 12 bits, so `h²` is exact: `z` or `z²` rounded would cost up to 160 ulp in
/// the tail.
#[inline(always)]
pub(super) fn gelu(x: f32) -> f32 {
    let magnitude = x.abs();
    let a = magnitude * std::f32::consts::FRAC_1_SQRT_2;
    let high = f32::from_bits(magnitude.to_bits() & 0xffff_f000);
    let t = 1.0 / (1.0 + 0.5 * a);
    let poly = t
        * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let rest = (high - magnitude) * (high + magnitude) * 0.5 - 1.265_512_2 + poly;
    let tail = t * exp(-0.5 * high * high) * exp(rest);
    // erfc(-x / √2): the tail itself for x ≤ 0.
    let erfc = if x <= 0.0 { tail } else { 2.0 - tail };
    0.5 * x * erfc
}

/// `e^x` by Cephes' `expf` (range reduction by ln 2, degree-6 polynomial), written without
/// branches or table lookups so that the loops above vectorise. Saturates to `e^±87.3`
/// (which SiLU's division turns into the exact limits 0 and `x`); NaN stays NaN.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that `n * LN2_HI` is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 · 2^23 rounds to an integer in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 87.3);
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2^n from n's bits: n + 127 lands in the low bits of n + 127 + 2^23.
    let two_n = f32::from_bits((n + (127.0 + 8_388_608.0)).to_bits() << 23);
    e_r * two_n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_gelu(x: f32) -> f64 {
        let x = x as f64;
        0.5 * x * libm::erfc(-x / std::f64::consts::SQRT_2)
    }

    #[test]
    fn gelu_matches_the_exact_function_across_its_range() {
        // Worst error in ulp of the exact value, over [from, to) thousandths.
        let worst = |from: i32, to: i32| {
            let mut worst = (0.0f64, 0.0f32);
            for i in from..to {
                let x = i as f32 * 1e-3;
                let (got, want) = (gelu(x) as f64, exact_gelu(x));
                let ulp = want.abs().max(f32::MIN_POSITIVE as f64) * f32::EPSILON as f64;
                let error = (got - want).abs() / ulp;
                if error > worst.0 {
                    worst = (error, x);
                }
            }
            worst
        };
        // Below -13 GELU is under 1e-38, in f32's subnormals.
        let worst = worst(-13_000, 20_000);
        eprintln!("worst {worst:?}");
        assert!(worst.0 <= 8.0, "worst error {} ulp at {}", worst.0, worst.1);
        assert_eq!(gelu(0.0), 0.0);
        assert_eq!(gelu(1000.0), 1000.0);
        assert!(gelu(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_agrees_with_burns() {
        let device = crate::compute::device::ComputeDevice::cpu().device;
        let seed = 0;
        let x = crate::compute::random::seeded_random(
            [4096],
            burn::tensor::Distribution::Normal(0.0, 3.0),
            seed,
            &device,
        );
        let expected = burn::tensor::activation::gelu(x.clone());
        let ours = activate_in_place(x, Activation::Gelu);
        let diff: f32 = (ours - expected).abs().max().into_scalar();
        assert!(diff <= 1e-5, "seed {seed}: max |Δ| {diff}");
    }

    fn exact_silu(x: f32) -> f32 {
        (x as f64 / (1.0 + (-(x as f64)).exp())) as f32
    }

    #[test]
    fn silu_matches_the_exact_function_across_its_range() {
        // Below -80 SiLU is under 1e-33 in magnitude (see the saturation test).
        let mut worst = (0.0f64, 0.0f32);
        for i in -80_000..=200_000 {
            let x = i as f32 * 1e-3;
            let (got, want) = (silu(x), exact_silu(x));
            let ulp = want.abs().max(f32::MIN_POSITIVE) as f64 * f32::EPSILON as f64;
            let error = (got - want).abs() as f64 / ulp;
            if error > worst.0 {
                worst = (error, x);
            }
        }
        assert!(worst.0 <= 2.0, "worst error {} ulp at {}", worst.0, worst.1);
    }

    #[test]
    fn silu_saturates_and_keeps_nan() {
        assert_eq!(silu(1000.0), 1000.0);
        assert_eq!(silu(f32::INFINITY), f32::INFINITY);
        for x in [-87.0, -100.0, -1000.0] {
            assert!(
                silu(x) <= 0.0 && silu(x) > -1e-33,
                "silu({x}) = {}",
                silu(x)
            );
        }
        assert!(silu(f32::NAN).is_nan());
        assert_eq!(silu(0.0), 0.0);
    }

    #[test]
    fn vectorised_path_agrees_with_the_scalar_function() {
        let mut values: Vec<f32> = (0..10_007).map(|i| (i as f32 - 5000.0) * 0.01).collect();
        let mut gelu_values = values.clone();
        let want: Vec<f32> = values.iter().map(|&x| silu(x)).collect();
        activate(&mut values, Activation::Silu);
        assert_eq!(values, want);
        let want: Vec<f32> = gelu_values.iter().map(|&x| gelu(x)).collect();
        activate(&mut gelu_values, Activation::Gelu);
        assert_eq!(gelu_values, want);
    }
}
