//! The tied matrix: its two directions in the classic or the compact index, the tables of its entry codes,
//! its scatter segments and gradient plan, and the checker of all of it.

use std::fmt;
use std::sync::OnceLock;

use super::bytes::{compound, consts, csr, row_groups, segments as segment_bytes};
use super::compact::{CompactMap, GroupWeights};
use super::grad_plan::GradPlan;
use super::index::{IndexMap, RowGroups, StructureError, check_csr, check_groups, check_map};
use super::lanes::LanePlan;
use super::segments::{self, ScatterSegment};
use super::separable::SeparableGroups;
use super::views::Classic;
use super::visit::Visit;
use crate::scalar::Real;

/// The classic index: `W` and `Wᵀ` as CSR maps with a code per nonzero, their row groups and separable tables.
#[derive(Clone, Debug)]
pub(crate) struct ClassicIndex {
    /// `W`: (n_rows, n_cols), values are entry codes.
    map: IndexMap,
    /// `Wᵀ`: (n_cols, n_rows), same codes.
    map_t: IndexMap,
    /// Rows of `W` sharing a column list.
    groups: RowGroups,
    /// Rows of `Wᵀ` sharing a column list.
    groups_t: RowGroups,
    /// Which row groups of `W` and of `Wᵀ` read `θ` directly (see [`SeparableGroups`]).
    separable: SeparableGroups,
    separable_t: SeparableGroups,
}

impl ClassicIndex {
    /// `W` with the given row groups of `W` and `Wᵀ`.
    fn new(map: IndexMap, groups: RowGroups, map_t: IndexMap, groups_t: RowGroups, n_params: usize) -> Self {
        let separable = SeparableGroups::detect(&map, &groups, n_params);
        let separable_t = SeparableGroups::detect(&map_t, &groups_t, n_params);
        ClassicIndex { map, map_t, groups, groups_t, separable, separable_t }
    }

    /// `W` with groups detected ([`RowGroups::detect`]) and its transpose built by `sprs`.
    fn of(map: IndexMap, n_params: usize) -> Self {
        let map_t: IndexMap = map.transpose_view().to_csr();
        let (groups, groups_t) = (RowGroups::detect(&map), RowGroups::detect(&map_t));
        Self::new(map, groups, map_t, groups_t, n_params)
    }
}

/// Which index a tied matrix stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Storage {
    /// `W` and `Wᵀ` as CSR maps with a code per nonzero (about 16 bytes per nonzero).
    #[default]
    Classic,
    /// `W` and `Wᵀ` as [`CompactMap`]s: shared column patterns, bases and offsets (see [`super::compact`]).
    Compact,
}

/// A sparse matrix whose nonzeros copy shared parameters (see the module documentation).
///
/// It stores either the classic index or the compact one ([`Storage`]); the products run the same fused
/// multiply-adds in the same order on either, so their bits are equal. A compact matrix builds its classic CSR
/// only when asked ([`Self::map`], [`Self::map_t`]: pictures, tests, the per-nonzero utilities).
#[derive(Clone, Debug)]
pub struct TiedMatrix {
    /// The classic index: set at construction for a classic matrix, built on demand for a compact one.
    classic: OnceLock<ClassicIndex>,
    /// `[W, Wᵀ]` of a compact matrix.
    compact: Option<Box<[CompactMap; 2]>>,
    shape: (usize, usize),
    nnz: usize,
    /// Runs of consecutive rows whose nonzeros read disjoint ranges of parameters (see
    /// [`Self::scatter_segments`]).
    segments: Vec<ScatterSegment>,
    /// Classes of row groups whose parameter gradient is a sum over positions (see [`GradPlan`]).
    grad_plan: GradPlan,
    /// Number of shared parameters `θ`.
    n_params: usize,
    /// Constant values, addressed by codes `n_params..n_params + consts.len()`.
    consts: Vec<f64>,
    /// Compound entries: compound `j` sums `θ[compound_ids[compound_ptr[j]..compound_ptr[j+1]]]`.
    compound_ptr: Vec<u32>,
    compound_ids: Vec<u32>,
    /// The order in which the products visit the row groups of `W` and of `Wᵀ`, and its runs (see
    /// [`Self::with_visit_order`]); `None`: in order.
    visit: Option<Box<Visit>>,
    /// `[W, Wᵀ]`'s runs of positions and sets of groups, which a small batch puts in the vector lanes (see
    /// [`super::lanes`]); a compact matrix only. Derived from the index and not counted in
    /// [`Self::index_bytes`]: 8 bytes per run, 4 per group outside the runs, 4 per bundle and per set.
    lanes: Option<Box<[LanePlan; 2]>>,
}

