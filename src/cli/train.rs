//! `cnn-as-mlp train`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::common::{CliError, Common, DecayArg, LossArg, OptimizerArg, ScheduleArg, check_fit, load_data, outln};
use cnn_as_mlp::budget;
use cnn_as_mlp::checkpoint::{self, Stored};
use cnn_as_mlp::init::init_params;
use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::optim::OptimizerKind;
use cnn_as_mlp::prune::Prune;
use cnn_as_mlp::run::{self, MODEL_FILE, RunConfig, RunDir};
use cnn_as_mlp::train::{EpochMetrics, Hyper, LrSchedule, StepProgress, TrainError, Trainer};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct TrainArgs {
    /// lenet5, lenet5-1998, seed (the source document's network: sigmoid, mean pooling; not the RNG --seed), cifar,
    /// vgg16, or a model spec string ("1x28x28 > conv(6,5) > relu > ...")
    /// [default: lenet5].
    #[arg(long, allow_hyphen_values = true)]
    pub(super) model: Option<String>,
    /// mnist10k (embedded), fashion, cifar10, or a directory: of IDX or CIFAR-10 binary files, or an image
    /// folder as torchvision's ImageFolder reads it: DIR/train/<class>/*.png|jpg|jpeg for training and
    /// DIR/test/<class>/… (else DIR/val/<class>/…) for testing; classes sorted by name, label = index;
    /// images converted to the model's channels (3 RGB, 1 grey) and scaled x/255 as the other sets
    /// [default: mnist10k].
    #[arg(long)]
    pub(super) data: Option<String>,
    /// Resize image-folder images whose size differs from the model's input (bilinear, to exactly its
    /// height and width) instead of refusing them [default: off].
    #[arg(long)]
    pub(super) resize: bool,
    /// Epochs in total (with --resume: the total to reach) [default: 12; seed 10, cifar 10, vgg16 10].
    #[arg(long, allow_hyphen_values = true)]
    pub(super) epochs: Option<usize>,
    /// Images per step [default: 64; seed 16, vgg16 8].
    #[arg(long, allow_hyphen_values = true)]
    pub(super) batch: Option<usize>,
    /// Learning rate (the initial one under cosine) [default: 0.05; seed 3, cifar 0.01, vgg16 0.01; with
    /// --optimizer adam 0.001, PyTorch's].
    #[arg(long, allow_hyphen_values = true)]
    pub(super) lr: Option<f64>,
    /// constant or cosine (from --lr down towards 0 over the epochs) [default: cosine; seed, cifar and
    /// vgg16 constant].
    #[arg(long, value_name = "SCHEDULE")]
    pub(super) lr_schedule: Option<ScheduleArg>,
    /// SGD momentum, in [0, 1) [default: 0.9; seed 0]. Not with --optimizer adam.
    #[arg(long, allow_hyphen_values = true)]
    pub(super) momentum: Option<f64>,
    /// L2 weight decay of the weights (biases are not decayed) [default: 1e-4; seed 0].
    #[arg(long, allow_hyphen_values = true)]
    pub(super) weight_decay: Option<f64>,
    /// sgd (with --momentum) or adam (torch.optim.Adam's defaults: betas 0.9 and 0.999, eps 1e-8, bias
    /// correction; --weight-decay adds λθ to the gradient unless --decoupled-wd) [default: sgd].
    #[arg(long, value_name = "OPTIMIZER")]
    pub(super) optimizer: Option<OptimizerArg>,
    /// With --optimizer adam: decoupled weight decay, θ ← θ(1 − ηλ) before the Adam step (AdamW), instead
    /// of coupled L2 decay, λθ added to the gradient (torch.optim.Adam's weight_decay) [default: off,
    /// coupled].
    #[arg(long)]
    pub(super) decoupled_wd: bool,
    /// per-parameter (PyTorch's weight_decay) or expanded (once per copy in the expanded matrix)
    /// [default: per-parameter].
    #[arg(long)]
    pub(super) decay_mode: Option<DecayArg>,
    /// Loss for custom specs: ce or mse [default: ce; the presets carry their own: seed mse, others ce].
    #[arg(long)]
    pub(super) loss: Option<LossArg>,
    /// Random seed of the initialisation and of the shuffles (not the `seed` preset) [default: 0].
    #[arg(long, allow_hyphen_values = true)]
    pub(super) seed: Option<u64>,
    /// Start from these parameters (a safetensors file) instead of a random initialisation.
    #[arg(long, value_name = "PARAMS.safetensors")]
    pub(super) init: Option<PathBuf>,
    /// Use only the first N training images [default: all]. The test set is cut by --test-limit only.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub(super) limit: Option<usize>,
    /// Use only the first N test images [default: all].
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub(super) test_limit: Option<usize>,
    /// Standardise each input channel with the training set's mean and standard deviation,
    /// (x/255 − mean) / std, as torchvision's Normalize; the values are stored in the run and reused by
    /// eval and --resume [default: on for the colour presets cifar and vgg16, which do not learn raw x/255
    /// with their SGD settings; off, x/255, otherwise].
    #[arg(long, conflicts_with = "no_normalize")]
    pub(super) normalize: bool,
    /// Feed x/255 as it is, also to the cifar and vgg16 presets (turns their standardisation off) [default: off].
    #[arg(long)]
    pub(super) no_normalize: bool,
    /// Prune the conv and dense weights gradually to this sparsity in [0, 1) by magnitude (Zhu & Gupta's
    /// cubic schedule, from the start of epoch --prune-start to the start of epoch --prune-end, every
    /// --prune-every steps) [default: no pruning].
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    pub(super) prune: Option<String>,
    /// Completed epochs before pruning starts [default: 1; 0 for runs of 2 epochs or fewer].
    #[arg(long, value_name = "E", requires = "prune", allow_hyphen_values = true)]
    pub(super) prune_start: Option<usize>,
    /// Completed epochs when the final sparsity is reached, before --epochs [default: --epochs − 1].
    #[arg(long, value_name = "E", requires = "prune", allow_hyphen_values = true)]
    pub(super) prune_end: Option<usize>,
    /// Steps between two pruning steps [default: 50].
    #[arg(long, value_name = "N", requires = "prune", allow_hyphen_values = true)]
    pub(super) prune_every: Option<usize>,
    /// Run directory to create [default: runs/MODEL-UNIXTIME].
    #[arg(long, value_name = "RUN_DIR")]
    pub(super) out: Option<PathBuf>,
    /// Continue the run in this directory, bit-identically to an uninterrupted run.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["model", "data", "resize", "batch", "lr", "lr_schedule", "momentum", "weight_decay", "optimizer", "decoupled_wd", "decay_mode", "loss", "seed", "init", "limit", "test_limit", "normalize", "no_normalize", "out", "prune"])]
    pub(super) resume: Option<PathBuf>,
    #[command(flatten)]
    pub(super) output: super::common::Output,
    #[command(flatten)]
    pub(super) common: Common,
}

