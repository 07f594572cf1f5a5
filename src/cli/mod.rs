//! The `cnn-as-mlp` command: `train`, `eval`, `grad`, `show`, `compare`.
//!
//! Every failure is one line on stderr, `error: …`, naming the file or value and what was wrong, and the
//! exit code is 2; no partial output file is left behind (outputs are written atomically).

mod compare;
mod draw;
mod eval;
mod grad;
mod show;
mod sweep;
mod train;

use clap::{Parser, Subcommand};

use cnn_as_mlp::checkpoint::CheckpointError;
use cnn_as_mlp::data::{DataError, Dataset, Source, Splits};
use cnn_as_mlp::loss::Loss;
use cnn_as_mlp::network::Engine;
use cnn_as_mlp::run::RunError;
use cnn_as_mlp::spec::{Spec, SpecError};

/// Train convolutional networks as multilayer perceptrons with sparse, weight-tied matrices.
#[derive(Parser, Debug)]
#[command(name = "cnn-as-mlp", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model; writes a run directory (checkpoint, state, metrics, plot).
    Train(train::TrainArgs),
    /// Accuracy, loss and confusion matrix of a checkpoint on a test set.
    Eval(eval::EvalArgs),
    /// Loss and gradients of one batch, to cross-check against PyTorch.
    Grad(grad::GradArgs),
    /// Picture of a layer's compiled sparse matrix, or of one input node's star.
    Show(show::ShowArgs),
    /// Time, memory and agreement of the sparse, direct and im2col formulations, layer by layer.
    Compare(compare::CompareArgs),
    /// A grid of training runs (models × engines × learning rates × seeds) run in parallel, with a summary.
    Sweep(sweep::SweepArgs),
}

/// A user-facing error: its Display is one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{0}")]
    Other(String),
}

impl CliError {
    fn other(s: impl Into<String>) -> Self {
        CliError::Other(s.into())
    }
}

/// Options shared by the subcommands.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Engine of the linear layers: sparse (tied sparse matrices), direct (direct convolution) or im2col.
    #[arg(long)]
    pub engine: Option<String>,
}

impl Common {
    fn engine(&self) -> Result<Engine, CliError> {
        parse_engine(self.engine.as_deref().unwrap_or("sparse"))
    }

    fn pool(&self) -> Result<rayon::ThreadPool, CliError> {
        let mut b = rayon::ThreadPoolBuilder::new();
        if let Some(n) = self.threads {
            if n == 0 {
                return Err(CliError::other("--threads 0: need at least one thread"));
            }
            b = b.num_threads(n);
        }
        b.build().map_err(|e| CliError::other(format!("cannot start the thread pool: {e}")))
    }
}

/// Writes an output file atomically ([`cnn_as_mlp::atomic`]); an I/O failure names the file.
fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), CliError> {
    cnn_as_mlp::atomic::write(path, bytes)
        .map_err(|e| CliError::other(format!("{}: cannot write: {e}", path.display())))
}

fn parse_engine(s: &str) -> Result<Engine, CliError> {
    Engine::from_name(s).ok_or_else(|| CliError::other(format!("--engine {s:?}: unknown engine")))
}

fn parse_loss(s: &str) -> Result<Loss, CliError> {
    Loss::from_name(s).ok_or_else(|| CliError::other(format!("--loss {s:?}: unknown loss (expected ce or mse)")))
}

/// Loads a data source, keeping the first `limit` images of each split.
fn load_data(name: &str, limit: Option<usize>) -> Result<Splits, CliError> {
    let mut s = Source::from_name(name).load()?;
    if let Some(n) = limit {
        s.train.truncate(n);
        s.test.truncate(n);
    }
    Ok(s)
}

/// Fails unless the data fits the spec: same input shape, labels below the number of outputs.
fn check_fit(spec: &Spec, data_name: &str, sets: &[&Dataset]) -> Result<(), CliError> {
    let k = spec.output()?.len();
    for d in sets {
        if d.shape != spec.input {
            return Err(CliError::other(format!(
                "model spec input {} does not match the data {data_name}, whose images are {}",
                spec.input, d.shape
            )));
        }
        if d.n_classes() > k {
            return Err(CliError::other(format!(
                "data {data_name} has labels up to {} but the model has {k} outputs",
                d.n_classes() - 1
            )));
        }
    }
    Ok(())
}

/// Refuses, before compiling anything, a network whose sparse matrices would not fit in memory: the sum
/// of [`cnn_as_mlp::tied::bytes::estimate_index_bytes`] over its conv, local and pool layers (sparse engine only)
/// against [`cnn_as_mlp::compare::default_memory_limit`] (half of `MemAvailable`).
fn check_index_fits(spec: &Spec, engine: Engine) -> Result<(), CliError> {
    use cnn_as_mlp::compare::human_bytes;
    use cnn_as_mlp::spec::Layer;
    use cnn_as_mlp::tied::bytes::estimate_index_bytes;
    if engine != Engine::Sparse {
        return Ok(());
    }
    let mut input = spec.input;
    let (mut total, mut largest) = (0usize, (0usize, 0usize));
    for (i, (layer, out)) in spec.layers.iter().zip(spec.output_shapes()?).enumerate() {
        if matches!(layer, Layer::Conv { .. } | Layer::Local { .. } | Layer::MaxPool { .. } | Layer::AvgPool { .. }) {
            let bytes = estimate_index_bytes(layer, input);
            total = total.saturating_add(bytes);
            largest = largest.max((bytes, i));
        }
        input = out;
    }
    let limit = cnn_as_mlp::compare::default_memory_limit();
    if total > limit {
        let (bytes, i) = largest;
        let preset = cnn_as_mlp::spec::PRESETS.iter().find(|(_, p)| Spec::parse(p).as_ref() == Ok(spec));
        let name = preset.map_or_else(|| format!("{} > …", spec.input), |(n, _)| n.to_string());
        return Err(CliError::other(format!(
            "model {name}: its compiled sparse matrices need about {total} bytes ({}) of index, more than the {limit} bytes ({}) allowed (half of the available memory); the largest is layer {i} `{}` with {bytes} bytes ({}); use --engine direct or --engine im2col",
            human_bytes(total),
            human_bytes(limit),
            spec.layers[i],
            human_bytes(bytes)
        )));
    }
    Ok(())
}

/// Parses the arguments, runs the command, prints errors; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Grad(a) => grad::run(a),
        Command::Show(a) => show::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Sweep(a) => sweep::run(a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", e.to_string().replace('\n', " "));
            2
        }
    }
}
