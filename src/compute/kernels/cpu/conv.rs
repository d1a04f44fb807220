//! 2-D convolution with one group on the CPU, in bands of output rows: each band gathers
//! its im2col rows straight from the NCHW input planes (long runs along x, where flex
//! converts to channels-last and gathers channel by channel), multiplies with `gemm`, and
//! adds bias and activation while the band's outputs are in cache. Bands run on rayon's
//! threads, each gemm on one.

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::activation::silu_slice;
use super::{flex_tensor, values};
use crate::compute::kernels::Activation;

/// im2col floats per band (512 KiB): the band's columns stay in L2 while gemm packs them.
const BAND_FLOATS: usize = 1 << 17;
/// Output planes up to this size (20×20) are convolved whole, the gemm split over threads:
/// in bands they would be a few rows each, and every band repacks all the weights.
const SMALL_PLANE: usize = 400;

/// The sizes of one convolution: `x (B, cin, h, w)`, `weight (cout, cin, k, k)`, stride,
/// padding `k / 2`.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
    stride: usize,
    out_h: usize,
    out_w: usize,
}

impl Geometry {
    fn pad(&self) -> usize {
        self.k / 2
    }

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

    /// Output columns `[first, end)` of a kernel row at tap `dx` that read inside the
    /// input row; the others read padding.
    fn valid_columns(&self, dx: usize) -> (usize, usize) {
        let pad = self.pad();
        // ix = ox * stride + dx - pad must lie in 0..w.
        let first = pad.saturating_sub(dx).div_ceil(self.stride);
        let end = if self.w + pad > dx {
            ((self.w + pad - dx - 1) / self.stride + 1).min(self.out_w)
        } else {
            0
        };
        (first.min(end), end)
    }
}

/// `activation(conv2d(x, weight) + bias)` with padding `k / 2` and one group, for f32
/// tensors on the CPU backend (see [`super::on_flex`]).
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    activation: Activation,
) -> Tensor<4> {
    let device = x.device();
    let [batch, cin, h, w] = x.dims();
    let [cout, _, k, _] = weight.dims();
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
    let (x, weight) = (flex_tensor(x), flex_tensor(weight));
    let bias = bias.map(flex_tensor);
    let (x, weight, bias) = (values(&x), values(&weight), bias.as_ref().map(values));

    let plane = out_h * out_w;
    let mut out = vec![0.0f32; batch * cout * plane];
    let threads = rayon::current_num_threads();
    if plane <= SMALL_PLANE {
        for (image, out_image) in out.chunks_exact_mut(cout * plane).enumerate() {
            let input = &x[image * cin * h * w..(image + 1) * cin * h * w];
            convolve_whole(&geometry, input, weight, out_image);
            out_image
                .par_chunks_mut(plane)
                .zip(0..cout)
                .for_each(|(channel, co)| finish(channel, bias.map(|b| b[co]), activation));
        }
    } else {
        let band_rows = geometry.band_rows(threads);
        let bands_per_image = out_h.div_ceil(band_rows);
        let out_ptr = SharedOutput(out.as_mut_ptr());
        (0..batch * bands_per_image)
            .into_par_iter()
            .for_each(|task| {
                let (image, band) = (task / bands_per_image, task % bands_per_image);
                let first_row = band * band_rows;
                let rows = band_rows.min(out_h - first_row);
                let input = &x[image * cin * h * w..(image + 1) * cin * h * w];
                // SAFETY: bands of one image and different images write disjoint outputs.
                let out_image = unsafe { out_ptr.image(image, cout * plane) };
                convolve_band(&geometry, input, weight, first_row, rows, out_image);
                for (co, channel) in out_image.chunks_exact_mut(plane).enumerate() {
                    let band = &mut channel[first_row * out_w..(first_row + rows) * out_w];
                    finish(band, bias.map(|b| b[co]), activation);
                }
            });
    }
    let out = Tensor::<4>::from_data(TensorData::new(out, [batch, cout, out_h, out_w]), &device);
    match activation {
        Activation::Gelu => activation.apply(out),
        Activation::Identity | Activation::Silu => out,
    }
}

