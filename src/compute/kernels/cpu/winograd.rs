//! Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions on x86 CPUs with AVX2 and FMA
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). Each 2×2
//! block of outputs is computed from the 4×4 block of inputs around it: the inputs are
//! transformed (`Bᵀ d B`), multiplied elementwise by the transformed weights (`G g Gᵀ`,
//! once per layer, [`super::packed`]) and summed over input channels, and the 16 sums are
//! transformed back (`Aᵀ m A`). That is 16 multiplications per input channel for 4
//! outputs, where direct convolution makes 36. The sums over channels are 16 small
//! matrix products, one per position of the 4×4 block, run on the direct
//! convolution's micro-kernel ([`super::micro_kernel`]):
//! the input channel takes the place of the tap, and [`NR`] blocks of outputs the place of
//! [`NR`] outputs.
//!
//! The transforms add and subtract, and the weights' transform halves: the outputs differ
//! from direct convolution's by rounding only (bounded in the tests).

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use super::activation::add_and_activate;
use super::conv::{Convolution, Geometry, SharedOutput};
use super::micro_kernel::{NR, micro_tile, split_tasks, with_prepared};
use super::packed::{MR, PackedWeights};
use super::{filled_by, with_scratch};
use crate::compute::kernels::Activation;

/// Positions in a 4×4 block: one matrix product each.
const POSITIONS: usize = 16;

/// Output channels from which Winograd is the faster method whatever the plane: each
/// group's input transform is shared by fewer products below it (measured per layer:
/// docs/cpu-performance.md).
const MANY_OUTPUTS: usize = 64;
/// Output planes (40×40) up to which it is the faster method whatever the channels.
const MID_PLANE: usize = 1600;

/// Whether a convolution with a `k × k` kernel at `stride` can run here.
pub(super) fn applies(k: usize, stride: usize) -> bool {
    k == 3 && stride == 1 && super::direct::available()
}

/// Whether it is the faster method for this convolution where it [`applies`]: from 64
/// output channels, or on planes of 40×40 and less; with fewer channels on larger planes
/// im2col's bands were faster (160×160 with 16 channels: 8.7 against 11.3 ms).
pub(super) fn faster(g: &Geometry) -> bool {
    g.cout >= MANY_OUTPUTS || g.out_h * g.out_w <= MID_PLANE
}

/// Packed weights per output channel for `cin` input channels: one per channel and
/// position.
pub(super) fn taps(cin: usize) -> usize {
    POSITIONS * cin
}

/// `G g Gᵀ` of every 3×3 kernel of `weight (cout, cin, 3, 3)`, packed for the micro-kernel
/// as `(cout, 16 · cin)` with position `ξ`'s weights at `ξ · cin + c`: the product for
/// position `ξ` reads one contiguous stretch of each block.
pub(super) fn pack_weights(weight: &[f32], cout: usize, cin: usize) -> PackedWeights {
    let mut transformed = vec![0.0; cout * taps(cin)];
    for (co, row) in transformed.chunks_exact_mut(taps(cin)).enumerate() {
        for c in 0..cin {
            let g = &weight[(co * cin + c) * 9..][..9];
            for (position, u) in transform_kernel(g).into_iter().enumerate() {
                row[position * cin + c] = u;
            }
        }
    }
    PackedWeights::pack(&transformed, cout, taps(cin))
}

/// `G g Gᵀ` with `G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]`, row-major 4×4.
fn transform_kernel(g: &[f32]) -> [f32; POSITIONS] {
    let apply = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    // G g: three columns of four.
    let columns: [[f32; 4]; 3] = std::array::from_fn(|j| apply(g[j], g[3 + j], g[6 + j]));
    let mut out = [0.0; POSITIONS];
    for i in 0..4 {
        let row = apply(columns[0][i], columns[1][i], columns[2][i]);
        out[i * 4..][..4].copy_from_slice(&row);
    }
    out
}

/// Where the 2×2 output blocks lie, and the zero-bordered input planes their 4×4 input
/// blocks are read from: `rows × pitch`, one row and column of padding each side, one more
/// where the outputs are odd.
struct Blocks {
    blocks_w: usize,
    count: usize,
    pitch: usize,
    rows: usize,
}

impl Blocks {
    fn new(g: &Geometry) -> Self {
        let (blocks_h, blocks_w) = (g.out_h.div_ceil(2), g.out_w.div_ceil(2));
        Self {
            blocks_w,
            count: blocks_h * blocks_w,
            pitch: 2 * blocks_w + 2,
            rows: 2 * blocks_h + 2,
        }
    }

    /// Values per padded input plane.
    fn plane(&self) -> usize {
        self.rows * self.pitch
    }

    /// Groups of [`NR`] blocks, in row-major order: the last may not be full.
    fn groups(&self) -> usize {
        self.count.div_ceil(NR)
    }

    /// The row and column of block `block`'s first output (its 4×4 inputs' first in the
    /// padded plane).
    fn corner(&self, block: usize) -> (usize, usize) {
        (2 * (block / self.blocks_w), 2 * (block % self.blocks_w))
    }
}

