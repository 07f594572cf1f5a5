//! Grouped and depthwise convolutions (`conv(c_out, k, groups=G)`, PyTorch's `nn.Conv2d(groups=G)`):
//! the three engines against the oracle's [`reference::GroupedConv`] bit for bit on small integer data,
//! the whole networks of the three engines against each other, finite differences, and bad specs.
//! (PyTorch's numbers for grouped layers and a grouped network are in `tests/fixtures/conv_groups*`,
//! `conv_depthwise*` and `net_groups_ce`, checked by `pytorch_fixtures`.)

use crate::common;
use crate::oracle;

use approx::abs_diff_eq;
use cnn_as_mlp::Tensor;
use cnn_as_mlp::engines::grouped::Grouped;
use cnn_as_mlp::engines::sparse::grouped_conv_layer;
use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode};
use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::linear_map::LinearMap;
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::spec::{Spec, SpecError};
use cnn_as_mlp::{Engine, Network};
use nalgebra::DMatrix;
use oracle::Oracle;
use oracle::reference;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const SEED: u64 = 20_261_130;
const BATCH: usize = 2;
/// Integer values in `-MAX_INT..=MAX_INT`: every product and sum is exact in f64.
const MAX_INT: i32 = 3;
/// Cases the grid below runs (those [`ConvGeometry::check`] accepts); fails if the grid silently shrinks.
const EXPECTED_CASES: usize = 9_952;

fn int_matrix(rng: &mut StdRng, rows: usize, cols: usize) -> DMatrix<f64> {
    DMatrix::from_fn(rows, cols, |_, _| rng.random_range(-MAX_INT..=MAX_INT) as f64)
}

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
    // Gradients accumulate: start from nonzero values to check `+=`.
    let mut grads: Vec<Tensor<f64>> =
        params.iter().map(|p| Tensor::from_vec(&p.shape, vec![1.0; p.data.len()])).collect();
    layer.backward_params(&mut grads, x, dz);
    Outputs { z, dx, grads }
}

