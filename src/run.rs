//! A run directory: what a training run leaves behind, and all it needs to resume bit-identically.
//!
//! ```text
//! model.safetensors   parameters ("{i}.weight", "{i}.bias"), metadata: spec, data, hyperparameters, epoch
//! state.safetensors   SGD's momentum buffers ("velocity.{i}.weight", ...) or Adam's moments ("exp_avg.{i}.weight",
//!                     "exp_avg_sq.{i}.weight", ...), the same metadata and the engine
//! metrics.csv         one row per epoch: epoch,step,loss,train_acc,test_loss,test_acc,img_per_s,lr,train_s,wall_s
//! curves.png          loss and accuracy curves (drawn by the command)
//! ```
//!
//! Resuming needs the parameters, the optimizer's buffers, the completed epoch and step counts, and the
//! seed: the shuffle of epoch `e` depends on `(seed, e)` only (see [`crate::train::epoch_rng`]).
//!
//! **One commit per epoch.** The four files of an epoch change together or not at all ([`RunDir::commit`]):
//!
//! ```text
//! 1. write every file into RUN_DIR/.pending/ (each synced)        a kill here: .pending is discarded
//! 2. rename .pending → .commit                                    the commit point (one atomic rename)
//! 3. rename each file of .commit/ over RUN_DIR/FILE, then remove .commit
//!                                                                 a kill here: the renames are finished
//! ```
//!
//! Whoever opens the directory next ([`RunDir::create`], [`RunDir::open`]) finishes a `.commit` and
//! discards a `.pending` (and the temporary files of older versions) before reading anything, so a kill
//! at any instant leaves the last committed epoch, whole, and no stray file.
//!
//! **One run at a time.** A run holds an exclusive `flock` on its directory for its whole life (the kernel
//! releases it on any exit, `kill -9` included); a second run into the same directory fails at once.
//!
//! **Only its own folder, only its own files.** A new run takes a directory that does not exist, or an
//! existing one that is empty or holds only what a run of this tool leaves before its first commit
//! (`.pending`, `.commit`, temporary files): a directory holding anything else (`/`, a data folder, a user's
//! own `metrics.csv`) is refused untouched, so the run never overwrites and its clean-up never removes a
//! file it did not write. The run remembers the directory's identity (device and inode of the handle it
//! locks) and checks, before every commit and before cleaning up, that its path still names that
//! directory: a run whose folder was moved or replaced stops with an error instead of writing into
//! whatever now has the name. A `.commit` found on opening is finished only if it is one this tool could
//! have left (its files are this run's names, regular files, the model and state agree with each other and
//! follow the run's current checkpoint); anything else is refused before any file is replaced.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::budget::{self, BudgetError, Use};
use crate::checkpoint::{self, CheckpointError, Stored};
use crate::init::Init;
use crate::loss::Loss;
use crate::network::{Engine, Network};
use crate::optim::{DecayMode, OptimizerKind};
use crate::spec::{Spec, SpecError};
use crate::train::{EpochMetrics, Hyper, LrSchedule, Trainer};

