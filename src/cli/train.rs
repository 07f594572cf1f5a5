//! `cnn-as-mlp train`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{CliError, Common, check_fit, load_data, parse_loss};
use cnn_as_mlp::checkpoint::{self, Stored};
use cnn_as_mlp::init::init_params;
use cnn_as_mlp::network::Network;
use cnn_as_mlp::optim::DecayMode;
use cnn_as_mlp::run::{self, MODEL_FILE, RunConfig};
use cnn_as_mlp::spec::Spec;
use cnn_as_mlp::train::{EpochMetrics, Hyper, LrSchedule, StepProgress, TrainError, Trainer};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct TrainArgs {
    /// lenet5, seed, cifar, vgg16, or a model spec string ("1x28x28 > conv(6,5) > relu > ...").
    #[arg(long)]
    pub(super) model: Option<String>,
    /// mnist10k (embedded), fashion, cifar10, or a directory of IDX or CIFAR-10 binary files.
    #[arg(long)]
    pub(super) data: Option<String>,
    /// Epochs in total (with --resume: the total to reach).
    #[arg(long)]
    pub(super) epochs: Option<usize>,
    #[arg(long)]
    pub(super) batch: Option<usize>,
    #[arg(long)]
    pub(super) lr: Option<f64>,
    /// constant or cosine (from --lr down towards 0 over the epochs); presets carry their own.
    #[arg(long, value_name = "SCHEDULE")]
    pub(super) lr_schedule: Option<String>,
    #[arg(long)]
    pub(super) momentum: Option<f64>,
    #[arg(long)]
    pub(super) weight_decay: Option<f64>,
    /// per-parameter (PyTorch's weight_decay) or expanded (once per copy in the expanded matrix).
    #[arg(long)]
    pub(super) decay_mode: Option<String>,
    /// Loss for custom specs: ce or mse (presets carry their own).
    #[arg(long)]
    pub(super) loss: Option<String>,
    /// Seed of the initialisation and of the shuffles.
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// Start from these parameters (a safetensors file) instead of a random initialisation.
    #[arg(long, value_name = "PARAMS.safetensors")]
    pub(super) init: Option<PathBuf>,
    /// Use only the first N training and N test images.
    #[arg(long, value_name = "N")]
    pub(super) limit: Option<usize>,
    /// Run directory to create (default: runs/MODEL-UNIXTIME).
    #[arg(long, value_name = "RUN_DIR")]
    pub(super) out: Option<PathBuf>,
    /// Continue the run in this directory, bit-identically to an uninterrupted run.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["model", "data", "batch", "lr", "lr_schedule", "momentum", "weight_decay", "decay_mode", "loss", "seed", "init", "limit", "out"])]
    pub(super) resume: Option<PathBuf>,
    #[command(flatten)]
    pub(super) common: Common,
}

pub fn run(a: TrainArgs) -> Result<(), CliError> {
    let engine = a.common.engine()?;
    let pool = a.common.pool()?;
    #[cfg(feature = "mpi")]
    if cnn_as_mlp::mpi::launched_by_mpirun() {
        let mpi = cnn_as_mlp::mpi::Mpi::init().ok_or_else(|| CliError::other("cannot initialise MPI"))?;
        use cnn_as_mlp::distributed::Collective;
        let rank = mpi.rank();
        let r = run_on(&a, engine, &pool, rank != 0, Some(mpi.clone()));
        if rank == 0 && r.is_ok() {
            let (n, ms, bytes) = mpi.stats();
            println!(
                "mpi: ranks={} all_gathers={n} comm_ms_per_step={ms:.3} bytes_sent_per_rank_per_step={bytes:.0} bytes_received_per_rank_per_step={:.0}",
                mpi.size(),
                bytes * mpi.size() as f64
            );
        }
        return r;
    }
    run_in(&a, engine, &pool, false)
}

/// Runs `train` on `pool`. `quiet`: no progress bar and no per-step lines (a sweep runs several at once).
pub(super) fn run_in(
    a: &TrainArgs,
    engine: cnn_as_mlp::network::Engine,
    pool: &rayon::ThreadPool,
    quiet: bool,
) -> Result<(), CliError> {
    run_on(a, engine, pool, quiet, None)
}

