//! Softmax over the last axis, for attention's `(B, heads, N, N)` scores: vectorised and
//! split over rayon's threads by rows. flex evaluates `exp` one element at a time on one
//! thread, which made the softmax most of C2PSA's time (and of YOLO26's attention C3k2).

use burn::tensor::Tensor;
use rayon::prelude::*;

use super::activation::exp;
use super::vectorised;

/// Rows per rayon task: at 640, C2PSA's 400-wide rows make tasks of about 26k values.
const ROWS_PER_TASK: usize = 64;

/// `softmax(x · scale)` along the last axis of a CPU tensor.
pub fn softmax_last_axis<const D: usize>(x: Tensor<D>, scale: f32) -> Tensor<D> {
    let device = x.device();
    let width = x.dims()[D - 1];
    let mut data = x.into_data();
    let values = data
        .as_mut_slice::<f32>()
        .expect("on_flex checked the dtype is f32");
    values
        .par_chunks_mut(width * ROWS_PER_TASK)
        .for_each(|rows| {
            vectorised(
                #[inline(always)]
                || {
                    rows.chunks_exact_mut(width)
                        .for_each(|row| softmax_row(row, scale))
                },
            )
        });
    Tensor::from_data(data, &device)
}

/// One row, in place: the maximum subtracted before `exp`, as burn's softmax does.
#[inline(always)]
fn softmax_row(row: &mut [f32], scale: f32) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * scale));
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = exp(*v * scale - max);
        sum += *v;
    }
    let inverse = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inverse);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::device::ComputeDevice;
    use crate::compute::random::seeded_random;
    use burn::tensor::Distribution;
    use burn::tensor::activation::softmax;

    #[test]
    fn matches_burns_softmax() {
        let device = ComputeDevice::cpu().device;
        for (seed, shape) in [(0, [1, 2, 400, 400]), (1, [2, 3, 7, 13]), (2, [1, 1, 1, 1])] {
            let x = seeded_random(shape, Distribution::Uniform(-30.0, 30.0), seed, &device);
            let ours = softmax_last_axis(x.clone(), 0.25);
            let burn = softmax(x.mul_scalar(0.25), 3);
            let (ours, burn) = (
                ours.into_data().try_into_vec::<f32>().unwrap(),
                burn.into_data().try_into_vec::<f32>().unwrap(),
            );
            let worst = ours
                .iter()
                .zip(&burn)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst <= 1e-6,
                "seed {seed}, shape {shape:?}: max |Δ| {worst}"
            );
        }
    }
}
