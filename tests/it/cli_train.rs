//! `cnn-as-mlp train`: run directory, summary line, resume, determinism, divergence.
#![cfg(feature = "cli")]

use crate::common;

use approx::{abs_diff_eq, assert_abs_diff_eq};
use common::*;

#[test]
fn train_writes_run_directory_and_summary() {
    let d = scratch("train-run");
    let out = d.join("run");
    let o = run(&["train", "--model", SMALL, "--limit", "256", "--epochs", "2", "--out", s(&out)]);
    ok(&o);
    assert_eq!(listing(&out), ["curves.png", "metrics.csv", "model.safetensors", "state.safetensors"]);
    let text = stdout(&o);
    let summary = text.lines().last().unwrap();
    let keys: Vec<&str> = summary.split_whitespace().map(|kv| kv.split('=').next().unwrap()).collect();
    assert_eq!(
        keys,
        ["train:", "model", "data", "engine", "epochs", "batch", "threads", "img_per_s", "test_acc"],
        "{summary}"
    );
    assert!(summary.contains("data=mnist10k engine=sparse epochs=2 batch=64"), "{summary}");
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "epoch,step,loss,train_acc,test_loss,test_acc,img_per_s,lr,train_s,wall_s");
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[2].starts_with("2,8,"), "{csv}");
    // lenet5's schedule is cosine from 0.05 over 2 epochs: 0.05, then 0.025; the wall time of an epoch
    // includes its training loop.
    let row = |i: usize| -> Vec<f64> { lines[i].split(',').map(|v| v.parse().unwrap()).collect() };
    assert_eq!((row(1)[7], row(2)[7]), (0.05, 0.025), "{csv}");
    for i in [1, 2] {
        assert!(row(i)[8] > 0.0 && row(i)[9] >= row(i)[8], "{csv}");
        // Train accuracy is a fraction of the 256 images seen in the epoch (each batch counted once).
        let correct = row(i)[3] * 256.0;
        assert!((0.0..=1.0).contains(&row(i)[3]) && abs_diff_eq!(correct, correct.round(), epsilon = 1e-3), "{csv}");
    }
    // --limit cuts the training set only: the full 2,004 test images are evaluated.
    assert!(text.contains("(256 train, 2004 test)"), "{text}");
    // The checkpoint carries the spec and hyperparameters.
    let f = cnn_as_mlp::checkpoint::Stored::read(&out.join("model.safetensors")).unwrap();
    assert_eq!(f.meta("lr").unwrap(), "0.05");
    assert_eq!(cnn_as_mlp::Spec::parse(f.meta("spec").unwrap()).unwrap(), cnn_as_mlp::Spec::parse(SMALL).unwrap());
    assert_eq!(f.names(), ["0.bias", "0.weight", "2.bias", "2.weight"]);
    // A second run into the same directory is refused rather than overwriting it.
    let o = run(&["train", "--model", SMALL, "--limit", "256", "--epochs", "1", "--out", s(&out)]);
    fails(&o, &["already holds a run"]);
}

/// Two epochs straight and one epoch then `--resume` for one more give the same bytes.
#[test]
fn resume_is_bit_identical_to_an_uninterrupted_run() {
    let d = scratch("resume");
    let (a, b) = (d.join("a"), d.join("b"));
    // A constant schedule: a cosine run resumes only to its planned epochs (tests/it/run_safety.rs).
    let common = ["--model", SMALL, "--limit", "300", "--batch", "32", "--seed", "7", "--lr-schedule", "constant"];
    ok(&run(&[&["train", "--epochs", "2", "--out", s(&a)][..], &common[..]].concat()));
    ok(&run(&[&["train", "--epochs", "1", "--out", s(&b)][..], &common[..]].concat()));
    let mid = std::fs::read(b.join("model.safetensors")).unwrap();
    assert_ne!(mid, std::fs::read(a.join("model.safetensors")).unwrap());
    ok(&run(&["train", "--resume", s(&b), "--epochs", "2"]));
    for f in ["model.safetensors", "state.safetensors"] {
        assert!(std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(), "{f} differs after resume");
    }
    let metrics = |dir: &std::path::Path| -> Vec<String> {
        let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        // Everything but the timings (img_per_s, train_s, wall_s) must agree.
        csv.lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                format!("{},{}", f[..6].join(","), f[7])
            })
            .collect()
    };
    assert_eq!(metrics(&a), metrics(&b));
}

