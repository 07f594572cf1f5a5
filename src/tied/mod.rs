//! The tied sparse matrix: a CSR pattern whose nonzeros copy entries of a shared parameter vector.
//!
//! A matrix `W` of shape `(n_rows, n_cols)` is stored as a CSR index map (an `sprs::CsMatI<u32, u32, u32>`)
//! whose stored values are not numbers but *entry codes*. For the nonzero `k` in row `i`, column
//! `indices[k]`, with `indptr[i] <= k < indptr[i+1]`:
//!
//! ```text
//! W(i, indices[k]) = value(code[k])
//! value(c) = θ[c]                                    if c < n_params              (a tied copy)
//!          = consts[c - n_params]                    if c < n_params + n_consts   (a constant, e.g. 1/k²)
//!          = Σ_{p ∈ compound(c - n_params - n_consts)} θ[p]    otherwise            (several taps merged)
//! ```
//!
//! Compound entries arise when padding modes other than zeros send two kernel taps of one output to the
//! same input (reflect, replicate and circular padding at the border): the matrix entry is then the sum of
//! the taps. Values are never stored: they are read from `θ` at every product.
//!
//! The transposed map `Wᵀ` is kept as a second CSR carrying the same codes, so that `d_x = Wᵀ d_y` is a
//! row-parallel product with no reduction across threads. Rows that share one column list (in a
//! convolution: all output channels at one output position) are listed as *row groups*; the kernels in
//! [`products`] and [`gradients`] load each input column once per group.
//!
//! Memory: 4 bytes per nonzero for the column, 4 for the code, in each of `W` and `Wᵀ`, plus 4 bytes per
//! row for the row pointers and 4 per row for the row groups (see [`bytes`] and [`TiedMatrix::index_bytes`]).

pub mod bytes;
pub mod compact;
pub mod grad_plan;
pub mod gradients;
pub mod products;
mod simd;
mod simd_avx2;

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use sprs::CsMatI;

use crate::scalar::Real;
pub use compact::CompactMap;
pub use grad_plan::{CompactClass, GradClass, GradPlan, SeparableGroups};

/// The index map: CSR, values are entry codes.
pub type IndexMap = CsMatI<u32, u32, u32>;

/// What one nonzero copies, as handed to the builder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Source {
    /// The shared parameter with this id.
    Param(u32),
    /// A constant (mean pooling's `1/k²`).
    Const(f64),
}

/// A broken invariant of a tied sparse matrix, with the values that break it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StructureError {
    /// `indptr` does not have `n_rows + 1` entries, does not start at 0 or does not end at nnz.
    #[error("row pointers: {0}")]
    RowPointers(String),
    /// `indptr[i] > indptr[i+1]`.
    #[error("row pointers decrease at row {row}: {start} > {end}")]
    NotMonotone { row: usize, start: u32, end: u32 },
    /// Columns of a row not strictly increasing (unsorted or repeated).
    #[error("row {row}: columns not strictly increasing ({prev} then {next})")]
    ColumnsNotSorted { row: usize, prev: u32, next: u32 },
    /// A column index `>= n_cols`.
    #[error("row {row}: column {col} out of range (n_cols = {n_cols})")]
    ColumnOutOfRange { row: usize, col: u32, n_cols: usize },
    /// An entry code beyond parameters, constants and compounds.
    #[error("nonzero {k}: entry code {code} out of range ({n_codes} codes)")]
    CodeOutOfRange { k: usize, code: u32, n_codes: usize },
    /// A compound entry lists a parameter id `>= n_params`, or lists none.
    #[error("compound {index}: {what}")]
    BadCompound { index: usize, what: String },
    /// The row groups do not partition the rows, or a group's rows differ in columns.
    #[error("row groups: {0}")]
    BadGroups(String),
    /// The transposed map is not the transpose of the map.
    #[error("transpose: {0}")]
    BadTranspose(String),
}