pub const MODEL_FILE: &str = "model.safetensors";
pub const STATE_FILE: &str = "state.safetensors";
pub const METRICS_FILE: &str = "metrics.csv";
pub const PLOT_FILE: &str = "curves.png";
/// The columns of `metrics.csv`: `lr` is the epoch's learning rate, `train_s` the seconds in the training
/// loop, `wall_s` the seconds of the whole epoch (training and test evaluation). Files written before the
/// last three columns existed are read with `lr`, `train_s` and `wall_s` as NaN.
const METRICS_HEADER: [&str; 10] =
    ["epoch", "step", "loss", "train_acc", "test_loss", "test_acc", "img_per_s", "lr", "train_s", "wall_s"];

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
    #[error("{}: {source}", file.display())]
    Budget { file: PathBuf, source: Box<BudgetError> },
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
    /// Images of an image folder whose size differs from the model's input are resized
    /// ([`crate::data::ImageOptions::resize`], `train --resize`) instead of refused.
    pub resize: bool,
    /// The per-channel standardisation of the inputs (`train --normalize`: the training set's statistics),
    /// when set.
    pub normalize: Option<crate::data::Standardize>,
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
        // Written only when set, so that other runs keep the bytes they always had.
        if self.resize {
            put("resize", "true".into());
        }
        put("loss", h.loss.name().into());
        put("init", h.init.name().into());
        put("lr", h.lr.to_string());
        put("lr_schedule", h.schedule.name().into());
        put("momentum", h.momentum.to_string());
        put("weight_decay", h.weight_decay.to_string());
        put("decay_mode", h.decay_mode.name().into());
        // Written only for Adam, so that an SGD run keeps the bytes it always had.
        if h.optimizer != OptimizerKind::Sgd {
            put("optimizer", h.optimizer.name().into());
            put("decoupled_wd", h.decoupled_wd.to_string());
        }
        put("batch", h.batch.to_string());
        put("epochs", h.epochs.to_string());
        put("seed", h.seed.to_string());
        put("epoch", trainer.epoch.to_string());
        put("step", trainer.step.to_string());
        // Written only for a pruning run, so that other runs keep the bytes they always had.
        if let Some(p) = h.prune {
            put("prune", p.target.to_string());
            put("prune_start", p.start.to_string());
            put("prune_end", p.end.to_string());
            put("prune_every", p.every.to_string());
        }
        // Written only when the inputs are standardised, so that other runs keep the bytes they always had.
        if let Some(n) = &self.normalize {
            let (mean, std) = n.to_metadata();
            m.insert(crate::data::Standardize::MEAN_KEY.into(), mean);
            m.insert(crate::data::Standardize::STD_KEY.into(), std);
        }
        m.extend(crate::prune::mask_metadata(&trainer.net));
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
        let optimizer = match f.metadata.get("optimizer") {
            None => OptimizerKind::Sgd,
            Some(v) => OptimizerKind::from_name(v).ok_or_else(|| invalid("optimizer", v))?,
        };
        let limit = match f.meta("limit")? {
            "" => None,
            _ => Some(f.meta_parse("limit")?),
        };
        if limit == Some(0) {
            return Err(RunError::Invalid {
                file: f.path.clone(),
                problem: "metadata \"limit\" is \"0\": must be at least 1".into(),
            });
        }
        let test_limit = match f.metadata.get("test_limit").map(String::as_str) {
            None => limit,
            Some("") => None,
            Some(_) => Some(f.meta_parse("test_limit")?),
        };
        if test_limit == Some(0) {
            return Err(RunError::Invalid {
                file: f.path.clone(),
                problem: "metadata \"test_limit\" is \"0\": must be at least 1".into(),
            });
        }
        let normalize = normalize_of(f)?;
        let cfg = RunConfig {
            model: f.meta("model")?.to_string(),
            spec,
            data: f.meta("data")?.to_string(),
            limit,
            test_limit,
            resize: match f.metadata.get("resize") {
                None => false,
                Some(_) => f.meta_parse("resize")?,
            },
            normalize,
            hyper: Hyper {
                lr: f.meta_parse("lr")?,
                schedule,
                momentum: f.meta_parse("momentum")?,
                weight_decay: f.meta_parse("weight_decay")?,
                decay_mode,
                optimizer,
                decoupled_wd: match f.metadata.get("decoupled_wd") {
                    None => false,
                    Some(_) => f.meta_parse("decoupled_wd")?,
                },
                batch: f.meta_parse("batch")?,
                epochs: f.meta_parse("epochs")?,
                loss,
                init,
                seed: f.meta_parse("seed")?,
                prune: match f.metadata.get("prune") {
                    None => None,
                    Some(_) => Some(crate::prune::Prune {
                        target: f.meta_parse("prune")?,
                        start: f.meta_parse("prune_start")?,
                        end: f.meta_parse("prune_end")?,
                        every: f.meta_parse("prune_every")?,
                    }),
                },
            },
        };
        // The same rules as the command line's: a run directory is user input too.
        cfg.hyper.check().map_err(|b| RunError::Invalid {
            file: f.path.clone(),
            problem: format!("metadata {:?} is {:?}: {}", b.key, b.value, b.rule),
        })?;
        Ok(cfg)
    }
}

/// The standardisation a checkpoint's metadata records ([`crate::data::Standardize::to_metadata`]), if any.
pub fn normalize_of(f: &Stored) -> Result<Option<crate::data::Standardize>, RunError> {
    use crate::data::Standardize;
    match (f.metadata.get(Standardize::MEAN_KEY), f.metadata.get(Standardize::STD_KEY)) {
        (None, None) => Ok(None),
        (Some(mean), Some(std)) => Standardize::from_metadata(mean, std)
            .map(Some)
            .map_err(|problem| RunError::Invalid { file: f.path.clone(), problem }),
        _ => Err(RunError::Invalid {
            file: f.path.clone(),
            problem: format!("metadata has only one of {:?} and {:?}", Standardize::MEAN_KEY, Standardize::STD_KEY),
        }),
    }
}