pub fn run(a: TrainArgs) -> Result<(), CliError> {
    let engine = a.common.engine();
    let pool = a.common.pool()?;
    #[cfg(feature = "mpi")]
    if super::env::launched_by_mpirun() {
        let mpi = cnn_as_mlp::mpi::Mpi::init(super::env::mpi_timeout())
            .ok_or_else(|| CliError::other("cannot initialise MPI"))?;
        use cnn_as_mlp::distributed::Collective;
        let rank = mpi.rank();
        let r = run_on(&a, engine, &pool, false, Some(mpi.clone()));
        if rank == 0 && r.is_ok() && !a.output.json {
            let (n, ms, bytes) = mpi.stats();
            outln!(
                "mpi: ranks={} all_gathers={n} comm_ms_per_step={ms:.3} bytes_sent_per_rank_per_step={bytes:.0} bytes_received_per_rank_per_step={:.0}",
                mpi.size(),
                bytes * mpi.size() as f64
            );
        }
        return r;
    }
    run_in(&a, engine, &pool, false)
}

/// Runs `train` on `pool`. `quiet`: as `--quiet` (no progress bar, no per-epoch lines, only the summary;
/// a sweep runs several at once).
pub(super) fn run_in(a: &TrainArgs, engine: Engine, pool: &rayon::ThreadPool, quiet: bool) -> Result<(), CliError> {
    run_on(a, engine, pool, quiet, None)
}

