//! Times the three products of a convolution pruned by a random kernel mask (as `compare --sparsity` draws it),
//! for profiling the pruned kernels: `target/release/examples/pruned_time c64-56|c32-64 SPARSITY [REPS]
//! [THREADS]` prints the median milliseconds of forward, input gradient and parameter gradient at batch 64 (`BATCH=B`
//! for another, `C_OUT=C` for C output channels instead of 64; sparsity 0 is the plain convolution; `ALIGN=1` puts the buffers on 64-byte boundaries).
//! Run it under `perf record` to see where a pruned product spends its time.

#[path = "common/env.rs"]
mod env;

use std::time::Instant;

use cnn_as_mlp::compare::measure::random_mask;
use cnn_as_mlp::engines::sparse::conv::{compile_conv_compact, compile_conv_in};
use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode};
use cnn_as_mlp::tied::{Storage, gradients, products};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn main() {
    env::apply();
    let args: Vec<String> = std::env::args().collect();
    let layer = args.get(1).map_or("c64-56", String::as_str);
    let s: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0.9);
    let reps: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5);
    let threads: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(2);
    // c32-64 is compare's 32x16x16 layer; cC-H is C channels on H x H (c64-56 by default).
    let (c_in, h) = match layer {
        "c32-64" => (32, 16),
        l => l
            .strip_prefix('c')
            .and_then(|r| r.split_once('-'))
            .and_then(|(c, h)| Some((c.parse().ok()?, h.parse().ok()?)))
            .unwrap_or((64, 56)),
    };
    let c_out: usize = std::env::var("C_OUT").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let g = ConvGeometry { c_in, h_in: h, w_in: h, c_out, k: 3, stride: 1, pad: 1, dil: 1, mode: PaddingMode::Zeros };
    // Sparsity 0 compiles the plain convolution, as a network does.
    let m = if s == 0.0 {
        compile_conv_compact(&g)
    } else {
        compile_conv_in(&g, 1, None, Some(&random_mask(g.c_out * g.c_in * 9, s, 0)), Storage::Compact)
    };
    let (rows, cols) = m.shape();
    let b: usize = std::env::var("BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let mut rng = StdRng::seed_from_u64(1);
    let mut rand = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let align = std::env::var("ALIGN").is_ok();
    // A buffer of n values whose first value is 64-byte aligned when ALIGN is set (16 bytes past a line
    // otherwise, as a large malloc gives).
    let place = |v: Vec<f32>| -> (Vec<f32>, usize) {
        let n = v.len();
        let mut buf = vec![0.0f32; n + 32];
        let a = buf.as_ptr() as usize;
        let off = if align { (64 - a % 64) % 64 / 4 } else { ((64 - a % 64) % 64 + 16) / 4 };
        buf[off..off + n].copy_from_slice(&v);
        (buf, off)
    };
    let n_x = b * cols;
    let n_y = b * rows;
    let theta = rand(m.n_params());
    let (xb, xo) = place(rand(n_x));
    let (dyb, dyo) = place(rand(n_y));
    let (x, dy) = (&xb[xo..xo + n_x], &dyb[dyo..dyo + n_y]);
    let (mut yb, yo) = place(vec![0.0; n_y]);
    let (mut dxb, dxo) = place(vec![0.0; n_x]);
    let y = &mut yb[yo..yo + n_y];
    let dx = &mut dxb[dxo..dxo + n_x];
    let (mut dt, mut scratch) = (vec![0.0; m.n_params()], Vec::new());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
    let median = |f: &mut (dyn FnMut() + Send)| {
        let mut t: Vec<f64> = (0..=reps)
            .map(|_| {
                let t0 = Instant::now();
                pool.install(&mut *f);
                t0.elapsed().as_secs_f64() * 1e3
            })
            .skip(1)
            .collect();
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let fwd = median(&mut || products::forward(&m, &theta, None, x, y, b));
    let bwd = median(&mut || products::backward_input(&m, &theta, dy, dx, b));
    let grad = median(&mut || gradients::param_grad(&m, x, dy, &mut dt, &mut scratch, b));
    println!(
        "{layer} sparsity {s} nnz {} threads {threads}: forward {fwd:.3} ms, input grad {bwd:.3} ms, param grad {grad:.3} ms (checksum {})",
        m.nnz(),
        y[0] + dx[0] + dt[0]
    );
}
