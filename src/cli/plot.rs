//! `cnn-as-mlp plot`: the curves of several runs overlaid, each run labelled by what differs between
//! them (read from the runs' metadata: model, data, engine, optimizer, learning rate, seed, …).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::common::{CliError, outln, write_file};
use cnn_as_mlp::checkpoint::Stored;
use cnn_as_mlp::optim::OptimizerKind;
use cnn_as_mlp::run::{self, METRICS_FILE, MODEL_FILE, RunConfig, STATE_FILE};
use cnn_as_mlp::train::EpochMetrics;

#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// Run directories written by `train` (one or more; a run still training is read as it stands).
    #[arg(value_name = "RUN_DIR", required = true)]
    runs: Vec<PathBuf>,
    /// The PNG file to write (atomically).
    #[arg(long, value_name = "FILE.png")]
    out: PathBuf,
}

/// Metadata keys that say where a run is (or check its content), not what it is.
const POSITION_KEYS: [&str; 5] = ["format", "epoch", "step", "spec", cnn_as_mlp::checkpoint::DIGEST_KEY];

/// The order in which settings are named in labels; other keys follow alphabetically.
const KEY_ORDER: [&str; 18] = [
    "model",
    "data",
    "engine",
    "optimizer",
    "lr",
    "lr_schedule",
    "momentum",
    "weight_decay",
    "decoupled_wd",
    "decay_mode",
    "batch",
    "epochs",
    "seed",
    "loss",
    "init",
    "limit",
    "test_limit",
    "prune",
];

/// One run as plotted: its directory, settings (metadata key → value) and metrics.
struct Plotted {
    dir: PathBuf,
    settings: BTreeMap<String, String>,
    metrics: Vec<EpochMetrics>,
}

pub fn run(a: PlotArgs) -> Result<(), CliError> {
    // Every file of every run given is an input: the plot never replaces one of them.
    let files: Vec<PathBuf> =
        a.runs.iter().flat_map(|d| [MODEL_FILE, STATE_FILE, METRICS_FILE, run::PLOT_FILE].map(|n| d.join(n))).collect();
    let inputs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    super::common::check_output("--out", &a.out, &inputs)?;
    let runs = a.runs.iter().map(|d| read_run(d)).collect::<Result<Vec<_>, _>>()?;
    let (labels, common) = labels(&runs);
    let common_text: Vec<String> = common.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let title = match runs.len() {
        1 => format!("run {}", dir_name(&runs[0].dir)),
        n => format!("{n} runs"),
    };
    let mut notes = Vec::new();
    if !common_text.is_empty() {
        notes.push(format!(
            "{}: {}",
            if runs.len() == 1 { "settings" } else { "same in every run" },
            common_text.join(" ")
        ));
    }
    let series: Vec<(String, Vec<EpochMetrics>)> =
        labels.iter().cloned().zip(runs.iter().map(|r| r.metrics.clone())).collect();
    let png = super::draw::curves::runs_png(&series, &title, &notes)
        .map_err(|problem| CliError::other(format!("{}: {problem}", a.out.display())))?;
    write_file(&a.out, &png)?;
    outln!("plot: {} run(s) -> {}", runs.len(), a.out.display());
    for (r, l) in runs.iter().zip(&labels) {
        outln!("  {}: {l}", r.dir.display());
    }
    if !common_text.is_empty() {
        outln!("  same in every run: {}", common_text.join(" "));
    }
    Ok(())
}

