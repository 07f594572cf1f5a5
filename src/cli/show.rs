//! `cnn-as-mlp show`: a picture of a layer's compiled matrix, or the star of one input node; with `--export`,
//! the matrix itself in Matrix Market format and the parameter each nonzero copies ([`cnn_as_mlp::mtx`]).

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use super::common::{CliError, outln, write_file};
use super::draw::picture;
use cnn_as_mlp::atomic::Failure;
use cnn_as_mlp::budget;
use cnn_as_mlp::mtx;
use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::picture::LayerInfo;
use cnn_as_mlp::spec::Layer;
use cnn_as_mlp::tensor::Tensor;
use cnn_as_mlp::tied::TiedMatrix;

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// lenet5, lenet5-1998, seed, cifar, vgg16, or a model spec string [default: the checkpoint's].
    #[arg(long, allow_hyphen_values = true, required_unless_present = "checkpoint")]
    model: Option<String>,
    /// Draw the layer of this checkpoint (model.safetensors or a run directory): a pruned layer is drawn
    /// without its removed connections [default: none, the model as it compiles].
    #[arg(long, value_name = "FILE|RUN_DIR")]
    checkpoint: Option<PathBuf>,
    /// The layer (0-based position after the input shape; activations and pools count).
    #[arg(long, value_name = "I")]
    layer: usize,
    /// The PNG file to write.
    #[arg(long, value_name = "FILE.png", required_unless_present = "export")]
    out: Option<PathBuf>,
    /// Draw the star of input node K (column K of W and row K of Wᵀ) instead of the whole matrix.
    #[arg(long, value_name = "K", requires = "out")]
    node: Option<usize>,
    /// Write the layer's explicit matrix W (no bias: z = W·x + b, x flattened as C, H, W) to W.mtx in Matrix
    /// Market format (1-based `row col value`, the current f32 weight of each nonzero: the checkpoint's, else
    /// the initial weights `train` would start from with the same seed), and beside it W.params.csv: a header
    /// `row,col,tensor,index`, then one line per nonzero in the same order, rows and columns 0-based, tensor
    /// the PyTorch name of the weight it copies (`I.weight`) and index its flat index (`weight.flatten()`);
    /// `12+14` for a padded border that adds two taps; `const,` for a fixed entry (pools). Read them with
    /// scipy.io.mmread and numpy.loadtxt(..., delimiter=',', skiprows=1, dtype=str), Julia's MatrixMarket.mmread
    /// and CSV, or MATLAB's mmread and readtable. The library's `mtx` module documents the format and a
    /// numpy/scipy check of W·x against a convolution [default: none].
    #[arg(long, value_name = "W.mtx")]
    export: Option<PathBuf>,
    /// Seed of the initial weights written by --export without --checkpoint [default: the model's training
    /// seed, 0].
    #[arg(long, value_name = "N", requires = "export", conflicts_with = "checkpoint")]
    seed: Option<u64>,
    /// Largest side of the matrix drawing, or (with --node) the width of the two feature-map panels, in pixels.
    #[arg(long, value_name = "PX", default_value_t = 800)]
    size: usize,
}

/// Smallest and largest `--size`.
const SIZE_RANGE: (usize, usize) = (100, 4000);

