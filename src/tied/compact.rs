//! The compact index of a tied matrix: what the structure implies is not stored.
//!
//! A [`CompactMap`] stores one direction (`W` or `Wᵀ`) as row groups (rows sharing one column list). For
//! group `g` with rows `R_g` (`G` of them), column list `C_g` (`n` columns) and weight block `B_g`:
//!
//! ```text
//! C_g[j]          = shift[g] + pattern(P_g)[j]            patterns relative to their first column (0), shared
//! code(R_g[i], C_g[j]) = taps(B_g)[j] + offsets(B_g)[i]     a separable block: bases and offsets, no code per nonzero
//!                      = codes(B_g)[i·n + j]                 any other block: a code per nonzero, (G, n) row-major
//! ```
//!
//! Patterns and weight blocks are deduplicated: the interior positions of a convolution all share one column
//! pattern up to a shift and one separable block (the same taps, the same output channels), so a convolution's
//! index is a few bytes per *group*, not 16 per nonzero. Only groups that need them keep per-nonzero codes:
//! compound entries of reflect/replicate/circular borders, constants (pools), untied weights (local layers),
//! pruned or otherwise irregular patterns. Codes mean what they mean in a classic [`super::TiedMatrix`]
//! (parameters, then constants, then compounds).
//!
//! It stays an explicit matrix: [`CompactMap::for_each_nonzero`] enumerates every nonzero as
//! `(row, column, code)`, [`CompactMap::to_csr`] gives the `sprs` CSR and [`CompactMap::from_csr`] builds the
//! compact form from one; [`CompactMap::check`] holds every invariant of the form.
//!
//! Bytes ([`CompactMap::bytes`]): 4 per row (group membership), 16 per group (pointer, pattern, shift, block),
//! 4 per pattern column, 16 per block, 4 per offset and per tap, 4 per explicit code.

use std::collections::HashMap;

use super::index::{IndexMap, RowGroups, StructureError};
use super::separable::separable_offsets;

/// Where a group's weights come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// Row `i`, column `j` copies parameter `taps[j] + offsets[i]` (wrapping `u32` offsets), with `taps` at
    /// `taps_start..+n` and `offsets` at `offsets_start..+rows` of the map's tables.
    Separable { offsets_start: u32, taps_start: u32 },
    /// Row `i`, column `j` has code `codes[start + i·n + j]`.
    Codes { start: u32 },
}

/// A weight block: `rows × n` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Block {
    pub rows: u32,
    pub n: u32,
    pub kind: BlockKind,
}

/// The weights of one group, as the products read them.
#[derive(Clone, Copy, Debug)]
pub enum GroupWeights<'a> {
    /// Row `i`, column `j` copies `θ[taps[j] + offsets[i]]` (wrapping).
    Separable { offsets: &'a [u32], taps: &'a [u32] },
    /// `(G, n)` codes, row-major.
    Codes(&'a [u32]),
}

impl GroupWeights<'_> {
    /// The code of row `i`, column `j` of a group of `n` columns.
    #[inline]
    pub fn code(&self, i: usize, j: usize, n: usize) -> u32 {
        match *self {
            GroupWeights::Separable { offsets, taps } => taps[j].wrapping_add(offsets[i]),
            GroupWeights::Codes(c) => c[i * n + j],
        }
    }
}

/// One direction of a compact tied matrix (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct CompactMap {
    shape: (usize, usize),
    /// The rows of each group.
    groups: RowGroups,
    /// Per group: its column pattern, the shift added to it, and its weight block.
    group_pattern: Vec<u32>,
    group_shift: Vec<u32>,
    group_block: Vec<u32>,
    /// Pattern `p` is `pattern_cols[pattern_ptr[p]..pattern_ptr[p + 1]]`: strictly increasing, first 0.
    pattern_ptr: Vec<u32>,
    pattern_cols: Vec<u32>,
    blocks: Vec<Block>,
    /// Tables the blocks point into.
    offsets: Vec<u32>,
    taps: Vec<u32>,
    codes: Vec<u32>,
}

