//! What the kernels read, as contracts: the row groups of one direction of a tied matrix ([`GroupSource`], on
//! the classic or the compact index), the weights of one group ([`Weights`], [`RowWeights`]) and the rows a
//! group product writes ([`OutRows`]).
//!
//! The weight views hold raw pointers: a kernel reads them inside `unsafe` code whose contract names them.

use super::compact::{CompactMap, GroupWeights};
use super::index::{IndexMap, RowGroups};
use super::separable::SeparableGroups;
use crate::scalar::Real;

/// The row groups of one direction of a tied matrix, as the products read them: the classic CSR with its
/// groups and separable tables, or a [`CompactMap`].
pub(crate) trait GroupSource: Sync {
    fn n_groups(&self) -> usize;
    /// The rows of group `g`.
    fn rows(&self, g: usize) -> &[u32];
    /// The columns of group `g`, relative to the returned shift (the classic form: absolute, shift 0).
    fn cols(&self, g: usize) -> (&[u32], u32);
    /// `(offsets, first-row codes)` of a separable group: row `i`, column `j` copies `θ[code0[j] + o_i]`.
    fn separable(&self, g: usize) -> Option<(&[u32], &[u32])>;
    /// Whether groups `g` and `g + 1` are separable twins (the same weight at every row and column).
    fn twins(&self, g: usize) -> bool;
    /// The group's values gathered from θ into `wblock` (G, n) row-major.
    fn gather<T: Real>(&self, g: usize, theta: &[T], value: &impl Fn(u32) -> T, wblock: &mut Vec<T>);
    /// The code of row `i`, column `j` of group `g`.
    fn code(&self, g: usize, i: usize, j: usize) -> u32;
}

/// The classic form: a CSR map, its row groups and its separable groups.
pub(crate) struct Classic<'a> {
    pub(crate) map: &'a IndexMap,
    pub(crate) groups: &'a RowGroups,
    pub(crate) separable: &'a SeparableGroups,
}

impl GroupSource for Classic<'_> {
    fn n_groups(&self) -> usize {
        self.groups.len()
    }
    #[inline]
    fn rows(&self, g: usize) -> &[u32] {
        self.groups.group(g)
    }
    #[inline]
    fn cols(&self, g: usize) -> (&[u32], u32) {
        let first = self.groups.group(g)[0] as usize;
        let ip = self.map.indptr();
        let ip = ip.raw_storage();
        (&self.map.indices()[ip[first] as usize..ip[first + 1] as usize], 0)
    }
    #[inline]
    fn separable(&self, g: usize) -> Option<(&[u32], &[u32])> {
        let rows = self.groups.group(g);
        let offsets = self.separable.of(g, rows.len())?;
        let ip = self.map.indptr();
        let ip = ip.raw_storage();
        let first = rows[0] as usize;
        Some((offsets, &self.map.data()[ip[first] as usize..ip[first + 1] as usize]))
    }
    #[inline]
    fn twins(&self, g: usize) -> bool {
        self.separable.twins(g)
    }
    #[inline]
    fn gather<T: Real>(&self, g: usize, _theta: &[T], value: &impl Fn(u32) -> T, wblock: &mut Vec<T>) {
        let ip = self.map.indptr();
        let ip = ip.raw_storage();
        let codes = self.map.data();
        wblock.clear();
        for &r in self.groups.group(g) {
            let (a, b) = (ip[r as usize] as usize, ip[r as usize + 1] as usize);
            wblock.extend(codes[a..b].iter().map(|&c| value(c)));
        }
    }
    #[inline]
    fn code(&self, g: usize, i: usize, j: usize) -> u32 {
        let r = self.groups.group(g)[i] as usize;
        let ip = self.map.indptr();
        self.map.data()[ip.raw_storage()[r] as usize + j]
    }
}

