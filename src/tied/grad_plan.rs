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
//!
//! A class is stored per pattern and shift ([`CompactClass`]), as the compact index stores its groups: member
//! `m`'s rows are `R_m[i] = row_shift_m + row_pattern(m)[i]` and its columns `col_m(U[u]) = col_shift_m +
//! col_pattern(m)[u]` (or [`ABSENT`]). The interior positions of a convolution share one row pattern and one
//! column pattern, so a class costs a few words per member instead of a column per (member, tap). The
//! hand-written `f32` kernels read a class in place (`TileMembers`); the portable loops read one tile at a
//! time written out ([`CompactClass::write_tile`] into a [`GradClass`]).

use std::collections::HashMap;

use super::index::{IndexMap, RowGroups};
use super::members::{ABSENT, TileMembers};
use super::separable::SeparableGroups;
use super::views::{Classic, GroupSource};

/// A class, or one tile of one, with its rows and columns written out: what the gradient kernels read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

/// Where one member group of a [`CompactClass`] reads: a row pattern and a column pattern, each with a shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub row_pattern: u32,
    pub row_shift: u32,
    pub col_pattern: u32,
    pub col_shift: u32,
}

/// One class of separable row groups (see the module documentation), stored per pattern and shift:
///
/// ```text
/// R_m[i]         = row_shift_m + row_patterns[row_pattern_m·|o| + i]          (wrapping u32)
/// col_m(U[u])    = col_shift_m + col_patterns[col_pattern_m·|U| + u]          or ABSENT where the pattern is ABSENT
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactClass {
    /// `o_i`, one per row of a member group: the parameter of (row `i`, tap `t`) is `t + o_i`.
    pub offsets: Vec<i64>,
    /// `U`: the union of the members' taps, increasing.
    pub taps: Vec<u32>,
    /// Member groups, increasing.
    pub groups: Vec<u32>,
    /// Per member group: its patterns and shifts.
    pub members: Vec<Member>,
    /// `(row patterns, |o|)` row-major: rows relative to the member's row shift.
    pub row_patterns: Vec<u32>,
    /// `(column patterns, |U|)` row-major: columns relative to the member's column shift, or [`ABSENT`].
    pub col_patterns: Vec<u32>,
}

impl TileMembers for CompactClass {
    #[inline(always)]
    fn dims(&self) -> (usize, usize, usize) {
        (self.offsets.len(), self.taps.len(), self.members.len())
    }
    #[inline(always)]
    fn member<const RB: usize, const CB: usize>(&self, mi: usize, i0: usize, u0: usize) -> ([u32; RB], [u32; CB]) {
        let (n_rows, n_taps) = (self.offsets.len(), self.taps.len());
        let m = self.members[mi];
        let rp = &self.row_patterns[m.row_pattern as usize * n_rows + i0..][..RB];
        let cp = &self.col_patterns[m.col_pattern as usize * n_taps + u0..][..CB];
        (
            std::array::from_fn(|i| rp[i].wrapping_add(m.row_shift)),
            std::array::from_fn(|u| if cp[u] == ABSENT { ABSENT } else { cp[u] + m.col_shift }),
        )
    }
    #[inline(always)]
    fn step(&self, prev: usize, mi: usize) -> Option<(isize, isize)> {
        let (a, b) = (self.members[prev], self.members[mi]);
        (a.row_pattern == b.row_pattern && a.col_pattern == b.col_pattern).then_some((
            b.row_shift.wrapping_sub(a.row_shift) as i32 as isize,
            b.col_shift.wrapping_sub(a.col_shift) as i32 as isize,
        ))
    }
}

impl CompactClass {
    /// The parameter that (row `i`, tap index `u`) copies.
    #[inline]
    pub fn param(&self, i: usize, u: usize) -> usize {
        (self.taps[u] as i64 + self.offsets[i]) as usize
    }

    /// The rows of member `mi`, written out into `out`.
    pub fn rows_of(&self, mi: usize, out: &mut Vec<u32>) {
        let (m, n) = (self.members[mi], self.offsets.len());
        let pattern = &self.row_patterns[m.row_pattern as usize * n..][..n];
        out.extend(pattern.iter().map(|&r| r.wrapping_add(m.row_shift)));
    }