/// [`run_in`], with each batch's shards spread over the ranks of `collective` when it is set: then only
/// rank 0 (the writer) creates, opens and commits the run directory and prints.
fn run_on(
    a: &TrainArgs,
    engine: Engine,
    pool: &rayon::ThreadPool,
    quiet: bool,
    collective: Option<std::sync::Arc<dyn cnn_as_mlp::distributed::Collective>>,
) -> Result<(), CliError> {
    let writes = collective.as_ref().is_none_or(|c| c.rank() == 0);
    let mut output = a.output.clone();
    output.quiet |= quiet && !output.json;
    let threads = pool.current_num_threads();
    pool.install(|| {
        // Everything that can fail on user input is checked before the run directory is created.
        let (cfg, mut trainer, metrics, dir, data) = match &a.resume {
            Some(path) => {
                let dir = if writes { Some(RunDir::open(path)?) } else { None };
                let r = run::load(path, engine)?;
                let mut cfg = r.cfg;
                let mut trainer = r.trainer;
                if let Some(e) = a.epochs {
                    check_new_horizon(path, &cfg, e)?;
                    if e < trainer.epoch {
                        return Err(CliError::other(format!(
                            "--epochs {e}: {} has already completed {} epochs; a run does not go back (give --epochs above {} to continue it, or leave it out)",
                            path.display(),
                            trainer.epoch,
                            trainer.epoch
                        )));
                    }
                    cfg.hyper.epochs = e;
                    trainer.hyper.epochs = e;
                }
                let loaded = load_data(&cfg.data, cfg.limit, cfg.test_limit, &image_options(&cfg))?;
                let mut data = loaded.splits;
                check_fit(&cfg.spec, &cfg.data, loaded.n_classes, &[&data.train, &data.test])?;
                // Every epoch takes the same number of steps: a position that disagrees was edited.
                let steps = data.train.len().div_ceil(cfg.hyper.batch);
                if trainer.step != trainer.epoch * steps {
                    return Err(CliError::other(format!(
                        "{}: metadata \"step\" is {} but {} epochs of {steps} steps make {}; the checkpoint was edited or belongs to other data",
                        path.join(MODEL_FILE).display(),
                        trainer.step,
                        trainer.epoch,
                        trainer.epoch * steps
                    )));
                }
                for set in [&mut data.train, &mut data.test] {
                    set.set_standardize(cfg.normalize.clone())
                        .map_err(|e| CliError::other(format!("{}: {e}", path.display())))?;
                }
                (cfg, trainer, r.metrics, (dir, path.clone()), data)
            }
            None => {
                let mut cfg = fresh_config(a)?;
                // Evaluation between epochs holds up to 1000 test images (fewer with --test-limit).
                budget::check(
                    &cfg.spec,
                    engine,
                    budget::Use::train(cfg.hyper.batch, cfg.test_limit.unwrap_or(1000).min(1000)),
                )?;
                let loaded = load_data(&cfg.data, cfg.limit, cfg.test_limit, &image_options(&cfg))?;
                let mut data = loaded.splits;
                check_fit(&cfg.spec, &cfg.data, loaded.n_classes, &[&data.train, &data.test])?;
                if standardizes(a) {
                    let stats = data.train.channel_stats();
                    data.train.standardize = Some(stats.clone());
                    data.test.standardize = Some(stats.clone());
                    cfg.normalize = Some(stats);
                }
                let trainer = fresh_trainer(a, &cfg, engine)?;
                if data.train.is_empty() || data.test.is_empty() {
                    return Err(CliError::other(format!("data {}: the training or test set is empty", cfg.data)));
                }
                if !writes {
                    // Under MPI the other ranks compute only; rank 0 names and writes the directory.
                    let path = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(default_stem(&cfg)));
                    (cfg, trainer, Vec::new(), (None, path), data)
                } else {
                    let dir = match &a.out {
                        Some(out) => RunDir::create(out)?,
                        None => RunDir::create_unique(Path::new("runs"), &default_stem(&cfg))?,
                    };
                    // Epoch 0 (the initial parameters) is the first commit: from here on the directory resumes.
                    if let Err(e) = commit(&dir, &cfg, &trainer, &[]) {
                        dir.abandon();
                        return Err(e);
                    }
                    let path = dir.path().to_path_buf();
                    (cfg, trainer, Vec::new(), (Some(dir), path), data)
                }
            }
        };
        if data.train.is_empty() || data.test.is_empty() {
            return Err(CliError::other(format!("data {}: the training or test set is empty", cfg.data)));
        }
        let (run_dir, dir) = dir;
        let fresh = a.resume.is_none();
        trainer.collective = collective.clone();
        let report = Report { threads, engine: engine.name(), output: &output, fresh };
        let result = train_loop(&cfg, &mut trainer, metrics, &data, run_dir.as_ref(), &dir, report);
        if let Some(run_dir) = run_dir
            && result.is_err()
            && fresh
            && trainer.epoch == 0
        {
            // A new run that never completed an epoch leaves nothing behind.
            run_dir.abandon();
        }
        result
    })
}