/// `(file name, bytes)` of what an epoch commits: checkpoint and optimizer state, then (once an epoch has
/// completed) the metrics. The command adds the plot ([`PLOT_FILE`]) to the same commit.
pub fn epoch_files(cfg: &RunConfig, trainer: &Trainer, metrics: &[EpochMetrics]) -> Vec<(&'static str, Vec<u8>)> {
    let meta = cfg.metadata(trainer);
    let net = &trainer.net;
    let mut state_meta = meta.clone();
    state_meta.insert("engine".into(), net.engine.name().into());
    let metrics_text = (!metrics.is_empty()).then(|| metrics_csv(metrics).into_bytes());
    // The state names the metrics committed with it, so a metrics.csv edited or copied from another run is
    // told apart ([`check_metrics_digest`]).
    if !metrics.is_empty() {
        state_meta.insert(METRICS_DIGEST_KEY.into(), metrics_digest(metrics));
    }
    let mut files = vec![
        // Each with its digest, which every later read checks (an edited or damaged file is refused).
        (MODEL_FILE, checkpoint::serialize_with_digest(&checkpoint::named(net, &net.params, ""), &meta)),
        // The state also records the engine of the commit (for `plot`); model.safetensors keeps its bytes.
        (STATE_FILE, checkpoint::serialize_with_digest(&state_tensors(trainer), &state_meta)),
    ];
    if let Some(t) = metrics_text {
        files.push((METRICS_FILE, t));
    }
    files
}

/// The state's metadata key holding the digest of the `metrics.csv` committed with it.
pub const METRICS_DIGEST_KEY: &str = "metrics_digest";

/// The digest of a run's metrics rows without their timings (`img_per_s`, `train_s`, `wall_s`, which differ
/// between a run and its resumed twin): the text [`metrics_csv`] writes for them, timings at 0.
fn metrics_digest(metrics: &[EpochMetrics]) -> String {
    let untimed: Vec<EpochMetrics> =
        metrics.iter().map(|m| EpochMetrics { img_per_s: 0.0, train_secs: 0.0, wall_secs: 0.0, ..m.clone() }).collect();
    checkpoint::digest(metrics_csv(&untimed).as_bytes(), &Default::default())
}

/// Fails unless `rows`, read from `dir`'s `metrics.csv` ([`read_metrics`]), are the rows committed with
/// `state` (their digest under [`METRICS_DIGEST_KEY`], timings left out; runs written before the key are
/// not checked).
pub fn check_metrics_digest(dir: &Path, state: &Stored, rows: &[EpochMetrics]) -> Result<(), RunError> {
    let Some(want) = state.metadata.get(METRICS_DIGEST_KEY) else { return Ok(()) };
    let file = dir.join(METRICS_FILE);
    if std::fs::symlink_metadata(&file).is_err() {
        return Err(RunError::Invalid {
            file,
            problem: format!("is missing, though {STATE_FILE} was committed with it: no completed epoch can be read"),
        });
    }
    let got = metrics_digest(rows);
    if &got != want {
        return Err(RunError::Invalid {
            file,
            problem: format!(
                "is not the metrics committed with {STATE_FILE} (digest {got}, the state records {want}): it was edited or copied from another run"
            ),
        });
    }
    Ok(())
}

/// The optimizer's state: SGD's momentum buffers (`velocity.{i}.weight`, …), or Adam's moments under
/// PyTorch's names (`exp_avg.{i}.weight`, `exp_avg_sq.{i}.weight`, …; its step count is the run's `step`).
fn state_tensors(trainer: &Trainer) -> Vec<(String, &crate::tensor::Tensor<f32>)> {
    let net = &trainer.net;
    match &trainer.adam {
        None => checkpoint::named(net, &trainer.sgd.velocity, "velocity."),
        Some(a) => [checkpoint::named(net, &a.m, "exp_avg."), checkpoint::named(net, &a.v, "exp_avg_sq.")].concat(),
    }
}

/// Whether `dir` holds a training run (its checkpoint, its state, or a commit under way).
pub fn is_run_dir(dir: &Path) -> bool {
    [MODEL_FILE, STATE_FILE, PENDING_DIR, COMMIT_DIR].iter().any(|n| std::fs::symlink_metadata(dir.join(n)).is_ok())
}

/// The nearest folder above `dir` (not `dir` itself) that holds a training run ([`is_run_dir`]), if any.
pub fn enclosing_run(dir: &Path) -> Option<&Path> {
    dir.ancestors().skip(1).find(|a| !a.as_os_str().is_empty() && is_run_dir(a))
}

/// Where an epoch's files are written before the commit, and where they wait during it.
pub const PENDING_DIR: &str = ".pending";
pub const COMMIT_DIR: &str = ".commit";

/// A run directory held by this process: locked for the life of the value, recovered on opening.
pub struct RunDir {
    path: PathBuf,
    /// Where a commit's file operations go: on Linux the open directory itself (`/proc/self/fd/N`), so a
    /// commit under way when the folder is moved finishes in the moved folder and never writes into
    /// whatever takes its name; elsewhere `path`.
    at: PathBuf,
    /// The open directory, holding the exclusive lock.
    _lock: std::fs::File,
    /// Device and inode of the locked directory: what `path` must still name ([`RunDir::check_identity`]).
    identity: (u64, u64),
    /// This process created the directory (so abandoning a run that never trained removes it).
    created: bool,
}

