//! Bad input: one `error:` line naming the file or value, exit code 2, no output file.
#![cfg(feature = "cli")]

use crate::common;

use std::collections::BTreeMap;

use cnn_as_mlp::checkpoint;
use cnn_as_mlp::tensor::Tensor;
use common::*;

/// Runs `train` on a data directory and expects a failure mentioning `needles`, with no run directory.
#[track_caller]
fn train_fails_on(dir: &std::path::Path, needles: &[&str]) {
    let out = dir.join("run");
    let o = run(&["train", "--model", SMALL, "--data", s(dir), "--epochs", "1", "--out", s(&out)]);
    fails(&o, needles);
    assert!(!out.exists(), "a run directory was created");
}

#[test]
fn missing_idx_file() {
    let d = scratch("missing-idx");
    write_idx_dir(&d, 20, 10);
    std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap();
    train_fails_on(&d, &["t10k-labels-idx1-ubyte", "no IDX file"]);
}

#[test]
fn truncated_idx_file() {
    let d = scratch("truncated-idx");
    write_idx_dir(&d, 20, 10);
    let f = d.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 100]).unwrap();
    train_fails_on(&d, &["train-images-idx3-ubyte", "truncated"]);
}

#[test]
fn truncated_gzip_idx_file() {
    let d = scratch("truncated-gz");
    write_idx_dir(&d, 20, 10);
    let raw = d.join("train-labels-idx1-ubyte");
    let mut gz = Vec::new();
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::default());
        e.write_all(&std::fs::read(&raw).unwrap()).unwrap();
    }
    std::fs::remove_file(&raw).unwrap();
    std::fs::write(d.join("train-labels-idx1-ubyte.gz"), &gz[..gz.len() / 2]).unwrap();
    train_fails_on(&d, &["train-labels-idx1-ubyte.gz"]);
}

#[test]
fn wrong_magic_number() {
    let d = scratch("magic");
    write_idx_dir(&d, 20, 10);
    let f = d.join("t10k-images-idx3-ubyte");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[2] = 0x0d;
    std::fs::write(&f, bytes).unwrap();
    train_fails_on(&d, &["t10k-images-idx3-ubyte", "magic"]);
}

#[test]
fn image_and_label_counts_differ() {
    let d = scratch("counts");
    write_idx_dir(&d, 20, 10);
    std::fs::write(d.join("train-labels-idx1-ubyte"), idx_bytes(&[19], &[1; 19])).unwrap();
    train_fails_on(&d, &["train-images-idx3-ubyte", "20 images", "19 labels"]);
}

#[test]
fn spec_that_does_not_parse() {
    let d = scratch("spec");
    let out = d.join("run");
    let o = run(&["train", "--model", "1x28x28 > conv(6,5 > relu", "--out", s(&out)]);
    fails(&o, &["model spec"]);
    assert!(!out.exists());
}

#[test]
fn spec_input_shape_differs_from_data() {
    let d = scratch("spec-shape");
    let out = d.join("run");
    let o = run(&["train", "--model", "3x32x32 > conv(4,5) > relu > dense(10)", "--out", s(&out)]);
    fails(&o, &["3x32x32", "1x28x28", "mnist10k"]);
    assert!(!out.exists());
}

/// Closed choices are clap's: the possible values on the error line, and the nearest one as a tip.
#[test]
fn unknown_engine_and_loss() {
    let o = run(&["train", "--engine", "warp", "--epochs", "1"]);
    let line = fails(&o, &["'warp'", "--engine", "possible values: sparse, direct, im2col"]);
    assert!(!line.contains("tip:"), "{line}");
    let o = run(&["eval", "--checkpoint", "nowhere.safetensors", "--engine", "sprase"]);
    let line = fails(&o, &["'sprase'", "--engine", "similar value exists: 'sparse'", "sparse, direct, im2col"]);
    assert!(!line.contains("warp"));
    let o = run(&["train", "--model", SMALL, "--loss", "hinge", "--epochs", "1"]);
    fails(&o, &["--loss", "'hinge'", "possible values: ce, mse"]);
    let o = run(&["train", "--optimizer", "adma", "--epochs", "1"]);
    fails(&o, &["--optimizer", "'adma'", "similar value exists: 'adam'"]);
    let o = run(&["sweep", "--engine", "sparse,dirct", "--out", "nowhere"]);
    fails(&o, &["--engine", "'dirct'", "similar value exists: 'direct'"]);
}