fn dir_name(dir: &Path) -> String {
    dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Reads what a plot needs from a run directory, refusing anything that is not a run with at least one
/// completed epoch.
fn read_run(dir: &Path) -> Result<Plotted, CliError> {
    if !dir.exists() {
        return Err(CliError::other(format!("{}: no such run directory", dir.display())));
    }
    if !dir.is_dir() {
        return Err(CliError::other(format!(
            "{}: not a run directory (give the directory train wrote, e.g. runs/lenet5-…)",
            dir.display()
        )));
    }
    if !dir.join(MODEL_FILE).is_file() {
        return Err(CliError::other(format!(
            "{}: holds no {MODEL_FILE}: not a run directory, or a run that stopped before its first checkpoint",
            dir.display()
        )));
    }
    let model = Stored::read(&dir.join(MODEL_FILE))?;
    let cfg = RunConfig::from_metadata(&model)?;
    let mut settings: BTreeMap<String, String> = model
        .metadata
        .iter()
        .filter(|(k, _)| !POSITION_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Known settings as they act, whatever an older run wrote: SGD when no optimizer is named, a test set
    // cut like the training set when `test_limit` is absent, no momentum under Adam, no `decoupled_wd`
    // under SGD.
    let h = &cfg.hyper;
    let limit = |l: Option<usize>| l.map_or_else(|| "all".to_string(), |n| n.to_string());
    settings.insert("model".into(), cfg.model_label());
    settings.insert("optimizer".into(), h.optimizer.name().into());
    settings.insert("limit".into(), limit(cfg.limit));
    settings.insert("test_limit".into(), limit(cfg.test_limit));
    if h.optimizer == OptimizerKind::Adam {
        settings.remove("momentum");
    } else {
        settings.remove("decoupled_wd");
    }
    // The engine of the last commit is in the state file (older runs do not record it).
    let state = dir.join(STATE_FILE);
    let metrics = run::read_metrics(&dir.join(METRICS_FILE))?;
    if state.is_file() {
        let state = Stored::read(&state)?;
        if let Some(e) = state.metadata.get("engine") {
            settings.insert("engine".into(), e.clone());
        }
        run::check_metrics_digest(dir, &state, &metrics)?;
    }
    if metrics.is_empty() {
        return Err(CliError::other(format!(
            "{}: no completed epoch to plot (no rows in {METRICS_FILE})",
            dir.display()
        )));
    }
    Ok(Plotted { dir: dir.into(), settings, metrics })
}

/// Each run's label (the settings whose values differ between the runs, as `key=value`; the directory
/// name when none differ or two labels would be equal) and the settings every run shares.
fn labels(runs: &[Plotted]) -> (Vec<String>, Vec<(String, String)>) {
    let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.settings.keys()).collect();
    let rank = |k: &str| KEY_ORDER.iter().position(|o| *o == k).unwrap_or(KEY_ORDER.len());
    let mut keys: Vec<&String> = keys.into_iter().collect();
    keys.sort_by_key(|k| (rank(k), k.as_str()));
    let value = |r: &Plotted, k: &str| r.settings.get(k).cloned().unwrap_or_else(|| "-".into());
    let (mut differ, mut common) = (Vec::new(), Vec::new());
    for k in keys {
        let first = value(&runs[0], k);
        if runs.iter().all(|r| value(r, k) == first) {
            common.push((k.clone(), first));
        } else {
            differ.push(k.as_str());
        }
    }
    let mut labels: Vec<String> = runs
        .iter()
        .map(|r| differ.iter().map(|k| format!("{k}={}", value(r, k))).collect::<Vec<_>>().join(" "))
        .collect();
    let unique = labels.iter().collect::<BTreeSet<_>>().len() == labels.len();
    if differ.is_empty() || !unique {
        for (l, r) in labels.iter_mut().zip(runs) {
            *l = if l.is_empty() { dir_name(&r.dir) } else { format!("{l} ({})", dir_name(&r.dir)) };
        }
    }
    (labels, common)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plotted(dir: &str, kv: &[(&str, &str)]) -> Plotted {
        Plotted {
            dir: dir.into(),
            settings: kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            metrics: Vec::new(),
        }
    }

    /// Labels name exactly the settings that differ, in the fixed key order; shared settings are listed
    /// once; equal settings fall back to the directory names.
    #[test]
    fn labels_name_what_differs() {
        let a = plotted("runs/a", &[("model", "lenet5"), ("seed", "1"), ("lr", "0.05"), ("engine", "sparse")]);
        let b = plotted("runs/b", &[("model", "lenet5"), ("seed", "2"), ("lr", "0.05"), ("engine", "direct")]);
        let (l, common) = labels(&[a, b]);
        assert_eq!(l, ["engine=sparse seed=1", "engine=direct seed=2"]);
        assert_eq!(common, [("model".to_string(), "lenet5".to_string()), ("lr".into(), "0.05".into())]);

        let a = plotted("runs/a", &[("model", "lenet5")]);
        let b = plotted("runs/b", &[("model", "lenet5")]);
        assert_eq!(labels(&[a, b]).0, ["a", "b"]);

        // A key one run lacks (an older run without `engine`) differs, shown as `-`.
        let a = plotted("x/a", &[("model", "seed"), ("engine", "sparse"), ("limit", "all")]);
        let b = plotted("x/b", &[("model", "seed"), ("limit", "100")]);
        assert_eq!(labels(&[a, b]).0, ["engine=sparse limit=all", "engine=- limit=100"]);
    }
}
