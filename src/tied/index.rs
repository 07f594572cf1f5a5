//! The classic index of a tied matrix: a CSR map whose values are entry codes, its row groups (rows that
//! share one column list), and the one checker of their invariants.

use std::collections::HashMap;

use sprs::CsMatI;

/// The index map: CSR, values are entry codes.
pub type IndexMap = CsMatI<u32, u32, u32>;

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

pub(super) fn check_map(m: &IndexMap, n_codes: usize) -> Result<(), StructureError> {
    let ip = m.indptr();
    check_csr(m.shape(), ip.raw_storage(), m.indices(), m.data(), n_codes)
}

pub(super) fn check_csr(
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

pub(super) fn check_groups(m: &IndexMap, g: &RowGroups) -> Result<(), StructureError> {
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
