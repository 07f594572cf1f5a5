//! Connection tables (`conv(c_out, k, table=NAME)`, preset `lenet5-1998`): the sparse engine's compiled
//! matrix and the dense engines' masked convolutions against the oracle on a masked kernel, bit for bit;
//! the absent entries stay exactly 0 through training with momentum and weight decay on every engine;
//! bad specs.

use crate::common;
use crate::oracle;

use cnn_as_mlp::Tensor;
use cnn_as_mlp::engines::masked::Masked;
use cnn_as_mlp::engines::sparse::table_conv_layer;
use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode};
use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::linear_map::LinearMap;
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::optim::{DecayMode, Sgd};
use cnn_as_mlp::spec::{LENET5, LENET5_1998, Spec};
use cnn_as_mlp::tables::{LENET5_C3, Table};
use cnn_as_mlp::{Engine, Network};
use nalgebra::DMatrix;
use oracle::Oracle;
use oracle::reference;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const MAX_INT: i32 = 3;

fn int_matrix(rng: &mut StdRng, rows: usize, cols: usize) -> DMatrix<f64> {
    DMatrix::from_fn(rows, cols, |_, _| rng.random_range(-MAX_INT..=MAX_INT) as f64)
}

/// The table is LeCun et al. 1998's Table I: 60 connections, maps 0–5 read 3 consecutive maps, 6–11 read
/// 4 consecutive, 12–14 read 4 non-consecutive, 15 reads all six.
#[test]
#[allow(clippy::needless_range_loop)] // o is the map number of the paper's table
fn lenet5_c3_table_is_lecun_1998_table_one() {
    let t = Table::LeNet5C3;
    assert_eq!(t.dims(), (16, 6));
    assert_eq!(t.connections(), 60);
    for o in 0..6 {
        assert_eq!(LENET5_C3[o], &[o, (o + 1) % 6, (o + 2) % 6]);
    }
    for o in 6..12 {
        assert_eq!(LENET5_C3[o], &[(o - 6) % 6, (o - 5) % 6, (o - 4) % 6, (o - 3) % 6]);
    }
    assert!((0..6).all(|i| t.connects(15, i)));
    assert!(!t.connects(12, 2) && !t.connects(13, 3) && !t.connects(14, 1));
}

/// Each engine's table convolution equals the oracle's plain convolution with the kernel masked by the
/// table (and the kernel gradient masked), exactly, for several strides, paddings and modes.
#[test]
fn table_conv_equals_the_oracle_on_a_masked_kernel() {
    let mut rng = StdRng::seed_from_u64(20_261_130);
    let t = Table::LeNet5C3;
    let mask = t.weight_mask(3);
    for (h, stride, pad, dil, mode) in [
        (7, 1, 0, 1, PaddingMode::Zeros),
        (6, 2, 1, 1, PaddingMode::Reflect),
        (7, 1, 2, 2, PaddingMode::Circular),
        (5, 2, 2, 1, PaddingMode::Replicate),
    ] {
        let g = ConvGeometry { c_in: 6, h_in: h, w_in: h + 1, c_out: 16, k: 3, stride, pad, dil, mode };
        let shapes = vec![("weight", vec![16, 6, 3, 3]), ("bias", vec![16])];
        let params: Vec<Tensor<f64>> = shapes
            .iter()
            .map(|(_, s)| {
                let n = s.iter().product();
                Tensor::from_vec(s, (0..n).map(|_| rng.random_range(-MAX_INT..=MAX_INT) as f64).collect())
            })
            .collect();
        let mut masked = params.clone();
        masked[0].data.iter_mut().zip(&mask).for_each(|(v, &keep)| *v = if keep { *v } else { 0.0 });
        let x = int_matrix(&mut rng, 2, g.in_len());
        let dz = int_matrix(&mut rng, 2, g.out_len());
        // The oracle: the plain convolution with the masked kernel; its kernel gradient masked.
        let mut oracle = Oracle(reference::Conv::new(&g));
        let (z, dx, grads) = run(&mut oracle, &masked, &x, &dz);
        let mut mult = LinearMap::<f64>::multiplicity(&oracle);
        let mut expected_grads = grads;
        for ((gv, m), &keep) in expected_grads[0].data.iter_mut().zip(mult[0].iter_mut()).zip(&mask) {
            if !keep {
                *gv = 0.0;
                *m = 0;
            }
        }
        let mut sparse = table_conv_layer::<f64>(&g, t);
        let mut direct = Masked::<f64>::table_conv(&g, t, Engine::Direct);
        let mut lowered = Masked::<f64>::table_conv(&g, t, Engine::Im2col);
        for (name, layer) in
            [("sparse", &mut sparse as &mut dyn LinearMap<f64>), ("direct", &mut direct), ("im2col", &mut lowered)]
        {
            assert_eq!(layer.param_shapes(), shapes, "{name}");
            assert_eq!(layer.multiplicity(), mult, "{name} {g:?}");
            // Unmasked parameters in: the absent entries must not matter.
            let got = run(layer, &params, &x, &dz);
            assert_eq!(got.0, z, "{name} forward {g:?}");
            assert_eq!(got.1, dx, "{name} input gradient {g:?}");
            assert_eq!(got.2, expected_grads, "{name} parameter gradients {g:?}");
        }
        // The compiled matrix stores no entry for the absent connections: 60 of 96 channel pairs.
        if mode == PaddingMode::Zeros {
            let taps: u32 = mult[0].iter().sum();
            assert_eq!(sparse.matrix.nnz(), taps as usize);
        }
    }
}

