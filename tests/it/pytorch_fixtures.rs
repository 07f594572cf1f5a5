//! The crate against numbers written by PyTorch (float64), read from `tests/fixtures/*.safetensors`.
//!
//! The fixtures come from `tests/fixtures/make_fixtures.py`, run as
//!
//! ```text
//! python tests/fixtures/make_fixtures.py        # torch 2.15.0+cu132, float64, every case seeded
//! ```
//!
//! Each file holds one case, with the metadata `{"spec": .., "loss": "dot" | "ce" | "mse"}`:
//!
//! - `dot`: one layer and a fixed upstream gradient `dout`; the "loss" is `sum(out * dout)`, so `dx` and
//!   `grad.0.*` are the layer's vector-Jacobian products. Tensors: `x`, `0.weight`, `0.bias`, `out`, `dout`,
//!   `dx`, `grad.0.weight`, `grad.0.bias`.
//! - `ce`, `mse`: a whole network on a labelled batch. Tensors: `x`, `labels` (int64), every parameter,
//!   `out`, `loss` (a scalar), `grad.<name>` for every parameter.
//!
//! Every comparison checks the shape first, then the values, and prints the largest absolute difference.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::spec::{Layer, Shape, Spec};
use nalgebra::DMatrix;
use safetensors::{Dtype, SafeTensors};

/// Where the fixtures live.
const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
/// The generator writes at least this many cases; fewer means files went missing.
const MIN_CASES: usize = 20;
/// Tolerance relative to the tensor's magnitude: `|ours − torch| <= REL_TOL · max(max |torch|, SCALE_FLOOR)`.
/// Both sides compute in f64 and differ only in summation order, which costs about `fan_in · ε ≈ 1e-13`
/// of the magnitude for these sizes (fan-in up to 400); 1e-9 leaves room and still catches any real error.
const REL_TOL: f64 = 1e-9;
/// Smallest magnitude a tensor is compared at, so that a tensor of tiny values (gradients through saturated
/// sigmoids) is not held to an absolute tolerance below the rounding of its neighbours.
const SCALE_FLOOR: f64 = 1e-6;

/// A tensor read from a fixture, row-major as PyTorch wrote it.
struct Array {
    shape: Vec<usize>,
    values: Values,
}

enum Values {
    Float(Vec<f64>),
    Int(Vec<i64>),
}

impl Array {
    #[track_caller]
    fn floats(&self) -> &[f64] {
        match &self.values {
            Values::Float(v) => v,
            Values::Int(_) => panic!("expected a float tensor, found int64"),
        }
    }
}

/// One case: its file name, metadata and tensors.
struct Fixture {
    name: String,
    spec: String,
    preset: Option<String>,
    loss: String,
    tensors: HashMap<String, Array>,
}

impl Fixture {
    /// Reads a safetensors file. Data may sit at any byte offset, so values are decoded from
    /// little-endian chunks rather than reinterpreted in place.
    fn read(path: &Path) -> Fixture {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let meta = meta.metadata().clone().unwrap_or_default();
        let field = |key: &str| {
            meta.get(key).cloned().unwrap_or_else(|| panic!("{}: no {key:?} in the metadata", path.display()))
        };
        let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let values = match view.dtype() {
                Dtype::F64 => {
                    Values::Float(data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect())
                }
                Dtype::F32 => Values::Float(
                    data.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap()))).collect(),
                ),
                Dtype::I64 => {
                    Values::Int(data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect())
                }
                other => panic!("{}: tensor {name:?} has dtype {other:?}; expected F64, F32 or I64", path.display()),
            };
            tensors.insert(name, Array { shape: view.shape().to_vec(), values });
        }
        Fixture {
            name: path.file_stem().unwrap().to_string_lossy().into_owned(),
            spec: field("spec"),
            preset: meta.get("preset").cloned(),
            loss: field("loss"),
            tensors,
        }
    }

    #[track_caller]
    fn get(&self, key: &str) -> &Array {
        self.tensors.get(key).unwrap_or_else(|| panic!("{}: no tensor {key:?}", self.name))
    }

    /// `key` (B, ...) as a (B, features) matrix.
    #[track_caller]
    fn matrix(&self, key: &str) -> DMatrix<f64> {
        let a = self.get(key);
        let batch = a.shape[0];
        let features = a.shape[1..].iter().product();
        DMatrix::from_row_slice(batch, features, a.floats())
    }
}

