//! How do the three formulations of each LeNet-5 layer (conv1, pool1, conv2, pool2) compare, product by
//! product? The tied sparse layer against direct convolution / pooling and im2col + GEMM, forward, input
//! gradient and parameter gradient, on the same seeded inputs and parameters, batch 64, f32, in the
//! default rayon pool. Throughput in elements: one element is one FLOP of the sparse product,
//! `2·nnz·batch`. Pools have no im2col lowering and no parameters. Run:
//! `cargo bench --bench formulations`.

use std::hint::black_box;

use cnn_as_mlp::compare::{Case, select};
use cnn_as_mlp::linear_map::LinearMap;
use cnn_as_mlp::network::{Engine, build_map};
use cnn_as_mlp::tensor::Tensor;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const BATCH: usize = 64;

fn random(rows: usize, cols: usize, rng: &mut StdRng) -> DMatrix<f32> {
    DMatrix::from_fn(rows, cols, |_, _| rng.random_range(-1.0..1.0))
}

fn layer(c: &mut Criterion, case: &Case) {
    let (inp, out) = (case.input.len(), case.output().len());
    let mut rng = StdRng::seed_from_u64(0);
    let x = random(BATCH, inp, &mut rng);
    let dz = random(BATCH, out, &mut rng);
    let sparse = build_map::<f32>(&case.layer, case.input, Engine::Sparse).unwrap();
    let nnz = sparse.tied().map_or(0, |t| t.nnz());
    let params: Vec<Tensor<f32>> = sparse
        .param_shapes()
        .iter()
        .map(|(_, s)| {
            let n = s.iter().product();
            Tensor::from_vec(s, (0..n).map(|_| rng.random_range(-0.2..0.2)).collect())
        })
        .collect();
    drop(sparse);
    let mut group = c.benchmark_group(format!("{}_b{BATCH}", case.name));
    group.throughput(Throughput::Elements(2 * nnz as u64 * BATCH as u64));
    for engine in Engine::ALL {
        if engine == Engine::Im2col && !case.has_im2col() {
            continue;
        }
        let mut map: Box<dyn LinearMap<f32>> = build_map(&case.layer, case.input, engine).unwrap();
        let mut z = DMatrix::<f32>::zeros(BATCH, out);
        let mut dx = DMatrix::<f32>::zeros(BATCH, inp);
        let mut grads: Vec<Tensor<f32>> = params.iter().map(|p| Tensor::zeros(&p.shape)).collect();
        let name = engine.name();
        group.bench_function(format!("{name}_forward"), |b| b.iter(|| map.forward(&params, black_box(&x), &mut z)));
        // The backward passes read the forward state (max pooling's winners).
        map.forward(&params, &x, &mut z);
        group.bench_function(format!("{name}_input_grad"), |b| {
            b.iter(|| map.backward_input(&mut dx, &params, black_box(&dz)))
        });
        if !params.is_empty() {
            group.bench_function(format!("{name}_param_grad"), |b| {
                b.iter(|| {
                    grads.iter_mut().for_each(Tensor::fill_zero);
                    map.backward_params(&mut grads, black_box(&x), black_box(&dz))
                })
            });
        }
    }
    group.finish();
}

fn lenet_layers(c: &mut Criterion) {
    for case in select("lenet").unwrap() {
        layer(c, &case);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = lenet_layers
}
criterion_main!(benches);
