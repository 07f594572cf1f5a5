//! Exhaustive equivalence of the compiled sparse layers with the direct reference and im2col, bit for bit.
//!
//! Every value (inputs, kernels, biases, residuals) is a small integer drawn from a seeded generator, so
//! every product and every sum is exact in f64 and the three implementations must agree exactly, whatever
//! the order of their sums. Batch of 2 samples. Mean pooling multiplies by `1/k²`, which is not exact for
//! `k = 3`: there the sparse matrix and the direct reference agree because both sum `(1/k²)·x` in
//! row-major window order.

use cnn_as_mlp::Tensor;
use cnn_as_mlp::engines::direct::DirectLocal;
use cnn_as_mlp::engines::im2col::{Im2colConv, Im2colLocal};
use cnn_as_mlp::engines::sparse::TiedMaxPool;
use cnn_as_mlp::engines::sparse::avgpool_layer;
use cnn_as_mlp::engines::sparse::conv_layer;
use cnn_as_mlp::engines::sparse::local_layer;
use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode, PoolGeometry};
use cnn_as_mlp::linear_map::LinearMap;
use oracle::Oracle;
use oracle::reference;

use crate::oracle;
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const SEED: u64 = 20_261_126;
const BATCH: usize = 2;
/// Values are drawn from `-MAX_INT..=MAX_INT`.
const MAX_INT: i32 = 3;

/// Convolution cases the grid below runs (those [`ConvGeometry::check`] accepts), counted once and
/// written here so that the test fails if the grid silently shrinks.
const EXPECTED_CONV_CASES: usize = 23_268;
/// Pooling cases (each runs max and mean pooling).
const EXPECTED_POOL_CASES: usize = 462;

fn int_matrix(rng: &mut StdRng, rows: usize, cols: usize) -> DMatrix<f64> {
    DMatrix::from_fn(rows, cols, |_, _| rng.random_range(-MAX_INT..=MAX_INT) as f64)
}

fn int_tensor(rng: &mut StdRng, shape: &[usize]) -> Tensor<f64> {
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| rng.random_range(-MAX_INT..=MAX_INT) as f64).collect())
}

/// Everything one layer computes on `(x, dz)`: `z`, `δx` and the parameter gradients.
#[derive(Debug, PartialEq)]
struct Outputs {
    z: DMatrix<f64>,
    dx: DMatrix<f64>,
    grads: Vec<Tensor<f64>>,
}

fn run(layer: &mut dyn LinearMap<f64>, params: &[Tensor<f64>], x: &DMatrix<f64>, dz: &DMatrix<f64>) -> Outputs {
    let (rows, cols) = layer.dims();
    let mut z = DMatrix::from_element(x.nrows(), rows, f64::NAN);
    layer.forward(params, x, &mut z);
    let mut dx = DMatrix::from_element(x.nrows(), cols, f64::NAN);
    layer.backward_input(&mut dx, params, dz);
    let mut grads: Vec<Tensor<f64>> = params.iter().map(|p| Tensor::zeros(&p.shape)).collect();
    layer.backward_params(&mut grads, x, dz);
    Outputs { z, dx, grads }
}

/// Random integer parameters for `layer`'s shapes.
fn params_for(rng: &mut StdRng, layer: &dyn LinearMap<f64>) -> Vec<Tensor<f64>> {
    layer.param_shapes().iter().map(|(_, s)| int_tensor(rng, s)).collect()
}

/// Runs the three implementations of one convolution on the same integer data against the oracle, and the
/// three engines' locally connected layers against the oracle's.
fn check_conv(rng: &mut StdRng, g: &ConvGeometry) {
    let mut sparse = conv_layer::<f64>(g);
    let mut direct = Oracle(reference::Conv::new(g));
    let mut lowered = Im2colConv::new(g);
    assert_eq!(LinearMap::<f64>::param_shapes(&direct), LinearMap::<f64>::param_shapes(&sparse), "{g:?}");
    assert_eq!(LinearMap::<f64>::multiplicity(&direct), LinearMap::<f64>::multiplicity(&sparse), "{g:?}");
    let params = params_for(rng, &sparse);
    let x = int_matrix(rng, BATCH, g.in_len());
    let dz = int_matrix(rng, BATCH, g.out_len());
    let expected = run(&mut direct, &params, &x, &dz);
    assert_eq!(run(&mut sparse, &params, &x, &dz), expected, "sparse conv differs from direct: {g:?}");
    assert_eq!(run(&mut lowered, &params, &x, &dz), expected, "im2col conv differs from direct: {g:?}");

    let mut sparse = local_layer::<f64>(g);
    let mut direct = Oracle(reference::Local::new(g));
    assert_eq!(LinearMap::<f64>::param_shapes(&direct), LinearMap::<f64>::param_shapes(&sparse), "{g:?}");
    assert_eq!(LinearMap::<f64>::multiplicity(&direct), LinearMap::<f64>::multiplicity(&sparse), "{g:?}");
    let params = params_for(rng, &sparse);
    let expected = run(&mut direct, &params, &x, &dz);
    assert_eq!(run(&mut sparse, &params, &x, &dz), expected, "sparse local differs from direct: {g:?}");
    assert_eq!(run(&mut DirectLocal::new(g), &params, &x, &dz), expected, "direct engine's local differs: {g:?}");
    assert_eq!(run(&mut Im2colLocal::<f64>::new(g), &params, &x, &dz), expected, "im2col local differs: {g:?}");
}