/// Every fixture file, sorted by name; panics if fewer than [`MIN_CASES`].
fn fixtures() -> Vec<Fixture> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(FIXTURE_DIR)
        .unwrap_or_else(|e| panic!("{FIXTURE_DIR}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= MIN_CASES,
        "{FIXTURE_DIR}: {} fixtures, expected at least {MIN_CASES} (run tests/fixtures/make_fixtures.py)",
        paths.len()
    );
    paths.iter().map(|p| Fixture::read(p)).collect()
}

/// Shape and values of one tensor against PyTorch's; prints the largest difference and returns a failure
/// message, if any.
fn compare(case: &str, what: &str, ours_shape: &[usize], ours: &[f64], torch: &Array) -> Option<String> {
    if ours_shape != torch.shape.as_slice() {
        let msg = format!("{case}: {what}: shape {ours_shape:?}, PyTorch {:?}", torch.shape);
        println!("  {msg}");
        return Some(msg);
    }
    let expected = torch.floats();
    let scale = expected.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let tol = REL_TOL * scale.max(SCALE_FLOOR);
    let (mut worst, mut at) = (0.0_f64, 0);
    for (i, (a, b)) in ours.iter().zip(expected).enumerate() {
        let d = (a - b).abs();
        if d > worst || d.is_nan() {
            (worst, at) = (d, i);
        }
    }
    println!(
        "  {what:<16} {:<18} max |diff| {worst:.3e}  (max |torch| {scale:.3e}, tol {tol:.1e})",
        format!("{ours_shape:?}")
    );
    (worst > tol || worst.is_nan()).then(|| {
        format!("{case}: {what}[{at}]: ours {}, PyTorch {}, |diff| {worst:e} > tol {tol:e}", ours[at], expected[at])
    })
}

/// A (B, features) matrix as PyTorch's row-major values.
fn row_major(m: &DMatrix<f64>) -> Vec<f64> {
    m.transpose().as_slice().to_vec()
}

/// PyTorch's shape of the activation after the first `n` layers: (B, C, H, W), or (B, n) after a dense layer
/// (activations keep the shape of what they follow).
fn torch_shape(spec: &Spec, n: usize, batch: usize, shape: Shape) -> Vec<usize> {
    match spec.layers[..n].iter().rev().find(|l| !matches!(l, Layer::Act(_))) {
        Some(Layer::Dense { .. }) => vec![batch, shape.len()],
        _ => vec![batch, shape.c, shape.h, shape.w],
    }
}

/// Builds the case's network in f64 on `engine` and loads its parameters, checking their names and shapes
/// against [`Network::param_names`].
fn load_network(f: &Fixture, engine: Engine) -> Network<f64> {
    let spec = Spec::parse(&f.spec).unwrap_or_else(|e| panic!("{}: {e}", f.name));
    if let Some(preset) = &f.preset {
        assert_eq!(
            Spec::parse(preset).unwrap(),
            spec,
            "{}: the crate's preset {preset:?} is not the fixture's spec",
            f.name
        );
    }
    let mut net = Network::<f64>::new(&spec, engine);
    let names = net.param_names();
    let in_file: BTreeSet<&str> =
        f.tensors.keys().map(String::as_str).filter(|k| k.contains('.') && !k.starts_with("grad.")).collect();
    let expected: BTreeSet<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(in_file, expected, "{}: parameter names in the file differ from param_names()", f.name);
    let mut named = names.iter();
    for layer in &mut net.params {
        for t in layer {
            let (name, shape) = named.next().unwrap();
            let a = f.get(name);
            assert_eq!(
                &a.shape, shape,
                "{}: {name} has shape {:?} in the file, {shape:?} in the crate",
                f.name, a.shape
            );
            t.data.copy_from_slice(a.floats());
        }
    }
    net
}

/// Compares every parameter gradient with `grad.<name>`.
fn compare_grads(
    f: &Fixture,
    case: &str,
    net: &Network<f64>,
    grads: &[Vec<cnn_as_mlp::Tensor<f64>>],
    failures: &mut Vec<String>,
) {
    let names = net.param_names();
    let mut named = names.iter();
    for t in grads.iter().flatten() {
        let (name, _) = named.next().unwrap();
        let what = format!("grad.{name}");
        failures.extend(compare(case, &what, &t.shape, &t.data, f.get(&what)));
    }
}

