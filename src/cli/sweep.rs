//! `cnn-as-mlp sweep`: a grid of training runs, run in parallel within a thread budget, and a summary.
//!
//! The grid is the cartesian product models × engines × learning rates × seeds; every other flag passes
//! through to each run. Each run is an ordinary run directory `OUT/MODEL-ENGINE-lrLR-seedS` written by the
//! same code as `train` ([`super::train::run_in`]), so a run's bytes equal those of the same run done alone
//! (determinism holds across thread counts, and runs share nothing but the machine).
//!
//! Scheduling: with a budget of `T` threads and `N` runs, `k = min(T, N)` workers each own a rayon pool of
//! `T / k` threads and take the next unstarted run until none is left.
//!
//! Resuming: a run whose checkpoint has reached `--epochs` is skipped; a run with a checkpoint short of it
//! is resumed (`train --resume`); any other run starts fresh. So a sweep that was interrupted is continued
//! by running the same command again.
//!
//! Summary: `sweep.csv` and `sweep.md` give, per setting (a grid point less its seed), the mean ± sample
//! standard deviation, min and max over seeds of the final test accuracy and test loss and of the mean
//! training img/s; `sweep.png` draws every run's test accuracy and training loss per epoch, one colour per
//! setting.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::common::{CliError, Common, DecayArg, EngineArg, LossArg, OptimizerArg, ScheduleArg, outln};
use super::train::{TrainArgs, run_in};
use cnn_as_mlp::checkpoint::Stored;
use cnn_as_mlp::network::Engine;
use cnn_as_mlp::run::{self, MODEL_FILE};
use cnn_as_mlp::train::EpochMetrics;

pub const CSV_FILE: &str = "sweep.csv";
/// The columns of [`CSV_FILE`].
const CSV_HEADER: [&str; 15] = [
    "setting",
    "runs",
    "epochs",
    "test_acc_mean",
    "test_acc_sd",
    "test_acc_min",
    "test_acc_max",
    "test_loss_mean",
    "test_loss_sd",
    "test_loss_min",
    "test_loss_max",
    "img_per_s_mean",
    "img_per_s_sd",
    "img_per_s_min",
    "img_per_s_max",
];
pub const MD_FILE: &str = "sweep.md";
pub const PLOT_FILE: &str = "sweep.png";

#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    /// Models, comma-separated (presets or spec strings; commas inside parentheses belong to the spec).
    #[arg(long, default_value = "lenet5")]
    model: String,
    /// Engines, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "sparse")]
    engine: Vec<EngineArg>,
    /// Seeds: a range `A..B` (B excluded) or a comma-separated list.
    #[arg(long, default_value = "0..3")]
    seeds: String,
    /// Learning rates, comma-separated (default: each model's own).
    #[arg(long, allow_hyphen_values = true)]
    lr: Option<String>,
    /// The sweep's directory: one run directory per grid point, and the summary.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Total worker threads shared by the runs (default: all cores). Results do not depend on it.
    #[arg(long, allow_hyphen_values = true)]
    threads: Option<usize>,
    /// As train's: the data set of every run [default: mnist10k].
    #[arg(long)]
    data: Option<String>,
    /// As train's: epochs of every run [default: each model's own].
    #[arg(long, allow_hyphen_values = true)]
    epochs: Option<usize>,
    /// As train's: images per step [default: each model's own].
    #[arg(long, allow_hyphen_values = true)]
    batch: Option<usize>,
    /// As train's: constant or cosine [default: each model's own].
    #[arg(long, value_name = "SCHEDULE")]
    lr_schedule: Option<ScheduleArg>,
    /// As train's: SGD momentum, in [0, 1) [default: each model's own].
    #[arg(long, allow_hyphen_values = true)]
    momentum: Option<f64>,
    /// As train's: L2 weight decay of the weights [default: each model's own].
    #[arg(long, allow_hyphen_values = true)]
    weight_decay: Option<f64>,
    /// As train's: per-parameter or expanded [default: per-parameter].
    #[arg(long)]
    decay_mode: Option<DecayArg>,
    /// As train's: ce or mse [default: each model's own].
    #[arg(long)]
    loss: Option<LossArg>,
    /// As train's: use only the first N training images [default: all].
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    limit: Option<usize>,
    /// As train's: use only the first N test images.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    test_limit: Option<usize>,
    /// As train's: sgd or adam.
    #[arg(long, value_name = "OPTIMIZER")]
    optimizer: Option<OptimizerArg>,
    /// As train's: with adam, decoupled weight decay (AdamW).
    #[arg(long)]
    decoupled_wd: bool,
    /// As train's: standardise each input channel with the training set's statistics [default: on for the
    /// cifar and vgg16 presets].
    #[arg(long, conflicts_with = "no_normalize")]
    normalize: bool,
    /// As train's: feed x/255 as it is, also to the cifar and vgg16 presets [default: off].
    #[arg(long)]
    no_normalize: bool,
}