impl RunDir {
    /// Takes `dir` for a new run: creates it (and its parents), or takes an existing directory that holds
    /// no checkpoint (one a run left before its first commit, or an empty one); locks it.
    pub fn create(dir: &Path) -> Result<RunDir, RunError> {
        let io = |source| RunError::Io { file: dir.into(), source };
        // A run inside another run's directory (`RUN/.pending`, `RUN/sub`) would be taken for its files, or
        // removed by its next commit.
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(run) = enclosing_run(dir) {
            return Err(RunError::Invalid {
                file: dir.into(),
                problem: format!("is inside the training run {}; choose an --out outside it", run.display()),
            });
        }
        if [PENDING_DIR, COMMIT_DIR].contains(&name) {
            return Err(RunError::Invalid {
                file: dir.into(),
                problem: format!("is named {name}, which a run uses for its own commits; choose another --out"),
            });
        }
        // `a/missing/../b` would make `a/missing` on the way (creating the parents): a `..` must step out of
        // a directory that exists.
        let mut walked = PathBuf::new();
        for c in dir.components() {
            if c == std::path::Component::ParentDir && !walked.as_os_str().is_empty() && !walked.is_dir() {
                return Err(RunError::Invalid {
                    file: dir.into(),
                    problem: format!("steps out of {} with `..`, but it is not a directory", walked.display()),
                });
            }
            walked.push(c);
        }
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| RunError::Io { file: parent.into(), source })?;
        }
        let created = match std::fs::create_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(io(e)),
        };
        if !created {
            check_takeable(dir)?;
        }
        let run = RunDir::lock(dir, created)?;
        if dir.join(MODEL_FILE).exists() {
            return Err(RunError::Invalid {
                file: dir.into(),
                problem: "already holds a run; continue it with --resume or choose another --out".into(),
            });
        }
        Ok(run)
    }

    /// Creates a new directory `parent/stem`, or `parent/stem-2`, `-3`, … when taken: unique among runs
    /// started at the same instant.
    pub fn create_unique(parent: &Path, stem: &str) -> Result<RunDir, RunError> {
        std::fs::create_dir_all(parent).map_err(|source| RunError::Io { file: parent.into(), source })?;
        for i in 1..=10_000 {
            let dir = if i == 1 { parent.join(stem) } else { parent.join(format!("{stem}-{i}")) };
            match std::fs::create_dir(&dir) {
                Ok(()) => return RunDir::lock(&dir, true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(RunError::Io { file: dir, source }),
            }
        }
        Err(RunError::Invalid { file: parent.join(stem), problem: "10,000 runs already have this name".into() })
    }

    /// Opens an existing run for resuming: locks it and finishes or discards an interrupted commit.
    pub fn open(dir: &Path) -> Result<RunDir, RunError> {
        if !dir.is_dir() {
            return Err(RunError::Invalid { file: dir.into(), problem: "not a run directory".into() });
        }
        let run = RunDir::lock(dir, false)?;
        if !dir.join(MODEL_FILE).exists() {
            return Err(RunError::Invalid {
                file: dir.into(),
                problem: format!(
                    "holds no {MODEL_FILE}: the run stopped before its first checkpoint; start it again with train --out"
                ),
            });
        }
        Ok(run)
    }

    fn lock(dir: &Path, created: bool) -> Result<RunDir, RunError> {
        let io = |source| RunError::Io { file: dir.into(), source };
        let f = std::fs::File::open(dir).map_err(io)?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(RunError::Invalid {
                    file: dir.into(),
                    problem: "is in use by another training run (it holds the directory's lock)".into(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let meta = f.metadata().map_err(io)?;
        if !meta.is_dir() {
            return Err(RunError::Invalid { file: dir.into(), problem: "is not a directory".into() });
        }
        use std::os::unix::fs::MetadataExt;
        let identity = (meta.dev(), meta.ino());
        let at = held_path(&f, identity).unwrap_or_else(|| dir.into());
        let run = RunDir { path: dir.into(), at, _lock: f, identity, created };
        run.recover()?;
        Ok(run)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Finishes an interrupted commit (`.commit` present), discards an unfinished one (`.pending`), and
    /// removes the temporary files older versions wrote (`.NAME.tmpPID`, `.tmpPID.NAME`).
    fn recover(&self) -> Result<(), RunError> {
        let io = |file: PathBuf| move |source| RunError::Io { file, source };
        let commit = self.path.join(COMMIT_DIR);
        if std::fs::symlink_metadata(&commit).is_ok() {
            self.check_stale_commit()?;
            self.finish_commit()?;
        }
        let pending = self.path.join(PENDING_DIR);
        if pending.exists() {
            std::fs::remove_dir_all(&pending).map_err(io(pending.clone()))?;
        }
        for e in std::fs::read_dir(&self.path).map_err(io(self.path.clone()))? {
            let name = e.map_err(io(self.path.clone()))?.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp") {
                let f = self.path.join(&name);
                let removed = if f.is_dir() { std::fs::remove_dir_all(&f) } else { std::fs::remove_file(&f) };
                removed.map_err(io(f))?;
            }
        }
        Ok(())
    }

    /// Fails unless its path still names the directory this run locked (it was not moved, removed or
    /// replaced while the run trained).
    pub fn check_identity(&self) -> Result<(), RunError> {
        use std::os::unix::fs::MetadataExt;
        let now = std::fs::metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        if now == Some(self.identity) {
            return Ok(());
        }
        Err(RunError::Invalid {
            file: self.path.clone(),
            problem: "no longer names the directory this run started in (it was moved, removed or replaced while the run trained); stopped without writing, the run's last commit is in the moved directory".into(),
        })
    }

    /// Fails unless the `.commit` found on opening is one a run could have left (see the module
    /// documentation), checked before any of its files replaces one of the run's.
    fn check_stale_commit(&self) -> Result<(), RunError> {
        let commit = self.path.join(COMMIT_DIR);
        let refuse = |problem: String| RunError::Invalid {
            file: commit.clone(),
            problem: format!(
                "{problem}; not a commit this tool left, so nothing was replaced (move it away to continue)"
            ),
        };
        let meta =
            std::fs::symlink_metadata(&commit).map_err(|source| RunError::Io { file: commit.clone(), source })?;
        if !meta.is_dir() {
            return Err(refuse(format!("is {}", crate::atomic::kind_of(&meta))));
        }
        let mut names = Vec::new();
        for e in std::fs::read_dir(&commit).map_err(|source| RunError::Io { file: commit.clone(), source })? {
            let e = e.map_err(|source| RunError::Io { file: commit.clone(), source })?;
            let name = e.file_name().to_string_lossy().into_owned();
            if ![MODEL_FILE, STATE_FILE, METRICS_FILE, PLOT_FILE].contains(&name.as_str()) {
                return Err(refuse(format!("holds {name:?}, which is not a run file")));
            }
            let m = std::fs::symlink_metadata(e.path()).map_err(|source| RunError::Io { file: e.path(), source })?;
            if !m.is_file() {
                return Err(refuse(format!("its {name} is {}", crate::atomic::kind_of(&m))));
            }
            names.push(name);
        }
        let has = |n: &str| names.iter().any(|x| x == n);
        // Files are moved out in the order model, state, metrics, plot: a model never waits without its state.
        if has(MODEL_FILE) && !has(STATE_FILE) {
            return Err(refuse(format!("holds {MODEL_FILE} without {STATE_FILE}")));
        }
        if !has(STATE_FILE) {
            return Ok(());
        }
        let state = Stored::read(&commit.join(STATE_FILE))?;
        // The model of this commit: still waiting in `.commit`, or already moved into place.
        let model_path = if has(MODEL_FILE) { commit.join(MODEL_FILE) } else { self.path.join(MODEL_FILE) };
        if !model_path.exists() {
            return Err(refuse(format!("holds {STATE_FILE} but there is no {MODEL_FILE} for it")));
        }
        let model = Stored::read(&model_path)?;
        for key in ["epoch", "step", "spec", "seed"] {
            if model.meta(key)? != state.meta(key)? {
                return Err(refuse(format!(
                    "its {STATE_FILE} says {key} {:?} but {} says {:?}",
                    state.meta(key)?,
                    model_path.display(),
                    model.meta(key)?
                )));
            }
        }
        let current = self.path.join(MODEL_FILE);
        if has(MODEL_FILE) && current.exists() {
            let now = Stored::read(&current)?;
            for key in ["spec", "seed"] {
                if now.meta(key)? != model.meta(key)? {
                    return Err(refuse(format!(
                        "its {MODEL_FILE} says {key} {:?} but the run's says {:?}",
                        model.meta(key)?,
                        now.meta(key)?
                    )));
                }
            }
            let (e_now, e_new): (usize, usize) = (now.meta_parse("epoch")?, model.meta_parse("epoch")?);
            if e_new != e_now + 1 {
                return Err(refuse(format!(
                    "its {MODEL_FILE} is at epoch {e_new}, but the run's checkpoint is at epoch {e_now} (a commit follows it by one epoch)"
                )));
            }
        }
        Ok(())
    }

    /// Step 3 of a commit: every file of `.commit/` renamed over its name in the run directory, then
    /// `.commit` removed. Idempotent, so a kill in the middle is finished by the next [`RunDir::recover`].
    fn finish_commit(&self) -> Result<(), RunError> {
        let io = |file: PathBuf| move |source| RunError::Io { file, source };
        let commit = self.at.join(COMMIT_DIR);
        for name in [MODEL_FILE, STATE_FILE, METRICS_FILE, PLOT_FILE] {
            let from = commit.join(name);
            if from.exists() {
                std::fs::rename(&from, self.at.join(name)).map_err(io(self.path.join(name)))?;
            }
        }
        std::fs::remove_dir_all(&commit).map_err(io(self.path.join(COMMIT_DIR)))?;
        std::fs::File::open(&self.at).and_then(|d| d.sync_all()).map_err(io(self.path.clone()))
    }

    /// Commits the files of `trainer`'s position ([`epoch_files`]) and `extra` files (the command's plot)
    /// as one step (see the module documentation). On an error the directory keeps its previous commit and
    /// no temporary file.
    pub fn commit(
        &self,
        cfg: &RunConfig,
        trainer: &Trainer,
        metrics: &[EpochMetrics],
        extra: Vec<(&'static str, Vec<u8>)>,
    ) -> Result<(), RunError> {
        self.check_identity()?;
        let mut files = epoch_files(cfg, trainer, metrics);
        files.extend(extra);
        let pending = self.at.join(PENDING_DIR);
        let named = self.path.join(PENDING_DIR);
        let written = (|| -> Result<(), RunError> {
            let io = |file: PathBuf| move |source| RunError::Io { file, source };
            if pending.exists() {
                std::fs::remove_dir_all(&pending).map_err(io(named.clone()))?;
            }
            std::fs::create_dir(&pending).map_err(io(named.clone()))?;
            for (name, bytes) in &files {
                let f = pending.join(name);
                let mut h = std::fs::File::create(&f).map_err(io(self.path.join(name)))?;
                h.write_all(bytes).and_then(|()| h.sync_all()).map_err(io(self.path.join(name)))?;
            }
            std::fs::File::open(&pending).and_then(|d| d.sync_all()).map_err(io(named.clone()))?;
            std::fs::rename(&pending, self.at.join(COMMIT_DIR)).map_err(io(self.path.clone()))
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&pending);
            return Err(e);
        }
        self.finish_commit()
    }

    /// Gives up a new run that failed before completing an epoch: removes the directory if this process
    /// created it, else the files a run writes; so a failed run leaves nothing behind.
    pub fn abandon(self) {
        // Never clean up whatever now has the name of a directory that was moved away.
        if self.check_identity().is_err() {
            return;
        }
        if self.created {
            let _ = std::fs::remove_dir_all(&self.path);
        } else {
            for name in [MODEL_FILE, STATE_FILE, METRICS_FILE, PLOT_FILE, PENDING_DIR, COMMIT_DIR] {
                let p = self.path.join(name);
                let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            }
        }
    }
}

/// Fails unless the existing directory `dir` may hold a new run: it is a directory and holds nothing but
/// what a run leaves before its first commit (`.pending`, `.commit`, temporary files) or a checkpoint
/// (refused after recovery with a pointer to `--resume`).
fn check_takeable(dir: &Path) -> Result<(), RunError> {
    let io = |source| RunError::Io { file: dir.into(), source };
    let meta = std::fs::metadata(dir).map_err(io)?;
    if !meta.is_dir() {
        return Err(RunError::Invalid {
            file: dir.into(),
            problem: format!("exists and is {}, not a directory", crate::atomic::kind_of(&meta)),
        });
    }
    if dir.join(MODEL_FILE).exists() {
        // A run: refused with a pointer to --resume once locked (another run may be committing into it).
        return Ok(());
    }
    let mut foreign = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let name = e.map_err(io)?.file_name().to_string_lossy().into_owned();
        let own =
            [PENDING_DIR, COMMIT_DIR].contains(&name.as_str()) || (name.starts_with('.') && name.contains(".tmp"));
        if !own {
            foreign.push(name);
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    let n = foreign.len();
    let shown: Vec<String> = foreign.iter().take(3).map(|f| format!("{f:?}")).collect();
    let more = if n > 3 { format!(" and {} more", n - 3) } else { String::new() };
    Err(RunError::Invalid {
        file: dir.into(),
        problem: format!(
            "exists and holds files that are not a run's ({}{more}); a new run needs a new or empty directory, so nothing of yours is overwritten or removed",
            shown.join(", ")
        ),
    })
}

/// The path through which the open directory `f` is reached whatever its name becomes
/// (`/proc/self/fd/N`), if the system has one and it names the directory of `identity`.
#[cfg(target_os = "linux")]
fn held_path(f: &std::fs::File, identity: (u64, u64)) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;
    let p = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
    let m = std::fs::metadata(&p).ok()?;
    ((m.dev(), m.ino()) == identity && m.is_dir()).then_some(p)
}

#[cfg(not(target_os = "linux"))]
fn held_path(_: &std::fs::File, _: (u64, u64)) -> Option<PathBuf> {
    None
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

/// Reads a run directory written by [`RunDir::commit`] and rebuilds its trainer on `engine`. Open it
/// with [`RunDir::open`] first, which locks it and finishes or discards an interrupted commit.
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
    let usage = Use::train(cfg.hyper.batch, cfg.limit.unwrap_or(1000));
    budget::check(&cfg.spec, engine, usage)
        .map_err(|e| RunError::Budget { file: model.path.clone(), source: Box::new(e) })?;
    let masks = crate::prune::read_masks(&cfg.spec, &model)?;
    let mut net = Network::<f32>::with_masks(&cfg.spec, engine, masks);
    checkpoint::load_params(&mut net, &model)?;
    let mut trainer = Trainer::new(net, cfg.hyper.clone());
    trainer.epoch = model.meta_parse("epoch")?;
    trainer.step = model.meta_parse("step")?;
    match &mut trainer.adam {
        None => {
            let mut velocity = trainer.sgd.velocity.clone();
            state.load_params_into(&trainer.net, "velocity.", &mut velocity)?;
            trainer.sgd.velocity = velocity;
        }
        Some(a) => {
            state.load_params_into(&trainer.net, "exp_avg.", &mut a.m)?;
            state.load_params_into(&trainer.net, "exp_avg_sq.", &mut a.v)?;
            a.steps = trainer.step as u64;
        }
    }
    if let Some(e) = state.metadata.get("engine")
        && !Engine::ALL.iter().any(|k| k.name() == e)
    {
        return Err(RunError::Invalid {
            file: state.path.clone(),
            problem: format!("metadata \"engine\" has unknown value {e:?}"),
        });
    }
    if trainer.epoch > cfg.hyper.epochs {
        return Err(RunError::Invalid {
            file: model.path.clone(),
            problem: format!("metadata \"epoch\" is {} but the run plans {} epochs", trainer.epoch, cfg.hyper.epochs),
        });
    }
    let metrics = read_metrics(&dir.join(METRICS_FILE))?;
    check_metrics_digest(dir, &state, &metrics)?;
    // One commit writes the checkpoint and its metrics together: rows for other epochs mean one of them was
    // edited or mixed from another run.
    let epochs: Vec<usize> = metrics.iter().map(|m| m.epoch).collect();
    if epochs != (1..=trainer.epoch).collect::<Vec<_>>() {
        return Err(RunError::Invalid {
            file: dir.join(METRICS_FILE),
            problem: format!(
                "has rows for epochs {epochs:?}, but the checkpoint completed epochs 1 to {}",
                trainer.epoch
            ),
        });
    }
    Ok(Resumed { cfg, trainer, metrics })
}

/// The text of `metrics.csv`: its header, then one row per epoch ([`EpochMetrics`] says the columns).
pub fn metrics_csv(metrics: &[EpochMetrics]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    if metrics.is_empty() {
        w.write_record(METRICS_HEADER).expect("writes to memory");
    }
    for m in metrics {
        w.serialize(m).expect("numbers serialize");
    }
    String::from_utf8(w.into_inner().expect("writes to memory")).expect("UTF-8")
}

/// Reads `metrics.csv` back by its column names (an absent file reads as no rows).
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>, RunError> {
    let text = match crate::read::read_regular(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(RunError::Io { file: path.into(), source }),
    };
    let bad = |e: csv::Error| {
        let problem = match e.position() {
            Some(p) => format!("line {} is not a metrics row", p.line()),
            None => format!("is not a metrics table: {e}"),
        };
        RunError::Invalid { file: path.into(), problem }
    };
    let rows: Vec<EpochMetrics> =
        csv::Reader::from_reader(&text[..]).deserialize().map(|row| row.map_err(bad)).collect::<Result<_, _>>()?;
    for (i, m) in rows.iter().enumerate() {
        if let Some(problem) = metrics_problem(m, i.checked_sub(1).map(|j| &rows[j])) {
            // Line 1 is the header.
            return Err(RunError::Invalid { file: path.into(), problem: format!("line {}: {problem}", i + 2) });
        }
    }
    Ok(rows)
}

/// What is impossible in a metrics row `m` that follows `prev`: an accuracy outside [0, 1], a negative or
/// infinite loss or speed, an epoch that does not follow the previous one. (NaN stands for a value a row
/// does not have.)
fn metrics_problem(m: &EpochMetrics, prev: Option<&EpochMetrics>) -> Option<String> {
    for (name, v) in [("train_acc", m.train_acc), ("test_acc", m.test_acc)] {
        if !v.is_nan() && !(0.0..=1.0).contains(&v) {
            return Some(format!("{name} is {v}, not an accuracy in [0, 1]"));
        }
    }
    for (name, v) in [("loss", m.loss), ("test_loss", m.test_loss), ("img_per_s", m.img_per_s)] {
        if !(v.is_nan() || (v >= 0.0 && v.is_finite())) {
            return Some(format!("{name} is {v}, not a finite value >= 0"));
        }
    }
    match prev {
        Some(p) if m.epoch <= p.epoch || m.step < p.step => {
            Some(format!("epoch {} step {} follows epoch {} step {}", m.epoch, m.step, p.epoch, p.step))
        }
        None if m.epoch == 0 => Some("epoch 0 (epochs count from 1)".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit's files go to the directory the run locked, even when its name was given to another
    /// directory meanwhile: the path a run writes through follows the open directory, not its name.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_run_writes_into_the_directory_it_locked_whatever_its_name_becomes() {
        let base = std::env::temp_dir().join(format!("cnn-as-mlp-held-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (dir, moved) = (base.join("run"), base.join("run.moved"));
        let run = RunDir::create(&dir).unwrap();
        assert_ne!(run.at, run.path, "no held path on Linux");
        std::fs::rename(&dir, &moved).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(run.at.join("x"), b"1").unwrap();
        assert_eq!(std::fs::read(moved.join("x")).unwrap(), b"1");
        assert!(!dir.join("x").exists());
        assert!(run.check_identity().is_err());
        drop(run);
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// Rows no run writes are refused with their line and value: an accuracy of 7 or −3, a negative loss, an
    /// epoch that goes back; a row without the test columns' values (NaN) is kept.
    #[test]
    fn metrics_rows_that_no_run_writes_are_refused() {
        let dir = std::env::temp_dir().join(format!("cnn-as-mlp-metrics-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(METRICS_FILE);
        let head = "epoch,step,loss,train_acc,test_loss,test_acc,img_per_s\n";
        let good = "1,5,0.5,0.5,0.5,0.5,10.0\n";
        for (row, needle) in [
            ("2,10,0.5,7,0.5,0.5,10.0\n", "line 3: train_acc is 7"),
            ("2,10,0.5,0.5,0.5,-3,10.0\n", "line 3: test_acc is -3"),
            ("2,10,-1,0.5,0.5,0.5,10.0\n", "line 3: loss is -1"),
            ("2,10,0.5,0.5,0.5,0.5,inf\n", "line 3: img_per_s is inf"),
            ("1,10,0.5,0.5,0.5,0.5,10.0\n", "line 3: epoch 1 step 10 follows epoch 1 step 5"),
        ] {
            std::fs::write(&file, format!("{head}{good}{row}")).unwrap();
            let e = read_metrics(&file).expect_err(row).to_string();
            assert!(e.contains(needle), "{row:?}: {e}");
        }
        std::fs::write(&file, format!("{head}{good}2,10,0.4,0.6,NaN,NaN,10.0\n")).unwrap();
        assert_eq!(read_metrics(&file).unwrap().len(), 2);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// `metrics.csv` as runs wrote it before `csv` and `serde` did: read back and written again, the same
    /// bytes; a file of the first seven columns reads with `lr`, `train_s`, `wall_s` as NaN; a bad row is
    /// named by its line.
    #[test]
    fn metrics_csv_keeps_its_bytes() {
        let dir = std::env::temp_dir().join(format!("cnn-as-mlp-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(METRICS_FILE);
        let written = "epoch,step,loss,train_acc,test_loss,test_acc,img_per_s,lr,train_s,wall_s\n\
                       1,32,2.288619,0.144000,2.221073,0.466068,8362.8,0.05,0.239,0.519\n\
                       2,64,1.689530,0.470000,0.894917,0.691617,7484.9,0.037500000000000006,0.267,0.352\n\
                       3,96,0.634670,0.801000,0.450760,0.875250,5014.3,0.00001,0.399,0.522\n";
        std::fs::write(&file, written).unwrap();
        let rows = read_metrics(&file).unwrap();
        assert_eq!((rows.len(), rows[2].lr, rows[1].wall_secs), (3, 1e-5, 0.352));
        assert_eq!(metrics_csv(&rows), written);
        assert_eq!(metrics_csv(&[]), "epoch,step,loss,train_acc,test_loss,test_acc,img_per_s,lr,train_s,wall_s\n");

        std::fs::write(&file, "epoch,step,loss,train_acc,test_loss,test_acc,img_per_s\n1,5,0.5,0.5,0.5,0.5,10.0\n")
            .unwrap();
        let old = read_metrics(&file).unwrap();
        assert!(old[0].step == 5 && old[0].lr.is_nan() && old[0].train_secs.is_nan() && old[0].wall_secs.is_nan());

        std::fs::write(&file, written.replace("\n3,96,", "\n3,x,")).unwrap();
        let e = read_metrics(&file).unwrap_err().to_string();
        assert!(e.ends_with("metrics.csv: line 4 is not a metrics row"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