/// A 64-bit hash of a list of `u32` (FNV-1a over its words, then a final mix): equal lists hash equal;
/// [`CompactMap::from_rows`] confirms every match, so a collision costs time only.
fn list_hash(list: &[u32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ list.len() as u64;
    for &v in list {
        h = (h ^ u64::from(v)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (h >> 32)
}

/// Interns `u32` lists into one flat table, each distinct list once; returns where a list starts.
#[derive(Default)]
struct Interner {
    index: HashMap<Vec<u32>, u32>,
}

impl Interner {
    fn intern(&mut self, table: &mut Vec<u32>, list: &[u32]) -> u32 {
        if let Some(&s) = self.index.get(list) {
            return s;
        }
        let s = table.len() as u32;
        table.extend_from_slice(list);
        self.index.insert(list.to_vec(), s);
        s
    }
}

/// Builds a [`CompactMap`] group by group.
pub(crate) struct CompactBuilder {
    map: CompactMap,
    n_params: usize,
    patterns: HashMap<Vec<u32>, u32>,
    offsets: Interner,
    taps: Interner,
    codes: Interner,
    blocks: HashMap<Block, u32>,
    row_codes: Vec<u32>,
}

impl CompactBuilder {
    /// An empty `shape` map whose separable blocks copy parameters below `n_params`.
    pub(crate) fn new(shape: (usize, usize), n_params: usize) -> Self {
        let map = CompactMap {
            shape,
            groups: RowGroups { ptr: vec![0], rows: Vec::new() },
            group_pattern: Vec::new(),
            group_shift: Vec::new(),
            group_block: Vec::new(),
            pattern_ptr: vec![0],
            pattern_cols: Vec::new(),
            blocks: Vec::new(),
            offsets: Vec::new(),
            taps: Vec::new(),
            codes: Vec::new(),
        };
        CompactBuilder {
            map,
            n_params,
            patterns: HashMap::new(),
            offsets: Interner::default(),
            taps: Interner::default(),
            codes: Interner::default(),
            blocks: HashMap::new(),
            row_codes: Vec::new(),
        }
    }

    /// Adds a group: `rows`, their shared columns `cols` (strictly increasing), and `codes(i)`, the codes of
    /// row `i` in column order. A group whose codes are separable is stored as bases and offsets.
    pub(crate) fn push_group<'a>(&mut self, rows: &[u32], cols: &[u32], codes: impl Fn(usize) -> &'a [u32]) {
        self.push_pattern(rows, cols);
        let (n_rows, n) = (rows.len(), cols.len());
        let kind = match separable_offsets(&codes, n_rows, self.n_params) {
            Some(off) => {
                let off: Vec<u32> = off.iter().map(|&o| o as u32).collect();
                self.separable_kind(&off, codes(0))
            }
            None => {
                let mut row_codes = std::mem::take(&mut self.row_codes);
                row_codes.clear();
                for i in 0..n_rows {
                    row_codes.extend_from_slice(codes(i));
                }
                let start = self.codes.intern(&mut self.map.codes, &row_codes);
                self.row_codes = row_codes;
                BlockKind::Codes { start }
            }
        };
        self.push_block(Block { rows: n_rows as u32, n: n as u32, kind });
    }

    /// Adds a group the caller knows to be separable: row `i`, column `j` copies `taps[j] + offsets[i]`
    /// (`offsets[0] = 0`, taps distinct, as [`Self::push_group`] would find them; checked in debug builds).
    pub(crate) fn push_separable(&mut self, rows: &[u32], cols: &[u32], taps: &[u32], offsets: &[u32]) {
        debug_assert!(offsets.len() == rows.len() && taps.len() == cols.len() && offsets.first() == Some(&0));
        self.push_pattern(rows, cols);
        let kind = self.separable_kind(offsets, taps);
        self.push_block(Block { rows: rows.len() as u32, n: cols.len() as u32, kind });
    }

    /// Adds a group with the same column pattern and weight block as group `like` (already pushed), its
    /// columns shifted by `shift`: rows `rows` (as many as `like`'s). Costs no look-up of the columns or
    /// codes, which a convolution repeats at every interior position.
    pub(crate) fn push_like(&mut self, rows: &[u32], shift: u32, like: usize) {
        let m = &mut self.map;
        assert_eq!(
            rows.len(),
            m.groups.group(like).len(),
            "push_like: {} rows for a block of {}",
            rows.len(),
            m.groups.group(like).len()
        );
        m.groups.rows.extend_from_slice(rows);
        m.groups.ptr.push(m.groups.rows.len() as u32);
        m.group_pattern.push(m.group_pattern[like]);
        m.group_shift.push(shift);
        m.group_block.push(m.group_block[like]);
    }

    /// Number of groups pushed so far.
    pub(crate) fn n_groups(&self) -> usize {
        self.map.groups.len()
    }

    /// The group's rows, and its columns as a shared pattern and a shift.
    fn push_pattern(&mut self, rows: &[u32], cols: &[u32]) {
        let m = &mut self.map;
        m.groups.rows.extend_from_slice(rows);
        m.groups.ptr.push(m.groups.rows.len() as u32);
        let shift = cols.first().copied().unwrap_or(0);
        let rel: Vec<u32> = cols.iter().map(|&c| c - shift).collect();
        let pattern = match self.patterns.get(&rel) {
            Some(&p) => p,
            None => {
                m.pattern_cols.extend_from_slice(&rel);
                m.pattern_ptr.push(m.pattern_cols.len() as u32);
                let p = (m.pattern_ptr.len() - 2) as u32;
                self.patterns.insert(rel, p);
                p
            }
        };
        m.group_pattern.push(pattern);
        m.group_shift.push(shift);
    }

    fn separable_kind(&mut self, offsets: &[u32], taps: &[u32]) -> BlockKind {
        BlockKind::Separable {
            offsets_start: self.offsets.intern(&mut self.map.offsets, offsets),
            taps_start: self.taps.intern(&mut self.map.taps, taps),
        }
    }

    fn push_block(&mut self, block: Block) {
        let blocks = &mut self.map.blocks;
        let b = *self.blocks.entry(block).or_insert_with(|| {
            blocks.push(block);
            (blocks.len() - 1) as u32
        });
        self.map.group_block.push(b);
    }

    pub(crate) fn finish(self) -> CompactMap {
        self.map
    }
}

impl CompactMap {
    /// The compact form of a CSR index map with row groups `groups` (rows of a group must share their column
    /// list; [`RowGroups::detect`] gives such groups). Separable blocks copy parameters below `n_params`.
    pub fn from_csr(m: &IndexMap, groups: &RowGroups, n_params: usize) -> Self {
        let ip = m.indptr();
        let ip = ip.raw_storage();
        let (indices, data) = (m.indices(), m.data());
        let mut b = CompactBuilder::new(m.shape(), n_params);
        for g in 0..groups.len() {
            let rows = groups.group(g);
            let row = |i: usize| ip[rows[i] as usize] as usize..ip[rows[i] as usize + 1] as usize;
            b.push_group(rows, &indices[row(0)], |i| &data[row(i)]);
        }
        b.finish()
    }

    /// The compact form of the `shape` matrix whose row `r` has the columns and codes `row(r, cols, codes)`
    /// writes (columns strictly increasing, codes in column order), without ever holding a code per
    /// nonzero of the whole matrix: equal to `from_csr(m, &RowGroups::detect(m), n_params)` for the CSR map
    /// `m` of those rows. Rows are generated twice or three times instead of stored: once to group them by
    /// column list (a 64-bit hash of the list; a hash met before is confirmed by generating the group's
    /// first row again), then group by group. Holds 12 bytes per row and 16 per distinct list besides the
    /// result.
    pub fn from_rows(
        shape: (usize, usize),
        n_params: usize,
        row: impl Fn(usize, &mut Vec<u32>, &mut Vec<u32>),
    ) -> Self {
        Self::from_rows_hashed(shape, n_params, row, list_hash)
    }

    /// [`Self::from_rows`] with the hash of a column list given (a test forces collisions with a constant).
    fn from_rows_hashed(
        shape: (usize, usize),
        n_params: usize,
        row: impl Fn(usize, &mut Vec<u32>, &mut Vec<u32>),
        list_hash: impl Fn(&[u32]) -> u64,
    ) -> Self {
        let (mut cols, mut codes, mut other, mut scratch) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // Rows by column list, lists numbered in order of first appearance: the list of each row, the first
        // row of each list, and the next list with the same hash (a chain ended by `u32::MAX`).
        let mut first_with_hash: HashMap<u64, u32> = HashMap::new();
        let (mut list_of, mut first_row, mut next) = (Vec::with_capacity(shape.0), Vec::new(), Vec::new());
        for r in 0..shape.0 {
            row(r, &mut cols, &mut codes);
            let key = list_hash(&cols);
            let mut at = first_with_hash.get(&key).copied().unwrap_or(u32::MAX);
            let mut last = u32::MAX;
            while at != u32::MAX {
                row(first_row[at as usize] as usize, &mut other, &mut scratch);
                if other == cols {
                    break;
                }
                (last, at) = (at, next[at as usize]);
            }
            if at == u32::MAX {
                at = first_row.len() as u32;
                first_row.push(r as u32);
                next.push(u32::MAX);
                match last {
                    u32::MAX => {
                        first_with_hash.insert(key, at);
                    }
                    l => next[l as usize] = at,
                }
            }
            list_of.push(at);
        }
        let n_lists = first_row.len();
        drop((first_with_hash, first_row, next));
        // The rows of each list in row order (a counting sort), lists in order of first appearance.
        let mut start = vec![0u32; n_lists + 1];
        list_of.iter().for_each(|&l| start[l as usize + 1] += 1);
        (1..start.len()).for_each(|i| start[i] += start[i - 1]);
        let mut rows = vec![0u32; shape.0];
        let mut fill = start.clone();
        for (r, &l) in list_of.iter().enumerate() {
            rows[fill[l as usize] as usize] = r as u32;
            fill[l as usize] += 1;
        }
        drop((list_of, fill));
        let mut b = CompactBuilder::new(shape, n_params);
        let mut group_codes: Vec<u32> = Vec::new();
        for w in start.windows(2) {
            for chunk in rows[w[0] as usize..w[1] as usize].chunks(RowGroups::MAX_ROWS) {
                group_codes.clear();
                for &r in chunk {
                    row(r as usize, &mut cols, &mut codes);
                    group_codes.extend_from_slice(&codes);
                }
                let n = cols.len();
                b.push_group(chunk, &cols, |i| &group_codes[i * n..(i + 1) * n]);
            }
        }
        b.finish()
    }

    /// The CSR index map (values are codes), rows in order.
    pub fn to_csr(&self) -> IndexMap {
        let (n_rows, _) = self.shape;
        let mut row_nnz = vec![0u32; n_rows + 1];
        for g in 0..self.n_groups() {
            let n = self.pattern(g).len() as u32;
            for &r in self.groups.group(g) {
                row_nnz[r as usize + 1] = n;
            }
        }
        for r in 0..n_rows {
            row_nnz[r + 1] += row_nnz[r];
        }
        let nnz = row_nnz[n_rows] as usize;
        let (mut indices, mut codes) = (vec![0u32; nnz], vec![0u32; nnz]);
        self.for_each_nonzero(|r, j, c, code| {
            let k = row_nnz[r as usize] as usize + j;
            indices[k] = c;
            codes[k] = code;
        });
        IndexMap::try_new(self.shape, row_nnz, indices, codes)
            .map_err(|(_, _, _, e)| e)
            .expect("a checked compact map converts to a well-formed CSR")
    }

    /// Calls `f(row, j, column, code)` for every nonzero, `j` its index within its row: group by group, row by
    /// row, columns increasing.
    pub fn for_each_nonzero(&self, mut f: impl FnMut(u32, usize, u32, u32)) {
        for g in 0..self.n_groups() {
            let (pattern, shift) = (self.pattern(g), self.shift(g));
            let w = self.weights(g);
            for (i, &r) in self.groups.group(g).iter().enumerate() {
                for (j, &c) in pattern.iter().enumerate() {
                    f(r, j, c + shift, w.code(i, j, pattern.len()));
                }
            }
        }
    }

    /// `(rows, columns)`.
    pub fn shape(&self) -> (usize, usize) {
        self.shape
    }

    /// Number of nonzeros.
    pub fn nnz(&self) -> usize {
        (0..self.n_groups()).map(|g| self.groups.group(g).len() * self.pattern(g).len()).sum()
    }

    /// The row groups.
    pub fn groups(&self) -> &RowGroups {
        &self.groups
    }

    /// Number of groups.
    pub fn n_groups(&self) -> usize {
        self.groups.len()
    }

    /// Group `g`'s column pattern, relative to [`Self::shift`].
    #[inline]
    pub fn pattern(&self, g: usize) -> &[u32] {
        let p = self.group_pattern[g] as usize;
        &self.pattern_cols[self.pattern_ptr[p] as usize..self.pattern_ptr[p + 1] as usize]
    }

    /// What group `g` adds to its pattern's columns.
    #[inline]
    pub fn shift(&self, g: usize) -> u32 {
        self.group_shift[g]
    }

    /// Group `g`'s weights.
    #[inline]
    pub fn weights(&self, g: usize) -> GroupWeights<'_> {
        let b = self.blocks[self.group_block[g] as usize];
        let (rows, n) = (b.rows as usize, b.n as usize);
        match b.kind {
            BlockKind::Separable { offsets_start, taps_start } => GroupWeights::Separable {
                offsets: &self.offsets[offsets_start as usize..][..rows],
                taps: &self.taps[taps_start as usize..][..n],
            },
            BlockKind::Codes { start } => GroupWeights::Codes(&self.codes[start as usize..][..rows * n]),
        }
    }

    /// Whether groups `g` and `g + 1` are separable *twins*: the same weight block (the same weight at every
    /// row and column), so the products can share every loaded weight.
    #[inline]
    pub fn twins(&self, g: usize) -> bool {
        g + 1 < self.n_groups()
            && self.group_block[g] == self.group_block[g + 1]
            && matches!(self.blocks[self.group_block[g] as usize].kind, BlockKind::Separable { .. })
    }

    /// Whether groups `g` and `h` are single rows that copy one separable weight row through one column pattern,
    /// at their own shifts: a pruned convolution's output channel at two interior positions. The products run
    /// such groups together (`product_run_avx512` in the crate's AVX-512 kernels).
    #[inline]
    pub fn same_weight_row(&self, g: usize, h: usize) -> bool {
        self.groups.group(g).len() == 1
            && self.groups.group(h).len() == 1
            && self.group_pattern[g] == self.group_pattern[h]
            && self.group_block[g] == self.group_block[h]
            && matches!(self.blocks[self.group_block[g] as usize].kind, BlockKind::Separable { .. })
    }

    /// Whether group `h` is group `g` one position on: the same column pattern and weight block, every row one
    /// more (`rows(h)[i] = rows(g)[i] + 1`) and the shift one more. In a convolution at stride 1, an output
    /// channel block at two neighbouring positions of one image row; then for a run of such groups the values
    /// of each row, and the inputs of each pattern column, are consecutive in a (B, F) matrix
    /// (see the private module `tied::lanes`).
    pub fn follows(&self, g: usize, h: usize) -> bool {
        let (a, b) = (self.groups.group(g), self.groups.group(h));
        self.group_pattern[g] == self.group_pattern[h]
            && self.group_block[g] == self.group_block[h]
            && self.group_shift[g].checked_add(1) == Some(self.group_shift[h])
            && !self.pattern(g).is_empty()
            && a.len() == b.len()
            && a.iter().zip(b).all(|(&r, &s)| r.checked_add(1) == Some(s))
    }

    /// Group `g`'s pattern id and block id: groups with equal ids read the same relative columns through the
    /// same weights.
    #[inline]
    pub fn kind(&self, g: usize) -> (u32, u32) {
        (self.group_pattern[g], self.group_block[g])
    }

    /// Number of distinct column patterns and of distinct weight blocks.
    pub fn distinct(&self) -> (usize, usize) {
        (self.pattern_ptr.len() - 1, self.blocks.len())
    }

    /// Bytes of the structure: group pointers and rows, per group a pattern id, shift and block id, the
    /// patterns, the blocks and their tables.
    pub fn bytes(&self) -> usize {
        4 * (self.groups.ptr.len() + self.groups.rows.len())
            + 12 * self.n_groups()
            + 4 * (self.pattern_ptr.len() + self.pattern_cols.len())
            + std::mem::size_of::<Block>() * self.blocks.len()
            + 4 * (self.offsets.len() + self.taps.len() + self.codes.len())
    }

    /// Checks every invariant of the compact form:
    ///
    /// - the groups partition the rows `0..n_rows` into nonempty groups;
    /// - every group has a pattern, a shift and a block, each id in range;
    /// - the pattern pointers start at 0, never decrease and end at the table's length; each pattern starts at
    ///   0 and strictly increases; `shift + column < n_cols` for every column of every group;
    /// - a block has the rows and columns of every group that uses it, and its entries lie inside the tables;
    /// - a separable block's taps are distinct parameters and every `taps[j] + offsets[i]` is a parameter
    ///   (`< n_params`); an explicit block's codes are `< n_codes`.
    pub fn check(&self, n_params: usize, n_codes: usize) -> Result<(), StructureError> {
        let (n_rows, n_cols) = self.shape;
        let bad = |s: String| Err(StructureError::BadGroups(s));
        let g = &self.groups;
        if g.ptr.first() != Some(&0)
            || *g.ptr.last().unwrap() as usize != g.rows.len()
            || g.ptr.windows(2).any(|w| w[0] >= w[1])
        {
            return bad(format!("group pointers do not split {} rows into nonempty groups", g.rows.len()));
        }
        let mut seen = vec![false; n_rows];
        for &r in &g.rows {
            if r as usize >= n_rows || std::mem::replace(&mut seen[r as usize], true) {
                return bad(format!("row {r} out of range or in two groups"));
            }
        }
        if let Some(r) = seen.iter().position(|&s| !s) {
            return bad(format!("row {r} is in no group"));
        }
        let n_groups = g.len();
        if [self.group_pattern.len(), self.group_shift.len(), self.group_block.len()] != [n_groups; 3] {
            return bad(format!("{n_groups} groups but per-group tables of other lengths"));
        }
        let pp = &self.pattern_ptr;
        if pp.first() != Some(&0)
            || *pp.last().unwrap() as usize != self.pattern_cols.len()
            || pp.windows(2).any(|w| w[0] > w[1])
        {
            return bad("pattern pointers do not span the pattern table".into());
        }
        for p in 0..pp.len() - 1 {
            let cols = &self.pattern_cols[pp[p] as usize..pp[p + 1] as usize];
            if cols.first().is_some_and(|&c| c != 0) {
                return bad(format!("pattern {p} does not start at column 0"));
            }
            if let Some(w) = cols.windows(2).find(|w| w[0] >= w[1]) {
                return Err(StructureError::ColumnsNotSorted { row: p, prev: w[0], next: w[1] });
            }
        }
        for (bi, b) in self.blocks.iter().enumerate() {
            let (rows, n) = (b.rows as usize, b.n as usize);
            let inside = |start: u32, len: usize, table: &[u32]| start as usize + len <= table.len();
            match b.kind {
                BlockKind::Separable { offsets_start, taps_start } => {
                    if !inside(offsets_start, rows, &self.offsets) || !inside(taps_start, n, &self.taps) || n == 0 {
                        return bad(format!("separable block {bi} outside its tables or empty"));
                    }
                    let offsets = &self.offsets[offsets_start as usize..][..rows];
                    let taps = &self.taps[taps_start as usize..][..n];
                    let mut sorted = taps.to_vec();
                    sorted.sort_unstable();
                    if sorted.windows(2).any(|w| w[0] == w[1]) {
                        return bad(format!("separable block {bi}: repeated taps"));
                    }
                    for &o in offsets {
                        for (k, &t) in taps.iter().enumerate() {
                            let code = t.wrapping_add(o);
                            if code as usize >= n_params || (t as i64 + o as i32 as i64) != code as i64 {
                                return Err(StructureError::CodeOutOfRange { k, code, n_codes: n_params });
                            }
                        }
                    }
                }
                BlockKind::Codes { start } => {
                    if !inside(start, rows * n, &self.codes) {
                        return bad(format!("block {bi} outside the code table"));
                    }
                    let codes = &self.codes[start as usize..][..rows * n];
                    if let Some((k, &code)) = codes.iter().enumerate().find(|&(_, &c)| c as usize >= n_codes) {
                        return Err(StructureError::CodeOutOfRange { k, code, n_codes });
                    }
                }
            }
        }
        for gi in 0..n_groups {
            let (p, b) = (self.group_pattern[gi] as usize, self.group_block[gi] as usize);
            if p + 1 >= pp.len() || b >= self.blocks.len() {
                return bad(format!("group {gi}: pattern {p} or block {b} out of range"));
            }
            let (pattern, block) = (self.pattern(gi), self.blocks[b]);
            if block.rows as usize != g.group(gi).len() || block.n as usize != pattern.len() {
                return bad(format!(
                    "group {gi}: block {b} is {}x{}, the group is {}x{}",
                    block.rows,
                    block.n,
                    g.group(gi).len(),
                    pattern.len()
                ));
            }
            if let Some(&last) = pattern.last()
                && self.group_shift[gi] as u64 + last as u64 >= n_cols as u64
            {
                let row = g.group(gi)[0] as usize;
                let col = (self.group_shift[gi] as u64 + last as u64).min(u32::MAX as u64) as u32;
                return Err(StructureError::ColumnOutOfRange { row, col, n_cols });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3×4 map of two groups: rows {0, 2} read columns {1, 2} with separable codes (row 2 = row 0 + 4),
    /// row 1 reads columns {0, 3} with explicit codes.
    fn small() -> CompactMap {
        let mut b = CompactBuilder::new((3, 4), 8);
        let (r0, r2) = ([1u32, 0], [5u32, 4]);
        b.push_group(&[0, 2], &[1, 2], |i| if i == 0 { &r0[..] } else { &r2[..] });
        let r1 = [9u32, 9];
        b.push_group(&[1], &[0, 3], |_| &r1[..]);
        b.finish()
    }

    /// `from_rows` is `from_csr` of the same rows grouped by `RowGroups::detect`: on a random 0/1 map with
    /// many repeated rows (groups cut at 16), and with every list hashed alike (each match confirmed on the
    /// lists themselves), and with a hash that tells the lists apart.
    #[test]
    fn from_rows_groups_as_detect_does() {
        use rand::rngs::StdRng;
        use rand::{RngExt, SeedableRng};
        let mut rng = StdRng::seed_from_u64(7);
        let (rows, cols) = (300, 12);
        // Each row one of 5 column lists (some empty), its codes its own.
        let lists: Vec<Vec<u32>> =
            (0..5).map(|l| (0..cols as u32).filter(|c| (c * 7 + l) % 3 == 0 && l != 4).collect()).collect();
        let which: Vec<usize> = (0..rows).map(|_| rng.random_range(0..5)).collect();
        let row = |r: usize, c: &mut Vec<u32>, k: &mut Vec<u32>| {
            c.clone_from(&lists[which[r]]);
            k.clear();
            k.extend(c.iter().map(|&x| (x + r as u32 * 3) % 40));
        };
        let mut b = crate::tied::TiedBuilder::new(rows, cols, 40);
        for r in 0..rows {
            let (mut c, mut k) = (Vec::new(), Vec::new());
            row(r, &mut c, &mut k);
            c.iter().zip(&k).for_each(|(&c, &k)| b.push(r, c as usize, crate::tied::Source::Param(k)));
        }
        let classic = b.build();
        let expected = CompactMap::from_csr(classic.map(), &RowGroups::detect(classic.map()), 40);
        assert_eq!(CompactMap::from_rows((rows, cols), 40, row), expected);
        assert_eq!(CompactMap::from_rows_hashed((rows, cols), 40, row, |_| 0), expected);
        assert_eq!(CompactMap::from_rows_hashed((rows, cols), 40, row, |l| l.len() as u64), expected);
        assert!(expected.n_groups() > 5, "groups cut at 16 rows");
    }

    #[test]
    fn the_checker_accepts_the_built_map_and_rejects_each_broken_invariant() {
        let m = small();
        assert_eq!(m.check(8, 10), Ok(()));
        assert!(matches!(m.weights(0), GroupWeights::Separable { .. }));
        assert!(matches!(m.weights(1), GroupWeights::Codes(_)));
        let mut entries = Vec::new();
        m.for_each_nonzero(|r, _, c, code| entries.push((r, c, code)));
        entries.sort_unstable();
        assert_eq!(entries, [(0, 1, 1), (0, 2, 0), (1, 0, 9), (1, 3, 9), (2, 1, 5), (2, 2, 4)]);
        assert_eq!(CompactMap::from_csr(&m.to_csr(), m.groups(), 8), m);

        type Breaks = (&'static str, fn(&mut CompactMap));
        let broken: [Breaks; 8] = [
            ("a row in two groups", |m| m.groups.rows[2] = 0),
            ("a row out of range", |m| m.groups.rows[2] = 7),
            ("a column out of range", |m| m.group_shift[0] = 3),
            ("a pattern not starting at 0", |m| m.pattern_cols[0] = 1),
            ("a pattern not increasing", |m| m.pattern_cols[1] = 0),
            ("a block of the wrong shape", |m| m.group_block[1] = 0),
            ("a separable code beyond the parameters", |m| m.offsets[1] = 7),
            ("an explicit code beyond the codes", |m| m.codes[0] = 10),
        ];
        for (what, f) in broken {
            let mut bad = small();
            f(&mut bad);
            assert!(bad.check(8, 10).is_err(), "{what} passed the checker");
        }
    }
}