pub fn run(a: ShowArgs) -> Result<(), CliError> {
    if a.size < SIZE_RANGE.0 || a.size > SIZE_RANGE.1 {
        return Err(CliError::other(format!(
            "--size {}: must be between {} and {} pixels",
            a.size, SIZE_RANGE.0, SIZE_RANGE.1
        )));
    }
    let checkpoint_file =
        a.checkpoint.as_ref().map(|p| if p.is_dir() { p.join(cnn_as_mlp::run::MODEL_FILE) } else { p.clone() });
    let inputs: Vec<&std::path::Path> = checkpoint_file.iter().map(|p| p.as_path()).collect();
    if let Some(out) = &a.out {
        super::common::check_output("--out", out, &inputs)?;
    }
    if let Some(export) = &a.export {
        let sources = params_path(export);
        super::common::check_output("--export", export, &inputs)?;
        super::common::check_output("--export", &sources, &inputs)?;
        // The picture and the export are three different files (by name, and by what the names point to).
        let same = |x: &std::path::Path, y: &std::path::Path| {
            x == y || std::fs::canonicalize(x).ok().is_some_and(|c| std::fs::canonicalize(y).ok() == Some(c))
        };
        if let Some(out) = &a.out
            && let Some(clash) = [export, &sources].into_iter().find(|f| same(out, f))
        {
            return Err(CliError::other(format!(
                "--out {}: is the file --export {} writes ({}); give the picture another name",
                out.display(),
                export.display(),
                clash.display()
            )));
        }
    }
    let file = match &a.checkpoint {
        Some(p) => {
            let path = if p.is_dir() { p.join(cnn_as_mlp::run::MODEL_FILE) } else { p.clone() };
            Some(cnn_as_mlp::checkpoint::Stored::read(&path)?)
        }
        None => None,
    };
    let spec = match (&file, &a.model) {
        (Some(f), m) => super::common::checkpoint_model(m.as_deref(), f)?,
        (None, Some(m)) => super::common::parse_model(m)?,
        (None, None) => return Err(CliError::other("name the model with --model, or give --checkpoint")),
    };
    let model =
        a.model.clone().or_else(|| file.as_ref().and_then(|f| f.metadata.get("spec").cloned())).unwrap_or_default();
    let n = spec.layers.len();
    if a.layer >= n {
        return Err(CliError::other(format!(
            "--layer {}: out of range, the model has {n} layers (0 to {})",
            a.layer,
            n.saturating_sub(1)
        )));
    }
    let layer = spec.layers[a.layer];
    let (kind, axes): (&str, Vec<&'static str>) = match layer {
        Layer::Conv { .. } => ("conv", vec!["o", "i", "ky", "kx"]),
        Layer::Local { .. } => ("local", vec!["o", "oy", "ox", "i", "ky", "kx"]),
        Layer::MaxPool { .. } | Layer::AvgPool { .. } => ("pool", Vec::new()),
        Layer::Dense { .. } => ("dense", vec!["o", "i"]),
        Layer::Act(_) => ("activation", Vec::new()),
    };
    budget::check(&spec, Engine::Sparse, budget::Use::BUILD)?;
    let masks = match &file {
        Some(f) => cnn_as_mlp::prune::read_masks(&spec, f)?,
        None => vec![None; spec.layers.len()],
    };
    let mut net = Network::<f32>::with_masks(&spec, Engine::Sparse, masks);
    if let Some(f) = &file {
        cnn_as_mlp::checkpoint::load_params(&mut net, f)?;
    } else if a.export.is_some() {
        let hyper = cnn_as_mlp::train::Hyper::preset(&model);
        cnn_as_mlp::init::init_params(&mut net, hyper.init, a.seed.unwrap_or(hyper.seed));
    }
    let Some(t) = net.linear_map(a.layer).and_then(|m| m.tied()) else {
        return Err(CliError::other(format!(
            "--layer {}: `{layer}` is {} {kind} layer and has no compiled sparse matrix (only conv, local, maxpool and avgpool layers have one, and dense layers pruned to at most 12% of their entries)",
            a.layer,
            if kind == "activation" { "an" } else { "a" }
        )));
    };
    let info = LayerInfo {
        index: a.layer,
        name: layer.to_string(),
        input: net.activation_shapes()[a.layer],
        output: net.activation_shapes()[a.layer + 1],
        weight_shape: net
            .linear_map(a.layer)
            .and_then(|m| m.param_shapes().first().cloned())
            .map_or_else(Vec::new, |w| if w.0 == "weight" { w.1 } else { Vec::new() }),
        axes,
    };
    if let Some(path) = &a.export {
        export(path, t, &net.params[a.layer], a.layer)?;
        outln!(
            "show: wrote {} and {} (layer {} `{layer}`: {}x{} matrix, {} nonzeros)",
            path.display(),
            params_path(path).display(),
            a.layer,
            t.shape().0,
            t.shape().1,
            t.nnz()
        );
    }
    let Some(out) = &a.out else { return Ok(()) };
    let png = match a.node {
        Some(k) if k >= t.shape().1 => {
            return Err(CliError::other(format!(
                "--node {k}: out of range, layer {} `{layer}` has {} inputs ({}), nodes 0 to {}",
                a.layer,
                t.shape().1,
                info.input,
                t.shape().1 - 1
            )));
        }
        Some(k) => picture::star_png(t, &info, k, a.size.max(600)),
        None => picture::matrix_png(t, &info, a.size),
    }
    .map_err(CliError::other)?;
    write_file(out, &png)?;
    outln!("show: wrote {} (layer {} `{layer}`, {} bytes)", out.display(), a.layer, png.len());
    Ok(())
}

/// `W.params.csv` beside `W.mtx` (`NAME.params.csv` for any other name).
fn params_path(mtx: &Path) -> PathBuf {
    let stem = match mtx.extension() {
        Some(e) if e == "mtx" => mtx.file_stem(),
        _ => mtx.file_name(),
    };
    let stem = stem.map_or_else(|| "W".into(), |s| s.to_string_lossy().into_owned());
    mtx.with_file_name(format!("{stem}.params.csv"))
}

/// Writes `path` (Matrix Market) and its `.params.csv`, each atomically.
fn export(path: &Path, t: &TiedMatrix, params: &[Tensor<f32>], layer: usize) -> Result<(), CliError> {
    if t.nnz() > mtx::MAX_EXPORT_NNZ {
        return Err(CliError::other(format!(
            "--export {}: layer {layer} has {} nonzeros, more than the {} an export writes (about 30 bytes of text each)",
            path.display(),
            t.nnz(),
            mtx::MAX_EXPORT_NNZ
        )));
    }
    let sources = params_path(path);
    for p in [path, sources.as_path()] {
        if p.is_dir() {
            return Err(CliError::other(format!("--export {}: {} is a directory", path.display(), p.display())));
        }
    }
    // A pool's matrix reads no parameter: empty θ, every entry a constant.
    let theta: &[f32] = if t.n_params() > 0 { &params[0].data } else { &[] };
    let write = |p: &Path, fill: &dyn Fn(&mut BufWriter<File>) -> std::io::Result<()>| {
        cnn_as_mlp::atomic::write_with(p, |tmp| {
            let mut w = BufWriter::new(File::create(tmp)?);
            fill(&mut w)?;
            w.flush()
        })
        .map_err(|e| {
            let e = match e {
                Failure::Fill(e) | Failure::Io(e) => e,
            };
            CliError::other(format!("{}: cannot write: {e}", p.display()))
        })
    };
    write(path, &|w| mtx::write_mtx(w, t, theta))?;
    let tensor = format!("{layer}.weight");
    write(&sources, &|w| mtx::write_sources(w, t, &tensor))
}
