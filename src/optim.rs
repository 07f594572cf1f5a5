//! The optimizers: stochastic gradient descent with momentum ([`Sgd`]) and Adam ([`Adam`]), with L2 weight
//! decay on tied parameters.
//!
//! **SGD.** For each weight element `θ_p` with gradient `g_p` (PyTorch's SGD, dampening 0):
//!
//! ```text
//! g_p ← g_p + λ θ_p          (DecayMode::PerParameter: the penalty λ/2 Σ_p θ_p²)
//! g_p ← g_p + λ m_p θ_p      (DecayMode::Expanded: the penalty λ/2 Σ_p m_p θ_p², θ_p counted once per
//!                             entry of the expanded matrix that reads it; this is λ/2 Σ_{(i,j)} W_ij² when
//!                             no entry is compound, and not otherwise: see proofs/T6)
//! v_p ← μ v_p + g_p
//! θ_p ← θ_p − η v_p
//! ```
//!
//! **Adam** (Kingma & Ba; PyTorch's `torch.optim.Adam`, with its defaults `β₁ = 0.9`, `β₂ = 0.999`,
//! `ε = 1e-8`), at step `t = 1, 2, …`, with `λ_p = λ` (or `λ m_p` in the expanded decay mode):
//!
//! ```text
//! g_p ← g_p + λ_p θ_p              (coupled decay, the default: L2 added to the gradient, as torch.optim.Adam)
//! θ_p ← θ_p (1 − η λ_p)            (decoupled decay instead, --decoupled-wd: torch.optim.AdamW)
//! m_p ← β₁ m_p + (1 − β₁) g_p
//! v_p ← β₂ v_p + (1 − β₂) g_p²
//! θ_p ← θ_p − (η / (1 − β₁ᵗ)) · m_p / (√v_p / √(1 − β₂ᵗ) + ε)
//! ```
//!
//! Biases are not decayed by either optimizer. A parameter whose gradient is always zero and that starts at
//! zero (a connection a table or a group leaves out) stays exactly zero under both.

use rayon::prelude::*;

use crate::network::{Network, Params};
use crate::scalar::Real;

/// Values per parallel task of [`Sgd::step`].
const STEP_CHUNK: usize = 8192;

/// The decay one chunk of [`Sgd::step`] applies.
#[derive(Clone, Copy)]
enum Decay<'a> {
    None,
    Once,
    /// With the multiplicities of the chunk's elements.
    Expanded(&'a [u32]),
}

/// How weight decay counts a tied parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DecayMode {
    /// Once per parameter, `λ θ_p` (PyTorch's `weight_decay`).
    #[default]
    PerParameter,
    /// Once per copy in the expanded matrix, `λ m_p θ_p` (the source's penalty when no entry is compound;
    /// with compound entries, the tap-counting penalty of proofs/T6).
    Expanded,
}

impl DecayMode {
    pub fn name(self) -> &'static str {
        match self {
            DecayMode::PerParameter => "per-parameter",
            DecayMode::Expanded => "expanded",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "per-parameter" => Some(DecayMode::PerParameter),
            "expanded" => Some(DecayMode::Expanded),
            _ => None,
        }
    }
}

/// SGD hyperparameters and the momentum buffers.
#[derive(Clone, Debug)]
pub struct Sgd<T: Real> {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub decay_mode: DecayMode,
    /// `v`, shaped like the parameters (empty until the first step).
    pub velocity: Params<T>,
    /// `m_p` per weight element, shaped like the parameters (filled at the first step).
    multiplicity: Vec<Vec<Vec<u32>>>,
    /// Whether each parameter tensor is a weight (decayed) or a bias (filled at the first step).
    is_weight: Vec<Vec<bool>>,
}

impl<T: Real> Sgd<T> {
    pub fn new(lr: f64, momentum: f64, weight_decay: f64, decay_mode: DecayMode) -> Self {
        Sgd {
            lr,
            momentum,
            weight_decay,
            decay_mode,
            velocity: Vec::new(),
            multiplicity: Vec::new(),
            is_weight: Vec::new(),
        }
    }

