//! Pictures of compiled layers (`cnn-as-mlp show`): the tied matrix `W` of a layer as a coloured sparsity
//! pattern, and the "star" of one input node (column `K` of `W`, row `K` of `Wᵀ`) on the feature maps.
//!
//! **Downsampling rule.** A matrix larger than the picture is drawn at `1 px = s×s entries`: pixel
//! `(x, y)` covers rows `y·s .. y·s + s` and columns `x·s .. x·s + s`. It is coloured iff at least one
//! nonzero falls in it (no nonzero is ever dropped, an empty pixel means an all-zero block), and it shows
//! the entry with the smallest code among them: parameters come before constants and compound entries,
//! so that is the smallest parameter id when there is one ([`downsample`]). Smaller matrices are drawn at
//! `1 entry = z×z px`.
//!
//! **Aspect.** A matrix much longer on one side than the other would be a thin strip at one scale for both
//! axes, so [`fit_rect`] scales rows and columns separately, each to fill the picture, but never stretches
//! one axis more than [`MAX_STRETCH`] times the other; the picture states the stretch. A downsampled
//! picture comes with a *detail* of its first populated rows at full resolution ([`detail_window`]), where
//! window patterns (a max pool's 2×2 windows, a kernel's taps) stay legible.
//!
//! This module is *what* is drawn, as plain data (the downsampled grid, the scale, the spokes of a node's
//! star, the labels); *how* it is drawn (canvas, colours, legend, PNG) is the command's (`src/cli/draw/`).

use crate::spec::Shape;
use crate::tied::{Entry, IndexMap, TiedMatrix};

/// The owner of each pixel of a downsampled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grid {
    /// Pixels per row of the picture: `⌈n_cols / s⌉`.
    pub width: usize,
    /// Pixel rows: `⌈n_rows / s⌉`.
    pub height: usize,
    /// `s`: one pixel covers `s` columns (and `s` rows when square).
    pub scale: usize,
    /// Rows per pixel (equal to `scale` for a square downsampling).
    pub row_scale: usize,
    /// `cells[y·width + x]`: the smallest entry code of the nonzeros falling in pixel `(x, y)`, or `None`
    /// when the block is all zero.
    pub cells: Vec<Option<u32>>,
}

impl Grid {
    /// The owner of pixel `(x, y)`.
    pub fn at(&self, x: usize, y: usize) -> Option<u32> {
        self.cells[y * self.width + x]
    }
}

/// How many times one axis of a picture may be stretched relative to the other.
pub const MAX_STRETCH: usize = 4;

/// Entries per pixel along each axis of a picture of a `rows × cols` matrix within `max_px` pixels per
/// side: `(rows per pixel, columns per pixel)`, each the smallest that fits, then the less downsampled axis
/// coarsened until the stretch `max / min` is at most [`MAX_STRETCH`]. `(1, 1)` when the matrix fits.
pub fn fit_rect(rows: usize, cols: usize, max_px: usize) -> (usize, usize) {
    let max_px = max_px.max(1);
    let (sy, sx) = (rows.max(1).div_ceil(max_px), cols.max(1).div_ceil(max_px));
    let floor = sy.max(sx).div_ceil(MAX_STRETCH);
    (sy.max(floor), sx.max(floor))
}

/// The corner of a `rows × cols` pattern shown at full resolution: from the first row that has a nonzero
/// (row 0 unless the top rows are empty, as in a pruned layer), `n_rows` rows (at most 16), and from the first
/// column those rows touch to the last (at least `n_rows` wide, at most 8 times), so a window pattern is seen
/// whole. `span(r)` is the smallest and the largest column of row `r`, if it has any. Returns `(first row,
/// first column, n_rows, n_cols)`.
pub fn detail_window(
    rows: usize,
    cols: usize,
    span: impl Fn(usize) -> Option<(usize, usize)>,
) -> (usize, usize, usize, usize) {
    let r0 = (0..rows).find(|&r| span(r).is_some()).unwrap_or(0);
    let n = (rows - r0).min(16);
    let spans: Vec<(usize, usize)> = (r0..r0 + n).filter_map(&span).collect();
    let c0 = spans.iter().map(|s| s.0).min().unwrap_or(0);
    let touched = spans.iter().map(|s| s.1 + 1 - c0).max().unwrap_or(1);
    (r0, c0, n, touched.max(n).min(8 * n).min(cols - c0))
}

/// Downsamples the pattern of `map` with `sy` rows and `sx` columns per pixel (see the module
/// documentation; [`downsample`] is the square case).
///
/// # Panics
/// If `sy` or `sx` is zero.
pub fn downsample_rect(map: &IndexMap, sy: usize, sx: usize) -> Grid {
    assert!(sy > 0 && sx > 0, "downsample_rect: scales must be positive, got {sy} x {sx}");
    let (rows, cols) = map.shape();
    let (width, height) = (cols.div_ceil(sx), rows.div_ceil(sy));
    let mut cells = vec![None; width * height];
    for (&code, (r, c)) in map.iter() {
        let cell: &mut Option<u32> = &mut cells[(r as usize / sy) * width + c as usize / sx];
        *cell = Some(cell.map_or(code, |old| old.min(code)));
    }
    Grid { width, height, scale: sx, row_scale: sy, cells }
}

