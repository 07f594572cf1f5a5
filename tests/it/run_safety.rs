//! Runs are never lost, mixed or misreported: `kill -9` at any instant, two runs into one directory, runs
//! started in the same second, a cosine schedule resumed, a closed stdout pipe, run metadata edited by
//! hand. See `src/run.rs` for the commit protocol and the lock.
#![cfg(feature = "cli")]

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cnn_as_mlp::checkpoint::{self, Stored};
use common::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cnn-as-mlp"))
}

/// What must agree between two runs: checkpoint, state, plot, and metrics without images/s (a timing).
fn fingerprint(dir: &Path) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = ["model.safetensors", "state.safetensors"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(f).display())))
        .collect();
    // The curves' title names the run directory, so only their presence is compared.
    let png = std::fs::read(dir.join("curves.png")).unwrap();
    v.push(png[..8].to_vec());
    // metrics.csv without its timing columns (img_per_s, train_s, wall_s).
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let keep = |l: &str| {
        let f: Vec<&str> = l.split(',').collect();
        [&f[..6], &f[7..8]].concat().join(",") + "\n"
    };
    v.push(csv.lines().map(keep).collect::<String>().into_bytes());
    v
}

const RUN_FILES: [&str; 4] = ["curves.png", "metrics.csv", "model.safetensors", "state.safetensors"];

/// Kills a training run with SIGKILL at 24 seeded instants spread over its whole life (start-up, the
/// epochs, the commits), then resumes it (or, when it died before its first commit, starts it again
/// into the same directory). Every recovery succeeds and ends with the uninterrupted run's bytes and
/// metrics, the four files and nothing else. The schedule is the default cosine one.
#[test]
fn kill_at_any_instant_then_resume_gives_the_same_bytes() {
    let d = scratch("crash");
    let args = ["--model", SMALL, "--limit", "512", "--epochs", "4", "--batch", "32", "--seed", "3"];
    let reference = d.join("reference");
    let t0 = Instant::now();
    ok(&run(&[&["train", "--out", s(&reference)][..], &args[..]].concat()));
    let span = t0.elapsed().as_secs_f64() * 1.1;
    let expected = fingerprint(&reference);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let (mut resumed, mut restarted, mut finished) = (0, 0, 0);
    for i in 0..24 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let at = Duration::from_secs_f64(span * (state % 10_000) as f64 / 10_000.0);
        let out = d.join(format!("k{i}"));
        let mut child = bin()
            .args([&["train", "--out", s(&out)][..], &args[..]].concat())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill();
        let status = child.wait().unwrap();
        finished += usize::from(status.success());
        let o = if out.join("model.safetensors").exists() {
            resumed += 1;
            run(&["train", "--resume", s(&out)])
        } else {
            restarted += 1;
            run(&[&["train", "--out", s(&out)][..], &args[..]].concat())
        };
        ok(&o);
        assert_eq!(listing(&out), RUN_FILES, "kill {i} at {at:?}: stray files");
        assert!(fingerprint(&out) == expected, "kill {i} at {at:?}: the resumed run differs from the reference");
    }
    eprintln!("24 kills: {resumed} resumed, {restarted} restarted, {finished} had finished");
    assert!(resumed >= 8, "only {resumed} kills landed after the first commit");
}

/// A commit interrupted between its steps is finished (`.commit`) or discarded (`.pending`) when the run
/// is opened again; older versions' temporary files are removed.
#[test]
fn interrupted_commits_are_finished_or_discarded() {
    let d = scratch("commit-steps");
    let args = ["--model", SMALL, "--limit", "256", "--lr-schedule", "constant"];
    let (full, cut) = (d.join("full"), d.join("cut"));
    ok(&run(&[&["train", "--out", s(&full), "--epochs", "2"][..], &args[..]].concat()));
    ok(&run(&[&["train", "--out", s(&cut), "--epochs", "1"][..], &args[..]].concat()));
    // Epoch 2 of `full` committed up to its rename into place, with the model already moved: a kill in step 3.
    std::fs::create_dir(cut.join(".commit")).unwrap();
    for f in ["state.safetensors", "metrics.csv", "curves.png"] {
        std::fs::copy(full.join(f), cut.join(".commit").join(f)).unwrap();
    }
    std::fs::copy(full.join("model.safetensors"), cut.join("model.safetensors")).unwrap();
    std::fs::write(cut.join(".model.safetensors.tmp123"), b"junk").unwrap();
    std::fs::write(cut.join(".tmp123.curves.png"), b"junk").unwrap();
    ok(&run(&["train", "--resume", s(&cut), "--epochs", "2"]));
    assert_eq!(listing(&cut), RUN_FILES);
    assert!(fingerprint(&cut) == fingerprint(&full));
    // A half-written epoch (`.pending`) is thrown away: the run resumes from its last commit.
    std::fs::create_dir(cut.join(".pending")).unwrap();
    std::fs::write(cut.join(".pending").join("model.safetensors"), b"half").unwrap();
    ok(&run(&["train", "--resume", s(&cut), "--epochs", "2"]));
    assert_eq!(listing(&cut), RUN_FILES);
    assert!(fingerprint(&cut) == fingerprint(&full));
}

