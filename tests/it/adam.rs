//! Adam (`--optimizer adam`, `src/optim.rs`): a few steps against `torch.optim.Adam` and `torch.optim.AdamW`
//! (fixtures in `tests/fixtures/optim/`, made by `tests/fixtures/make_fixtures.py`), the same trajectory on
//! every engine, connections a table leaves out staying exactly zero, and a run resumed from its moments
//! giving the bytes of an uninterrupted one.

use crate::common;

use approx::abs_diff_eq;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::optim::{Adam, DecayMode};
use cnn_as_mlp::spec::Spec;
use common::*;
use nalgebra::DMatrix;
use safetensors::{Dtype, SafeTensors};

const OPTIM_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/optim");
/// Largest difference from PyTorch's float64 parameters and moments, relative to the tensor's largest
/// value: both compute the same formulas in float64, in slightly different orders.
const REL_TOL: f64 = 1e-10;

/// A fixture's tensors (as f64, row-major, with their shapes) and metadata.
struct Case {
    name: String,
    meta: HashMap<String, String>,
    tensors: HashMap<String, (Vec<usize>, Vec<f64>)>,
}

impl Case {
    fn read(path: &Path) -> Case {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors = HashMap::new();
        for (name, v) in st.tensors() {
            let d = v.data();
            let values: Vec<f64> = match v.dtype() {
                Dtype::F64 => d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
                Dtype::F32 => d.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap()))).collect(),
                Dtype::I64 => d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
                other => panic!("{}: {name}: dtype {other:?}", path.display()),
            };
            tensors.insert(name, (v.shape().to_vec(), values));
        }
        Case { name: path.file_stem().unwrap().to_string_lossy().into_owned(), meta, tensors }
    }

    #[track_caller]
    fn get(&self, key: &str) -> &(Vec<usize>, Vec<f64>) {
        self.tensors.get(key).unwrap_or_else(|| panic!("{}: no tensor {key:?}", self.name))
    }

    #[track_caller]
    fn meta(&self, key: &str) -> &str {
        self.meta.get(key).unwrap_or_else(|| panic!("{}: no metadata {key:?}", self.name))
    }
}

