//! Direct convolution on x86 CPUs with AVX2 and FMA, for 1×1 convolutions and the small
//! planes (20×20 and less) where im2col and `gemm` convolved whole planes with gemm split
//! over threads, packing the weights and the inputs on every call. Here each input channel
//! is laid out once as phase planes (at stride 1 the zero-bordered plane; at stride 2 its
//! four phases, even or odd rows by even or odd columns) so that a kernel tap reads the
//! same flat offset from every output, the outputs indexed along rows as wide as the phase
//! planes (the few extra columns are computed and dropped). 1×1 stride-1 convolutions read
//! their input planes, and the parts of a concatenation, where they are. A few tiles of
//! [`NR`] outputs at a time, every tap's inputs are packed into a panel, and a micro-kernel
//! holds [`MR`] output channels × [`NR`] outputs in twelve AVX2 registers over the panel:
//! two loads and six broadcast weights (packed once per layer, [`super::packed`]) per tap.
//! Bias and activation are applied to each tile before it is stored.
//!
//! For larger kernels on larger planes im2col's bands stay faster (measured per layer in
//! `docs/cpu-performance.md`): the phase planes of a 160×160 input spread a tile's taps
//! over more streams than the caches hold. The micro-kernel ([`super::micro_kernel`]) also
//! multiplies [`super::winograd`]'s transformed inputs.

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use super::activation::add_and_activate;
use super::conv::{Convolution, Geometry, Input, SharedOutput};
use super::im2col::{gather, valid_columns};
use super::micro_kernel::{NR, micro_tile, split_tasks, with_prepared};
use super::packed::{MR, PackedWeights};
use super::{filled_by, vectorised, with_scratch};
use crate::compute::kernels::Activation;

/// Packed inputs per group of tiles (256 KiB): the panels stay in L2 while every block
/// of output channels runs over them.
const PANEL_FLOATS: usize = 64 * 1024;

/// Whether this CPU runs the micro-kernel.
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Where the micro-kernel finds a tap's input: phase planes `pitch` wide, outputs indexed
/// `y · pitch + x`.
#[derive(Debug)]
struct Layout {
    pitch: usize,
    /// Phase plane rows.
    rows: usize,
    /// For each tap `(dy, dx)`, how far past an output's index its input lies.
    offsets: Vec<usize>,
    /// Outputs in the flat indexing: `out_h` rows of `pitch`.
    flat_len: usize,
    /// Values per prepared input channel: its phase planes and the zeros the last tile
    /// reads past them. None when the input planes are read in place.
    channel_len: Option<usize>,
}

impl Layout {
    fn new(g: &Geometry) -> Self {
        let s = g.stride;
        let reach = (g.k - 1) / s;
        let pitch = g.out_w + reach;
        let rows = g.out_h + reach;
        let phase_len = rows * pitch;
        let offsets: Vec<usize> = (0..g.k)
            .flat_map(|dy| {
                (0..g.k).map(move |dx| {
                    let phase = (dy % s) * s + dx % s;
                    phase * phase_len + (dy / s) * pitch + dx / s
                })
            })
            .collect();
        let flat_len = g.out_h * pitch;
        let furthest = offsets.iter().max().copied().unwrap_or(0) + flat_len.next_multiple_of(NR);
        let in_place = g.k == 1 && s == 1;
        Self {
            pitch,
            rows,
            flat_len,
            channel_len: (!in_place).then(|| furthest.max(s * s * phase_len)),
            offsets,
        }
    }

    fn tiles(&self) -> usize {
        self.flat_len.div_ceil(NR)
    }
}

/// One convolution's constants, shared by its tasks.
struct Job<'a> {
    g: &'a Geometry,
    layout: Layout,
    weights: &'a PackedWeights,
    bias: Option<&'a [f32]>,
    activation: Activation,
}

/// Pointers to the input channels of one image, where the micro-kernel starts reading.
struct Channels(Vec<*const f32>);

// SAFETY: the pointers are read-only views of buffers that outlive every task.
unsafe impl Sync for Channels {}
unsafe impl Send for Channels {}

/// `activation(conv2d(input, weights) + bias)` for a batch of images, padding `k / 2`, on
/// a CPU for which [`available`] holds. Returns the `(batch, cout, out_h, out_w)` outputs.
pub(super) fn convolve(conv: &Convolution, weights: &PackedWeights) -> Vec<f32> {
    let (g, input, batch) = (&conv.geometry, &conv.input, conv.batch);
    assert!(available(), "callers check `available`");
    assert_eq!(
        weights.taps(),
        g.cin * g.k * g.k,
        "weights packed for this geometry"
    );
    let job = Job {
        g,
        layout: Layout::new(g),
        weights,
        bias: conv.bias,
        activation: conv.activation,
    };
    match job.layout.channel_len {
        Some(len) => with_prepared(batch * g.cin * len, |prepared| {
            prepare(&job, input, prepared, len);
            let images: Vec<_> = prepared
                .chunks_exact(g.cin * len)
                .map(|image| {
                    let starts = image.chunks_exact(len).map(<[f32]>::as_ptr).collect();
                    (Channels(starts), None)
                })
                .collect();
            run(&job, &images)
        }),
        None => {
            let images: Vec<_> = (0..batch)
                .map(|image| in_place_channels(&job, &input.image(image)))
                .collect();
            run(&job, &images)
        }
    }
}

