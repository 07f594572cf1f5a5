//! The machine's peak `f32` multiply-add rate, the ceiling every engine (and PyTorch) works under:
//! `target/release/examples/fma_peak [THREADS]` runs, on each thread, 12 independent chains of 8-lane
//! fused multiply-adds that stay in registers (no memory traffic), and prints the median GFLOP/s over
//! 7 runs (2 FLOP per lane per multiply-add); with AVX-512 it prints the same for 16-lane chains, the
//! width the AVX-512 kernels use. It needs AVX2 and FMA; elsewhere it says so and exits.

use std::time::Instant;

/// Multiply-adds per chain and run.
const STEPS: usize = 50_000_000;

/// 12 chains of 8-lane multiply-adds; returns their lanes summed (so that nothing is optimised away).
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chains() -> f32 {
    use std::arch::x86_64::*;
    let m = _mm256_set1_ps(0.999_999);
    let c = _mm256_set1_ps(1e-7);
    let mut a = [_mm256_set1_ps(1.0); 12];
    for _ in 0..STEPS {
        for v in a.iter_mut() {
            *v = _mm256_fmadd_ps(*v, m, c);
        }
    }
    let mut out = [0.0f32; 8];
    let s = a.iter().fold(_mm256_setzero_ps(), |s, &v| _mm256_add_ps(s, v));
    // SAFETY: out holds 8 values.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
    out.iter().sum()
}

/// [`chains`] with 16-lane AVX-512 multiply-adds.
///
/// # Safety
/// The CPU has AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn chains_512() -> f32 {
    use std::arch::x86_64::*;
    let m = _mm512_set1_ps(0.999_999);
    let c = _mm512_set1_ps(1e-7);
    let mut a = [_mm512_set1_ps(1.0); 12];
    for _ in 0..STEPS {
        for v in a.iter_mut() {
            *v = _mm512_fmadd_ps(*v, m, c);
        }
    }
    _mm512_reduce_add_ps(a.iter().fold(_mm512_setzero_ps(), |s, &v| _mm512_add_ps(s, v)))
}

/// Median GFLOP/s of 7 runs of `chain` on `threads` threads, `lanes` lanes per multiply-add.
fn rate(threads: usize, lanes: usize, chain: fn() -> f32) -> (f64, f64, f64) {
    let mut rates: Vec<f64> = (0..7)
        .map(|_| {
            let t0 = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| std::hint::black_box(chain()));
                }
            });
            (threads * STEPS * 12 * lanes * 2) as f64 / t0.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    (rates[3], rates[0], rates[6])
}

fn main() {
    let threads: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    #[cfg(target_arch = "x86_64")]
    if cnn_as_mlp::cpu::has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        let (m, lo, hi) = rate(threads, 8, || unsafe { chains() });
        println!("fma_peak: threads {threads}: {m:.1} GFLOP/s, 8 lanes (median of 7; runs {lo:.1} .. {hi:.1})");
        if cnn_as_mlp::cpu::has_avx512() {
            // SAFETY: the CPU has AVX-512F (checked just now).
            let (m, lo, hi) = rate(threads, 16, || unsafe { chains_512() });
            println!("fma_peak: threads {threads}: {m:.1} GFLOP/s, 16 lanes (median of 7; runs {lo:.1} .. {hi:.1})");
        }
        return;
    }
    println!("fma_peak: this CPU has no AVX2 + FMA");
}
