//! How a picture of a compiled layer is drawn (`cnn-as-mlp show`): colours, an RGB canvas, legends, and
//! the PNG encoding. What is drawn (the downsampled pattern, the scale, a node's star) comes from
//! [`cnn_as_mlp::picture`]. Text uses the DejaVu Sans font registered by [`super::register_font`].
//! Pictures are returned as PNG bytes; the caller writes them atomically.

use plotters::prelude::*;

use cnn_as_mlp::picture::{
    Fit, LayerInfo, Spoke, codes_present, column_of_w, detail_window, downsample_rect, entry_label, fit, fit_rect,
    row_of_wt,
};
use cnn_as_mlp::spec::Shape;
use cnn_as_mlp::tied::{Entry, TiedMatrix};

pub type Rgb = [u8; 3];

const WHITE_RGB: Rgb = [255, 255, 255];
const BLACK_RGB: Rgb = [0, 0, 0];
/// Constants (pooling windows).
pub const CONST_COLOUR: Rgb = [90, 90, 90];
/// Compound entries (several kernel taps summed at a padded border).
pub const COMPOUND_COLOUR: Rgb = [0, 0, 0];
const EMPTY_CELL: Rgb = [232, 232, 232];
const GUIDE: Rgb = [214, 214, 214];
const MARK: Rgb = [220, 0, 0];

/// The categorical colour of category `i` (a parameter id, or a kernel position): golden-ratio hues,
/// three saturations and two brightnesses, never grey, black or white. Hues repeat approximately beyond
/// a few dozen categories.
pub fn category_colour(i: u32) -> Rgb {
    let h = (i as f64 * 0.618_033_988_749_895 + 0.05).fract();
    let s = [0.85, 0.6, 1.0][(i % 3) as usize];
    let v = [0.92, 0.7][((i / 3) % 2) as usize];
    hsv(h, s, v)
}

fn hsv(h: f64, s: f64, v: f64) -> Rgb {
    let h6 = h * 6.0;
    let f = h6 - h6.floor();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let (r, g, b) = match h6.floor() as i32 % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    let c = |x: f64| (x * 255.0).round().clamp(0.0, 255.0) as u8;
    [c(r), c(g), c(b)]
}

/// A picture being drawn: an RGB buffer, with text drawn last by plotters.
struct Canvas {
    w: usize,
    h: usize,
    buf: Vec<u8>,
    texts: Vec<(String, i32, i32, f64, bool)>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas { w, h, buf: vec![255; w * h * 3], texts: Vec::new() }
    }

    fn pixel(&mut self, x: usize, y: usize, c: Rgb) {
        if x < self.w && y < self.h {
            let i = (y * self.w + x) * 3;
            self.buf[i..i + 3].copy_from_slice(&c);
        }
    }

    fn get(&self, x: usize, y: usize) -> Rgb {
        let i = (y * self.w + x) * 3;
        [self.buf[i], self.buf[i + 1], self.buf[i + 2]]
    }

    /// Fills `[x, x + w) × [y, y + h)`.
    fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, c: Rgb) {
        for yy in y..(y + h).min(self.h) {
            for xx in x..(x + w).min(self.w) {
                self.pixel(xx, yy, c);
            }
        }
    }

    /// A one-pixel outline just outside `[x, x + w) × [y, y + h)`.
    fn frame(&mut self, x: usize, y: usize, w: usize, h: usize, c: Rgb) {
        let (x0, y0) = (x.saturating_sub(1), y.saturating_sub(1));
        for xx in x0..=x + w {
            self.pixel(xx, y0, c);
            self.pixel(xx, y + h, c);
        }
        for yy in y0..=y + h {
            self.pixel(x0, yy, c);
            self.pixel(x + w, yy, c);
        }
    }

    /// Text with its top-left corner at `(x, y)`.
    fn text(&mut self, s: impl Into<String>, x: usize, y: usize, size: f64, bold: bool) {
        self.texts.push((s.into(), x as i32, y as i32, size, bold));
    }

    /// Draws the text and encodes the picture as PNG.
    fn png(mut self) -> Result<Vec<u8>, String> {
        super::register_font();
        {
            let root = BitMapBackend::with_buffer(&mut self.buf, (self.w as u32, self.h as u32)).into_drawing_area();
            for (s, x, y, size, bold) in &self.texts {
                let font = if *bold {
                    ("sans-serif", *size).into_font().style(FontStyle::Bold)
                } else {
                    ("sans-serif", *size).into_font()
                };
                root.draw_text(s, &font.color(&BLACK), (*x, *y)).map_err(|e| format!("cannot draw text: {e}"))?;
            }
            root.present().map_err(|e| format!("cannot draw: {e}"))?;
        }
        super::encode_png(&self.buf, self.w as u32, self.h as u32, png::Compression::Best)
    }
}

