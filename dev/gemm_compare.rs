//! The GEMM crates side by side on the products this crate runs: `cargo run --release --example gemm_compare
//! [-- ROUNDS]` prints, for each shape and for 1 and 2 rayon threads, the median GFLOP/s (`2·m·n·k / time`)
//! of every candidate over ROUNDS interleaved rounds (default 7), and whether its bits were the same on 1, 2
//! and 3 threads.
//!
//! Candidates (all `f32`, output column-major, operands strided exactly as the engines pass them):
//! - `mm-blocks`: matrixmultiply, one single-threaded call per fixed block of output columns, blocks over
//!   rayon (the scheme the engines used before [`cnn_as_mlp::gemm`] moved to faer's kernels);
//! - `gemm`: the `gemm` crate (candle's, faer's before 0.20), `Parallelism::Rayon(threads)`;
//! - `pgemm`: `private-gemm-x86`, faer's own x86 kernels (what `faer::linalg::matmul` runs), one
//!   single-threaded call (the crate builds it without its own threading, which spins on `spindle` barriers);
//! - `crate`: [`cnn_as_mlp::gemm::par_gemm`], what the engines run now: `pgemm` calls on fixed blocks of the
//!   output over rayon.
//!
//! Shapes: 1024³; the three products of the im2col convolution `64x56x56 > conv(64,3,pad=1)` (`c64-56`) at
//! batch 1, 8 and 32 (forward `[B·P, Q] @ [Q, 64]`, input gradient `[B·P, 64] @ [64, Q]` with the weight read
//! row-major, parameter gradient `colᵀ @ δz` `[Q, B·P] @ [B·P, 64]` with `col` read row-major; `P = 3136`,
//! `Q = 576`); and the three dense layers of LeNet-5 on one shard of 32 samples (what training runs), each forward, input and
//! parameter gradient.

use std::time::Instant;

use cnn_as_mlp::gemm::Strided;

/// One product `[m, k] @ [k, n]`: `a_rm` / `b_rm` say whether A / B are read row-major (else column-major);
/// `cols_per_task` is the block the engine uses for it.
struct Shape {
    name: String,
    m: usize,
    k: usize,
    n: usize,
    a_rm: bool,
    b_rm: bool,
    cols_per_task: usize,
}

impl Shape {
    fn strides(&self) -> ((isize, isize), (isize, isize)) {
        let (m, k, n) = (self.m as isize, self.k as isize, self.n as isize);
        let a = if self.a_rm { (k, 1) } else { (1, m) };
        let b = if self.b_rm { (n, 1) } else { (1, k) };
        (a, b)
    }
}

fn shapes() -> Vec<Shape> {
    let mut v =
        vec![Shape { name: "1024^3".into(), m: 1024, k: 1024, n: 1024, a_rm: false, b_rm: false, cols_per_task: 256 }];
    let (p, q, c) = (56 * 56, 64 * 9, 64);
    for batch in [1, 8, 32] {
        let bp = batch * p;
        v.push(Shape {
            name: format!("c64-56 b{batch} fwd"),
            m: bp,
            k: q,
            n: c,
            a_rm: false,
            b_rm: false,
            cols_per_task: 16,
        });
        v.push(Shape {
            name: format!("c64-56 b{batch} dx"),
            m: bp,
            k: c,
            n: q,
            a_rm: false,
            b_rm: true,
            cols_per_task: 16,
        });
        v.push(Shape {
            name: format!("c64-56 b{batch} dw"),
            m: q,
            k: bp,
            n: c,
            a_rm: true,
            b_rm: false,
            cols_per_task: 16,
        });
    }
    let dense_cols = |n: usize| n.div_ceil(4).next_multiple_of(8).max(16);
    for (n_in, n_out) in [(400, 120), (120, 84), (84, 10)] {
        let b = 32;
        let tag = format!("lenet {n_in}>{n_out} b32");
        v.push(Shape {
            name: format!("{tag} fwd"),
            m: b,
            k: n_in,
            n: n_out,
            a_rm: false,
            b_rm: false,
            cols_per_task: dense_cols(n_out),
        });
        v.push(Shape {
            name: format!("{tag} dx"),
            m: b,
            k: n_out,
            n: n_in,
            a_rm: false,
            b_rm: true,
            cols_per_task: dense_cols(n_in),
        });
        v.push(Shape {
            name: format!("{tag} dw"),
            m: n_in,
            k: b,
            n: n_out,
            a_rm: true,
            b_rm: false,
            cols_per_task: dense_cols(n_out),
        });
    }
    v
}