/// One layer on every engine: forward output, input gradient `Wᵀ dout` and parameter gradients.
fn check_single_layer(f: &Fixture, failures: &mut Vec<String>) {
    for engine in Engine::ALL {
        let case = format!("{} on {}", f.name, engine.name());
        let mut net = load_network(f, engine);
        assert_eq!(net.spec.layers.len(), 1, "{}: a `dot` case has one layer", f.name);
        let x = f.matrix("x");
        let batch = x.nrows();
        let x_shape = torch_shape(&net.spec, 0, batch, net.spec.input);
        assert_eq!(f.get("x").shape, x_shape, "{}: x", f.name);
        let out = net.forward(&x).clone();
        let out_shape = torch_shape(&net.spec, 1, batch, net.activation_shapes()[1]);
        failures.extend(compare(&case, "out", &out_shape, &row_major(&out), f.get("out")));

        let dout = f.matrix("dout");
        assert_eq!(dout.shape(), out.shape(), "{}: dout", f.name);
        let mut grads = net.zero_grads();
        net.backward(&mut grads, &dout);
        // The network's backward skips the first layer's input gradient; ask the layer itself.
        let map = net.linear_map(0).expect("a single-layer case is a linear map");
        let mut dx = DMatrix::zeros(batch, x.ncols());
        map.backward_input(&mut dx, &net.params[0], &dout);
        failures.extend(compare(&case, "dx", &x_shape, &row_major(&dx), f.get("dx")));
        compare_grads(f, &case, &net, &grads, failures);
    }
}

/// A whole network on every engine: output, loss and every parameter gradient.
fn check_network(f: &Fixture, failures: &mut Vec<String>) {
    let loss = Loss::from_name(&f.loss).unwrap_or_else(|| panic!("{}: unknown loss {:?}", f.name, f.loss));
    for engine in Engine::ALL {
        let case = format!("{} on {}", f.name, engine.name());
        let mut net = load_network(f, engine);
        let x = f.matrix("x");
        let batch = x.nrows();
        assert_eq!(f.get("x").shape, torch_shape(&net.spec, 0, batch, net.spec.input), "{}: x", f.name);
        let labels: Vec<usize> = match &f.get("labels").values {
            Values::Int(v) => v.iter().map(|&l| usize::try_from(l).expect("labels are non-negative")).collect(),
            Values::Float(_) => panic!("{}: labels must be int64", f.name),
        };
        let mut grads = net.zero_grads();
        let j = net.loss_and_grad(&mut grads, &x, Targets::Labels(&labels), loss);
        let n = net.spec.layers.len();
        let out_shape = torch_shape(&net.spec, n, batch, net.activation_shapes()[n]);
        failures.extend(compare(&case, "out", &out_shape, &row_major(net.output()), f.get("out")));
        failures.extend(compare(&case, "loss", &[], &[j], f.get("loss")));
        compare_grads(f, &case, &net, &grads, failures);
    }
}

/// Runs `check` on every fixture whose loss `selects`, then fails with every mismatch at once.
fn run(selects: impl Fn(&str) -> bool, check: fn(&Fixture, &mut Vec<String>)) -> usize {
    let mut failures = Vec::new();
    let mut n = 0;
    for f in fixtures().iter().filter(|f| selects(&f.loss)) {
        println!("{} [{}] {}", f.name, f.loss, f.spec);
        check(f, &mut failures);
        n += 1;
    }
    assert!(failures.is_empty(), "{} mismatch(es) with PyTorch:\n{}", failures.len(), failures.join("\n"));
    n
}

/// Checks proofs/T1, T3, T4 and T5 against PyTorch on every engine: each conv (strides 2 and 3, padding, dilation 2, every
/// padding mode, several channels, sizes the stride does not divide, 1x1), max and mean pooling (windows
/// apart and overlapping), dense and local layer, forward and both vector-Jacobian products.
#[test]
fn pytorch_single_layers_match() {
    let n = run(|loss| loss == "dot", check_single_layer);
    assert!(n >= MIN_CASES, "only {n} single-layer cases");
}

/// Checks proofs/T3 (with T1, T4, T5 inside) against PyTorch on every engine: `lenet5` and `seed` with cross-entropy and
/// with ½‖h − y‖², and two small networks, output, loss and the gradient of every parameter.
#[test]
fn pytorch_networks_match() {
    let n = run(|loss| loss != "dot", check_network);
    assert!(n >= 4, "only {n} network cases");
}