/// A partition of the rows of a CSR pattern into groups of rows with identical column lists.
///
/// Group `g` holds rows `rows[ptr[g]..ptr[g+1]]`, in increasing order.
#[derive(Clone, Debug, PartialEq)]
pub struct RowGroups {
    pub ptr: Vec<u32>,
    pub rows: Vec<u32>,
}

impl RowGroups {
    /// Largest number of rows in one group: groups are cut to this size so that a group's accumulators
    /// stay in the first-level cache and the work splits over threads.
    pub const MAX_ROWS: usize = 16;

    /// Groups the rows of `m` by identical column lists (in order of first appearance), cutting groups
    /// larger than [`Self::MAX_ROWS`].
    pub fn detect(m: &IndexMap) -> Self {
        let indptr = m.indptr();
        let indptr = indptr.raw_storage();
        let indices = m.indices();
        let mut by_cols: HashMap<&[u32], usize> = HashMap::new();
        let mut members: Vec<Vec<u32>> = Vec::new();
        for r in 0..m.rows() {
            let cols = &indices[indptr[r] as usize..indptr[r + 1] as usize];
            let g = *by_cols.entry(cols).or_insert_with(|| {
                members.push(Vec::new());
                members.len() - 1
            });
            members[g].push(r as u32);
        }
        let mut ptr = vec![0u32];
        let mut rows = Vec::with_capacity(m.rows());
        for group in members {
            for chunk in group.chunks(Self::MAX_ROWS) {
                rows.extend_from_slice(chunk);
                ptr.push(rows.len() as u32);
            }
        }
        RowGroups { ptr, rows }
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.ptr.len() - 1
    }

    /// True when there is no group (a matrix with no rows).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows of group `g`.
    pub fn group(&self, g: usize) -> &[u32] {
        &self.rows[self.ptr[g] as usize..self.ptr[g + 1] as usize]
    }
}

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
    /// `W` and `Wᵀ` as [`CompactMap`]s: shared column patterns, bases and offsets (see [`compact`]).
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
}

/// The order in which the products visit the row groups of `W` (`[0]`) and `Wᵀ` (`[1]`), cut into *runs*:
/// `order[runs[k]..runs[k + 1]]` is run `k`. In a compact matrix a run is a sequence of single-row groups that
/// copy one separable weight row at different shifts ([`CompactMap::same_weight_row`]), at most
/// [`Visit::MAX_RUN`] of them, which one kernel runs together; every other group is a run of its own.
#[derive(Clone, Debug)]
pub(crate) struct Visit {
    order: [Vec<u32>; 2],
    runs: [Vec<u32>; 2],
}

impl Visit {
    /// Most groups in one run: 12 members × 2 registers of 16 samples fill 24 accumulators.
    const MAX_RUN: usize = 12;

