//! A corpus of hostile uses (issue 30): each case once made a command write where it must not, pass off
//! results that were not its own, or crash or hang. Every refusal is exit 2 with one `error:` line, and
//! nothing the command did not create is changed.
//!
//! Special files are made in scratch directories (`mkfifo`, `mknod`): the tests never aim a writer at a
//! real device.
#![cfg(feature = "cli")]

use crate::common;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cnn_as_mlp::checkpoint::{self, Stored};
use common::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cnn-as-mlp"))
}

/// A FIFO at `p` (nobody writes to it).
fn fifo(p: &Path) -> PathBuf {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
    p.to_path_buf()
}

/// Runs the command with a deadline: a hang fails the test instead of blocking the suite.
#[track_caller]
fn run_within(args: &[&str], secs: u64) -> Output {
    let mut child = bin().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still running after {secs} s (it hangs)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A small trained run in `dir` (`epochs` epochs of 64 images, constant schedule).
fn small_run(dir: &Path, epochs: &str) {
    small_run_with(dir, epochs, &[]);
}

/// [`small_run`] with `extra` options.
fn small_run_with(dir: &Path, epochs: &str, extra: &[&str]) {
    let args = [
        "train",
        "--model",
        SMALL,
        "--limit",
        "64",
        "--test-limit",
        "64",
        "--batch",
        "32",
        "--epochs",
        epochs,
        "--lr-schedule",
        "constant",
        "--out",
        s(dir),
    ];
    ok(&run(&[&args[..], extra].concat()));
}

/// `show`, `plot` and `grad` into a FIFO, a character device made in the scratch directory, a directory
/// and a link to the FIFO: refused, and each target is still what it was (the writer used to rename its
/// temporary file over `/dev/null`).
#[test]
fn writers_refuse_targets_that_are_not_regular_files() {
    let d = scratch("hostile-special");
    let pipe = fifo(&d.join("pipe.png"));
    let link = d.join("link.png");
    std::os::unix::fs::symlink(&pipe, &link).unwrap();
    let dir = d.join("dir.png");
    std::fs::create_dir(&dir).unwrap();
    let mut targets = vec![(pipe.clone(), "a FIFO"), (link.clone(), "a FIFO"), (dir.clone(), "a directory")];
    // A null device of our own (root can make one): if mknod is not allowed, the other targets still count.
    let null = d.join("null.png");
    if Command::new("mknod").arg(&null).args(["c", "1", "3"]).status().is_ok_and(|s| s.success()) {
        targets.push((null.clone(), "a character device"));
    }
    for (t, kind) in &targets {
        let o = run(&["show", "--model", "lenet5", "--layer", "0", "--out", s(t)]);
        fails(&o, &[s(t), kind, "not a regular file"]);
    }
    let run_dir = d.join("run");
    small_run(&run_dir, "1");
    fails(&run(&["plot", s(&run_dir), "--out", s(&pipe)]), &["a FIFO"]);
    assert!(std::fs::symlink_metadata(&pipe).unwrap().file_type().is_fifo());
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(dir.is_dir());
    if targets.len() == 4 {
        assert!(std::fs::symlink_metadata(&null).unwrap().file_type().is_char_device());
    }
    // No temporary file left next to the targets.
    let mut expected = vec!["dir.png", "link.png", "null.png", "pipe.png", "run"];
    if targets.len() == 3 {
        expected.retain(|n| *n != "null.png");
    }
    assert_eq!(listing(&d), expected);
}

/// `train --out` into a folder holding a user's files (their own `metrics.csv`, a data folder, `.`) is
/// refused and the files are untouched; an empty folder is taken, and a failed run's clean-up removes only
/// what it wrote.
#[test]
fn train_out_takes_only_new_or_empty_folders() {
    let d = scratch("hostile-out");
    let mine = d.join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("metrics.csv"), "my own numbers\n").unwrap();
    std::fs::write(mine.join("notes.txt"), "keep me\n").unwrap();
    let args = ["--model", SMALL, "--limit", "64", "--epochs", "1"];
    let o = run(&[&["train", "--out", s(&mine)][..], &args[..]].concat());
    fails(&o, &[s(&mine), "not a run's", "\"metrics.csv\""]);
    assert_eq!(std::fs::read_to_string(mine.join("metrics.csv")).unwrap(), "my own numbers\n");
    assert_eq!(listing(&mine), ["metrics.csv", "notes.txt"]);
    // A data folder.
    let data = d.join("data");
    std::fs::create_dir(&data).unwrap();
    write_idx_dir(&data, 40, 10);
    let before = listing(&data);
    let o = run(&[&["train", "--data", s(&data), "--out", s(&data)][..], &args[..]].concat());
    fails(&o, &["train-images-idx3-ubyte", "not a run's"]);
    assert_eq!(listing(&data), before);
    // `.`, the current directory holding a file.
    let o = bin().current_dir(&mine).args([&["train", "--out", "."][..], &args[..]].concat()).output().unwrap();
    fails(&o, &["not a run's"]);
    assert_eq!(listing(&mine), ["metrics.csv", "notes.txt"]);
    // An empty folder is a new run's.
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    ok(&run(&[&["train", "--out", s(&empty)][..], &args[..]].concat()));
    assert_eq!(listing(&empty), ["curves.png", "metrics.csv", "model.safetensors", "state.safetensors"]);
}

