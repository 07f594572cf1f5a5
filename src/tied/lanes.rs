//! Where a small batch fills the vector lanes: runs of positions, and sets of groups that share their weights.
//!
//! The (B, F) layout puts a feature's `B` samples side by side, so a register of 16 (or 8) lanes over the
//! samples runs empty when `B` is small. The compact index knows two other things to put in the lanes:
//!
//! - **Positions** (a *run*). Groups `g_0, …, g_{P−1}` of one direction where each is the previous one shifted
//!   by one position ([`CompactMap::follows`]: the same pattern and weight block, every row one more, the
//!   shift one more): in a convolution at stride 1, one block of output channels at `P` consecutive positions
//!   of an image row. Row `i` of `g_k` is `r_i + k` and column `j` is `s_0 + k + pattern[j]`, so in a (B, F)
//!   matrix the `P·B` outputs of row `i` are consecutive, `y[r_i·B .. (r_i + P)·B]`, and so are the inputs of
//!   column `j`, `x[(s_0 + pattern[j])·B ..]`:
//!
//!   ```text
//!   y[r_i·B + q] = init(r_i + ⌊q/B⌋) + Σ_j w(i, j) · x[(s_0 + pattern[j])·B + q]        q in 0..P·B
//!   ```
//!
//!   one long AXPY per (row, column), the lanes full at any batch. Each value sums the columns in order from
//!   its initial value with fused multiply-adds, as every group product does: the bits are those of the
//!   group products.
//! - **Channels** (a *set*). The groups outside every run (the borders of an image, a convolution at stride 2)
//!   whose pattern and weight block are the same: each (group, sample) is a member, and a register holds one
//!   column's weights for up to 16 rows, broadcasting each member's input. Again each value sums the columns
//!   in order from its initial value: the same bits.
//!
//! The plan is found from the map itself (rows, shifts, pattern and block ids), never from the layer that
//! compiled it; [`LanePlan::check`] holds its invariants against the map.

use super::compact::CompactMap;

/// A run: groups `first, next(first), …`, `len` of them, group `k`'s rows those of `first` plus `k` and its
/// shift `shift(first) + k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub first: u32,
    pub len: u32,
}

/// The lane plan of one direction of a compact matrix (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LanePlan {
    /// The runs of two groups or more, ordered by (pattern, shift, length, first group).
    pub runs: Vec<Run>,
    /// `runs[bundles[b]..bundles[b + 1]]`: runs with the same pattern, shift and length, which read the same
    /// inputs (a convolution's channel blocks at the same positions).
    pub bundles: Vec<u32>,
    /// The groups in no run, ordered by (pattern, block, group).
    pub singles: Vec<u32>,
    /// `singles[sets[s]..sets[s + 1]]`: groups with the same pattern and block.
    pub sets: Vec<u32>,
}

impl LanePlan {
    /// The runs and sets of `m`.
    pub(crate) fn detect(m: &CompactMap) -> Self {
        let n = m.n_groups();
        let (n_rows, _) = m.shape();
        // The group whose first row is r.
        let mut first_of_row = vec![u32::MAX; n_rows];
        for g in 0..n {
            first_of_row[m.groups().group(g)[0] as usize] = g as u32;
        }
        let next = |g: usize| -> Option<usize> {
            let r = m.groups().group(g)[0] as usize + 1;
            let h = *first_of_row.get(r)?;
            (h != u32::MAX && m.follows(g, h as usize)).then_some(h as usize)
        };
        // `next` is injective (a group has one first row), and raises the first row: the chains are paths.
        let mut has_prev = vec![false; n];
        for g in 0..n {
            if let Some(h) = next(g) {
                has_prev[h] = true;
            }
        }
        let mut runs = Vec::new();
        let mut singles = Vec::new();
        for g in (0..n).filter(|&g| !has_prev[g]) {
            let mut len = 1u32;
            let mut h = g;
            while let Some(k) = next(h) {
                len += 1;
                h = k;
            }
            if len >= 2 {
                runs.push(Run { first: g as u32, len });
            } else {
                singles.push(g as u32);
            }
        }
        runs.sort_by_key(|r| (m.kind(r.first as usize).0, m.shift(r.first as usize), r.len, r.first));
        let mut bundles = vec![0u32];
        for k in 1..runs.len() {
            let (a, b) = (runs[k - 1], runs[k]);
            let key = |r: Run| (m.kind(r.first as usize).0, m.shift(r.first as usize), r.len);
            if key(a) != key(b) {
                bundles.push(k as u32);
            }
        }
        if !runs.is_empty() {
            bundles.push(runs.len() as u32);
        } else {
            bundles.clear();
        }
        singles.sort_by_key(|&g| (m.kind(g as usize), g));
        let mut sets = vec![0u32];
        for k in 1..singles.len() {
            if m.kind(singles[k - 1] as usize) != m.kind(singles[k] as usize) {
                sets.push(k as u32);
            }
        }
        if !singles.is_empty() {
            sets.push(singles.len() as u32);
        } else {
            sets.clear();
        }
        LanePlan { runs, bundles, singles, sets }
    }

