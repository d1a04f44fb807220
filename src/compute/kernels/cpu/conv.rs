//! 2-D convolution with one group on the CPU: what a convolution is (its [`Geometry`], its
//! [`Input`] parts), and which kernel runs it. Where the CPU has AVX2 and FMA: Winograd
//! ([`winograd`]) for most 3×3 stride-1 convolutions, [`direct`]'s micro-kernel for 1×1
//! and on small planes; else, and for the large planes' other kernels, im2col and `gemm`
//! in bands of output rows ([`super::im2col_gemm`]).

use burn::tensor::{Tensor, TensorData};

use super::im2col_gemm;
use super::packed::PackCache;
#[cfg(target_arch = "x86_64")]
use super::{direct, packed::PackedWeights, winograd};
use super::{flex_tensor, values};
use crate::compute::kernels::Activation;

/// Output planes up to this size (20×20) run on [`direct`] where the CPU has it; im2col
/// convolves them whole, the gemm split over threads (in bands they would be a few rows
/// each, and every band repacks all the weights).
pub(super) const SMALL_PLANE: usize = 400;

/// The sizes of one convolution: `x (B, cin, h, w)`, `weight (cout, cin, k, k)`, stride,
/// padding `k / 2`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    pub(super) cin: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) cout: usize,
    pub(super) k: usize,
    pub(super) stride: usize,
    pub(super) out_h: usize,
    pub(super) out_w: usize,
}

impl Geometry {
    /// Weights per output channel: one per input channel and kernel tap.
    pub(super) fn taps(&self) -> usize {
        self.cin * self.k * self.k
    }
}

/// `activation(conv2d(cat(parts, 1), weight) + bias)` with padding `k / 2` and one group,
/// for f32 tensors on the CPU backend (see [`super::on_flex`]). The concatenation is not
/// written out when the convolution is 1×1 at stride 1 (every concatenation in YOLO11 feeds
/// one): each part is multiplied by its columns of the weights and the products summed in
/// the output.
pub fn conv2d(parts: Vec<Tensor<4>>, layer: ConvLayer) -> Tensor<4> {
    conv2d_by(None, parts, layer)
}

/// A convolution layer as the CPU kernel takes it: `weight (cout, cin, k, k)`, padding
/// `k / 2`, one group.
pub struct ConvLayer<'a> {
    pub weight: Tensor<4>,
    pub bias: Option<Tensor<1>>,
    pub stride: usize,
    pub activation: Activation,
    /// The weights packed for [`direct`], kept by the layer between calls.
    pub packed: &'a PackCache,
}

/// How a convolution runs on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Im2col,
    #[cfg(target_arch = "x86_64")]
    Direct,
    #[cfg(target_arch = "x86_64")]
    Winograd,
}

impl Method {
    /// The methods this CPU runs on a convolution of this shape (the parity tests check
    /// each).
    #[cfg(test)]
    fn available(k: usize, stride: usize) -> Vec<Method> {
        let mut methods = vec![Method::Im2col];
        #[cfg(target_arch = "x86_64")]
        if direct::available() {
            methods.push(Method::Direct);
        }
        #[cfg(target_arch = "x86_64")]
        if winograd::applies(k, stride) {
            methods.push(Method::Winograd);
        }
        let _ = (k, stride);
        methods
    }

    /// The fastest method for this convolution where the CPU has AVX2 and FMA: Winograd
    /// for 3×3 at stride 1 where [`winograd::faster`], else [`direct`] for 1×1 (read in
    /// place) and on small planes (where im2col convolved whole planes). Other kernels on
    /// larger planes run faster in im2col's bands: their phase planes spread a tile's taps
    /// over more streams than the caches hold (measured per layer:
    /// docs/cpu-performance.md).
    fn fastest(geometry: &Geometry) -> Method {
        #[cfg(target_arch = "x86_64")]
        {
            if winograd::applies(geometry.k, geometry.stride) && winograd::faster(geometry) {
                return Method::Winograd;
            }
            let pointwise = (geometry.k, geometry.stride) == (1, 1);
            let small = geometry.out_h * geometry.out_w <= SMALL_PLANE;
            if (pointwise || small) && direct::available() {
                return Method::Direct;
            }
        }
        let _ = geometry;
        Method::Im2col
    }
}

