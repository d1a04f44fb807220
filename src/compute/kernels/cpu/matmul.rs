//! A plain matrix product on `gemm`'s kernels (chosen for the CPU at run time), for the
//! few products outside the model's layers: a segmentation head's mask coefficients
//! times its prototypes.

/// `lhs (m × k) · rhs (k × n)`, all row-major, as a new `m × n` matrix; split over rayon's
/// threads when large.
///
/// # Panics
/// When `lhs` is not `m × k` or `rhs` not `k × n` values long.
pub fn matmul(lhs: &[f32], rhs: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    assert_eq!(lhs.len(), m * k, "lhs is m × k");
    assert_eq!(rhs.len(), k * n, "rhs is k × n");
    let mut out = vec![0.0f32; m * n];
    if m == 0 || n == 0 || k == 0 {
        return out;
    }
    // Below about a million multiply-adds, waking the threads costs more than it saves.
    let parallelism = if m * k * n >= 1 << 20 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above size the three buffers as the strides below address them:
    // out (i, j) at i·n + j, lhs (i, t) at i·k + t, rhs (t, j) at t·n + j.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_agree_with_the_textbook_sum() {
        for (m, k, n) in [(1, 1, 1), (3, 32, 17), (20, 32, 160 * 96), (0, 4, 5)] {
            let lhs: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
            let rhs: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 * 0.25).collect();
            let got = matmul(&lhs, &rhs, m, k, n);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|t| lhs[i * k + t] * rhs[t * n + j]).sum();
                    assert!((got[i * n + j] - want).abs() <= 1e-4 * want.abs().max(1.0));
                }
            }
        }
    }
}