/// Each image's input channels, and for an input read in place whose last tile would read
/// past its planes, that tile's inputs copied with zeros after them.
type Images = [(Channels, Option<(Vec<f32>, Channels)>)];

/// The convolution of every image in `images`, on rayon's threads.
fn run(job: &Job, images: &Images) -> Vec<f32> {
    let g = job.g;
    let plane = g.out_h * g.out_w;
    let fill = |out: &mut [MaybeUninit<f32>]| {
        let out = SharedOutput(out.as_mut_ptr().cast());
        split_tasks(
            images.len(),
            g.cout.div_ceil(MR),
            job.layout.tiles(),
            |image, blocks, tiles| {
                let (channels, tail) = &images[image];
                let tail = tail.as_ref().map(|(_, starts)| starts);
                // SAFETY: `available` holds; the image lies in the buffer, and each task
                // writes the outputs of its own blocks of channels and its own tiles.
                unsafe {
                    let out_image = out.at(image * g.cout * plane);
                    convolve_task(job, channels, tail, blocks, tiles, out_image)
                }
            },
        );
    };
    // SAFETY: the tasks cover every block of output channels and every tile, and each
    // tile's store writes every output its stretch holds.
    unsafe { filled_by(images.len() * g.cout * plane, fill) }
}

/// The input channels of every image as phase planes into `out`, `len` values each.
fn prepare(job: &Job, input: &Input, out: &mut [f32], len: usize) {
    let g = job.g;
    let phase_len = job.layout.rows * job.layout.pitch;
    let phases = g.stride * g.stride;
    out.par_chunks_mut(len)
        .zip(input.whole().par_chunks(g.h * g.w))
        .for_each(|(out, channel)| {
            let (planes, tail) = out.split_at_mut(phases * phase_len);
            tail.fill(0.0);
            // The stem has three channels: its phases are the work to share.
            planes
                .par_chunks_mut(phase_len)
                .enumerate()
                .for_each(|(phase, out)| {
                    let (a, b) = (phase / g.stride, phase % g.stride);
                    vectorised(
                        #[inline(always)]
                        || phase_plane(g, &job.layout, channel, (a, b), out),
                    )
                });
        });
}

/// Phase plane `(a, b)` of one input channel: the zero-bordered input at rows
/// `stride · i + a` and columns `stride · j + b`.
#[inline(always)]
fn phase_plane(
    g: &Geometry,
    layout: &Layout,
    channel: &[f32],
    (a, b): (usize, usize),
    out: &mut [f32],
) {
    let s = g.stride;
    let pad = g.k / 2;
    let (first_row, end_row) = valid_columns(g.h, g.k, s, layout.rows, a);
    let (first, end) = valid_columns(g.w, g.k, s, layout.pitch, b);
    for (i, row) in out.chunks_exact_mut(layout.pitch).enumerate() {
        if !(first_row..end_row).contains(&i) || first >= end {
            row.fill(0.0);
            continue;
        }
        row[..first].fill(0.0);
        row[end..].fill(0.0);
        let in_row = &channel[(s * i + a - pad) * g.w..][..g.w];
        gather(&mut row[first..end], &in_row[s * first + b - pad..], s);
    }
}

/// An image's channels read in place, and if its last tile would read past the planes,
/// that tile's inputs copied with zeros after them.
fn in_place_channels(job: &Job, input: &Input) -> (Channels, Option<(Vec<f32>, Channels)>) {
    let plane = input.plane;
    let starts: Vec<*const f32> = input
        .parts
        .iter()
        .flat_map(|&(values, channels)| values.chunks_exact(plane).take(channels))
        .map(<[f32]>::as_ptr)
        .collect();
    let last = (job.layout.tiles() - 1) * NR;
    if last + NR <= plane {
        return (Channels(starts), None);
    }
    let tail: Vec<f32> = input
        .parts
        .iter()
        .flat_map(|&(values, channels)| values.chunks_exact(plane).take(channels))
        .flat_map(|channel| {
            let rest = &channel[last..];
            rest.iter()
                .copied()
                .chain(std::iter::repeat_n(0.0, NR - rest.len()))
        })
        .collect();
    let tail_starts = tail.chunks_exact(NR).map(<[f32]>::as_ptr).collect();
    (Channels(starts), Some((tail, Channels(tail_starts))))
}