/// The thread count changes nothing in the results.
#[test]
fn one_and_two_threads_give_the_same_checkpoint() {
    let d = scratch("threads");
    let (a, b) = (d.join("t1"), d.join("t2"));
    ok(&run(&["train", "--model", SMALL, "--limit", "200", "--epochs", "1", "--threads", "1", "--out", s(&a)]));
    ok(&run(&["train", "--model", SMALL, "--limit", "200", "--epochs", "1", "--threads", "2", "--out", s(&b)]));
    assert!(std::fs::read(a.join("model.safetensors")).unwrap() == std::fs::read(b.join("model.safetensors")).unwrap());
}

/// A loss that blows up in the first epoch of a new run stops training with the step named and leaves no
/// run directory (no header-only CSV, no empty plot); one that blows up later keeps the last good epoch,
/// whole and resumable.
#[test]
fn diverging_loss_stops_and_keeps_last_checkpoint() {
    let d = scratch("nan");
    let out = d.join("run");
    let o = run(&["train", "--model", SMALL, "--limit", "256", "--epochs", "2", "--lr", "1e30", "--out", s(&out)]);
    fails(&o, &["loss became", "step", "nothing is kept", s(&out)]);
    assert!(!out.exists(), "left {:?}", listing(&out));

    // One good epoch, then the run's metadata says lr 1e30: epoch 2 diverges, epoch 1 stays.
    let args = ["--model", SMALL, "--limit", "256", "--lr-schedule", "constant"];
    ok(&run(&[&["train", "--epochs", "1", "--out", s(&out)][..], &args[..]].concat()));
    for f in ["model.safetensors", "state.safetensors"] {
        set_file_meta(&out.join(f), "lr", "1e30");
    }
    let o = run(&["train", "--resume", s(&out), "--epochs", "2"]);
    fails(&o, &["loss became", "model.safetensors", "epoch 1"]);
    let f = cnn_as_mlp::checkpoint::Stored::read(&out.join("model.safetensors")).unwrap();
    assert_eq!(f.meta("epoch").unwrap(), "1");
    assert_eq!(std::fs::read_to_string(out.join("metrics.csv")).unwrap().lines().count(), 2);
    assert_eq!(listing(&out), ["curves.png", "metrics.csv", "model.safetensors", "state.safetensors"]);
}

/// A directory of raw IDX files trains like the embedded set.
#[test]
fn trains_on_a_directory_of_raw_idx_files() {
    let d = scratch("idxdir");
    write_idx_dir(&d, 40, 20);
    let out = d.join("run");
    let o = run(&["train", "--model", SMALL, "--data", s(&d), "--epochs", "1", "--out", s(&out)]);
    ok(&o);
    assert!(stdout(&o).contains("(40 train, 20 test)"), "{}", stdout(&o));
}

/// `--init` starts from given parameters: zero epochs of change means the same tensors come back.
#[test]
fn init_from_a_checkpoint_starts_there() {
    let d = scratch("init-ok");
    let (a, b) = (d.join("a"), d.join("b"));
    ok(&run(&["train", "--model", SMALL, "--limit", "128", "--epochs", "1", "--out", s(&a)]));
    let p = a.join("model.safetensors");
    let o = run(&[
        "train",
        "--model",
        SMALL,
        "--limit",
        "128",
        "--epochs",
        "1",
        "--lr",
        "0",
        "--init",
        s(&p),
        "--out",
        s(&b),
    ]);
    ok(&o);
    let (fa, fb) = (
        cnn_as_mlp::checkpoint::Stored::read(&p).unwrap(),
        cnn_as_mlp::checkpoint::Stored::read(&b.join("model.safetensors")).unwrap(),
    );
    for n in fa.names() {
        assert_eq!(fa.f32_tensor(&n, None).unwrap(), fb.f32_tensor(&n, None).unwrap(), "{n}");
    }
    assert!(std::fs::read(b.join("curves.png")).unwrap().starts_with(b"\x89PNG"));
}

