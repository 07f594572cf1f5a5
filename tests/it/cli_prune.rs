//! `train --prune S`: gradual magnitude pruning through the command. Removed weights stay exactly 0 (and
//! their momentum too) on every engine; each layer ends at the requested sparsity; the masks live in the
//! checkpoint's metadata, so `kill -9` then `--resume` gives the uninterrupted run's bytes, and `eval` and
//! `show` rebuild the pruned layers; bad values are one-line errors. See `src/prune.rs`.
#![cfg(feature = "cli")]

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cnn_as_mlp::checkpoint::Stored;
use cnn_as_mlp::prune::decode_mask;
use common::*;

/// A conv layer and two dense layers, so that both kinds are pruned.
const NET: &str = "1x28x28 > conv(4,5,stride=3) > relu > dense(16) > relu > dense(10)";
const ARGS: [&str; 16] = [
    "--model",
    NET,
    "--limit",
    "512",
    "--epochs",
    "4",
    "--batch",
    "32",
    "--seed",
    "5",
    "--prune",
    "0.9",
    "--prune-start",
    "0",
    "--prune-every",
    "3",
];

/// For each pruned layer of a run: (layer, mask) from the model's metadata, checked against the weights
/// (0 where removed) and the momentum (0 where removed).
fn masks(dir: &Path) -> Vec<(usize, Vec<bool>)> {
    let model = Stored::read(&dir.join("model.safetensors")).unwrap();
    let state = Stored::read(&dir.join("state.safetensors")).unwrap();
    let mut out = Vec::new();
    for i in [0usize, 2, 4] {
        let w = model.f32_tensor(&format!("{i}.weight"), None).unwrap();
        let v = state.f32_tensor(&format!("velocity.{i}.weight"), None).unwrap();
        let text = model.meta(&format!("mask.{i}.weight")).unwrap_or_else(|_| panic!("layer {i} has no mask"));
        let keep = decode_mask(text, w.len()).unwrap();
        for (j, &k) in keep.iter().enumerate() {
            if !k {
                assert_eq!((w.data[j], v.data[j]), (0.0, 0.0), "layer {i} entry {j}: removed but not 0");
            }
        }
        assert!(keep.iter().zip(&w.data).any(|(&k, &x)| k && x != 0.0), "layer {i}: nothing left");
        out.push((i, keep));
    }
    out
}

/// Every engine: after the schedule each layer has exactly `round(0.9·n)` entries removed, and they
/// are 0 in the weights and the momentum (SGD with momentum 0.9 and weight decay 1e-4, lenet5's).
#[test]
fn every_engine_prunes_to_the_target_and_keeps_zeros() {
    let d = scratch("prune-engines");
    for engine in ["sparse", "direct", "im2col"] {
        let out = d.join(engine);
        let o = run(&[&["train", "--engine", engine, "--out", s(&out)][..], &ARGS[..]].concat());
        ok(&o);
        assert!(stdout(&o).contains("epoch 4/4 sparsity 0.900 (conv 0.900, dense 0.900)"), "{}", stdout(&o));
        for (i, keep) in masks(&out) {
            let removed = keep.iter().filter(|&&k| !k).count();
            assert_eq!(removed, (0.9 * keep.len() as f64).round() as usize, "{engine} layer {i}");
        }
    }
}

/// `eval` on the pruned run reports the run's last test accuracy (on the sparse engine, whose dense layers
/// became tied sparse matrices, and on direct); `show` draws the pruned conv and dense layers with only the
/// kept connections.
#[test]
fn eval_and_show_rebuild_the_pruned_layers() {
    let d = scratch("prune-eval");
    let out = d.join("run");
    ok(&run(&[&["train", "--out", s(&out)][..], &ARGS[..]].concat()));
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let acc = csv.lines().last().unwrap().split(',').nth(5).unwrap().parse::<f64>().unwrap();
    for engine in ["sparse", "direct"] {
        let o = run(&["eval", "--checkpoint", s(&out), "--engine", engine, "--quiet"]);
        ok(&o);
        assert!(stdout(&o).contains(&format!("acc={acc:.4}")), "{engine}: {} vs {acc}", stdout(&o));
    }
    let kept = masks(&out);
    let below = cnn_as_mlp::engines::sparse::DENSE_AS_TIED_BELOW;
    assert!(kept.iter().all(|(_, k)| k.iter().filter(|&&x| x).count() as f64 <= below * k.len() as f64));
    for layer in ["0", "2"] {
        let png = d.join(format!("l{layer}.png"));
        ok(&run(&["show", "--checkpoint", s(&out), "--layer", layer, "--out", s(&png)]));
        assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    }
    // The same dense layer unpruned is a GEMM and has no compiled matrix to draw.
    let png = d.join("unpruned.png");
    fails(&run(&["show", "--model", NET, "--layer", "2", "--out", s(&png)]), &["no compiled sparse matrix"]);
}