/// How an image folder is decoded for the run: to the model's input shape, resized when the run says so.
fn image_options(cfg: &RunConfig) -> cnn_as_mlp::data::ImageOptions {
    cnn_as_mlp::data::ImageOptions {
        shape: Some(cfg.spec.input),
        resize: cfg.resize,
        limit: cfg.limit,
        test_limit: cfg.test_limit,
    }
}

/// With a cosine schedule the learning rate of every epoch depends on the run's planned epochs (its
/// horizon), so `--resume … --epochs N` must keep it to give the bytes of an uninterrupted run; a
/// constant schedule may be extended or shortened freely. A pruning run keeps its stored schedule (so a
/// longer resumed run equals an uninterrupted one with the same `--prune-end`, not one whose default end
/// followed the larger `--epochs`) and may not stop before it ends.
fn check_new_horizon(dir: &Path, cfg: &RunConfig, epochs: usize) -> Result<(), CliError> {
    if epochs == 0 {
        return Err(CliError::other("--epochs 0: must be at least 1"));
    }
    if epochs > cnn_as_mlp::train::MAX_EPOCHS {
        return Err(CliError::other(format!("--epochs {epochs}: must be at most {}", cnn_as_mlp::train::MAX_EPOCHS)));
    }
    // The pruning schedule is stored with its own epochs (start, end), so a new horizon keeps it; it must still
    // reach its final sparsity before the last epoch.
    if let Some(p) = cfg.hyper.prune
        && p.end >= epochs
    {
        return Err(CliError::other(format!(
            "--epochs {epochs}: {} prunes until the start of epoch {} (--prune-end {}); it resumes to more than {} epochs only",
            dir.display(),
            p.end + 1,
            p.end,
            p.end
        )));
    }
    if cfg.hyper.schedule == LrSchedule::Cosine && epochs != cfg.hyper.epochs {
        return Err(CliError::other(format!(
            "--epochs {epochs}: {} follows a cosine learning-rate schedule planned over {} epochs, and every epoch's rate depends on that horizon; it resumes to {} epochs only (leave out --epochs), or start a new run",
            dir.display(),
            cfg.hyper.epochs,
            cfg.hyper.epochs
        )));
    }
    Ok(())
}

/// Whether a fresh run standardises its inputs: `--normalize` / `--no-normalize` when given, else the preset's
/// choice (on for the colour presets `cifar` and `vgg16`, off for every other model).
pub(super) fn standardizes(a: &TrainArgs) -> bool {
    if a.normalize || a.no_normalize {
        return a.normalize;
    }
    matches!(a.model.as_deref(), Some("cifar" | "vgg16"))
}

