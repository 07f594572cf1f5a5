//! Gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune"): during training, the
//! smallest-magnitude weights of every conv and dense layer are removed, step by step, until a fraction
//! `S` of each layer's weights is gone; a removed weight stays 0 for the rest of the run.
//!
//! **Schedule.** With `T` steps per epoch, pruning starts at step `t₀ = start·T`, ends at `t_e = end·T`
//! and happens every `Δt` steps in between (and at `t_e`); at a pruning step `t` each layer is cut to
//!
//! ```text
//! s_t = S · (1 − (1 − (t − t₀) / (t_e − t₀))³)        t₀ ≤ t ≤ t_e   (0 at t₀, S at t_e)
//! ```
//!
//! the paper's cubic `s_t = s_f (1 − (1 − (t − t₀)/(nΔt))³)` with `nΔt = t_e − t₀`: fast at first, while
//! the network has many redundant weights, slower as it approaches `S`. A step counts as done when its
//! update is applied; pruning at step `t` happens before step `t + 1` computes its gradient.
//!
//! **Per layer.** Of a layer's `n` free weights (all of them, or a connection table's ones), the
//! `round(s_t · n)` of smallest `|w|` are removed, the already removed first (so a mask only shrinks), ties
//! by position. Removing sets the weight and its momentum to 0 and rebuilds the layer without it
//! ([`crate::engines::build_pruned_map`]): the sparse engine compiles a convolution without the removed
//! taps and a dense layer, once sparse enough, into a tied sparse matrix; the dense engines mask the
//! weight and its gradient. A removed weight then gets no gradient, no momentum and (being 0) no weight
//! decay, so it stays exactly 0 on every engine.
//!
//! **Stored.** The masks go into the checkpoint's metadata (`mask.{i}.weight`, [`encode_mask`]), beside
//! dense weights with zeros that PyTorch loads as they are; `--resume`, `eval` and `show` rebuild the
//! pruned layers from them.

use std::collections::BTreeMap;

use crate::checkpoint::{CheckpointError, Stored};
use crate::network::Network;
use crate::spec::{Spec, free_mask};

/// When and how far to prune.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prune {
    /// Final sparsity `S` of every pruned layer, in `[0, 1)`.
    pub target: f64,
    /// Epoch (0-based, counting completed epochs) whose start is `t₀`.
    pub start: usize,
    /// Epoch whose start is `t_e`, when the final sparsity is reached; `start < end`.
    pub end: usize,
    /// `Δt`: steps between two pruning steps, at least 1.
    pub every: usize,
}

impl Prune {
    /// The defaults for a run of `epochs` epochs: start after the first epoch (or at 0 for a run of 2
    /// epochs or fewer), reach `S` at the start of the last epoch, prune every 50 steps.
    pub fn defaults(target: f64, epochs: usize) -> Prune {
        let end = epochs.saturating_sub(1).max(1);
        let start = if epochs > 2 { 1 } else { 0 };
        Prune { target, start, end, every: 50 }
    }

    /// Checks `0 ≤ S < 1` (finite), `start < end`, `every ≥ 1`, and that the final sparsity is reached
    /// within a run of `epochs` epochs (`end < epochs`). The message names the flag and the value.
    pub fn check(&self, epochs: usize) -> Result<(), String> {
        if !(self.target.is_finite() && (0.0..1.0).contains(&self.target)) {
            return Err(format!("--prune {}: must be a sparsity in [0, 1) (e.g. --prune 0.9)", self.target));
        }
        if self.every == 0 {
            return Err("--prune-every 0: must be at least 1 step".into());
        }
        if self.start >= self.end {
            return Err(format!("--prune-start {} must be before --prune-end {}", self.start, self.end));
        }
        if self.end >= epochs {
            return Err(format!(
                "--prune-end {}: must be before --epochs {epochs} (the last epoch trains at the final sparsity)",
                self.end
            ));
        }
        Ok(())
    }