impl TiedMatrix {
    /// Checks every structural invariant of a tied matrix:
    ///
    /// - `indptr` has `n_rows + 1` entries, starts at 0, ends at nnz, and never decreases;
    /// - in each row, columns strictly increase (sorted, no repeats) and are `< n_cols`;
    /// - every entry code is `< n_params + consts.len() + n_compounds`;
    /// - every compound lists at least one parameter id, each `< n_params`, without repeats;
    /// - the row groups partition the rows, and the rows of one group have identical column lists;
    /// - the same holds of `Wᵀ`, and `Wᵀ` is the transpose of `W`, codes included.
    ///
    /// A compact matrix is checked by [`CompactMap::check`] (each of `W` and `Wᵀ`), then the same rules on its
    /// CSR form: that `Wᵀ` is the transpose of `W`.
    pub fn check_structure(&self) -> Result<(), StructureError> {
        let n_codes = self.n_params + self.consts.len() + self.n_compounds();
        let (map, map_t) = match &self.compact {
            Some(c) => {
                c[0].check(self.n_params, n_codes)?;
                c[1].check(self.n_params, n_codes)?;
                if let Some(l) = &self.lanes {
                    for (plan, map) in l.iter().zip(c.iter()) {
                        plan.check(map).map_err(StructureError::BadGroups)?;
                    }
                }
                if c[0].shape() != (c[1].shape().1, c[1].shape().0) {
                    return Err(StructureError::BadTranspose(format!(
                        "shapes {:?} and {:?}",
                        c[0].shape(),
                        c[1].shape()
                    )));
                }
                (c[0].to_csr(), c[1].to_csr())
            }
            None => {
                let ci = self.classic();
                check_groups(&ci.map, &ci.groups)?;
                check_groups(&ci.map_t, &ci.groups_t)?;
                (ci.map.clone(), ci.map_t.clone())
            }
        };
        check_map(&map, n_codes)?;
        check_map(&map_t, n_codes)?;
        for j in 0..self.n_compounds() {
            let ids = self.compound(j);
            if ids.is_empty() {
                return Err(StructureError::BadCompound { index: j, what: "empty".into() });
            }
            if let Some(&p) = ids.iter().find(|&&p| p as usize >= self.n_params) {
                let what = format!("parameter id {p} out of range (n_params = {})", self.n_params);
                return Err(StructureError::BadCompound { index: j, what });
            }
            let mut sorted = ids.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != ids.len() {
                return Err(StructureError::BadCompound { index: j, what: format!("repeated ids {ids:?}") });
            }
        }
        let expected_t: IndexMap = map.transpose_view().to_csr();
        if expected_t != map_t {
            return Err(StructureError::BadTranspose("stored transpose differs from the transpose of W".into()));
        }
        Ok(())
    }

