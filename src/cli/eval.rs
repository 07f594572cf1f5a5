//! `cnn-as-mlp eval`.

use std::path::PathBuf;

use super::common::{CliError, Common, LossArg, check_fit, load_data, outln};
use cnn_as_mlp::budget;
use cnn_as_mlp::checkpoint::{self, Stored};
use cnn_as_mlp::loss::Loss;
use cnn_as_mlp::network::Network;
use cnn_as_mlp::train::{Hyper, evaluate};

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A checkpoint (model.safetensors of a run, or parameters named like the model's), or a run
    /// directory (its model.safetensors is read).
    #[arg(long, value_name = "FILE|RUN_DIR")]
    checkpoint: PathBuf,
    /// Test data: mnist10k, fashion, cifar10 or a directory (IDX, CIFAR-10 binary or an image folder, whose
    /// test/ or val/ split is read) [default: the checkpoint's, else mnist10k].
    #[arg(long)]
    data: Option<String>,
    /// Resize image-folder images of another size than the model's input (bilinear) instead of refusing
    /// them [default: as the run was trained, else off].
    #[arg(long)]
    resize: bool,
    /// The model, when the checkpoint does not name it in its metadata.
    #[arg(long, allow_hyphen_values = true)]
    model: Option<String>,
    /// ce or mse [default: the checkpoint's, else the model's].
    #[arg(long)]
    loss: Option<LossArg>,
    /// Use only the first N test images [default: all].
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    #[command(flatten)]
    out: super::common::Output,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: EvalArgs) -> Result<(), CliError> {
    let engine = a.common.engine();
    let pool = a.common.pool()?;
    pool.install(|| {
        let path =
            if a.checkpoint.is_dir() { a.checkpoint.join(cnn_as_mlp::run::MODEL_FILE) } else { a.checkpoint.clone() };
        let file = Stored::read(&path)?;
        let spec = super::common::checkpoint_model(a.model.as_deref(), &file)?;
        let model = a.model.clone().or_else(|| file.metadata.get("spec").cloned()).unwrap_or_default();
        let loss = match (&a.loss, file.metadata.get("loss")) {
            (Some(l), _) => Loss::from(*l),
            (None, Some(l)) => Loss::from_name(l).ok_or_else(|| {
                CliError::other(format!("{}: metadata \"loss\" is {l:?}, expected ce or mse", path.display()))
            })?,
            (None, None) => Hyper::preset(&model).loss,
        };
        let data_name =
            a.data.clone().or_else(|| file.metadata.get("data").cloned()).unwrap_or_else(|| "mnist10k".into());
        if a.limit == Some(0) {
            return Err(CliError::other("--limit 0: must be at least 1 (an evaluation of no image has no accuracy)"));
        }
        let resize = a.resize || file.metadata.get("resize").is_some_and(|v| v == "true");
        let images = cnn_as_mlp::data::ImageOptions {
            shape: Some(spec.input),
            resize,
            limit: Some(1),
            test_limit: a.limit,
        };
        let loaded = load_data(&data_name, None, a.limit, &images)?;
        let mut data = loaded.splits;
        // A model trained on standardised inputs is evaluated on the same standardisation.
        data.test
            .set_standardize(cnn_as_mlp::run::normalize_of(&file)?)
            .map_err(|e| CliError::other(format!("{}: {e}", path.display())))?;
        budget::check(&spec, engine, budget::Use::eval(data.test.len()))?;
        check_fit(&spec, &data_name, loaded.n_classes, &[&data.test])?;
        // A pruned checkpoint's layers are built without the removed connections (same outputs, less work).
        let masks = cnn_as_mlp::prune::read_masks(&spec, &file)?;
        let mut net = Network::<f32>::with_masks(&spec, engine, masks);
        checkpoint::load_params(&mut net, &file)?;
        if let Some(at) = super::common::first_non_finite(&net) {
            return Err(CliError::other(format!(
                "{}: {at}; a diverged model has no accuracy (nothing evaluated)",
                path.display()
            )));
        }
        let ev = evaluate(&mut net, &data.test, loss, 1000);
        if !ev.loss.is_finite() {
            return Err(CliError::other(format!(
                "{}: the model's outputs on {data_name} are not finite (loss {}): its values overflow f32, so no accuracy is reported",
                path.display(),
                ev.loss
            )));
        }
        let names = class_names(&data_name, &data.test, ev.confusion.len());
        // Per class: (name, test images of the class, correctly classified share).
        let per_class: Vec<(String, usize, f64)> = ev
            .confusion
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let n: usize = row.iter().sum();
                (names[i].clone(), n, if n == 0 { f64::NAN } else { row[i] as f64 / n as f64 })
            })
            .collect();
        if a.out.json {
            let classes: Vec<serde_json::Value> = per_class
                .iter()
                .map(|(name, n, acc)| serde_json::json!({ "class": name, "n": n, "acc": acc.is_finite().then_some(*acc) }))
                .collect();
            let v = serde_json::json!({
                "checkpoint": path.display().to_string(),
                "data": data_name,
                "n": ev.n,
                "loss": ev.loss,
                "acc": ev.acc,
                "per_class": classes,
                "confusion": ev.confusion,
            });
            outln!("{v}");
            return Ok(());
        }
        outln!("eval: checkpoint={} data={data_name} n={} loss={:.6} acc={:.4}", path.display(), ev.n, ev.loss, ev.acc);
        if a.out.quiet {
            return Ok(());
        }
        let nw = names.iter().map(|n| n.chars().count()).max().unwrap_or(1).max(5);
        outln!("per-class accuracy:");
        for (i, (name, n, acc)) in per_class.iter().enumerate() {
            outln!("{i:>3} {name:<nw$} {acc:.4} (n={n})");
        }
        outln!("confusion matrix (rows: true class, columns: predicted class):");
        let k = ev.confusion.len();
        let w = ev.confusion.iter().flatten().map(|c| c.to_string().len()).max().unwrap_or(1).max(k.to_string().len());
        let header: String = (0..k).map(|j| format!(" {j:>w$}")).collect();
        outln!("{:>w$} {header}", "");
        for (i, row) in ev.confusion.iter().enumerate() {
            let cells: String = row.iter().map(|c| format!(" {c:>w$}")).collect();
            outln!("{i:>w$} {cells}");
        }
        Ok(())
    })
}

/// Fashion-MNIST's class names, label 0 to 9 (Xiao, Rasul and Vollgraf 2017).
pub const FASHION_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// The names of `k` classes: the data's own (CIFAR-10's `batches.meta.txt`), Fashion-MNIST's ten,
/// else the label itself (the MNIST digits name themselves).
fn class_names(data_name: &str, data: &cnn_as_mlp::data::Dataset, k: usize) -> Vec<String> {
    (0..k)
        .map(|i| match (&data.classes, data_name) {
            (Some(c), _) if i < c.len() => c[i].clone(),
            (_, "fashion") if i < FASHION_CLASSES.len() => FASHION_CLASSES[i].to_string(),
            _ => i.to_string(),
        })
        .collect()
}
