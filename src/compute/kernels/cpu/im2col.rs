//! im2col on the CPU: the rows of a convolution's input matrix gathered straight from the
//! NCHW input planes (long runs along x, where flex converts to channels-last and gathers
//! channel by channel), zeros written only where a tap reads padding.

use super::conv::Geometry;
use super::vectorised;

/// Output columns `[first, end)` of a row of `out_w` that kernel tap `dx` (of a `k`-wide
/// kernel at `stride`, padding `k / 2`) reads inside an input row of `w`; the others read
/// padding.
pub(super) fn valid_columns(
    w: usize,
    k: usize,
    stride: usize,
    out_w: usize,
    dx: usize,
) -> (usize, usize) {
    let pad = k / 2;
    // ix = ox * stride + dx - pad must lie in 0..w.
    let first = pad.saturating_sub(dx).div_ceil(stride);
    let end = if w + pad > dx {
        ((w + pad - dx - 1) / stride + 1).min(out_w)
    } else {
        0
    };
    (first.min(end), end)
}

/// The `k · k` im2col rows of one input channel (`channel` starts at its plane) for
/// output rows `first_row..first_row + rows`: row `(dy, dx)` holds the input under that
/// tap for every output, and zero where the tap falls in the padding. Writes all of `out`.
pub(super) fn im2col_channel(
    g: &Geometry,
    channel: &[f32],
    first_row: usize,
    rows: usize,
    out: &mut [f32],
) {
    vectorised(
        #[inline(always)]
        || im2col_rows(g, channel, first_row, rows, out),
    );
}

#[inline(always)]
fn im2col_rows(g: &Geometry, channel: &[f32], first_row: usize, rows: usize, out: &mut [f32]) {
    let columns = rows * g.out_w;
    let pad = g.k / 2;
    let mut tap_rows = out.chunks_exact_mut(columns);
    for dy in 0..g.k {
        for dx in 0..g.k {
            let tap_row = tap_rows.next().expect("one im2col row per tap");
            let (first, end) = valid_columns(g.w, g.k, g.stride, g.out_w, dx);
            for (r, out_row) in tap_row.chunks_exact_mut(g.out_w).enumerate() {
                let iy = (first_row + r) * g.stride + dy;
                if first >= end || iy < pad || iy - pad >= g.h {
                    out_row.fill(0.0);
                    continue;
                }
                out_row[..first].fill(0.0);
                out_row[end..].fill(0.0);
                let in_row = &channel[(iy - pad) * g.w..(iy - pad + 1) * g.w];
                let start = first * g.stride + dx - pad;
                let dst = &mut out_row[first..end];
                gather(dst, &in_row[start..], g.stride);
            }
        }
    }
}

/// `dst[i] = src[i · stride]`. Stride 2 (every downsampling conv) is written as pairs so
/// that it vectorises: `step_by` left it a scalar loop, 10% of the CPU profile.
#[inline(always)]
pub(super) fn gather(dst: &mut [f32], src: &[f32], stride: usize) {
    match stride {
        1 => dst.copy_from_slice(&src[..dst.len()]),
        2 => {
            let Some((last, rest)) = dst.split_last_mut() else {
                return;
            };
            for (d, pair) in rest.iter_mut().zip(src.chunks_exact(2)) {
                *d = pair[0];
            }
            *last = src[2 * rest.len()];
        }
        _ => {
            for (d, s) in dst.iter_mut().zip(src.iter().step_by(stride)) {
                *d = *s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let out_w = (w + 2 * (k / 2) - k) / stride + 1;
            for dx in 0..k {
                let (first, end) = valid_columns(w, k, stride, out_w, dx);
                for ox in 0..out_w {
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
