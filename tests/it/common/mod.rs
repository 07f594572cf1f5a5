//! Shared helpers for the integration tests: seeded data, a finite-difference gradient check, convolution
//! geometries and the padding maps of proofs/T1 written out independently, and running the binary on scratch
//! directories and files.
#![allow(dead_code, clippy::needless_range_loop, clippy::too_many_arguments)]

use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode};
use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::spec::Spec;
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Output;

/// Central-difference step for f64 gradient checks.
pub const FD_STEP: f64 = 1e-6;
/// Relative tolerance between the analytic and the finite-difference gradient.
pub const FD_REL_TOL: f64 = 1e-5;
/// Absolute slack for gradients near zero: the central difference's rounding error is about
/// `ε·|J| / h ≈ 2.2e-16 · 2 / 1e-6 ≈ 5e-10` for a loss near 2.
pub const FD_ABS_TOL: f64 = 2e-9;

/// A (batch, features) matrix of seeded uniform values in `[lo, hi)`.
pub fn random_matrix(batch: usize, features: usize, lo: f64, hi: f64, seed: u64) -> DMatrix<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    DMatrix::from_fn(batch, features, |_, _| rng.random_range(lo..hi))
}

/// Seeded labels in `0..k`.
pub fn random_labels(batch: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..batch).map(|_| rng.random_range(0..k)).collect()
}

/// Outcome of a gradient check: how many parameter values were perturbed, and the worst error as a
/// fraction of its tolerance (`<= 1` passes).
#[derive(Debug)]
pub struct GradCheck {
    pub checked: usize,
    pub worst: f64,
    pub worst_at: String,
}

/// Builds `spec` in f64 with PyTorch-default parameters, then compares `∂J/∂θ` from backpropagation with
/// central differences `(J(θ + h e_p) − J(θ − h e_p)) / 2h`, perturbing each *shared parameter* (so a
/// kernel value moves every nonzero that copies it). At most `max_per_tensor` values per tensor (spread
/// evenly) are perturbed. Panics with the worst value when a relative error exceeds [`FD_REL_TOL`].
pub fn grad_check(spec: &str, loss: Loss, batch: usize, max_per_tensor: usize, seed: u64) -> GradCheck {
    let spec = Spec::parse(spec).unwrap();
    let mut net = Network::<f64>::new(&spec, Engine::Sparse);
    init_params(&mut net, Init::TorchDefault, seed);
    // Biases start at zero under some schemes; give them values so their gradients are exercised.
    let x = random_matrix(batch, spec.input.len(), -1.0, 1.0, seed + 1);
    let k = spec.output().unwrap().len();
    let labels = random_labels(batch, k, seed + 2);
    let targets = Targets::Labels(&labels);
    let mut grads = net.zero_grads();
    net.loss_and_grad(&mut grads, &x, targets, loss);
    let names = net.param_names();
    let mut name_iter = names.iter();
    let mut out = GradCheck { checked: 0, worst: 0.0, worst_at: String::new() };
    for layer in 0..net.params.len() {
        for t in 0..net.params[layer].len() {
            let name = &name_iter.next().unwrap().0;
            let len = net.params[layer][t].len();
            let step = (len / max_per_tensor).max(1);
            for p in (0..len).step_by(step) {
                let orig = net.params[layer][t].data[p];
                net.params[layer][t].data[p] = orig + FD_STEP;
                let up = net.loss(&x, targets, loss);
                net.params[layer][t].data[p] = orig - FD_STEP;
                let down = net.loss(&x, targets, loss);
                net.params[layer][t].data[p] = orig;
                let numeric = (up - down) / (2.0 * FD_STEP);
                let analytic = grads[layer][t].data[p];
                let scale = numeric.abs().max(analytic.abs());
                // err <= 1 iff |a − n| <= FD_REL_TOL · max(|a|, |n|) + FD_ABS_TOL.
                let err = (numeric - analytic).abs() / (FD_REL_TOL * scale + FD_ABS_TOL);
                if err > out.worst {
                    out.worst = err;
                    out.worst_at = format!("{name}[{p}]: analytic {analytic:e}, numeric {numeric:e}");
                }
                out.checked += 1;
            }
        }
    }
    assert!(
        out.worst <= 1.0,
        "{spec}: gradient check failed, worst error {:.2}x its tolerance at {}",
        out.worst,
        out.worst_at
    );
    assert!(out.checked > 0, "{spec}: no parameter checked");
    out
}

