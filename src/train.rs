//! The training loop: SGD over shuffled mini-batches, one epoch at a time, with evaluation and
//! non-finite-loss detection. The CLI and the tests call this same code.
//!
//! Shuffling: epoch `e` (0-based) permutes the training indices with a generator seeded from
//! `(seed, e)` alone ([`epoch_rng`]), so an interrupted run resumed at epoch `e` draws exactly the
//! permutations an uninterrupted run draws, with nothing but `(seed, e)` saved.

use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::data::Dataset;
use crate::init::Init;
use crate::loss::{Loss, Targets};
use crate::network::Network;
use crate::optim::{Adam, DecayMode, OptimizerKind, Sgd};
use crate::prune::{Prune, prune_by_magnitude};

/// How the learning rate moves over the epochs of a run. The rate is set at the start of each epoch from
/// the epoch number and the run's total, so a resumed run follows the same schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LrSchedule {
    /// `η_e = η` (the PyTorch peer's).
    Constant,
    /// `η_e = η · ½ (1 + cos(π e / E))` for epoch `e = 0 … E − 1`: from `η` down towards 0.
    Cosine,
}

impl LrSchedule {
    pub fn name(self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine => "cosine",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        [LrSchedule::Constant, LrSchedule::Cosine].into_iter().find(|l| l.name() == s)
    }

    /// The learning rate of epoch `epoch` (0-based) of `epochs`, from the base rate `lr`.
    pub fn lr(self, lr: f64, epoch: usize, epochs: usize) -> f64 {
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine => lr * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs.max(1) as f64).cos()),
        }
    }
}

/// Training hyperparameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Hyper {
    pub lr: f64,
    pub schedule: LrSchedule,
    pub momentum: f64,
    pub weight_decay: f64,
    pub decay_mode: DecayMode,
    /// SGD (with `momentum`) or Adam (PyTorch's defaults; `momentum` unused).
    pub optimizer: OptimizerKind,
    /// Adam only: decoupled weight decay (AdamW) instead of the L2 penalty in the gradient.
    pub decoupled_wd: bool,
    pub batch: usize,
    pub epochs: usize,
    pub loss: Loss,
    pub init: Init,
    pub seed: u64,
    /// Gradual magnitude pruning of the conv and dense weights ([`crate::prune`]); `None`: no pruning.
    pub prune: Option<Prune>,
}

impl Hyper {
    /// The defaults of a model name: `lenet5` (SGD lr 0.05 on a cosine schedule, momentum 0.9, weight decay
    /// 1e-4, batch 64, 12 epochs,
    /// cross-entropy, PyTorch's default init), `seed` (plain SGD lr 3.0, batch 16, ½‖h − y‖², Xavier-normal
    /// init, 10 epochs), `cifar` (SGD lr 0.01 constant, momentum 0.9, weight decay 1e-4, batch 64, 10 epochs,
    /// cross-entropy, PyTorch's default init, as the peer `torch_cifar.py --lr 0.01`), `vgg16` (as `cifar`
    /// at batch 8, `torch_step.py`'s default); any other spec takes lenet5's.
    pub fn preset(model: &str) -> Hyper {
        let lenet5 = Hyper {
            lr: 0.05,
            schedule: LrSchedule::Cosine,
            momentum: 0.9,
            weight_decay: 1e-4,
            decay_mode: DecayMode::PerParameter,
            optimizer: OptimizerKind::Sgd,
            decoupled_wd: false,
            batch: 64,
            epochs: 12,
            loss: Loss::CrossEntropy,
            init: Init::TorchDefault,
            seed: 0,
            prune: None,
        };
        match model.trim() {
            "seed" => Hyper {
                lr: 3.0,
                schedule: LrSchedule::Constant,
                momentum: 0.0,
                weight_decay: 0.0,
                batch: 16,
                epochs: 10,
                loss: Loss::HalfSquared,
                init: Init::XavierNormal,
                ..lenet5
            },
            "cifar" => Hyper { lr: 0.01, schedule: LrSchedule::Constant, epochs: 10, ..lenet5 },
            "vgg16" => Hyper { lr: 0.01, schedule: LrSchedule::Constant, epochs: 10, batch: 8, ..lenet5 },
            _ => lenet5,
        }
    }
}

