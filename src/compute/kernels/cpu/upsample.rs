//! Nearest-neighbour ×2 upsampling on the CPU. flex returns a strided view, so the concat
//! that follows gathered it element by element: 6 ms of a 640 pass for 1.6 M values.

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::{flex_tensor, values};

/// `x (B, C, H, W)` → `(B, C, 2H, 2W)`, each value repeated in a 2×2 block.
pub fn upsample_nearest2x(x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let [batch, channels, h, w] = x.dims();
    let x = flex_tensor(x);
    let input = values(&x);
    let mut out = vec![0.0f32; batch * channels * 4 * h * w];
    out.par_chunks_mut(4 * h * w)
        .zip(input.par_chunks(h * w))
        .for_each(|(plane_out, plane_in)| {
            for (rows_out, row_in) in plane_out
                .chunks_exact_mut(4 * w)
                .zip(plane_in.chunks_exact(w))
            {
                let (upper, lower) = rows_out.split_at_mut(2 * w);
                for (pair, &v) in upper.chunks_exact_mut(2).zip(row_in) {
                    pair.fill(v);
                }
                lower.copy_from_slice(upper);
            }
        });
    Tensor::from_data(
        TensorData::new(out, [batch, channels, 2 * h, 2 * w]),
        &device,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::device::ComputeDevice;
    use crate::compute::random::seeded_random;
    use burn::tensor::Distribution;
    use burn::tensor::module::interpolate;
    use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

    #[test]
    fn matches_burns_nearest_interpolation() {
        let device = ComputeDevice::cpu().device;
        let seed = 0;
        let x = seeded_random([2, 3, 5, 7], Distribution::Default, seed, &device);
        let expected = interpolate(
            x.clone(),
            InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([10, 14]),
        );
        let ours = upsample_nearest2x(x);
        assert_eq!(ours.into_data(), expected.into_data(), "seed {seed}");
    }
}