/// One grid point.
#[derive(Clone, Debug)]
pub struct Point {
    pub model: String,
    pub engine: EngineArg,
    pub lr: Option<f64>,
    pub seed: u64,
}

impl Point {
    /// The setting: everything but the seed.
    pub fn setting(&self) -> String {
        let lr = self.lr.map_or_else(|| "default".to_string(), |l| l.to_string());
        format!("{} {} lr={lr}", short_model(&self.model), Engine::from(self.engine).name())
    }

    /// The run directory's name: `MODEL-ENGINE-lrLR-seedS`, filesystem-safe.
    pub fn dir_name(&self) -> String {
        let lr = self.lr.map_or_else(|| "default".to_string(), |l| l.to_string());
        let raw = format!("{}-{}-lr{lr}-seed{}", short_model(&self.model), Engine::from(self.engine).name(), self.seed);
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect()
    }
}

/// A preset's name, or `spec` + a stable hash of a spec string (so two specs get two directories).
fn short_model(m: &str) -> String {
    if cnn_as_mlp::spec::preset(m).is_some() {
        return m.trim().to_string();
    }
    // FNV-1a of the whitespace-free spec: stable across runs and platforms.
    let h = m
        .chars()
        .filter(|c| !c.is_whitespace())
        .fold(0xcbf29ce484222325u64, |h, c| (h ^ c as u64).wrapping_mul(0x100000001b3));
    format!("spec{:08x}", h as u32)
}

/// Splits on commas outside parentheses: `lenet5,1x8x8 > conv(2,3)` gives two items.
fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0i32);
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out
}

/// The most runs a sweep holds (grid points; seeds in a range count one by one).
pub const MAX_RUNS: usize = 10_000;

fn parse_seeds(s: &str) -> Result<Vec<u64>, CliError> {
    let bad = || CliError::other(format!("--seeds {s:?}: expected a range A..B (B excluded) or a list like 0,1,2"));
    let seeds: Vec<u64> = if let Some((a, b)) = s.split_once("..") {
        let (a, b): (u64, u64) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
        if b.saturating_sub(a) > MAX_RUNS as u64 {
            return Err(CliError::other(format!(
                "--seeds {s:?}: {} seeds, more than a sweep's {MAX_RUNS} runs",
                b - a
            )));
        }
        (a..b).collect()
    } else {
        s.split(',').map(|x| x.trim().parse().map_err(|_| bad())).collect::<Result<_, _>>()?
    };
    if seeds.is_empty() {
        return Err(bad());
    }
    if let Some(d) = first_repeat(&seeds) {
        return Err(CliError::other(format!(
            "--seeds {s:?}: seed {} is given twice (its run would count twice)",
            seeds[d]
        )));
    }
    Ok(seeds)
}