/// A change to a list of named parameter tensors.
type Edit = dyn FnOnce(&mut Vec<(String, Tensor<f32>)>);

/// Writes parameters for SMALL with one tensor altered by `edit`.
fn params_file(path: &std::path::Path, edit: Box<Edit>) {
    let spec = cnn_as_mlp::Spec::parse(SMALL).unwrap();
    let mut net = cnn_as_mlp::Network::<f32>::new(&spec, cnn_as_mlp::Engine::Sparse);
    cnn_as_mlp::init::init_params(&mut net, cnn_as_mlp::init::Init::TorchDefault, 1);
    let mut ts: Vec<(String, Tensor<f32>)> =
        checkpoint::named(&net, &net.params, "").into_iter().map(|(n, t)| (n, t.clone())).collect();
    edit(&mut ts);
    let refs: Vec<(String, &Tensor<f32>)> = ts.iter().map(|(n, t)| (n.clone(), t)).collect();
    let mut meta = BTreeMap::new();
    meta.insert("spec".to_string(), SMALL.to_string());
    checkpoint::write(path, &refs, &meta).unwrap();
}

#[test]
fn checkpoint_tensors_that_do_not_match_the_spec() {
    let d = scratch("ckpt");
    let cases: Vec<(&str, Box<Edit>, Vec<&str>)> = vec![
        ("shape", Box::new(|ts| ts[0].1 = Tensor::zeros(&[4, 1, 3, 3])), vec!["\"0.weight\"", "shape [4, 1, 3, 3]"]),
        ("name", Box::new(|ts| ts[3].0 = "3.bias".into()), vec!["\"3.bias\"", "not a parameter"]),
        ("missing", Box::new(|ts| drop(ts.remove(1))), vec!["\"0.bias\"", "missing"]),
        ("nan", Box::new(|ts| ts[2].1.data[5] = f32::NAN), vec!["\"2.weight\"", "non-finite", "index 5"]),
    ];
    for (name, edit, needles) in cases {
        let p = d.join(format!("{name}.safetensors"));
        params_file(&p, edit);
        let o = run(&["eval", "--checkpoint", s(&p)]);
        let line = fails(&o, &needles);
        assert!(line.contains(s(&p)), "{line}");
    }
}