/// `c = a @ b + c` (column-major `c`) by candidate `which` on the current rayon pool.
fn run(which: &str, s: &Shape, a: &[f32], b: &[f32], c: &mut [f32], threads: usize) {
    let (m, k, n) = (s.m, s.k, s.n);
    let ((ars, acs), (brs, bcs)) = s.strides();
    match which {
        "mm-blocks" => {
            use rayon::prelude::*;
            let w = s.cols_per_task;
            c.par_chunks_mut(m * w).enumerate().for_each(|(t, block)| {
                let nj = block.len() / m;
                let bb = &b[t * w * bcs as usize..];
                // SAFETY: A (m, k), B's columns t·w.. t·w + nj and the (m, nj) block lie inside their buffers.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        nj,
                        1.0,
                        a.as_ptr(),
                        ars,
                        acs,
                        bb.as_ptr(),
                        brs,
                        bcs,
                        1.0,
                        block.as_mut_ptr(),
                        1,
                        m as isize,
                    )
                }
            });
        }
        "gemm" => {
            let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
            // SAFETY: shapes and strides address the buffers' elements; c does not alias a or b.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    m as isize,
                    1,
                    true,
                    a.as_ptr(),
                    acs,
                    ars,
                    b.as_ptr(),
                    bcs,
                    brs,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                )
            }
        }
        "pgemm" => {
            let instr = if std::arch::is_x86_feature_detected!("avx512f") {
                private_gemm_x86::InstrSet::Avx512
            } else {
                private_gemm_x86::InstrSet::Avx256
            };
            let one = 1.0f32;
            // SAFETY: as above; alpha points at an f32.
            unsafe {
                private_gemm_x86::gemm(
                    private_gemm_x86::DType::F32,
                    private_gemm_x86::IType::U64,
                    instr,
                    m,
                    n,
                    k,
                    c.as_mut_ptr().cast(),
                    1,
                    m as isize,
                    std::ptr::null(),
                    std::ptr::null(),
                    private_gemm_x86::DstKind::Full,
                    private_gemm_x86::Accum::Add,
                    a.as_ptr().cast(),
                    ars,
                    acs,
                    false,
                    std::ptr::null(),
                    0,
                    b.as_ptr().cast(),
                    brs,
                    bcs,
                    false,
                    (&raw const one).cast(),
                    1,
                )
            }
        }
        "crate" => {
            let sa = Strided { data: a, rows: m, cols: k, rs: ars as usize, cs: acs as usize };
            let sb = Strided { data: b, rows: k, cols: n, rs: brs as usize, cs: bcs as usize };
            cnn_as_mlp::gemm::par_gemm(c, sa, sb, 1.0);
        }
        _ => unreachable!(),
    }
}

const CANDIDATES: [&str; 4] = ["mm-blocks", "gemm", "pgemm", "crate"];

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a rayon pool")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(7, |a| a.parse().expect("ROUNDS is a number"));
    println!(
        "# median GFLOP/s over {rounds} interleaved rounds; 'bits' = same output on 1, 2 and 3 threads (y/n); avx512f: {}",
        std::arch::is_x86_feature_detected!("avx512f")
    );
    print!("{:<26} {:>5} {:>5} {:>5} {:>3}", "shape", "m", "k", "n", "thr");
    for c in CANDIDATES {
        print!(" {c:>10}");
    }
    println!();
    let pools: Vec<_> = [1, 2, 3].into_iter().map(pool).collect();
    for s in shapes() {
        let mut x = 0x1234_5678_u32;
        let mut rnd = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                })
                .collect()
        };
        let (a, b, c0) = (rnd(s.m * s.k), rnd(s.k * s.n), rnd(s.m * s.n));
        // Bits on 1, 2, 3 threads.
        let same: Vec<bool> = CANDIDATES
            .iter()
            .map(|w| {
                let outs: Vec<Vec<f32>> = pools
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let mut c = c0.clone();
                        p.install(|| run(w, &s, &a, &b, &mut c, i + 1));
                        c
                    })
                    .collect();
                outs.iter().all(|o| o.iter().zip(&outs[0]).all(|(u, v)| u.to_bits() == v.to_bits()))
            })
            .collect();
        let flop = 2.0 * (s.m * s.n * s.k) as f64;
        // Repetitions per timing: about 20 ms of work at 50 GFLOP/s.
        let reps = ((0.02 * 50e9 / flop).ceil() as usize).max(1);
        for threads in [1, 2] {
            let p = &pools[threads - 1];
            let mut times = vec![Vec::new(); CANDIDATES.len()];
            let mut c = c0.clone();
            for round in 0..=rounds {
                for (i, w) in CANDIDATES.iter().enumerate() {
                    let t0 = Instant::now();
                    p.install(|| {
                        for _ in 0..reps {
                            run(w, &s, &a, &b, &mut c, threads)
                        }
                    });
                    if round > 0 {
                        times[i].push(t0.elapsed().as_secs_f64() / reps as f64);
                    }
                }
            }
            print!("{:<26} {:>5} {:>5} {:>5} {:>3}", s.name, s.m, s.k, s.n, threads);
            for (i, t) in times.iter_mut().enumerate() {
                print!(" {:>8.1} {}", flop / median(t) / 1e9, if same[i] { 'y' } else { 'n' });
            }
            println!();
        }
    }
}
