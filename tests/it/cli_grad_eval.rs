//! `cnn-as-mlp grad` and `cnn-as-mlp eval`.
#![cfg(feature = "cli")]

use crate::common;

use std::collections::BTreeMap;

use cnn_as_mlp::checkpoint::{self, Stored};
use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::{Engine, Network, Spec};
use common::*;
use nalgebra::DMatrix;
use safetensors::{Dtype, tensor::TensorView};

const N: usize = 5;

/// Writes `x` (N, 1, 28, 28) and labels `y` (N) i64 to `path`; returns them.
fn write_batch(path: &std::path::Path, x_nan: bool) -> (Vec<f32>, Vec<usize>) {
    let mut x: Vec<f32> = (0..N * 784).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
    if x_nan {
        x[10] = f32::NAN;
    }
    let y: Vec<usize> = (0..N).map(|i| (i * 3) % 10).collect();
    let xb: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let yb: Vec<u8> = y.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect();
    let views = vec![
        ("x", TensorView::new(Dtype::F32, vec![N, 1, 28, 28], &xb).unwrap()),
        ("y", TensorView::new(Dtype::I64, vec![N], &yb).unwrap()),
    ];
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
    (x, y)
}

fn write_params(path: &std::path::Path, net: &Network<f32>) {
    checkpoint::write(path, &checkpoint::named(net, &net.params, ""), &BTreeMap::new()).unwrap();
}

/// The CLI's gradients are the library's `loss_and_grad` on the same batch, named like the parameters.
#[test]
fn grad_writes_loss_and_one_gradient_per_parameter() {
    let d = scratch("grad");
    let spec = Spec::parse("lenet5").unwrap();
    let mut net = Network::<f32>::new(&spec, Engine::Sparse);
    init_params(&mut net, Init::TorchDefault, 3);
    let (p, b, g) = (d.join("p.safetensors"), d.join("b.safetensors"), d.join("g.safetensors"));
    write_params(&p, &net);
    let (x, y) = write_batch(&b, false);
    ok(&run(&["grad", "--model", "lenet5", "--params", s(&p), "--batch", s(&b), "--out", s(&g)]));

    let xm = DMatrix::from_fn(N, 784, |r, c| x[r * 784 + c]);
    let mut grads = net.zero_grads();
    let j = net.loss_and_grad(&mut grads, &xm, Targets::Labels(&y), Loss::CrossEntropy);

    let out = Stored::read(&g).unwrap();
    let loss = out.f32_tensor("loss", Some(&[])).unwrap();
    assert_eq!(loss.data, [j]);
    let mut expected: Vec<String> = net.param_names().into_iter().map(|(n, _)| n).collect();
    expected.push("loss".into());
    expected.sort();
    assert_eq!(out.names(), expected);
    for ((name, shape), t) in net.param_names().iter().zip(grads.iter().flatten()) {
        let got = out.f32_tensor(name, Some(shape)).unwrap();
        assert_eq!(&got.data, &t.data, "{name}");
    }
}

#[test]
fn grad_refuses_non_finite_inputs_and_writes_nothing() {
    let d = scratch("grad-nan");
    let spec = Spec::parse("lenet5").unwrap();
    let mut net = Network::<f32>::new(&spec, Engine::Sparse);
    init_params(&mut net, Init::TorchDefault, 3);
    let (p, b, g) = (d.join("p.safetensors"), d.join("b.safetensors"), d.join("g.safetensors"));
    write_params(&p, &net);
    write_batch(&b, true);
    let o = run(&["grad", "--model", "lenet5", "--params", s(&p), "--batch", s(&b), "--out", s(&g)]);
    fails(&o, &["\"x\"", "non-finite", s(&b)]);
    assert!(!g.exists());

    write_batch(&b, false);
    net.params[0][1].data[2] = f32::INFINITY;
    write_params(&p, &net);
    let o = run(&["grad", "--model", "lenet5", "--params", s(&p), "--batch", s(&b), "--out", s(&g)]);
    fails(&o, &["\"0.bias\"", "non-finite", s(&p)]);
    assert!(!g.exists());

    let o = run(&["grad", "--model", "seed", "--params", s(&p), "--batch", s(&b), "--out", s(&g)]);
    fails(&o, &[s(&p)]);
    assert!(!g.exists());
}

#[test]
fn eval_prints_accuracy_loss_and_confusion_matrix() {
    let d = scratch("eval");
    let out = d.join("run");
    ok(&run(&["train", "--model", SMALL, "--limit", "256", "--epochs", "1", "--out", s(&out)]));
    let o = run(&["eval", "--checkpoint", s(&out.join("model.safetensors")), "--limit", "100"]);
    ok(&o);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("eval: ") && lines[0].contains("n=100") && lines[0].contains("acc="), "{text}");
    // Header row, then 10 rows of 10 counts summing to n.
    let at = lines.iter().position(|l| l.starts_with("confusion matrix")).expect("a confusion matrix");
    let rows = &lines[at + 2..at + 12];
    let counts: Vec<Vec<usize>> =
        rows.iter().map(|r| r.split_whitespace().skip(1).map(|c| c.parse::<usize>().unwrap()).collect()).collect();
    let total: usize = counts.iter().flatten().sum();
    assert_eq!(total, 100, "{text}");
    // Per class: "i name acc (n=N)", acc = the diagonal over the row sum.
    let pc = lines.iter().position(|l| l.starts_with("per-class accuracy")).expect("per-class accuracy");
    for (i, line) in lines[pc + 1..pc + 11].iter().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((f[0], f[1]), (i.to_string().as_str(), i.to_string().as_str()), "{line}");
        let n: usize = counts[i].iter().sum();
        assert_eq!(f[3], format!("(n={n})"), "{line}");
        if n > 0 {
            assert_eq!(f[2], format!("{:.4}", counts[i][i] as f64 / n as f64), "{line}");
        }
    }
    // A run directory is accepted, and --json gives the same numbers as one object.
    let o = run(&["eval", "--checkpoint", s(&out), "--limit", "100", "--json"]);
    ok(&o);
    assert_eq!(stdout(&o).lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["n"], 100);
    let json_counts: Vec<Vec<usize>> = serde_json::from_value(v["confusion"].clone()).unwrap();
    assert_eq!(json_counts, counts);
    assert_eq!(v["per_class"].as_array().unwrap().len(), 10);
    assert_eq!(v["per_class"][3]["class"], "3");
    let o = run(&["eval", "--checkpoint", s(&out), "--limit", "100", "--quiet"]);
    ok(&o);
    assert_eq!(stdout(&o).lines().count(), 1);
    assert_eq!(stdout(&o).lines().next(), Some(lines[0]));
}