#[test]
fn checkpoint_with_wrong_dtype() {
    let d = scratch("dtype");
    let p = d.join("f64.safetensors");
    let spec = cnn_as_mlp::Spec::parse(SMALL).unwrap();
    let net = cnn_as_mlp::Network::<f32>::new(&spec, cnn_as_mlp::Engine::Sparse);
    let bufs: Vec<(String, Vec<usize>, Vec<u8>)> = net
        .param_names()
        .into_iter()
        .map(|(n, shape)| {
            let len: usize = shape.iter().product();
            let width = if n == "2.bias" { 8 } else { 4 };
            (n, shape, vec![0u8; len * width])
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bufs
        .iter()
        .map(|(n, shape, b)| {
            let dt = if n == "2.bias" { safetensors::Dtype::F64 } else { safetensors::Dtype::F32 };
            (n.clone(), safetensors::tensor::TensorView::new(dt, shape.clone(), b).unwrap())
        })
        .collect();
    std::fs::write(&p, safetensors::serialize(views, None).unwrap()).unwrap();
    let o = run(&["eval", "--checkpoint", s(&p), "--model", SMALL]);
    fails(&o, &["\"2.bias\"", "dtype F64", "F32", s(&p)]);
}

#[test]
fn fashion_message_names_the_package_when_absent() {
    // Only checkable where the package is missing; elsewhere `fashion` must load.
    if std::path::Path::new(cnn_as_mlp::data::FASHION_DIR).exists() {
        return;
    }
    let o = run(&["train", "--data", "fashion", "--epochs", "1"]);
    fails(&o, &["apt-get install dataset-fashion-mnist"]);
}

#[test]
fn init_file_that_does_not_match_the_model() {
    let d = scratch("init");
    let p = d.join("p.safetensors");
    params_file(&p, Box::new(|ts| ts[1].1 = Tensor::zeros(&[5])));
    let out = d.join("run");
    let o = run(&["train", "--model", SMALL, "--init", s(&p), "--epochs", "1", "--out", s(&out)]);
    fails(&o, &[s(&p), "\"0.bias\"", "shape [5]"]);
    assert!(!out.exists());
    let o = run(&["train", "--model", SMALL, "--init", s(&d.join("absent.safetensors")), "--out", s(&out)]);
    fails(&o, &["absent.safetensors", "cannot read"]);
    assert!(!out.exists());
}

/// A misspelt data name is not taken for a directory silently: the message says no such directory exists
/// and names the nearest source; a path far from every name gets no suggestion.
#[test]
fn misspelt_data_name_says_no_such_directory() {
    let d = scratch("data-typo");
    let out = d.join("run");
    let o = run(&["train", "--model", SMALL, "--data", "fashon", "--epochs", "1", "--out", s(&out)]);
    fails(&o, &["--data \"fashon\"", "no such directory", "did you mean fashion?"]);
    let o = run(&["train", "--model", SMALL, "--data", s(&d.join("absent")), "--epochs", "1", "--out", s(&out)]);
    let line = fails(&o, &["absent", "no such directory", "mnist10k, fashion, cifar10"]);
    assert!(!line.contains("did you mean"), "{line}");
    assert!(!out.exists());
}

/// A bare word that is not a preset is an unknown preset with the nearest name, in every command that
/// takes --model.
#[test]
fn misspelt_preset_suggests_the_nearest() {
    let d = scratch("model-typo");
    let out = d.join("run");
    let o = run(&["train", "--model", "lenet", "--epochs", "1", "--out", s(&out)]);
    fails(
        &o,
        &["--model \"lenet\"", "unknown preset", "did you mean lenet5?", "lenet5, lenet5-1998, seed, cifar, vgg16"],
    );
    let o = run(&["show", "--model", "vgg61", "--layer", "0", "--out", s(&d.join("a.png"))]);
    fails(&o, &["did you mean vgg16?"]);
    let o = run(&["train", "--model", "resnet", "--epochs", "1", "--out", s(&out)]);
    let line = fails(&o, &["--model \"resnet\"", "unknown preset"]);
    assert!(!line.contains("did you mean"), "{line}");
    assert!(!out.exists());
}

/// A spec whose output is not one value per class is refused before training, with either loss (both
/// compare the outputs with the class as a one-hot target): a spec ending in maxpool(2) has 864 outputs.
#[test]
fn output_size_must_be_the_number_of_classes() {
    let d = scratch("n-out");
    let out = d.join("run");
    let pool = "1x28x28 > conv(6,5) > relu > maxpool(2)";
    let o = run(&["train", "--model", pool, "--epochs", "1", "--out", s(&out)]);
    fails(&o, &["6x12x12", "864 values", "10 classes", "dense(10)"]);
    let o =
        run(&["train", "--model", "1x28x28 > dense(12) > sigmoid", "--loss", "mse", "--epochs", "1", "--out", s(&out)]);
    fails(&o, &["12 values", "10 classes"]);
    assert!(!out.exists());
}

/// Every option of every command states its default in --help, unless it has none (a required value, a
/// file to read, a switch).
#[test]
fn help_states_every_default() {
    // (command, options without a default: required values, files to read, switches).
    let no_default: [(&str, &[&str]); 6] = [
        ("train", &["--init", "--resume", "--quiet", "--json"]),
        ("eval", &["--checkpoint", "--model", "--quiet", "--json"]),
        ("grad", &["--model", "--params", "--batch", "--out"]),
        ("show", &["--model", "--layer", "--out", "--node"]),
        ("compare", &["--model", "--replot"]),
        ("plot", &["--out"]),
    ];
    for (cmd, exempt) in no_default {
        let o = run(&[cmd, "--help"]);
        ok(&o);
        let text = stdout(&o);
        // clap wraps long help; join each option with its continuation lines.
        let mut options: Vec<String> = Vec::new();
        for line in text.lines() {
            let t = line.trim_start();
            if t.starts_with("--") || t.starts_with("-h") {
                options.push(t.to_string());
            } else if let Some(last) = options.last_mut() {
                last.push(' ');
                last.push_str(t);
            }
        }
        assert!(options.len() >= 2, "{cmd}: {text}");
        for opt in options {
            let name = opt.split([' ', ',']).next().unwrap_or("");
            if name == "-h" || exempt.contains(&name) {
                continue;
            }
            assert!(opt.contains("[default: "), "{cmd} --help: no default stated for {opt}");
        }
    }
}

/// The synopsis of each command in docs/commands.md (in a `text` block, the first line `cnn-as-mlp CMD` and
/// the indented lines that follow) names every option that the command's --help lists.
#[test]
fn synopses_list_every_flag() {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/commands.md")).unwrap();
    // The lines of the `text` blocks only: the `sh` blocks hold commands, not synopses.
    let (mut in_text, mut fenced, mut lines) = (false, false, Vec::new());
    for l in guide.lines() {
        if let Some(info) = l.trim_start().strip_prefix("```") {
            in_text = !fenced && info.trim() == "text";
            fenced = !fenced;
        } else if in_text {
            lines.push(l);
        }
    }
    for cmd in ["train", "eval", "grad", "show", "compare", "plot", "sweep"] {
        let start = lines
            .iter()
            .position(|l| l.strip_prefix("cnn-as-mlp ").is_some_and(|r| r.split_whitespace().next() == Some(cmd)))
            .unwrap_or_else(|| panic!("docs/commands.md has no synopsis of {cmd}"));
        let mut synopsis = lines[start].to_string();
        for l in &lines[start + 1..] {
            if !l.starts_with("   ") {
                break;
            }
            synopsis.push_str(l);
        }
        let help = stdout(&run(&[cmd, "--help"]));
        for flag in help.split_whitespace().filter(|w| w.starts_with("--") && w.len() > 2) {
            let flag = flag.trim_end_matches([',', '.', ':', ')', ';']);
            if flag == "--help" {
                continue;
            }
            assert!(
                synopsis.contains(&format!("{flag} ")) || synopsis.contains(&format!("{flag}]")),
                "docs/commands.md: the synopsis of {cmd} lacks {flag}: {synopsis}"
            );
        }
    }
}

/// A kernel cap that names no level (`CNN_AS_MLP_SIMD`, `cpu::SIMD_VAR`) stops the command before it trains,
/// naming the value and the accepted ones; a valid cap runs.
#[test]
fn unknown_kernel_cap_is_refused() {
    let d = scratch("simd-cap");
    write_idx_dir(&d, 20, 10);
    let out = d.join("run");
    let args = ["train", "--model", SMALL, "--data", s(&d), "--epochs", "1", "--quiet", "--out", s(&out)];
    let cmd = |cap: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cnn-as-mlp"))
            .args(args)
            .env("CNN_AS_MLP_SIMD", cap)
            .output()
            .expect("the binary runs")
    };
    fails(&cmd("avx1024"), &["CNN_AS_MLP_SIMD", "avx1024", "avx2", "portable"]);
    assert!(!out.exists(), "a run directory was created");
    let o = cmd("avx2");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.join("model.safetensors").exists());
}