/// `plot --out` a run's own file (under its name or through a hard link), `grad --out` its own `--params`
/// (through a link), and `compare --out` a run or an earlier comparison: refused, the inputs untouched.
#[test]
fn outputs_never_replace_inputs_runs_or_comparisons() {
    let d = scratch("hostile-inputs");
    let r = d.join("run");
    small_run(&r, "1");
    let model = std::fs::read(r.join("model.safetensors")).unwrap();
    fails(
        &run(&["plot", s(&r), "--out", s(&r.join("model.safetensors"))]),
        &["model.safetensors", "overwrite an input"],
    );
    // Another run's own file, not an input of this plot.
    let other = d.join("other");
    small_run(&other, "1");
    let curves = std::fs::read(other.join("curves.png")).unwrap();
    fails(&run(&["plot", s(&r), "--out", s(&other.join("curves.png"))]), &["curves.png of the training run"]);
    assert_eq!(std::fs::read(other.join("curves.png")).unwrap(), curves);
    let hard = d.join("metrics-link.png");
    std::fs::hard_link(r.join("metrics.csv"), &hard).unwrap();
    fails(&run(&["plot", s(&r), "--out", s(&hard)]), &["same file as the input", "metrics.csv"]);
    assert_eq!(std::fs::read(r.join("model.safetensors")).unwrap(), model);
    assert!(std::fs::read_to_string(r.join("metrics.csv")).unwrap().starts_with("epoch,"));
    // A plot next to the run under another name is fine.
    ok(&run(&["plot", s(&r), "--out", s(&r.join("mine.png"))]));

    // grad: --out is --params under another name.
    let params = d.join("p.safetensors");
    std::fs::copy(r.join("model.safetensors"), &params).unwrap();
    let alias = d.join("alias.safetensors");
    std::os::unix::fs::symlink(&params, &alias).unwrap();
    let batch = d.join("b.safetensors");
    let x = cnn_as_mlp::Tensor::from_vec(&[2, 1, 28, 28], vec![0.5f32; 2 * 784]);
    checkpoint::write(&batch, &[("x".into(), &x)], &Default::default()).unwrap();
    let o = run(&["grad", "--model", SMALL, "--params", s(&params), "--batch", s(&batch), "--out", s(&alias)]);
    fails(&o, &["same file as the input", s(&params)]);
    assert_eq!(std::fs::read(&params).unwrap(), model);

    // compare: a run's directory, and an earlier comparison.
    let layers = ["--layers", "lenet-pool2", "--batch", "2", "--repeats", "1"];
    fails(&run(&[&["compare", "--out", s(&r)][..], &layers[..]].concat()), &["training run"]);
    let c = d.join("cmp");
    ok(&run(&[&["compare", "--out", s(&c)][..], &layers[..]].concat()));
    let csv = std::fs::read(c.join("compare.csv")).unwrap();
    fails(&run(&[&["compare", "--out", s(&c)][..], &layers[..]].concat()), &["earlier comparison", "compare.md"]);
    assert_eq!(std::fs::read(c.join("compare.csv")).unwrap(), csv);
}