/// A hyperparameter outside its range: the metadata key (`lr`, `batch`, …), the value and the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadHyper {
    pub key: &'static str,
    pub value: String,
    pub rule: &'static str,
}

/// The most epochs a run may plan (a bound, so that a typo is refused rather than run for ever).
pub const MAX_EPOCHS: usize = 100_000;

impl Hyper {
    /// Checks every value a command line or a run's metadata sets: `epochs` in 1..=[`MAX_EPOCHS`], `batch`
    /// at least 1; `lr`
    /// and `weight_decay` finite and `>= 0`; `momentum` finite in `[0, 1)` (at 1 or above the velocity
    /// never decays and training cannot converge).
    pub fn check(&self) -> Result<(), BadHyper> {
        let bad = |key, value: String, rule| Err(BadHyper { key, value, rule });
        if self.epochs == 0 {
            return bad("epochs", "0".into(), "must be at least 1");
        }
        if self.epochs > MAX_EPOCHS {
            return bad("epochs", self.epochs.to_string(), "must be at most 100000");
        }
        if self.batch == 0 {
            return bad("batch", "0".into(), "must be at least 1");
        }
        for (key, v) in [("lr", self.lr), ("weight_decay", self.weight_decay)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(key, v.to_string(), "must be finite and >= 0");
            }
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return bad("momentum", self.momentum.to_string(), "must be in [0, 1)");
        }
        if let Some(p) = self.prune
            && p.check(self.epochs).is_err()
        {
            let value = format!("S={} start={} end={} every={}", p.target, p.start, p.end, p.every);
            return bad("prune", value, "must have 0 <= S < 1, start < end < epochs and every >= 1");
        }
        Ok(())
    }
}

/// The generator that shuffles epoch `epoch` (0-based) of a run seeded with `seed`.
pub fn epoch_rng(seed: u64, epoch: usize) -> StdRng {
    StdRng::seed_from_u64(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Why training stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training diverged: loss became {loss} at epoch {epoch}, step {step} (global step {global_step})")]
    NonFinite { epoch: usize, step: usize, global_step: usize, loss: f32 },
    #[error("data-parallel exchange failed at epoch {epoch}, step {step}: {problem}")]
    Collective { epoch: usize, step: usize, problem: String },
}

/// Progress inside an epoch, reported after each step.
#[derive(Clone, Copy, Debug)]
pub struct StepProgress {
    /// 1-based epoch.
    pub epoch: usize,
    pub step: usize,
    pub steps: usize,
    /// Mean training loss and accuracy so far in this epoch.
    pub loss: f64,
    pub acc: f64,
    /// Training images per second so far in this epoch.
    pub img_per_s: f64,
}

/// One epoch's figures (a row of `metrics.csv`, whose columns are the fields' names: `serde` writes and
/// reads them, see [`crate::run::metrics_csv`]). The figures are written rounded, as the file has always
/// had them; `lr`, `train_s` and `wall_s` read as NaN from files written before those columns existed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Global step count at the end of the epoch.
    pub step: usize,
    /// Mean training loss over the epoch's batches.
    #[serde(serialize_with = "fixed::<6, _>")]
    pub loss: f64,
    /// Training accuracy over the epoch's batches (as the parameters moved).
    #[serde(serialize_with = "fixed::<6, _>")]
    pub train_acc: f64,
    #[serde(serialize_with = "fixed::<6, _>")]
    pub test_loss: f64,
    #[serde(serialize_with = "fixed::<6, _>")]
    pub test_acc: f64,
    /// Training images per second (training loop only).
    #[serde(serialize_with = "fixed::<1, _>")]
    pub img_per_s: f64,
    /// The learning rate of the epoch (constant over it; the schedule moves it between epochs).
    #[serde(serialize_with = "shortest", default = "nan")]
    pub lr: f64,
    /// Seconds in the training loop.
    #[serde(rename = "train_s", serialize_with = "fixed::<3, _>", default = "nan")]
    pub train_secs: f64,
    /// Wall-clock seconds of the whole epoch: training loop and test evaluation.
    #[serde(rename = "wall_s", serialize_with = "fixed::<3, _>", default = "nan")]
    pub wall_secs: f64,
}