/// Rough width in pixels of `s` at font `size` (for layout).
fn text_width(s: &str, size: f64) -> usize {
    (s.chars().count() as f64 * size * 0.58).ceil() as usize
}

/// Legend rows: a swatch and a label each.
fn legend(c: &mut Canvas, x: usize, mut y: usize, rows: &[(Option<Rgb>, String)]) -> usize {
    for (colour, label) in rows {
        if let Some(col) = colour {
            c.rect(x, y + 2, 14, 12, *col);
        }
        c.text(label.clone(), x + if colour.is_some() { 20 } else { 0 }, y, 13.0, false);
        y += 18;
    }
    y
}

/// Most legend entries listed before "…".
pub const LEGEND_MAX: usize = 25;

fn code_colour(t: &TiedMatrix, code: u32) -> Rgb {
    match t.decode(code) {
        Entry::Param(p) => category_colour(p),
        Entry::Const(_) => CONST_COLOUR,
        Entry::Sum(_) => COMPOUND_COLOUR,
    }
}

/// The legend rows for the codes in `present` (sorted): parameters first (at most [`LEGEND_MAX`]), then
/// constants and compound entries.
fn code_legend(t: &TiedMatrix, info: &LayerInfo, present: &[u32]) -> Vec<(Option<Rgb>, String)> {
    let mut rows = Vec::new();
    let params: Vec<u32> = present.iter().copied().filter(|&c| (c as usize) < t.n_params()).collect();
    if !params.is_empty() {
        rows.push((None, format!("shared parameter θp = weight({}):", info.axes.join(","))));
        for &p in params.iter().take(LEGEND_MAX) {
            rows.push((Some(category_colour(p)), info.param_label(p)));
        }
        if params.len() > LEGEND_MAX {
            rows.push((None, format!("… {} more parameters", params.len() - LEGEND_MAX)));
        }
    }
    let consts: Vec<u32> =
        present.iter().copied().filter(|&c| matches!(t.decode(c), Entry::Const(_))).take(LEGEND_MAX).collect();
    for c in consts {
        rows.push((Some(CONST_COLOUR), format!("{} (fixed)", entry_label(t, c))));
    }
    let n_sums = present.iter().filter(|&&c| matches!(t.decode(c), Entry::Sum(_))).count();
    if n_sums > 0 {
        rows.push((Some(COMPOUND_COLOUR), format!("compound: sum of taps ({n_sums} kinds)")));
    }
    rows
}

/// The legend of a pooling layer: no parameters, only what its grey entries are.
fn pool_legend(info: &LayerInfo) -> Vec<(Option<Rgb>, String)> {
    if info.name.starts_with("maxpool") {
        vec![
            (Some(CONST_COLOUR), "window entry (no parameter)".into()),
            (None, "maxpool: the window pattern; per sample".into()),
            (None, "each row keeps only its window's maximum".into()),
        ]
    } else {
        vec![(Some(CONST_COLOUR), "window entry 1/k² (no parameter)".into())]
    }
}

/// Tick positions (in entries) along an axis of `n` entries made of `maps` feature maps of `per_map`
/// entries: the map boundaries, thinned to at most about 12 ticks.
fn map_ticks(n: usize, maps: usize, per_map: usize) -> Vec<usize> {
    let every = maps.div_ceil(12).max(1);
    let mut t: Vec<usize> = (0..=maps).step_by(every).map(|k| k * per_map).filter(|&v| v <= n).collect();
    if t.last() != Some(&n) {
        t.push(n);
    }
    t
}

