//! What the subcommands share: the one-line error, the common options, the closed choices, the model and
//! data parsers, the atomic writer and the printing macro.

use std::path::Path;

use cnn_as_mlp::budget::BudgetError;
use cnn_as_mlp::checkpoint::CheckpointError;
use cnn_as_mlp::data::{DataError, Dataset, ImageOptions, Source, Splits};
use cnn_as_mlp::loss::Loss;
use cnn_as_mlp::network::Engine;
use cnn_as_mlp::optim::{DecayMode, OptimizerKind};
use cnn_as_mlp::run::RunError;
use cnn_as_mlp::spec::{Spec, SpecError};
use cnn_as_mlp::train::LrSchedule;

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
    #[error(transparent)]
    Budget(#[from] BudgetError),
    #[error("{0}")]
    Other(String),
}

impl CliError {
    pub(super) fn other(s: impl Into<String>) -> Self {
        CliError::Other(s.into())
    }
}

/// The most worker threads a command starts (results never depend on the count; this machine has a
/// few cores, and starting tens of thousands of threads takes minutes).
pub const MAX_THREADS: usize = 256;

/// How much `train` and `eval` print.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Output {
    /// Print only the final summary line.
    #[arg(long, conflicts_with = "json")]
    pub quiet: bool,
    /// Print only the summary, as one JSON object on one line.
    #[arg(long)]
    pub json: bool,
}

/// Options shared by the subcommands.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Worker threads, 1 to 256 [default: all cores]. Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Engine of the linear layers: sparse (tied sparse matrices), direct (direct convolution) or im2col
    /// [default: sparse].
    #[arg(long)]
    pub engine: Option<EngineArg>,
}

impl Common {
    pub(super) fn engine(&self) -> Engine {
        self.engine.map_or_else(Engine::default, Engine::from)
    }

    pub(super) fn pool(&self) -> Result<rayon::ThreadPool, CliError> {
        let mut b = rayon::ThreadPoolBuilder::new();
        if let Some(n) = self.threads {
            if n == 0 {
                return Err(CliError::other("--threads 0: need at least one thread"));
            }
            if n > MAX_THREADS {
                return Err(CliError::other(format!("--threads {n}: at most {MAX_THREADS}")));
            }
            b = b.num_threads(n);
        }
        b.build().map_err(|e| CliError::other(format!("cannot start the thread pool: {e}")))
    }
}

/// `parameter "1.weight" holds inf at flat index 3`: the first parameter value of `net` that is not
/// finite, if any.
pub(super) fn first_non_finite(net: &cnn_as_mlp::network::Network<f32>) -> Option<String> {
    cnn_as_mlp::checkpoint::named(net, &net.params, "").into_iter().find_map(|(name, t)| {
        let (i, v) = t.data.iter().enumerate().find(|(_, v)| !v.is_finite())?;
        Some(format!("parameter {name:?} holds {v} at flat index {i}"))
    })
}

/// The names a training run writes into its directory ([`cnn_as_mlp::run`]).
const RUN_NAMES: [&str; 4] = [
    cnn_as_mlp::run::MODEL_FILE,
    cnn_as_mlp::run::STATE_FILE,
    cnn_as_mlp::run::METRICS_FILE,
    cnn_as_mlp::run::PLOT_FILE,
];

/// Device and inode of the file `p` names (following links), if it exists.
fn file_id(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// Checks an output file before any work: `flag` (`--out`) may name a new file or a regular file, not one
/// of the command's `inputs` (the same file by device and inode, whatever the names) and not one of a
/// training run's own files (a run's checkpoint, state, metrics or curves).
pub(super) fn check_output(flag: &str, out: &Path, inputs: &[&Path]) -> Result<(), CliError> {
    let shown = out.display();
    cnn_as_mlp::atomic::check_target(out).map_err(|e| CliError::other(format!("{flag} {shown}: {e}")))?;
    if let Some(id) = file_id(out)
        && let Some(input) = inputs.iter().find(|i| file_id(i) == Some(id))
    {
        return Err(CliError::other(format!(
            "{flag} {shown}: is the same file as the input {}; refusing to overwrite an input",
            input.display()
        )));
    }
    let parent = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if RUN_NAMES.contains(&name) && cnn_as_mlp::run::is_run_dir(parent) {
        return Err(CliError::other(format!(
            "{flag} {shown}: is the {name} of the training run in {}; write elsewhere",
            parent.display()
        )));
    }
    Ok(())
}

/// Fails unless a file can be created in the directory `dir` (tried with a temporary file, removed at
/// once): so a read-only or missing output directory is refused before long work, not after it.
pub(super) fn check_writable_dir(flag: &str, dir: &Path) -> Result<(), CliError> {
    let probe = dir.join(format!(".tmp{}.probe", std::process::id()));
    let made = std::fs::OpenOptions::new().write(true).create_new(true).open(&probe);
    match made {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(CliError::other(format!("{flag} {}: cannot write there: {e}", dir.display()))),
    }
}

/// Writes an output file atomically ([`cnn_as_mlp::atomic`]); an I/O failure names the file.
pub(super) fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), CliError> {
    cnn_as_mlp::atomic::write(path, bytes)
        .map_err(|e| CliError::other(format!("{}: cannot write: {e}", path.display())))
}