/// `kill -9` at seeded instants of a pruning run, then `--resume`: every recovery gives the
/// uninterrupted run's checkpoint, state (masks included) and metrics.
#[test]
fn pruned_run_killed_and_resumed_gives_the_same_bytes() {
    let d = scratch("prune-crash");
    let reference = d.join("reference");
    let t0 = Instant::now();
    ok(&run(&[&["train", "--out", s(&reference)][..], &ARGS[..]].concat()));
    let span = t0.elapsed().as_secs_f64();
    let files = |dir: &Path| -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> =
            ["model.safetensors", "state.safetensors"].iter().map(|f| std::fs::read(dir.join(f)).unwrap()).collect();
        let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        v.push(
            csv.lines().map(|l| l.split(',').take(6).collect::<Vec<_>>().join(",")).collect::<String>().into_bytes(),
        );
        v
    };
    let expected = files(&reference);
    let mut resumed = 0;
    for i in 0..8 {
        let at = Duration::from_secs_f64(span * (0.3 + 0.09 * i as f64));
        let out = d.join(format!("k{i}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_cnn-as-mlp"))
            .args([&["train", "--out", s(&out)][..], &ARGS[..]].concat())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill();
        child.wait().unwrap();
        let o = if out.join("model.safetensors").exists() {
            resumed += 1;
            run(&["train", "--resume", s(&out)])
        } else {
            run(&[&["train", "--out", s(&out)][..], &ARGS[..]].concat())
        };
        ok(&o);
        assert!(files(&out) == expected, "kill {i} at {at:?}: the resumed run differs");
    }
    assert!(resumed >= 4, "only {resumed} kills landed after the first commit");
}

/// A pruning run resumed with more `--epochs` continues its stored schedule: 3 epochs, then `--resume
/// --epochs 5`, gives the bytes of 5 epochs run at once with the same `--prune-end`.
#[test]
fn a_pruning_run_resumed_for_longer_equals_the_longer_run() {
    let d = scratch("prune-longer");
    let (short, long) = (d.join("short"), d.join("long"));
    let args = ["--model", NET, "--limit", "64", "--lr-schedule", "constant", "--prune", "0.5", "--prune-end", "2"];
    ok(&run(&[&["train", "--out", s(&short), "--epochs", "3"][..], &args[..]].concat()));
    ok(&run(&["train", "--resume", s(&short), "--epochs", "5"]));
    ok(&run(&[&["train", "--out", s(&long), "--epochs", "5"][..], &args[..]].concat()));
    for f in ["model.safetensors", "state.safetensors"] {
        let (a, b) = (Stored::read(&short.join(f)).unwrap(), Stored::read(&long.join(f)).unwrap());
        assert_eq!(a.meta("epoch").unwrap(), "5", "{f}");
        assert_eq!(a.names(), b.names(), "{f}");
        for n in a.names() {
            let (x, y) = (a.get(&n).unwrap(), b.get(&n).unwrap());
            assert!(x.shape == y.shape && x.bytes == y.bytes, "{f} {n}: the resumed run differs from the longer run");
        }
    }
    let rows = |dir: &Path| -> Vec<String> {
        let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        csv.lines().map(|l| l.split(',').take(6).collect::<Vec<_>>().join(",")).collect()
    };
    assert_eq!(rows(&short), rows(&long));
    assert_eq!(rows(&long).len(), 6, "a header and 5 epochs");
}

/// Bad pruning values: one `error:` line naming the value, exit 2, no run directory.
#[test]
fn bad_prune_values_are_one_line_errors() {
    let d = scratch("prune-bad");
    let out = d.join("run");
    for (extra, needle) in [
        (vec!["--prune", "1"], "--prune 1"),
        (vec!["--prune", "-0.5"], "--prune -0.5"),
        (vec!["--prune", "NaN"], "--prune NaN"),
        (vec!["--prune", "lots"], "\"lots\""),
        (vec!["--prune", "0.9", "--prune-end", "4"], "--prune-end 4"),
        (vec!["--prune", "0.9", "--prune-every", "0"], "--prune-every 0"),
        (vec!["--prune", "0.9", "--prune-start", "3", "--prune-end", "2"], "--prune-start 3"),
    ] {
        let o =
            run(&[&["train", "--model", NET, "--limit", "64", "--epochs", "4", "--out", s(&out)][..], &extra[..]]
                .concat());
        fails(&o, &[needle]);
        assert!(!out.exists(), "{extra:?} created the run directory");
    }
    // --prune-start without --prune is clap's one-line error.
    fails(&run(&["train", "--prune-start", "1", "--out", s(&out)]), &["--prune"]);
    // A resume may not stop before the stored schedule reaches its final sparsity (prune-end 2 here).
    let args = ["--model", NET, "--limit", "64", "--epochs", "3", "--lr-schedule", "constant", "--prune", "0.5"];
    ok(&run(&[&["train", "--out", s(&out)][..], &args[..], &["--prune-end", "2"][..]].concat()));
    let state = std::fs::read(out.join("state.safetensors")).unwrap();
    fails(&run(&["train", "--resume", s(&out), "--epochs", "2"]), &["--epochs 2", "--prune-end 2"]);
    assert!(std::fs::read(out.join("state.safetensors")).unwrap() == state, "a refused resume changed the run");
}
