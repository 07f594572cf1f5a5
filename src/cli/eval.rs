//! `cnn-as-mlp eval`.

use std::path::PathBuf;

use super::{CliError, Common, check_fit, load_data, outln, parse_loss};
use cnn_as_mlp::budget;
use cnn_as_mlp::checkpoint::{self, Stored};
use cnn_as_mlp::network::Network;
use cnn_as_mlp::spec::Spec;
use cnn_as_mlp::train::{Hyper, evaluate};

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A checkpoint (model.safetensors of a run, or parameters named like the model's).
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Test data: mnist10k, fashion, cifar10 or a directory (default: the checkpoint's, else mnist10k).
    #[arg(long)]
    data: Option<String>,
    /// The model, when the checkpoint does not name it in its metadata.
    #[arg(long, allow_hyphen_values = true)]
    model: Option<String>,
    /// ce or mse (default: the checkpoint's, else the model's).
    #[arg(long)]
    loss: Option<String>,
    /// Use only the first N test images.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: EvalArgs) -> Result<(), CliError> {
    let engine = a.common.engine()?;
    let pool = a.common.pool()?;
    pool.install(|| {
        let file = Stored::read(&a.checkpoint)?;
        let model = match (&a.model, file.metadata.get("spec")) {
            (Some(m), _) => m.clone(),
            (None, Some(s)) => s.clone(),
            (None, None) => {
                return Err(CliError::other(format!(
                    "{}: has no \"spec\" metadata; name the model with --model",
                    a.checkpoint.display()
                )));
            }
        };
        let spec = Spec::parse(&model)?;
        let loss = match (&a.loss, file.metadata.get("loss")) {
            (Some(l), _) => parse_loss(l)?,
            (None, Some(l)) => parse_loss(l)?,
            (None, None) => Hyper::preset(&model).loss,
        };
        let data_name =
            a.data.clone().or_else(|| file.metadata.get("data").cloned()).unwrap_or_else(|| "mnist10k".into());
        if a.limit == Some(0) {
            return Err(CliError::other("--limit 0: must be at least 1 (an evaluation of no image has no accuracy)"));
        }
        let data = load_data(&data_name, a.limit)?;
        check_fit(&spec, &data_name, &[&data.test])?;
        budget::check(&spec, engine, budget::Use::eval(data.test.len()))?;
        let mut net = Network::<f32>::new(&spec, engine);
        checkpoint::load_params(&mut net, &file)?;
        let ev = evaluate(&mut net, &data.test, loss, 1000);
        outln!(
            "eval: checkpoint={} data={data_name} n={} loss={:.6} acc={:.4}",
            a.checkpoint.display(),
            ev.n,
            ev.loss,
            ev.acc
        );
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