    /// The sparsity to prune to before step `t + 1` (after `t` completed steps), when `t` is a pruning
    /// step: `t₀ ≤ t ≤ t_e` and `t − t₀` a multiple of `Δt`, or `t = t_e`.
    pub fn sparsity_at(&self, t: usize, steps_per_epoch: usize) -> Option<f64> {
        let (t0, te) = (self.start * steps_per_epoch, self.end * steps_per_epoch);
        if t < t0 || t > te || te == t0 || (!(t - t0).is_multiple_of(self.every) && t != te) {
            return None;
        }
        let frac = (t - t0) as f64 / (te - t0) as f64;
        Some(self.target * (1.0 - (1.0 - frac).powi(3)))
    }
}

/// Shrinks `keep` so that `round(s · n)` of the `n` entries that `free` allows are removed: the already
/// removed first, then the smallest `|w|`, ties by position. Returns how many entries were newly removed.
///
/// # Panics
/// If the lengths differ or `s` is outside `[0, 1]`.
#[track_caller]
pub fn prune_by_magnitude(w: &[f32], free: &[bool], keep: &mut [bool], s: f64) -> usize {
    assert!(
        w.len() == free.len() && w.len() == keep.len(),
        "prune_by_magnitude: lengths {}, {}, {}",
        w.len(),
        free.len(),
        keep.len()
    );
    assert!((0.0..=1.0).contains(&s), "prune_by_magnitude: sparsity {s}");
    let mut order: Vec<usize> = (0..w.len()).filter(|&i| free[i]).collect();
    let target = (s * order.len() as f64).round() as usize;
    order.sort_by(|&a, &b| keep[a].cmp(&keep[b]).then(w[a].abs().total_cmp(&w[b].abs())).then(a.cmp(&b)));
    let mut newly = 0;
    for &i in &order[..target] {
        if keep[i] {
            keep[i] = false;
            newly += 1;
        }
    }
    newly
}

