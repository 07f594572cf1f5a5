//! The parameter gradient as a sum over positions: row groups that copy the same kernel taps form a
//! *class*, and the gradient of each (row, tap) pair of a class is one long dot product over the class's
//! groups and the batch.
//!
//! A row group `g` (rows `R_g`, shared columns `C_g`, `G` rows × `n` columns of codes) is *separable* when
//! every code is a plain parameter, the first row's codes `t_j = code[0][j]` are distinct, and every row is
//! the first row shifted: `code[i][j] = t_j + o_i` for one offset `o_i` per row. In a convolution with zero
//! padding every group is separable: row `i` is output channel `o`, `t_j` is the tap `(c_in, k_y, k_x)` that
//! column `j` meets, and `o_i = o·c_in·k²`.
//!
//! Separable groups with the same offsets `o` whose tap sets overlap (transitively) form a class with tap
//! union `U` (sorted). For a class,
//!
//! ```text
//! d_θ[U[u] + o_i] += Σ_{g ∈ class} Σ_b d_y[b, R_g[i]] · x[b, col_g(U[u])]        (0 when g lacks tap U[u])
//! ```
//!
//! which is the scatter of T3 regrouped: each nonzero `(R_g[i], col_g(t))` of the class copies exactly
//! `θ[t + o_i]`. The kernels keep one vector of batch lanes per (row, tap) pair of a register tile in
//! registers across every group of the class, and reduce the lanes once: no value per nonzero is ever
//! written to memory. Groups that are not separable (compound entries at a reflect/replicate/circular
//! border, constants) keep the per-nonzero path: dots, then the scatter.

use std::collections::HashMap;

use super::products::{Classic, GroupSource};
use super::{IndexMap, RowGroups};

/// A tap a group does not meet: its column reads zeros.
pub const ABSENT: u32 = u32::MAX;

/// One class of separable row groups (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GradClass {
    /// `o_i`, one per row of a member group: the parameter of (row `i`, tap `t`) is `t + o_i`.
    pub offsets: Vec<i64>,
    /// `U`: the union of the members' taps, increasing.
    pub taps: Vec<u32>,
    /// Member groups, increasing.
    pub groups: Vec<u32>,
    /// `(members, rows)` row-major: the rows of each member group.
    pub rows: Vec<u32>,
    /// `(members, |U|)` row-major: the column at which member `m` meets tap `U[u]`, or [`ABSENT`].
    pub cols: Vec<u32>,
}

impl GradClass {
    /// The parameter that (row `i`, tap index `u`) copies.
    #[inline]
    pub fn param(&self, i: usize, u: usize) -> usize {
        (self.taps[u] as i64 + self.offsets[i]) as usize
    }
}

/// How the parameter gradient of a tied matrix is computed: classes of separable groups, and the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GradPlan {
    pub classes: Vec<GradClass>,
    /// Groups computed per nonzero (dots, then scatter), increasing.
    pub fallback: Vec<u32>,
}

/// A class is kept only if its dense (members × rows × taps) work is at most this many times its
/// nonzeros; sparser classes go to the per-nonzero path.
const MAX_FILL: usize = 2;

impl GradPlan {
    /// Plans the gradient of the map `m` with row groups `groups`, whose separable groups are `separable`.
    pub fn detect(m: &IndexMap, groups: &RowGroups, separable: &SeparableGroups) -> Self {
        Self::detect_from(&Classic { map: m, groups, separable })
    }

    /// Plans the gradient of the row groups of `src` (the classic or the compact form of `W`; both give the
    /// same plan for the same groups).
    pub(super) fn detect_from<S: GroupSource>(src: &S) -> Self {
        let mut plan = GradPlan::default();
        // Separable groups, bucketed by their offsets (in order of first appearance).
        let mut by_offsets: HashMap<&[u32], usize> = HashMap::new();
        let mut buckets: Vec<(Vec<i64>, Vec<u32>)> = Vec::new();
        for g in 0..src.n_groups() {
            match src.separable(g) {
                Some((off, _)) => {
                    let b = *by_offsets.entry(off).or_insert_with(|| {
                        // The wrapping u32 offsets back to signed (parameter ids are below 2^31).
                        buckets.push((off.iter().map(|&o| o as i32 as i64).collect(), Vec::new()));
                        buckets.len() - 1
                    });
                    buckets[b].1.push(g as u32);
                }
                None => plan.fallback.push(g as u32),
            }
        }
        // The first row's codes of a separable group.
        let taps_of = |g: u32| src.separable(g as usize).expect("a bucket holds separable groups").1;
        for (offsets, members) in buckets {
            for class_groups in overlapping_classes(&members, taps_of) {
                let mut taps: Vec<u32> = class_groups.iter().flat_map(|&g| taps_of(g).iter().copied()).collect();
                taps.sort_unstable();
                taps.dedup();
                let nnz: usize = class_groups.iter().map(|&g| taps_of(g).len()).sum();
                if class_groups.len() * taps.len() > MAX_FILL * nnz {
                    plan.fallback.extend_from_slice(&class_groups);
                    continue;
                }
                let mut cols = vec![ABSENT; class_groups.len() * taps.len()];
                for (mi, &g) in class_groups.iter().enumerate() {
                    let (gcols, shift) = src.cols(g as usize);
                    for (&t, &c) in taps_of(g).iter().zip(gcols) {
                        let u = taps.binary_search(&t).expect("a member's tap is in the union");
                        cols[mi * taps.len() + u] = c + shift;
                    }
                }
                let rows = class_groups.iter().flat_map(|&g| src.rows(g as usize).iter().copied()).collect();
                plan.classes.push(GradClass { offsets: offsets.clone(), taps, groups: class_groups, rows, cols });
            }
        }
        plan.fallback.sort_unstable();
        plan
    }