/// A second run into a directory in use fails at once, naming it; so does resuming it. After the first
/// run ends, the directory is free.
#[test]
fn a_second_run_into_the_same_directory_fails_at_once() {
    let d = scratch("lock");
    let out = d.join("run");
    let args = ["train", "--model", SMALL, "--limit", "4000", "--epochs", "30", "--lr-schedule", "constant"];
    let mut first = bin().args(args).args(["--out", s(&out)]).stdout(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    while !out.join("model.safetensors").exists() {
        assert!(t0.elapsed() < Duration::from_secs(30), "the first run never committed");
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    let o = run(&["train", "--model", SMALL, "--limit", "64", "--epochs", "1", "--out", s(&out)]);
    fails(&o, &[s(&out), "in use"]);
    let o = run(&["train", "--resume", s(&out)]);
    fails(&o, &[s(&out), "in use"]);
    assert!(t.elapsed() < Duration::from_secs(10), "the second run did not fail at once");
    assert!(first.try_wait().unwrap().is_none(), "the first run stopped");
    let _ = first.kill();
    first.wait().unwrap();
    // The kernel released the lock with the process: the run resumes (to 1 epoch, constant schedule).
    ok(&run(&["train", "--resume", s(&out), "--epochs", "1"]));
}

/// Runs started in the same second with the default directory get different directories, each holding
/// one run's files only.
#[test]
fn default_run_directories_are_unique() {
    let d = scratch("unique");
    let spawn = |seed: &str| {
        bin()
            .current_dir(&d)
            .args(["train", "--model", SMALL, "--limit", "64", "--epochs", "1", "--seed", seed])
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let children: Vec<_> = ["1", "2", "3"].into_iter().map(spawn).collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let runs = listing(&d.join("runs"));
    assert_eq!(runs.len(), 3, "{runs:?}");
    let mut seeds = Vec::new();
    for r in &runs {
        let dir = d.join("runs").join(r);
        assert_eq!(listing(&dir), RUN_FILES);
        let (m, st) = (
            Stored::read(&dir.join("model.safetensors")).unwrap(),
            Stored::read(&dir.join("state.safetensors")).unwrap(),
        );
        assert_eq!(m.meta("seed").unwrap(), st.meta("seed").unwrap(), "{r}: files of two runs");
        seeds.push(m.meta("seed").unwrap().to_string());
    }
    seeds.sort();
    assert_eq!(seeds, ["1", "2", "3"]);
}

/// The cosine schedule's horizon is part of the run: extending it is refused (the run untouched), resuming
/// to the planned epochs is what `kill_at_any_instant_then_resume_gives_the_same_bytes` checks
/// bit for bit; a constant schedule extends freely (`tests/it/cli_train.rs`).
#[test]
fn a_cosine_run_resumes_to_its_planned_epochs_only() {
    let d = scratch("cosine");
    let out = d.join("run");
    ok(&run(&["train", "--model", SMALL, "--limit", "128", "--epochs", "2", "--out", s(&out)]));
    let before = fingerprint(&out);
    let o = run(&["train", "--resume", s(&out), "--epochs", "3"]);
    fails(&o, &["--epochs 3", "cosine", "2 epochs", s(&out)]);
    assert!(fingerprint(&out) == before);
    ok(&run(&["train", "--resume", s(&out), "--epochs", "2"]));
    assert!(fingerprint(&out) == before);
}

/// `train … | head -1`: the reader goes away after one line, and the run still trains every epoch and
/// writes its files, exit 0. `eval … | head -1` exits 0 too.
#[test]
fn a_closed_stdout_pipe_loses_nothing() {
    let d = scratch("pipe");
    let out = d.join("run");
    let mut child = bin()
        .args(["train", "--model", SMALL, "--limit", "512", "--epochs", "3", "--out", s(&out)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("train: "), "{first}");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "exit {:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));
    let m = Stored::read(&out.join("model.safetensors")).unwrap();
    assert_eq!(m.meta("epoch").unwrap(), "3");
    assert_eq!(listing(&out), RUN_FILES);

    let mut child = bin()
        .args(["eval", "--checkpoint", s(&out.join("model.safetensors"))])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "exit {:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));
}

/// Rewrites metadata `key` of both checkpoint files of a run.
fn set_meta(dir: &Path, key: &str, value: &str) {
    for f in ["model.safetensors", "state.safetensors"] {
        set_file_meta(&dir.join(f), key, value);
    }
}

/// A run directory is user input: metadata out of range is refused like the command line's values, by
/// name, before anything runs (batch "0" used to divide by zero).
#[test]
fn run_metadata_goes_through_the_command_line_checks() {
    let d = scratch("meta");
    let base = d.join("base");
    ok(&run(&["train", "--model", SMALL, "--limit", "64", "--epochs", "1", "--out", s(&base)]));
    for (key, value, rule) in [
        ("batch", "0", "at least 1"),
        ("lr", "-1", ">= 0"),
        ("weight_decay", "-5", ">= 0"),
        ("momentum", "2", "[0, 1)"),
        ("lr", "inf", "finite"),
        ("epochs", "0", "at least 1"),
        ("limit", "0", "at least 1"),
        ("spec", "1x28x28 > dense(1000000000)", "needs about"),
    ] {
        let dir = d.join(format!("{key}-{value}").replace(['>', ' ', '(', ')'], "_"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in RUN_FILES {
            std::fs::copy(base.join(f), dir.join(f)).unwrap();
        }
        set_meta(&dir, key, value);
        let o = run(&["train", "--resume", s(&dir), "--epochs", "2"]);
        let line = fails(&o, &[rule]);
        assert!(line.contains(key) || key == "spec", "{line}");
    }
}

/// Command-line values: `--momentum 2`, `eval --limit 0`, `--threads 100000` (at once), clap's own
/// errors, all one line and exit 2.
#[test]
fn command_line_values_are_checked_in_one_line() {
    fails(&run(&["train", "--momentum", "2"]), &["--momentum 2", "[0, 1)"]);
    fails(&run(&["train", "--lr", "-1"]), &["--lr -1", ">= 0"]);
    fails(&run(&["train", "--weight-decay", "-5"]), &["--weight-decay -5"]);
    fails(&run(&["eval", "--checkpoint", "x", "--limit", "0"]), &[]);
    let t = Instant::now();
    fails(&run(&["train", "--threads", "100000"]), &["--threads 100000", "256"]);
    assert!(t.elapsed() < Duration::from_secs(5));
    fails(&run(&["train", "--bogus"]), &["--bogus"]);
    fails(&run(&["train", "--model", "-1x28x28 > dense(10)"]), &["model spec", "-1x28x28"]);
    fails(&run(&["show", "--model", "lenet5"]), &["--layer", "--out"]);
    fails(&run(&["grad"]), &["--model", "--params"]);
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"\xff\xfe");
    let o = bin().args(["train", "--model"]).arg(bad).output().unwrap();
    fails(&o, &["UTF-8"]);
    let d = scratch("limit0");
    let out = d.join("run");
    ok(&run(&["train", "--model", SMALL, "--limit", "64", "--epochs", "1", "--out", s(&out)]));
    fails(&run(&["eval", "--checkpoint", s(&out.join("model.safetensors")), "--limit", "0"]), &["--limit 0"]);
}

/// `/dev/zero` and `/dev/urandom` as checkpoints (not regular files), an IDX file that never ends: refused
/// at once.
#[test]
fn endless_files_are_refused_at_once() {
    let t = Instant::now();
    fails(&run(&["eval", "--checkpoint", "/dev/zero"]), &["/dev/zero", "a character device, not a regular file"]);
    fails(&run(&["eval", "--checkpoint", "/dev/urandom"]), &["/dev/urandom", "not a regular file"]);
    fails(&run(&["train", "--model", SMALL, "--init", "/dev/zero", "--epochs", "1"]), &["/dev/zero"]);
    // A gzip bomb: 20 images, then 256 MiB of zeros (256 KiB compressed), read only 1 MiB past the images.
    let d = scratch("endless-idx");
    write_idx_dir(&d, 20, 10);
    let raw = d.join("train-images-idx3-ubyte");
    let mut bytes = std::fs::read(&raw).unwrap();
    bytes.resize(bytes.len() + (256 << 20), 0);
    let mut gz = Vec::new();
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
        e.write_all(&bytes).unwrap();
    }
    drop(bytes);
    std::fs::remove_file(&raw).unwrap();
    std::fs::write(d.join("train-images-idx3-ubyte.gz"), gz).unwrap();
    let o = run(&["train", "--model", SMALL, "--data", s(&d), "--epochs", "1", "--out", s(&d.join("run"))]);
    fails(&o, &["train-images-idx3-ubyte.gz", "after the 15696"]);
    assert!(!d.join("run").exists());
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

/// `grad` on inputs whose gradients overflow f32 refuses to write them: x = 3e38 everywhere, a finite
/// forward pass and loss (a 1x1 convolution scales by 1e-6, one class reads every position), but the
/// convolution's weight gradient sums 784 positions of `δ · 3e38` with `δ = 1/N`: +inf.
#[test]
fn non_finite_gradients_are_an_error() {
    use safetensors::{Dtype, tensor::TensorView};
    let d = scratch("grad-inf");
    let model = "1x28x28 > conv(1,1) > dense(10)";
    let spec = cnn_as_mlp::Spec::parse(model).unwrap();
    let mut net = cnn_as_mlp::Network::<f32>::new(&spec, cnn_as_mlp::Engine::Sparse);
    net.params[0][0].data[0] = 1e-6;
    net.params[1][0].data[..784].fill(1.0);
    let (p, b, g) = (d.join("p.safetensors"), d.join("b.safetensors"), d.join("g.safetensors"));
    checkpoint::write(&p, &checkpoint::named(&net, &net.params, ""), &Default::default()).unwrap();
    let n = 4;
    let xb: Vec<u8> = (0..n * 784).flat_map(|_| 3e38f32.to_le_bytes()).collect();
    let yb: Vec<u8> = (0..n as i64).flat_map(|_| 1i64.to_le_bytes()).collect();
    let views = vec![
        ("x", TensorView::new(Dtype::F32, vec![n, 1, 28, 28], &xb).unwrap()),
        ("y", TensorView::new(Dtype::I64, vec![n], &yb).unwrap()),
    ];
    std::fs::write(&b, safetensors::serialize(views, None).unwrap()).unwrap();
    let o = run(&["grad", "--model", model, "--params", s(&p), "--batch", s(&b), "--out", s(&g)]);
    fails(&o, &["\"0.weight\"", "inf", "nothing written"]);
    assert!(!g.exists());
}

/// The specs the issue saw panic, abort or hang, through `show` and `train` under an 8 GB address-space
/// limit: one line, exit 2, no file (`scripts/spec_corpus.sh` runs the whole corpus the same way).
#[test]
fn issue_specs_fail_cleanly_through_the_binary() {
    let d = scratch("issue-specs");
    let bin = env!("CARGO_BIN_EXE_cnn-as-mlp");
    let png = d.join("x.png");
    let out = d.join("run");
    for spec in [
        "1x28x28 > local(1000000,5) > dense(10)",
        "1x100000x100000 > maxpool(2) > dense(10)",
        "1x28x28 > dense(18446744073709551615)",
        "1x28x28 > conv(18446744073709551615,3)",
        "18446744073709551615x1x1 > dense(10)",
        "1x28x28 > conv(4294967296,3)",
        "1x28x28 > dense(1000000000)",
        "1x28x28 > conv(6,3,pad=10000)",
        "1x100000x100000 > dense(10)",
        "1x7000x7000 > conv(8,3,pad=1)",
        "1x28x28 > conv(6,18446744073709551615) > dense(10)",
        "1x28x28 > local(6,18446744073709551615)",
        "1x28x28 > conv(6,5,pad=1000,mode=replicate)",
        "1x28x28 > conv(6,3,dil=18446744073709551615)",
        "1x28x28 > conv(6,3,pad=18446744073709551615)",
        "1x28x28 > conv(6,3,pad=9223372036854775807,mode=replicate)",
    ] {
        for args in [
            vec!["show", "--model", spec, "--layer", "0", "--out", s(&png)],
            vec!["train", "--model", spec, "--epochs", "1", "--limit", "64", "--out", s(&out)],
        ] {
            let o = Command::new("sh")
                .args(["-c", "ulimit -v 8000000; exec timeout 60 \"$0\" \"$@\"", bin])
                .args(&args)
                .output()
                .unwrap();
            fails(&o, &[]);
            assert!(!png.exists() && !out.exists(), "{spec}: a file was left");
        }
    }
    // The same network named by a checkpoint's metadata: refused before anything is built.
    let ck = d.join("big.safetensors");
    let meta = [("spec".to_string(), "1x28x28 > dense(1000000000)".to_string())].into();
    checkpoint::write(&ck, &[], &meta).unwrap();
    fails(&run(&["eval", "--checkpoint", s(&ck)]), &["needs about", "parameters"]);
}

/// A run directory that cannot be written: one plain line naming it, exit 2, nothing left. (The curves are
/// drawn in memory and committed with the epoch, so writing them fails the same way.)
#[test]
fn write_errors_are_one_plain_line() {
    let o = run(&["train", "--model", SMALL, "--limit", "64", "--epochs", "1", "--out", "/proc/cnn-as-mlp-test/run"]);
    let line = fails(&o, &["/proc/cnn-as-mlp-test"]);
    assert!(!line.contains("Custom {") && !line.contains("IoError"), "{line}");
}
