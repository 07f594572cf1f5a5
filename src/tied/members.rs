//! How the hand-written gradient tiles read the member groups of a gradient class: row and column pointers
//! per member, stepped from one member to the next when they share their patterns.

/// A tap a group does not meet: its column reads zeros.
pub const ABSENT: u32 = u32::MAX;

/// The member groups of a gradient class as the hand-written gradient tiles read them (`simd::grad_tile`,
/// `kernels::avx2::grad_tile_avx2`): a [`CompactClass`](super::CompactClass) read in place from its patterns and shifts, which spares
/// writing each tile out into a [`GradClass`](super::GradClass) first (the rows and columns are those that
/// [`CompactClass::write_tile`](super::CompactClass::write_tile) writes, so the bits are the same).
pub(crate) trait TileMembers {
    /// `(rows per member, taps, members)`.
    fn dims(&self) -> (usize, usize, usize);
    /// Member `mi`'s rows `i0..i0 + RB` and its columns at taps `u0..u0 + CB` ([`ABSENT`] where it lacks one).
    fn member<const RB: usize, const CB: usize>(&self, mi: usize, i0: usize, u0: usize) -> ([u32; RB], [u32; CB]);
    /// When members `prev` and `mi` have the same patterns (consecutive positions of a convolution, mostly):
    /// `(Δrow, Δcol)`, the differences of their shifts read as `i32`, so that member `mi`'s rows and present
    /// columns are member `prev`'s plus those (when every row and column is below 2³¹).
    fn step(&self, prev: usize, mi: usize) -> Option<(isize, isize)>;
}

/// Where a gradient tile reads member `mi`: its `RB` rows of `d_y` and `CB` columns of `x` (the zeros for an
/// absent tap), each the start of a (B, ·) column. [`Self::seek`] steps the previous member's pointers when
/// the two share their patterns ([`TileMembers::step`]) and reads the member's rows and columns otherwise:
/// the same pointers either way. (At a batch of 32 the reads cost the tile kernels about a third of their
/// time.)
pub(crate) struct MemberPtrs<const RB: usize, const CB: usize> {
    pub d: [*const f32; RB],
    pub xs: [*const f32; CB],
    /// All ones where tap `u` has a column (its pointer steps with the member), 0 where it reads the zeros.
    present: [isize; CB],
    /// The last member sought, if any.
    prev: Option<usize>,
    /// Whether every row and column is below 2³¹, so that shift differences read as `i32` are theirs.
    steps: bool,
    batch: usize,
    bases: (*const f32, *const f32, *const f32),
}

impl<const RB: usize, const CB: usize> MemberPtrs<RB, CB> {
    /// For `d_y` (B, R), `x` (B, C) and `zeros` (B).
    pub fn new(dy: &[f32], x: &[f32], zeros: &[f32], batch: usize) -> Self {
        let steps = dy.len() / batch.max(1) <= i32::MAX as usize && x.len() / batch.max(1) <= i32::MAX as usize;
        MemberPtrs {
            d: [dy.as_ptr(); RB],
            xs: [x.as_ptr(); CB],
            present: [0; CB],
            prev: None,
            steps,
            batch,
            bases: (dy.as_ptr(), x.as_ptr(), zeros.as_ptr()),
        }
    }