/// The names `--data` accepts besides a directory.
const DATA_NAMES: [&str; 3] = ["mnist10k", "fashion", "cifar10"];

/// A closed choice of the command line: a `clap::ValueEnum` (clap lists its names in `--help`, refuses
/// others and suggests the nearest) that mirrors a library enum, variant for variant, under the names the
/// library gives them (`choices_keep_the_library_names` checks).
macro_rules! choice {
    ($(#[$doc:meta])* $arg:ident => $lib:ident { $($variant:ident = $name:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $arg {
            $(#[value(name = $name)] $variant),+
        }

        impl From<$arg> for $lib {
            fn from(a: $arg) -> $lib {
                match a {
                    $($arg::$variant => $lib::$variant),+
                }
            }
        }
    };
}

choice!(
    /// `--engine`.
    EngineArg => Engine { Sparse = "sparse", Direct = "direct", Im2col = "im2col" }
);
choice!(
    /// `--loss`.
    LossArg => Loss { CrossEntropy = "ce", HalfSquared = "mse" }
);
choice!(
    /// `--optimizer`.
    OptimizerArg => OptimizerKind { Sgd = "sgd", Adam = "adam" }
);
choice!(
    /// `--lr-schedule`.
    ScheduleArg => LrSchedule { Constant = "constant", Cosine = "cosine" }
);
choice!(
    /// `--decay-mode`.
    DecayArg => DecayMode { PerParameter = "per-parameter", Expanded = "expanded" }
);

/// Levenshtein distance between two strings, counted in chars.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diag + usize::from(ca != cb));
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// ` (did you mean X?)` for the nearest of `choices` within an edit distance of 2 (1 for words of up to 3
/// chars), else the empty string.
pub(super) fn did_you_mean(word: &str, choices: &[&str]) -> String {
    let limit = if word.chars().count() <= 3 { 1 } else { 2 };
    choices
        .iter()
        .map(|c| (edit_distance(&word.to_lowercase(), c), *c))
        .filter(|&(d, _)| d <= limit)
        .min()
        .map_or_else(String::new, |(_, c)| format!(" (did you mean {c}?)"))
}

/// Parses `--model`: a preset name or a spec string. A bare word that is not a preset is reported as an
/// unknown preset, with the nearest preset name when one is close.
/// The model of a checkpoint command: the checkpoint's `spec` metadata, or `--model` when the checkpoint
/// names none. Both given must be the same network (compared parsed), else one line naming both: a
/// checkpoint is never read as another network.
pub(super) fn checkpoint_model(flag: Option<&str>, file: &cnn_as_mlp::checkpoint::Stored) -> Result<Spec, CliError> {
    let stored = file.metadata.get("spec");
    match (flag, stored) {
        (Some(m), Some(s)) => {
            let (given, theirs) = (parse_model(m)?, parse_model(s)?);
            if given != theirs {
                return Err(CliError::other(format!(
                    "--model {m:?}: {} was trained as {s:?}, another network; leave --model out to use the checkpoint's",
                    file.path.display()
                )));
            }
            Ok(theirs)
        }
        (Some(m), None) => parse_model(m),
        (None, Some(s)) => parse_model(s),
        (None, None) => Err(CliError::other(format!(
            "{}: has no \"spec\" metadata; name the model with --model",
            file.path.display()
        ))),
    }
}

pub(super) fn parse_model(s: &str) -> Result<Spec, CliError> {
    let word = !s.trim().is_empty() && s.trim().chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let looks_like_shape = s.trim().split('x').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if word && !looks_like_shape && cnn_as_mlp::spec::preset(s).is_none() {
        let names: Vec<&str> = cnn_as_mlp::spec::PRESETS.iter().map(|(n, _)| *n).collect();
        return Err(CliError::other(format!(
            "--model {s:?}: unknown preset{}; expected {} or a model spec string such as \"1x28x28 > conv(6,5) > relu > dense(10)\"",
            did_you_mean(s.trim(), &names),
            names.join(", ")
        )));
    }
    Ok(Spec::parse(s)?)
}

/// Loaded data, cut to the requested sizes, and its number of classes before the cut.
pub(super) struct Loaded {
    pub(super) splits: Splits,
    /// The number of class names when the data names them, else the largest label of both full splits
    /// plus one.
    pub(super) n_classes: usize,
}

/// Loads a data source, keeping the first `train_limit` training and `test_limit` test images; an image
/// folder is decoded to `images` (the model's input shape, resized or not). A name that is neither a known
/// source nor an existing path is refused, with the nearest source name.
pub(super) fn load_data(
    name: &str,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
    images: &ImageOptions,
) -> Result<Loaded, CliError> {
    let source = Source::from_name(name);
    if let Source::Dir(d) = &source
        && !d.exists()
    {
        return Err(CliError::other(format!(
            "--data {name:?}: no such directory{}; expected mnist10k, fashion, cifar10, or a directory of IDX or CIFAR-10 binary files or an image folder",
            did_you_mean(name, &DATA_NAMES)
        )));
    }
    let mut s = source.load_with(images)?;
    let n_classes = match &s.train.classes {
        Some(names) => names.len(),
        None => s.train.n_classes().max(s.test.n_classes()),
    };
    if let Some(n) = train_limit {
        s.train.truncate(n);
    }
    if let Some(n) = test_limit {
        s.test.truncate(n);
    }
    Ok(Loaded { splits: s, n_classes })
}

/// Fails unless the data fits the spec: same input shape, and as many outputs as the data has classes
/// (both losses compare the outputs with a one-hot target or a class index: a spec ending in
/// `maxpool(2)` would otherwise train over hundreds of "classes").
pub(super) fn check_fit(spec: &Spec, data_name: &str, n_classes: usize, sets: &[&Dataset]) -> Result<(), CliError> {
    let out = spec.output()?;
    let k = out.len();
    if k != n_classes {
        return Err(CliError::other(format!(
            "model output {out} has {k} values but data {data_name} has {n_classes} classes; end the spec with dense({n_classes})"
        )));
    }
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

/// Prints a line on stdout, ignoring a closed pipe (`train … | head -1`): output is a report, and losing
/// its reader must not stop a run or lose its files. Never panics.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stdout().lock(), "{}", $crate::cli::common::printable(&line));
    }};
}
pub(crate) use outln;

