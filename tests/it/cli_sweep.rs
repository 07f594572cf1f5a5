//! `cnn-as-mlp sweep`: a run of a sweep is byte for byte the same run done alone with `train`; an
//! interrupted sweep resumes to the same bytes; the summary's statistics are those of the runs' metrics.
#![cfg(feature = "cli")]

use crate::common;

use approx::assert_abs_diff_eq;
use common::*;
use std::path::Path;

const FILES: [&str; 2] = ["model.safetensors", "state.safetensors"];

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The last row's test accuracy of a run's metrics.csv.
fn final_test_acc(run: &Path) -> f64 {
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    csv.lines().last().unwrap().split(',').nth(5).unwrap().parse().unwrap()
}

/// 2 settings (sparse, direct) × 2 seeds, run two at a time, equal the same four runs done one by one with
/// `train` on one thread; `sweep.csv` holds the mean and sample sd of the runs' own final figures.
#[test]
fn sweep_runs_equal_the_same_runs_done_alone() {
    let d = scratch("sweep-alone");
    let sw = d.join("sweep");
    let o = run(&[
        "sweep",
        "--model",
        SMALL,
        "--engine",
        "sparse,direct",
        "--seeds",
        "3,4",
        "--limit",
        "256",
        "--epochs",
        "1",
        "--batch",
        "32",
        "--threads",
        "2",
        "--out",
        s(&sw),
    ]);
    ok(&o);
    for engine in ["sparse", "direct"] {
        let mut accs = Vec::new();
        for seed in ["3", "4"] {
            let name = format!("spec{}-{engine}-lrdefault-seed{seed}", model_hash(SMALL));
            let in_sweep = sw.join(&name);
            assert!(in_sweep.join("model.safetensors").exists(), "{name} missing: {}", stdout(&o));
            let alone = d.join(format!("alone-{name}"));
            ok(&run(&[
                "train",
                "--model",
                SMALL,
                "--engine",
                engine,
                "--seed",
                seed,
                "--limit",
                "256",
                "--epochs",
                "1",
                "--batch",
                "32",
                "--threads",
                "1",
                "--out",
                s(&alone),
            ]));
            for f in FILES {
                assert!(read(&in_sweep.join(f)) == read(&alone.join(f)), "{name}/{f} differs from the run alone");
            }
            accs.push(final_test_acc(&in_sweep));
        }
        // The summary row of this setting: mean and sample sd of the two final accuracies.
        let csv = std::fs::read_to_string(sw.join("sweep.csv")).unwrap();
        let row = csv.lines().find(|l| l.contains(&format!(" {engine} lr=default"))).expect("a row per setting");
        let v: Vec<&str> = row.split(',').collect();
        assert_eq!(v[1], "2", "{row}");
        let mean = (accs[0] + accs[1]) / 2.0;
        let sd = (accs[0] - accs[1]).abs() / 2f64.sqrt();
        assert_abs_diff_eq!(v[3].parse::<f64>().unwrap(), mean, epsilon = 1e-6);
        assert_abs_diff_eq!(v[4].parse::<f64>().unwrap(), sd, epsilon = 1e-6);
    }
    assert_eq!(std::fs::read_to_string(sw.join("sweep.csv")).unwrap().lines().count(), 3);
    assert!(sw.join("sweep.md").exists() && sw.join("sweep.png").exists());
    // Run again: every run is finished, so all are skipped and nothing changes.
    let before = read(&sw.join(format!("spec{}-sparse-lrdefault-seed3/model.safetensors", model_hash(SMALL))));
    let o = run(&[
        "sweep",
        "--model",
        SMALL,
        "--engine",
        "sparse,direct",
        "--seeds",
        "3,4",
        "--limit",
        "256",
        "--epochs",
        "1",
        "--batch",
        "32",
        "--out",
        s(&sw),
    ]);
    ok(&o);
    assert_eq!(stdout(&o).matches("done, skipped").count(), 4, "{}", stdout(&o));
    assert!(before == read(&sw.join(format!("spec{}-sparse-lrdefault-seed3/model.safetensors", model_hash(SMALL)))));
}

/// A sweep killed part way (one thread, so runs go one after another) and started again ends with the
/// same bytes in every run as a sweep that was never interrupted: finished runs are skipped, the partial
/// run resumes from its last epoch, the rest start fresh.
#[test]
fn interrupted_sweep_resumes_to_the_same_bytes() {
    let d = scratch("sweep-resume");
    let (a, b) = (d.join("a"), d.join("b"));
    let args = |out: &Path| -> Vec<String> {
        ["sweep", "--model", "lenet5", "--seeds", "0..3", "--limit", "1500", "--epochs", "3", "--threads", "1", "--out"]
            .iter()
            .map(|x| x.to_string())
            .chain([s(out).to_string()])
            .collect()
    };
    let ref_args = args(&a);
    ok(&run(&ref_args.iter().map(String::as_str).collect::<Vec<_>>()));
    // Kill the second sweep as soon as its first run has finished one epoch.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cnn-as-mlp"))
        .args(args(&b))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = b.join("lenet5-sparse-lrdefault-seed0/metrics.csv");
    let t0 = std::time::Instant::now();
    while t0.elapsed().as_secs() < 120 {
        if std::fs::read_to_string(&first).is_ok_and(|t| t.lines().count() >= 2) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    let o = run(&args(&b).iter().map(String::as_str).collect::<Vec<_>>());
    ok(&o);
    if !status.success() {
        assert!(stdout(&o).contains("resumed") || stdout(&o).contains("skipped"), "{}", stdout(&o));
    }
    for seed in 0..3 {
        for f in FILES {
            let name = format!("lenet5-sparse-lrdefault-seed{seed}/{f}");
            assert!(read(&a.join(&name)) == read(&b.join(&name)), "{name} differs after the resumed sweep");
        }
    }
}

/// Bad grids fail before anything is written.
#[test]
fn sweep_rejects_bad_grids() {
    let d = scratch("sweep-bad");
    let out = d.join("never");
    fails(&run(&["sweep", "--seeds", "5..2", "--out", s(&out)]), &["--seeds", "5..2"]);
    fails(&run(&["sweep", "--engine", "sparse,gpu", "--out", s(&out)]), &["gpu"]);
    fails(&run(&["sweep", "--lr", "0.1,x", "--out", s(&out)]), &["--lr", "x"]);
    assert!(!out.exists());
}

/// The sweep's name for a spec string: FNV-1a of the whitespace-free spec (as src/cli/sweep.rs).
fn model_hash(m: &str) -> String {
    let h = m
        .chars()
        .filter(|c| !c.is_whitespace())
        .fold(0xcbf29ce484222325u64, |h, c| (h ^ c as u64).wrapping_mul(0x100000001b3));
    format!("{:08x}", h as u32)
}
