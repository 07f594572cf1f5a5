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

use crate::network::{Network, Params};
use crate::scalar::Real;

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
}

impl<T: Real> Sgd<T> {
    pub fn new(lr: f64, momentum: f64, weight_decay: f64, decay_mode: DecayMode) -> Self {
        Sgd { lr, momentum, weight_decay, decay_mode, velocity: Vec::new(), multiplicity: Vec::new() }
    }

    /// One step: `θ ← θ − η v` with `v ← μ v + g + decay` (see the module documentation). `grads` holds
    /// `g` and is left as it was given.
    pub fn step(&mut self, net: &mut Network<T>, grads: &Params<T>) {
        if self.velocity.is_empty() {
            self.velocity = net.zero_grads();
        }
        if self.decay_mode == DecayMode::Expanded && self.multiplicity.is_empty() {
            self.multiplicity = net.multiplicity();
        }
        let names = net.param_names();
        let (lr, mu, wd) = (T::of(self.lr), T::of(self.momentum), T::of(self.weight_decay));
        let mut name_at = names.iter();
        for (layer, tensors) in net.params.iter_mut().enumerate() {
            for (t, theta) in tensors.iter_mut().enumerate() {
                let is_weight = name_at.next().is_some_and(|(n, _)| n.ends_with(".weight"));
                let g = &grads[layer][t].data;
                let v = &mut self.velocity[layer][t].data;
                let mult = (self.decay_mode == DecayMode::Expanded && is_weight).then(|| &self.multiplicity[layer][t]);
                for p in 0..theta.data.len() {
                    let mut gp = g[p];
                    if is_weight && self.weight_decay != 0.0 {
                        let m = mult.map_or(T::one(), |m| T::of(m[p] as f64));
                        gp += wd * m * theta.data[p];
                    }
                    v[p] = mu * v[p] + gp;
                    theta.data[p] -= lr * v[p];
                }
            }
        }
    }
}