/// [`run_in`], with each batch's shards spread over the ranks of `collective` when it is set: then only
/// rank 0 writes the run directory and prints.
fn run_on(
    a: &TrainArgs,
    engine: cnn_as_mlp::network::Engine,
    pool: &rayon::ThreadPool,
    quiet: bool,
    collective: Option<std::sync::Arc<dyn cnn_as_mlp::distributed::Collective>>,
) -> Result<(), CliError> {
    let writes = collective.as_ref().is_none_or(|c| c.rank() == 0);
    let threads = pool.current_num_threads();
    pool.install(|| {
        // Everything that can fail on user input is checked before the run directory is created.
        let (cfg, mut trainer, metrics, dir, fresh) = match &a.resume {
            Some(dir) => {
                let r = run::load(dir, engine)?;
                let mut cfg = r.cfg;
                let mut trainer = r.trainer;
                if let Some(e) = a.epochs {
                    cfg.hyper.epochs = e;
                    trainer.hyper.epochs = e;
                }
                (cfg, trainer, r.metrics, dir.clone(), false)
            }
            None => {
                let (cfg, trainer) = fresh_run(a, engine)?;
                let dir = a.out.clone().unwrap_or_else(|| default_dir(&cfg));
                if writes && dir.join(MODEL_FILE).exists() {
                    return Err(CliError::other(format!(
                        "{}: already holds a run; continue it with --resume or choose another --out",
                        dir.display()
                    )));
                }
                (cfg, trainer, Vec::new(), dir, true)
            }
        };
        let data = load_data(&cfg.data, cfg.limit)?;
        check_fit(&cfg.spec, &cfg.data, &[&data.train, &data.test])?;
        if data.train.is_empty() || data.test.is_empty() {
            return Err(CliError::other(format!("data {}: the training or test set is empty", cfg.data)));
        }
        trainer.collective = collective.clone();
        if fresh && writes {
            std::fs::create_dir_all(&dir)
                .map_err(|e| CliError::other(format!("{}: cannot create: {e}", dir.display())))?;
            save(&dir, &cfg, &trainer, &metrics)?;
        }
        train_loop(&cfg, &mut trainer, metrics, &data, &dir, threads, engine.name(), quiet, writes)
    })
}

fn fresh_run(a: &TrainArgs, engine: cnn_as_mlp::network::Engine) -> Result<(RunConfig, Trainer), CliError> {
    let model = a.model.clone().unwrap_or_else(|| "lenet5".into());
    let spec = Spec::parse(&model)?;
    let preset = cnn_as_mlp::spec::preset(&model).is_some();
    let mut h = Hyper::preset(&model);
    if let Some(l) = &a.loss {
        if preset {
            return Err(CliError::other(format!(
                "--loss: the preset {model} carries its own loss ({})",
                h.loss.name()
            )));
        }
        h.loss = parse_loss(l)?;
    }
    let positive = |name: &str, v: usize| {
        if v == 0 { Err(CliError::other(format!("--{name} 0: must be at least 1"))) } else { Ok(v) }
    };
    let finite = |name: &str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(CliError::other(format!("--{name} {v}: must be finite and >= 0")))
        }
    };
    h.epochs = positive("epochs", a.epochs.unwrap_or(h.epochs))?;
    h.batch = positive("batch", a.batch.unwrap_or(h.batch))?;
    h.lr = finite("lr", a.lr.unwrap_or(h.lr))?;
    h.momentum = finite("momentum", a.momentum.unwrap_or(h.momentum))?;
    h.weight_decay = finite("weight-decay", a.weight_decay.unwrap_or(h.weight_decay))?;
    if let Some(l) = &a.lr_schedule {
        h.schedule = LrSchedule::from_name(l)
            .ok_or_else(|| CliError::other(format!("--lr-schedule {l:?}: expected constant or cosine")))?;
    }
    if let Some(d) = &a.decay_mode {
        h.decay_mode = DecayMode::from_name(d)
            .ok_or_else(|| CliError::other(format!("--decay-mode {d:?}: expected per-parameter or expanded")))?;
    }
    h.seed = a.seed.unwrap_or(h.seed);
    if let Some(n) = a.limit {
        positive("limit", n)?;
    }
    super::check_index_fits(&spec, engine)?;
    let mut net = Network::<f32>::new(&spec, engine);
    match &a.init {
        Some(p) => checkpoint::load_params(&mut net, &Stored::read(p)?)?,
        None => init_params(&mut net, h.init, h.seed),
    }
    let cfg =
        RunConfig { model, spec, data: a.data.clone().unwrap_or_else(|| "mnist10k".into()), limit: a.limit, hyper: h };
    let trainer = Trainer::new(net, cfg.hyper.clone());
    Ok((cfg, trainer))
}

