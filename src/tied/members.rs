//! How the hand-written gradient tile reads the member groups of a gradient class: rows and columns per
//! member, and the stretches of consecutive positions that it reads as one stream.

/// A tap a group does not meet: its column reads zeros.
pub const ABSENT: u32 = u32::MAX;

/// The member groups of a gradient class as the hand-written gradient tile reads them
/// (`kernels::lanes::stream_tile`): a [`CompactClass`](super::CompactClass) read in place from its patterns and shifts, which spares
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
