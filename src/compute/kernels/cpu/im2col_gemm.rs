//! 2-D convolution as im2col and `gemm`, in bands of output rows: each band gathers its
//! im2col rows straight from the NCHW input planes ([`super::im2col`]), multiplies with
//! `gemm`, and adds bias and activation while the band's outputs are in cache. Bands run on
//! rayon's threads, each gemm on one. Planes of [`SMALL_PLANE`] values or fewer are
//! convolved whole, the gemm split over threads.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::activation::{activate_inline, add_and_activate};
use super::conv::{Convolution, Geometry, Input, SMALL_PLANE, SharedOutput};
use super::im2col::im2col_channel;
use super::{assume_written, filled_by, vectorised, with_scratch};
use crate::compute::kernels::Activation;

/// im2col floats per band (512 KiB): the band's columns stay in L2 while gemm packs them.
const BAND_FLOATS: usize = 1 << 17;

impl Geometry {
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

/// The convolution as im2col and `gemm`, in bands of output rows (or whole small planes).
pub(super) fn convolve(conv: &Convolution, weight: &[f32]) -> Vec<f32> {
    let (geometry, batch) = (&conv.geometry, conv.batch);
    let (bias, activation) = (conv.bias, conv.activation);
    let &Geometry {
        cout, out_h, out_w, ..
    } = geometry;
    let plane = out_h * out_w;
    let threads = rayon::current_num_threads();
    let fill = |out: &mut [MaybeUninit<f32>]| {
        if plane <= SMALL_PLANE {
            for (image, out_image) in out.chunks_exact_mut(cout * plane).enumerate() {
                let len = out_image.len();
                let rows = Rows {
                    first: 0,
                    count: out_h,
                    parallel: true,
                };
                // SAFETY: `out_image` holds `len` values.
                let out_image_start = out_image.as_mut_ptr().cast();
                unsafe { convolve_rows(conv, image, weight, rows, out_image_start, len) };
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
                    let image_start = image * cout * plane;
                    // SAFETY: the image's outputs lie in the buffer; this task writes only
                    // its own rows of each channel, and no other task writes them.
                    unsafe {
                        let out_image = out.at(image_start);
                        convolve_rows(conv, image, weight, rows, out_image, cout * plane)
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

/// Which output rows one call computes, and whether it shares them out over rayon's
/// threads (a whole small plane) or runs on the calling one (a band, beside other bands).
#[derive(Clone, Copy)]
struct Rows {
    first: usize,
    count: usize,
    parallel: bool,
}

/// Rows `rows.first..rows.first + rows.count` of every output channel of image `image`:
/// the weights `(cout, taps)` times the rows' im2col matrix `(taps, count · out_w)`,
/// gathered from the input planes (a 1×1 stride-1 convolution reads them as they are).
/// Writes only those rows of the image's outputs (`image_len` values from `out_image`).
///
/// # Safety
/// `out_image` must be valid for writes of `image_len` values.
unsafe fn convolve_rows(
    conv: &Convolution,
    image: usize,
    weight: &[f32],
    rows: Rows,
    out_image: *mut f32,
    image_len: usize,
) {
    let (g, input) = (&conv.geometry, &conv.input.image(image));
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