pub(super) fn fresh_config(a: &TrainArgs) -> Result<RunConfig, CliError> {
    let model = a.model.clone().unwrap_or_else(|| "lenet5".into());
    let spec = super::common::parse_model(&model)?;
    let preset = cnn_as_mlp::spec::preset(&model).is_some();
    let mut h = Hyper::preset(&model);
    if let Some(l) = &a.loss {
        if preset {
            return Err(CliError::other(format!(
                "--loss: the preset {model} carries its own loss ({})",
                h.loss.name()
            )));
        }
        h.loss = (*l).into();
    }
    if let Some(o) = a.optimizer {
        h.optimizer = o.into();
    }
    if h.optimizer == OptimizerKind::Adam {
        if let Some(m) = a.momentum {
            return Err(CliError::other(format!(
                "--momentum {m}: SGD's; Adam uses its betas (0.9, 0.999) instead (leave out --momentum)"
            )));
        }
        // PyTorch's default learning rate for Adam; no momentum buffer.
        (h.lr, h.momentum) = (0.001, 0.0);
    } else if a.decoupled_wd {
        return Err(CliError::other("--decoupled-wd: applies to --optimizer adam only"));
    }
    h.decoupled_wd = a.decoupled_wd;
    h.epochs = a.epochs.unwrap_or(h.epochs);
    h.batch = a.batch.unwrap_or(h.batch);
    h.lr = a.lr.unwrap_or(h.lr);
    h.momentum = a.momentum.unwrap_or(h.momentum);
    h.weight_decay = a.weight_decay.unwrap_or(h.weight_decay);
    h.check().map_err(|b| CliError::other(format!("--{} {}: {}", b.key.replace('_', "-"), b.value, b.rule)))?;
    if let Some(l) = a.lr_schedule {
        h.schedule = l.into();
    }
    if let Some(d) = a.decay_mode {
        h.decay_mode = d.into();
    }
    h.seed = a.seed.unwrap_or(h.seed);
    if let Some(text) = &a.prune {
        let target = text.trim().parse::<f64>().map_err(|_| {
            CliError::other(format!("--prune {text:?}: expected a sparsity in [0, 1) (e.g. --prune 0.9)"))
        })?;
        let d = Prune::defaults(target, h.epochs);
        if a.prune_end.is_none() && d.end >= h.epochs {
            // Name what the user gave, not the default --prune-end they never saw.
            return Err(CliError::other(format!(
                "--prune {text}: a pruning run needs at least 2 epochs (it reaches its final sparsity before the last epoch), but --epochs is {}",
                h.epochs
            )));
        }
        let p = Prune {
            target,
            start: a.prune_start.unwrap_or(d.start),
            end: a.prune_end.unwrap_or(d.end),
            every: a.prune_every.unwrap_or(d.every),
        };
        p.check(h.epochs).map_err(CliError::other)?;
        h.prune = Some(p);
    }
    if a.limit == Some(0) {
        return Err(CliError::other("--limit 0: must be at least 1"));
    }
    if a.test_limit == Some(0) {
        return Err(CliError::other("--test-limit 0: must be at least 1"));
    }
    Ok(RunConfig {
        model,
        spec,
        data: a.data.clone().unwrap_or_else(|| "mnist10k".into()),
        limit: a.limit,
        test_limit: a.test_limit,
        resize: a.resize,
        // Set from the training set once it is loaded.
        normalize: None,
        hyper: h,
    })
}

/// The trainer of a new run: parameters from `--init` or initialised from the seed. The spec has passed
/// [`budget::check`].
fn fresh_trainer(a: &TrainArgs, cfg: &RunConfig, engine: Engine) -> Result<Trainer, CliError> {
    let mut net = Network::<f32>::new(&cfg.spec, engine);
    match &a.init {
        Some(p) => checkpoint::load_params(&mut net, &Stored::read(p)?)?,
        None => init_params(&mut net, cfg.hyper.init, cfg.hyper.seed),
    }
    Ok(Trainer::new(net, cfg.hyper.clone()))
}