fn parse_lrs(s: &Option<String>) -> Result<Vec<Option<f64>>, CliError> {
    let Some(s) = s else { return Ok(vec![None]) };
    let lrs = s
        .split(',')
        .map(|x| match x.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
            _ => Err(CliError::other(format!("--lr {x:?}: each learning rate must be a finite number >= 0"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(d) = first_repeat(&lrs) {
        return Err(CliError::other(format!(
            "--lr {s:?}: learning rate {} is given twice (its runs would count twice)",
            lrs[d].unwrap_or(f64::NAN)
        )));
    }
    Ok(lrs)
}

/// The index of the first item equal to an earlier one.
fn first_repeat<T: PartialEq>(v: &[T]) -> Option<usize> {
    (1..v.len()).find(|&i| v[..i].contains(&v[i]))
}

/// The grid, in a fixed order: model, engine, lr, seed (seed fastest).
fn grid(a: &SweepArgs) -> Result<Vec<Point>, CliError> {
    let models = split_top(&a.model);
    let lrs = parse_lrs(&a.lr)?;
    let seeds = parse_seeds(&a.seeds)?;
    if let Some(d) = first_repeat(&a.engine) {
        return Err(CliError::other(format!(
            "--engine: {} is given twice (its runs would count twice)",
            Engine::from(a.engine[d]).name()
        )));
    }
    let n = models.len().saturating_mul(a.engine.len()).saturating_mul(lrs.len()).saturating_mul(seeds.len());
    if n > MAX_RUNS {
        return Err(CliError::other(format!("the grid holds {n} runs, more than a sweep's {MAX_RUNS}")));
    }
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut pts = Vec::new();
    for m in &models {
        if m.is_empty() {
            return Err(CliError::other(format!("--model {:?}: an empty model in the list", a.model)));
        }
        // The same model twice (the same words, or the same spec spaced otherwise) would run into one
        // directory and count twice in the summary.
        let key = short_model(m);
        if let Some((first, _)) = seen.iter().find(|(_, k)| *k == key) {
            return Err(CliError::other(format!("--model: {m:?} is given twice (as {first:?})")));
        }
        seen.push((m.clone(), key));
        cnn_as_mlp::spec::Spec::parse(m)?;
        for &engine in &a.engine {
            for &lr in &lrs {
                for &seed in &seeds {
                    pts.push(Point { model: m.clone(), engine, lr, seed });
                }
            }
        }
    }
    Ok(pts)
}

/// What a run directory holds: `None` (nothing), or the completed epoch of its checkpoint.
fn progress(dir: &Path) -> Result<Option<usize>, CliError> {
    let f = dir.join(MODEL_FILE);
    if !f.exists() {
        return Ok(None);
    }
    Ok(Some(Stored::read(&f)?.meta_parse("epoch")?))
}

/// Fails unless the run in `dir` was made with the settings this sweep gives it (`want`, its fresh
/// configuration, and whether it standardises the inputs), naming the first that differs. Its epochs are compared by the caller (a run with a
/// constant schedule may be extended); a cosine schedule's horizon must be the same.
fn check_settings(want: &run::RunConfig, normalize: bool, dir: &Path) -> Result<(), CliError> {
    let stored = run::RunConfig::from_metadata(&Stored::read(&dir.join(MODEL_FILE))?)?;
    let (w, h) = (&want.hyper, &stored.hyper);
    let opt = |l: Option<usize>| l.map_or_else(|| "all".to_string(), |n| n.to_string());
    let pairs = [
        ("model", want.spec.to_string(), stored.spec.to_string()),
        ("data", want.data.clone(), stored.data.clone()),
        ("limit", opt(want.limit), opt(stored.limit)),
        ("test-limit", opt(want.test_limit), opt(stored.test_limit)),
        ("normalize", normalize.to_string(), stored.normalize.is_some().to_string()),
        ("optimizer", w.optimizer.name().into(), h.optimizer.name().into()),
        ("lr", w.lr.to_string(), h.lr.to_string()),
        ("lr-schedule", w.schedule.name().into(), h.schedule.name().into()),
        ("momentum", w.momentum.to_string(), h.momentum.to_string()),
        ("weight-decay", w.weight_decay.to_string(), h.weight_decay.to_string()),
        ("decay-mode", w.decay_mode.name().into(), h.decay_mode.name().into()),
        ("decoupled-wd", w.decoupled_wd.to_string(), h.decoupled_wd.to_string()),
        ("batch", w.batch.to_string(), h.batch.to_string()),
        ("loss", w.loss.name().into(), h.loss.name().into()),
        ("init", w.init.name().into(), h.init.name().into()),
        ("seed", w.seed.to_string(), h.seed.to_string()),
        ("prune", format!("{:?}", w.prune), format!("{:?}", h.prune)),
    ];
    let cosine = h.schedule == cnn_as_mlp::train::LrSchedule::Cosine;
    let horizon =
        cosine.then(|| ("epochs (the cosine schedule's horizon)", w.epochs.to_string(), h.epochs.to_string()));
    if let Some((key, mine, theirs)) = pairs.into_iter().chain(horizon).find(|(_, x, y)| x != y) {
        return Err(CliError::other(format!(
            "{}: holds a run with {key} {theirs}, but this sweep gives it {mine}; it is not this sweep's run (choose another --out, or move it away)",
            dir.display()
        )));
    }
    Ok(())
}

/// The `train` arguments of one grid point: fresh into `dir`, or resuming it to `resume_to` epochs.
fn train_args(a: &SweepArgs, p: &Point, dir: &Path, resume_to: Option<usize>, threads: usize) -> TrainArgs {
    let common = Common { threads: Some(threads), engine: Some(p.engine) };
    if let Some(epochs) = resume_to {
        return TrainArgs { resume: Some(dir.to_path_buf()), epochs: Some(epochs), common, ..Default::default() };
    }
    TrainArgs {
        model: Some(p.model.clone()),
        data: a.data.clone(),
        epochs: a.epochs,
        batch: a.batch,
        lr: p.lr,
        lr_schedule: a.lr_schedule,
        momentum: a.momentum,
        weight_decay: a.weight_decay,
        decay_mode: a.decay_mode,
        loss: a.loss,
        seed: Some(p.seed),
        limit: a.limit,
        test_limit: a.test_limit,
        optimizer: a.optimizer,
        decoupled_wd: a.decoupled_wd,
        normalize: a.normalize,
        no_normalize: a.no_normalize,
        out: Some(dir.to_path_buf()),
        common,
        ..Default::default()
    }
}

pub fn run(a: SweepArgs) -> Result<(), CliError> {
    let pts = grid(&a)?;
    let budget = match a.threads {
        Some(0) => return Err(CliError::other("--threads 0: need at least one thread")),
        Some(n) if n > super::common::MAX_THREADS => {
            return Err(CliError::other(format!("--threads {n}: at most {}", super::common::MAX_THREADS)));
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    check_out(&a.out, &pts)?;
    std::fs::create_dir_all(&a.out).map_err(|e| CliError::other(format!("{}: cannot create: {e}", a.out.display())))?;
    // Which runs are left, and how far each has come (before any work starts, so bad state fails early).
    // A run found in the sweep's directory is reused only if it was made with this sweep's settings.
    let mut todo: Vec<(usize, Option<usize>)> = Vec::new();
    for (i, p) in pts.iter().enumerate() {
        let dir = a.out.join(p.dir_name());
        let want = super::train::fresh_config(&train_args(&a, p, &dir, None, 1))?;
        let epochs = want.hyper.epochs;
        let done = progress(&dir)?;
        if done.is_some() {
            check_settings(&want, a.normalize, &dir)?;
        }
        match done {
            Some(e) if e > epochs => {
                return Err(CliError::other(format!(
                    "{}: has trained {e} epochs, more than this sweep's {epochs}; it is not this sweep's run (choose another --out)",
                    dir.display()
                )));
            }
            Some(e) if e == epochs => outln!("sweep: {} done, skipped", dir.display()),
            Some(e) => {
                outln!("sweep: {} at epoch {e}, resumed", dir.display());
                todo.push((i, Some(epochs)));
            }
            None => todo.push((i, None)),
        }
    }
    // Under `mpirun` (feature `mpi`) rank r takes the runs k ≡ r (mod R) of the list, after every rank has
    // read the list (before anyone writes); rank 0 writes the summary once all are done.
    #[cfg(feature = "mpi")]
    let mpi = if super::env::launched_by_mpirun() {
        use cnn_as_mlp::distributed::Collective;
        let m = cnn_as_mlp::mpi::Mpi::init(super::env::mpi_timeout())
            .ok_or_else(|| CliError::other("cannot initialise MPI"))?;
        m.flags(0.0);
        let (rank, size) = (m.rank(), m.size());
        todo = todo.into_iter().enumerate().filter(|(k, _)| k % size == rank).map(|(_, t)| t).collect();
        Some(m)
    } else {
        None
    };
    let workers = budget.min(todo.len()).max(1);
    let per_run = (budget / workers).max(1);
    outln!(
        "sweep: {} runs ({} left) in {}, {workers} at a time with {per_run} thread(s) each",
        pts.len(),
        todo.len(),
        a.out.display()
    );
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<CliError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let pool = match rayon::ThreadPoolBuilder::new().num_threads(per_run).build() {
                    Ok(p) => p,
                    Err(e) => {
                        *first_error.lock().unwrap() = Some(CliError::other(format!("cannot start a pool: {e}")));
                        return;
                    }
                };
                loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    if k >= todo.len() || first_error.lock().unwrap().is_some() {
                        return;
                    }
                    let (i, resume_to) = todo[k];
                    let p = &pts[i];
                    let dir = a.out.join(p.dir_name());
                    let r = run_in(&train_args(&a, p, &dir, resume_to, per_run), p.engine.into(), &pool, true);
                    if let Err(e) = r {
                        let mut slot = first_error.lock().unwrap();
                        if slot.is_none() {
                            *slot = Some(CliError::other(format!("run {}: {e}", dir.display())));
                        }
                        return;
                    }
                }
            });
        }
    });
    let error = first_error.into_inner().unwrap();
    #[cfg(feature = "mpi")]
    if let Some(m) = &mpi {
        use cnn_as_mlp::distributed::Collective;
        let failed = m.flags(if error.is_some() { 1.0 } else { 0.0 });
        if let Some(e) = error {
            return Err(e);
        }
        if let Some(r) = failed.iter().position(|&f| f != 0.0) {
            return Err(CliError::other(format!("sweep: rank {r} failed (see its error above)")));
        }
        return if m.rank() == 0 { summarize(&a.out, &pts) } else { Ok(()) };
    }
    if let Some(e) = error {
        return Err(e);
    }
    summarize(&a.out, &pts)
}

