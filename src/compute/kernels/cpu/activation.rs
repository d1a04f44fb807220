//! SiLU vectorised (AVX2 where the CPU has it) and split over rayon's threads.

use burn::tensor::Tensor;
use rayon::prelude::*;

/// Elements per rayon task: large enough that scheduling costs nothing next to the work.
const CHUNK: usize = 1 << 14;

/// `x * sigmoid(x)` on a CPU tensor, in place when `x` holds its buffer alone.
pub fn silu_in_place<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    let mut data = x.into_data();
    let values = data
        .as_mut_slice::<f32>()
        .expect("on_flex checked the dtype is f32");
    values.par_chunks_mut(CHUNK).for_each(silu_slice);
    Tensor::from_data(data, &device)
}

/// SiLU on every value, in place.
pub(super) fn silu_slice(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been found to support AVX2.
        unsafe { silu_slice_avx2(values) };
        return;
    }
    silu_slice_portable(values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn silu_slice_avx2(values: &mut [f32]) {
    silu_slice_portable(values);
}

#[inline(always)]
fn silu_slice_portable(values: &mut [f32]) {
    for v in values {
        *v = silu(*v);
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
        let want: Vec<f32> = values.iter().map(|&x| silu(x)).collect();
        silu_slice(&mut values);
        assert_eq!(values, want);
    }
}