/// Commits an epoch ([`RunDir::commit`]) with the curves of the metrics so far ([`run::PLOT_FILE`]) in the
/// same commit.
fn commit(dir: &RunDir, cfg: &RunConfig, trainer: &Trainer, metrics: &[EpochMetrics]) -> Result<(), CliError> {
    let mut extra = Vec::new();
    if !metrics.is_empty() {
        let path = dir.path();
        let run_name =
            path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        let title = format!("{} on {} (run {run_name})", cfg.model_label(), cfg.data);
        let png = super::draw::curves::curves_png(metrics, &title, &settings_notes(cfg, trainer))
            .map_err(|problem| run::RunError::Invalid { file: dir.path().join(run::PLOT_FILE), problem })?;
        extra.push((run::PLOT_FILE, png));
    }
    dir.commit(cfg, trainer, metrics, extra)?;
    Ok(())
}

/// What `curves.png` says below its legend: the spec, and the optimizer and data settings.
fn settings_notes(cfg: &RunConfig, trainer: &Trainer) -> Vec<String> {
    let h = &cfg.hyper;
    let optimizer = match h.optimizer {
        OptimizerKind::Sgd => format!("SGD lr {} ({}), momentum {}", h.lr, h.schedule.name(), h.momentum),
        OptimizerKind::Adam => format!("Adam lr {} ({})", h.lr, h.schedule.name()),
    };
    let decay = match (h.optimizer, h.decoupled_wd) {
        (OptimizerKind::Adam, true) => "decoupled",
        (OptimizerKind::Adam, false) => "coupled",
        _ => h.decay_mode.name(),
    };
    let limit = |l: Option<usize>| l.map_or_else(|| "all".to_string(), |n| n.to_string());
    vec![
        format!("spec: {}", cfg.spec),
        format!(
            "{optimizer}, weight decay {} ({decay}), batch {}, {} loss, seed {}, engine {}; images: {} train, {} test",
            h.weight_decay,
            h.batch,
            h.loss.name(),
            h.seed,
            trainer.net.engine.name(),
            limit(cfg.limit),
            limit(cfg.test_limit)
        ),
    ]
}

/// `MODEL-UNIXTIME`, the name of a default run directory under `runs/` ([`RunDir::create_unique`] adds
/// `-2`, `-3`, … when runs start in the same second).
fn default_stem(cfg: &RunConfig) -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let label: String = cfg.model_label().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("{label}-{secs}")
}

/// What the summary reports besides the run: the pool's threads, the engine, how much to print.
struct Report<'a> {
    threads: usize,
    engine: &'a str,
    output: &'a super::common::Output,
    /// A new run (not a resume): a divergence in its first epoch leaves no directory.
    fresh: bool,
}

