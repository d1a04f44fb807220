//! 2-D convolution with one group on the CPU, in bands of output rows: each band gathers
//! its im2col rows straight from the NCHW input planes ([`super::im2col`]), multiplies
//! with `gemm`, and adds bias and activation while the band's outputs are in cache. Bands
//! run on rayon's threads, each gemm on one.

use std::mem::MaybeUninit;

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::activation::{activate_inline, add_and_activate};
#[cfg(target_arch = "x86_64")]
use super::direct;
use super::im2col::im2col_channel;
use super::packed::PackCache;
use super::{assume_written, filled_by, flex_tensor, values, vectorised, with_scratch};
use crate::compute::kernels::Activation;

/// im2col floats per band (512 KiB): the band's columns stay in L2 while gemm packs them.
const BAND_FLOATS: usize = 1 << 17;
/// Output planes up to this size (20×20) are convolved whole, the gemm split over threads:
/// in bands they would be a few rows each, and every band repacks all the weights.
const SMALL_PLANE: usize = 400;

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
    /// Rows of the im2col matrix: one per input channel and kernel tap.
    fn taps(&self) -> usize {
        self.cin * self.k * self.k
    }

    /// A 1×1 stride-1 convolution reads its input planes as the im2col matrix itself.
    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1
    }

    /// Output rows per band: about [`BAND_FLOATS`] im2col values, at least one row, and
    /// enough bands that every thread gets several.
    fn band_rows(&self, threads: usize) -> usize {
        let by_cache = BAND_FLOATS / (self.taps() * self.out_w).max(1);
        let by_threads = self.out_h.div_ceil(4 * threads);
        by_cache.min(by_threads).max(1)
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
}

impl Method {
    /// The methods this CPU runs (the parity tests check each).
    #[cfg(test)]
    fn available() -> Vec<Method> {
        let mut methods = vec![Method::Im2col];
        #[cfg(target_arch = "x86_64")]
        if direct::available() {
            methods.push(Method::Direct);
        }
        methods
    }

