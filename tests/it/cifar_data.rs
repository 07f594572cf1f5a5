//! Colour data: the CIFAR-10 binary layout read by `--data DIR` (records written here, no Python), its
//! errors, the `cifar` / `vgg16` presets, and a tiny 3-channel network that learns from CIFAR records.

use crate::common;

use approx::abs_diff_eq;
use std::path::Path;

use cnn_as_mlp::data::cifar::{MAX_RECORDS, RECORD, TEST_FILE, TRAIN_FILES};
use cnn_as_mlp::data::{Source, cifar10_dir};
use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::spec::{CIFAR, Shape, Spec, VGG16};
use common::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const NAMES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// One record of class `label`: the plane of channel `label % 3` bright (mean 190), the others dark
/// (mean 60), every pixel with seeded uniform noise of ±50, so the class is told by the colour alone.
fn record(label: u8, rng: &mut StdRng) -> Vec<u8> {
    let mut r = Vec::with_capacity(RECORD);
    r.push(label);
    for c in 0..3 {
        let mean = if c == label as usize % 3 { 190 } else { 60 };
        r.extend((0..1024).map(|_| (mean + rng.random_range(-50..=50)) as u8));
    }
    r
}

/// Writes a CIFAR-10 binary directory: `per_file` records in each training file and `n_test` in the test
/// file, labels cycling through `0..classes`, and `batches.meta.txt`.
fn write_cifar_dir(dir: &Path, per_file: usize, n_test: usize, classes: u8, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut file = |n: usize| -> Vec<u8> { (0..n).flat_map(|i| record(i as u8 % classes, &mut rng)).collect() };
    for f in TRAIN_FILES {
        std::fs::write(dir.join(f), file(per_file)).unwrap();
    }
    std::fs::write(dir.join(TEST_FILE), file(n_test)).unwrap();
    std::fs::write(dir.join("batches.meta.txt"), NAMES.join("\n") + "\n\n").unwrap();
}

/// Runs `train` on `dir` with a small 3-channel model and expects a failure naming `needles`, with no
/// run directory left.
#[track_caller]
fn train_fails_on(dir: &Path, model: &str, needles: &[&str]) {
    let out = dir.join("run");
    let o = run(&["train", "--model", model, "--data", s(dir), "--epochs", "1", "--out", s(&out)]);
    fails(&o, needles);
    assert!(!out.exists(), "a run directory was created");
}

const TINY: &str = "3x32x32 > conv(4,3,stride=2) > relu > maxpool(3) > dense(10)";

/// The loader the CLI calls reads the records in file order, keeps the planes in (C, H, W) order, scales
/// by 1/255 and keeps the class names.
#[test]
fn cifar_directory_loads_in_file_order_with_names() {
    let d = scratch("cifar-load");
    write_cifar_dir(&d, 3, 4, 10, 1);
    let s = Source::Dir(d.clone()).load().unwrap();
    assert_eq!((s.train.len(), s.test.len()), (15, 4));
    assert_eq!(s.train.shape, Shape { c: 3, h: 32, w: 32 });
    assert_eq!(s.train.classes.as_deref().unwrap(), NAMES.map(String::from));
    assert_eq!(s.test.classes, s.train.classes);
    // Labels cycle 0, 1, 2 within each file; data_batch_2.bin follows data_batch_1.bin.
    assert_eq!(&s.train.labels[..6], &[0, 1, 2, 0, 1, 2]);
    let second = std::fs::read(d.join("data_batch_2.bin")).unwrap();
    // Image 4 is data_batch_2.bin's record 1; feature (c=2, y=31, x=0) is byte 1 + 2·1024 + 31·32 of it.
    let x = s.train.batch_x(&[4, 0]);
    assert_eq!(x.shape(), (2, 3072));
    let j = 2 * 1024 + 31 * 32;
    assert_eq!(x[(0, j)], second[RECORD + 1 + j] as f32 / 255.0);
    assert_eq!(s.train.batch_y(&[4, 0]), [1, 0]);
}

/// A record file whose length is not a whole number of records is truncated: the error names the file and
/// the bytes the last record needs.
#[test]
fn truncated_record_file_names_file_and_bytes() {
    let d = scratch("cifar-truncated");
    write_cifar_dir(&d, 3, 4, 10, 2);
    let f = d.join("data_batch_3.bin");
    std::fs::write(&f, &std::fs::read(&f).unwrap()[..2 * RECORD + 100]).unwrap();
    train_fails_on(
        &d,
        TINY,
        &["data_batch_3.bin", "truncated", &(3 * RECORD).to_string(), &(2 * RECORD + 100).to_string()],
    );
}

