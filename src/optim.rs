//! Stochastic gradient descent with momentum and L2 weight decay on tied parameters.
//!
//! For each weight element `θ_p` with gradient `g_p` (PyTorch's SGD, dampening 0):
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
//! Biases are not decayed.

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
            let names = net.param_names();
            let mut name_at = names.iter();
            self.is_weight = net
                .params
                .iter()
                .map(|ts| ts.iter().map(|_| name_at.next().is_some_and(|(n, _)| n.ends_with(".weight"))).collect())
                .collect();
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