/// Writes `line` and a newline to stderr, ignoring a failure (a full device, a closed stream): an error
/// that cannot be shown still exits 2, never panics.
pub(crate) fn errln(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{}", printable(line));
}

/// `line` with its control characters escaped (`\n`, `\u{1b}`): a path or class name that holds a newline
/// or a terminal escape is printed as what it is, on the one line it belongs to.
pub(crate) fn printable(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.chars().any(char::is_control) {
        return line.into();
    }
    line.chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    /// Control characters are escaped, everything else kept: a newline in a path stays on its line, an ANSI
    /// escape is shown, not obeyed.
    #[test]
    fn printable_escapes_control_characters_only() {
        assert_eq!(printable("runs/a b/é"), "runs/a b/é");
        assert_eq!(printable("runs/a\nb"), "runs/a\\nb");
        assert_eq!(printable("\u{1b}[31mcat"), "\\u{1b}[31mcat");
    }

    /// Each choice converts to the library's variant of the same name.
    #[test]
    fn choices_keep_the_library_names() {
        fn check<A: ValueEnum + Copy, L: From<A>>(name: fn(L) -> &'static str) {
            for a in A::value_variants() {
                assert_eq!(a.to_possible_value().unwrap().get_name(), name(L::from(*a)));
            }
        }
        check::<EngineArg, Engine>(Engine::name);
        check::<LossArg, Loss>(Loss::name);
        check::<OptimizerArg, OptimizerKind>(OptimizerKind::name);
        check::<ScheduleArg, LrSchedule>(LrSchedule::name);
        check::<DecayArg, DecayMode>(DecayMode::name);
        assert_eq!(EngineArg::value_variants().len(), Engine::ALL.len());
    }
}