fn run(
    layer: &mut dyn LinearMap<f64>,
    params: &[Tensor<f64>],
    x: &DMatrix<f64>,
    dz: &DMatrix<f64>,
) -> (DMatrix<f64>, DMatrix<f64>, Vec<Tensor<f64>>) {
    let (rows, cols) = layer.dims();
    let mut z = DMatrix::from_element(x.nrows(), rows, f64::NAN);
    layer.forward(params, x, &mut z);
    let mut dx = DMatrix::from_element(x.nrows(), cols, f64::NAN);
    layer.backward_input(&mut dx, params, dz);
    let mut grads: Vec<Tensor<f64>> = params.iter().map(|p| Tensor::zeros(&p.shape)).collect();
    layer.backward_params(&mut grads, x, dz);
    (z, dx, grads)
}

/// `lenet5-1998` is `lenet5` with the table in layer 3: the same tensors (dense layout), 36·25 fewer free
/// parameters, the table's zeros from initialisation on, and they stay exactly 0 through SGD steps with
/// momentum and weight decay (both decay modes) on every engine, while the entries in the table move.
#[test]
fn lenet5_1998_absent_entries_stay_zero_on_every_engine() {
    let spec = Spec::parse("lenet5-1998").unwrap();
    assert_eq!(spec, Spec::parse(LENET5_1998).unwrap());
    assert_eq!(Spec::parse(&spec.to_string()).unwrap(), spec, "canonical form round-trips");
    let plain = Network::<f32>::new(&Spec::parse(LENET5).unwrap(), Engine::Sparse);
    let mask = Table::LeNet5C3.weight_mask(5);
    let x = common::random_matrix(8, 784, 0.0, 1.0, 4).map(|v| v as f32);
    let labels = common::random_labels(8, 10, 5);
    for engine in Engine::ALL {
        for mode in [DecayMode::PerParameter, DecayMode::Expanded] {
            let mut net = Network::<f32>::new(&spec, engine);
            assert_eq!(net.n_params(), plain.n_params());
            assert_eq!(net.n_free_params(), plain.n_params() - 36 * 25);
            init_params(&mut net, Init::TorchDefault, 9);
            let start = net.params[3][0].data.clone();
            assert!(start.iter().zip(&mask).all(|(v, &keep)| keep == (*v != 0.0)));
            let mut opt = Sgd::new(0.05, 0.9, 0.01, mode);
            for _ in 0..4 {
                let mut grads = net.zero_grads();
                net.loss_and_grad(&mut grads, &x, Targets::Labels(&labels), Loss::CrossEntropy);
                assert!(grads[3][0].data.iter().zip(&mask).all(|(g, &keep)| keep || *g == 0.0), "{engine:?}");
                opt.step(&mut net, &grads);
            }
            let w = &net.params[3][0].data;
            assert!(w.iter().zip(&mask).all(|(v, &keep)| keep || *v == 0.0), "{engine:?} {mode:?}: absent entry moved");
            assert!(
                w.iter().zip(&start).zip(&mask).any(|((a, b), &keep)| keep && a != b),
                "{engine:?}: nothing trained"
            );
        }
    }
}

/// Unknown tables, tables that do not fit the layer, and tables with groups are refused.
#[test]
fn bad_tables_are_refused() {
    let e = Spec::parse("6x9x9 > conv(16,3,table=lenet6)").unwrap_err().to_string();
    assert!(e.contains("lenet5_c3") && e.contains("lenet6"), "{e}");
    let e = Spec::parse("4x9x9 > conv(16,3,table=lenet5_c3)").unwrap_err().to_string();
    assert!(e.contains("c_in=4"), "{e}");
    assert!(Spec::parse("6x9x9 > conv(16,3,groups=2,table=lenet5_c3)").is_err());
}

/// `train` with a table that does not fit: one `error:` line, exit 2, no run directory.
#[cfg(feature = "cli")]
#[test]
fn cli_refuses_a_table_that_does_not_fit() {
    let d = common::scratch("table-bad");
    let out = d.join("run");
    let model = "1x28x28 > conv(16,5,table=lenet5_c3) > relu > dense(10)";
    let o = common::run(&["train", "--model", model, "--out", common::s(&out)]);
    common::fails(&o, &["lenet5_c3", "c_in=1"]);
    assert!(!out.exists());
}