/// A record file longer than the format allows (10,000 records) is refused before it is read.
#[test]
fn oversized_record_file_is_refused() {
    let d = scratch("cifar-big");
    write_cifar_dir(&d, 3, 4, 10, 3);
    std::fs::write(d.join(TEST_FILE), vec![0u8; (MAX_RECORDS + 1) * RECORD]).unwrap();
    train_fails_on(
        &d,
        TINY,
        &[TEST_FILE, &((MAX_RECORDS + 1) * RECORD).to_string(), &(MAX_RECORDS * RECORD).to_string()],
    );
}

/// A label outside 0..=9 is named with its record; a missing file of the layout is named.
#[test]
fn bad_label_and_missing_file_are_named() {
    let d = scratch("cifar-label");
    write_cifar_dir(&d, 3, 4, 10, 4);
    let f = d.join("data_batch_5.bin");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[2 * RECORD] = 12;
    std::fs::write(&f, &bytes).unwrap();
    train_fails_on(&d, TINY, &["data_batch_5.bin", "record 2", "label 12"]);
    write_cifar_dir(&d, 3, 4, 10, 4);
    std::fs::remove_file(d.join(TEST_FILE)).unwrap();
    train_fails_on(&d, TINY, &["no CIFAR-10 file test_batch.bin"]);
    write_cifar_dir(&d, 3, 4, 10, 4);
    std::fs::write(d.join("batches.meta.txt"), "cat\ndog\n").unwrap();
    train_fails_on(&d, TINY, &["batches.meta.txt", "2 classes"]);
}

/// A directory with neither layout gets an error naming both.
#[test]
fn a_directory_with_neither_layout_names_both() {
    let d = scratch("cifar-neither");
    std::fs::write(d.join("readme.txt"), "nothing here").unwrap();
    train_fails_on(&d, TINY, &["train-images-idx3-ubyte", "data_batch_1.bin", "test_batch.bin", "IDX", "CIFAR-10"]);
}

/// The model's input shape must be the data's image shape, both ways.
#[test]
fn input_shape_must_match_the_data() {
    let d = scratch("cifar-shape");
    write_cifar_dir(&d, 3, 4, 10, 5);
    train_fails_on(&d, "lenet5", &["1x28x28", "3x32x32"]);
    let o = run(&["train", "--model", TINY, "--epochs", "1", "--out", s(&d.join("run2"))]);
    fails(&o, &["3x32x32", "mnist10k", "1x28x28"]);
}

/// `--data cifar10` reads `$CNN_AS_MLP_DATA/cifar-10-batches-bin`, and says where it looked when the
/// directory is not there.
#[test]
fn cifar10_reads_the_documented_location() {
    let d = scratch("cifar-env");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cnn-as-mlp"))
        .args(["train", "--model", TINY, "--data", "cifar10", "--epochs", "1", "--out", s(&d.join("run"))])
        .env("CNN_AS_MLP_DATA", &d)
        .output()
        .unwrap();
    fails(&o, &[s(&d.join("cifar-10-batches-bin")), "CNN_AS_MLP_DATA"]);
    let dir = d.join("cifar-10-batches-bin");
    std::fs::create_dir(&dir).unwrap();
    write_cifar_dir(&dir, 2, 2, 10, 6);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cnn-as-mlp"))
        .args(["train", "--model", TINY, "--data", "cifar10", "--epochs", "1", "--out", s(&d.join("run"))])
        .env("CNN_AS_MLP_DATA", &d)
        .output()
        .unwrap();
    ok(&o);
    assert!(stdout(&o).contains("on cifar10 (10 train, 2 test)"), "{}", stdout(&o));
    assert!(cifar10_dir().ends_with("cifar-10-batches-bin"));
}