/// A mask as metadata text: the flags packed 8 to a byte (entry `i` in bit `i % 8` of byte `i / 8`), as
/// lower-case hex.
pub fn encode_mask(keep: &[bool]) -> String {
    keep.chunks(8)
        .map(|c| c.iter().enumerate().fold(0u8, |b, (i, &k)| b | (u8::from(k) << i)))
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads [`encode_mask`]'s text back into `n` flags; `None` if it is not that encoding of `n` flags.
pub fn decode_mask(s: &str, n: usize) -> Option<Vec<bool>> {
    if s.len() != 2 * n.div_ceil(8) || !s.is_ascii() {
        return None;
    }
    let mut keep = Vec::with_capacity(n);
    for (j, pair) in s.as_bytes().chunks(2).enumerate() {
        let b = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        for i in 0..8 {
            if j * 8 + i < n {
                keep.push(b >> i & 1 == 1);
            } else if b >> i & 1 == 1 {
                return None;
            }
        }
    }
    Some(keep)
}

/// The metadata of `net`'s masks: `mask.{i}.weight` → [`encode_mask`], for each pruned layer.
pub fn mask_metadata(net: &Network<f32>) -> BTreeMap<String, String> {
    (0..net.spec.layers.len())
        .filter_map(|i| net.mask(i).map(|m| (format!("mask.{i}.weight"), encode_mask(m))))
        .collect()
}

/// The pruning masks in `file`'s metadata ([`mask_metadata`]) for the layers of `spec`, one per layer
/// (`None` where a layer has none), ready for [`Network::with_masks`]. A mask that names a layer without a
/// prunable weight, does not decode to one flag per weight entry, or keeps an entry a connection table
/// leaves out is an error naming the key.
pub fn read_masks(spec: &Spec, file: &Stored) -> Result<Vec<Option<Vec<bool>>>, CheckpointError> {
    let bad =
        |key: &str, problem: String| CheckpointError::Metadata { file: file.path.clone(), key: key.into(), problem };
    let mut inputs = vec![spec.input];
    inputs.extend(spec.output_shapes().map_err(|e| bad("spec", e.to_string()))?);
    let mut masks = vec![None; spec.layers.len()];
    let mut keys: Vec<&String> = file.metadata.keys().filter(|k| k.starts_with("mask.")).collect();
    keys.sort();
    for key in keys {
        let (i, free) = key
            .strip_prefix("mask.")
            .and_then(|r| r.strip_suffix(".weight"))
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|&i| i < spec.layers.len())
            .and_then(|i| Some((i, free_mask(&spec.layers[i], inputs[i])?)))
            .ok_or_else(|| bad(key, "does not name the weight of a conv or dense layer of the model".into()))?;
        let n = free.len();
        let keep = decode_mask(&file.metadata[key], n)
            .ok_or_else(|| bad(key, format!("is not a mask of {n} entries ({} hex digits)", 2 * n.div_ceil(8))))?;
        if free.iter().zip(&keep).any(|(&f, &k)| k && !f) {
            return Err(bad(key, "keeps an entry that the layer's connection table leaves out".into()));
        }
        masks[i] = Some(keep);
    }
    Ok(masks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cubic schedule: 0 at t₀, S at t_e, the paper's values in between, only on pruning steps.
    #[test]
    fn schedule_is_zhu_gupta_cubic() {
        let p = Prune { target: 0.9, start: 1, end: 3, every: 10 };
        let spe = 50; // t₀ = 50, t_e = 150
        assert_eq!(p.sparsity_at(49, spe), None);
        assert_eq!(p.sparsity_at(50, spe), Some(0.0));
        assert_eq!(p.sparsity_at(55, spe), None);
        let s = p.sparsity_at(100, spe).unwrap(); // halfway: S (1 − 1/8)
        assert!((s - 0.9 * 0.875).abs() < 1e-12, "{s}");
        assert_eq!(p.sparsity_at(150, spe), Some(0.9));
        assert_eq!(p.sparsity_at(160, spe), None);
        // t_e is a pruning step even off the Δt grid.
        let q = Prune { every: 40, ..p };
        assert_eq!(q.sparsity_at(150, spe), Some(0.9));
        assert_eq!(
            q.sparsity_at(130, spe).map(|s| (s * 1e6).round()),
            Some((0.9 * (1.0 - 0.2f64.powi(3)) * 1e6).round())
        );
        let mut last = 0.0;
        for t in (50..=150).step_by(10) {
            let s = p.sparsity_at(t, spe).unwrap();
            assert!(s >= last, "monotone");
            last = s;
        }
    }

    #[test]
    fn bad_schedules_name_the_flag() {
        let ok = Prune::defaults(0.9, 6);
        assert_eq!((ok.start, ok.end, ok.every), (1, 5, 50));
        assert!(ok.check(6).is_ok());
        for (p, needle) in [
            (Prune { target: 1.0, ..ok }, "--prune 1"),
            (Prune { target: f64::NAN, ..ok }, "--prune NaN"),
            (Prune { target: -0.1, ..ok }, "--prune -0.1"),
            (Prune { every: 0, ..ok }, "--prune-every 0"),
            (Prune { start: 5, ..ok }, "--prune-start 5"),
            (Prune { end: 6, ..ok }, "--prune-end 6"),
        ] {
            let e = p.check(6).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }

    /// The smallest magnitudes go first, removed entries stay removed, entries outside `free` are untouched.
    #[test]
    fn magnitude_pruning_removes_the_smallest() {
        let w = [0.5f32, -0.1, 0.3, 0.0, -0.9, 0.2];
        let free = [true, true, true, false, true, true];
        let mut keep = [true, true, true, false, true, true];
        assert_eq!(prune_by_magnitude(&w, &free, &mut keep, 0.4), 2); // round(0.4 · 5) = 2: −0.1, 0.2
        assert_eq!(keep, [true, false, true, false, true, false]);
        // A removed entry whose weight grew is not revived.
        let w2 = [0.5f32, 9.0, 0.3, 0.0, -0.9, 0.2];
        assert_eq!(prune_by_magnitude(&w2, &free, &mut keep, 0.6), 1); // 3 removed: 9.0 stays out, 0.3 goes
        assert_eq!(keep, [true, false, false, false, true, false]);
    }

    #[test]
    fn masks_round_trip_through_text() {
        for n in [0, 1, 7, 8, 9, 150] {
            let keep: Vec<bool> = (0..n).map(|i| (i * 7 + 3) % 5 < 2).collect();
            let s = encode_mask(&keep);
            assert_eq!(decode_mask(&s, n), Some(keep));
        }
        assert_eq!(encode_mask(&[true, false, false, false, false, false, false, false, true]), "0101");
        assert_eq!(decode_mask("01", 9), None);
        assert_eq!(decode_mask("zz", 8), None);
        assert_eq!(decode_mask("ff", 7), None, "a bit beyond n");
    }
}