/// [`conv2d`] by `method`, or the faster for its plane.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn conv2d_by(method: Option<Method>, mut parts: Vec<Tensor<4>>, layer: ConvLayer) -> Tensor<4> {
    let ConvLayer {
        weight,
        bias,
        stride,
        activation,
        packed,
    } = layer;
    let [cout, _, k, _] = weight.dims();
    if parts.len() > 1 && (k, stride) != (1, 1) {
        parts = vec![Tensor::cat(parts, 1)];
    }
    let device = parts[0].device();
    let [batch, _, h, w] = parts[0].dims();
    let channels: Vec<usize> = parts.iter().map(|part| part.dims()[1]).collect();
    let cin = channels.iter().sum();
    let out_h = (h + 2 * (k / 2) - k) / stride + 1;
    let out_w = (w + 2 * (k / 2) - k) / stride + 1;
    let geometry = Geometry {
        cin,
        h,
        w,
        cout,
        k,
        stride,
        out_h,
        out_w,
    };
    let parts: Vec<_> = parts.into_iter().map(flex_tensor).collect();
    let weight = flex_tensor(weight);
    let bias = bias.map(flex_tensor);
    let bias = bias.as_ref().map(values);
    let conv = Convolution {
        geometry,
        input: Input {
            parts: parts.iter().map(values).zip(channels).collect(),
            plane: h * w,
        },
        batch,
        bias,
        activation,
    };

    let out = match method.unwrap_or_else(|| Method::fastest(&geometry)) {
        #[cfg(target_arch = "x86_64")]
        Method::Direct => {
            let taps = geometry.taps();
            let packed = packed.get(&weight, taps, |w| PackedWeights::pack(w, cout, taps));
            direct::convolve(&conv, &packed)
        }
        #[cfg(target_arch = "x86_64")]
        Method::Winograd => {
            let taps = winograd::taps(cin);
            let packed = packed.get(&weight, taps, |w| winograd::pack_weights(w, cout, cin));
            winograd::convolve(&conv, &packed)
        }
        Method::Im2col => im2col_gemm::convolve(&conv, values(&weight)),
    };
    Tensor::<4>::from_data(TensorData::new(out, [batch, cout, out_h, out_w]), &device)
}

/// One convolution as the kernels take it: its sizes, its input (`batch` images), and the
/// bias and activation applied to its outputs.
pub(super) struct Convolution<'a> {
    pub(super) geometry: Geometry,
    pub(super) input: Input<'a>,
    pub(super) batch: usize,
    pub(super) bias: Option<&'a [f32]>,
    pub(super) activation: Activation,
}

/// A convolution's input: the parts whose channels, in order, are its channels (one part
/// but for a concatenation), each `(values, channels)`, planes of `plane` values.
pub(super) struct Input<'a> {
    pub(super) parts: Vec<(&'a [f32], usize)>,
    pub(super) plane: usize,
}

impl<'a> Input<'a> {
    /// The parts of image `image` of the batch.
    pub(super) fn image(&self, image: usize) -> Input<'a> {
        let parts = self.parts.iter().map(|&(values, channels)| {
            let len = channels * self.plane;
            (&values[image * len..(image + 1) * len], channels)
        });
        Input {
            parts: parts.collect(),
            plane: self.plane,
        }
    }

    /// The one part of an input that is not a concatenation.
    pub(super) fn whole(&self) -> &'a [f32] {
        assert_eq!(
            self.parts.len(),
            1,
            "concatenations feed 1×1 convolutions only"
        );
        self.parts[0].0
    }
}

/// The output buffer, shared by tasks that each write their own part of it (bands of rows
/// here, tiles in [`super::direct`]).
#[derive(Clone, Copy)]
pub(super) struct SharedOutput(pub(super) *mut f32);

// SAFETY: tasks only write disjoint ranges (see `im2col_gemm::convolve` and `direct::run`).
unsafe impl Send for SharedOutput {}
unsafe impl Sync for SharedOutput {}

impl SharedOutput {
    /// Where output `index` is.
    ///
    /// # Safety
    /// `index` must lie within the buffer.
    pub(super) unsafe fn at(&self, index: usize) -> *mut f32 {
        unsafe { self.0.add(index) }
    }

    /// The `len` written outputs from `start`.
    ///
    /// # Safety
    /// They must lie within the buffer, have been written, and no other live slice or
    /// writer may touch them.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn slice(&self, start: usize, len: usize) -> &mut [f32] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::device::ComputeDevice;
    use crate::compute::random::seeded_random;
    use burn::tensor::Distribution;
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::ops::ConvOptions;

