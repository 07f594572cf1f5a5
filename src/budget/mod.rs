//! Memory a network needs, estimated from its spec before anything is allocated, and the memory the
//! process may use. Every command that builds a network ([`crate::network::Network::new`]) checks
//! [`check`] first, so a spec too large for the machine is one clean error naming the bytes, never an
//! allocation failure (an abort) or a compile that runs for minutes.
//!
//! The estimate, in bytes, for `R` samples held at once (`R = 0` when nothing runs, e.g. `show`), f32
//! values, `S = ⌈R / 32⌉` shards ([`crate::network::SHARD`]), `P` parameters and `F_i` the features of
//! the input and of each layer's output:
//!
//! ```text
//! activations   2 · 4 · R · Σ_i F_i                       acts and deltas, every layer, every shard
//! parameters    4 · P · (copies + S − 1)                  params, gradients, momentum, … + shard gradients
//! sparse index  16 · nnz + 12 · taps + 60 · (rows + cols)  W and Wᵀ (column + code per nonzero), the builder's
//!               + gradient plan                             entries (one per tap), row pointers and groups;
//!               compact_conv_bytes                          for a plain convolution compiled straight into the
//!                                                           compact storage (budget::index, proofs/T8)
//! im2col        2 · 4 · R · positions · c_in · k²          column buffer and its gradient (conv and local)
//! max pooling   4 · R · out                               winners
//! ```
//!
//! `nnz` is exact for zero padding and pools, and bounded by the taps (`out · c_in · k²`) for the other
//! padding modes. All of it is computed in `u128` with saturating arithmetic, so no size overflows.
//!
//! Sparse layers also need 32-bit indices: rows, columns and nonzeros below `u32::MAX`, parameters
//! below 2³⁰ (the tied builder's codes); [`check`] refuses a layer beyond them with its numbers.
//!
//! The memory available is [`crate::system::available`]'s: the smallest of `MemAvailable`, the address-space
//! limit less what is in use, and the limit the command set. A network is refused when its estimate exceeds
//! [`USABLE_PERCENT`] % of it.

use crate::engines::Engine;
use crate::geometry::{ConvGeometry, PaddingMode};
use crate::network::SHARD;
use crate::spec::{Layer, Shape, Spec, conv_geometry};
use crate::system::available;

pub mod index;

use index::{axis_inside, compact_plain};

/// Percentage of the available memory a network may take (the rest is the estimate's margin and
/// everything else the process holds).
pub const USABLE_PERCENT: u128 = 80;

/// Why a network is refused before it is built. Messages are one line with the numbers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// A sparse layer's compiled matrix would not fit 32-bit indices.
    #[error(
        "model spec: layer {index} `{layer}` on input {input}: its compiled matrix would have {what} = {value}, beyond the {limit} that its 32-bit indices allow (the direct engine, --engine direct, compiles no index)"
    )]
    Index { index: usize, layer: String, input: Shape, what: &'static str, value: u128, limit: u128 },
    /// The whole network needs more memory than is available.
    #[error(transparent)]
    Memory(Box<Shortfall>),
}

/// A network's estimate against the memory it may use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "model {model} needs about {} ({need} bytes) for {purpose}, the most for {largest}; only {} ({usable} bytes, {USABLE_PERCENT}% of {from}) may be used{hint}",
    human(*need),
    human(*usable)
)]
pub struct Shortfall {
    /// The preset's name, or the spec quoted.
    pub model: String,
    pub purpose: String,
    pub need: u128,
    pub largest: String,
    pub usable: u128,
    pub from: String,
    /// What to do instead (empty, or `; use …`).
    pub hint: String,
}

/// What a network will be used for: how many samples' activations are held at once and how many
/// parameter-sized buffers exist besides the shards' gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Use {
    /// Samples held at once (the largest batch of the command; 0 when nothing runs).
    pub rows: usize,
    /// Parameter-sized buffers: parameters, gradients, momentum, a checkpoint's copy and its bytes.
    pub copies: usize,
}

