//! A run directory: what a training run leaves behind, and all it needs to resume bit-identically.
//!
//! ```text
//! model.safetensors   parameters ("{i}.weight", "{i}.bias"), metadata: spec, data, hyperparameters, epoch
//! state.safetensors   momentum buffers ("velocity.{i}.weight", ...), the same metadata
//! metrics.csv         one row per epoch: epoch,step,loss,train_acc,test_loss,test_acc,img_per_s,lr,train_s,wall_s
//! curves.png          loss and accuracy curves (drawn by the command)
//! ```
//!
//! Resuming needs the parameters, the momentum buffers, the completed epoch and step counts, and the
//! seed: the shuffle of epoch `e` depends on `(seed, e)` only (see [`crate::train::epoch_rng`]).
//! Every file is written atomically ([`crate::atomic`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::checkpoint::{self, CheckpointError, Stored};
use crate::init::Init;
use crate::loss::Loss;
use crate::network::{Engine, Network};
use crate::optim::DecayMode;
use crate::spec::{Spec, SpecError};
use crate::train::{EpochMetrics, Hyper, LrSchedule, Trainer};

pub const MODEL_FILE: &str = "model.safetensors";
pub const STATE_FILE: &str = "state.safetensors";
pub const METRICS_FILE: &str = "metrics.csv";
pub const PLOT_FILE: &str = "curves.png";
/// The columns of `metrics.csv`: `lr` is the epoch's learning rate, `train_s` the seconds in the training
/// loop, `wall_s` the seconds of the whole epoch (training and test evaluation). Files written before the
/// last three columns existed are read with `lr`, `train_s` and `wall_s` as NaN.
const METRICS_HEADER: &str = "epoch,step,loss,train_acc,test_loss,test_acc,img_per_s,lr,train_s,wall_s";

/// Why a run directory could not be written or resumed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{}: {source}", file.display())]
    Io { file: PathBuf, source: std::io::Error },
    #[error("{}: {problem}", file.display())]
    Invalid { file: PathBuf, problem: String },
    #[error("{}: {source}", file.display())]
    Spec { file: PathBuf, source: SpecError },
}

/// What a run trains, on what, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// The model as named on the command line (`lenet5`, `seed` or a spec string).
    pub model: String,
    pub spec: Spec,
    /// The data source name (see [`crate::data::Source`]).
    pub data: String,
    /// Only the first `limit` training images, when set.
    pub limit: Option<usize>,
    /// Only the first `test_limit` test images, when set.
    pub test_limit: Option<usize>,
    pub hyper: Hyper,
}

impl RunConfig {
    /// The metadata stored in both checkpoint files of a trainer at its current position.
    pub fn metadata(&self, trainer: &Trainer) -> BTreeMap<String, String> {
        let h = &self.hyper;
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put("format", "cnn-as-mlp".into());
        put("model", self.model.clone());
        put("spec", self.spec.to_string());
        put("data", self.data.clone());
        put("limit", self.limit.map_or_else(String::new, |l| l.to_string()));
        // Written only when a limit is set, so that a run without one keeps the bytes it always had; a run
        // with `limit` but no `test_limit` key predates `--test-limit` and cut both sets.
        if self.limit.is_some() || self.test_limit.is_some() {
            put("test_limit", self.test_limit.map_or_else(String::new, |l| l.to_string()));
        }
        put("loss", h.loss.name().into());
        put("init", h.init.name().into());
        put("lr", h.lr.to_string());
        put("lr_schedule", h.schedule.name().into());
        put("momentum", h.momentum.to_string());
        put("weight_decay", h.weight_decay.to_string());
        put("decay_mode", h.decay_mode.name().into());
        put("batch", h.batch.to_string());
        put("epochs", h.epochs.to_string());
        put("seed", h.seed.to_string());
        put("epoch", trainer.epoch.to_string());
        put("step", trainer.step.to_string());
        m
    }

    /// Reads the configuration back from a checkpoint's metadata.
    pub fn from_metadata(f: &Stored) -> Result<Self, RunError> {
        let invalid = |key: &str, v: &str| RunError::Invalid {
            file: f.path.clone(),
            problem: format!("metadata {key:?} has unknown value {v:?}"),
        };
        let spec_s = f.meta("spec")?;
        let spec = Spec::parse(spec_s).map_err(|source| RunError::Spec { file: f.path.clone(), source })?;
        let loss = Loss::from_name(f.meta("loss")?).ok_or_else(|| invalid("loss", f.meta("loss").unwrap_or("")))?;
        let init = match f.meta("init")? {
            "torch-default" => Init::TorchDefault,
            "xavier-normal" => Init::XavierNormal,
            v => return Err(invalid("init", v)),
        };
        let decay_mode = DecayMode::from_name(f.meta("decay_mode")?)
            .ok_or_else(|| invalid("decay_mode", f.meta("decay_mode").unwrap_or("")))?;
        let schedule = LrSchedule::from_name(f.meta("lr_schedule")?)
            .ok_or_else(|| invalid("lr_schedule", f.meta("lr_schedule").unwrap_or("")))?;
        let limit = match f.meta("limit")? {
            "" => None,
            _ => Some(f.meta_parse("limit")?),
        };
        let test_limit = match f.metadata.get("test_limit").map(String::as_str) {
            None => limit,
            Some("") => None,
            Some(_) => Some(f.meta_parse("test_limit")?),
        };
        Ok(RunConfig {
            model: f.meta("model")?.to_string(),
            spec,
            data: f.meta("data")?.to_string(),
            limit,
            test_limit,
            hyper: Hyper {
                lr: f.meta_parse("lr")?,
                schedule,
                momentum: f.meta_parse("momentum")?,
                weight_decay: f.meta_parse("weight_decay")?,
                decay_mode,
                batch: f.meta_parse("batch")?,
                epochs: f.meta_parse("epochs")?,
                loss,
                init,
                seed: f.meta_parse("seed")?,
            },
        })
    }
}