/// Mean, sample standard deviation (0 for one value), min and max.
pub fn stats(v: &[f64]) -> (f64, f64, f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, sd, min, max)
}

/// A run of a setting: its seed and its metrics per epoch.
type SeedRun = (u64, Vec<EpochMetrics>);

/// Checks `--out` before anything runs: not a training run's directory (nor inside one), and its summary
/// files (`sweep.csv`, `sweep.md`, `sweep.png`) are regular files that an earlier run of this sweep wrote —
/// the directory then holds at least one of this sweep's run folders; a summary beside none of them is a
/// user's file, never replaced.
fn check_out(out: &Path, pts: &[Point]) -> Result<(), CliError> {
    let shown = out.display();
    if out.exists() && !out.is_dir() {
        return Err(CliError::other(format!("--out {shown}: exists and is not a directory")));
    }
    if run::is_run_dir(out) || run::enclosing_run(out).is_some() {
        return Err(CliError::other(format!(
            "--out {shown}: is (or is inside) a training run's directory; choose another"
        )));
    }
    let ours = pts.iter().any(|p| out.join(p.dir_name()).join(run::MODEL_FILE).exists());
    for name in [CSV_FILE, MD_FILE, PLOT_FILE] {
        let f = out.join(name);
        cnn_as_mlp::atomic::check_target(&f).map_err(|e| CliError::other(format!("--out {shown}: {name} {e}")))?;
        if f.exists() && !ours {
            return Err(CliError::other(format!(
                "--out {shown}: holds a {name} but none of this sweep's runs, so it is not this sweep's summary; choose another directory (or move it away)"
            )));
        }
    }
    Ok(())
}

