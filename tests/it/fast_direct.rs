//! The direct engine's layers ([`cnn_as_mlp::direct`]) against the reference written from the definitions
//! ([`oracle::reference::direct`], one sample at a time).
//!
//! - On small-integer data every sum is exact in f32, so the two must agree bit for bit whatever their
//!   summation orders; on seeded normal data they agree to a rounding tolerance.
//! - The pools do the reference's operations in the reference's order, so they agree bit for bit on any data.
//! - The grids cover stride, dilation, padding, every padding mode, channel counts that exercise every
//!   register-block width, and batch sizes 1, 3, 17, 64 and 70 (the lane tails).
//! - The bits do not depend on the number of threads.

use cnn_as_mlp::engines::direct::{DirectAvgPool, DirectConv, DirectMaxPool};
use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode, PoolGeometry};
use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::linear_map::LinearMap;
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::optim::{DecayMode, Sgd};
use oracle::Oracle;
use oracle::reference;

use crate::oracle;
use cnn_as_mlp::{Engine, Network, Real, Spec, Tensor};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// Batch sizes: one sample, tails shorter than 8 and 16 lanes, full blocks, and full blocks plus a tail.
const BATCHES: [usize; 5] = [1, 3, 17, 64, 70];
/// Relative tolerance of f32 results on normal data (largest difference over the largest magnitude of the
/// tensor; sums of at most a few thousand terms, each rounding ≤ 2⁻²⁴).
const F32_REL_TOL: f64 = 1e-5;
/// The same in f64.
const F64_REL_TOL: f64 = 1e-13;