/// A run whose folder is moved while it trains (`mv run run.moved`, then a new run into `run`) stops with
/// an error instead of committing into the new run's folder; each folder holds one run.
#[test]
fn a_run_whose_folder_is_moved_stops() {
    let d = scratch("hostile-moved");
    let first = d.join("run");
    let args =
        ["--model", SMALL, "--limit", "2000", "--test-limit", "64", "--batch", "8", "--epochs", "40", "--seed", "1"];
    let child = bin()
        .args([&["train", "--out", s(&first)][..], &args[..]].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !first.join("model.safetensors").exists() {
        assert!(t.elapsed() < Duration::from_secs(60), "no first commit");
        std::thread::sleep(Duration::from_millis(10));
    }
    let moved = d.join("run.moved");
    std::fs::rename(&first, &moved).unwrap();
    // The second run into the old name: a short one.
    ok(&run(&["train", "--model", SMALL, "--limit", "64", "--epochs", "1", "--seed", "2", "--out", s(&first)]));
    let second = std::fs::read(first.join("model.safetensors")).unwrap();
    let o = child.wait_with_output().unwrap();
    fails(&o, &[s(&first), "no longer names the directory"]);
    assert_eq!(std::fs::read(first.join("model.safetensors")).unwrap(), second);
    assert_eq!(Stored::read(&first.join("model.safetensors")).unwrap().meta("seed").unwrap(), "2");
    assert_eq!(Stored::read(&moved.join("model.safetensors")).unwrap().meta("seed").unwrap(), "1");
}

/// `sweep --out S` over runs made with other settings is refused, naming the setting; a grid with a
/// repeated seed, learning rate, engine or model is refused before anything runs; seed ranges and threads
/// are bounded.
#[test]
fn sweeps_reuse_only_their_own_runs() {
    let d = scratch("hostile-sweep");
    let out = d.join("s");
    let base = ["sweep", "--model", SMALL, "--seeds", "0", "--limit", "64", "--test-limit", "64", "--epochs", "1"];
    let with = |extra: &[&str]| run(&[&base[..], extra, &["--out", s(&out)][..]].concat());
    ok(&with(&[]));
    let runs = listing(&out);
    for (extra, setting) in [
        (&["--optimizer", "adam"][..], "optimizer"),
        (&["--batch", "32"][..], "batch"),
        (&["--lr-schedule", "constant"][..], "lr-schedule"),
        (&["--weight-decay", "0"][..], "weight-decay"),
        (&["--normalize"][..], "normalize"),
    ] {
        fails(&with(extra), &[setting, "not this sweep's run"]);
    }
    // More epochs with a cosine schedule change every epoch's rate: refused as well.
    fails(&run(&[&base[..9], &["--epochs", "2", "--out", s(&out)][..]].concat()), &["epochs", "not this sweep's run"]);
    assert_eq!(listing(&out), runs);
    ok(&with(&[]));

    let fresh = d.join("dup");
    for (flag, value, needle) in [
        ("--seeds", "0,0", "seed 0 is given twice"),
        ("--lr", "0.1,0.10", "given twice"),
        ("--engine", "sparse,sparse", "sparse is given twice"),
        ("--seeds", "0..18446744073709551615", "10000"),
        ("--threads", "257", "at most 256"),
    ] {
        let o = run(&["sweep", "--model", SMALL, flag, value, "--limit", "64", "--epochs", "1", "--out", s(&fresh)]);
        fails(&o, &[needle]);
        assert!(!fresh.exists(), "{flag} {value}: created the sweep's directory");
    }
    let o = run(&["sweep", "--model", &format!("{SMALL},{}", SMALL.replace(' ', "")), "--out", s(&fresh)]);
    fails(&o, &["given twice"]);
}

/// A learning rate that sends the weights to infinity stops the run with exit 2 naming the epoch, and
/// leaves no model passed off as trained; `eval` of finite weights whose outputs overflow reports no
/// accuracy.
#[test]
fn non_finite_results_are_refused() {
    let d = scratch("hostile-nan");
    for extra in
        [&["--lr", "1e308"][..], &["--optimizer", "adam", "--lr", "1e308"][..], &["--weight-decay", "1e308"][..]]
    {
        let out = d.join("r");
        let o = run(
            &[&["train", "--model", SMALL, "--limit", "64", "--epochs", "2", "--out", s(&out)][..], extra].concat()
        );
        fails(&o, &["diverged", "epoch 1"]);
        assert!(!out.join("model.safetensors").exists(), "{extra:?}: a diverged model was kept");
    }
    // Finite weights of 3e38: every output overflows.
    let spec = cnn_as_mlp::spec::Spec::parse(SMALL).unwrap();
    let mut net = cnn_as_mlp::network::Network::<f32>::new(&spec, cnn_as_mlp::network::Engine::Sparse);
    for t in net.params.iter_mut().flatten() {
        t.data.iter_mut().for_each(|v| *v = 3e38);
    }
    let huge = d.join("huge.safetensors");
    checkpoint::write(&huge, &checkpoint::named(&net, &net.params, ""), &Default::default()).unwrap();
    let o = run(&["eval", "--checkpoint", s(&huge), "--model", SMALL, "--limit", "50"]);
    fails(&o, &["not finite", "no accuracy"]);
    assert!(!stdout(&o).contains("acc="), "{}", stdout(&o));
}

/// A stale `.commit/` holding only a model file, checkpoint metadata edited to another step or an
/// unknown engine, and `--resume --epochs` below the epochs done: refused before anything is replaced.
#[test]
fn resume_checks_what_it_finds_before_replacing_anything() {
    let d = scratch("hostile-resume");
    let r = d.join("run");
    small_run(&r, "2");
    let model = std::fs::read(r.join("model.safetensors")).unwrap();
    // A .commit with an older model and nothing else.
    let early = d.join("early");
    small_run(&early, "1");
    std::fs::create_dir(r.join(".commit")).unwrap();
    std::fs::copy(early.join("model.safetensors"), r.join(".commit/model.safetensors")).unwrap();
    fails(&run(&["train", "--resume", s(&r), "--epochs", "3"]), &[".commit", "without state.safetensors"]);
    assert_eq!(std::fs::read(r.join("model.safetensors")).unwrap(), model);
    std::fs::remove_dir_all(r.join(".commit")).unwrap();

    fails(&run(&["train", "--resume", s(&r), "--epochs", "1"]), &["--epochs 1", "already completed 2 epochs"]);

    let edited = d.join("edited");
    for (file, key, value, needle) in [
        ("state.safetensors", "engine", "bogus", "\"engine\" has unknown value \"bogus\""),
        ("both", "step", "99", "\"step\" is 99"),
        ("both", "epoch", "0", "epochs [1, 2]"),
    ] {
        let _ = std::fs::remove_dir_all(&edited);
        small_run(&edited, "2");
        set_meta(&edited, file, key, value);
        let before = std::fs::read(edited.join("model.safetensors")).unwrap();
        fails(&run(&["train", "--resume", s(&edited), "--epochs", "3"]), &[needle]);
        assert_eq!(std::fs::read(edited.join("model.safetensors")).unwrap(), before);
    }
    // One byte of a weight changed and the digest left as it was: `--resume` and `eval` refuse the file by
    // its digest, and nothing is replaced.
    let _ = std::fs::remove_dir_all(&edited);
    small_run(&edited, "2");
    let file = edited.join("model.safetensors");
    let mut bytes = std::fs::read(&file).unwrap();
    *bytes.last_mut().unwrap() ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let needles = ["model.safetensors", "metadata \"digest\"", "changed after it was written"];
    fails(&run(&["train", "--resume", s(&edited), "--epochs", "3"]), &needles);
    fails(&run(&["eval", "--checkpoint", s(&file), "--limit", "50"]), &needles);
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
}

/// Rewrites metadata `key` of `file` of a run (`both`: model and state).
fn set_meta(dir: &Path, file: &str, key: &str, value: &str) {
    let files = if file == "both" { vec!["model.safetensors", "state.safetensors"] } else { vec![file] };
    for f in files {
        set_file_meta(&dir.join(f), key, value);
    }
}

/// Errors with stderr on a full device exit 2 (they used to panic, exit 101); huge counts are refused with
/// their bound; FIFOs given as inputs are refused at once instead of blocking.
#[test]
fn no_crash_no_hang() {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o = bin().args(["train", "--model", "nonsense("]).stderr(full).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["compare", "--repeats", "18446744073709551615", "--layers", "lenet-pool2"]);
    fails(&o, &["--repeats", "at most 10000"]);

    let d = scratch("hostile-fifo");
    let p = fifo(&d.join("p.safetensors"));
    let out = d.join("o.png");
    for args in [
        vec!["train", "--model", SMALL, "--init", s(&p), "--epochs", "1", "--out", s(&d.join("r"))],
        vec!["eval", "--checkpoint", s(&p), "--model", SMALL],
        vec!["show", "--checkpoint", s(&p), "--layer", "0", "--out", s(&out)],
        vec!["grad", "--model", SMALL, "--params", s(&p), "--batch", s(&p), "--out", s(&d.join("g.safetensors"))],
    ] {
        fails(&run_within(&args, 30), &["a FIFO, not a regular file"]);
    }
    let run_dir = d.join("fiforun");
    small_run(&run_dir, "1");
    std::fs::remove_file(run_dir.join("metrics.csv")).unwrap();
    fifo(&run_dir.join("metrics.csv"));
    fails(&run_within(&["plot", s(&run_dir), "--out", s(&out)], 30), &["a FIFO"]);
    fails(&run_within(&["train", "--resume", s(&run_dir), "--epochs", "2"], 30), &["a FIFO"]);
    let cmp = d.join("cmp");
    std::fs::create_dir(&cmp).unwrap();
    fifo(&cmp.join("compare.csv"));
    fails(&run_within(&["compare", "--replot", s(&cmp)], 30), &["a FIFO"]);
}