/// Reads every run's metrics and writes `sweep.csv`, `sweep.md` and `sweep.png`.
fn summarize(out: &Path, pts: &[Point]) -> Result<(), CliError> {
    // Settings in grid order, each with its runs' metrics.
    let mut groups: Vec<(String, Vec<SeedRun>)> = Vec::new();
    for p in pts {
        let m = run::read_metrics(&out.join(p.dir_name()).join(run::METRICS_FILE))?;
        let set = p.setting();
        match groups.iter_mut().find(|(s, _)| *s == set) {
            Some((_, runs)) => runs.push((p.seed, m)),
            None => groups.push((set, vec![(p.seed, m)])),
        }
    }
    // The setting is quoted and the numbers are not, as before: the header is written apart, unquoted.
    let mut head = csv::Writer::from_writer(Vec::new());
    head.write_record(CSV_HEADER).expect("writes to memory");
    let mut table = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::NonNumeric)
        .from_writer(head.into_inner().expect("writes to memory"));
    let mut md = String::from(
        "| setting | runs | epochs | test accuracy (mean ± sd) | min | max | test loss (mean ± sd) | min | max | img/s (mean ± sd) | min | max |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (set, runs) in &groups {
        let last: Vec<&EpochMetrics> = runs.iter().filter_map(|(_, m)| m.last()).collect();
        if last.is_empty() {
            continue;
        }
        let epochs = last.iter().map(|m| m.epoch).min().unwrap_or(0);
        let acc = stats(&last.iter().map(|m| m.test_acc).collect::<Vec<_>>());
        let loss = stats(&last.iter().map(|m| m.test_loss).collect::<Vec<_>>());
        let ips: Vec<f64> = runs
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(_, m)| m.iter().map(|e| e.img_per_s).sum::<f64>() / m.len() as f64)
            .collect();
        let ips = stats(&ips);
        let mut record = vec![set.clone(), last.len().to_string(), epochs.to_string()];
        record.extend([acc, loss, ips].iter().flat_map(|&(a, b, c, d)| [a, b, c, d]).map(|v| format!("{v:.6}")));
        table.write_record(&record).expect("writes to memory");
        md.push_str(&format!(
            "| {set} | {} | {epochs} | {:.4} ± {:.4} | {:.4} | {:.4} | {:.4} ± {:.4} | {:.4} | {:.4} | {:.0} ± {:.0} | {:.0} | {:.0} |\n",
            last.len(),
            acc.0,
            acc.1,
            acc.2,
            acc.3,
            loss.0,
            loss.1,
            loss.2,
            loss.3,
            ips.0,
            ips.1,
            ips.2,
            ips.3
        ));
    }
    md.push_str("\nsd: sample standard deviation over seeds. img/s: each run's mean over its epochs, measured while the sweep's other runs shared the machine.\n");
    super::common::write_file(&out.join(CSV_FILE), &table.into_inner().expect("writes to memory"))?;
    super::common::write_file(&out.join(MD_FILE), md.as_bytes())?;
    let plot = out.join(PLOT_FILE);
    super::draw::sweep::plot_sweep(&plot, &groups)
        .map_err(|problem| CliError::other(format!("{}: {problem}", plot.display())))?;
    {
        use std::io::Write as _;
        let _ = std::io::stdout().lock().write_all(md.as_bytes());
    }
    Ok(())
}
