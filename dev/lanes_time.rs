//! Runs one tied product of a 3×3 convolution with padding 1 (`C` channels in and out on `H × H`, c64-56 by
//! default) at a small batch many times on one thread, for steady CPU-time measurements of the lane kernels on a
//! shared machine: `/usr/bin/time -f %U target/release/examples/lanes_time fwd|bwd|grad REPS BATCH [C H]`.

#[path = "common/env.rs"]
mod env;

use cnn_as_mlp::engines::sparse::conv::compile_conv_compact;
use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode};
use cnn_as_mlp::tied::{gradients, products};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn main() {
    env::apply();
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let which = args.get(1).map_or("fwd", String::as_str).to_string();
    let (reps, b, c, h) = (arg(2, 100), arg(3, 1), arg(4, 64), arg(5, 56));
    let g =
        ConvGeometry { c_in: c, h_in: h, w_in: h, c_out: c, k: 3, stride: 1, pad: 1, dil: 1, mode: PaddingMode::Zeros };
    let m = compile_conv_compact(&g);
    let (rows, cols) = m.shape();
    let mut rng = StdRng::seed_from_u64(1);
    let mut rand = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (theta, x, dy) = (rand(m.n_params()), rand(b * cols), rand(b * rows));
    let (mut y, mut dx, mut dt, mut scratch) =
        (vec![0.0; b * rows], vec![0.0; b * cols], vec![0.0; m.n_params()], Vec::new());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let t = std::time::Instant::now();
    pool.install(|| {
        for _ in 0..reps {
            match which.as_str() {
                "fwd" => products::forward(&m, &theta, None, &x, &mut y, b),
                "bwd" => products::backward_input(&m, &theta, &dy, &mut dx, b),
                _ => gradients::param_grad(&m, &x, &dy, &mut dt, &mut scratch, b),
            }
        }
    });
    let s = t.elapsed().as_secs_f64() / reps as f64;
    let flop = 2.0 * m.nnz() as f64 * b as f64;
    println!(
        "{which}: batch {b}, {:.3} ms per product (wall), {:.1} GFLOP/s, checksum {}",
        s * 1e3,
        flop / s / 1e9,
        y[0] + dx[0] + dt[0]
    );
}