/// `--prune 0 --epochs 1` names the flags given, not a default `--prune-end` the user never saw.
#[test]
fn prune_refusal_names_the_flags_given() {
    let d = scratch("hostile-prune");
    let o =
        run(&["train", "--model", SMALL, "--limit", "64", "--epochs", "1", "--prune", "0", "--out", s(&d.join("r"))]);
    let line = fails(&o, &["--prune 0", "at least 2 epochs", "--epochs is 1"]);
    assert!(!line.contains("--prune-end"), "{line}");
}

/// A copy of the vendored MNIST-10k files in a new folder `d/name`.
fn mnist_copy(d: &Path, name: &str) -> PathBuf {
    let dir = d.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-10k");
    for f in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    {
        std::fs::copy(src.join(format!("{f}.gz")), dir.join(format!("{f}.gz"))).unwrap();
    }
    dir
}

/// A data entry that is there but is not a regular file is refused by what it is, at once (a FIFO does not
/// block), never called missing; a multi-member gzip IDX file (`cat a.gz b.gz`) reads as gzip tools read it.
#[test]
fn data_entries_are_named_by_what_they_are() {
    let d = scratch("hostile-entries");
    let labels = "t10k-labels-idx1-ubyte.gz";
    type Make = fn(&Path);
    let cases: [(&str, Make, &str); 3] = [
        ("fifo", |p| drop(fifo(p)), "is a FIFO, not a regular file"),
        ("dir", |p| std::fs::create_dir(p).unwrap(), "is a directory, not a regular file"),
        ("loop", |p| std::os::unix::fs::symlink(p, p).unwrap(), "symbolic links"),
    ];
    for (name, make, needle) in cases {
        let dir = mnist_copy(&d, name);
        std::fs::remove_file(dir.join(labels)).unwrap();
        make(&dir.join(labels));
        let o =
            run_within(&["train", "--data", s(&dir), "--epochs", "1", "--limit", "64", "--out", s(&d.join("run"))], 60);
        let line = fails(&o, &[labels, needle]);
        assert!(!line.contains("missing"), "{name}: {line}");
        assert!(!d.join("run").exists(), "{name}: a run directory was left");
    }

    // The test labels split in two gzip members: the same data, so the same trained bytes.
    let whole = mnist_copy(&d, "whole");
    let split = mnist_copy(&d, "split");
    let raw = {
        use std::io::Read;
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(whole.join(labels)).unwrap()).read_to_end(&mut v).unwrap();
        v
    };
    let gz = |part: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(part).unwrap();
        e.finish().unwrap()
    };
    let half = raw.len() / 2;
    std::fs::write(split.join(labels), [gz(&raw[..half]), gz(&raw[half..])].concat()).unwrap();
    let train = |data: &Path, out: &str| {
        let out = d.join(out);
        ok(&run(&["train", "--data", s(data), "--epochs", "1", "--limit", "128", "--threads", "1", "--out", s(&out)]));
        std::fs::read(out.join("metrics.csv")).unwrap()
    };
    let (a, b) = (train(&whole, "run-whole"), train(&split, "run-split"));
    // The metrics hold the test accuracy over every test label: read only if every member was.
    let acc = |m: &[u8]| String::from_utf8_lossy(m).lines().nth(1).unwrap().split(',').nth(5).unwrap().to_string();
    assert_eq!(acc(&a), acc(&b));
}