/// The tiles `tiles` of output channel blocks `blocks` of one image. `tail`, when given,
/// is where the last tile reads (see [`in_place_channels`]). Tiles are taken a few at a
/// time: their inputs are packed into panels, every tap's [`NR`] values in the order the
/// micro-kernel reads them, and every block of output channels runs over those panels.
/// Read from the planes directly, the micro-kernel waited on hundreds of streams (every
/// channel, phase and tap row) that no prefetcher follows.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `channels` must be readable for every tap of every
/// tile; `out_image` must hold the image's outputs, and no other task may write these.
#[target_feature(enable = "avx2,fma")]
unsafe fn convolve_task(
    job: &Job,
    channels: &Channels,
    tail: Option<&Channels>,
    blocks: Range<usize>,
    tiles: Range<usize>,
    out_image: *mut f32,
) {
    let g = job.g;
    let last_tile = job.layout.tiles() - 1;
    let panel_len = job.weights.taps() * NR;
    let per_group = (PANEL_FLOATS / panel_len).max(1);
    let mut tile = [[0.0f32; NR]; MR];
    with_scratch(per_group.min(tiles.len()) * panel_len, |panels| {
        for first in tiles.clone().step_by(per_group) {
            let group = first..(first + per_group).min(tiles.end);
            for (t, panel) in group.clone().zip(panels.chunks_exact_mut(panel_len)) {
                let (starts, q) = match tail {
                    Some(tail) if t == last_tile => (tail, 0),
                    _ => (channels, t * NR),
                };
                // SAFETY: the caller's contract.
                unsafe { pack_panel(&starts.0, q, &job.layout.offsets, panel) };
            }
            for block in blocks.clone() {
                let weights = job.weights.block(block);
                for (t, panel) in group.clone().zip(panels.chunks_exact(panel_len)) {
                    // SAFETY: AVX2 and FMA (the caller's contract).
                    unsafe { micro_tile(panel, weights, &mut tile) };
                    let runs = TileRuns::new(job, t * NR);
                    for (m, values) in tile.iter_mut().enumerate() {
                        let co = block * MR + m;
                        if co >= g.cout {
                            break;
                        }
                        let bias = job.bias.map_or(0.0, |b| b[co]);
                        add_and_activate(values, bias, job.activation);
                        // SAFETY: the caller's contract; channel `co`'s plane lies in the image.
                        unsafe { runs.store(values, out_image.add(co * g.out_h * g.out_w)) };
                    }
                }
            }
        }
    });
}

/// The [`NR`] inputs under every tap of every channel for the outputs from flat index `q`
/// (channel `c`'s tap reads `starts[c] + q + offset`), one after another.
///
/// # Safety
/// Every read must lie inside its channel's buffer.
#[inline(always)]
unsafe fn pack_panel(starts: &[*const f32], q: usize, offsets: &[usize], panel: &mut [f32]) {
    let mut values = panel.chunks_exact_mut(NR);
    for &start in starts {
        for &offset in offsets {
            let dst = values.next().expect("the panel holds every tap");
            // SAFETY: the caller's contract.
            let src = unsafe { std::slice::from_raw_parts(start.add(q + offset), NR) };
            dst.copy_from_slice(src);
        }
    }
}

/// Where the [`NR`] outputs of the tile from flat index `q` land in an output plane
/// (`out_h × out_w`): the stretches of its rows inside the plane, as (first value, first
/// output, length). Worked out once for the tile's [`MR`] channels: a division per channel
/// cost as much as the multiply-adds of a short 1×1 convolution.
struct TileRuns {
    runs: [(usize, usize, usize); NR],
    count: usize,
}

impl TileRuns {
    #[inline(always)]
    fn new(job: &Job, q: usize) -> Self {
        let (out_w, pitch) = (job.g.out_w, job.layout.pitch);
        let end = (q + NR).min(job.layout.flat_len);
        let mut tile = Self {
            runs: [(0, 0, 0); NR],
            count: 0,
        };
        let (mut y, mut x) = (q / pitch, q % pitch);
        let mut index = q;
        while index < end {
            let run_end = (index - x + out_w).min(end);
            if run_end > index {
                tile.runs[tile.count] = (index - q, y * out_w + x, run_end - index);
                tile.count += 1;
            }
            index += pitch - x;
            (y, x) = (y + 1, 0);
        }
        tile
    }

    /// One channel's outputs of the tile into its plane `out`, leaving out the columns past
    /// `out_w` and the rows past `out_h`.
    ///
    /// # Safety
    /// `out` must be the channel's plane, and no other task may write these outputs.
    #[inline(always)]
    unsafe fn store(&self, values: &[f32; NR], out: *mut f32) {
        for &(from, to, len) in &self.runs[..self.count] {
            // SAFETY: the run lies inside the plane (`new`: rows below out_h, columns
            // below out_w) and inside the tile's values.
            unsafe { std::ptr::copy_nonoverlapping(values.as_ptr().add(from), out.add(to), len) };
        }
    }
}