/// [`run::save`], then the curves of the metrics so far ([`run::PLOT_FILE`]).
fn save(dir: &Path, cfg: &RunConfig, trainer: &Trainer, metrics: &[EpochMetrics]) -> Result<(), CliError> {
    run::save(dir, cfg, trainer, metrics)?;
    let plot = dir.join(run::PLOT_FILE);
    let title = format!("{} on {}", cfg.model_label(), cfg.data);
    super::draw::curves::plot_curves(&plot, metrics, &title)
        .map_err(|problem| run::RunError::Invalid { file: plot, problem })?;
    Ok(())
}

fn default_dir(cfg: &RunConfig) -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let label: String = cfg.model_label().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    PathBuf::from("runs").join(format!("{label}-{secs}"))
}

#[allow(clippy::too_many_arguments)] // the run's pieces, each used; a struct would only rename them
fn train_loop(
    cfg: &RunConfig,
    trainer: &mut Trainer,
    mut metrics: Vec<EpochMetrics>,
    data: &cnn_as_mlp::data::Splits,
    dir: &Path,
    threads: usize,
    engine: &str,
    quiet: bool,
    writes: bool,
) -> Result<(), CliError> {
    let epochs = cfg.hyper.epochs;
    let steps = data.train.len().div_ceil(cfg.hyper.batch);
    let start_epoch = trainer.epoch;
    let terminal = !quiet && std::io::stderr().is_terminal();
    let (mut images, mut secs) = (0usize, 0.0f64);
    // Under MPI only rank 0 (the writer) prints.
    let say = |line: String| {
        if writes {
            println!("{line}")
        }
    };
    say(format!(
        "train: {} ({} parameters) on {} ({} train, {} test), run directory {}",
        cfg.spec,
        trainer.net.n_params(),
        cfg.data,
        data.train.len(),
        data.test.len(),
        dir.display()
    ));
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
        let mut on_step = |p: &StepProgress| {
            let left = ((p.steps - p.step) + epochs_left * p.steps) as f64 * cfg.hyper.batch as f64 / p.img_per_s;
            let msg = format!("loss {:.4} acc {:.4} {:.0} img/s left {}", p.loss, p.acc, p.img_per_s, mmss(left));
            if terminal {
                bar.set_position(p.step as u64);
                bar.set_message(msg);
            } else if !quiet && p.step * 4 / p.steps > last_plain && p.step < p.steps {
                last_plain = p.step * 4 / p.steps;
                println!("epoch {}/{epochs} step {}/{} {msg}", p.epoch, p.step, p.steps);
            }
        };
        let result = trainer.run_epoch(&data.train, &data.test, &mut on_step);
        bar.finish_and_clear();
        let m = match result {
            Ok(m) => m,
            Err(e @ TrainError::NonFinite { .. }) => {
                return Err(CliError::other(format!(
                    "{e}; stopped, {} keeps the last good checkpoint (epoch {})",
                    dir.join(MODEL_FILE).display(),
                    trainer.epoch
                )));
            }
            Err(e @ TrainError::Collective { .. }) => return Err(CliError::other(e.to_string())),
        };
        images += data.train.len();
        secs += m.train_secs;
        say(format!(
            "epoch {}/{epochs} step {} loss {:.4} train_acc {:.4} test_loss {:.4} test_acc {:.4} img_per_s {:.0} train_s {:.2}",
            m.epoch, m.step, m.loss, m.train_acc, m.test_loss, m.test_acc, m.img_per_s, m.train_secs
        ));
        metrics.push(m);
        if writes {
            save(dir, cfg, trainer, &metrics)?;
        }
    }
    let test_acc = metrics.last().map_or(f64::NAN, |m| m.test_acc);
    let img_per_s = if secs > 0.0 { images as f64 / secs } else { 0.0 };
    let model: String = cfg.model.chars().filter(|c| !c.is_whitespace()).collect();
    say(format!(
        "train: model={model} data={} engine={engine} epochs={epochs} batch={} threads={threads} img_per_s={img_per_s:.0} test_acc={test_acc:.4}",
        cfg.data, cfg.hyper.batch
    ));
    Ok(())
}

fn mmss(s: f64) -> String {
    if !s.is_finite() {
        return "?".into();
    }
    let s = s.round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}