/// Draws the compiled matrix `t` of a layer: its sparsity pattern, each nonzero coloured by the shared
/// parameter it copies, downsampled honestly to at most `max_px` pixels per side (rows and columns scaled
/// separately, the stretch stated), with row and column ticks at the feature-map boundaries, and, when
/// downsampled, a detail of the top-left corner at full resolution. Returns PNG bytes.
pub fn matrix_png(t: &TiedMatrix, info: &LayerInfo, max_px: usize) -> Result<Vec<u8>, String> {
    let (rows, cols) = t.shape();
    let (sy, sx, z) = match fit(rows, cols, max_px) {
        Fit::Up(z) => (1, 1, z),
        Fit::Down(_) => {
            let (sy, sx) = fit_rect(rows, cols, max_px);
            (sy, sx, 1)
        }
    };
    let grid = downsample_rect(t.map(), sy, sx);
    let (mw, mh) = (grid.width * z, grid.height * z);
    let fixed = info.weight_shape.is_empty();
    let present = codes_present(t.map());
    let legend_rows = if fixed { pool_legend(info) } else { code_legend(t, info, &present) };

    let kind = if fixed { "fixed" } else { "tied" };
    let title = format!("layer {} {}: compiled {kind} matrix W, {rows}×{cols}", info.index, info.name);
    let owner = if fixed { "" } else { " (several: the smallest parameter id is shown)" };
    let scale = match (sy, sx, z) {
        (1, 1, 1) => "scale: 1 px = 1 entry, true aspect; every nonzero drawn".to_string(),
        (1, 1, z) => format!("scale: 1 entry = {z}×{z} px, true aspect; every nonzero drawn"),
        (s, x, _) if s == x => format!(
            "scale: 1 px = {s}×{s} entries, true aspect; a pixel is coloured iff some nonzero falls in its block{owner}"
        ),
        (sy, sx, _) => format!(
            "scale: 1 px = {sy} rows × {sx} columns, NOT true aspect ({} stretched {}×); a pixel is coloured iff some nonzero falls in its block{owner}",
            if sy > sx { "columns" } else { "rows" },
            sy.max(sx) as f64 / sy.min(sx) as f64
        ),
    };
    let lines = [
        format!(
            "nnz {} · {} shared parameters · rows = outputs {} (top down) · columns = inputs {} (left to right)",
            t.nnz(),
            t.n_params(),
            info.output,
            info.input
        ),
        scale,
        if fixed {
            "white: zero · grey lines and ticks: feature-map (channel) boundaries · grey: a window entry".to_string()
        } else {
            "white: zero · grey lines and ticks: feature-map (channel) boundaries · colour: the shared parameter the entry copies"
                .to_string()
        },
    ];
    // The detail: the first populated rows at full resolution, when the picture is downsampled.
    let detail = (sy > 1 || sx > 1).then(|| {
        let map = t.map();
        let span = |r: usize| {
            map.outer_view(r).and_then(|v| Some((*v.indices().first()? as usize, *v.indices().last()? as usize)))
        };
        let (r0, c0, dr, dc) = detail_window(rows, cols, span);
        let zd = (360 / dc.max(dr)).clamp(1, 12);
        (r0, c0, dr, dc, zd)
    });
    let detail_caption = detail.map(|(r0, c0, dr, dc, zd)| {
        format!("detail: rows {r0}…{}, columns {c0}…{}, 1 entry = {zd}×{zd} px", r0 + dr - 1, c0 + dc - 1)
    });

    let (margin, top) = (16, 34 + 20 * lines.len() + 10 + 18);
    let left = margin + text_width(&rows.to_string(), 11.0) + 10;
    let legend_w = legend_rows.iter().map(|(_, l)| text_width(l, 13.0) + 24).max().unwrap_or(0);
    let detail_w =
        detail.map_or(0, |(_, _, _, dc, zd)| (dc * zd).max(text_width(detail_caption.as_deref().unwrap_or(""), 13.0)));
    let text_w = lines.iter().map(|l| text_width(l, 14.0)).chain([text_width(&title, 18.0)]).max().unwrap_or(0);
    let side_w = legend_w.max(detail_w);
    let w = (left + mw + 24 + side_w + margin).max(text_w + 2 * margin);
    let legend_h = legend_rows.len() * 18;
    let side_h = legend_h + detail.map_or(0, |(_, _, dr, _, zd)| 20 + 20 + dr * zd);
    let h = top + mh.max(side_h) + margin;
    let mut c = Canvas::new(w, h);
    c.text(title, margin, 8, 18.0, true);
    for (i, l) in lines.iter().enumerate() {
        c.text(l.clone(), margin, 34 + 20 * i, 14.0, false);
    }
    let (x0, y0) = (left, top);
    // Channel boundaries (in entries), drawn first on empty pixels only.
    let row_bounds: Vec<usize> = (1..info.output.c).map(|k| k * info.output.h * info.output.w).collect();
    let col_bounds: Vec<usize> = (1..info.input.c).map(|k| k * info.input.h * info.input.w).collect();
    for (gy, gx) in (0..grid.height).flat_map(|y| (0..grid.width).map(move |x| (y, x))) {
        if let Some(code) = grid.at(gx, gy) {
            c.rect(x0 + gx * z, y0 + gy * z, z, z, code_colour(t, code));
        }
    }
    for &b in &row_bounds {
        let y = y0 + b * z / sy;
        for x in x0..x0 + mw {
            if c.get(x, y) == WHITE_RGB {
                c.pixel(x, y, GUIDE);
            }
        }
    }
    for &b in &col_bounds {
        let x = x0 + b * z / sx;
        for y in y0..y0 + mh {
            if c.get(x, y) == WHITE_RGB {
                c.pixel(x, y, GUIDE);
            }
        }
    }
    c.frame(x0, y0, mw, mh, BLACK_RGB);
    // Ticks: row indices on the left, column indices on top, at map boundaries, labels never crowded.
    let mut last = None;
    for r in map_ticks(rows, info.output.c, info.output.h * info.output.w) {
        let y = y0 + (r * z / sy).min(mh);
        c.rect(x0 - 5, y, 4, 1, BLACK_RGB);
        if last.is_none_or(|l: usize| y >= l + 14) || r == rows {
            let label = r.to_string();
            c.text(label.clone(), x0 - 7 - text_width(&label, 11.0), y.saturating_sub(6), 11.0, false);
            last = Some(y);
        }
    }
    let mut last = None;
    for col in map_ticks(cols, info.input.c, info.input.h * info.input.w) {
        let x = x0 + (col * z / sx).min(mw);
        c.rect(x, y0 - 5, 1, 4, BLACK_RGB);
        let label = col.to_string();
        if last.is_none_or(|l: usize| x >= l + text_width(&label, 11.0) + 8) {
            c.text(label.clone(), x.saturating_sub(text_width(&label, 11.0) / 2), y0 - 19, 11.0, false);
            last = Some(x);
        }
    }
    let sx0 = x0 + mw + 24;
    legend(&mut c, sx0, y0, &legend_rows);
    if let (Some((r0, c0, dr, dc, zd)), Some(caption)) = (detail, detail_caption) {
        let dy = y0 + legend_h + 20;
        c.text(caption, sx0, dy, 13.0, false);
        let dy = dy + 22;
        for r in 0..dr {
            if let Some(v) = t.map().outer_view(r0 + r) {
                for (&col, &code) in v.indices().iter().zip(v.data()) {
                    let col = col as usize;
                    if (c0..c0 + dc).contains(&col) {
                        c.rect(sx0 + (col - c0) * zd, dy + r * zd, zd, zd, code_colour(t, code));
                    }
                }
            }
        }
        c.frame(sx0, dy, dc * zd, dr * zd, BLACK_RGB);
    }
    c.png()
}

