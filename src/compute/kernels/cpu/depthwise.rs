//! Depthwise convolution (one input channel per output) on the CPU, each plane on one of
//! rayon's threads, bias and activation applied while the plane is in cache. At stride 1
//! the plane is copied into a zero-bordered one, so that every tap reads the same flat
//! offset from every output: the outputs are summed in blocks of [`LANES`] held in
//! registers over all taps (YOLO's planes are 10 to 80 wide, and rows that short left a
//! row-by-row loop mostly in its remainders). flex ran these through its grouped
//! convolution, one im2col and gemm per channel.

use std::mem::MaybeUninit;

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::activation::activate_inline;
use super::im2col::valid_columns;
use super::{assume_written, filled_by, flex_tensor, values, vectorised, with_scratch};

/// Outputs summed together in registers: one AVX-512 vector, two AVX2 ones.
const LANES: usize = 16;
use crate::compute::kernels::Activation;

/// One channel of a depthwise convolution: its input plane, its `k · k` taps and its bias.
#[derive(Clone, Copy)]
struct Channel<'a> {
    input: &'a [f32],
    taps: &'a [f32],
    bias: f32,
}

/// One plane's sizes: input `h × w`, kernel `k × k` at `stride`, padding `k / 2`.
#[derive(Debug, Clone)]
struct Plane {
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    out_h: usize,
    out_w: usize,
    /// For each tap column `dx`, the output columns that read inside the input row
    /// ([`valid_columns`]), found once: per row, their divisions cost more than the
    /// multiply-adds of a 10-wide plane.
    spans: Vec<(usize, usize)>,
    /// For each tap `(dy, dx)`, how far past an output its input lies in the padded plane.
    padded_offsets: Vec<usize>,
}

impl Plane {
    /// The zero-bordered copy of an input plane for stride 1: `k / 2` on every side.
    fn padded_width(&self) -> usize {
        self.w + 2 * (self.k / 2)
    }

    fn padded_len(&self) -> usize {
        (self.h + 2 * (self.k / 2)) * self.padded_width()
    }

    /// The padded plane and the zeros after it that the last block reads: it starts up to
    /// `LANES - 1` past the last output and reads `LANES` values at up to `k - 1` columns
    /// past its rows.
    fn padded_region(&self) -> usize {
        self.padded_len() + LANES + self.k
    }

    /// Outputs at stride 1 in the padded plane's layout (rows `padded_width` apart), rounded
    /// up to whole blocks.
    fn flat_len(&self) -> usize {
        (self.out_h * self.padded_width()).next_multiple_of(LANES)
    }

    fn new(h: usize, w: usize, k: usize, stride: usize) -> Self {
        let out = |size: usize| (size + 2 * (k / 2) - k) / stride + 1;
        let out_w = out(w);
        let padded_width = w + 2 * (k / 2);
        Self {
            h,
            w,
            k,
            stride,
            out_h: out(h),
            out_w,
            spans: (0..k)
                .map(|dx| valid_columns(w, k, stride, out_w, dx))
                .collect(),
            padded_offsets: (0..k)
                .flat_map(|dy| (0..k).map(move |dx| dy * padded_width + dx))
                .collect(),
        }
    }
}

/// `activation(depthwise_conv2d(x, weight) + bias)`, padding `k / 2`: `x (B, C, H, W)`,
/// `weight (C, 1, k, k)`, `bias (C)`, f32 tensors on the CPU backend (see [`super::on_flex`]).
pub fn depthwise_conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    activation: Activation,
) -> Tensor<4> {
    let device = x.device();
    let [batch, channels, h, w] = x.dims();
    let k = weight.dims()[2];
    let plane = Plane::new(h, w, k, stride);
    let (x, weight, bias) = (flex_tensor(x), flex_tensor(weight), flex_tensor(bias));
    let (x, weight, bias) = (values(&x), values(&weight), values(&bias));
    let out_plane = plane.out_h * plane.out_w;
    // SAFETY: `convolve_padded` and `convolve_plane` each write their plane in full.
    let out = unsafe {
        filled_by(batch * channels * out_plane, |out| {
            out.par_chunks_mut(out_plane)
                .enumerate()
                .for_each(|(index, out)| {
                    let c = index % channels;
                    let channel = Channel {
                        input: &x[index * h * w..(index + 1) * h * w],
                        taps: &weight[c * k * k..(c + 1) * k * k],
                        bias: bias[c],
                    };
                    if stride == 1 {
                        let len = plane.padded_region() + plane.flat_len();
                        with_scratch(len, |scratch| {
                            vectorised(
                                #[inline(always)]
                                || convolve_padded(&plane, channel, activation, out, scratch),
                            )
                        });
                    } else {
                        vectorised(
                            #[inline(always)]
                            || convolve_plane(&plane, channel, activation, out),
                        );
                    }
                });
        })
    };
    Tensor::from_data(
        TensorData::new(out, [batch, channels, plane.out_h, plane.out_w]),
        &device,
    )
}

