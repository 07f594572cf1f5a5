//! Building a tied matrix from its nonzeros, pushed in any order.

use std::collections::HashMap;

use super::index::IndexMap;
use super::matrix::TiedMatrix;

/// What one nonzero copies, as handed to the builder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Source {
    /// The shared parameter with this id.
    Param(u32),
    /// A constant (mean pooling's `1/k²`).
    Const(f64),
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