    /// Our convolution against burn's `conv2d` (plus bias and activation) on the CPU
    /// backend, for each shape: (batch, cin, h, w, cout, k, stride). Each case and
    /// activation draws its tensors from a seed derived from their indices, printed on
    /// failure.
    #[test]
    fn conv2d_matches_burns_conv2d() {
        let device = ComputeDevice::cpu().device;
        let uniform = Distribution::Uniform(-1.0, 1.0);
        for (case, &(batch, cin, h, w, cout, k, stride)) in [
            (1, 3, 64, 48, 16, 3, 2),   // the stem
            (1, 16, 33, 17, 32, 3, 2),  // odd sizes at stride 2
            (2, 8, 20, 20, 8, 3, 1),    // a batch
            (1, 32, 10, 10, 24, 1, 1),  // pointwise
            (1, 6, 9, 7, 5, 5, 1),      // a wider kernel
            (1, 4, 5, 5, 3, 1, 2),      // 1×1 at stride 2 gathers
            (1, 40, 3, 2, 7, 3, 1),     // planes smaller than the kernel
            (1, 48, 40, 36, 70, 3, 1),  // many tiles and blocks, a last block not full
            (2, 33, 21, 30, 20, 1, 1),  // pointwise planes that end inside a tile
            (1, 24, 41, 40, 9, 3, 2),   // stride 2, odd rows
            (1, 64, 13, 11, 70, 3, 1),  // Winograd: odd sizes, a last group not full
            (1, 256, 10, 10, 64, 3, 1), // Detect's P5 at 320: the most channels summed
        ]
        .iter()
        .enumerate()
        {
            let activations = [Activation::Identity, Activation::Silu, Activation::Gelu];
            for (nth, activation) in activations.into_iter().enumerate() {
                let seed = (3 * case + nth) as u64;
                let x = seeded_random([batch, cin, h, w], uniform, 3 * seed, &device);
                let weight = seeded_random([cout, cin, k, k], uniform, 3 * seed + 1, &device);
                let bias =
                    (case % 2 == 0).then(|| seeded_random([cout], uniform, 3 * seed + 2, &device));
                let options = ConvOptions::new([stride; 2], [k / 2; 2], [1, 1], 1);
                let expected = activation.apply(burn_conv2d(
                    x.clone(),
                    weight.clone(),
                    bias.clone(),
                    options,
                ));
                let expected_dims = expected.dims();
                let expected = expected.into_data().try_into_vec::<f32>().unwrap();
                for method in Method::available(k, stride) {
                    let layer = ConvLayer {
                        weight: weight.clone(),
                        bias: bias.clone(),
                        stride,
                        activation,
                        packed: &PackCache::default(),
                    };
                    let ours = conv2d_by(Some(method), vec![x.clone()], layer);
                    assert_eq!(
                        ours.dims()[..],
                        expected_dims[..],
                        "seed {seed}: case {case}"
                    );
                    let ours = ours.into_data().try_into_vec::<f32>().unwrap();
                    // Rounding grows with the terms summed (in another order than burn's).
                    let scale = ((cin * k * k) as f32 / 100.0).sqrt().max(1.0);
                    for (i, (a, b)) in ours.iter().zip(&expected).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-5 * scale * (1.0 + b.abs()),
                            "seed {seed}: case {case} {method:?} {activation:?} value {i}: {a} against {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn conv2d_reads_a_channel_slice_in_place() {
        // C3k2 feeds its stages the second half of a chunk: a view with an offset.
        let device = ComputeDevice::cpu().device;
        let uniform = Distribution::Uniform(-1.0, 1.0);
        let seed = 0;
        let whole = seeded_random([1, 8, 6, 6], uniform, seed, &device);
        let half = whole.chunk(2, 1).pop().unwrap();
        let weight = seeded_random([3, 4, 3, 3], uniform, seed + 1, &device);
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let expected = burn_conv2d(half.clone(), weight.clone(), None, options);
        for method in Method::available(3, 1) {
            let layer = ConvLayer {
                weight: weight.clone(),
                bias: None,
                stride: 1,
                activation: Activation::Identity,
                packed: &PackCache::default(),
            };
            let ours = conv2d_by(Some(method), vec![half.clone()], layer);
            let diff: f32 = (ours - expected.clone()).abs().max().into_scalar();
            assert!(diff <= 1e-5, "seed {seed}: {method:?}: max |Δ| {diff}");
        }
    }

    /// A concatenation of parts (C3k2's halves and stage outputs) against burn's conv of the
    /// concatenation written out: whole planes and bands, a batch, 1×1 and 3×3.
    #[test]
    fn conv2d_of_parts_matches_the_concatenation() {
        let device = ComputeDevice::cpu().device;
        let uniform = Distribution::Uniform(-1.0, 1.0);
        for (case, &(batch, size, k)) in [(1, 10, 1), (2, 24, 1), (1, 12, 3)].iter().enumerate() {
            let seed = 4 * case as u64;
            let whole = seeded_random([batch, 8, size, size], uniform, seed, &device);
            let mut parts = whole.chunk(2, 1);
            parts.push(seeded_random(
                [batch, 3, size, size],
                uniform,
                seed + 1,
                &device,
            ));
            let weight = seeded_random([5, 11, k, k], uniform, seed + 2, &device);
            let bias = seeded_random([5], uniform, seed + 3, &device);
            let options = ConvOptions::new([1, 1], [k / 2; 2], [1, 1], 1);
            let expected = Activation::Silu.apply(burn_conv2d(
                Tensor::cat(parts.clone(), 1),
                weight.clone(),
                Some(bias.clone()),
                options,
            ));
            for method in Method::available(k, 1) {
                let layer = ConvLayer {
                    weight: weight.clone(),
                    bias: Some(bias.clone()),
                    stride: 1,
                    activation: Activation::Silu,
                    packed: &PackCache::default(),
                };
                let ours = conv2d_by(Some(method), parts.clone(), layer);
                let diff: f32 = (ours - expected.clone()).abs().max().into_scalar();
                assert!(
                    diff <= 1e-5,
                    "seed {seed}: {method:?} batch {batch} size {size} k {k}: max |Δ| {diff}"
                );
            }
        }
    }
}