    /// One step: `θ ← θ − η v` with `v ← μ v + g + decay` (see the module documentation). `grads` holds
    /// `g` and is left as it was given.
    ///
    /// Element-wise, in fixed chunks of `STEP_CHUNK` (8192) values computed in parallel: any split gives the
    /// same bits.
    pub fn step(&mut self, net: &mut Network<T>, grads: &Params<T>) {
        if self.velocity.is_empty() {
            self.velocity = net.zero_grads();
        }
        if self.decay_mode == DecayMode::Expanded && self.multiplicity.is_empty() {
            self.multiplicity = net.multiplicity();
        }
        if self.is_weight.is_empty() {
            self.is_weight = weight_flags(net);
        }
        let (lr, mu, wd) = (T::of(self.lr), T::of(self.momentum), T::of(self.weight_decay));
        // Every tensor's chunks in one parallel loop (most tensors are one chunk).
        let mut jobs = Vec::new();
        for (layer, (tensors, velocity)) in net.params.iter_mut().zip(&mut self.velocity).enumerate() {
            for (t, (theta, v)) in tensors.iter_mut().zip(velocity).enumerate() {
                let decay = match (self.is_weight[layer][t] && self.weight_decay != 0.0, self.decay_mode) {
                    (false, _) => Decay::None,
                    (true, DecayMode::PerParameter) => Decay::Once,
                    (true, DecayMode::Expanded) => Decay::Expanded(&self.multiplicity[layer][t]),
                };
                let g = grads[layer][t].data.as_slice();
                for (j, (th, v)) in theta.data.chunks_mut(STEP_CHUNK).zip(v.data.chunks_mut(STEP_CHUNK)).enumerate() {
                    let at = j * STEP_CHUNK..j * STEP_CHUNK + th.len();
                    let decay = match decay {
                        Decay::Expanded(m) => Decay::Expanded(&m[at.clone()]),
                        d => d,
                    };
                    jobs.push((th, v, &g[at], decay));
                }
            }
        }
        jobs.into_par_iter().for_each(|(th, v, g, decay)| {
            // One loop per case, so that each vectorises.
            match decay {
                Decay::None => {
                    for ((th, v), &g) in th.iter_mut().zip(v).zip(g) {
                        *v = mu * *v + g;
                        *th -= lr * *v;
                    }
                }
                Decay::Once => {
                    for ((th, v), &g) in th.iter_mut().zip(v).zip(g) {
                        *v = mu * *v + (g + wd * *th);
                        *th -= lr * *v;
                    }
                }
                Decay::Expanded(m) => {
                    for (((th, v), &g), &m) in th.iter_mut().zip(v).zip(g).zip(m) {
                        *v = mu * *v + (g + wd * T::of(m as f64) * *th);
                        *th -= lr * *v;
                    }
                }
            }
        });
    }
}

/// Whether each parameter tensor of `net` is a weight (decayed) or a bias.
fn weight_flags<T: Real>(net: &Network<T>) -> Vec<Vec<bool>> {
    let names = net.param_names();
    let mut name_at = names.iter();
    net.params
        .iter()
        .map(|ts| ts.iter().map(|_| name_at.next().is_some_and(|(n, _)| n.ends_with(".weight"))).collect())
        .collect()
}

/// Which optimizer a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum OptimizerKind {
    /// [`Sgd`], with momentum.
    #[default]
    Sgd,
    /// [`Adam`], PyTorch's defaults.
    Adam,
}

impl OptimizerKind {
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        [OptimizerKind::Sgd, OptimizerKind::Adam].into_iter().find(|o| o.name() == s)
    }
}

/// Adam's hyperparameters, its moment estimates and its step count (see the module documentation).
#[derive(Clone, Debug)]
pub struct Adam<T: Real> {
    pub lr: f64,
    /// `β₁`, `β₂`: decay rates of the first and second moment estimates (PyTorch: 0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to `√v̂` (PyTorch: 1e-8).
    pub eps: f64,
    pub weight_decay: f64,
    pub decay_mode: DecayMode,
    /// Decoupled weight decay (AdamW): shrink `θ` by `1 − η λ` instead of adding `λ θ` to the gradient.
    pub decoupled: bool,
    /// `m`, the first moment estimate, shaped like the parameters (PyTorch's `exp_avg`).
    pub m: Params<T>,
    /// `v`, the second moment estimate (PyTorch's `exp_avg_sq`).
    pub v: Params<T>,
    /// Steps taken: `t` of the bias corrections is `steps + 1` at the next step.
    pub steps: u64,
    multiplicity: Vec<Vec<Vec<u32>>>,
    is_weight: Vec<Vec<bool>>,
}