/// Downsamples the pattern of `map` (values are entry codes) by `scale` (see the module documentation):
/// a pixel is set iff some nonzero maps into it, and holds the smallest code among them.
///
/// # Panics
/// If `scale` is 0.
pub fn downsample(map: &IndexMap, scale: usize) -> Grid {
    assert!(scale > 0, "downsample: scale must be positive");
    downsample_rect(map, scale, scale)
}

/// How a `rows × cols` matrix fits in `max_px` pixels per side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// `1 px = s×s entries` (the smallest `s` that fits).
    Down(usize),
    /// `1 entry = z×z px` (the largest `z ≥ 1` that fits).
    Up(usize),
}

/// The scale at which a `rows × cols` matrix is drawn within `max_px` pixels per side.
pub fn fit(rows: usize, cols: usize, max_px: usize) -> Fit {
    let side = rows.max(cols).max(1);
    let max_px = max_px.max(1);
    if side <= max_px { Fit::Up((max_px / side).clamp(1, 16)) } else { Fit::Down(side.div_ceil(max_px)) }
}

impl Fit {
    /// "1 px = 4×4 entries" or "1 entry = 3×3 px".
    pub fn describe(self) -> String {
        match self {
            Fit::Down(1) | Fit::Up(1) => "1 px = 1 entry".into(),
            Fit::Down(s) => format!("1 px = {s}×{s} entries"),
            Fit::Up(z) => format!("1 entry = {z}×{z} px"),
        }
    }
}

/// What the picture needs to know about the layer besides its matrix.
#[derive(Clone, Debug)]
pub struct LayerInfo {
    /// Position in the model.
    pub index: usize,
    /// The layer as written in a spec, e.g. `conv(16,5)`.
    pub name: String,
    /// Input feature maps.
    pub input: Shape,
    /// Output feature maps.
    pub output: Shape,
    /// Shape of the weight tensor and the names of its axes (e.g. `[16, 6, 5, 5]`, `["o", "i", "ky",
    /// "kx"]`); empty for a fixed matrix (pooling).
    pub weight_shape: Vec<usize>,
    pub axes: Vec<&'static str>,
}

impl LayerInfo {
    /// `(o,i,ky,kx)` of parameter `p` (its multi-index in the weight tensor).
    pub fn unravel(&self, p: u32) -> Vec<usize> {
        let mut rest = p as usize;
        let mut idx = vec![0; self.weight_shape.len()];
        for (d, &n) in self.weight_shape.iter().enumerate().rev() {
            idx[d] = rest % n.max(1);
            rest /= n.max(1);
        }
        idx
    }

    /// `θp = (o,i,ky,kx)`: parameter `p` and its multi-index.
    pub fn param_label(&self, p: u32) -> String {
        let idx: Vec<String> = self.unravel(p).iter().map(ToString::to_string).collect();
        format!("θ{p} = ({})", idx.join(","))
    }

    /// The feature map `(c, y, x)` of feature `f` of a `shape`.
    pub fn position(shape: Shape, f: usize) -> (usize, usize, usize) {
        (f / (shape.h * shape.w), (f / shape.w) % shape.h, f % shape.w)
    }
}

/// Label of an entry: `θp`, `constant v` or `sum θp+θq`.
pub fn entry_label(t: &TiedMatrix, code: u32) -> String {
    match t.decode(code) {
        Entry::Param(p) => format!("θ{p}"),
        Entry::Const(v) => format!("constant {v}"),
        Entry::Sum(ids) => {
            let ids: Vec<String> = ids.iter().map(|p| format!("θ{p}")).collect();
            format!("sum {}", ids.join("+"))
        }
    }
}

/// The codes used by `map`, sorted and deduplicated.
pub fn codes_present(map: &IndexMap) -> Vec<u32> {
    let mut v: Vec<u32> = map.data().to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// One nonzero of a star: the other end (an output feature) and its entry code.
pub type Spoke = (usize, u32);

/// Column `node` of `W`, read from the CSR of `W`: every nonzero `(r, node)` as `(r, code)`, by row.
pub fn column_of_w(t: &TiedMatrix, node: usize) -> Vec<Spoke> {
    let map = t.map();
    let mut v = Vec::new();
    for (r, row) in map.outer_iterator().enumerate() {
        if let Some(&code) = row.get(node) {
            v.push((r, code));
        }
    }
    v
}

/// Row `node` of `Wᵀ`, read from the stored transpose: every nonzero `(node, r)` as `(r, code)`.
pub fn row_of_wt(t: &TiedMatrix, node: usize) -> Vec<Spoke> {
    let row = t.map_t().outer_view(node).expect("node < n_cols");
    row.iter().map(|(r, &code)| (r, code)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_picks_the_smallest_downsampling_and_the_largest_zoom() {
        assert_eq!(fit(4704, 784, 800), Fit::Down(6));
        assert_eq!(fit(800, 10, 800), Fit::Up(1));
        assert_eq!(fit(801, 10, 800), Fit::Down(2));
        assert_eq!(fit(100, 40, 800), Fit::Up(8));
        assert_eq!(Fit::Down(4).describe(), "1 px = 4×4 entries");
    }
}