/// Colouring of a star's entries: for a convolution, by kernel position `(ky, kx)` (the output channel is
/// the map the entry lands in, the input channel is the node's); otherwise by entry code.
fn star_key(t: &TiedMatrix, info: &LayerInfo, code: u32) -> (Rgb, String) {
    match t.decode(code) {
        Entry::Param(p) if info.axes == ["o", "i", "ky", "kx"] => {
            let idx = info.unravel(p);
            let k = info.weight_shape[3];
            (category_colour((idx[2] * k + idx[3]) as u32), format!("(·,·,{},{})", idx[2], idx[3]))
        }
        Entry::Param(p) => (category_colour(p), info.param_label(p)),
        _ => (code_colour(t, code), entry_label(t, code)),
    }
}

/// Layout of `shape.c` feature maps as a grid of `h × w` cell grids, `per_row` maps per row.
struct Maps {
    shape: Shape,
    cell: usize,
    per_row: usize,
}

impl Maps {
    const GAP: usize = 8;

    fn new(shape: Shape, cell: usize, width: usize) -> Self {
        let map_w = shape.w * cell + Self::GAP;
        let per_row = (width / map_w).clamp(1, shape.c.max(1));
        Maps { shape, cell, per_row }
    }

    fn height(&self) -> usize {
        self.shape.c.div_ceil(self.per_row) * (self.shape.h * self.cell + Self::GAP)
    }