    /// Builds a tied matrix from raw CSR arrays (codes as values) and its tables, checking every invariant
    /// with [`Self::check_structure`]'s rules before anything trusts them; the buffers are dropped on error.
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        shape: (usize, usize),
        indptr: Vec<u32>,
        indices: Vec<u32>,
        codes: Vec<u32>,
        n_params: usize,
        consts: Vec<f64>,
        compound_ptr: Vec<u32>,
        compound_ids: Vec<u32>,
    ) -> Result<Self, StructureError> {
        if compound_ptr.is_empty()
            || compound_ptr[0] != 0
            || *compound_ptr.last().unwrap() as usize != compound_ids.len()
        {
            return Err(StructureError::BadCompound {
                index: 0,
                what: format!("compound pointers {compound_ptr:?} do not span {} ids", compound_ids.len()),
            });
        }
        if compound_ptr.windows(2).any(|w| w[0] > w[1]) {
            return Err(StructureError::BadCompound { index: 0, what: "compound pointers decrease".into() });
        }
        let n_codes = n_params + consts.len() + compound_ptr.len() - 1;
        check_csr(shape, &indptr, &indices, &codes, n_codes)?;
        // SAFETY: check_csr enforces every invariant sprs relies on (and more).
        let map = unsafe { IndexMap::new_unchecked(sprs::CompressedStorage::CSR, shape, indptr, indices, codes) };
        let m = Self::assemble(map, n_params, consts, compound_ptr, compound_ids);
        m.check_structure()?;
        Ok(m)
    }

    /// Builds a tied matrix the crate's compilers produced; invariants are checked in debug builds.
    pub(crate) fn new_trusted(
        map: IndexMap,
        n_params: usize,
        consts: Vec<f64>,
        compound_ptr: Vec<u32>,
        compound_ids: Vec<u32>,
    ) -> Self {
        let m = Self::assemble(map, n_params, consts, compound_ptr, compound_ids);
        debug_assert_eq!(m.check_structure(), Ok(()));
        m
    }

    fn assemble(
        map: IndexMap,
        n_params: usize,
        consts: Vec<f64>,
        compound_ptr: Vec<u32>,
        compound_ids: Vec<u32>,
    ) -> Self {
        let classic = ClassicIndex::of(map, n_params);
        let grad_plan = GradPlan::detect(&classic.map, &classic.groups, &classic.separable);
        let mut m = TiedMatrix {
            shape: classic.map.shape(),
            nnz: classic.map.nnz(),
            classic: OnceLock::from(classic),
            compact: None,
            segments: Vec::new(),
            grad_plan,
            n_params,
            consts,
            compound_ptr,
            compound_ids,
            visit: None,
            lanes: None,
        };
        m.segments = m.detect_segments();
        m
    }

    /// A compact matrix from its two directions (`w` (R, C) and `wt` (C, R)) and the tables of its codes; the
    /// invariants are checked in debug builds.
    pub(crate) fn from_compact(
        w: CompactMap,
        wt: CompactMap,
        n_params: usize,
        consts: Vec<f64>,
        compound_ptr: Vec<u32>,
        compound_ids: Vec<u32>,
    ) -> Self {
        let grad_plan = GradPlan::detect_from(&w);
        let lanes = Some(Box::new([LanePlan::detect(&w), LanePlan::detect(&wt)]));
        let mut m = TiedMatrix {
            shape: w.shape(),
            nnz: w.nnz(),
            classic: OnceLock::new(),
            compact: Some(Box::new([w, wt])),
            segments: Vec::new(),
            grad_plan,
            n_params,
            consts,
            compound_ptr,
            compound_ids,
            visit: None,
            lanes,
        };
        m.segments = m.detect_segments();
        debug_assert_eq!(m.check_structure(), Ok(()));
        m
    }

    /// The same matrix in the compact storage (itself, cloned, if it is compact already): the same nonzeros,
    /// codes, row groups, gradient plan and scatter segments.
    pub fn to_compact(&self) -> TiedMatrix {
        if self.compact.is_some() {
            return self.clone();
        }
        let ci = self.classic();
        let w = CompactMap::from_csr(&ci.map, &ci.groups, self.n_params);
        let wt = CompactMap::from_csr(&ci.map_t, &ci.groups_t, self.n_params);
        let (consts, cp, ci_ids) = (self.consts.clone(), self.compound_ptr.clone(), self.compound_ids.clone());
        let mut m = Self::from_compact(w, wt, self.n_params, consts, cp, ci_ids);
        // The compact form keeps the groups and their numbering, so the visit order carries over; its runs are
        // found on the compact form, which knows which groups share a weight row.
        if let Some(v) = &self.visit {
            m.set_visit(v.order.clone());
        }
        m
    }

    /// The same matrix whose products visit the row groups of `W` in increasing `w_key(first row)` and those
    /// of `Wᵀ` in increasing `wt_key(first row)` (ties in group order). The order changes neither a value
    /// nor a bit: each output row is summed by one task in its own column order whatever the order of the
    /// groups; it only decides which rows run one after another, and so which inputs stay in cache. A
    /// convolution whose groups are single rows (a pruning mask gives every row its own column list) visits
    /// them position by position: the output channels at one position read the same input window.
    pub fn with_visit_order(mut self, w_key: impl Fn(u32) -> u64, wt_key: impl Fn(u32) -> u64) -> Self {
        let (groups, groups_t) = match self.compact() {
            Some((w, wt)) => (w.groups(), wt.groups()),
            None => (&self.classic().groups, &self.classic().groups_t),
        };
        let order = |groups: &RowGroups, key: &dyn Fn(u32) -> u64| {
            let mut order: Vec<u32> = (0..groups.len() as u32).collect();
            order.sort_by_key(|&g| key(groups.group(g as usize)[0]));
            order
        };
        let visit = [order(groups, &w_key), order(groups_t, &wt_key)];
        self.set_visit(visit);
        self
    }

    /// Sets the visit order and finds its runs (single groups unless the matrix is compact).
    fn set_visit(&mut self, order: [Vec<u32>; 2]) {
        let runs = match self.compact.as_deref() {
            Some([w, wt]) => [
                Visit::runs(&order[0], |g, h| w.same_weight_row(g, h)),
                Visit::runs(&order[1], |g, h| wt.same_weight_row(g, h)),
            ],
            None => [Visit::runs(&order[0], |_, _| false), Visit::runs(&order[1], |_, _| false)],
        };
        self.visit = Some(Box::new(Visit { order, runs }));
    }

    /// The order in which the products visit the row groups of `W` (`side` 0) or `Wᵀ` (`side` 1), if not in
    /// order.
    pub(super) fn visit_order(&self, side: usize) -> Option<&[u32]> {
        self.visit.as_deref().map(|v| &v.order[side][..])
    }

    /// The visit order of side `side` and its run boundaries (see [`Visit`]), if not in order.
    pub(super) fn visit_runs(&self, side: usize) -> Option<(&[u32], &[u32])> {
        self.visit.as_deref().map(|v| (&v.order[side][..], &v.runs[side][..]))
    }

    /// The lane plans of `W` and `Wᵀ` (a compact matrix).
    pub(super) fn lane_plans(&self) -> Option<&[LanePlan; 2]> {
        self.lanes.as_deref()
    }

    /// Which index the matrix stores.
    pub fn storage(&self) -> Storage {
        if self.compact.is_some() { Storage::Compact } else { Storage::Classic }
    }

    /// `(W, Wᵀ)` of a compact matrix.
    pub fn compact(&self) -> Option<(&CompactMap, &CompactMap)> {
        self.compact.as_deref().map(|[w, wt]| (w, wt))
    }

    /// The classic index (built from the compact one on first use).
    fn classic(&self) -> &ClassicIndex {
        self.classic.get_or_init(|| {
            let [w, wt] = self.compact.as_deref().expect("a matrix without its classic index is compact");
            ClassicIndex::new(w.to_csr(), w.groups().clone(), wt.to_csr(), wt.groups().clone(), self.n_params)
        })
    }

    /// `W` in the classic form, as the products read it.
    pub(super) fn classic_w(&self) -> Classic<'_> {
        let ci = self.classic();
        Classic { map: &ci.map, groups: &ci.groups, separable: &ci.separable }
    }

    /// `Wᵀ` in the classic form, as the products read it.
    pub(super) fn classic_wt(&self) -> Classic<'_> {
        let ci = self.classic();
        Classic { map: &ci.map_t, groups: &ci.groups_t, separable: &ci.separable_t }
    }

    /// Calls `f(row, columns, codes)` for every row of `W`, rows in order.
    pub fn for_each_row(&self, mut f: impl FnMut(usize, &[u32], &[u32])) {
        let Some((w, _)) = self.compact() else {
            let map = &self.classic().map;
            let ip = map.indptr();
            let ip = ip.raw_storage();
            for r in 0..map.rows() {
                let k = ip[r] as usize..ip[r + 1] as usize;
                f(r, &map.indices()[k.clone()], &map.data()[k]);
            }
            return;
        };
        // Where each row lives: (group, index in the group).
        let mut at = vec![(0u32, 0u32); self.shape.0];
        for g in 0..w.n_groups() {
            for (i, &r) in w.groups().group(g).iter().enumerate() {
                at[r as usize] = (g as u32, i as u32);
            }
        }
        let (mut cols, mut codes) = (Vec::new(), Vec::new());
        for (r, &(g, i)) in at.iter().enumerate() {
            let (pattern, shift, wg) = (w.pattern(g as usize), w.shift(g as usize), w.weights(g as usize));
            cols.clear();
            cols.extend(pattern.iter().map(|&c| c + shift));
            codes.clear();
            codes.extend((0..pattern.len()).map(|j| wg.code(i as usize, j, pattern.len())));
            f(r, &cols, &codes);
        }
    }

    /// The row groups of `W` whose values the products read straight from `θ`.
    pub fn separable(&self) -> &SeparableGroups {
        &self.classic().separable
    }

    /// The row groups of `Wᵀ` whose values the products read straight from `θ`.
    pub fn separable_t(&self) -> &SeparableGroups {
        &self.classic().separable_t
    }

    /// The plan of the parameter gradient: classes of row groups copying the same taps, and the groups
    /// left to the per-nonzero path.
    pub fn grad_plan(&self) -> &GradPlan {
        &self.grad_plan
    }

    /// `(n_rows, n_cols)`.
    pub fn shape(&self) -> (usize, usize) {
        self.shape
    }

    /// Number of stored nonzeros.
    pub fn nnz(&self) -> usize {
        self.nnz
    }

    /// Number of shared parameters `θ` the matrix reads.
    pub fn n_params(&self) -> usize {
        self.n_params
    }

    /// The index map `W` (values are entry codes); a compact matrix builds it on first use.
    pub fn map(&self) -> &IndexMap {
        &self.classic().map
    }

    /// The transposed index map `Wᵀ` (values are entry codes); a compact matrix builds it on first use.
    pub fn map_t(&self) -> &IndexMap {
        &self.classic().map_t
    }

    /// The row groups of `W`.
    pub fn groups(&self) -> &RowGroups {
        match self.compact() {
            Some((w, _)) => w.groups(),
            None => &self.classic().groups,
        }
    }

    /// Runs of consecutive rows whose nonzeros read disjoint, increasing ranges of parameters: in a
    /// convolution, the rows of one output channel read only that channel's kernel. The scatter of the
    /// parameter gradient runs the segments in parallel; each parameter still receives its terms in the
    /// order of the nonzeros.
    pub fn scatter_segments(&self) -> &[ScatterSegment] {
        &self.segments
    }

    /// Cuts the rows into scatter segments ([`segments::cut`]) from the range of parameters each row reads.
    fn detect_segments(&self) -> Vec<ScatterSegment> {
        let widen = |range: &mut Option<(u32, u32)>, p: u32| {
            *range = Some(range.map_or((p, p + 1), |(lo, hi)| (lo.min(p), hi.max(p + 1))))
        };
        let range_of = |codes: &mut dyn Iterator<Item = u32>| {
            let mut range = None;
            for c in codes {
                match self.decode(c) {
                    Entry::Param(p) => widen(&mut range, p),
                    Entry::Const(_) => {}
                    Entry::Sum(ids) => ids.iter().for_each(|&p| widen(&mut range, p)),
                }
            }
            range
        };
        let ranges: Vec<Option<(u32, u32)>> = match self.compact() {
            None => {
                let mut ranges = Vec::with_capacity(self.shape.0);
                self.for_each_row(|_, _, codes| ranges.push(range_of(&mut codes.iter().copied())));
                ranges
            }
            Some((w, _)) => {
                let mut ranges = vec![None; self.shape.0];
                // The range of a tap list, by its address in the map's table (interned: one per distinct list).
                let mut tap_range: std::collections::HashMap<(usize, usize), (u32, u32)> = Default::default();
                for g in 0..w.n_groups() {
                    let rows = w.groups().group(g);
                    match w.weights(g) {
                        GroupWeights::Separable { offsets, taps } => {
                            let (lo, hi) = *tap_range
                                .entry((taps.as_ptr() as usize, taps.len()))
                                .or_insert_with(|| (*taps.iter().min().unwrap(), *taps.iter().max().unwrap()));
                            for (&r, &o) in rows.iter().zip(offsets) {
                                ranges[r as usize] = Some((lo.wrapping_add(o), hi.wrapping_add(o) + 1));
                            }
                        }
                        GroupWeights::Codes(codes) => {
                            let n = w.pattern(g).len();
                            for (i, &r) in rows.iter().enumerate() {
                                ranges[r as usize] = range_of(&mut codes[i * n..(i + 1) * n].iter().copied());
                            }
                        }
                    }
                }
                ranges
            }
        };
        segments::cut(ranges)
    }

    /// The row groups of `Wᵀ`.
    pub fn groups_t(&self) -> &RowGroups {
        match self.compact() {
            Some((_, wt)) => wt.groups(),
            None => &self.classic().groups_t,
        }
    }

    /// Number of compound entries.
    pub fn n_compounds(&self) -> usize {
        self.compound_ptr.len() - 1
    }

    /// The parameter ids summed by compound `j`.
    pub fn compound(&self, j: usize) -> &[u32] {
        &self.compound_ids[self.compound_ptr[j] as usize..self.compound_ptr[j + 1] as usize]
    }

    /// What entry code `c` reads.
    #[inline]
    pub fn decode(&self, c: u32) -> Entry<'_> {
        let c = c as usize;
        if c < self.n_params {
            Entry::Param(c as u32)
        } else if c < self.n_params + self.consts.len() {
            Entry::Const(self.consts[c - self.n_params])
        } else {
            Entry::Sum(self.compound(c - self.n_params - self.consts.len()))
        }
    }

    /// The value of the entry with code `c` under parameters `theta`.
    #[inline]
    pub fn value<T: Real>(&self, theta: &[T], c: u32) -> T {
        if (c as usize) < self.n_params {
            return theta[c as usize];
        }
        match self.decode(c) {
            Entry::Param(p) => theta[p as usize],
            Entry::Const(v) => T::of(v),
            Entry::Sum(ids) => ids.iter().fold(T::zero(), |acc, &p| acc + theta[p as usize]),
        }
    }

    /// For each parameter `p`, its multiplicity `m_p`: how many nonzeros copy it (a compound entry counts
    /// once for each parameter it sums).
    pub fn multiplicity(&self) -> Vec<u32> {
        let mut m = vec![0u32; self.n_params];
        self.for_each_row(|_, _, codes| {
            for &c in codes {
                match self.decode(c) {
                    Entry::Param(p) => m[p as usize] += 1,
                    Entry::Const(_) => {}
                    Entry::Sum(ids) => ids.iter().for_each(|&p| m[p as usize] += 1),
                }
            }
        });
        m
    }

    /// The matrix as dense row-major values under `theta` (for tests and small pictures).
    pub fn to_dense<T: Real>(&self, theta: &[T]) -> Vec<T> {
        let (rows, cols) = self.shape();
        let mut d = vec![T::zero(); rows * cols];
        self.for_each_row(|r, cs, codes| {
            for (&c, &code) in cs.iter().zip(codes) {
                d[r * cols + c as usize] = self.value(theta, code);
            }
        });
        d
    }
}