/// A tiny 3-channel network trained by the CLI on CIFAR records learns the colour classes, and `eval`
/// of its checkpoint on the same directory agrees with the training run's last test accuracy.
#[test]
fn tiny_colour_network_learns_from_cifar_records() {
    let d = scratch("cifar-learn");
    write_cifar_dir(&d, 40, 60, 3, 7);
    let out = d.join("run");
    let o = run(&[
        "train",
        "--model",
        TINY,
        "--data",
        s(&d),
        "--epochs",
        "4",
        "--batch",
        "16",
        "--lr",
        "0.05",
        "--lr-schedule",
        "constant",
        "--out",
        s(&out),
    ]);
    ok(&o);
    let text = stdout(&o);
    let acc: f64 = text.rsplit("test_acc=").next().unwrap().trim().parse().unwrap();
    assert!(acc >= 0.9, "test accuracy {acc} after 4 epochs on colour-coded classes:\n{text}");
    let o = run(&["eval", "--checkpoint", s(&out.join("model.safetensors")), "--data", s(&d)]);
    ok(&o);
    let e = stdout(&o);
    assert!(e.contains("n=60") && e.contains(&format!("acc={acc:.4}")), "{e}");
}

/// The `cifar` preset trains on CIFAR records end to end (one short epoch).
#[test]
fn cifar_preset_trains_on_cifar_records() {
    let d = scratch("cifar-preset");
    write_cifar_dir(&d, 8, 8, 10, 8);
    let out = d.join("run");
    let o = run(&["train", "--model", "cifar", "--data", s(&d), "--epochs", "1", "--out", s(&out)]);
    ok(&o);
    assert!(stdout(&o).contains("666538 parameters") && stdout(&o).contains("batch=64"), "{}", stdout(&o));
    assert!(out.join("model.safetensors").is_file());
}

/// The presets are the PyTorch peers' networks (`torch_cifar.py`, `torch_step.py --net cifar|vgg16`):
/// shapes before the first dense layer, and parameter counts (`sum(p.numel())` of the peers' modules;
/// VGG-16's 13 convolutions hold torchvision's 14,714,688 `features` parameters).
#[test]
fn presets_are_the_pytorch_peers_networks() {
    let cifar = Spec::parse("cifar").unwrap();
    assert_eq!(cifar, Spec::parse(CIFAR).unwrap());
    assert_eq!(cifar.input, Shape { c: 3, h: 32, w: 32 });
    assert_eq!(cifar.output_shapes().unwrap()[12], Shape { c: 128, h: 4, w: 4 }); // layer 12, the last maxpool
    assert_eq!(cifar.output().unwrap().len(), 10);
    assert_eq!(Network::<f32>::new(&cifar, Engine::Direct).n_params(), 666_538);

    let vgg = Spec::parse("vgg16").unwrap();
    assert_eq!(vgg, Spec::parse(VGG16).unwrap());
    assert_eq!(vgg.input, Shape { c: 3, h: 224, w: 224 });
    let convs = vgg.layers.iter().filter(|l| matches!(l, cnn_as_mlp::spec::Layer::Conv { .. })).count();
    assert_eq!(convs, 13);
    let shapes = vgg.output_shapes().unwrap();
    let before_dense = vgg.layers.iter().position(|l| matches!(l, cnn_as_mlp::spec::Layer::Dense { .. })).unwrap();
    assert_eq!(shapes[before_dense - 1], Shape { c: 512, h: 7, w: 7 });
    let dense = 512 * 7 * 7 * 256 + 256 + 256 * 10 + 10;
    assert_eq!(Network::<f32>::new(&vgg, Engine::Direct).n_params(), 14_714_688 + dense);
}

/// `vgg16` on the sparse engine with the classic index (`CNN_AS_MLP_INDEX=classic`) is refused before anything is
/// compiled, with the bytes it would need (`cnn_as_mlp::budget`: about 393 GiB, most of it index), when that
/// exceeds 80% of the available memory; with the compact index (the default, proofs/T8) its first layer compiles
/// and is drawn.
#[test]
fn vgg16_sparse_is_refused_with_the_bytes_needed() {
    let d = scratch("vgg16");
    let png = d.join("v.png");
    let args = ["show", "--model", "vgg16", "--layer", "0", "--out", s(&png)];
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cnn-as-mlp"))
        .env(cnn_as_mlp::engines::sparse::STORAGE_VAR, "classic")
        .args(args)
        .output()
        .expect("the binary runs");
    if cnn_as_mlp::compare::default_memory_limit() > 1 << 40 {
        return; // a machine with over 2 TiB free would compile it
    }
    let line = fails(&o, &["model vgg16", "bytes", "index", "--engine direct"]);
    let needed: u64 = line.split(" bytes) for ").next().unwrap().rsplit('(').next().unwrap().parse().unwrap();
    assert!(needed > 100_000_000_000, "{line}");
    assert!(!d.join("v.png").exists());
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "compact index: {}", stderr(&o));
    assert!(d.join("v.png").exists());
}

