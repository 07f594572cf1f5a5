//! How fast are the three tied products on LeNet-5's conv2 (6→16, 5×5, 14×14 input) at batch 64, against
//! nalgebra's f32 GEMM doing the same number of FLOPs in the same run?
//!
//! Throughput is reported as elements per second where one element is one FLOP: a product costs
//! `2·nnz·batch` FLOPs. Run: `cargo bench --bench tied_products`.

use std::hint::black_box;

use cnn_as_mlp::engines::sparse::conv::compile_conv;
use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode};
use cnn_as_mlp::tied::{gradients, products};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const BATCH: usize = 64;

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn conv2_products(c: &mut Criterion) {
    let g = ConvGeometry {
        c_in: 6,
        h_in: 14,
        w_in: 14,
        c_out: 16,
        k: 5,
        stride: 1,
        pad: 0,
        dil: 1,
        mode: PaddingMode::Zeros,
    };
    let m = compile_conv(&g);
    let (rows, cols) = m.shape();
    let flops = 2 * m.nnz() as u64 * BATCH as u64;
    let theta = random(m.n_params(), 1);
    let x = random(BATCH * cols, 2);
    let dy = random(BATCH * rows, 3);
    let mut y = vec![0.0f32; BATCH * rows];
    let mut dx = vec![0.0f32; BATCH * cols];
    let mut dtheta = vec![0.0f32; m.n_params()];

    let mut group = c.benchmark_group("lenet_conv2_b64");
    group.throughput(Throughput::Elements(flops));
    group.bench_function("tied_forward", |b| {
        b.iter(|| products::forward(&m, black_box(&theta), None, black_box(&x), &mut y, BATCH))
    });
    group.bench_function("tied_transpose", |b| {
        b.iter(|| products::backward_input(&m, black_box(&theta), black_box(&dy), &mut dx, BATCH))
    });
    let mut scratch = Vec::new();
    group.bench_function("tied_param_grad", |b| {
        b.iter(|| gradients::param_grad(&m, black_box(&x), black_box(&dy), &mut dtheta, &mut scratch, BATCH))
    });
    // The same FLOPs as one dense GEMM: [B·positions, c_in·k²] @ [c_in·k², c_out] (the im2col shape).
    let positions = g.h_out() * g.w_out();
    let a = DMatrix::<f32>::from_vec(BATCH * positions, g.c_in * g.k * g.k, random(BATCH * positions * 150, 4));
    let bm = DMatrix::<f32>::from_vec(g.c_in * g.k * g.k, g.c_out, random(150 * g.c_out, 5));
    let mut cm = DMatrix::<f32>::zeros(BATCH * positions, g.c_out);
    group.bench_function("nalgebra_sgemm_same_flops", |b| b.iter(|| black_box(&a).mul_to(black_box(&bm), &mut cm)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = conv2_products
}
criterion_main!(benches);