    /// `order`'s runs where `like(g, h)` says that consecutive groups `g`, `h` copy one weight row.
    fn runs(order: &[u32], like: impl Fn(usize, usize) -> bool) -> Vec<u32> {
        let mut runs = vec![0u32];
        let mut start = 0;
        for k in 1..order.len() {
            if k - start >= Self::MAX_RUN || !like(order[k - 1] as usize, order[k] as usize) {
                runs.push(k as u32);
                start = k;
            }
        }
        if !order.is_empty() {
            runs.push(order.len() as u32);
        }
        runs
    }
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
    pub(super) fn classic_w(&self) -> products::Classic<'_> {
        let ci = self.classic();
        products::Classic { map: &ci.map, groups: &ci.groups, separable: &ci.separable }
    }

    /// `Wᵀ` in the classic form, as the products read it.
    pub(super) fn classic_wt(&self) -> products::Classic<'_> {
        let ci = self.classic();
        products::Classic { map: &ci.map_t, groups: &ci.groups_t, separable: &ci.separable_t }
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

    /// Cuts the rows into segments: a row starts a new segment when every parameter it reads lies above every
    /// parameter read so far; otherwise it joins the last segment, which absorbs earlier segments its range
    /// now overlaps. Rows that read no parameter join the last segment.
    fn detect_segments(&self) -> Vec<ScatterSegment> {
        const NONE: (u32, u32) = (u32::MAX, u32::MAX);
        let mut segments: Vec<ScatterSegment> = Vec::new();
        let mut each_row = |r: usize, range: Option<(u32, u32)>| {
            let row_end = r as u32 + 1;
            let Some((lo, hi)) = range else {
                match segments.last_mut() {
                    Some(last) => last.rows.1 = row_end,
                    None => segments.push(ScatterSegment { rows: (r as u32, row_end), params: NONE }),
                }
                return;
            };
            // Parameter ranges of the segments increase: the last that reads any holds the highest.
            let highest = segments.iter().rev().find(|s| s.params != NONE).map(|s| s.params.1);
            if highest.is_none_or(|h| lo >= h) {
                segments.push(ScatterSegment { rows: (r as u32, row_end), params: (lo, hi) });
                return;
            }
            let mut last = segments.pop().expect("a segment reads parameters");
            last.rows.1 = row_end;
            last.params = if last.params == NONE { (lo, hi) } else { (last.params.0.min(lo), last.params.1.max(hi)) };
            while let Some(prev) = segments.last().filter(|p| p.params != NONE && p.params.1 > last.params.0) {
                last.rows.0 = prev.rows.0;
                last.params = (prev.params.0.min(last.params.0), prev.params.1.max(last.params.1));
                segments.pop();
            }
            segments.push(last);
        };
        // The range of parameters each row reads, rows in order (a compact matrix: per group, a separable group's
        // rows from its taps' range).
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
        match self.compact() {
            None => self.for_each_row(|r, _, codes| each_row(r, range_of(&mut codes.iter().copied()))),
            Some((w, _)) => {
                let mut ranges = vec![None; self.shape.0];
                // The range of a tap list, by its address in the map's table (interned: one per distinct list).
                let mut tap_range: std::collections::HashMap<(usize, usize), (u32, u32)> = Default::default();
                for g in 0..w.n_groups() {
                    let rows = w.groups().group(g);
                    match w.weights(g) {
                        compact::GroupWeights::Separable { offsets, taps } => {
                            let (lo, hi) = *tap_range
                                .entry((taps.as_ptr() as usize, taps.len()))
                                .or_insert_with(|| (*taps.iter().min().unwrap(), *taps.iter().max().unwrap()));
                            for (&r, &o) in rows.iter().zip(offsets) {
                                ranges[r as usize] = Some((lo.wrapping_add(o), hi.wrapping_add(o) + 1));
                            }
                        }
                        compact::GroupWeights::Codes(codes) => {
                            let n = w.pattern(g).len();
                            for (i, &r) in rows.iter().enumerate() {
                                ranges[r as usize] = range_of(&mut codes[i * n..(i + 1) * n].iter().copied());
                            }
                        }
                    }
                }
                for (r, range) in ranges.into_iter().enumerate() {
                    each_row(r, range);
                }
            }
        }
        segments
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

/// Rows `rows.0..rows.1` whose nonzeros read only parameters `params.0..params.1` (`(u32::MAX, u32::MAX)`
/// when they read none); the parameter ranges of successive segments are disjoint and increasing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScatterSegment {
    pub rows: (u32, u32),
    pub params: (u32, u32),
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

fn check_map(m: &IndexMap, n_codes: usize) -> Result<(), StructureError> {
    let ip = m.indptr();
    check_csr(m.shape(), ip.raw_storage(), m.indices(), m.data(), n_codes)
}

fn check_csr(
    (rows, cols): (usize, usize),
    ip: &[u32],
    indices: &[u32],
    codes: &[u32],
    n_codes: usize,
) -> Result<(), StructureError> {
    if ip.len() != rows + 1 {
        return Err(StructureError::RowPointers(format!("{} entries for {rows} rows", ip.len())));
    }
    if ip[0] != 0 || ip[rows] as usize != indices.len() || indices.len() != codes.len() {
        return Err(StructureError::RowPointers(format!(
            "span {}..{} but {} columns and {} codes",
            ip[0],
            ip[rows],
            indices.len(),
            codes.len()
        )));
    }
    for row in 0..rows {
        let (start, end) = (ip[row], ip[row + 1]);
        if start > end {
            return Err(StructureError::NotMonotone { row, start, end });
        }
    }
    for row in 0..rows {
        let row_cols = &indices[ip[row] as usize..ip[row + 1] as usize];
        for w in row_cols.windows(2) {
            if w[0] >= w[1] {
                return Err(StructureError::ColumnsNotSorted { row, prev: w[0], next: w[1] });
            }
        }
        if let Some(&col) = row_cols.last().filter(|&&c| c as usize >= cols) {
            return Err(StructureError::ColumnOutOfRange { row, col, n_cols: cols });
        }
    }
    if let Some((k, &code)) = codes.iter().enumerate().find(|&(_, &c)| c as usize >= n_codes) {
        return Err(StructureError::CodeOutOfRange { k, code, n_codes });
    }
    Ok(())
}

fn check_groups(m: &IndexMap, g: &RowGroups) -> Result<(), StructureError> {
    let bad = |s: String| Err(StructureError::BadGroups(s));
    if g.ptr.first() != Some(&0)
        || *g.ptr.last().unwrap() as usize != g.rows.len()
        || g.ptr.windows(2).any(|w| w[0] >= w[1])
    {
        return bad(format!("group pointers do not split {} rows into nonempty groups", g.rows.len()));
    }
    let mut seen = vec![false; m.rows()];
    let ip = m.indptr();
    let ip = ip.raw_storage();
    let cols = |r: usize| &m.indices()[ip[r] as usize..ip[r + 1] as usize];
    for gi in 0..g.len() {
        let rows = g.group(gi);
        for &r in rows {
            let r = r as usize;
            if r >= m.rows() || seen[r] {
                return bad(format!("row {r} out of range or in two groups"));
            }
            seen[r] = true;
            if cols(r) != cols(rows[0] as usize) {
                return bad(format!("rows {} and {r} of group {gi} have different columns", rows[0]));
            }
        }
    }
    if let Some(r) = seen.iter().position(|&s| !s) {
        return bad(format!("row {r} is in no group"));
    }
    Ok(())
}

/// Collects the nonzeros of a tied matrix in any order and assembles it.
///
/// Several entries at one `(row, col)` merge into one nonzero: parameters into a compound entry (their
/// sum), constants into their sum. A parameter and a constant at one position is a caller's bug.
///
/// Memory: 12 bytes per pushed entry (row, column and a `u32` source: a parameter id, or a flagged index
/// into a table of distinct constants), then 8 bytes per nonzero while the CSR is written.
#[derive(Clone, Debug)]
pub struct TiedBuilder {
    n_rows: usize,
    n_cols: usize,
    n_params: usize,
    /// `(row, col, source)`: `source < CONST_FLAG` is a parameter id, else `pushed_consts[source − CONST_FLAG]`.
    entries: Vec<(u32, u32, u32)>,
    /// Distinct constants pushed so far, and their index by bit pattern.
    pushed_consts: Vec<f64>,
    const_index: HashMap<u64, u32>,
}

/// Flags of provisional codes in [`TiedBuilder`]: parameter ids stay below `CONST_FLAG`.
const CONST_FLAG: u32 = 1 << 30;
const COMPOUND_FLAG: u32 = 1 << 31;

impl TiedBuilder {
    /// An empty `(n_rows, n_cols)` matrix over `n_params` shared parameters.
    #[track_caller]
    pub fn new(n_rows: usize, n_cols: usize, n_params: usize) -> Self {
        assert!(
            n_rows < u32::MAX as usize && n_cols < u32::MAX as usize && n_params < CONST_FLAG as usize,
            "TiedBuilder: {n_rows}x{n_cols} over {n_params} parameters does not fit u32 indices"
        );
        TiedBuilder {
            n_rows,
            n_cols,
            n_params,
            entries: Vec::new(),
            pushed_consts: Vec::new(),
            const_index: HashMap::new(),
        }
    }

    /// Reserves room for `n` more entries.
    pub fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
    }

    /// Adds `source` at `(row, col)`.
    #[inline]
    #[track_caller]
    pub fn push(&mut self, row: usize, col: usize, source: Source) {
        debug_assert!(row < self.n_rows && col < self.n_cols, "({row}, {col}) outside {}x{}", self.n_rows, self.n_cols);
        let code = match source {
            Source::Param(p) => {
                debug_assert!((p as usize) < self.n_params, "parameter {p} >= {}", self.n_params);
                p
            }
            Source::Const(v) => {
                let consts = &mut self.pushed_consts;
                CONST_FLAG
                    + *self.const_index.entry(v.to_bits()).or_insert_with(|| {
                        consts.push(v);
                        (consts.len() - 1) as u32
                    })
            }
        };
        self.entries.push((row as u32, col as u32, code));
    }

    /// Sorts, merges and assembles the matrix. Constants and compounds are numbered after the parameters in
    /// order of first appearance (row, then column); equal ones share a code.
    #[track_caller]
    pub fn build(mut self) -> TiedMatrix {
        self.entries.sort_unstable();
        assert!(self.entries.len() < u32::MAX as usize, "TiedBuilder: {} entries overflow u32", self.entries.len());
        let mut indptr = vec![0u32; self.n_rows + 1];
        let mut indices = Vec::with_capacity(self.entries.len());
        let mut codes = Vec::with_capacity(self.entries.len());
        let mut consts: Vec<f64> = Vec::new();
        let mut const_code: HashMap<u64, u32> = HashMap::new();
        let mut compound_ptr = vec![0u32];
        let mut compound_ids = Vec::new();
        let mut compound_code: HashMap<Vec<u32>, u32> = HashMap::new();
        let mut i = 0;
        while i < self.entries.len() {
            let (r, c, _) = self.entries[i];
            let mut j = i + 1;
            while j < self.entries.len() && self.entries[j].0 == r && self.entries[j].1 == c {
                j += 1;
            }
            let same = &self.entries[i..j];
            let n_const = same.iter().filter(|e| e.2 >= CONST_FLAG).count();
            // Provisional codes: parameters as they are, constants and compounds flagged (renumbered below).
            let code = if same.len() == 1 && n_const == 0 {
                same[0].2
            } else if n_const == same.len() {
                let v: f64 = same.iter().map(|e| self.pushed_consts[(e.2 - CONST_FLAG) as usize]).sum();
                CONST_FLAG
                    + *const_code.entry(v.to_bits()).or_insert_with(|| {
                        consts.push(v);
                        (consts.len() - 1) as u32
                    })
            } else {
                assert!(n_const == 0, "TiedBuilder: a parameter and a constant at ({r}, {c})");
                let ids: Vec<u32> = same.iter().map(|e| e.2).collect();
                COMPOUND_FLAG
                    + *compound_code.entry(ids).or_insert_with_key(|ids| {
                        compound_ids.extend_from_slice(ids);
                        compound_ptr.push(compound_ids.len() as u32);
                        (compound_ptr.len() - 2) as u32
                    })
            };
            indices.push(c);
            codes.push(code);
            indptr[r as usize + 1] += 1;
            i = j;
        }
        drop(std::mem::take(&mut self.entries));
        for r in 0..self.n_rows {
            indptr[r + 1] += indptr[r];
        }
        let (base_const, base_compound) = (self.n_params as u32, (self.n_params + consts.len()) as u32);
        for code in &mut codes {
            if *code >= COMPOUND_FLAG {
                *code = base_compound + (*code - COMPOUND_FLAG);
            } else if *code >= CONST_FLAG {
                *code = base_const + (*code - CONST_FLAG);
            }
        }
        let map = IndexMap::try_new((self.n_rows, self.n_cols), indptr, indices, codes)
            .map_err(|(_, _, _, e)| e)
            .expect("TiedBuilder produced a malformed CSR");
        TiedMatrix::new_trusted(map, self.n_params, consts, compound_ptr, compound_ids)
    }
}
