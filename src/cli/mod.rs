//! The `cnn-as-mlp` command: `train`, `eval`, `grad`, `show`, `compare`, `plot`.
//!
//! Every failure is one line on stderr, `error: …`, naming the file or value and what was wrong, and the
//! exit code is 2; no partial output file is left behind (outputs are written atomically).

mod common;
mod compare;
mod draw;
mod env;
mod eval;
mod grad;
mod plot;
mod show;
mod sweep;
mod train;

use clap::{Parser, Subcommand};
use common::errln;

/// Train convolutional networks as multilayer perceptrons with sparse, weight-tied matrices.
#[derive(Parser, Debug)]
#[command(name = "cnn-as-mlp", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model; writes a run directory (checkpoint, state, metrics, plot).
    Train(Box<train::TrainArgs>),
    /// Accuracy, loss and confusion matrix of a checkpoint on a test set.
    Eval(eval::EvalArgs),
    /// Loss and gradients of one batch, to cross-check against PyTorch.
    Grad(grad::GradArgs),
    /// Picture of a layer's compiled sparse matrix, or of one input node's star.
    Show(show::ShowArgs),
    /// Time, memory and agreement of the sparse, direct and im2col formulations, layer by layer.
    Compare(compare::CompareArgs),
    /// The curves of several runs overlaid in one PNG, each labelled by what differs between the runs.
    Plot(plot::PlotArgs),
    /// A grid of training runs (models × engines × learning rates × seeds) run in parallel, with a summary.
    Sweep(sweep::SweepArgs),
}

/// The longest error line printed, in chars: a message quoting a huge input (a 7 MB spec) is cut in the
/// middle.
const MAX_ERROR_CHARS: usize = 2000;

/// An error message as one printable line: line breaks become spaces, other control characters (ANSI
/// escapes in a path or a class name) are shown escaped, and a line longer than [`MAX_ERROR_CHARS`] is
/// cut in the middle with a note of how much was left out.
pub(crate) fn one_line(text: &str) -> String {
    let clean = common::printable(&text.replace(['\n', '\r'], " ")).into_owned();
    let n = clean.chars().count();
    if n <= MAX_ERROR_CHARS {
        return clean;
    }
    let half = MAX_ERROR_CHARS / 2;
    let head: String = clean.chars().take(half).collect();
    let tail: String = clean.chars().skip(n - half).collect();
    format!("{head} […{} chars left out…] {tail}", n - 2 * half)
}

/// Parses the arguments, runs the command, prints errors; returns the exit code. A command-line error is
/// one line too (clap's own first line, then where to find help); `--help` and `--version` print as usual.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return e.exit_code();
            }
            // clap's error, on one line: its first paragraph (the error and, for missing arguments, their
            // names; for a closed choice, the possible values) and its tip (the nearest value), without the
            // usage and the pointer to --help.
            let text = e.to_string();
            let words: Vec<&str> = text
                .split("\n\n")
                .enumerate()
                .filter(|(i, p)| *i == 0 || p.trim_start().starts_with("tip:"))
                .flat_map(|(_, p)| p.split_whitespace())
                .collect();
            let line = words.join(" ");
            let line = if line.starts_with("error:") { line } else { format!("error: {line}") };
            errln(&format!("{line} (try --help)"));
            return 2;
        }
    };
    // The environment, turned into the library's settings; a value it cannot use is refused before anything runs.
    if let Err(e) = env::apply() {
        errln(&format!("error: {e}"));
        return 2;
    }
    let result = match cli.command {
        Command::Train(a) => train::run(*a),
        Command::Eval(a) => eval::run(a),
        Command::Grad(a) => grad::run(a),
        Command::Show(a) => show::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Sweep(a) => sweep::run(a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            errln(&format!("error: {}", one_line(&e.to_string())));
            2
        }
    }
}