/// What an entry code reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Entry<'a> {
    Param(u32),
    Const(f64),
    Sum(&'a [u32]),
}

impl fmt::Display for TiedMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, c) = self.shape();
        write!(f, "{r}x{c} tied matrix, {} nonzeros copying {} parameters", self.nnz(), self.n_params)
    }
}

impl TiedMatrix {
    /// Bytes of the index structure: row pointers, columns and codes of `W` and of `Wᵀ`, the row groups
    /// of both, the constant and compound tables, the scatter segments, the gradient plan, the products' visit
    /// order and its runs, the separable-group tables (the parts listed in [`super::bytes`]). Parameter values
    /// are not part of it.
    pub fn index_bytes(&self) -> usize {
        let visit = self.visit.as_deref().map_or(0, |v| 4 * v.order.iter().chain(&v.runs).map(Vec::len).sum::<usize>());
        match self.compact() {
            Some((w, wt)) => w.bytes() + wt.bytes() + self.table_bytes() + visit,
            None => self.classic_index_bytes() + visit,
        }
    }

    /// Bytes the classic index of this matrix takes, without the visit order (for a compact matrix, the classic
    /// form it builds on demand): what the compact index is measured against.
    pub fn classic_index_bytes(&self) -> usize {
        let map = |m: &IndexMap| csr(m.rows(), m.nnz());
        let groups = |g: &RowGroups| row_groups(g.ptr.len(), g.rows.len());
        let ci = self.classic();
        map(&ci.map)
            + map(&ci.map_t)
            + groups(&ci.groups)
            + groups(&ci.groups_t)
            + ci.separable.bytes()
            + ci.separable_t.bytes()
            + self.table_bytes()
    }

    /// Bytes of the constant and compound tables, the scatter segments and the gradient plan.
    fn table_bytes(&self) -> usize {
        consts(self.consts.len())
            + compound(self.compound_ptr.len(), self.compound_ids.len())
            + segment_bytes(self.segments.len())
            + self.grad_plan.bytes()
    }
}