    /// Points at member `mi`'s rows `i0..i0 + RB` and taps `u0..u0 + CB`.
    ///
    /// # Safety
    /// The slices given to [`Self::new`] are still alive; `c`'s rows index `d_y` and its columns `x` (as
    /// (B, ·) columns of `batch` values); `i0 + RB` and `u0 + CB` lie inside the class; the same `c`, `i0` and
    /// `u0` at every call.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // the index loops are the tile's pointers
    pub unsafe fn seek<C: TileMembers>(&mut self, c: &C, mi: usize, i0: usize, u0: usize) {
        let step = match self.prev {
            Some(prev) if self.steps => c.step(prev, mi),
            _ => None,
        };
        self.prev = Some(mi);
        let (dy0, x0, z0) = self.bases;
        // SAFETY: the caller guarantees that member `mi`'s rows and columns are columns of `d_y` and `x`, so
        // each `add` from a base stays inside its buffer; a step (only taken after a seek with the same `c`,
        // `i0`, `u0`) moves each pointer from member `prev`'s row or column to member `mi`'s, also inside, and
        // leaves the pointers of absent taps on `zeros` (`dc & 0`).
        unsafe {
            match step {
                Some((dr, dc)) => {
                    let (dr, dc) = (dr * self.batch as isize, dc * self.batch as isize);
                    for i in 0..RB {
                        self.d[i] = self.d[i].offset(dr);
                    }
                    for u in 0..CB {
                        self.xs[u] = self.xs[u].offset(dc & self.present[u]);
                    }
                }
                None => {
                    let (rows, cols) = c.member::<RB, CB>(mi, i0, u0);
                    for i in 0..RB {
                        self.d[i] = dy0.add(rows[i] as usize * self.batch);
                    }
                    for u in 0..CB {
                        self.present[u] = if cols[u] == ABSENT { 0 } else { -1 };
                        self.xs[u] = if cols[u] == ABSENT { z0 } else { x0.add(cols[u] as usize * self.batch) };
                    }
                }
            }
        }
    }
}

impl<const RB: usize, const CB: usize> MemberPtrs<RB, CB> {
    /// After [`Self::seek`] to member `mi`: how many members from `mi` on (at least 1, at most `m1 − mi`) form a
    /// *stretch*, each the previous one's rows and columns plus one (consecutive positions of a convolution's
    /// row at stride 1) with every tap present. Over a stretch each pointer's batch columns are consecutive
    /// in memory, so a tile may read its members as one stream of `n·B` values per pointer.
    #[inline(always)]
    pub fn stretch<C: TileMembers>(&self, c: &C, mi: usize, m1: usize) -> usize {
        if !self.steps || self.present.contains(&0) {
            return 1;
        }
        let mut n = 1;
        while mi + n < m1 && c.step(mi + n - 1, mi + n) == Some((1, 1)) {
            n += 1;
        }
        n
    }

    /// Moves the pointers from the first member of a stretch of `n` members ([`Self::stretch`], starting at
    /// `mi`) to its last, as `n − 1` calls of [`Self::seek`] would.
    ///
    /// # Safety
    /// The stretch of `n` members was found by [`Self::stretch`] right after [`Self::seek`] to `mi`, and that
    /// seek's contract holds for the stretch's members.
    #[inline(always)]
    pub unsafe fn skip_stretch(&mut self, mi: usize, n: usize) {
        let d = ((n - 1) * self.batch) as isize;
        // SAFETY: over a stretch found right after the seek to `mi` (the caller) every tap is present and each
        // member's rows and columns are the previous one's plus one, so moving every pointer by `n − 1` columns
        // of `batch` values lands on member `mi + n − 1`'s rows and columns, inside `d_y` and `x`.
        unsafe {
            for i in 0..RB {
                self.d[i] = self.d[i].offset(d);
            }
            for u in 0..CB {
                self.xs[u] = self.xs[u].offset(d);
            }
        }
        self.prev = Some(mi + n - 1);
    }
}

/// How many members from `mi` on (at least 1, at most `m1 − mi`) form a *stretch* of the positions layout: each
/// member the previous one with the same patterns, rows and columns one more ([`TileMembers::step`] is
/// `(1, 1)`: consecutive positions of an image row at stride 1). Over a stretch each row of `d_y` and each
/// present column of `x` is one run of `n·B` consecutive values. It depends on the members alone (not on the
/// rows and taps of a tile), so every tile of a class cuts its members into the same stretches.
#[inline]
pub(crate) fn stretch_len<C: TileMembers>(c: &C, mi: usize, m1: usize) -> usize {
    let mut n = 1;
    while mi + n < m1 && c.step(mi + n - 1, mi + n) == Some((1, 1)) {
        n += 1;
    }
    n
}