    /// Top-left pixel of feature `(ch, y, x)` relative to the block.
    fn at(&self, ch: usize, y: usize, x: usize) -> (usize, usize) {
        let (mr, mc) = (ch / self.per_row, ch % self.per_row);
        (
            mc * (self.shape.w * self.cell + Self::GAP) + x * self.cell,
            mr * (self.shape.h * self.cell + Self::GAP) + y * self.cell,
        )
    }

    /// Draws every map at `(x0, y0)`: cell `f` in `colours(f)`, or light grey.
    fn draw(&self, c: &mut Canvas, x0: usize, y0: usize, colours: &dyn Fn(usize) -> Option<Rgb>) {
        let inner = if self.cell >= 4 { self.cell - 1 } else { self.cell };
        for f in 0..self.shape.len() {
            let (ch, y, x) = LayerInfo::position(self.shape, f);
            let (px, py) = self.at(ch, y, x);
            c.rect(x0 + px, y0 + py, inner, inner, colours(f).unwrap_or(EMPTY_CELL));
        }
    }

    /// A ring of `colour` around cell `f` (makes small cells visible).
    fn ring(&self, c: &mut Canvas, x0: usize, y0: usize, f: usize, colour: Rgb) {
        let (ch, y, x) = LayerInfo::position(self.shape, f);
        let (px, py) = self.at(ch, y, x);
        let inner = if self.cell >= 4 { self.cell - 1 } else { self.cell };
        c.frame(x0 + px, y0 + py, inner, inner, colour);
    }

    /// A red ring around cell `f`.
    fn mark(&self, c: &mut Canvas, x0: usize, y0: usize, f: usize) {
        let (ch, y, x) = LayerInfo::position(self.shape, f);
        let (px, py) = self.at(ch, y, x);
        let inner = if self.cell >= 4 { self.cell - 1 } else { self.cell };
        c.frame(x0 + px, y0 + py, inner, inner, MARK);
        c.frame(x0 + px - 1, y0 + py - 1, inner + 2, inner + 2, MARK);
    }
}