/// `z`, `δx`, `δw`, `δb` of one layer (parameter gradients accumulated onto ones, to check the `+=`).
fn run<T: Real>(layer: &mut dyn LinearMap<T>, params: &[Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) -> Vec<Vec<T>> {
    let (rows, cols) = layer.dims();
    let mut z = DMatrix::from_element(x.nrows(), rows, T::of(7.0));
    layer.forward(params, x, &mut z);
    let mut dx = DMatrix::from_element(x.nrows(), cols, T::of(7.0));
    layer.backward_input(&mut dx, params, dz);
    let mut grads: Vec<Tensor<T>> =
        params.iter().map(|p| Tensor::from_vec(&p.shape, vec![T::one(); p.len()])).collect();
    layer.backward_params(&mut grads, x, dz);
    let mut out = vec![z.as_slice().to_vec(), dx.as_slice().to_vec()];
    out.extend(grads.into_iter().map(|g| g.data));
    out
}

/// The results of [`run`], one vector per quantity.
type Results = Vec<Vec<f32>>;

const NAMES: [&str; 4] = ["forward z", "input gradient", "weight gradient", "bias gradient"];

/// Seeded data for a layer: parameters, `x` (B, in) and `dz` (B, out), drawn by `draw`.
fn data<T: Real>(
    shapes: &[(&'static str, Vec<usize>)],
    dims: (usize, usize),
    batch: usize,
    mut draw: impl FnMut() -> f64,
) -> (Vec<Tensor<T>>, DMatrix<T>, DMatrix<T>) {
    let params = shapes
        .iter()
        .map(|(_, s)| Tensor::from_vec(s, (0..s.iter().product()).map(|_| T::of(draw())).collect()))
        .collect();
    let x = DMatrix::from_fn(batch, dims.1, |_, _| T::of(draw()));
    let dz = DMatrix::from_fn(batch, dims.0, |_, _| T::of(draw()));
    (params, x, dz)
}

/// Small integers in `[-3, 3]`.
fn small_int(rng: &mut StdRng) -> f64 {
    rng.random_range(-3i32..=3) as f64
}

/// The convolution geometries of the grid, on a `c_in × 6 × 7` input.
fn conv_grid() -> Vec<ConvGeometry> {
    let mut v = Vec::new();
    for mode in PaddingMode::ALL {
        for (c_in, c_out) in [(1, 1), (2, 7), (3, 16), (6, 3)] {
            for k in [1, 2, 3] {
                for stride in [1, 2] {
                    for pad in [0, 1, 2] {
                        for dil in [1, 2] {
                            let g = ConvGeometry { c_in, h_in: 6, w_in: 7, c_out, k, stride, pad, dil, mode };
                            if g.check().is_ok() {
                                v.push(g);
                            }
                        }
                    }
                }
            }
        }
    }
    v
}

/// Checks proofs/T1, proofs/T2 and proofs/T3 for the direct engine: on small-integer data (exact sums) the
/// fast direct convolution's forward pass, input gradient (the gather form of `Wᵀ δ`) and kernel and
/// bias gradients equal the reference's bit for bit, over strides, dilations, paddings, every padding mode,
/// channel counts that use every register-block width, and batch sizes 1, 3, 17, 64, 70.
#[test]
fn fast_conv_equals_reference_bitwise_on_integer_data() {
    let mut rng = StdRng::seed_from_u64(11);
    let grid = conv_grid();
    assert!(grid.len() > 300, "the grid has {} geometries", grid.len());
    for (n, g) in grid.iter().enumerate() {
        // Every geometry at one batch size (cycling), the first geometries at all of them.
        let batches: Vec<usize> = if n < 8 { BATCHES.to_vec() } else { vec![BATCHES[n % BATCHES.len()]] };
        for batch in batches {
            let (mut fast, mut reference) = (DirectConv::new(g), Oracle(reference::Conv::new(g)));
            let shapes = LinearMap::<f32>::param_shapes(&fast);
            let dims = LinearMap::<f32>::dims(&fast);
            let (params, x, dz) = data::<f32>(&shapes, dims, batch, || small_int(&mut rng));
            let got = run(&mut fast, &params, &x, &dz);
            let want = run(&mut reference, &params, &x, &dz);
            for ((name, a), b) in NAMES.iter().zip(&got).zip(&want) {
                let (a, b): (Vec<u32>, Vec<u32>) =
                    (a.iter().map(|v| v.to_bits()).collect(), b.iter().map(|v| v.to_bits()).collect());
                assert!(a == b, "{g:?}, batch {batch}: {name} differs from the reference");
            }
        }
    }
}

/// Largest `|a − b|` over the largest `|b|` (0 when `b` is all zeros).
fn rel_diff<T: Real>(a: &[T], b: &[T]) -> f64 {
    let diff = a.iter().zip(b).map(|(x, y)| (x.as_f64() - y.as_f64()).abs()).fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.as_f64().abs()).fold(0.0, f64::max);
    if scale > 0.0 { diff / scale } else { diff }
}

/// The fast convolution and the reference on seeded normal data in `T`, within `tol`.
fn check_conv_on_normal_data<T: Real>(tol: f64, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for (n, g) in conv_grid().iter().enumerate().filter(|(n, _)| n % 3 == 0) {
        let batch = BATCHES[(n / 3) % BATCHES.len()];
        let (mut fast, mut reference) = (DirectConv::new(g), Oracle(reference::Conv::new(g)));
        let shapes = LinearMap::<T>::param_shapes(&fast);
        let dims = LinearMap::<T>::dims(&fast);
        let (params, x, dz) = data::<T>(&shapes, dims, batch, || {
            let v: f32 = StandardNormal.sample(&mut rng);
            v as f64
        });
        let got = run(&mut fast, &params, &x, &dz);
        let want = run(&mut reference, &params, &x, &dz);
        for ((name, a), b) in NAMES.iter().zip(&got).zip(&want) {
            assert_eq!(a.len(), b.len(), "{g:?}: {name} length");
            let rel = rel_diff(a, b);
            assert!(rel <= tol, "{g:?}, batch {batch}, {}: {name} relative difference {rel:e} > {tol:e}", T::NAME);
        }
    }
}

/// Checks proofs/T1, proofs/T2 and proofs/T3 for the direct engine on seeded normal data: the fast
/// convolution agrees with the reference within rounding, in f32 and f64.
#[test]
fn fast_conv_matches_reference_on_normal_data() {
    check_conv_on_normal_data::<f32>(F32_REL_TOL, 12);
    check_conv_on_normal_data::<f64>(F64_REL_TOL, 13);
}

/// The pooling windows of the grid, on `c × 5 × 7` inputs.
fn pool_grid() -> Vec<PoolGeometry> {
    let mut v = Vec::new();
    for c in [1, 3] {
        for k in [1, 2, 3] {
            for stride in [1, 2, 3, 4] {
                v.push(PoolGeometry { c, h_in: 5, w_in: 7, k, stride });
            }
        }
    }
    v
}

/// Checks proofs/T4 and proofs/T5 for the direct engine: the fast max and mean pools equal the reference
/// bit for bit, on seeded normal data and on small integers (where max-pooling windows tie, so the first
/// maximum in row-major window order must win, as in PyTorch), for overlapping, exact and gapped windows and
/// batch sizes 1, 3, 17, 64, 70.
#[test]
fn fast_pools_equal_reference_bitwise() {
    let mut rng = StdRng::seed_from_u64(14);
    for g in pool_grid() {
        for batch in BATCHES {
            for integers in [false, true] {
                let dims = (g.out_len(), g.in_len());
                let (_, x, dz) = data::<f32>(&[], dims, batch, || {
                    if integers {
                        small_int(&mut rng)
                    } else {
                        let v: f32 = StandardNormal.sample(&mut rng);
                        v as f64
                    }
                });
                let pairs: [(&str, Results, Results); 2] = [
                    (
                        "max",
                        run(&mut DirectMaxPool::new(&g), &[], &x, &dz),
                        run(&mut Oracle(reference::MaxPool::new(&g)), &[], &x, &dz),
                    ),
                    (
                        "mean",
                        run(&mut DirectAvgPool::new(&g), &[], &x, &dz),
                        run(&mut Oracle(reference::AvgPool::new(&g)), &[], &x, &dz),
                    ),
                ];
                for (kind, got, want) in pairs {
                    for ((name, a), b) in NAMES.iter().zip(&got).zip(&want) {
                        let (a, b): (Vec<u32>, Vec<u32>) =
                            (a.iter().map(|v| v.to_bits()).collect(), b.iter().map(|v| v.to_bits()).collect());
                        assert!(a == b, "{g:?}, batch {batch}, integers {integers}: {kind} pooling {name} differs");
                    }
                }
            }
        }
    }
}

/// `f` inside a rayon pool of `threads` threads.
fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

/// The bits of every result of one layer on seeded normal data.
fn layer_bits(layer: &mut dyn LinearMap<f32>, shapes: &[(&'static str, Vec<usize>)], batch: usize) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(15);
    let (params, x, dz) = data::<f32>(shapes, layer.dims(), batch, || {
        let v: f32 = StandardNormal.sample(&mut rng);
        v as f64
    });
    run(layer, &params, &x, &dz).iter().flatten().map(|v| v.to_bits()).collect()
}

/// The fast direct layers (and a whole LeNet-5 SGD run on `Engine::Direct`) give the same bits with 1 and
/// 2 rayon threads.
#[test]
fn fast_direct_is_bit_identical_across_thread_counts() {
    let conv = ConvGeometry {
        c_in: 6,
        h_in: 14,
        w_in: 14,
        c_out: 16,
        k: 5,
        stride: 1,
        pad: 1,
        dil: 1,
        mode: PaddingMode::Reflect,
    };
    let pool = PoolGeometry { c: 6, h_in: 12, w_in: 12, k: 3, stride: 2 };
    let layers = |threads: usize| {
        with_threads(threads, || {
            let shapes = LinearMap::<f32>::param_shapes(&DirectConv::new(&conv));
            vec![
                layer_bits(&mut DirectConv::new(&conv), &shapes, 70),
                layer_bits(&mut DirectMaxPool::new(&pool), &[], 70),
                layer_bits(&mut DirectAvgPool::new(&pool), &[], 70),
            ]
        })
    };
    assert!(layers(1) == layers(2), "a fast direct layer depends on the number of threads");

    let train = |threads: usize| {
        with_threads(threads, || {
            let spec = Spec::parse("lenet5").unwrap();
            let mut net = Network::<f32>::new(&spec, Engine::Direct);
            init_params(&mut net, Init::TorchDefault, 1);
            let mut sgd = Sgd::new(0.05, 0.9, 1e-4, DecayMode::PerParameter);
            let mut rng = StdRng::seed_from_u64(2);
            let mut losses = Vec::new();
            for _ in 0..3 {
                let x = DMatrix::<f32>::from_fn(37, spec.input.len(), |_, _| rng.random_range(0.0..1.0));
                let y: Vec<usize> = (0..37).map(|_| rng.random_range(0..10)).collect();
                let mut grads = net.zero_grads();
                losses.push(net.loss_and_grad(&mut grads, &x, Targets::Labels(&y), Loss::CrossEntropy).to_bits());
                sgd.step(&mut net, &grads);
            }
            let params: Vec<u32> =
                net.params.iter().flatten().flat_map(|t| t.data.iter().map(|v| v.to_bits())).collect();
            (losses, params)
        })
    };
    assert!(train(1) == train(2), "LeNet-5 on the direct engine depends on the number of threads");
}