    /// The columns of member `mi` at taps `u0..u0 + cb`, written out into `out` ([`ABSENT`] where it lacks the tap).
    pub fn cols_of(&self, mi: usize, u0: usize, cb: usize, out: &mut Vec<u32>) {
        let m = self.members[mi];
        let pattern = &self.col_patterns[m.col_pattern as usize * self.taps.len() + u0..][..cb];
        out.extend(pattern.iter().map(|&c| if c == ABSENT { ABSENT } else { c + m.col_shift }));
    }

    /// Writes out the tile of members `m0..m1`, rows `i0..i0 + rb` and taps `u0..u0 + cb` into `out` (its
    /// buffers reused): a [`GradClass`] of `m1 - m0` members, `rb` offsets and `cb` taps, whose (member, row,
    /// tap) `(m, i, u)` is this class's `(m0 + m, i0 + i, u0 + u)`.
    pub fn write_tile(
        &self,
        (m0, m1): (usize, usize),
        (i0, rb): (usize, usize),
        (u0, cb): (usize, usize),
        out: &mut GradClass,
    ) {
        let n = self.offsets.len();
        out.offsets.clear();
        out.offsets.extend_from_slice(&self.offsets[i0..i0 + rb]);
        out.taps.clear();
        out.taps.extend_from_slice(&self.taps[u0..u0 + cb]);
        out.groups.clear();
        out.groups.extend_from_slice(&self.groups[m0..m1]);
        out.rows.clear();
        out.cols.clear();
        for (mi, m) in self.members[m0..m1].iter().enumerate() {
            let pattern = &self.row_patterns[m.row_pattern as usize * n + i0..][..rb];
            out.rows.extend(pattern.iter().map(|&r| r.wrapping_add(m.row_shift)));
            self.cols_of(m0 + mi, u0, cb, &mut out.cols);
        }
    }

    /// The whole class written out (for tests and checks).
    pub fn expand(&self) -> GradClass {
        let mut out = GradClass::default();
        self.write_tile((0, self.groups.len()), (0, self.offsets.len()), (0, self.taps.len()), &mut out);
        out
    }

    /// Bytes of the class's tables.
    pub fn bytes(&self) -> usize {
        8 * self.offsets.len()
            + 4 * (self.taps.len() + self.groups.len() + self.row_patterns.len() + self.col_patterns.len())
            + std::mem::size_of::<Member>() * self.members.len()
    }
}

/// How the parameter gradient of a tied matrix is computed: classes of separable groups, and the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GradPlan {
    pub classes: Vec<CompactClass>,
    /// Groups computed per nonzero (dots, then scatter), increasing.
    pub fallback: Vec<u32>,
}

/// A class is kept only if its dense (members × rows × taps) work is at most this many times its
/// nonzeros; sparser classes go to the per-nonzero path.
const MAX_FILL: usize = 2;

/// A list's address and length.
type ListKey = (usize, usize);

/// The identity of a list the compact form interns (its address and length): equal lists of a compact map
/// share one address, so a plan costs per distinct list, not per group. Lists of the classic form each have
/// their own address; the plan is then built per group, as the classic form stores it.
fn list_key(l: &[u32]) -> ListKey {
    (l.as_ptr() as usize, l.len())
}

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
            for (class_groups, lists) in overlapping_classes(&members, taps_of) {
                let mut taps: Vec<u32> = lists.iter().flat_map(|l| l.iter().copied()).collect();
                taps.sort_unstable();
                taps.dedup();
                let nnz: usize = class_groups.iter().map(|&g| taps_of(g).len()).sum();
                if class_groups.len() * taps.len() > MAX_FILL * nnz {
                    plan.fallback.extend_from_slice(&class_groups);
                    continue;
                }
                plan.classes.push(compact_class(src, offsets.clone(), taps, class_groups, taps_of));
            }
        }
        plan.fallback.sort_unstable();
        plan
    }

    /// Bytes of the plan's tables.
    pub fn bytes(&self) -> usize {
        self.classes.iter().map(CompactClass::bytes).sum::<usize>() + 4 * self.fallback.len()
    }
}

