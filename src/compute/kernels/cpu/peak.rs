//! This machine's arithmetic ceiling, measured: chains of fused multiply-adds at the widest
//! vector width the CPU has, independent enough that the FMA units never wait on a result.
//! `bench --profile` divides each layer's GFLOP/s by it; a datasheet's figure would not say
//! what a shared, throttled or virtualised core actually gives.

use std::time::Instant;

/// Independent accumulators: more than the FMA units' latency × throughput (4 × 2 on
/// current x86 cores), few enough to stay in registers (16 with AVX2).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const CHAINS: usize = 12;
/// Rounds of `CHAINS` multiply-adds per timing: about 10 ms at 3 GHz.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const ROUNDS: usize = 1 << 22;
/// Timings per measurement; the fastest counts (the others lost time to other work).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const REPEATS: usize = 20;

/// The measured ceiling.
#[derive(Debug, Clone, Copy)]
pub struct FmaPeak {
    /// The instructions measured ("AVX-512" or "AVX2").
    pub instructions: &'static str,
    /// GFLOP/s of one thread.
    pub one_thread: f64,
    /// GFLOP/s of all of rayon's threads at once.
    pub all_threads: f64,
    pub threads: usize,
}

/// The ceiling, or `None` where there is no FMA loop of ours (not x86-64, or no AVX2 + FMA).
pub fn fma_peak() -> Option<FmaPeak> {
    let (instructions, lanes, run) = fma_loop()?;
    let flops_per_run = (2 * ROUNDS * CHAINS * lanes) as f64;
    let best_seconds =
        |timing: &dyn Fn() -> f64| (0..REPEATS).map(|_| timing()).fold(f64::INFINITY, f64::min);
    let one = best_seconds(&|| {
        timed(|| {
            std::hint::black_box(run(std::hint::black_box(ROUNDS)));
        })
    });
    let threads = rayon::current_num_threads();
    let all = best_seconds(&|| {
        timed(|| {
            rayon::broadcast(|_| std::hint::black_box(run(ROUNDS)));
        })
    });
    Some(FmaPeak {
        instructions,
        one_thread: flops_per_run / one / 1e9,
        all_threads: flops_per_run * threads as f64 / all / 1e9,
        threads,
    })
}

fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

/// The widest loop this CPU runs: its name, its f32 lanes, and the loop (rounds → a value
/// the caller keeps, so the loop is not optimised away).
type FmaLoop = (&'static str, usize, fn(usize) -> f32);

#[cfg(target_arch = "x86_64")]
fn fma_loop() -> Option<FmaLoop> {
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has just been found to support AVX-512F.
        return Some(("AVX-512", 16, |rounds| unsafe { fma_avx512(rounds) }));
    }
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has just been found to support AVX2 and FMA.
        return Some(("AVX2", 8, |rounds| unsafe { fma_avx2(rounds) }));
    }
    None
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_loop() -> Option<FmaLoop> {
    None
}

/// `$name(rounds)`: [`CHAINS`] independent chains of `rounds` multiply-adds on `$vector`s
/// (under `$feature`), summed lane by lane at the end.
macro_rules! fma_chains {
    ($name:ident, $feature:literal, $vector:ident, $lanes:literal, $set1:ident, $fmadd:ident, $add:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        fn $name(rounds: usize) -> f32 {
            use std::arch::x86_64::*;
            let (a, b) = std::hint::black_box(($set1(0.999_999), $set1(1e-6)));
            let mut chains = [$set1(1.0); CHAINS];
            for _ in 0..rounds {
                for chain in &mut chains {
                    *chain = $fmadd(*chain, a, b);
                }
            }
            let sum = chains.iter().fold($set1(0.0), |s, &c| $add(s, c));
            // SAFETY: a vector of f32 lanes has the layout of an array of them.
            unsafe { std::mem::transmute::<$vector, [f32; $lanes]>(sum) }
                .iter()
                .sum()
        }
    };
}

fma_chains!(
    fma_avx2,
    "avx2,fma",
    __m256,
    8,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_add_ps
);
fma_chains!(
    fma_avx512,
    "avx512f",
    __m512,
    16,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_add_ps
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop computes what its arithmetic says (so the timing is of real work), and the
    /// ceiling it gives is plausible: every x86-64 core with FMA does at least one 8-wide
    /// multiply-add a cycle at 1 GHz, and none does more than two 16-wide ones a cycle at
    /// 6 GHz.
    #[test]
    fn peak_is_measured_on_real_arithmetic() {
        let Some((instructions, lanes, run)) = fma_loop() else {
            eprintln!("skipped: this CPU has no FMA loop of ours");
            return;
        };
        let mut expected = 1.0f32;
        for _ in 0..1000 {
            expected = expected.mul_add(0.999_999, 1e-6);
        }
        let got = run(1000);
        let want = expected * (CHAINS * lanes) as f32;
        assert!(
            (got - want).abs() < 1e-3 * want,
            "{instructions}: {got} vs {want}"
        );
        let peak = fma_peak().expect("the loop exists");
        eprintln!("{peak:?}");
        assert!(
            (16.0..=6.0 * 2.0 * 32.0).contains(&peak.one_thread),
            "{peak:?}"
        );
        assert!(peak.all_threads >= 0.5 * peak.one_thread, "{peak:?}");
    }
}
