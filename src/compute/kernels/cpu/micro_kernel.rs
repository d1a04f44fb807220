//! What the direct convolution ([`super::direct`]) and Winograd ([`super::winograd`]) share:
//! the AVX2 micro-kernel that multiplies a panel of packed inputs by [`MR`] output
//! channels' weights, the split of a convolution into tasks over rayon's threads, and the
//! buffer their prepared inputs live in between calls.

use std::arch::x86_64::{
    __m256, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
    _mm256_storeu_ps,
};
use std::ops::Range;
use std::sync::Mutex;

use rayon::prelude::*;

use super::packed::MR;

/// Outputs per micro-tile: two AVX2 vectors.
pub(super) const NR: usize = 16;

/// `task(image, blocks, tiles)` on rayon's threads for every image of `batch`, every one
/// of `blocks` blocks of output channels and every one of `tiles` tiles, in about four
/// tasks per thread. Split by tiles first: a task prepares its tiles' inputs once for all
/// its blocks.
pub(super) fn split_tasks(
    batch: usize,
    blocks: usize,
    tiles: usize,
    task: impl Fn(usize, Range<usize>, Range<usize>) + Sync,
) {
    let wanted = 4 * rayon::current_num_threads();
    let tile_chunks = tiles.min(wanted.div_ceil(batch));
    let block_chunks = wanted.div_ceil(batch * tile_chunks).clamp(1, blocks);
    (0..batch * block_chunks * tile_chunks)
        .into_par_iter()
        .for_each(|index| {
            let image = index / (block_chunks * tile_chunks);
            let block_chunk = index / tile_chunks % block_chunks;
            let tile_chunk = index % tile_chunks;
            task(
                image,
                share(blocks, block_chunks, block_chunk),
                share(tiles, tile_chunks, tile_chunk),
            )
        });
}

/// Part `index` of `0..len` cut into `parts` nearly equal ranges.
fn share(len: usize, parts: usize, index: usize) -> Range<usize> {
    len * index / parts..len * (index + 1) / parts
}

/// `f` with a buffer of `len` values holding whatever earlier calls left. Prepared inputs
/// are megabytes at 640: allocated afresh they came back as pages the kernel zeroes on
/// first touch (4% of the samples).
pub(super) fn with_prepared<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    static PREPARED: Mutex<Vec<f32>> = Mutex::new(Vec::new());
    match PREPARED.try_lock() {
        Ok(mut buffer) => {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
            f(&mut buffer[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    }
}

/// The sums over every tap of [`MR`] output channels at one tile's [`NR`] outputs: `panel`
/// holds the tap's inputs and `weights` its [`MR`] weights, tap after tap.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn micro_tile(panel: &[f32], weights: &[f32], out: &mut [[f32; NR]; MR]) {
    let taps = panel.len() / NR;
    assert!(weights.len() >= taps * MR, "MR weights per tap");
    let mut acc: [[__m256; 2]; MR] = [[_mm256_setzero_ps(); 2]; MR];
    for t in 0..taps {
        // SAFETY: tap `t`'s NR inputs and MR weights lie inside `panel` and `weights`.
        unsafe {
            let x = panel.as_ptr().add(t * NR);
            let low = _mm256_loadu_ps(x);
            let high = _mm256_loadu_ps(x.add(8));
            let w = weights.as_ptr().add(t * MR);
            for (m, acc) in acc.iter_mut().enumerate() {
                let weight = _mm256_broadcast_ss(&*w.add(m));
                acc[0] = _mm256_fmadd_ps(weight, low, acc[0]);
                acc[1] = _mm256_fmadd_ps(weight, high, acc[1]);
            }
        }
    }
    for (acc, out) in acc.iter().zip(out.iter_mut()) {
        // SAFETY: each row holds NR = 16 values: two vectors of 8.
        unsafe {
            _mm256_storeu_ps(out.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), acc[1]);
        }
    }
}