/// `--test-limit` cuts the test set; `--json` prints the summary as one JSON object and nothing else;
/// `--quiet` prints only the summary line; resume keeps both limits.
#[test]
fn test_limit_json_and_quiet() {
    let d = scratch("json");
    let out = d.join("run");
    let o = run(&[
        "train",
        "--model",
        SMALL,
        "--limit",
        "128",
        "--test-limit",
        "50",
        "--epochs",
        "1",
        "--lr-schedule",
        "constant",
        "--json",
        "--out",
        s(&out),
    ]);
    ok(&o);
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!((v["train_images"].as_u64(), v["test_images"].as_u64()), (Some(128), Some(50)), "{text}");
    assert_eq!(v["epochs"], 1);
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let test_acc: f64 = csv.lines().nth(1).unwrap().split(',').nth(5).unwrap().parse().unwrap();
    assert_eq!(v["test_acc"].as_f64(), Some(test_acc));
    // 50 test images: every accuracy is a multiple of 1/50.
    assert_abs_diff_eq!(test_acc * 50.0, (test_acc * 50.0).round(), epsilon = 1e-3);
    let o = run(&["train", "--resume", s(&out), "--epochs", "2", "--quiet"]);
    ok(&o);
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("train: ") && text.contains("epochs=2"), "{text}");
    let f = cnn_as_mlp::checkpoint::Stored::read(&out.join("model.safetensors")).unwrap();
    assert_eq!((f.meta("limit").unwrap(), f.meta("test_limit").unwrap()), ("128", "50"));
}

/// Train accuracy counts each image once: on a data set whose test split is its training split, with a
/// learning rate too small to change any prediction, the epoch's running train accuracy equals the test
/// accuracy of the final model (a batch counted twice would double it).
#[test]
fn train_accuracy_counts_each_image_once() {
    let d = scratch("train-acc-once");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_idx_dir(&data, 300, 300);
    for engine in ["sparse", "direct"] {
        let out = d.join(engine);
        let o = run(&[
            "train",
            "--model",
            "lenet5",
            "--data",
            s(&data),
            "--lr",
            "1e-9",
            "--epochs",
            "1",
            "--batch",
            "64",
            "--engine",
            engine,
            "--out",
            s(&out),
        ]);
        ok(&o);
        let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        let row: Vec<f64> = csv.lines().nth(1).unwrap().split(',').map(|v| v.parse().unwrap()).collect();
        let (train_acc, test_acc) = (row[3], row[5]);
        assert!(test_acc > 0.0, "{csv}");
        assert!(
            abs_diff_eq!(train_acc, test_acc, epsilon = 1e-9),
            "{engine}: train_acc {train_acc} vs test_acc {test_acc}\n{csv}"
        );
    }
}

/// Every kernel level gives the same bits (`cpu::SIMD_VAR`: the AVX-512 kernels where the CPU has them, the
/// AVX2 + FMA ones, the portable loops): LeNet-5 on the embedded MNIST-10k, pruned on the way (one-row groups
/// and their runs, pruned dense layers), on each engine, writes the same `model.safetensors` under each cap.
/// Fails when a kernel's sums change order on one level only.
#[test]
fn every_kernel_level_writes_the_same_model() {
    let d = scratch("simd-levels");
    for engine in ["sparse", "direct"] {
        let mut models = Vec::new();
        for cap in ["auto", "avx2", "portable"] {
            let out = d.join(format!("{engine}-{cap}"));
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_cnn-as-mlp"))
                .args(["train", "--model", "lenet5", "--engine", engine, "--epochs", "2", "--limit", "640"])
                .args(["--test-limit", "200", "--prune", "0.8", "--prune-every", "3", "--threads", "2"])
                .args(["--quiet", "--out", s(&out)])
                .env("CNN_AS_MLP_SIMD", cap)
                .output()
                .expect("the binary runs");
            assert_eq!(o.status.code(), Some(0), "{engine} {cap}: {}", stderr(&o));
            models.push((cap, std::fs::read(out.join("model.safetensors")).expect("a model")));
        }
        for (cap, bytes) in &models[1..] {
            assert!(bytes == &models[0].1, "{engine}: the model under CNN_AS_MLP_SIMD={cap} differs from auto's");
        }
    }
}