fn train_loop(
    cfg: &RunConfig,
    trainer: &mut Trainer,
    mut metrics: Vec<EpochMetrics>,
    data: &cnn_as_mlp::data::Splits,
    run_dir: Option<&RunDir>,
    dir: &Path,
    report: Report,
) -> Result<(), CliError> {
    let Report { threads, engine, output, fresh } = report;
    // Under MPI only rank 0 (the one holding the run directory) prints.
    let writes = run_dir.is_some();
    let chatty = writes && !output.quiet && !output.json;
    let epochs = cfg.hyper.epochs;
    let steps = data.train.len().div_ceil(cfg.hyper.batch);
    let start_epoch = trainer.epoch;
    let terminal = chatty && std::io::stderr().is_terminal();
    let (mut images, mut secs) = (0usize, 0.0f64);
    let (free, stored) = (trainer.net.n_free_params(), trainer.net.n_params());
    let count = if free == stored {
        format!("{stored} parameters")
    } else {
        format!("{free} parameters, {stored} in the dense layout")
    };
    if chatty {
        outln!(
            "train: {} ({count}) on {} ({} train, {} test), run directory {}",
            cfg.spec,
            cfg.data,
            data.train.len(),
            data.test.len(),
            dir.display()
        );
        if let Some(p) = cfg.hyper.prune {
            outln!(
                "train: pruning conv and dense weights to sparsity {} by magnitude, cubic from step {} to step {}, every {} steps",
                p.target,
                p.start * steps,
                p.end * steps,
                p.every
            );
        }
    }
    if start_epoch >= epochs && writes && !output.json {
        let acc = metrics.last().map_or(f64::NAN, |m| m.test_acc);
        outln!(
            "train: {} has already completed its {epochs} epochs (test_acc={acc:.4}); nothing left to train",
            dir.display()
        );
        return Ok(());
    }
    for _ in start_epoch..epochs {
        let bar = if terminal { ProgressBar::new(steps as u64) } else { ProgressBar::hidden() };
        if terminal {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{}/{epochs}", trainer.epoch + 1));
        }
        let epochs_left = epochs - trainer.epoch - 1;
        let mut last_plain = 0usize;
        // The last step's wall time, and when a plain progress line was last printed.
        let mut step_start = std::time::Instant::now();
        let mut last_line = step_start;
        let mut on_step = |p: &StepProgress| {
            let now = std::time::Instant::now();
            let step_s = (now - step_start).as_secs_f64();
            step_start = now;
            let left = ((p.steps - p.step) + epochs_left * p.steps) as f64 * cfg.hyper.batch as f64 / p.img_per_s;
            let msg = format!(
                "loss {:.4} acc {:.4} {} img/s step {} left {}",
                p.loss,
                p.acc,
                rate(p.img_per_s),
                seconds(step_s),
                mmss(left)
            );
            if terminal {
                bar.set_position(p.step as u64);
                bar.set_message(msg);
            } else if chatty
                && p.step < p.steps
                && (p.step * 4 / p.steps > last_plain || (now - last_line).as_secs_f64() >= PLAIN_EVERY_S)
            {
                // Each quarter of an epoch, and every step of a slow model (one line at most every few seconds).
                last_plain = p.step * 4 / p.steps;
                last_line = now;
                outln!("epoch {}/{epochs} step {}/{} {msg}", p.epoch, p.step, p.steps);
            }
        };
        let result = trainer.run_epoch(&data.train, &data.test, &mut on_step);
        bar.finish_and_clear();
        let m = match result {
            Ok(m) => m,
            Err(e @ TrainError::NonFinite { .. }) if fresh && trainer.epoch == 0 => {
                return Err(CliError::other(format!(
                    "{e}; stopped before completing an epoch, so nothing is kept in {}",
                    dir.display()
                )));
            }
            Err(e @ TrainError::NonFinite { .. }) => {
                return Err(CliError::other(format!(
                    "{e}; stopped, {} keeps the last good checkpoint (epoch {})",
                    dir.join(MODEL_FILE).display(),
                    trainer.epoch
                )));
            }
            Err(e @ TrainError::Collective { .. }) => return Err(CliError::other(e.to_string())),
        };
        // The loss is checked at every step; a step can still push the parameters (or the test outputs)
        // past f32 after the last check. Such an epoch is not committed: the run keeps its last good one.
        let diverged = super::common::first_non_finite(&trainer.net)
            .or_else(|| (!m.test_loss.is_finite()).then(|| format!("the test loss is {}", m.test_loss)));
        if let Some(what) = diverged {
            let (epoch, step) = (m.epoch, m.step);
            // The trainer stands where the directory does: at its last commit.
            trainer.epoch -= 1;
            let kept = if fresh && trainer.epoch == 0 {
                format!("stopped before completing an epoch, so nothing is kept in {}", dir.display())
            } else {
                format!(
                    "stopped, {} keeps the last good checkpoint (epoch {})",
                    dir.join(MODEL_FILE).display(),
                    trainer.epoch
                )
            };
            return Err(CliError::other(format!(
                "training diverged: {what} after epoch {epoch} (global step {step}); {kept}"
            )));
        }
        images += data.train.len();
        secs += m.train_secs;
        if chatty && cfg.hyper.prune.is_some() {
            outln!("epoch {}/{epochs} {}", m.epoch, sparsity_line(&trainer.net));
        }
        if chatty {
            outln!(
                "epoch {}/{epochs} step {} loss {:.4} train_acc {:.4} test_loss {:.4} test_acc {:.4} img_per_s {:.0} train_s {:.2}",
                m.epoch,
                m.step,
                m.loss,
                m.train_acc,
                m.test_loss,
                m.test_acc,
                m.img_per_s,
                m.train_secs
            );
        }
        metrics.push(m);
        if let Some(run_dir) = run_dir {
            commit(run_dir, cfg, trainer, &metrics)?;
        }
    }
    let test_acc = metrics.last().map_or(f64::NAN, |m| m.test_acc);
    let img_per_s = if secs > 0.0 { images as f64 / secs } else { 0.0 };
    let model: String = cfg.model.chars().filter(|c| !c.is_whitespace()).collect();
    if !writes {
        return Ok(());
    }
    if output.json {
        let last = metrics.last();
        let v = serde_json::json!({
            "model": model,
            "spec": cfg.spec.to_string(),
            "data": cfg.data,
            "engine": engine,
            "epochs": epochs,
            "batch": cfg.hyper.batch,
            "lr": cfg.hyper.lr,
            "optimizer": cfg.hyper.optimizer.name(),
            "seed": cfg.hyper.seed,
            "threads": threads,
            "params": trainer.net.n_params(),
            "train_images": data.train.len(),
            "test_images": data.test.len(),
            "img_per_s": img_per_s,
            "loss": last.map(|m| m.loss),
            "train_acc": last.map(|m| m.train_acc),
            "test_loss": last.map(|m| m.test_loss),
            "test_acc": last.map(|m| m.test_acc),
            "run_dir": dir.display().to_string(),
        });
        outln!("{v}");
        return Ok(());
    }
    outln!(
        "train: model={model} data={} engine={engine} epochs={epochs} batch={} threads={threads} img_per_s={img_per_s:.0} test_acc={test_acc:.4}",
        cfg.data,
        cfg.hyper.batch
    );
    Ok(())
}