/// The class of `groups` (offsets `offsets`, tap union `taps`), each member's rows and columns as a pattern and
/// a shift; patterns interned in order of first appearance.
fn compact_class<'a, S: GroupSource>(
    src: &'a S,
    offsets: Vec<i64>,
    taps: Vec<u32>,
    groups: Vec<u32>,
    taps_of: impl Fn(u32) -> &'a [u32],
) -> CompactClass {
    let mut c = CompactClass {
        offsets,
        taps,
        groups: Vec::new(),
        members: Vec::with_capacity(groups.len()),
        row_patterns: Vec::new(),
        col_patterns: Vec::new(),
    };
    let mut row_ids: HashMap<Vec<u32>, u32> = HashMap::new();
    // Column patterns by the (column list, tap list) they come from: the same lists give the same pattern.
    let mut col_ids: HashMap<(ListKey, ListKey), u32> = HashMap::new();
    let mut col_by_content: HashMap<Vec<u32>, u32> = HashMap::new();
    let (mut rel, mut col_rel) = (Vec::new(), vec![ABSENT; c.taps.len()]);
    for &g in &groups {
        let rows = src.rows(g as usize);
        let row_shift = rows[0];
        rel.clear();
        rel.extend(rows.iter().map(|&r| r.wrapping_sub(row_shift)));
        let n_row = row_ids.len() as u32;
        let row_pattern = match row_ids.get(&rel) {
            Some(&p) => p,
            None => {
                c.row_patterns.extend_from_slice(&rel);
                row_ids.insert(rel.clone(), n_row);
                n_row
            }
        };
        let (gcols, shift) = src.cols(g as usize);
        let gtaps = taps_of(g);
        // Columns relative to the group's first column.
        let col_shift = gcols[0] + shift;
        let key = (list_key(gcols), list_key(gtaps));
        let col_pattern = match col_ids.get(&key) {
            Some(&p) => p,
            None => {
                col_rel.fill(ABSENT);
                for (&t, &col) in gtaps.iter().zip(gcols) {
                    let u = c.taps.binary_search(&t).expect("a member's tap is in the union");
                    col_rel[u] = col - gcols[0];
                }
                let n_col = col_by_content.len() as u32;
                let p = *col_by_content.entry(col_rel.clone()).or_insert_with(|| {
                    c.col_patterns.extend_from_slice(&col_rel);
                    n_col
                });
                col_ids.insert(key, p);
                p
            }
        };
        c.members.push(Member { row_pattern, row_shift, col_pattern, col_shift });
    }
    c.groups = groups;
    c
}