/// `compare` on a layer whose activations alone exceed what the process may use (MemAvailable, `ulimit -v`,
/// the memory-limit variable) is refused before anything is allocated or created (it used to abort on the
/// allocation), with the bytes it needs and the limit.
#[test]
fn compare_refuses_activations_beyond_the_limit() {
    let d = scratch("hostile-compare-limit");
    let out = d.join("c");
    for extra in [
        &["--batch", "99999999999", "--layers", "c32-64"][..],
        &["--layers", "4096x1024x1024 > conv(4096,3,pad=1)"][..],
    ] {
        let o = run_within(&[&["compare", "--repeats", "1", "--out", s(&out)][..], extra].concat(), 60);
        fails(&o, &["needs about", "bytes the process may use"]);
        assert!(!out.exists(), "{extra:?} created the output directory");
    }
}

/// Round four (a fresh held-out trial): a sweep never takes over a folder whose summary files are a user's
/// or a run's folder; `train --out` never lands inside a run (where the run's next commit would remove
/// it); `show`'s picture never overwrites its own export and a refused export leaves no file; `eval --model`
/// never reads a checkpoint as another network; a mask that removes a nonzero weight is refused; negative
/// and huge counts name the flag and the value; `--normalize --no-normalize` is a conflict.
#[test]
fn round_four_refusals() {
    let d = scratch("hostile-four");
    let tiny = ["--limit", "64", "--test-limit", "64", "--epochs", "1", "--quiet"];
    // A sweep into a folder with the user's own sweep.md, or into a training run.
    let u = d.join("u");
    std::fs::create_dir_all(&u).unwrap();
    std::fs::write(u.join("sweep.md"), b"my notes").unwrap();
    let sweep =
        |out: &Path| run(&[&["sweep", "--model", SMALL, "--seeds", "0", "--out", s(out)][..], &tiny[..6]].concat());
    fails(&sweep(&u), &["sweep.md", "none of this sweep's runs"]);
    assert_eq!(std::fs::read(u.join("sweep.md")).unwrap(), b"my notes");
    let r = d.join("run");
    ok(&run(&[&["train", "--model", SMALL, "--out", s(&r)][..], &tiny[..]].concat()));
    fails(&sweep(&r), &["training run's directory"]);
    // A new run inside that run, as its `.pending` or a folder of its own.
    for inside in [r.join(".pending"), r.join("sub")] {
        fails(
            &run(&[&["train", "--model", SMALL, "--out", s(&inside)][..], &tiny[..]].concat()),
            &["inside the training run"],
        );
        assert!(!inside.exists(), "{inside:?} was created");
    }
    // `--out a/missing/../b` would create `a/missing` on the way.
    let stray = d.join("c").join("rel").join("..").join("rel2");
    std::fs::create_dir_all(d.join("c")).unwrap();
    fails(&run(&[&["train", "--model", SMALL, "--out", s(&stray)][..], &tiny[..]].concat()), &["`..`", "rel"]);
    assert_eq!(listing(&d.join("c")), Vec::<String>::new(), "a stray folder was made");
    // show: the picture onto the export, or onto its parameter list; an export whose list is a FIFO.
    for (export, out) in [("x.png", "x.png"), ("z.mtx", "z.params.csv")] {
        let o = run(&[
            "show",
            "--model",
            "lenet5",
            "--layer",
            "0",
            "--export",
            s(&d.join(export)),
            "--out",
            s(&d.join(out)),
        ]);
        fails(&o, &["--out", "--export"]);
        assert!(!d.join(export).exists() && !d.join(out).exists());
    }
    fifo(&d.join("e.params.csv"));
    fails(&run(&["show", "--model", "lenet5", "--layer", "0", "--export", s(&d.join("e.mtx"))]), &["FIFO"]);
    assert!(!d.join("e.mtx").exists(), "a refused export left its matrix");
    // eval --model naming another network than the checkpoint's.
    let other = "1x28x28 > conv(4,5,stride=3) > sigmoid > dense(10)";
    fails(&run(&["eval", "--checkpoint", s(&r), "--model", other]), &["--model", "another network"]);
    ok(&run(&["eval", "--checkpoint", s(&r), "--model", SMALL, "--limit", "64"]));
    // A mask (with a fresh digest) that removes an entry whose weight is not 0.
    let p = d.join("pruned");
    let prune = ["--prune", "0.5", "--epochs", "3", "--lr-schedule", "constant"];
    ok(&run(&[&["train", "--model", SMALL, "--out", s(&p)][..], &tiny[..4], &prune[..]].concat()));
    let model = p.join("model.safetensors");
    let st = Stored::read(&model).unwrap();
    let n = st.f32_tensor("0.weight", None).unwrap().len();
    let mut keep = cnn_as_mlp::prune::decode_mask(st.meta("mask.0.weight").unwrap(), n).unwrap();
    let j = keep.iter().position(|&k| k).unwrap();
    keep[j] = false;
    drop(st);
    set_file_meta(&model, "mask.0.weight", &cnn_as_mlp::prune::encode_mask(&keep));
    fails(&run(&["eval", "--checkpoint", s(&p)]), &["mask.0.weight", &format!("entry {j}"), "a pruned entry is 0"]);
    // Counts: negative values and a run for ever; conflicting flags.
    let out = d.join("never");
    for (flag, value) in [("--epochs", "-3"), ("--batch", "-1"), ("--seed", "-1"), ("--epochs", "18446744073709551615")]
    {
        fails(&run(&["train", "--limit", "64", flag, value, "--out", s(&out)]), &[flag, value]);
    }
    fails(&run(&["train", "--limit", "64", "--weight-decay", "-1e-9", "--out", s(&out)]), &["--weight-decay"]);
    fails(&run(&["sweep", "--lr", "-0.5", "--out", s(&out)]), &["--lr", "-0.5"]);
    fails(&run(&["train", "--normalize", "--no-normalize", "--out", s(&out)]), &["--normalize", "--no-normalize"]);
    assert!(!out.exists());
}

/// A `metrics.csv` copied from another run (same epochs, other numbers) is refused by `--resume` and by
/// `plot`, naming the file: the state records the digest of the metrics committed with it. The run's own
/// file is accepted again once it is put back.
#[test]
fn metrics_from_another_run_are_refused() {
    let d = scratch("hostile-metrics");
    let (a, b) = (d.join("a"), d.join("b"));
    small_run(&a, "1");
    small_run_with(&b, "1", &["--lr", "0.01"]);
    let own = std::fs::read(a.join("metrics.csv")).unwrap();
    std::fs::copy(b.join("metrics.csv"), a.join("metrics.csv")).unwrap();
    assert_ne!(std::fs::read(a.join("metrics.csv")).unwrap(), own);
    fails(&run(&["train", "--resume", s(&a), "--epochs", "2"]), &["metrics.csv", "another run"]);
    fails(&run(&["plot", s(&a), "--out", s(&d.join("p.png"))]), &["metrics.csv", "another run"]);
    std::fs::write(a.join("metrics.csv"), &own).unwrap();
    ok(&run(&["plot", s(&a), "--out", s(&d.join("p.png"))]));
    ok(&run(&["train", "--resume", s(&a), "--epochs", "2", "--quiet"]));
}