    /// The faster method for an output plane of `plane` values: [`direct`] where the CPU
    /// has AVX2 and FMA and the plane is small (where im2col convolved whole planes); larger
    /// planes run faster in im2col's bands (measured per layer: docs/cpu-performance.md).
    fn for_plane(plane: usize) -> Method {
        #[cfg(target_arch = "x86_64")]
        if plane <= SMALL_PLANE && direct::available() {
            return Method::Direct;
        }
        let _ = plane;
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
    let input = Input {
        parts: parts.iter().map(values).zip(channels).collect(),
        plane: h * w,
    };

    let out = match method.unwrap_or_else(|| Method::for_plane(out_h * out_w)) {
        #[cfg(target_arch = "x86_64")]
        Method::Direct => {
            let packed = packed.get(&weight, cout, geometry.taps());
            direct::convolve(&geometry, &input, batch, &packed, bias, activation)
        }
        Method::Im2col => {
            let weight = values(&weight);
            im2col_gemm(&geometry, &input, batch, weight, bias, activation)
        }
    };
    Tensor::<4>::from_data(TensorData::new(out, [batch, cout, out_h, out_w]), &device)
}

/// The convolution as im2col and `gemm`, in bands of output rows (or whole small planes).
fn im2col_gemm(
    geometry: &Geometry,
    input: &Input,
    batch: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
) -> Vec<f32> {
    let &Geometry {
        cout, out_h, out_w, ..
    } = geometry;
    let plane = out_h * out_w;
    let threads = rayon::current_num_threads();
    let fill = |out: &mut [MaybeUninit<f32>]| {
        if plane <= SMALL_PLANE {
            for (image, out_image) in out.chunks_exact_mut(cout * plane).enumerate() {
                let input = input.image(image);
                let len = out_image.len();
                let rows = Rows {
                    first: 0,
                    count: out_h,
                    parallel: true,
                };
                // SAFETY: `out_image` holds `len` values.
                unsafe {
                    convolve_rows(
                        geometry,
                        &input,
                        weight,
                        rows,
                        out_image.as_mut_ptr().cast(),
                        len,
                    )
                };
                // SAFETY: `convolve_rows` wrote every output of the image.
                let out_image = unsafe { assume_written(out_image) };
                out_image
                    .par_chunks_mut(plane)
                    .zip(0..cout)
                    .for_each(|(channel, co)| finish(channel, bias.map(|b| b[co]), activation));
            }
        } else {
            let band_rows = geometry.band_rows(threads);
            let bands_per_image = out_h.div_ceil(band_rows);
            let out = SharedOutput(out.as_mut_ptr().cast());
            (0..batch * bands_per_image)
                .into_par_iter()
                .for_each(|task| {
                    let (image, band) = (task / bands_per_image, task % bands_per_image);
                    let first_row = band * band_rows;
                    let rows = Rows {
                        first: first_row,
                        count: band_rows.min(out_h - first_row),
                        parallel: false,
                    };
                    let input = input.image(image);
                    let image_start = image * cout * plane;
                    // SAFETY: the image's outputs lie in the buffer; this task writes only
                    // its own rows of each channel, and no other task writes them.
                    unsafe {
                        convolve_rows(
                            geometry,
                            &input,
                            weight,
                            rows,
                            out.at(image_start),
                            cout * plane,
                        )
                    };
                    for co in 0..cout {
                        let start = image_start + co * plane + first_row * out_w;
                        // SAFETY: as above; `convolve_rows` has just written these rows.
                        let band = unsafe { out.slice(start, rows.count * out_w) };
                        finish(band, bias.map(|b| b[co]), activation);
                    }
                });
        }
    };
    // SAFETY: both paths write every output (gemm overwrites its destination unread).
    unsafe { filled_by(batch * cout * plane, fill) }
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

// SAFETY: tasks only write disjoint ranges (see `im2col_gemm` and `direct::run`).
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
    unsafe fn slice(&self, start: usize, len: usize) -> &mut [f32] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// Which output rows one call computes, and whether it shares them out over rayon's
/// threads (a whole small plane) or runs on the calling one (a band, beside other bands).
#[derive(Clone, Copy)]
struct Rows {
    first: usize,
    count: usize,
    parallel: bool,
}

/// Rows `rows.first..rows.first + rows.count` of every output channel: the weights
/// `(cout, taps)` times the rows' im2col matrix `(taps, count · out_w)`, gathered from the
/// input planes (a 1×1 stride-1 convolution reads them as they are). Writes only those rows
/// of the image's outputs (`image_len` values from `out_image`).
///
/// # Safety
/// `out_image` must be valid for writes of `image_len` values.
unsafe fn convolve_rows(
    g: &Geometry,
    input: &Input,
    weight: &[f32],
    rows: Rows,
    out_image: *mut f32,
    image_len: usize,
) {
    let columns = rows.count * g.out_w;
    let offset = rows.first * g.out_w;
    let dst = Destination {
        // SAFETY: the first row lies inside the image.
        values: unsafe { out_image.add(offset) },
        len: image_len - offset,
    };
    let parallelism = if rows.parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    if g.pointwise() {
        let first = rows.first * g.w;
        // SAFETY: `dst` is valid for writes of its `len` (the caller's contract).
        return unsafe { multiply_parts(g, input, weight, first, columns, dst, parallelism) };
    }
    let input = input.whole();
    with_scratch(g.taps() * columns, |gathered| {
        let per_channel = g.k * g.k * columns;
        let gather_channel = |(ci, rows_out): (usize, &mut [f32])| {
            im2col_channel(
                g,
                &input[ci * g.h * g.w..],
                rows.first,
                rows.count,
                rows_out,
            );
        };
        if rows.parallel {
            gathered
                .par_chunks_mut(per_channel)
                .enumerate()
                .for_each(gather_channel);
        } else {
            gathered
                .chunks_exact_mut(per_channel)
                .enumerate()
                .for_each(gather_channel);
        }
        let rhs = Matrix {
            values: gathered,
            row_stride: columns,
        };
        // SAFETY: as above.
        unsafe { multiply(g, weight, g.taps(), rhs, columns, &dst, false, parallelism) };
    });
}

/// A 1×1 convolution's outputs from `first` on: the input planes are the im2col matrix
/// itself, so each part is one gemm with its columns of the weights, the later ones adding
/// to what the earlier wrote.
///
/// # Safety
/// `dst` must be valid for writes of its `len` values.
unsafe fn multiply_parts(
    g: &Geometry,
    input: &Input,
    weight: &[f32],
    first: usize,
    columns: usize,
    dst: Destination,
    parallelism: gemm::Parallelism,
) {
    let mut channel = 0;
    for (index, &(values, channels)) in input.parts.iter().enumerate() {
        let rhs = Matrix {
            values: &values[first..],
            row_stride: input.plane,
        };
        let lhs = &weight[channel..];
        // SAFETY: `dst` is valid for writes (the caller's contract), and written in full
        // by the first part before the others read it.
        unsafe { multiply(g, lhs, channels, rhs, columns, &dst, index > 0, parallelism) };
        channel += channels;
    }
}

/// Where a gemm writes: `len` values from `values`, not necessarily initialised.
struct Destination {
    values: *mut f32,
    len: usize,
}

/// The right-hand side of a gemm: rows of `columns` values, `row_stride` apart.
struct Matrix<'a> {
    values: &'a [f32],
    row_stride: usize,
}

/// `dst (cout rows, plane apart) (+)= lhs (cout × depth, rows taps apart) · rhs (depth ×
/// columns)`: `lhs` is the weights from the first column this product uses. With
/// `accumulate` the product is added to `dst`, otherwise written without reading it.
///
/// # Safety
/// `dst` must be valid for writes of its `len` values, and initialised where it is read.
#[allow(clippy::too_many_arguments)]
unsafe fn multiply(
    g: &Geometry,
    lhs: &[f32],
    depth: usize,
    rhs: Matrix,
    columns: usize,
    dst: &Destination,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    let plane = g.out_h * g.out_w;
    let taps = g.taps();
    assert!(
        lhs.len() >= (g.cout - 1) * taps + depth,
        "weights cover cout × depth"
    );
    assert!(
        dst.len >= (g.cout - 1) * plane + columns,
        "dst covers every row"
    );
    assert!(
        rhs.values.len() >= (depth - 1) * rhs.row_stride + columns,
        "rhs covers every row"
    );
    // SAFETY: the asserts above keep every index gemm touches inside the three buffers:
    // dst (i, j) at i·plane + j, lhs (i, t) at i·taps + t, rhs (t, j) at t·row_stride + j.
    // With `read_dst` false gemm only writes dst.
    unsafe {
        gemm::gemm(
            g.cout,
            columns,
            depth,
            dst.values,
            1,
            plane as isize,
            accumulate,
            lhs.as_ptr(),
            1,
            taps as isize,
            rhs.values.as_ptr(),
            1,
            rhs.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Bias and activation on some outputs of one channel.
fn finish(values: &mut [f32], bias: Option<f32>, activation: Activation) {
    vectorised(
        #[inline(always)]
        || match bias {
            Some(bias) => add_and_activate(values, bias, activation),
            None => activate_inline(values, activation),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::device::ComputeDevice;
    use burn::tensor::Distribution;
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::ops::ConvOptions;

    /// Our convolution against burn's `conv2d` (plus bias and activation) on the CPU
    /// backend, for each shape: (batch, cin, h, w, cout, k, stride).
    #[test]
    fn conv2d_matches_burns_conv2d() {
        let device = ComputeDevice::cpu().device;
        let uniform = Distribution::Uniform(-1.0, 1.0);
        for (case, &(batch, cin, h, w, cout, k, stride)) in [
            (1, 3, 64, 48, 16, 3, 2),  // the stem
            (1, 16, 33, 17, 32, 3, 2), // odd sizes at stride 2
            (2, 8, 20, 20, 8, 3, 1),   // a batch
            (1, 32, 10, 10, 24, 1, 1), // pointwise
            (1, 6, 9, 7, 5, 5, 1),     // a wider kernel
            (1, 4, 5, 5, 3, 1, 2),     // 1×1 at stride 2 gathers
            (1, 40, 3, 2, 7, 3, 1),    // planes smaller than the kernel
            (1, 48, 40, 36, 70, 3, 1), // many tiles and blocks, a last block not full
            (2, 33, 21, 30, 20, 1, 1), // pointwise planes that end inside a tile
            (1, 24, 41, 40, 9, 3, 2),  // stride 2, odd rows
        ]
        .iter()
        .enumerate()
        {
            for activation in [Activation::Identity, Activation::Silu, Activation::Gelu] {
                let x = Tensor::<4>::random([batch, cin, h, w], uniform, &device);
                let weight = Tensor::<4>::random([cout, cin, k, k], uniform, &device);
                let bias = (case % 2 == 0).then(|| Tensor::<1>::random([cout], uniform, &device));
                let options = ConvOptions::new([stride; 2], [k / 2; 2], [1, 1], 1);
                let expected = activation.apply(burn_conv2d(
                    x.clone(),
                    weight.clone(),
                    bias.clone(),
                    options,
                ));
                let expected_dims = expected.dims();
                let expected = expected.into_data().try_into_vec::<f32>().unwrap();
                for method in Method::available() {
                    let layer = ConvLayer {
                        weight: weight.clone(),
                        bias: bias.clone(),
                        stride,
                        activation,
                        packed: &PackCache::default(),
                    };
                    let ours = conv2d_by(Some(method), vec![x.clone()], layer);
                    assert_eq!(ours.dims()[..], expected_dims[..], "case {case}");
                    let ours = ours.into_data().try_into_vec::<f32>().unwrap();
                    // Rounding grows with the terms summed (in another order than burn's).
                    let scale = ((cin * k * k) as f32 / 100.0).sqrt().max(1.0);
                    for (i, (a, b)) in ours.iter().zip(&expected).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-5 * scale * (1.0 + b.abs()),
                            "case {case} {method:?} {activation:?} value {i}: {a} against {b}"
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
        let whole = Tensor::<4>::random([1, 8, 6, 6], uniform, &device);
        let half = whole.chunk(2, 1).pop().unwrap();
        let weight = Tensor::<4>::random([3, 4, 3, 3], uniform, &device);
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let expected = burn_conv2d(half.clone(), weight.clone(), None, options);
        for method in Method::available() {
            let layer = ConvLayer {
                weight: weight.clone(),
                bias: None,
                stride: 1,
                activation: Activation::Identity,
                packed: &PackCache::default(),
            };
            let ours = conv2d_by(Some(method), vec![half.clone()], layer);
            let diff: f32 = (ours - expected.clone()).abs().max().into_scalar();
            assert!(diff <= 1e-5, "{method:?}: max |Δ| {diff}");
        }
    }

    /// A concatenation of parts (C3k2's halves and stage outputs) against burn's conv of the
    /// concatenation written out: whole planes and bands, a batch, 1×1 and 3×3.
    #[test]
    fn conv2d_of_parts_matches_the_concatenation() {
        let device = ComputeDevice::cpu().device;
        let uniform = Distribution::Uniform(-1.0, 1.0);
        for &(batch, size, k) in &[(1, 10, 1), (2, 24, 1), (1, 12, 3)] {
            let whole = Tensor::<4>::random([batch, 8, size, size], uniform, &device);
            let mut parts = whole.chunk(2, 1);
            parts.push(Tensor::<4>::random(
                [batch, 3, size, size],
                uniform,
                &device,
            ));
            let weight = Tensor::<4>::random([5, 11, k, k], uniform, &device);
            let bias = Tensor::<1>::random([5], uniform, &device);
            let options = ConvOptions::new([1, 1], [k / 2; 2], [1, 1], 1);
            let expected = Activation::Silu.apply(burn_conv2d(
                Tensor::cat(parts.clone(), 1),
                weight.clone(),
                Some(bias.clone()),
                options,
            ));
            for method in Method::available() {
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
                    "{method:?} batch {batch} size {size} k {k}: max |Δ| {diff}"
                );
            }
        }
    }
}
