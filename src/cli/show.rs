//! `cnn-as-mlp show`: a picture of a layer's compiled matrix, or the star of one input node.

use std::path::PathBuf;

use super::common::{CliError, outln, write_file};
use super::draw::picture;
use cnn_as_mlp::budget;
use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::picture::LayerInfo;
use cnn_as_mlp::spec::Layer;

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
    #[arg(long, value_name = "FILE.png")]
    out: PathBuf,
    /// Draw the star of input node K (column K of W and row K of Wᵀ) instead of the whole matrix.
    #[arg(long, value_name = "K")]
    node: Option<usize>,
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
    super::common::check_output("--out", &a.out, &inputs)?;
    let file = match &a.checkpoint {
        Some(p) => {
            let path = if p.is_dir() { p.join(cnn_as_mlp::run::MODEL_FILE) } else { p.clone() };
            Some(cnn_as_mlp::checkpoint::Stored::read(&path)?)
        }
        None => None,
    };
    let model = match (&a.model, file.as_ref().and_then(|f| f.metadata.get("spec"))) {
        (Some(m), _) => m.clone(),
        (None, Some(s)) => s.clone(),
        (None, None) => {
            let path = file.as_ref().map_or_else(String::new, |f| f.path.display().to_string());
            return Err(CliError::other(format!("{path}: has no \"spec\" metadata; name the model with --model")));
        }
    };
    let spec = super::common::parse_model(&model)?;
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
    let mut net = Network::<f32>::new(&spec, Engine::Sparse);
    if let Some(f) = &file {
        cnn_as_mlp::checkpoint::load_params(&mut net, f)?;
        cnn_as_mlp::prune::load_masks(&mut net, f)?;
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
    write_file(&a.out, &png)?;
    outln!("show: wrote {} (layer {} `{layer}`, {} bytes)", a.out.display(), a.layer, png.len());
    Ok(())
}