/// `activation(conv2d(input, weights) + bias)` with a 3×3 kernel, stride 1 and padding 1,
/// for a batch of images, where [`applies`] holds; `weights` from [`pack_weights`].
/// Returns the `(batch, cout, out_h, out_w)` outputs.
pub(super) fn convolve(conv: &Convolution, weights: &PackedWeights) -> Vec<f32> {
    let (g, batch) = (&conv.geometry, conv.batch);
    assert!(applies(g.k, g.stride), "callers check `applies`");
    assert_eq!(weights.taps(), taps(g.cin), "weights from pack_weights");
    let blocks = Blocks::new(g);
    let plane = g.out_h * g.out_w;
    let image_len = g.cin * blocks.plane();
    with_prepared(batch * image_len, |padded| {
        padded
            .par_chunks_mut(blocks.plane())
            .zip(conv.input.whole().par_chunks(g.h * g.w))
            .for_each(|(out, channel)| pad(g, &blocks, channel, out));
        let padded = &*padded;
        let fill = |out: &mut [MaybeUninit<f32>]| {
            let out = SharedOutput(out.as_mut_ptr().cast());
            let job = Job {
                g,
                blocks: &blocks,
                weights,
                bias: conv.bias,
                activation: conv.activation,
            };
            split_tasks(
                batch,
                g.cout.div_ceil(MR),
                blocks.groups(),
                |image, channel_blocks, groups| {
                    let image_input = &padded[image * image_len..][..image_len];
                    // SAFETY: `applies` checked AVX2 and FMA; the image's outputs lie in
                    // the buffer, and this task writes only its blocks of channels at its
                    // groups of output blocks.
                    unsafe {
                        convolve_task(
                            &job,
                            image_input,
                            channel_blocks,
                            groups,
                            out.at(image * g.cout * plane),
                        )
                    }
                },
            );
        };
        // SAFETY: the tasks cover every block of channels and every output block, and
        // each writes every output of its 2×2 blocks that lies in the plane.
        unsafe { filled_by(batch * g.cout * plane, fill) }
    })
}

/// One input channel into its zero-bordered plane.
fn pad(g: &Geometry, blocks: &Blocks, channel: &[f32], out: &mut [f32]) {
    for (row, padded_row) in out.chunks_exact_mut(blocks.pitch).enumerate() {
        match row.checked_sub(1).filter(|&y| y < g.h) {
            Some(y) => {
                padded_row[0] = 0.0;
                padded_row[1..=g.w].copy_from_slice(&channel[y * g.w..][..g.w]);
                padded_row[g.w + 1..].fill(0.0);
            }
            None => padded_row.fill(0.0),
        }
    }
}

/// One convolution's constants, shared by its tasks.
struct Job<'a> {
    g: &'a Geometry,
    blocks: &'a Blocks,
    weights: &'a PackedWeights,
    bias: Option<&'a [f32]>,
    activation: Activation,
}

/// Groups of [`NR`] output blocks `groups` of output channel blocks `channel_blocks` of
/// one image (`input`: its padded planes). Each group's inputs are transformed once into
/// 16 panels, one per position, each channel's [`NR`] values in turn; every block of
/// channels multiplies them with its weights, and its sums are transformed back.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `out_image` must hold the image's outputs, and no
/// other task may write these.
#[target_feature(enable = "avx2,fma")]
unsafe fn convolve_task(
    job: &Job,
    input: &[f32],
    channel_blocks: Range<usize>,
    groups: Range<usize>,
    out_image: *mut f32,
) {
    let g = job.g;
    let cin = g.cin;
    let panel_len = cin * NR;
    let plane = job.blocks.plane();
    let mut sums = [[[0.0f32; NR]; MR]; POSITIONS];
    with_scratch(POSITIONS * panel_len, |panels| {
        for group in groups {
            let places = OutputPlaces::new(job, group);
            for c in 0..cin {
                let values = transform_inputs(&places, &input[c * plane..][..plane]);
                for (position, values) in values.iter().enumerate() {
                    panels[position * panel_len + c * NR..][..NR].copy_from_slice(values);
                }
            }
            for block in channel_blocks.clone() {
                let weights = job.weights.block(block);
                for (position, sums) in sums.iter_mut().enumerate() {
                    let panel = &panels[position * panel_len..][..panel_len];
                    let weights = &weights[position * cin * MR..][..cin * MR];
                    // SAFETY: AVX2 and FMA (the caller's contract).
                    unsafe { micro_tile(panel, weights, sums) };
                }
                for m in 0..MR {
                    let co = block * MR + m;
                    if co >= g.cout {
                        break;
                    }
                    let mut outputs = transform_sums(&sums, m);
                    add_and_activate(
                        outputs.as_flattened_mut(),
                        job.bias.map_or(0.0, |b| b[co]),
                        job.activation,
                    );
                    // SAFETY: the caller's contract; channel `co`'s plane lies in the image.
                    unsafe { places.store(&outputs, out_image.add(co * g.out_h * g.out_w)) };
                }
            }
        }
    });
}