/// `v` with `P` digits after the point (`{v:.P}`).
fn fixed<const P: usize, S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:.*}", P))
}

/// `v` as Rust prints it (`{v}`: the shortest decimal that reads back, never in exponent notation).
fn shortest<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn nan() -> f64 {
    f64::NAN
}

/// A network being trained: parameters, optimizer state and position.
pub struct Trainer {
    pub net: Network<f32>,
    /// The SGD optimizer and its momentum buffers (unused when `adam` is set).
    pub sgd: Sgd<f32>,
    /// The Adam optimizer and its moments, when the run uses Adam.
    pub adam: Option<Adam<f32>>,
    pub hyper: Hyper,
    /// Completed epochs.
    pub epoch: usize,
    /// Completed steps.
    pub step: usize,
    /// When set, each batch's shards are spread over the processes of this collective
    /// ([`crate::distributed`]); the bytes stay those of one process.
    pub collective: Option<std::sync::Arc<dyn crate::distributed::Collective>>,
}

impl Trainer {
    /// A trainer at epoch 0 for a network whose parameters are already set.
    pub fn new(net: Network<f32>, hyper: Hyper) -> Self {
        let mut sgd = Sgd::new(hyper.lr, hyper.momentum, hyper.weight_decay, hyper.decay_mode);
        sgd.velocity = net.zero_grads();
        let adam = (hyper.optimizer == OptimizerKind::Adam).then(|| {
            let mut a = Adam::new(hyper.lr, hyper.weight_decay, hyper.decay_mode, hyper.decoupled_wd);
            (a.m, a.v) = (net.zero_grads(), net.zero_grads());
            a
        });
        Trainer { net, sgd, adam, hyper, epoch: 0, step: 0, collective: None }
    }

    /// Trains one epoch on `train`, then evaluates on `test`. `on_step` sees each step's progress.
    /// Stops at the first non-finite loss, before the step that would apply it.
    pub fn run_epoch(
        &mut self,
        train: &Dataset,
        test: &Dataset,
        on_step: &mut dyn FnMut(&StepProgress),
    ) -> Result<EpochMetrics, TrainError> {
        let n = train.len();
        let b = self.hyper.batch;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut epoch_rng(self.hyper.seed, self.epoch));
        let steps = n.div_ceil(b);
        self.sgd.lr = self.hyper.schedule.lr(self.hyper.lr, self.epoch, self.hyper.epochs);
        if let Some(a) = &mut self.adam {
            a.lr = self.sgd.lr;
        }
        let mut grads = self.net.zero_grads();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let start = Instant::now();
        let batches: Vec<&[usize]> = order.chunks(b).collect();
        for (s, &idx) in batches.iter().enumerate() {
            self.prune_if_due(steps);
            let y = train.batch_y(idx);
            grads.iter_mut().flatten().for_each(|g| g.fill_zero());
            // Each shard gathers its own images (bound by memory latency when shuffled) in its own task.
            let load = |r: std::ops::Range<usize>, dst: &mut nalgebra::DMatrix<f32>| train.batch_x_into(&idx[r], dst);
            let j = match &self.collective {
                None => {
                    let j =
                        self.net.loss_and_grad_from(&mut grads, idx.len(), &load, Targets::Labels(&y), self.hyper.loss);
                    correct += count_correct(self.net.output(), &y);
                    j
                }
                Some(c) => {
                    let t = Targets::Labels(&y);
                    let (j, out) = crate::distributed::loss_and_grad(
                        &mut self.net,
                        &mut grads,
                        idx.len(),
                        &load,
                        t,
                        self.hyper.loss,
                        c.as_ref(),
                    )
                    .map_err(|problem| TrainError::Collective {
                        epoch: self.epoch + 1,
                        step: s + 1,
                        problem,
                    })?;
                    correct += count_correct(&out, &y);
                    j
                }
            };
            if !j.is_finite() {
                return Err(TrainError::NonFinite {
                    epoch: self.epoch + 1,
                    step: s + 1,
                    global_step: self.step + 1,
                    loss: j,
                });
            }
            match &mut self.adam {
                Some(a) => a.step(&mut self.net, &grads),
                None => self.sgd.step(&mut self.net, &grads),
            }
            self.step += 1;
            loss_sum += j as f64 * idx.len() as f64;
            seen += idx.len();
            on_step(&StepProgress {
                epoch: self.epoch + 1,
                step: s + 1,
                steps,
                loss: loss_sum / seen as f64,
                acc: correct as f64 / seen as f64,
                img_per_s: seen as f64 / start.elapsed().as_secs_f64().max(1e-9),
            });
        }
        let train_secs = start.elapsed().as_secs_f64();
        self.epoch += 1;
        let ev = evaluate(&mut self.net, test, self.hyper.loss, 1000);
        let wall_secs = start.elapsed().as_secs_f64();
        Ok(EpochMetrics {
            epoch: self.epoch,
            step: self.step,
            loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            test_loss: ev.loss,
            test_acc: ev.acc,
            img_per_s: seen as f64 / train_secs.max(1e-9),
            train_secs,
            lr: self.sgd.lr,
            wall_secs,
        })
    }
}