/// A tiny model that trains in well under a second on a few hundred images.
pub const SMALL: &str = "1x28x28 > conv(4,5,stride=3) > relu > dense(10)";

/// Runs `cnn-as-mlp` with `args` (the binary exists with the `cli` feature only).
#[cfg(feature = "cli")]
pub fn run(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cnn-as-mlp")).args(args).output().expect("the binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, printing both streams otherwise.
#[track_caller]
pub fn ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", o.status.code(), stdout(o), stderr(o));
}

/// Asserts exit code 2 with a single `error: ` line on stderr that contains every one of `needles`;
/// returns that line.
#[track_caller]
pub fn fails(o: &Output, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit 2\nstdout:\n{}\nstderr:\n{err}", stdout(o));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "error line lacks {n:?}: {err}");
    }
    lines[0].to_string()
}

/// A fresh, empty scratch directory unique to this test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cnn-as-mlp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// IDX bytes of unsigned bytes with the given dimensions.
pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

/// Writes a small raw IDX data set (n_train + n_test images of 28x28, labels i % 10) into `dir`.
pub fn write_idx_dir(dir: &Path, n_train: u32, n_test: u32) {
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let pixels: Vec<u8> = (0..n * 784).map(|i| (i * 7 % 256) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), idx_bytes(&[n, 28, 28], &pixels)).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), idx_bytes(&[n], &labels)).unwrap();
    }
}

/// Rewrites metadata `key` of the safetensors file `file` to `value`, with a fresh digest (as someone who
/// edits with care would), so that the checks behind the digest are what a test reaches.
pub fn set_file_meta(file: &Path, key: &str, value: &str) {
    let st = cnn_as_mlp::checkpoint::Stored::read(file).unwrap();
    let mut meta: std::collections::BTreeMap<String, String> = st.metadata.clone().into_iter().collect();
    meta.insert(key.into(), value.into());
    let ts: Vec<(String, cnn_as_mlp::Tensor<f32>)> =
        st.names().into_iter().map(|n| (n.clone(), st.f32_tensor(&n, None).unwrap())).collect();
    let refs: Vec<(String, &cnn_as_mlp::Tensor<f32>)> = ts.iter().map(|(n, t)| (n.clone(), t)).collect();
    cnn_as_mlp::checkpoint::write_with_digest(file, &refs, &meta).unwrap();
}

/// Files in `dir` (names), sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// A convolution geometry, arguments in the order of the fields.
pub fn geom(
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    mode: PaddingMode,
) -> ConvGeometry {
    ConvGeometry { c_in, h_in: h, w_in: w, c_out, k, stride, pad, dil, mode }
}

/// The padding map `μ_n(u)` of the table in proofs/T1, written out here rather than taken from
/// `PaddingMode::map`, so that the oracle shares no padding code with the compiler it checks.
pub fn pad_map_by_table(mode: PaddingMode, u: isize, n: usize) -> Option<usize> {
    let n = n as isize;
    let j = match mode {
        _ if (0..n).contains(&u) => u,
        PaddingMode::Zeros => return None,
        PaddingMode::Reflect if u < 0 => -u,
        PaddingMode::Reflect => 2 * (n - 1) - u,
        PaddingMode::Replicate if u < 0 => 0,
        PaddingMode::Replicate => n - 1,
        PaddingMode::Circular if u < 0 => u + n,
        PaddingMode::Circular => u - n,
    };
    assert!((0..n).contains(&j), "padded coordinate {u} maps outside [0, {n}) under {mode:?}");
    Some(j as usize)
}