/// Draws the star of input node `node` of layer `t`: column `node` of `W` (which outputs `x[node]`
/// feeds, through which entries) next to row `node` of `Wᵀ` (which output residuals flow back into
/// `δx[node]`, through which entries), on the layer's feature maps. `size` is the picture's width.
///
/// # Panics
/// If `node` is not below the number of inputs.
pub fn star_png(t: &TiedMatrix, info: &LayerInfo, node: usize, size: usize) -> Result<Vec<u8>, String> {
    let (_, cols) = t.shape();
    assert!(node < cols, "star_png: node {node} out of range ({cols} inputs)");
    let fwd = column_of_w(t, node);
    let bwd = row_of_wt(t, node);
    let (ni, ny, nx) = LayerInfo::position(info.input, node);
    let margin = 16;
    let panel_w = (size.saturating_sub(3 * margin) / 2).max(160);
    let biggest = info.input.w.max(info.output.w).max(1);
    let cell = (panel_w / (4 * (biggest + 1))).clamp(2, 14);
    let in_maps = Maps::new(info.input, cell, panel_w);
    let out_maps = Maps::new(info.output, cell, panel_w);

    // Legend: keys of the entries present, in order of first appearance by key text.
    let mut keys: Vec<(Rgb, String)> = fwd.iter().chain(&bwd).map(|&(_, code)| star_key(t, info, code)).collect();
    keys.sort_by(|a, b| a.1.cmp(&b.1));
    keys.dedup_by(|a, b| a.1 == b.1);
    let mut legend_rows: Vec<(Option<Rgb>, String)> = Vec::new();
    let conv = info.axes == ["o", "i", "ky", "kx"];
    legend_rows.push((
        None,
        if conv {
            "colour = kernel position (o, i, ky, kx) → (ky, kx):".into()
        } else {
            "colour = entry:".to_string()
        },
    ));
    for (col, label) in keys.iter().take(LEGEND_MAX) {
        legend_rows.push((Some(*col), label.clone()));
    }
    if keys.len() > LEGEND_MAX {
        legend_rows.push((None, format!("… {} more", keys.len() - LEGEND_MAX)));
    }

    let title = format!("layer {} {}: the star of input node {node} = (c {ni}, y {ny}, x {nx})", info.index, info.name);
    let lines = [
        format!(
            "left: column {node} of W, read from W: x[{node}] feeds {} outputs · right: row {node} of Wᵀ, read from the stored Wᵀ: {} output residuals flow back",
            fwd.len(),
            bwd.len()
        ),
        if conv {
            format!(
                "through the same kernel entries: the footprint on the output maps is the kernel θ[o,{ni},·,·] rotated by 180°, so δx = δz ⋆ rot180(θ)"
            )
        } else {
            "through the same entries, read in the other direction".to_string()
        },
        format!("input {} · output {} · red ring: node {node}", info.input, info.output),
    ];
    let head = 34 + 20 * lines.len() + 8;
    let sec = 22;
    let row_h = in_maps.height().max(out_maps.height());
    let panel_h = 2 * (sec + row_h);
    let kernel_h = if conv { sec + info.weight_shape[2] * 14 + 8 } else { 0 };

    let text_w = lines.iter().map(|l| text_width(l, 14.0)).chain([text_width(&title, 18.0)]).max().unwrap_or(0);
    let legend_w = legend_rows.iter().map(|(_, l)| text_width(l, 13.0) + 24).max().unwrap_or(0);
    let w = (3 * margin + 2 * panel_w + legend_w + margin).max(text_w + 2 * margin);
    let h = head + (panel_h + kernel_h).max(legend_rows.len() * 18) + margin;
    let mut c = Canvas::new(w, h);
    c.text(title, margin, 8, 18.0, true);
    for (i, l) in lines.iter().enumerate() {
        c.text(l.clone(), margin, 34 + 20 * i, 14.0, false);
    }

    let colour_of = |spokes: &[Spoke]| {
        let mut v: Vec<Option<Rgb>> = vec![None; info.output.len()];
        for &(r, code) in spokes {
            v[r] = Some(star_key(t, info, code).0);
        }
        v
    };
    let (fwd_col, bwd_col) = (colour_of(&fwd), colour_of(&bwd));
    let node_colour = |f: usize| (f == node).then_some(BLACK_RGB);

    // Left panel: x (node marked) on top, z below.
    let (lx, rx) = (margin, 2 * margin + panel_w);
    let mut y = head;
    c.text(format!("forward: input x ({}), x[{node}] marked", info.input), lx, y, 14.0, true);
    c.text(format!("backward: output residual δz ({}) that reaches δx[{node}]", info.output), rx, y, 14.0, true);
    y += sec;
    in_maps.draw(&mut c, lx, y, &node_colour);
    in_maps.mark(&mut c, lx, y, node);
    out_maps.draw(&mut c, rx, y, &|f| bwd_col[f]);
    let y2 = y + row_h;
    c.text(format!("z = W x ({}): outputs x[{node}] feeds", info.output), lx, y2, 14.0, true);
    c.text(format!("δx = Wᵀ δz ({}): δx[{node}] marked", info.input), rx, y2, 14.0, true);
    let y3 = y2 + sec;
    out_maps.draw(&mut c, lx, y3, &|f| fwd_col[f]);
    in_maps.draw(&mut c, rx, y3, &node_colour);
    in_maps.mark(&mut c, rx, y3, node);
    if cell < 6 {
        for (spokes, x0, y0) in [(&fwd, lx, y3), (&bwd, rx, y)] {
            for &(r, code) in spokes.iter() {
                out_maps.ring(&mut c, x0, y0, r, star_key(t, info, code).0);
            }
        }
    }
    let mut y4 = y3 + row_h;

    if conv {
        // The kernel as stored (left) and rotated by 180° (right), coloured by position.
        let k = info.weight_shape[2];
        c.text("kernel θ[o,i,ky,kx] as stored (ky down, kx right)", lx, y4, 13.0, false);
        c.text("rotated 180°: the footprint on δz above", rx, y4, 13.0, false);
        y4 += sec;
        for ky in 0..k {
            for kx in 0..k {
                let col = category_colour((ky * k + kx) as u32);
                c.rect(lx + kx * 14, y4 + ky * 14, 13, 13, col);
                c.rect(rx + (k - 1 - kx) * 14, y4 + (k - 1 - ky) * 14, 13, 13, col);
            }
        }
    }
    legend(&mut c, 3 * margin + 2 * panel_w, head, &legend_rows);
    c.png()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsv_primaries() {
        assert_eq!(hsv(0.0, 1.0, 1.0), [255, 0, 0]);
        assert_eq!(hsv(1.0 / 3.0, 1.0, 1.0), [0, 255, 0]);
        assert_eq!(hsv(0.5, 0.0, 1.0), [255, 255, 255]);
    }
}
