//! Parameter initialisation.
//!
//! - [`Init::TorchDefault`]: PyTorch's default for `Conv2d` and `Linear`: weights and biases uniform in
//!   `[−1/√fan_in, 1/√fan_in]` (kaiming-uniform with `a = √5`), so accuracies compare with PyTorch's.
//! - [`Init::XavierNormal`]: weights `N(0, 2 / (fan_in + fan_out))`, biases 0 (the source document).
//!
//! Fans: conv and local `fan_in = c_in·k²`, `fan_out = c_out·k²`; dense `n_in`, `n_out`. Draws run layer by
//! layer, weight then bias, in row-major order, from one seeded generator.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::network::{Network, Node};
use crate::scalar::Real;
use crate::spec::{Layer, conv_table};

/// An initialisation scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Init {
    TorchDefault,
    XavierNormal,
}

impl Init {
    pub fn name(self) -> &'static str {
        match self {
            Init::TorchDefault => "torch-default",
            Init::XavierNormal => "xavier-normal",
        }
    }
}

/// `(fan_in, fan_out)` of layer `i` of the network, for layers with weights.
pub fn fans<T: Real>(net: &Network<T>, i: usize) -> Option<(usize, usize)> {
    let input = net.activation_shapes()[i];
    match net.spec.layers[i] {
        // PyTorch: fan_in = weight.size(1)·k·k = (c_in/G)·k·k, fan_out = weight.size(0)·k·k.
        Layer::Conv { c_out, k, groups, .. } => Some((input.c / groups * k * k, c_out * k * k)),
        Layer::Local { c_out, k, .. } => Some((input.c * k * k, c_out * k * k)),
        Layer::Dense { n } => Some((input.len(), n)),
        _ => None,
    }
}

/// Fills every parameter of `net` by `scheme` from a generator seeded with `seed`.
pub fn init_params<T: Real>(net: &mut Network<T>, scheme: Init, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..net.nodes().len() {
        if matches!(net.nodes()[i], Node::Act(_)) {
            continue;
        }
        let Some((fan_in, fan_out)) = fans(net, i) else { continue };
        for (t, tensor) in net.params[i].iter_mut().enumerate() {
            let is_weight = t == 0;
            match scheme {
                Init::TorchDefault => {
                    let bound = 1.0 / (fan_in as f64).sqrt();
                    let u = Uniform::new(-bound, bound).expect("bound > 0");
                    tensor.data.iter_mut().for_each(|v| *v = T::of(u.sample(&mut rng)));
                }
                Init::XavierNormal if is_weight => {
                    let std = (2.0 / (fan_in + fan_out) as f64).sqrt();
                    let n = Normal::new(0.0, std).expect("std > 0");
                    tensor.data.iter_mut().for_each(|v| *v = T::of(n.sample(&mut rng)));
                }
                Init::XavierNormal => tensor.fill_zero(),
            }
        }
        // A connection table's absent kernel entries are 0 (and stay 0: no engine gives them a gradient).
        let input = net.activation_shapes()[i];
        if let (Some(table), Some(Layer::Conv { k, .. })) = (conv_table(&net.spec.layers[i]), net.spec.layers.get(i)) {
            assert_eq!(table.dims().1, input.c, "init: table {table} on {input}");
            for (v, keep) in net.params[i][0].data.iter_mut().zip(table.weight_mask(*k)) {
                if !keep {
                    *v = T::zero();
                }
            }
        }
    }
}