impl GroupSource for CompactMap {
    fn n_groups(&self) -> usize {
        CompactMap::n_groups(self)
    }
    #[inline]
    fn rows(&self, g: usize) -> &[u32] {
        self.groups().group(g)
    }
    #[inline]
    fn cols(&self, g: usize) -> (&[u32], u32) {
        (self.pattern(g), self.shift(g))
    }
    #[inline]
    fn separable(&self, g: usize) -> Option<(&[u32], &[u32])> {
        match self.weights(g) {
            GroupWeights::Separable { offsets, taps } => Some((offsets, taps)),
            GroupWeights::Codes(_) => None,
        }
    }
    #[inline]
    fn twins(&self, g: usize) -> bool {
        CompactMap::twins(self, g)
    }
    #[inline]
    fn gather<T: Real>(&self, g: usize, theta: &[T], value: &impl Fn(u32) -> T, wblock: &mut Vec<T>) {
        wblock.clear();
        match self.weights(g) {
            GroupWeights::Separable { offsets, taps } => {
                for &o in offsets {
                    wblock.extend(taps.iter().map(|&t| theta[t.wrapping_add(o) as usize]));
                }
            }
            GroupWeights::Codes(codes) => wblock.extend(codes.iter().map(|&c| value(c))),
        }
    }
    #[inline]
    fn code(&self, g: usize, i: usize, j: usize) -> u32 {
        self.weights(g).code(i, j, self.pattern(g).len())
    }
}

/// Where a row-group product reads its weights: `get(r, j)` is the value of row `r`, column `j` of the group.
pub(crate) trait Weights: Copy {
    /// # Safety
    /// `r` and `j` lie inside the group, and the view's pointers still address the live buffers of the group
    /// it was made for (the block gathered for it, or θ and the group's separable tables, with every code
    /// inside θ).
    unsafe fn get(self, r: usize, j: usize) -> f32;
}

/// The group's values gathered into a (G, n) row-major block.
#[derive(Clone, Copy)]
pub(crate) struct WeightBlock {
    pub w: *const f32,
    pub n: usize,
}

impl Weights for WeightBlock {
    /// # Safety
    /// As [`Weights::get`]: `w` addresses a live (G, n) row-major block, `r < G` and `j < n`.
    #[inline(always)]
    unsafe fn get(self, r: usize, j: usize) -> f32 {
        // SAFETY: `r < G` and `j < n` (the caller), so `r·n + j` is inside the G·n values at `w`.
        unsafe { *self.w.add(r * self.n + j) }
    }
}

/// The group's values gathered into an (n, G) column-major block: column `j`'s `G` weights side by side, so
/// that a register block of rows broadcasts each weight straight from memory.
#[derive(Clone, Copy)]
pub(crate) struct Columns {
    pub w: *const f32,
    pub g: usize,
}

impl Weights for Columns {
    /// # Safety
    /// As [`Weights::get`]: `w` addresses a live (n, G) column-major block of `g = G` rows, `r < G` and
    /// `j < n`.
    #[inline(always)]
    unsafe fn get(self, r: usize, j: usize) -> f32 {
        // SAFETY: `r < g` and `j < n` (the caller), so `j·g + r` is inside the n·g values at `w`.
        unsafe { *self.w.add(j * self.g + r) }
    }
}

/// A separable group (see [`super::grad_plan`]): row `r`, column `j` copies `θ[code0[j] + o_r]`, with the
/// offsets `o_r` stored as wrapping `u32`.
#[derive(Clone, Copy)]
pub(crate) struct SeparableWeights {
    pub theta: *const f32,
    pub offsets: *const u32,
    pub code0: *const u32,
}

impl Weights for SeparableWeights {
    /// # Safety
    /// As [`Weights::get`]: `offsets` holds the group's G row offsets and `code0` its n first-row codes,
    /// `r < G`, `j < n`, and every `code0[j] + o_r` (mod 2³²) is an index of θ.
    #[inline(always)]
    unsafe fn get(self, r: usize, j: usize) -> f32 {
        // SAFETY: `r` and `j` index the offsets and codes (the caller), and `code0[j] + o_r` is the code of row
        // `r`, column `j`, an index of θ (a structure invariant of the tied matrix).
        unsafe { *self.theta.add((*self.code0.add(j)).wrapping_add(*self.offsets.add(r)) as usize) }
    }
}