    /// Whether the plan has a run.
    pub(crate) fn has_runs(&self) -> bool {
        !self.runs.is_empty()
    }

    /// Checks the plan against `m`: every group is in exactly one run or set; each run's groups follow one
    /// another ([`CompactMap::follows`]); the runs of a bundle share pattern, shift and length; the groups of
    /// a set share pattern and block.
    pub(crate) fn check(&self, m: &CompactMap) -> Result<(), String> {
        let mut seen = vec![false; m.n_groups()];
        let mut mark = |g: usize| -> Result<(), String> {
            if g >= seen.len() || std::mem::replace(&mut seen[g], true) {
                return Err(format!("group {g} out of range or planned twice"));
            }
            Ok(())
        };
        let mut first_of_row = std::collections::HashMap::new();
        for g in 0..m.n_groups() {
            first_of_row.insert(m.groups().group(g)[0], g);
        }
        for r in &self.runs {
            let mut g = r.first as usize;
            mark(g)?;
            for _ in 1..r.len {
                let f = m.groups().group(g)[0] + 1;
                let h = *first_of_row.get(&f).ok_or(format!("run from group {}: no group at row {f}", r.first))?;
                if !m.follows(g, h) {
                    return Err(format!("run from group {}: group {h} does not follow group {g}", r.first));
                }
                mark(h)?;
                g = h;
            }
            if r.len < 2 {
                return Err(format!("run from group {} of {} groups", r.first, r.len));
            }
        }
        let spans = |ptr: &[u32], len: usize| {
            (len == 0 && ptr.is_empty())
                || (ptr.first() == Some(&0) && ptr.last() == Some(&(len as u32)) && ptr.windows(2).all(|w| w[0] < w[1]))
        };
        if !spans(&self.bundles, self.runs.len()) || !spans(&self.sets, self.singles.len()) {
            return Err("bundle or set pointers do not span their lists".into());
        }
        for b in self.bundles.windows(2) {
            let rs = &self.runs[b[0] as usize..b[1] as usize];
            let key = |r: &Run| (m.kind(r.first as usize).0, m.shift(r.first as usize), r.len);
            if rs.iter().any(|r| key(r) != key(&rs[0])) {
                return Err(format!("bundle from run {}: runs of other patterns, shifts or lengths", b[0]));
            }
        }
        for &g in &self.singles {
            mark(g as usize)?;
        }
        for s in self.sets.windows(2) {
            let gs = &self.singles[s[0] as usize..s[1] as usize];
            if gs.iter().any(|&g| m.kind(g as usize) != m.kind(gs[0] as usize)) {
                return Err(format!("set from single {}: groups of other patterns or blocks", s[0]));
            }
        }
        if let Some(g) = seen.iter().position(|&s| !s) {
            return Err(format!("group {g} is in no run and no set"));
        }
        Ok(())
    }
}