impl<T: Real> Adam<T> {
    /// PyTorch's defaults: `betas = (0.9, 0.999)`, `eps = 1e-8`; zero moments, no step taken.
    pub fn new(lr: f64, weight_decay: f64, decay_mode: DecayMode, decoupled: bool) -> Self {
        Adam {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay,
            decay_mode,
            decoupled,
            m: Vec::new(),
            v: Vec::new(),
            steps: 0,
            multiplicity: Vec::new(),
            is_weight: Vec::new(),
        }
    }

    /// One step at `t = steps + 1` (see the module documentation). `grads` holds `g` and is left as it was
    /// given. Element-wise, in fixed chunks of `STEP_CHUNK` values computed in parallel: any split gives the
    /// same bits.
    pub fn step(&mut self, net: &mut Network<T>, grads: &Params<T>) {
        if self.m.is_empty() {
            self.m = net.zero_grads();
            self.v = net.zero_grads();
        }
        if self.decay_mode == DecayMode::Expanded && self.multiplicity.is_empty() {
            self.multiplicity = net.multiplicity();
        }
        if self.is_weight.is_empty() {
            self.is_weight = weight_flags(net);
        }
        self.steps += 1;
        let t = self.steps as i32;
        let (b1, b2) = self.betas;
        // As torch.optim.Adam (single tensor, not capturable): the corrections in double precision.
        let step_size = T::of(self.lr / (1.0 - b1.powi(t)));
        let bc2_sqrt = T::of((1.0 - b2.powi(t)).sqrt());
        let (one_b1, b2t, one_b2, eps) = (T::of(1.0 - b1), T::of(b2), T::of(1.0 - b2), T::of(self.eps));
        let (lr, wd, decoupled) = (T::of(self.lr), T::of(self.weight_decay), self.decoupled);
        let mut jobs = Vec::new();
        for (layer, ((tensors, m), v)) in net.params.iter_mut().zip(&mut self.m).zip(&mut self.v).enumerate() {
            for (i, ((theta, m), v)) in tensors.iter_mut().zip(m).zip(v).enumerate() {
                let decay = match (self.is_weight[layer][i] && self.weight_decay != 0.0, self.decay_mode) {
                    (false, _) => Decay::None,
                    (true, DecayMode::PerParameter) => Decay::Once,
                    (true, DecayMode::Expanded) => Decay::Expanded(&self.multiplicity[layer][i]),
                };
                let g = grads[layer][i].data.as_slice();
                let chunks = theta.data.chunks_mut(STEP_CHUNK).zip(m.data.chunks_mut(STEP_CHUNK));
                for (j, ((th, m), v)) in chunks.zip(v.data.chunks_mut(STEP_CHUNK)).enumerate() {
                    let at = j * STEP_CHUNK..j * STEP_CHUNK + th.len();
                    let decay = match decay {
                        Decay::Expanded(mult) => Decay::Expanded(&mult[at.clone()]),
                        d => d,
                    };
                    jobs.push((th, m, v, &g[at], decay));
                }
            }
        }
        jobs.into_par_iter().for_each(|(th, m, v, g, decay)| {
            for (k, (((th, m), v), &g)) in th.iter_mut().zip(m).zip(v).zip(g).enumerate() {
                // λ_p: the decay of this element.
                let lambda = match decay {
                    Decay::None => T::zero(),
                    Decay::Once => wd,
                    Decay::Expanded(mult) => wd * T::of(mult[k] as f64),
                };
                let g = if decoupled {
                    *th *= T::one() - lr * lambda;
                    g
                } else {
                    g + lambda * *th
                };
                // m ← m + (1 − β₁)(g − m) is torch's lerp, β₁ m + (1 − β₁) g in exact arithmetic.
                *m += one_b1 * (g - *m);
                *v = b2t * *v + one_b2 * g * g;
                let denom = v.sqrt() / bc2_sqrt + eps;
                *th -= step_size * (*m / denom);
            }
        });
    }
}