impl Use {
    /// Compiling and drawing only (`show`): the parameters and nothing else.
    pub const BUILD: Use = Use { rows: 0, copies: 1 };

    /// Training at `batch`, evaluating on up to `test` images in batches of 1000 between epochs.
    pub fn train(batch: usize, test: usize) -> Use {
        Use { rows: batch.max(test.min(1000)), copies: 6 }
    }

    /// Evaluating `n` images in batches of 1000, or one gradient of a batch of `n`.
    pub fn eval(n: usize) -> Use {
        Use { rows: n.min(1000), copies: 4 }
    }

    /// One gradient of a batch of `n` samples.
    pub fn grad(n: usize) -> Use {
        Use { rows: n, copies: 4 }
    }

    fn describe(&self) -> String {
        if self.rows == 0 { "compiling its layers".into() } else { format!("{} samples at once", self.rows) }
    }
}

/// The estimate of a network's memory, by part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    /// Bytes in total.
    pub total: u128,
    /// `(what, bytes)` of each part: one per layer with an index or scratch, then activations and
    /// parameters.
    pub parts: Vec<(String, u128)>,
}

/// Bytes `spec` needs on `engine` for `usage` ([`Need::total`]), or the first sparse layer whose matrix
/// would not fit 32-bit indices. `spec` must have passed [`Spec::output_shapes`].
pub fn estimate(spec: &Spec, engine: Engine, usage: Use) -> Result<Need, BudgetError> {
    let shapes = spec.output_shapes().expect("budget::estimate: the spec passed Spec::output_shapes");
    let rows = usage.rows as u128;
    let shards = usage.rows.div_ceil(SHARD).max(1) as u128;
    let mut parts = Vec::new();
    let (mut features, mut params) = (spec.input.len() as u128, 0u128);
    let mut input = spec.input;
    for (index, (layer, &output)) in spec.layers.iter().zip(&shapes).enumerate() {
        features = features.saturating_add(output.len() as u128);
        params = params.saturating_add(param_count(layer, input, output));
        let bytes = layer_bytes(index, layer, input, output, engine, rows)?;
        if bytes > 0 {
            let what = if engine == Engine::Sparse && !matches!(layer, Layer::Dense { .. }) {
                "'s compiled index"
            } else {
                "'s scratch"
            };
            parts.push((format!("layer {index} `{layer}`{what}"), bytes));
        }
        input = output;
    }
    parts.push((format!("activations of {} samples", usage.rows), mul(&[8, rows, features])));
    parts.push(("parameters".into(), mul(&[4, params, usage.copies as u128 + shards - 1])));
    let total = parts.iter().fold(0u128, |t, p| t.saturating_add(p.1));
    Ok(Need { total, parts })
}

/// Refuses `spec` on `engine` for `usage` when a sparse layer would overflow its 32-bit indices or the
/// estimate exceeds [`USABLE_PERCENT`] % of [`available`] memory.
pub fn check(spec: &Spec, engine: Engine, usage: Use) -> Result<Need, BudgetError> {
    let need = estimate(spec, engine, usage)?;
    let avail = available();
    let usable = avail.bytes / 100 * USABLE_PERCENT;
    if need.total > usable {
        let largest = need.parts.iter().max_by_key(|p| p.1).expect("at least two parts");
        let preset = crate::spec::PRESETS.iter().find(|(_, p)| Spec::parse(p).as_ref() == Ok(spec));
        let hint = if largest.0.ends_with("compiled index") {
            "; use --engine direct or --engine im2col, which compile no index"
        } else {
            ""
        };
        return Err(BudgetError::Memory(Box::new(Shortfall {
            model: preset.map_or_else(|| format!("{:?}", spec.to_string()), |(n, _)| n.to_string()),
            purpose: usage.describe(),
            need: need.total,
            largest: format!("{} ({})", largest.0, human(largest.1)),
            usable,
            from: avail.source,
            hint: hint.into(),
        })));
    }
    Ok(need)
}