impl Trainer {
    /// At a pruning step of the schedule ([`Prune::sparsity_at`] of the completed steps), cuts every conv
    /// and dense layer to the schedule's sparsity by magnitude, zeroes the removed weights' momentum (or
    /// Adam's moments) and
    /// rebuilds the layers that lost entries ([`Network::set_mask`]).
    fn prune_if_due(&mut self, steps_per_epoch: usize) {
        let Some(s) = self.hyper.prune.and_then(|p| p.sparsity_at(self.step, steps_per_epoch)) else { return };
        for i in 0..self.net.spec.layers.len() {
            if !self.net.prunable(i) {
                continue;
            }
            let free = self.net.free_mask(i);
            let mut keep = self.net.mask(i).map_or_else(|| free.clone(), <[bool]>::to_vec);
            if prune_by_magnitude(&self.net.params[i][0].data, &free, &mut keep, s) > 0 {
                self.net.set_mask(i, &keep);
                if let Some(v) = self.sgd.velocity.get_mut(i).and_then(|v| v.first_mut()) {
                    v.data.iter_mut().zip(&keep).filter(|(_, k)| !**k).for_each(|(v, _)| *v = 0.0);
                }
                // Adam's moments too: with m = v = 0 and no gradient, a removed weight stays 0.
                if let Some(a) = &mut self.adam {
                    for moment in [&mut a.m, &mut a.v] {
                        if let Some(t) = moment.get_mut(i).and_then(|t| t.first_mut()) {
                            t.data.iter_mut().zip(&keep).filter(|(_, k)| !**k).for_each(|(v, _)| *v = 0.0);
                        }
                    }
                }
            }
        }
    }
}

/// Number of rows of `out` (B, K) whose first maximum sits at the label.
pub fn count_correct(out: &nalgebra::DMatrix<f32>, y: &[usize]) -> usize {
    y.iter().enumerate().filter(|&(b, &yb)| argmax_row(out, b) == yb).count()
}

fn argmax_row(out: &nalgebra::DMatrix<f32>, b: usize) -> usize {
    (1..out.ncols()).fold(0, |best, j| if out[(b, j)] > out[(b, best)] { j } else { best })
}

/// Accuracy, mean loss and confusion matrix of a network on a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub n: usize,
    pub acc: f64,
    pub loss: f64,
    /// `confusion[true][predicted]`, K × K.
    pub confusion: Vec<Vec<usize>>,
}

/// Evaluates `net` on `data` in batches of `batch` (results do not depend on the thread count).
pub fn evaluate(net: &mut Network<f32>, data: &Dataset, loss: Loss, batch: usize) -> Evaluation {
    let k = net.activation_shapes().last().expect("output shape").len();
    let mut confusion = vec![vec![0; k]; k];
    let mut loss_sum = 0.0f64;
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let y = data.batch_y(chunk);
        let j = net.loss_from(chunk.len(), &|r, dst| data.batch_x_into(&chunk[r], dst), Targets::Labels(&y), loss);
        loss_sum += j as f64 * chunk.len() as f64;
        let out = net.output();
        for (b, &yb) in y.iter().enumerate() {
            confusion[yb][argmax_row(out, b)] += 1;
        }
    }
    let n = data.len();
    let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
    Evaluation { n, acc: correct as f64 / n.max(1) as f64, loss: loss_sum / n.max(1) as f64, confusion }
}