/// `train --normalize` standardises each channel with the training set's statistics and records them in the
/// checkpoint; `eval` reuses them (its loss and accuracy on the test set equal the run's last test loss and
/// accuracy, which they would not on unstandardised inputs), and `--resume` gives the bytes of an
/// uninterrupted run.
#[test]
fn normalize_is_recorded_and_reused_by_eval_and_resume() {
    let d = scratch("cifar-normalize");
    write_cifar_dir(&d, 20, 30, 3, 9);
    let train = |out: &Path, epochs: &str| {
        let args = [
            "train",
            "--model",
            TINY,
            "--data",
            s(&d),
            "--epochs",
            epochs,
            "--batch",
            "16",
            "--lr-schedule",
            "constant",
            "--normalize",
            "--out",
            s(out),
        ];
        ok(&run(&args));
    };
    let (full, part) = (d.join("full"), d.join("part"));
    train(&full, "2");
    let file = cnn_as_mlp::checkpoint::Stored::read(&full.join("model.safetensors")).unwrap();
    let st = cnn_as_mlp::run::normalize_of(&file).unwrap().expect("the run records its standardisation");
    // The colour classes make each channel bright in a third of the images: mean ≈ (190 + 2·60) / 3 / 255.
    for (&m, &sd) in st.mean.iter().zip(&st.std) {
        assert!(abs_diff_eq!(m, 310.0 / 3.0 / 255.0, epsilon = 0.02) && sd > 0.1 && sd < 0.4, "mean {m}, std {sd}");
    }
    let last = std::fs::read_to_string(full.join("metrics.csv")).unwrap();
    let cols: Vec<&str> = last.lines().last().unwrap().split(',').collect();
    let (test_loss, test_acc) = (cols[4], cols[5]);
    let o = run(&["eval", "--checkpoint", s(&full), "--data", s(&d)]);
    ok(&o);
    let e = stdout(&o);
    assert!(
        e.contains(&format!("loss={test_loss}")) && e.contains(&format!("acc={:.4}", test_acc.parse::<f64>().unwrap())),
        "{e}\nmetrics: {last}"
    );
    // Interrupted after one epoch, resumed to two: the same bytes.
    train(&part, "1");
    ok(&run(&["train", "--resume", s(&part), "--epochs", "2"]));
    for f in ["model.safetensors", "state.safetensors"] {
        assert!(std::fs::read(full.join(f)).unwrap() == std::fs::read(part.join(f)).unwrap(), "{f} differs");
    }
    // --normalize is fixed by the run: resume refuses it.
    fails(&run(&["train", "--resume", s(&part), "--normalize"]), &["--normalize"]);
}

/// The colour presets carry their standardisation (issue 28, item 6): `train --model cifar` records the
/// training set's statistics without being asked, `--no-normalize` turns that off, and a custom spec stays
/// on x/255 unless `--normalize` is given.
#[test]
fn colour_presets_standardise_unless_told_not_to() {
    let d = scratch("cifar-preset-normalize");
    write_cifar_dir(&d, 20, 30, 3, 9);
    let recorded = |name: &str, model: &str, extra: &[&str]| {
        let out = d.join(name);
        let mut args = vec!["train", "--model", model, "--data", s(&d), "--epochs", "1", "--batch", "16"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", s(&out)]);
        ok(&run(&args));
        let file = cnn_as_mlp::checkpoint::Stored::read(&out.join("model.safetensors")).unwrap();
        cnn_as_mlp::run::normalize_of(&file).unwrap().is_some()
    };
    assert!(recorded("preset", "cifar", &[]), "the cifar preset standardises by default");
    assert!(!recorded("preset-off", "cifar", &["--no-normalize"]), "--no-normalize turns it off");
    assert!(!recorded("custom", TINY, &[]), "a custom spec stays on x/255");
    assert!(recorded("custom-on", TINY, &["--normalize"]), "--normalize turns it on");
}