/// Bytes as `12.3 GiB` (or `512 B`).
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Saturating product.
fn mul(factors: &[u128]) -> u128 {
    factors.iter().fold(1u128, |p, &f| p.saturating_mul(f))
}

/// Parameters of `layer` (weight and bias) from input to output.
fn param_count(layer: &Layer, input: Shape, output: Shape) -> u128 {
    let (i, o) = (input.len() as u128, output.len() as u128);
    match *layer {
        Layer::Conv { c_out, k, .. } => mul(&[c_out as u128, input.c as u128, k as u128, k as u128]) + c_out as u128,
        Layer::Local { k, .. } => mul(&[o, input.c as u128, k as u128, k as u128]).saturating_add(o),
        Layer::Dense { n } => mul(&[n as u128, i]).saturating_add(n as u128),
        Layer::MaxPool { .. } | Layer::AvgPool { .. } | Layer::Act(_) => 0,
    }
}

/// Bytes of a layer's own structures (index, scratch, winners) for `rows` samples, after checking that a
/// sparse layer's matrix fits 32-bit indices.
fn layer_bytes(
    index: usize,
    layer: &Layer,
    input: Shape,
    output: Shape,
    engine: Engine,
    rows: u128,
) -> Result<u128, BudgetError> {
    let (n_in, n_out) = (input.len() as u128, output.len() as u128);
    let winners = mul(&[4, rows, n_out]);
    match (*layer, engine) {
        (Layer::Dense { .. } | Layer::Act(_), _) => Ok(0),
        (Layer::Conv { .. } | Layer::Local { .. }, Engine::Sparse) => {
            let g = conv_geometry(layer, input).expect("conv or local");
            let (nnz, taps) = conv_nonzeros(&g);
            let local = matches!(layer, Layer::Local { .. });
            let n_params =
                if local { mul(&[n_out, g.c_in as u128, g.k as u128, g.k as u128]) } else { g.kernel_len() as u128 };
            let fail =
                |what, value, limit| BudgetError::Index { index, layer: layer.to_string(), input, what, value, limit };
            let u32_max = u32::MAX as u128 - 1;
            for (what, value) in [("rows", n_out), ("columns", n_in), ("nonzeros", nnz), ("taps", taps)] {
                if value > u32_max {
                    return Err(fail(what, value, u32_max));
                }
            }
            if n_params >= 1 << 30 {
                return Err(fail("shared parameters", n_params, (1 << 30) - 1));
            }
            if compact_plain(layer, &g) {
                // The index, and 12 bytes per row of W while the scatter segments are found.
                return Ok(index::compact_conv_bytes(&g).saturating_add(mul(&[12, n_out])));
            }
            // Gradient plan: per row group (positions · ⌈c_out/16⌉) its id, its member record (4 words) and
            // at most one column pattern (a column per tap of its class); per class (every group of a locally
            // connected layer) taps and 16 offsets.
            let positions = (g.h_out() * g.w_out()) as u128;
            let groups = mul(&[positions, g.c_out.div_ceil(16) as u128]);
            let class_taps = mul(&[g.c_in as u128, g.k as u128, g.k as u128]);
            let classes = if local { groups } else { g.c_out.div_ceil(16) as u128 };
            let plan = mul(&[4, groups, class_taps + 5])
                .saturating_add(mul(&[classes, mul(&[4, class_taps]).saturating_add(128)]));
            Ok(mul(&[16, nnz])
                .saturating_add(mul(&[12, taps]))
                .saturating_add(mul(&[60, n_in + n_out + 2]))
                .saturating_add(plan))
        }
        (Layer::Conv { .. } | Layer::Local { .. }, Engine::Im2col) => {
            let g = conv_geometry(layer, input).expect("conv or local");
            Ok(mul(&[8, rows, (g.h_out() * g.w_out()) as u128, g.c_in as u128, g.k as u128, g.k as u128]))
        }
        (Layer::Conv { .. } | Layer::Local { .. }, Engine::Direct) => {
            // Tap tables, one u32 per (output position, kernel offset) along each axis.
            let g = conv_geometry(layer, input).expect("conv or local");
            Ok(mul(&[16, (g.h_out() + g.w_out()) as u128, g.k as u128]))
        }
        (Layer::MaxPool { k, .. } | Layer::AvgPool { k, .. }, Engine::Sparse) => {
            let nnz = mul(&[n_out, k as u128, k as u128]);
            let u32_max = u32::MAX as u128 - 1;
            for (what, value) in [("rows", n_out), ("columns", n_in), ("nonzeros", nnz)] {
                if value > u32_max {
                    return Err(BudgetError::Index {
                        index,
                        layer: layer.to_string(),
                        input,
                        what,
                        value,
                        limit: u32_max,
                    });
                }
            }
            Ok(mul(&[28, nnz]).saturating_add(mul(&[60, n_in + n_out + 2])).saturating_add(winners))
        }
        (Layer::MaxPool { .. } | Layer::AvgPool { .. }, Engine::Direct | Engine::Im2col) => Ok(winners),
    }
}