/// One output plane at stride 1: the input copied into the middle of a zero-bordered plane,
/// each block of [`LANES`] flat outputs summed over every tap in registers (the bias to
/// start), then the valid columns of each row activated into `out`. Writes all of `out`.
#[inline(always)]
fn convolve_padded(
    g: &Plane,
    channel: Channel,
    activation: Activation,
    out: &mut [MaybeUninit<f32>],
    scratch: &mut [f32],
) {
    let Channel { input, taps, bias } = channel;
    let (pad, width) = (g.k / 2, g.padded_width());
    let (padded, flat) = scratch.split_at_mut(g.padded_region());
    padded.fill(0.0);
    for (row, in_row) in input.chunks_exact(g.w).enumerate() {
        let start = (row + pad) * width + pad;
        padded[start..start + g.w].copy_from_slice(in_row);
    }
    for (block, sums) in flat.chunks_exact_mut(LANES).enumerate() {
        let base = block * LANES;
        let mut acc = [bias; LANES];
        for (&offset, &tap) in g.padded_offsets.iter().zip(taps) {
            let window = &padded[base + offset..base + offset + LANES];
            for (a, &v) in acc.iter_mut().zip(window) {
                *a += tap * v;
            }
        }
        sums.copy_from_slice(&acc);
    }
    for (out_row, sums) in out.chunks_exact_mut(g.out_w).zip(flat.chunks(width)) {
        for (o, &v) in out_row.iter_mut().zip(sums) {
            o.write(v);
        }
    }
    // SAFETY: every row was just written. The plane at once: rows of 10 would leave the
    // activation to its scalar remainder loop.
    activate_inline(unsafe { assume_written(out) }, activation);
}

/// One output plane at any stride: every row set to the bias, each tap's products added
/// along x, then the activation. Writes all of `out`.
#[inline(always)]
fn convolve_plane(
    g: &Plane,
    channel: Channel,
    activation: Activation,
    out: &mut [MaybeUninit<f32>],
) {
    let Channel { input, taps, bias } = channel;
    out.iter_mut().for_each(|v| {
        v.write(bias);
    });
    // SAFETY: every value was just set to the bias.
    let out = unsafe { assume_written(out) };
    let pad = g.k / 2;
    for (oy, row) in out.chunks_exact_mut(g.out_w).enumerate() {
        for dy in 0..g.k {
            let iy = oy * g.stride + dy;
            if iy < pad || iy - pad >= g.h {
                continue;
            }
            let in_row = &input[(iy - pad) * g.w..(iy - pad + 1) * g.w];
            for (dx, &(first, end)) in g.spans.iter().enumerate() {
                if first >= end {
                    continue;
                }
                let tap = taps[dy * g.k + dx];
                let start = first * g.stride + dx - pad;
                let dst = &mut row[first..end];
                if g.stride == 1 {
                    for (o, &v) in dst.iter_mut().zip(&in_row[start..start + end - first]) {
                        *o += tap * v;
                    }
                } else {
                    for (o, &v) in dst.iter_mut().zip(in_row[start..].iter().step_by(g.stride)) {
                        *o += tap * v;
                    }
                }
            }
        }
    }
    activate_inline(out, activation);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::device::ComputeDevice;
    use crate::compute::kernels::burn_depthwise_conv2d;
    use crate::compute::random::seeded_random;
    use burn::tensor::Distribution;

    /// Against burn's grouped `conv2d` on the CPU backend, for each shape
    /// `(batch, channels, h, w, k, stride)` and activation. Each case draws its tensors from
    /// seeds derived from its index, printed on failure.
    #[test]
    fn depthwise_conv2d_matches_burns_grouped_conv2d() {
        let device = ComputeDevice::cpu().device;
        let uniform = Distribution::Uniform(-1.0, 1.0);
        let mut seed = 0u64;
        for &(batch, channels, h, w, k, stride) in &[
            (1, 16, 20, 20, 3, 1), // Detect's DWConv
            (2, 8, 10, 10, 5, 1),  // a wider focal level, a batch
            (1, 4, 7, 9, 3, 2),    // stride 2 at odd sizes
            (1, 3, 2, 3, 5, 1),    // a plane smaller than the kernel
            (1, 5, 11, 6, 7, 1),   // FocalModulation's larger levels
        ] {
            for activation in [Activation::Identity, Activation::Silu, Activation::Gelu] {
                seed += 1;
                let x = seeded_random([batch, channels, h, w], uniform, 3 * seed, &device);
                let weight = seeded_random([channels, 1, k, k], uniform, 3 * seed + 1, &device);
                let bias = seeded_random([channels], uniform, 3 * seed + 2, &device);
                let expected = burn_depthwise_conv2d(
                    x.clone(),
                    weight.clone(),
                    bias.clone(),
                    stride,
                    activation,
                );
                let ours = depthwise_conv2d(x, weight, bias, stride, activation);
                assert_eq!(ours.dims(), expected.dims(), "seed {seed}");
                let diff: f32 = (ours - expected).abs().max().into_scalar();
                assert!(
                    diff <= 1e-5,
                    "seed {seed}: {batch}×{channels}×{h}×{w}, k {k}, stride {stride}, {activation:?}: max |Δ| {diff}"
                );
            }
        }
    }
}