/// [`Weights`] read through one pointer per row: `w(r, j) = *base(r).offset(delta(j))`, so that a register tile
/// loads each weight with one broadcast from a row pointer held in a register.
pub(crate) trait RowWeights: Weights {
    /// The address of `w(r, 0)`.
    ///
    /// # Safety
    /// `r` is a row of the group, which has at least one column, and the view addresses live buffers as in
    /// [`Weights::get`].
    unsafe fn base(self, r: usize) -> *const f32;
    /// The distance from `w(r, 0)` to `w(r, j)`, the same for every row.
    ///
    /// # Safety
    /// `j` is a column of the group.
    unsafe fn delta(self, j: usize) -> isize;
}

impl RowWeights for WeightBlock {
    /// # Safety
    /// As [`RowWeights::base`]: `w` addresses a live (G, n) row-major block, `r < G`.
    #[inline(always)]
    unsafe fn base(self, r: usize) -> *const f32 {
        // SAFETY: `r < G` (the caller), so `r·n` is at most `(G − 1)·n`, inside the G·n values at `w`.
        unsafe { self.w.add(r * self.n) }
    }
    /// # Safety
    /// As [`RowWeights::delta`] (nothing is read: any `j` gives a value, meaningful for `j < n`).
    #[inline(always)]
    unsafe fn delta(self, j: usize) -> isize {
        j as isize
    }
}

/// Row `r`, column `j` is `θ[p(r, j)]` with `p(r, j) = code0[j] + o_r` (mod 2³²), so
/// `p(r, j) − p(r, 0) ≡ code0[j] − code0[0]` (mod 2³²), the same for every row; both indices lie in
/// `0..θ.len()`, so when `θ.len() <= 2³¹` the difference is that value read as an `i32`.
/// (The callers of `kernels::avx2::product_avx2` and `product_avx512` check `θ.len() <= i32::MAX`.)
impl RowWeights for SeparableWeights {
    /// # Safety
    /// As [`RowWeights::base`]: `r < G`, the group has a column (so `code0[0]` exists), and `code0[0] + o_r`
    /// (mod 2³²) is an index of θ.
    #[inline(always)]
    unsafe fn base(self, r: usize) -> *const f32 {
        // SAFETY: `offsets[r]` and `code0[0]` exist (the caller), and their wrapping sum is the code of row `r`,
        // column 0, an index of θ.
        unsafe { self.theta.add((*self.code0).wrapping_add(*self.offsets.add(r)) as usize) }
    }
    /// # Safety
    /// As [`RowWeights::delta`]: `j < n`, so that `code0[j]` exists (and `code0[0]` with it).
    #[inline(always)]
    unsafe fn delta(self, j: usize) -> isize {
        // SAFETY: `j < n` (the caller), so `code0[j]` and `code0[0]` are among the group's n codes.
        unsafe { (*self.code0.add(j)).wrapping_sub(*self.code0) as i32 as isize }
    }
}

impl RowWeights for Columns {
    /// # Safety
    /// As [`RowWeights::base`]: `w` addresses a live (n, G) column-major block with `n >= 1`, `r < G`.
    #[inline(always)]
    unsafe fn base(self, r: usize) -> *const f32 {
        // SAFETY: `r < G <= n·G` (the caller), inside the block at `w`.
        unsafe { self.w.add(r) }
    }
    /// # Safety
    /// As [`RowWeights::delta`] (nothing is read: any `j` gives a value, meaningful for `j < n`).
    #[inline(always)]
    unsafe fn delta(self, j: usize) -> isize {
        (j * self.g) as isize
    }
}

/// Where a group product writes: row `g` of the group is the batch column `y[rows[g]·B..(rows[g] + 1)·B]`.
#[derive(Clone, Copy)]
pub(crate) struct OutRows<'a> {
    pub y: *mut f32,
    pub rows: &'a [u32],
}