/// `(nnz, taps)` of a convolution's compiled matrix: `taps = out · c_in · k²` entries pushed by the
/// compiler (every tap under reflect, replicate and circular padding; only those inside the input under
/// zero padding) and `nnz`, the nonzeros (exact for zero padding, bounded by `taps` otherwise).
fn conv_nonzeros(g: &ConvGeometry) -> (u128, u128) {
    let all = mul(&[g.c_out as u128, g.h_out() as u128, g.w_out() as u128, g.c_in as u128, g.k as u128, g.k as u128]);
    if g.mode != PaddingMode::Zeros {
        return (all, all);
    }
    let inside = mul(&[
        g.c_out as u128,
        g.c_in as u128,
        axis_inside(g.h_in, g.h_out(), g.k, g.stride, g.pad, g.dil),
        axis_inside(g.w_in, g.w_out(), g.k, g.stride, g.pad, g.dil),
    ]);
    (inside, inside)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The O(k) count of inside taps equals the loop over every (position, offset) pair.
    #[test]
    fn axis_inside_matches_the_loop() {
        for n in 1..9usize {
            for k in 1..5 {
                for stride in 1..4 {
                    for pad in 0..5 {
                        for dil in 1..3 {
                            let Some(n_out) = crate::geometry::out_len(n, k, stride, pad, dil) else { continue };
                            let mut count = 0u128;
                            for o in 0..n_out {
                                for kk in 0..k {
                                    let c = crate::geometry::tap_coord(o, kk, stride, dil, pad);
                                    count += u128::from((0..n as isize).contains(&c));
                                }
                            }
                            assert_eq!(
                                axis_inside(n, n_out, k, stride, pad, dil),
                                count,
                                "n={n} k={k} s={stride} p={pad} d={dil}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The estimate bounds the index bytes of the compiled layers and the nonzeros are exact for zero padding.
    #[test]
    fn estimate_bounds_the_compiled_index() {
        for spec in [
            "1x28x28 > conv(6,5,pad=2)",
            "6x14x14 > conv(16,5)",
            "3x9x9 > conv(4,3,stride=2,pad=1,dil=2,mode=reflect)",
            "2x8x8 > local(3,3,pad=1)",
            "6x28x28 > maxpool(2)",
            "6x28x28 > avgpool(3,stride=2)",
        ] {
            let s = Spec::parse(spec).unwrap();
            let need = estimate(&s, Engine::Sparse, Use::BUILD).unwrap();
            let net = crate::Network::<f32>::new(&s, Engine::Sparse);
            let real = net.linear_map(0).unwrap().index_bytes() as u128;
            let part = need.parts[0].1;
            assert!(part >= real, "{spec}: estimated {part} < real {real}");
            if let Some(g) = conv_geometry(&s.layers[0], s.input)
                && g.mode == PaddingMode::Zeros
            {
                assert_eq!(conv_nonzeros(&g).0, net.linear_map(0).unwrap().tied().unwrap().nnz() as u128, "{spec}");
            }
        }
    }
}