/// `Bᵀ d B` of the 4×4 inputs `d` of a group's blocks in one channel's padded plane
/// (zeros past the last block), with `Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]`:
/// position by position, the [`NR`] blocks' values.
#[inline(always)]
fn transform_inputs(places: &OutputPlaces, channel: &[f32]) -> [[f32; NR]; POSITIONS] {
    let mut d = [[0.0f32; NR]; POSITIONS];
    for (n, &corner) in places.corner[..places.count].iter().enumerate() {
        for i in 0..4 {
            let row = &channel[corner + i * places.pitch..][..4];
            for (j, &value) in row.iter().enumerate() {
                d[i * 4 + j][n] = value;
            }
        }
    }
    // Bᵀ d, then (Bᵀ d) B: each a combination of four rows (columns) of the block.
    let combine = |a: &[f32; NR], b: &[f32; NR], c: &[f32; NR], e: &[f32; NR]| {
        let mut out = [[0.0f32; NR]; 4];
        for n in 0..NR {
            out[0][n] = a[n] - c[n];
            out[1][n] = b[n] + c[n];
            out[2][n] = c[n] - b[n];
            out[3][n] = b[n] - e[n];
        }
        out
    };
    let mut rows = [[0.0f32; NR]; POSITIONS];
    for j in 0..4 {
        let column = combine(&d[j], &d[4 + j], &d[8 + j], &d[12 + j]);
        for i in 0..4 {
            rows[i * 4 + j] = column[i];
        }
    }
    let mut out = [[0.0f32; NR]; POSITIONS];
    for i in 0..4 {
        let row = combine(
            &rows[i * 4],
            &rows[i * 4 + 1],
            &rows[i * 4 + 2],
            &rows[i * 4 + 3],
        );
        out[i * 4..][..4].copy_from_slice(&row);
    }
    out
}

/// `Aᵀ m A` of output channel `m`'s sums, with `Aᵀ = [1 1 1 0; 0 1 −1 −1]`: the 2×2
/// outputs `(a, b)` of each of the [`NR`] blocks, at `[2a + b][n]`.
#[inline(always)]
fn transform_sums(sums: &[[[f32; NR]; MR]; POSITIONS], m: usize) -> [[f32; NR]; 4] {
    let at = |position: usize| &sums[position][m];
    let combine = |a: &[f32; NR], b: &[f32; NR], c: &[f32; NR], e: &[f32; NR]| {
        let mut out = [[0.0f32; NR]; 2];
        for n in 0..NR {
            out[0][n] = a[n] + b[n] + c[n];
            out[1][n] = b[n] - c[n] - e[n];
        }
        out
    };
    // Aᵀ m: two rows of four.
    let mut rows = [[[0.0f32; NR]; 4]; 2];
    for j in 0..4 {
        let column = combine(at(j), at(4 + j), at(8 + j), at(12 + j));
        rows[0][j] = column[0];
        rows[1][j] = column[1];
    }
    let mut out = [[0.0f32; NR]; 4];
    for (a, row) in rows.iter().enumerate() {
        let pair = combine(&row[0], &row[1], &row[2], &row[3]);
        out[2 * a] = pair[0];
        out[2 * a + 1] = pair[1];
    }
    out
}

/// Where a group's blocks are, worked out once for all its channels: each block's 4×4
/// inputs in the padded planes, its first output in the output planes, and whether all
/// four outputs lie in the plane.
struct OutputPlaces {
    corner: [usize; NR],
    first: [usize; NR],
    whole: [bool; NR],
    count: usize,
    pitch: usize,
    out_w: usize,
    out_h: usize,
}

impl OutputPlaces {
    fn new(job: &Job, group: usize) -> Self {
        let g = job.g;
        let first_block = group * NR;
        let count = NR.min(job.blocks.count - first_block);
        let mut places = Self {
            corner: [0; NR],
            first: [0; NR],
            whole: [false; NR],
            count,
            pitch: job.blocks.pitch,
            out_w: g.out_w,
            out_h: g.out_h,
        };
        for n in 0..count {
            let (y, x) = job.blocks.corner(first_block + n);
            places.corner[n] = y * job.blocks.pitch + x;
            places.first[n] = y * g.out_w + x;
            places.whole[n] = y + 1 < g.out_h && x + 1 < g.out_w;
        }
        places
    }

    /// One channel's outputs of the group into its plane `out`, leaving out those past its
    /// last row or column.
    ///
    /// # Safety
    /// `out` must be the channel's plane, and no other task may write these outputs.
    #[inline(always)]
    unsafe fn store(&self, outputs: &[[f32; NR]; 4], out: *mut f32) {
        for n in 0..self.count {
            let first = self.first[n];
            let (y, x) = if self.whole[n] {
                (0, 0)
            } else {
                (first / self.out_w, first % self.out_w)
            };
            for (a, b) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                if self.whole[n] || (y + a < self.out_h && x + b < self.out_w) {
                    // SAFETY: the output lies inside the plane.
                    unsafe { *out.add(first + a * self.out_w + b) = outputs[2 * a + b][n] };
                }
            }
        }
    }
}