    /// Bytes of the plan's tables.
    pub fn bytes(&self) -> usize {
        let class =
            |c: &GradClass| 8 * c.offsets.len() + 4 * (c.taps.len() + c.groups.len() + c.rows.len() + c.cols.len());
        self.classes.iter().map(class).sum::<usize>() + 4 * self.fallback.len()
    }
}

/// For each row group of a map, whether it is separable and its row offsets: the products read row `i`,
/// column `j` of a separable group as `θ[code[0][j] + o_i]`, straight from `θ`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeparableGroups {
    /// Per group, where its offsets start in `offsets`, or `u32::MAX` when it is not separable.
    pub start: Vec<u32>,
    /// The offsets `o_i` of the separable groups, as wrapping `u32` (`code[0][j] + o_i` wraps to the code).
    pub offsets: Vec<u32>,
    /// Per group `g`, whether `g` and `g + 1` are separable *twins*: the same number of rows and columns, the
    /// same offsets and the same first-row codes, hence the same weight at every (row, column) (in a
    /// convolution, two neighbouring positions whose windows meet the same taps). A twin pair can share every
    /// loaded weight.
    pub twin: Vec<bool>,
}

impl SeparableGroups {
    /// Finds the separable groups of `m`.
    pub fn detect(m: &IndexMap, groups: &RowGroups, n_params: usize) -> Self {
        let indptr = m.indptr();
        let indptr = indptr.raw_storage();
        let codes = m.data();
        let mut s = SeparableGroups::default();
        for g in 0..groups.len() {
            let rows = groups.group(g);
            let row_codes = |i: usize| {
                let r = rows[i] as usize;
                &codes[indptr[r] as usize..indptr[r + 1] as usize]
            };
            match separable_offsets(&row_codes, rows.len(), n_params) {
                Some(off) => {
                    s.start.push(s.offsets.len() as u32);
                    s.offsets.extend(off.iter().map(|&o| o as u32));
                }
                None => s.start.push(u32::MAX),
            }
        }
        let first_codes = |g: usize| {
            let r = groups.group(g)[0] as usize;
            &codes[indptr[r] as usize..indptr[r + 1] as usize]
        };
        s.twin = (0..groups.len())
            .map(|g| {
                let n_rows = groups.group(g).len();
                g + 1 < groups.len()
                    && groups.group(g + 1).len() == n_rows
                    && s.of(g, n_rows).is_some_and(|a| s.of(g + 1, n_rows) == Some(a))
                    && first_codes(g) == first_codes(g + 1)
            })
            .collect();
        s
    }

    /// Whether groups `g` and `g + 1` are separable twins (see [`Self::twin`]).
    #[inline]
    pub fn twins(&self, g: usize) -> bool {
        self.twin.get(g).copied().unwrap_or(false)
    }

    /// The offsets of group `g`, if it is separable.
    #[inline]
    pub fn of(&self, g: usize, n_rows: usize) -> Option<&[u32]> {
        let s = self.start[g];
        (s != u32::MAX).then(|| &self.offsets[s as usize..s as usize + n_rows])
    }

    /// Bytes of the tables.
    pub fn bytes(&self) -> usize {
        4 * (self.start.len() + self.offsets.len()) + self.twin.len()
    }
}

/// The row offsets `o_i` of a separable group, or `None` (see the module documentation). `row_codes(i)` are
/// row `i`'s codes, in column order.
pub(super) fn separable_offsets<'a>(
    row_codes: &impl Fn(usize) -> &'a [u32],
    n_rows: usize,
    n_params: usize,
) -> Option<Vec<i64>> {
    let first = row_codes(0);
    if first.is_empty() || first.iter().any(|&c| c as usize >= n_params) {
        return None;
    }
    let mut seen = first.to_vec();
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    let mut offsets = Vec::with_capacity(n_rows);
    for i in 0..n_rows {
        let row = row_codes(i);
        if row.iter().any(|&c| c as usize >= n_params) {
            return None;
        }
        let o = row[0] as i64 - first[0] as i64;
        if row.iter().zip(first).any(|(&c, &t)| c as i64 - t as i64 != o) {
            return None;
        }
        offsets.push(o);
    }
    Some(offsets)
}

/// Splits `members` into classes of groups whose tap sets overlap, transitively (union-find over taps);
/// classes come in order of their first member, members in increasing order.
fn overlapping_classes<'a>(members: &[u32], taps_of: impl Fn(u32) -> &'a [u32]) -> Vec<Vec<u32>> {
    let mut parent: Vec<usize> = (0..members.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner: HashMap<u32, usize> = HashMap::new();
    for (mi, &g) in members.iter().enumerate() {
        for &t in taps_of(g) {
            match owner.get(&t) {
                Some(&other) => {
                    let (a, b) = (root(&mut parent, mi), root(&mut parent, other));
                    if a != b {
                        parent[a.max(b)] = a.min(b);
                    }
                }
                None => {
                    owner.insert(t, mi);
                }
            }
        }
    }
    let mut index: HashMap<usize, usize> = HashMap::new();
    let mut classes: Vec<Vec<u32>> = Vec::new();
    for (mi, &g) in members.iter().enumerate() {
        let r = root(&mut parent, mi);
        let c = *index.entry(r).or_insert_with(|| {
            classes.push(Vec::new());
            classes.len() - 1
        });
        classes[c].push(g);
    }
    classes
}