/// The sparse engine's compiled grouped matrix, the direct and im2col engines' grouped layers and the
/// oracle agree bit for bit on every small geometry, padding mode and group count (proofs/T1–T3 with the
/// cross-group kernel entries fixed at 0).
#[test]
fn grouped_conv_engines_equal_the_oracle_on_every_small_geometry() {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut cases = 0;
    for groups in [2, 3] {
        for (ci, co) in [(1, 1), (1, 2), (2, 1), (2, 2)] {
            for h_in in [1, 3, 4, 5] {
                for w_in in [1, 3, 5] {
                    for k in 1..=3 {
                        for stride in 1..=2 {
                            for pad in 0..=2 {
                                for dil in 1..=2 {
                                    for mode in PaddingMode::ALL {
                                        let g = ConvGeometry {
                                            c_in: ci * groups,
                                            h_in,
                                            w_in,
                                            c_out: co * groups,
                                            k,
                                            stride,
                                            pad,
                                            dil,
                                            mode,
                                        };
                                        if g.check().is_err() {
                                            continue;
                                        }
                                        check(&mut rng, &g, groups);
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
    assert_eq!(cases, EXPECTED_CASES);
}

fn check(rng: &mut StdRng, g: &ConvGeometry, groups: usize) {
    let mut oracle = Oracle(reference::GroupedConv::new(g, groups));
    let mut sparse = grouped_conv_layer::<f64>(g, groups);
    let mut direct = Grouped::<f64>::new(g, groups, Engine::Direct);
    let mut lowered = Grouped::<f64>::new(g, groups, Engine::Im2col);
    let shapes = LinearMap::<f64>::param_shapes(&oracle);
    assert_eq!(shapes[0].1, vec![g.c_out, g.c_in / groups, g.k, g.k], "{g:?}");
    let m = LinearMap::<f64>::multiplicity(&oracle);
    for layer in [&sparse as &dyn LinearMap<f64>, &direct, &lowered] {
        assert_eq!(layer.param_shapes(), shapes, "{g:?} groups={groups}");
        assert_eq!(layer.multiplicity(), m, "{g:?} groups={groups}");
    }
    // With zero padding the compiled matrix stores exactly the taps inside the groups (the sum of the
    // multiplicities); the other modes may merge two taps of a row into one entry.
    let taps: u32 = m[0].iter().sum();
    if g.mode == PaddingMode::Zeros {
        assert_eq!(sparse.matrix.nnz(), taps as usize, "{g:?} groups={groups}");
    }
    let params: Vec<Tensor<f64>> = shapes
        .iter()
        .map(|(_, s)| {
            let n = s.iter().product();
            Tensor::from_vec(s, (0..n).map(|_| rng.random_range(-MAX_INT..=MAX_INT) as f64).collect())
        })
        .collect();
    let x = int_matrix(rng, BATCH, g.in_len());
    let dz = int_matrix(rng, BATCH, g.out_len());
    let expected = run(&mut oracle, &params, &x, &dz);
    assert_eq!(run(&mut sparse, &params, &x, &dz), expected, "sparse differs: {g:?} groups={groups}");
    assert_eq!(run(&mut direct, &params, &x, &dz), expected, "direct differs: {g:?} groups={groups}");
    assert_eq!(run(&mut lowered, &params, &x, &dz), expected, "im2col differs: {g:?} groups={groups}");
}

/// A network with depthwise and grouped layers: the three engines give the same loss and gradients
/// (f64, relative 1e-12), and `groups=1` is the plain convolution.
#[test]
fn grouped_networks_agree_on_every_engine() {
    let spec = "4x9x9 > conv(8,3,pad=1,mode=reflect,groups=4) > relu > conv(6,3,stride=2,groups=2) > tanh > maxpool(2) > dense(3)";
    let spec = Spec::parse(spec).unwrap();
    assert_eq!(Spec::parse(&spec.to_string()).unwrap(), spec, "canonical form round-trips");
    assert_eq!(Spec::parse("2x5x5 > conv(3,3,groups=1)").unwrap(), Spec::parse("2x5x5 > conv(3,3)").unwrap());
    let x = common::random_matrix(5, spec.input.len(), -1.0, 1.0, 3);
    let labels = [0, 2, 1, 1, 0];
    let mut results = Vec::new();
    for engine in Engine::ALL {
        let mut net = Network::<f64>::new(&spec, engine);
        init_params(&mut net, Init::TorchDefault, 11);
        assert_eq!(net.params[0][0].shape, vec![8, 1, 3, 3]);
        assert_eq!(net.params[2][0].shape, vec![6, 4, 3, 3]);
        let mut grads = net.zero_grads();
        let loss = net.loss_and_grad(&mut grads, &x, Targets::Labels(&labels), Loss::CrossEntropy);
        results.push((engine, loss, grads));
    }
    let (_, loss0, g0) = &results[0];
    for (engine, loss, grads) in &results[1..] {
        assert!(abs_diff_eq!(loss, loss0, epsilon = 1e-12 * loss0.abs()), "{engine:?}: loss {loss} vs {loss0}");
        for (a, b) in grads.iter().flatten().zip(g0.iter().flatten()) {
            let scale = b.data.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-6);
            for (u, v) in a.data.iter().zip(&b.data) {
                assert!(abs_diff_eq!(u, v, epsilon = 1e-12 * scale), "{engine:?}: gradient {u} vs {v}");
            }
        }
    }
}

/// Backpropagation through grouped and depthwise layers matches central differences.
#[test]
fn grouped_gradients_match_finite_differences() {
    common::grad_check(
        "4x7x7 > conv(4,3,pad=1,groups=4) > tanh > conv(6,3,stride=2,pad=1,mode=circular,groups=2) > sigmoid > dense(3)",
        Loss::CrossEntropy,
        3,
        40,
        5,
    );
    common::grad_check(
        "6x6x6 > conv(3,2,dil=2,mode=replicate,pad=1,groups=3) > relu > dense(4)",
        Loss::HalfSquared,
        2,
        40,
        6,
    );
}

/// Groups that do not divide the channels, and groups=0, are refused with the numbers.
#[test]
fn groups_that_do_not_divide_are_refused() {
    let e = Spec::parse("4x6x6 > conv(6,3,groups=4)").unwrap_err();
    assert!(matches!(e, SpecError::Shape { .. }), "{e}");
    assert!(e.to_string().contains("groups=4") && e.to_string().contains("c_out=6"), "{e}");
    let e = Spec::parse("3x6x6 > conv(6,3,groups=2)").unwrap_err();
    assert!(e.to_string().contains("c_in=3"), "{e}");
    assert!(Spec::parse("3x6x6 > conv(6,3,groups=0)").is_err());
    assert!(Spec::parse("3x6x6 > local(6,3,groups=3)").is_err(), "local layers have no groups");
}

/// `train` with groups that do not divide: one `error:` line, exit 2, no run directory.
#[cfg(feature = "cli")]
#[test]
fn cli_refuses_groups_that_do_not_divide() {
    let d = common::scratch("groups-bad");
    let out = d.join("run");
    let o =
        common::run(&["train", "--model", "1x28x28 > conv(6,5,groups=4) > relu > dense(10)", "--out", common::s(&out)]);
    common::fails(&o, &["groups=4", "c_in=1"]);
    assert!(!out.exists());
}