fn cases() -> Vec<Case> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(OPTIM_DIR)
        .unwrap_or_else(|e| panic!("{OPTIM_DIR}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    paths.sort();
    paths.iter().map(|p| Case::read(p)).collect()
}

/// Largest |ours − torch| over a tensor, relative to torch's largest |value|.
fn rel_diff(ours: &[f64], torch: &[f64]) -> f64 {
    assert_eq!(ours.len(), torch.len());
    let scale = torch.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    ours.iter().zip(torch).fold(0.0f64, |m, (a, b)| m.max((a - b).abs())) / scale
}

/// Replays each fixture: the network from its initial parameters, each step's batch through the crate's
/// loss and backpropagation, then [`Adam::step`]; after every step each parameter must match PyTorch's
/// (`torch.optim.Adam` for coupled decay, `torch.optim.AdamW` for decoupled), and after the last step the
/// moments must match PyTorch's `exp_avg` and `exp_avg_sq`. The coupled and decoupled cases start from the
/// same parameters and batches, and must end apart: the fixture tells the two decays apart.
#[test]
fn adam_matches_pytorch_adam_and_adamw() {
    let cases = cases();
    assert!(cases.len() >= 3, "{OPTIM_DIR}: {} cases (run tests/fixtures/make_fixtures.py)", cases.len());
    let mut finals = HashMap::new();
    for c in &cases {
        let spec = Spec::parse(c.meta("spec")).unwrap();
        let mut net = Network::<f64>::new(&spec, Engine::Sparse);
        let names: Vec<String> = net.param_names().into_iter().map(|(n, _)| n).collect();
        let load = |net: &mut Network<f64>, prefix: &str| {
            let mut name = names.iter();
            for t in net.params.iter_mut().flatten() {
                let (shape, v) = c.get(&format!("{prefix}{}", name.next().unwrap()));
                assert_eq!(shape, &t.shape.to_vec(), "{}", c.name);
                t.data.copy_from_slice(v);
            }
        };
        load(&mut net, "");
        let lr: f64 = c.meta("lr").parse().unwrap();
        let wd: f64 = c.meta("weight_decay").parse().unwrap();
        let decoupled = c.meta("optimizer") == "adamw";
        let mut adam = Adam::<f64>::new(lr, wd, DecayMode::PerParameter, decoupled);
        assert_eq!((adam.betas, adam.eps), ((0.9, 0.999), 1e-8), "PyTorch's defaults");
        let steps: usize = c.meta("steps").parse().unwrap();
        let mut worst = 0.0f64;
        for t in 1..=steps {
            let (xs, x) = c.get(&format!("step{t}.x"));
            let x = DMatrix::from_row_slice(xs[0], x.len() / xs[0], x);
            let labels: Vec<usize> = c.get(&format!("step{t}.labels")).1.iter().map(|&v| v as usize).collect();
            let mut grads = net.zero_grads();
            let loss = net.loss_and_grad(&mut grads, &x, Targets::Labels(&labels), Loss::CrossEntropy);
            let torch_loss = c.get(&format!("step{t}.loss")).1[0];
            assert!(
                abs_diff_eq!(loss, torch_loss, epsilon = REL_TOL * torch_loss.abs()),
                "{} step {t}: loss {loss} vs {torch_loss}",
                c.name
            );
            adam.step(&mut net, &grads);
            for (t_ours, name) in net.params.iter().flatten().zip(&names) {
                let d = rel_diff(&t_ours.data, &c.get(&format!("step{t}.{name}")).1);
                worst = worst.max(d);
                assert!(d <= REL_TOL, "{} step {t}: {name} differs from PyTorch by {d:e} (relative)", c.name);
            }
        }
        for (prefix, moments) in [("exp_avg.", &adam.m), ("exp_avg_sq.", &adam.v)] {
            for (t_ours, name) in moments.iter().flatten().zip(&names) {
                let d = rel_diff(&t_ours.data, &c.get(&format!("{prefix}{name}")).1);
                assert!(d <= REL_TOL, "{}: {prefix}{name} differs from PyTorch by {d:e}", c.name);
            }
        }
        println!("{}: {steps} steps, largest relative difference {worst:e}", c.name);
        finals.insert(c.name.clone(), net.params.iter().flatten().flat_map(|t| t.data.clone()).collect::<Vec<_>>());
    }
    let (a, w) = (&finals["adam_coupled"], &finals["adamw_decoupled"]);
    assert!(rel_diff(a, w) > 1e-4, "coupled and decoupled decay gave the same parameters");
}

/// Adam on the sparse, direct and im2col engines follows the same trajectory (float64, 6 steps of a
/// network with a connection table, coupled and decoupled decay, both decay modes), and the weights the
/// table leaves out stay exactly 0.
#[test]
fn adam_is_the_same_on_every_engine_and_keeps_table_zeros() {
    let spec = Spec::parse("6x8x8 > conv(16,3,table=lenet5_c3) > relu > maxpool(2) > dense(5)").unwrap();
    let x = random_matrix(12, 6 * 64, 0.0, 1.0, 11);
    let labels = random_labels(12, 5, 12);
    for (decoupled, mode) in
        [(false, DecayMode::PerParameter), (true, DecayMode::PerParameter), (false, DecayMode::Expanded)]
    {
        let mut results = Vec::new();
        for engine in [Engine::Sparse, Engine::Direct, Engine::Im2col] {
            let mut net = Network::<f64>::new(&spec, engine);
            init_params(&mut net, Init::TorchDefault, 5);
            let zeros: Vec<usize> =
                net.params[0][0].data.iter().enumerate().filter(|(_, v)| **v == 0.0).map(|(i, _)| i).collect();
            // 16 maps × 6 inputs, 60 connections (Table I): 36 pairs of 3 × 3 zeros.
            assert_eq!(zeros.len(), 36 * 9, "{engine:?}");
            let mut adam = Adam::<f64>::new(0.01, 0.1, mode, decoupled);
            let mut losses = Vec::new();
            for _ in 0..6 {
                let mut grads = net.zero_grads();
                losses.push(net.loss_and_grad(&mut grads, &x, Targets::Labels(&labels), Loss::CrossEntropy));
                adam.step(&mut net, &grads);
            }
            assert!(zeros.iter().all(|&i| net.params[0][0].data[i] == 0.0), "{engine:?}: a left-out weight moved");
            assert!(zeros.iter().all(|&i| adam.m[0][0].data[i] == 0.0 && adam.v[0][0].data[i] == 0.0));
            assert!(losses[5] < losses[0], "{engine:?} {decoupled} {mode:?}: loss {losses:?}");
            results.push((engine, net.params.iter().flatten().flat_map(|t| t.data.clone()).collect::<Vec<_>>()));
        }
        for (engine, p) in &results[1..] {
            let d = rel_diff(p, &results[0].1);
            assert!(d <= 1e-9, "{engine:?} differs from sparse by {d:e} ({decoupled}, {mode:?})");
        }
    }
}

#[cfg(feature = "cli")]
mod cli {
    use super::*;

    /// `--optimizer adam`: two epochs straight and one then `--resume` give the same model and state bytes
    /// (the moments are in the state, the step count is the run's); the state holds PyTorch's names.
    #[test]
    fn adam_run_resumes_bit_identically() {
        let d = scratch("adam-resume");
        let (a, b) = (d.join("a"), d.join("b"));
        let args = ["--model", SMALL, "--limit", "256", "--test-limit", "100", "--optimizer", "adam", "--decoupled-wd"];
        let args = [&args[..], &["--lr-schedule", "constant", "--weight-decay", "0.01", "--quiet"]].concat();
        ok(&run(&[&["train", "--epochs", "2", "--out", s(&a)][..], &args[..]].concat()));
        ok(&run(&[&["train", "--epochs", "1", "--out", s(&b)][..], &args[..]].concat()));
        ok(&run(&["train", "--resume", s(&b), "--epochs", "2", "--quiet"]));
        for f in ["model.safetensors", "state.safetensors"] {
            assert!(std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(), "{f} differs after resume");
        }
        let state = cnn_as_mlp::checkpoint::Stored::read(&a.join("state.safetensors")).unwrap();
        assert!(state.names().contains(&"exp_avg.0.weight".to_string()), "{:?}", state.names());
        assert!(state.names().contains(&"exp_avg_sq.2.bias".to_string()), "{:?}", state.names());
        let model = cnn_as_mlp::checkpoint::Stored::read(&a.join("model.safetensors")).unwrap();
        assert_eq!((model.meta("optimizer").unwrap(), model.meta("decoupled_wd").unwrap()), ("adam", "true"));
        assert_eq!(model.meta("lr").unwrap(), "0.001", "PyTorch's default learning rate for Adam");
        // An SGD run names no optimizer: its bytes are those it always had.
        ok(&run(&[
            "train",
            "--model",
            SMALL,
            "--limit",
            "64",
            "--test-limit",
            "50",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            s(&d.join("sgd")),
        ]));
        let sgd = cnn_as_mlp::checkpoint::Stored::read(&d.join("sgd").join("model.safetensors")).unwrap();
        assert!(!sgd.metadata.contains_key("optimizer"));
    }

    /// `--prune` with Adam: the weights pruning removes stay exactly 0 to the end (their moments are
    /// cleared with them).
    #[test]
    fn adam_keeps_pruned_weights_at_zero() {
        let d = scratch("adam-prune");
        let a = d.join("a");
        let args = ["--model", SMALL, "--limit", "256", "--test-limit", "50", "--optimizer", "adam", "--prune", "0.5"];
        let args = [&args[..], &["--lr-schedule", "constant", "--quiet"]].concat();
        ok(&run(&[&["train", "--epochs", "4", "--out", s(&a)][..], &args[..]].concat()));
        let model = cnn_as_mlp::checkpoint::Stored::read(&a.join("model.safetensors")).unwrap();
        for name in ["0.weight", "2.weight"] {
            let w = model.f32_tensor(name, None).unwrap();
            let zeros = w.data.iter().filter(|v| **v == 0.0).count();
            assert!(zeros * 2 >= w.data.len(), "{name}: {zeros} zeros of {}", w.data.len());
        }
    }

    /// Options that do not go together are refused before anything is written.
    #[test]
    fn adam_options_are_checked() {
        let d = scratch("adam-options");
        let out = d.join("run");
        let base = ["train", "--model", SMALL, "--limit", "64", "--out", s(&out)];
        let adm = run(&[&base[..], &["--optimizer", "adm"]].concat());
        fails(&adm, &["--optimizer", "'adm'", "possible values: sgd, adam", "similar value exists: 'adam'"]);
        fails(&run(&[&base[..], &["--optimizer", "adam", "--momentum", "0.5"]].concat()), &["--momentum 0.5", "betas"]);
        fails(&run(&[&base[..], &["--decoupled-wd"]].concat()), &["--decoupled-wd", "adam only"]);
        assert!(!out.exists());
    }
}