/// Checks proofs/T1 (forward), proofs/T2 (input gradient) and proofs/T3 (kernel and bias gradients):
/// the compiled tied matrix, the direct convolution and im2col agree bit for bit on every small geometry
/// and every padding mode.
#[test]
fn compiled_conv_equals_direct_and_im2col_on_every_small_geometry() {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut cases = 0;
    for c_in in 1..=2 {
        for c_out in 1..=2 {
            for h_in in 1..=6 {
                for w_in in 1..=6 {
                    for k in 1..=3 {
                        for stride in 1..=3 {
                            for pad in 0..=2 {
                                for dil in 1..=2 {
                                    for mode in PaddingMode::ALL {
                                        let g = ConvGeometry { c_in, h_in, w_in, c_out, k, stride, pad, dil, mode };
                                        if g.check().is_err() {
                                            continue;
                                        }
                                        check_conv(&mut rng, &g);
                                        cases += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    println!("convolution cases: {cases}");
    assert!(cases >= EXPECTED_CONV_CASES, "ran {cases} convolution cases, expected {EXPECTED_CONV_CASES}");
}

/// Checks proofs/T4 (max pooling as a data-dependent selection) and proofs/T5 (mean pooling as a fixed
/// tied matrix): forward and input gradient equal the direct pooling bit for bit. Integer inputs make
/// ties frequent, so the first-maximum rule is exercised.
#[test]
fn compiled_pools_equal_direct_pools_on_every_small_window() {
    let mut rng = StdRng::seed_from_u64(SEED + 1);
    let mut cases = 0;
    for c in 1..=2 {
        for h_in in 1..=6 {
            for w_in in 1..=6 {
                for k in 1..=3 {
                    for stride in 1..=3 {
                        let g = PoolGeometry { c, h_in, w_in, k, stride };
                        if g.check().is_err() {
                            continue;
                        }
                        let x = int_matrix(&mut rng, BATCH, g.in_len());
                        let dz = int_matrix(&mut rng, BATCH, g.out_len());
                        let expected = run(&mut Oracle(reference::MaxPool::new(&g)), &[], &x, &dz);
                        assert_eq!(run(&mut TiedMaxPool::new(&g), &[], &x, &dz), expected, "max pooling: {g:?}");
                        let expected = run(&mut Oracle(reference::AvgPool::new(&g)), &[], &x, &dz);
                        assert_eq!(run(&mut avgpool_layer::<f64>(&g), &[], &x, &dz), expected, "mean pooling: {g:?}");
                        cases += 1;
                    }
                }
            }
        }
    }
    println!("pooling cases: {cases}");
    assert!(cases >= EXPECTED_POOL_CASES, "ran {cases} pooling cases, expected {EXPECTED_POOL_CASES}");
}

/// Checks proofs/T2: `Wᵀ δ` through the compiled matrix equals the residual convolved (full convolution)
/// with the 180°-rotated kernel, stride 1, zero padding `p`, written here as an explicit loop:
/// `δx[i, y, x] = Σ_{o, a, b} w[o, i, k−1−a, k−1−b] · δ[o, y + p + a − (k−1), x + p + b − (k−1)]`, with
/// `δ` zero outside its `h_out × w_out` support.
#[test]
fn source_claim_transpose_is_rotated_kernel_convolution() {
    let mut rng = StdRng::seed_from_u64(SEED + 2);
    let mut cases = 0;
    for (c_in, c_out, h_in, w_in, k) in
        [(1, 1, 5, 5, 3), (2, 3, 6, 4, 3), (3, 2, 7, 7, 5), (2, 2, 4, 6, 2), (1, 2, 3, 3, 1)]
    {
        for pad in 0..k {
            let g = ConvGeometry { c_in, h_in, w_in, c_out, k, stride: 1, pad, dil: 1, mode: PaddingMode::Zeros };
            let (h_out, w_out) = (g.h_out(), g.w_out());
            let w = int_tensor(&mut rng, &[c_out, c_in, k, k]).data;
            let delta = int_matrix(&mut rng, 1, g.out_len());
            let m = conv_layer::<f64>(&g).matrix;
            let (rows, cols) = m.shape();
            // Wᵀ δ with the dense expansion of the compiled matrix (row-major (rows, cols)).
            let dense = m.to_dense(&w);
            let wt_delta: Vec<f64> =
                (0..cols).map(|c| (0..rows).map(|r| dense[r * cols + c] * delta[r]).sum()).collect();
            // The full convolution with the rotated kernel.
            let mut full = vec![0.0; g.in_len()];
            let km1 = (k - 1) as isize;
            for i in 0..c_in {
                for y in 0..h_in {
                    for x in 0..w_in {
                        let mut acc = 0.0;
                        for o in 0..c_out {
                            for a in 0..k {
                                for b in 0..k {
                                    let dy = (y + pad + a) as isize - km1;
                                    let dxx = (x + pad + b) as isize - km1;
                                    if dy < 0 || dxx < 0 || dy >= h_out as isize || dxx >= w_out as isize {
                                        continue;
                                    }
                                    let rot = w[((o * c_in + i) * k + (k - 1 - a)) * k + (k - 1 - b)];
                                    acc += rot * delta[(o * h_out + dy as usize) * w_out + dxx as usize];
                                }
                            }
                        }
                        full[(i * h_in + y) * w_in + x] = acc;
                    }
                }
            }
            assert_eq!(wt_delta, full, "{g:?}");
            cases += 1;
        }
    }
    println!("transpose cases: {cases}");
    assert_eq!(cases, 14);
}