/// The output buffer, shared by the bands that each write their own rows of it.
#[derive(Clone, Copy)]
struct SharedOutput(*mut f32);

// SAFETY: tasks only write disjoint ranges (see `conv2d`).
unsafe impl Send for SharedOutput {}
unsafe impl Sync for SharedOutput {}

impl SharedOutput {
    /// The `len` outputs of image `image`.
    ///
    /// # Safety
    /// No two live slices from this buffer may write the same element.
    #[allow(clippy::mut_from_ref)]
    unsafe fn image(&self, image: usize, len: usize) -> &mut [f32] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(image * len), len) }
    }
}

/// Rows `first_row..first_row + rows` of every output channel: one single-threaded gemm
/// of the weights `(cout, taps)` by the band's im2col matrix `(taps, rows · out_w)`.
/// Writes only those rows of `out_image`.
fn convolve_band(
    g: &Geometry,
    input: &[f32],
    weight: &[f32],
    first_row: usize,
    rows: usize,
    out_image: &mut [f32],
) {
    let columns = rows * g.out_w;
    let dst = &mut out_image[first_row * g.out_w..];
    if g.pointwise() {
        let rhs = Matrix {
            values: &input[first_row * g.w..],
            row_stride: g.h * g.w,
        };
        return multiply(g, weight, rhs, columns, dst, gemm::Parallelism::None);
    }
    let mut gathered = vec![0.0f32; g.taps() * columns];
    for (ci, rows_out) in gathered.chunks_exact_mut(g.k * g.k * columns).enumerate() {
        im2col_channel(g, &input[ci * g.h * g.w..], first_row, rows, rows_out);
    }
    let rhs = Matrix {
        values: &gathered,
        row_stride: columns,
    };
    multiply(g, weight, rhs, columns, dst, gemm::Parallelism::None);
}

/// The whole image at once, for planes too small to share out in bands: the im2col
/// matrix gathered by channel on every thread, then one gemm that splits itself.
fn convolve_whole(g: &Geometry, input: &[f32], weight: &[f32], out_image: &mut [f32]) {
    let columns = g.out_h * g.out_w;
    let parallel = gemm::Parallelism::Rayon(rayon::current_num_threads());
    if g.pointwise() {
        let rhs = Matrix {
            values: input,
            row_stride: columns,
        };
        return multiply(g, weight, rhs, columns, out_image, parallel);
    }
    let mut gathered = vec![0.0f32; g.taps() * columns];
    gathered
        .par_chunks_mut(g.k * g.k * columns)
        .enumerate()
        .for_each(|(ci, rows_out)| {
            im2col_channel(g, &input[ci * g.h * g.w..], 0, g.out_h, rows_out);
        });
    let rhs = Matrix {
        values: &gathered,
        row_stride: columns,
    };
    multiply(g, weight, rhs, columns, out_image, parallel);
}

/// The right-hand side of a gemm: `taps` rows of `columns` values, `row_stride` apart.
struct Matrix<'a> {
    values: &'a [f32],
    row_stride: usize,
}

