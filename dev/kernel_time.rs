//! Runs one tied product of LeNet-5's conv2 (or conv1) at batch 64 many times on one thread, for steady CPU-time
//! measurements on a shared machine: `/usr/bin/time -f %U target/release/examples/kernel_time fwd|bwd|grad 2000 [conv1]`.

#[path = "common/env.rs"]
mod env;

use cnn_as_mlp::engines::sparse::conv::compile_conv;
use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode};
use cnn_as_mlp::tied::{gradients, products};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn main() {
    env::apply();
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map_or("fwd", String::as_str).to_string();
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let conv1 = args.get(3).is_some_and(|s| s == "conv1");
    let g = if conv1 {
        ConvGeometry {
            c_in: 1,
            h_in: 28,
            w_in: 28,
            c_out: 6,
            k: 5,
            stride: 1,
            pad: 2,
            dil: 1,
            mode: PaddingMode::Zeros,
        }
    } else {
        ConvGeometry {
            c_in: 6,
            h_in: 14,
            w_in: 14,
            c_out: 16,
            k: 5,
            stride: 1,
            pad: 0,
            dil: 1,
            mode: PaddingMode::Zeros,
        }
    };
    let m = compile_conv(&g);
    let (rows, cols) = m.shape();
    let b = 64;
    let mut rng = StdRng::seed_from_u64(1);
    let mut rand = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (theta, x, dy) = (rand(m.n_params()), rand(b * cols), rand(b * rows));
    let (mut y, mut dx, mut dt, mut scratch) =
        (vec![0.0; b * rows], vec![0.0; b * cols], vec![0.0; m.n_params()], Vec::new());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    pool.install(|| {
        for _ in 0..reps {
            match which.as_str() {
                "fwd" => products::forward(&m, &theta, None, &x, &mut y, b),
                "bwd" => products::backward_input(&m, &theta, &dy, &mut dx, b),
                _ => gradients::param_grad(&m, &x, &dy, &mut dt, &mut scratch, b),
            }
        }
    });
    println!("{which}: {} products, checksum {}", reps, y[0] + dx[0] + dt[0]);
}
