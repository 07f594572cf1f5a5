//! Separable row groups: groups whose row `i`, column `j` copies `θ[code[0][j] + o_i]`, so that the products
//! read their weights straight from `θ` (see [`super::grad_plan`] for the definition and its use).

use super::index::{IndexMap, RowGroups};

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