/// `dst (cout rows, plane apart) = weight (cout × taps) · rhs (taps × columns)`.
fn multiply(
    g: &Geometry,
    weight: &[f32],
    rhs: Matrix,
    columns: usize,
    dst: &mut [f32],
    parallelism: gemm::Parallelism,
) {
    let plane = g.out_h * g.out_w;
    let taps = g.taps();
    assert!(weight.len() >= g.cout * taps, "weights cover cout × taps");
    assert!(
        dst.len() >= (g.cout - 1) * plane + columns,
        "dst covers every row"
    );
    assert!(
        rhs.values.len() >= (taps - 1) * rhs.row_stride + columns,
        "rhs covers every row"
    );
    // SAFETY: the asserts above keep every index gemm touches inside the three slices:
    // dst (i, j) at i·plane + j, lhs (i, t) at i·taps + t, rhs (t, j) at t·row_stride + j.
    unsafe {
        gemm::gemm(
            g.cout,
            columns,
            taps,
            dst.as_mut_ptr(),
            1,
            plane as isize,
            false,
            weight.as_ptr(),
            1,
            taps as isize,
            rhs.values.as_ptr(),
            1,
            rhs.row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The `k · k` im2col rows of one input channel (`channel` starts at its plane) for
/// output rows `first_row..first_row + rows`: row `(dy, dx)` holds the input under that
/// tap for every output, and stays zero where the tap falls in the padding.
fn im2col_channel(g: &Geometry, channel: &[f32], first_row: usize, rows: usize, out: &mut [f32]) {
    let columns = rows * g.out_w;
    let pad = g.pad();
    let mut tap_rows = out.chunks_exact_mut(columns);
    for dy in 0..g.k {
        for dx in 0..g.k {
            let tap_row = tap_rows.next().expect("one im2col row per tap");
            let (first, end) = g.valid_columns(dx);
            if first >= end {
                continue;
            }
            for (r, out_row) in tap_row.chunks_exact_mut(g.out_w).enumerate() {
                let iy = (first_row + r) * g.stride + dy;
                if iy < pad || iy - pad >= g.h {
                    continue;
                }
                let in_row = &channel[(iy - pad) * g.w..(iy - pad + 1) * g.w];
                let start = first * g.stride + dx - pad;
                let dst = &mut out_row[first..end];
                if g.stride == 1 {
                    dst.copy_from_slice(&in_row[start..start + dst.len()]);
                } else {
                    for (d, s) in dst.iter_mut().zip(in_row[start..].iter().step_by(g.stride)) {
                        *d = *s;
                    }
                }
            }
        }
    }
}

/// Bias and activation on some outputs of one channel.
fn finish(values: &mut [f32], bias: Option<f32>, activation: Activation) {
    if let Some(b) = bias {
        values.iter_mut().for_each(|v| *v += b);
    }
    if activation == Activation::Silu {
        silu_slice(values);
    }
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
                let ours = conv2d(x, weight, bias, stride, activation);
                assert_eq!(ours.dims(), expected.dims(), "case {case}");
                let ours = ours.into_data().try_into_vec::<f32>().unwrap();
                let expected = expected.into_data().try_into_vec::<f32>().unwrap();
                for (i, (a, b)) in ours.iter().zip(&expected).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "case {case} {activation:?} value {i}: {a} against {b}"
                    );
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
        let ours = conv2d(half, weight, None, 1, Activation::Identity);
        let diff: f32 = (ours - expected).abs().max().into_scalar();
        assert!(diff <= 1e-5, "max |Δ| {diff}");
    }

    fn geometry(w: usize, k: usize, stride: usize) -> Geometry {
        let out_w = (w + 2 * (k / 2) - k) / stride + 1;
        Geometry {
            cin: 1,
            h: w,
            w,
            cout: 1,
            k,
            stride,
            out_h: out_w,
            out_w,
        }
    }

    #[test]
    fn valid_columns_are_exactly_those_inside_the_row() {
        for (w, k, stride) in [
            (8, 3, 1),
            (8, 3, 2),
            (7, 3, 2),
            (5, 5, 1),
            (4, 7, 1),
            (9, 1, 1),
        ] {
            let g = geometry(w, k, stride);
            for dx in 0..k {
                let (first, end) = g.valid_columns(dx);
                for ox in 0..g.out_w {
                    let ix = (ox * stride + dx) as isize - (k / 2) as isize;
                    let inside = (0..w as isize).contains(&ix);
                    assert_eq!(
                        (first..end).contains(&ox),
                        inside,
                        "w {w} k {k} stride {stride} dx {dx} ox {ox}"
                    );
                }
            }
        }
    }
}
