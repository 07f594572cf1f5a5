//! Data-parallel training over processes, bit for bit.
//!
//! A batch of `B` samples is cut into `S = ⌈B / 32⌉` shards ([`crate::network::shard_ranges`]). With `R`
//! processes, rank `r` runs the shards `s` with `⌊s / P⌋ = r`, `P = ⌈S / R⌉` (a block of consecutive shards;
//! ranks past the end run none). Every rank then gathers every shard's figures (an all-gather of `P` slots
//! per rank, padded) and adds the shards' gradients itself, in shard order:
//!
//! ```text
//! g = g_0;  g += g_1;  g += g_2;  …   (each value, in this order, on every rank)
//! ```
//!
//! which is the sum [`crate::network::Network::loss_and_grad_from`] forms in one process (proofs/T9), so the
//! parameters after each step are the same bits for every `R`. A reduction by the MPI library would add in
//! its own order; the gather costs `R` times the bytes of a reduction and buys the bits.
//!
//! Bytes per step: each rank sends `P · (n_params + 1 + 32 · K)` f32 values (gradient, loss part, outputs)
//! and receives `R` times that.
//!
//! The transport is a [`Collective`]; the `mpi` feature provides one over MPI (`crate::mpi`).

use std::ops::Range;

use nalgebra::DMatrix;

use crate::loss::{Loss, Targets};
use crate::network::{Loader, Network, Params, shard_ranges};

/// An all-gather between the processes of one job.
pub trait Collective: Send + Sync {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// `all[r·n..(r+1)·n] = mine of rank r` for every rank, `n = mine.len()` (the same on every rank).
    fn all_gather(&self, mine: &[f32], all: &mut [f32]) -> Result<(), String>;
}

/// The shards rank `rank` of `size` runs among `n_shards`, and the slots per rank `P`.
pub fn my_shards(n_shards: usize, rank: usize, size: usize) -> (Range<usize>, usize) {
    let per = n_shards.div_ceil(size).max(1);
    let lo = (rank * per).min(n_shards);
    (lo..((rank + 1) * per).min(n_shards), per)
}

/// [`Network::loss_and_grad_from`] spread over the ranks of `c`: adds `∂J/∂θ` to `grads` (zeroed by the
/// caller), returns `J` and the output (B, K); every rank gets the same bits as one process would.
pub fn loss_and_grad(
    net: &mut Network<f32>,
    grads: &mut Params<f32>,
    batch: usize,
    load: &Loader<'_, f32>,
    targets: Targets<'_, f32>,
    loss: Loss,
    c: &dyn Collective,
) -> Result<(f32, DMatrix<f32>), String> {
    let ranges = shard_ranges(batch);
    let (mine, per) = my_shards(ranges.len(), c.rank(), c.size());
    let parts = net.shard_parts_from(batch, mine.clone(), load, targets, loss);
    let n_grad: usize = grads.iter().flatten().map(|t| t.data.len()).sum();
    let k = net.activation_shapes().last().expect("output shape").len();
    let slot = n_grad + 1 + crate::network::SHARD * k;
    // mine: P slots of [gradient values in layer/tensor order | loss part | output (rows, K) column-major].
    let mut send = vec![0.0f32; per * slot];
    for (p, (part, g, out)) in parts.iter().enumerate() {
        let dst = &mut send[p * slot..(p + 1) * slot];
        let mut at = 0;
        for t in g.iter().flatten() {
            dst[at..at + t.data.len()].copy_from_slice(&t.data);
            at += t.data.len();
        }
        dst[at] = *part;
        dst[at + 1..at + 1 + out.len()].copy_from_slice(out.as_slice());
    }
    let mut all = vec![0.0f32; c.size() * per * slot];
    c.all_gather(&send, &mut all)?;
    // Shard s sits in slot s (rank ⌊s/P⌋, position s mod P): add in shard order.
    let mut j = 0.0f32;
    let mut output = DMatrix::zeros(batch, k);
    for (s, r) in ranges.iter().enumerate() {
        let src = &all[s * slot..(s + 1) * slot];
        let mut at = 0;
        for t in grads.iter_mut().flatten() {
            let v = &src[at..at + t.data.len()];
            // Shard 0's gradient is the sum's first term, as one process writes it (not `0 + g_0`).
            if s == 0 {
                t.data.copy_from_slice(v)
            } else {
                t.data.iter_mut().zip(v).for_each(|(o, &v)| *o += v)
            }
            at += t.data.len();
        }
        j += src[at];
        let out = DMatrix::from_column_slice(r.len(), k, &src[at + 1..at + 1 + r.len() * k]);
        output.rows_mut(r.start, r.len()).copy_from(&out);
    }
    Ok((j, output))
}