/// `sparsity 0.900 (conv 0.900, dense 0.900)`: the fraction of the free conv and dense weights removed.
fn sparsity_line(net: &Network<f32>) -> String {
    let (mut removed, mut free) = ([0usize; 2], [0usize; 2]);
    for i in (0..net.spec.layers.len()).filter(|&i| net.prunable(i)) {
        let kind = usize::from(matches!(net.spec.layers[i], cnn_as_mlp::spec::Layer::Dense { .. }));
        let f = net.free_mask(i);
        free[kind] += f.iter().filter(|&&x| x).count();
        if let Some(m) = net.mask(i) {
            removed[kind] += f.iter().zip(m).filter(|&(&f, &k)| f && !k).count();
        }
    }
    let r = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    format!(
        "sparsity {:.3} (conv {:.3}, dense {:.3})",
        r(removed[0] + removed[1], free[0] + free[1]),
        r(removed[0], free[0]),
        r(removed[1], free[1])
    )
}

/// Without a terminal, a progress line is printed at each quarter of an epoch and, between them, whenever
/// this many seconds have passed since the last one (so a model of several seconds a step shows every step).
const PLAIN_EVERY_S: f64 = 5.0;

/// Images per second with the digits that matter: `1234`, `12.3`, `0.85`.
fn rate(r: f64) -> String {
    match r {
        r if r >= 100.0 => format!("{r:.0}"),
        r if r >= 10.0 => format!("{r:.1}"),
        r => format!("{r:.2}"),
    }
}

/// A step's wall time: `850ms` below 10 s, `12.3s` above.
fn seconds(s: f64) -> String {
    if s < 10.0 { format!("{:.0}ms", s * 1000.0) } else { format!("{s:.1}s") }
}

fn mmss(s: f64) -> String {
    if !s.is_finite() {
        return "?".into();
    }
    let s = s.round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}
