//! When should a pruned dense layer become a tied sparse matrix? Times one training pass of LeNet-5's
//! `dense(120)` (400 → 120) at batch 32 (one shard) on one thread — forward, input gradient, parameter
//! gradient — as the GEMM with a masked weight and as the tied sparse matrix of the kept entries, at
//! several kept fractions, and prints the medians:
//! `cargo run --release --example pruned_dense [REPEATS]`.
//! [`cnn_as_mlp::engines::sparse::DENSE_AS_TIED_BELOW`] is chosen from this.

#[path = "common/env.rs"]
mod env;

use std::time::Instant;

use cnn_as_mlp::Tensor;
use cnn_as_mlp::compare::random_mask;
use cnn_as_mlp::engines::dense::Dense;
use cnn_as_mlp::engines::masked::Masked;
use cnn_as_mlp::engines::sparse::pruned_dense_layer;
use cnn_as_mlp::linear_map::LinearMap;
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn pass_time(
    m: &mut dyn LinearMap<f32>,
    params: &[Tensor<f32>],
    x: &DMatrix<f32>,
    dz: &DMatrix<f32>,
    reps: usize,
) -> f64 {
    let (out, inp) = m.dims();
    let (mut z, mut dx) = (DMatrix::zeros(x.nrows(), out), DMatrix::zeros(x.nrows(), inp));
    let mut grads: Vec<Tensor<f32>> = params.iter().map(|p| Tensor::zeros(&p.shape)).collect();
    let mut t: Vec<f64> = (0..=reps)
        .map(|_| {
            let t0 = Instant::now();
            m.forward(params, x, &mut z);
            m.backward_input(&mut dx, params, dz);
            m.backward_params(&mut grads, x, dz);
            t0.elapsed().as_secs_f64()
        })
        .skip(1)
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    env::apply();
    let reps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let (n_in, n_out, batch) = (400, 120, 32);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    let x = DMatrix::from_fn(batch, n_in, |_, _| rng.random_range(-1.0f32..1.0));
    let dz = DMatrix::from_fn(batch, n_out, |_, _| rng.random_range(-1.0f32..1.0));
    let w: Vec<f32> = (0..n_in * n_out).map(|_| rng.random_range(-0.05f32..0.05)).collect();
    let params = vec![Tensor::from_vec(&[n_out, n_in], w), Tensor::from_vec(&[n_out], vec![0.01f32; n_out])];
    println!("kept | GEMM, masked weight (µs) | tied sparse (µs) | tied / GEMM");
    pool.install(|| {
        for kept in [1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.01] {
            let keep = random_mask(n_in * n_out, 1.0 - kept, 1);
            let mut gemm = Masked::new(Box::new(Dense::new(n_in, n_out)), keep.clone());
            let mut tied = pruned_dense_layer::<f32>(n_in, n_out, &keep);
            let tg = pass_time(&mut gemm, &params, &x, &dz, reps);
            let tt = pass_time(&mut tied, &params, &x, &dz, reps);
            println!("{kept} | {:.1} | {:.1} | {:.2}", tg * 1e6, tt * 1e6, tt / tg);
        }
    });
}