/// Splits `members` into classes of groups whose tap sets overlap, transitively (union-find over taps);
/// classes come in order of their first member, members in increasing order. Returns each class with its
/// distinct tap lists (by [`list_key`]): groups with the same list fall in the same class, so the union-find
/// runs over the distinct lists only.
fn overlapping_classes<'a>(members: &[u32], taps_of: impl Fn(u32) -> &'a [u32]) -> Vec<(Vec<u32>, Vec<&'a [u32]>)> {
    // The distinct tap lists, and each member's list.
    let mut list_ids: HashMap<ListKey, usize> = HashMap::new();
    let mut lists: Vec<&'a [u32]> = Vec::new();
    let member_list: Vec<usize> = members
        .iter()
        .map(|&g| {
            let l = taps_of(g);
            *list_ids.entry(list_key(l)).or_insert_with(|| {
                lists.push(l);
                lists.len() - 1
            })
        })
        .collect();
    let mut parent: Vec<usize> = (0..lists.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner: HashMap<u32, usize> = HashMap::new();
    for (li, l) in lists.iter().enumerate() {
        for &t in l.iter() {
            match owner.get(&t) {
                Some(&other) => {
                    let (a, b) = (root(&mut parent, li), root(&mut parent, other));
                    if a != b {
                        parent[a.max(b)] = a.min(b);
                    }
                }
                None => {
                    owner.insert(t, li);
                }
            }
        }
    }
    let mut index: HashMap<usize, usize> = HashMap::new();
    let mut classes: Vec<(Vec<u32>, Vec<&'a [u32]>)> = Vec::new();
    let mut list_seen = vec![false; lists.len()];
    for (&g, &li) in members.iter().zip(&member_list) {
        let r = root(&mut parent, li);
        let c = *index.entry(r).or_insert_with(|| {
            classes.push((Vec::new(), Vec::new()));
            classes.len() - 1
        });
        classes[c].0.push(g);
        if !std::mem::replace(&mut list_seen[li], true) {
            classes[c].1.push(lists[li]);
        }
    }
    classes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::sparse::conv::{compile_conv, compile_conv_compact};
    use crate::geometry::{ConvGeometry, PaddingMode};

    /// The compact classes written out are the classes of the module documentation: every (member, row, tap)
    /// with a column is a nonzero of `W` at (member's row `i`, that column) copying `θ[U[u] + o_i]`, they are
    /// all of the class's nonzeros, and a tile written out is the same slice of the whole. The classic and
    /// the compact form give the same plan; interior positions share one row and one column pattern.
    #[test]
    fn compact_classes_write_out_the_matrix_nonzeros() {
        let zeros = PaddingMode::Zeros;
        for (c_in, hw, c_out, k, stride, pad, dil) in [
            (1, 9, 6, 3, 1, 1, 1),
            (3, 8, 20, 3, 1, 1, 1),
            (2, 9, 17, 3, 2, 1, 1),
            (2, 11, 3, 3, 1, 2, 2),
            (4, 6, 5, 1, 1, 0, 1),
        ] {
            let g = ConvGeometry { c_in, h_in: hw, w_in: hw, c_out, k, stride, pad, dil, mode: zeros };
            let (m, classic) = (compile_conv_compact(&g), compile_conv(&g));
            assert_eq!(m.grad_plan(), classic.grad_plan(), "{g:?}");
            let mut nonzeros = std::collections::HashMap::new();
            m.for_each_row(|r, cols, codes| {
                for (&c, &code) in cols.iter().zip(codes) {
                    nonzeros.insert((r as u32, c), code);
                }
            });
            let mut seen = 0;
            for class in &m.grad_plan().classes {
                let full = class.expand();
                let (n, u_len) = (class.offsets.len(), class.taps.len());
                assert_eq!((full.rows.len(), full.cols.len()), (class.groups.len() * n, class.groups.len() * u_len));
                assert!(class.row_patterns.len() == n, "{g:?}: one row pattern per class");
                for mi in 0..class.groups.len() {
                    assert_eq!(&full.rows[mi * n..][..n], m.groups().group(class.groups[mi] as usize));
                    for i in 0..n {
                        for u in 0..u_len {
                            let col = full.cols[mi * u_len + u];
                            if col != ABSENT {
                                let code = nonzeros.get(&(full.rows[mi * n + i], col));
                                assert_eq!(code, Some(&(class.param(i, u) as u32)), "{g:?}");
                                seen += 1;
                            }
                        }
                    }
                }
                // A tile is the same slice of the whole.
                let (m0, m1, i0, rb, u0, cb) =
                    (1.min(class.groups.len() - 1), class.groups.len(), n / 2, n - n / 2, 1, u_len - 1);
                let mut tile = GradClass::default();
                class.write_tile((m0, m1), (i0, rb), (u0, cb), &mut tile);
                for mi in m0..m1 {
                    assert_eq!(&tile.rows[(mi - m0) * rb..][..rb], &full.rows[mi * n + i0..][..rb]);
                    assert_eq!(&tile.cols[(mi - m0) * cb..][..cb], &full.cols[mi * u_len + u0..][..cb]);
                }
                assert_eq!(
                    (&tile.offsets[..], &tile.taps[..]),
                    (&class.offsets[i0..i0 + rb], &class.taps[u0..u0 + cb])
                );
            }
            let fallback: usize = m.grad_plan().fallback.iter().map(|&f| m.groups().group(f as usize).len()).sum();
            assert!(seen <= m.nnz() && (fallback > 0 || seen == m.nnz()), "{g:?}: {seen} of {} nonzeros", m.nnz());
        }
    }
}