/// Writes the checkpoint, the optimizer state and the metrics into `dir` (which exists). The command then
/// draws the curves ([`PLOT_FILE`]); a library user without the `cli` feature gets no plot.
pub fn save(dir: &Path, cfg: &RunConfig, trainer: &Trainer, metrics: &[EpochMetrics]) -> Result<(), RunError> {
    let meta = cfg.metadata(trainer);
    let net = &trainer.net;
    checkpoint::write(&dir.join(MODEL_FILE), &checkpoint::named(net, &net.params, ""), &meta)?;
    checkpoint::write(&dir.join(STATE_FILE), &checkpoint::named(net, &trainer.sgd.velocity, "velocity."), &meta)?;
    write_metrics(&dir.join(METRICS_FILE), metrics)?;
    Ok(())
}

impl RunConfig {
    /// A short name for the model: the preset name, or [`Spec::short_name`] for a spec string.
    pub fn model_label(&self) -> String {
        if crate::spec::preset(&self.model).is_some() { self.model.trim().to_string() } else { self.spec.short_name() }
    }
}

/// A run read back from its directory.
pub struct Resumed {
    pub cfg: RunConfig,
    pub trainer: Trainer,
    pub metrics: Vec<EpochMetrics>,
}

/// Reads a run directory written by [`save`] and rebuilds its trainer on `engine`.
pub fn load(dir: &Path, engine: Engine) -> Result<Resumed, RunError> {
    let model = Stored::read(&dir.join(MODEL_FILE))?;
    let state = Stored::read(&dir.join(STATE_FILE))?;
    let cfg = RunConfig::from_metadata(&model)?;
    for key in ["epoch", "step", "spec", "seed"] {
        if model.meta(key)? != state.meta(key)? {
            return Err(RunError::Invalid {
                file: state.path.clone(),
                problem: format!(
                    "metadata {key:?} is {:?} but {MODEL_FILE} says {:?}",
                    state.meta(key)?,
                    model.meta(key)?
                ),
            });
        }
    }
    let mut net = Network::<f32>::new(&cfg.spec, engine);
    checkpoint::load_params(&mut net, &model)?;
    let mut trainer = Trainer::new(net, cfg.hyper.clone());
    let mut velocity = trainer.sgd.velocity.clone();
    state.load_params_into(&trainer.net, "velocity.", &mut velocity)?;
    trainer.sgd.velocity = velocity;
    trainer.epoch = model.meta_parse("epoch")?;
    trainer.step = model.meta_parse("step")?;
    let mut metrics = read_metrics(&dir.join(METRICS_FILE))?;
    metrics.retain(|m| m.epoch <= trainer.epoch);
    Ok(Resumed { cfg, trainer, metrics })
}

/// Writes `metrics.csv` atomically.
pub fn write_metrics(path: &Path, metrics: &[EpochMetrics]) -> Result<(), RunError> {
    let mut s = String::from(METRICS_HEADER);
    s.push('\n');
    for m in metrics {
        s.push_str(&format!(
            "{},{},{:.6},{:.6},{:.6},{:.6},{:.1},{},{:.3},{:.3}\n",
            m.epoch, m.step, m.loss, m.train_acc, m.test_loss, m.test_acc, m.img_per_s, m.lr, m.train_secs, m.wall_secs
        ));
    }
    crate::atomic::write(path, s.as_bytes()).map_err(|source| CheckpointError::Write { file: path.into(), source })?;
    Ok(())
}

/// Reads `metrics.csv` back (an absent file reads as no rows).
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>, RunError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(RunError::Io { file: path.into(), source }),
    };
    let bad =
        |line: usize| RunError::Invalid { file: path.into(), problem: format!("line {line} is not a metrics row") };
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let v: Vec<f64> =
            line.split(',').map(|f| f.parse::<f64>()).collect::<Result<_, _>>().map_err(|_| bad(i + 1))?;
        if v.len() != 7 && v.len() != 10 {
            return Err(bad(i + 1));
        }
        let extra = |j: usize| v.get(j).copied().unwrap_or(f64::NAN);
        rows.push(EpochMetrics {
            epoch: v[0] as usize,
            step: v[1] as usize,
            loss: v[2],
            train_acc: v[3],
            test_loss: v[4],
            test_acc: v[5],
            img_per_s: v[6],
            lr: extra(7),
            train_secs: extra(8),
            wall_secs: extra(9),
        });
    }
    Ok(rows)
}
