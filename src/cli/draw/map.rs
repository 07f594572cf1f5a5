//! `compare-map.png`: the crossover map as heat maps. One panel per batch (columns) and kernel sparsity (rows);
//! in a panel, spatial size across and channels up; each cell coloured by its fastest engine (the colours of the
//! other comparison plots), deeper the larger the ratio sparse ÷ best dense is away from 1, and labelled with
//! that ratio and the fastest time.

use std::path::Path;

use cnn_as_mlp::compare::Status;
use cnn_as_mlp::compare::map::{MapRow, ms_label, ratio_label};
use cnn_as_mlp::network::Engine;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::Canvas;

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type Res = Result<(), Box<dyn std::error::Error>>;

const CELL_W: i32 = 104;
const CELL_H: i32 = 46;
/// Left of a panel: the channel labels.
const Y_LABELS: i32 = 64;
const PANEL_GAP: i32 = 34;
/// Above a panel: its title; below: the size labels and the axis name.
const PANEL_TOP: i32 = 30;
const PANEL_BOTTOM: i32 = 44;
/// Above a row of panels: the row's title.
const ROW_TITLE: i32 = 30;
const LEGEND_H: i32 = 96;
/// A ratio this far from 1 (either way) gets the full colour.
const FULL_AT: f64 = 8.0;

fn engine_colour(e: Engine) -> (u8, u8, u8) {
    match e {
        Engine::Sparse => (214, 39, 40),
        Engine::Direct => (31, 119, 180),
        Engine::Im2col => (44, 160, 44),
    }
}

/// The cell's fill: white mixed with the engine's colour, `t` in `[0, 1]` from light to full.
fn shade(e: Engine, t: f64) -> RGBColor {
    let (r, g, b) = engine_colour(e);
    let a = 0.18 + 0.82 * t.clamp(0.0, 1.0);
    let mix = |c: u8| (255.0 + (c as f64 - 255.0) * a).round() as u8;
    RGBColor(mix(r), mix(g), mix(b))
}

/// How decisive a ratio is: 0 at 1×, 1 at [`FULL_AT`]× or 1/[`FULL_AT`]×, on a log scale.
fn strength(ratio: f64) -> f64 {
    (ratio.ln().abs() / FULL_AT.ln()).min(1.0)
}

fn text(size: f64, colour: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    let mut style = TextStyle::from(("sans-serif", size).into_font()).pos(Pos::new(h, v));
    style.color = colour.to_backend_color();
    style
}

/// The distinct values of `f` in order of first appearance.
fn distinct<T: PartialEq + Copy>(rows: &[MapRow], f: impl Fn(&MapRow) -> T) -> Vec<T> {
    let mut v = Vec::new();
    for r in rows {
        if !v.contains(&f(r)) {
            v.push(f(r));
        }
    }
    v
}

/// Draws the map of `rows` (the rows of [`cnn_as_mlp::compare::map::run_map`]) with `caption` (the run's
/// settings, `; `-separated parts on lines of their own).
pub fn draw_map(canvas: &mut Canvas, rows: &[MapRow], caption: &str) -> Res {
    let (batches, sparsities) = (distinct(rows, |r| r.batch), distinct(rows, |r| r.sparsity));
    let (mut sizes, mut channels) = (distinct(rows, |r| r.spatial), distinct(rows, |r| r.channels));
    sizes.sort_unstable();
    channels.sort_unstable();
    let caption_lines: Vec<&str> = caption.split("; ").collect();
    let head = 40 + 18 * caption_lines.len() as i32;
    let panel_w = Y_LABELS + CELL_W * sizes.len() as i32;
    let panel_h = PANEL_TOP + CELL_H * channels.len() as i32 + PANEL_BOTTOM;
    let w = (20 + (panel_w + PANEL_GAP) * batches.len().max(1) as i32).max(980);
    let h = head + (ROW_TITLE + panel_h) * sparsities.len().max(1) as i32 + LEGEND_H;
    let root = canvas.area(w as u32, h as u32);
    root.fill(&WHITE)?;
    let grey = RGBColor(70, 70, 70);
    root.draw(&Text::new(
        "crossover map: the fastest engine per convolution C×S×S > conv(C,3,pad=1), and sparse ÷ best dense",
        (w / 2, 8),
        text(20.0, BLACK, HPos::Center, VPos::Top),
    ))?;
    for (i, line) in caption_lines.iter().enumerate() {
        root.draw(&Text::new(
            line.to_string(),
            (w / 2, 36 + 18 * i as i32),
            text(14.0, grey, HPos::Center, VPos::Top),
        ))?;
    }
    for (si, &sp) in sparsities.iter().enumerate() {
        let y0 = head + si as i32 * (ROW_TITLE + panel_h);
        let title = if sp == 0.0 {
            "kernel sparsity 0: every engine does the full convolution".to_string()
        } else {
            format!(
                "kernel sparsity {sp}: the sparse engine compiles {:.0}% of the taps; direct and im2col timed at sparsity 0",
                100.0 * (1.0 - sp)
            )
        };
        root.draw(&Text::new(title, (20, y0 + 6), text(16.0, BLACK, HPos::Left, VPos::Top)))?;
        for (bi, &b) in batches.iter().enumerate() {
            let x0 = 20 + bi as i32 * (panel_w + PANEL_GAP);
            let here: Vec<&MapRow> = rows.iter().filter(|r| r.batch == b && r.sparsity == sp).collect();
            panel(&root, (x0, y0 + ROW_TITLE), b, &sizes, &channels, &here)?;
        }
    }
    legend(&root, h - LEGEND_H + 8, w)?;
    root.present()?;
    Ok(())
}

/// One panel: batch `b`, its cells.
fn panel(root: &Area, (x0, y0): (i32, i32), b: usize, sizes: &[usize], channels: &[usize], rows: &[&MapRow]) -> Res {
    let (gx, gy) = (x0 + Y_LABELS, y0 + PANEL_TOP);
    let grid_w = CELL_W * sizes.len() as i32;
    let grid_h = CELL_H * channels.len() as i32;
    root.draw(&Text::new(format!("batch {b}"), (gx + grid_w / 2, y0 + 4), text(15.0, BLACK, HPos::Center, VPos::Top)))?;
    let dark = RGBColor(40, 40, 40);
    for (ci, &c) in channels.iter().enumerate() {
        // The smallest channel count at the bottom.
        let y = gy + grid_h - (ci as i32 + 1) * CELL_H;
        root.draw(&Text::new(format!("C={c}"), (gx - 6, y + CELL_H / 2), text(13.0, dark, HPos::Right, VPos::Center)))?;
        for (zi, &z) in sizes.iter().enumerate() {
            let x = gx + zi as i32 * CELL_W;
            let set: Vec<&MapRow> = rows.iter().filter(|r| r.channels == c && r.spatial == z).copied().collect();
            cell(root, (x, y), &set)?;
        }
    }
    for (zi, &z) in sizes.iter().enumerate() {
        let x = gx + zi as i32 * CELL_W + CELL_W / 2;
        root.draw(&Text::new(format!("{z}"), (x, gy + grid_h + 4), text(13.0, dark, HPos::Center, VPos::Top)))?;
    }
    root.draw(&Text::new(
        "spatial size S",
        (gx + grid_w / 2, gy + grid_h + 22),
        text(13.0, dark, HPos::Center, VPos::Top),
    ))?;
    root.draw(&Rectangle::new([(gx, gy), (gx + grid_w, gy + grid_h)], BLACK.stroke_width(1)))?;
    Ok(())
}

/// One cell: filled by its fastest engine, the ratio sparse ÷ best dense large, the fastest time below.
fn cell(root: &Area, (x, y): (i32, i32), set: &[&MapRow]) -> Res {
    let corners = [(x, y), (x + CELL_W, y + CELL_H)];
    let first = set.first();
    let fastest = first.and_then(|r| r.fastest);
    let ratio = first.and_then(|r| r.sparse_ratio);
    let best = fastest.and_then(|e| set.iter().find(|r| r.engine == e)).and_then(|r| r.total_s());
    let sparse_does_not_fit =
        set.iter().any(|r| r.engine == Engine::Sparse && matches!(r.status, Status::DoesNotFit(_)));
    let (fill, t) = match (fastest, ratio) {
        (Some(e), Some(r)) => (shade(e, strength(r)), strength(r)),
        (Some(e), None) => (shade(e, 0.3), 0.3),
        (None, _) => (RGBColor(200, 200, 200), 0.0),
    };
    root.draw(&Rectangle::new(corners, fill.filled()))?;
    root.draw(&Rectangle::new(corners, WHITE.stroke_width(1)))?;
    let ink = if t > 0.55 { WHITE } else { BLACK };
    let (big, small) = match (fastest, ratio, best) {
        (Some(_), Some(r), Some(tm)) => (ratio_label(r), ms_label(tm)),
        (Some(_), None, Some(tm)) if sparse_does_not_fit => ("sparse: no fit".to_string(), ms_label(tm)),
        (Some(_), None, Some(tm)) => ("-".to_string(), ms_label(tm)),
        _ => ("does not fit".to_string(), String::new()),
    };
    let cx = x + CELL_W / 2;
    let big_size = if big.chars().count() > 6 { 13.0 } else { 17.0 };
    root.draw(&Text::new(big, (cx, y + 15), text(big_size, ink, HPos::Center, VPos::Center)))?;
    if !small.is_empty() {
        root.draw(&Text::new(small, (cx, y + 34), text(11.0, ink, HPos::Center, VPos::Center)))?;
    }
    Ok(())
}

/// The key: each engine's colour from light to full, and how to read a cell.
fn legend(root: &Area, y: i32, w: i32) -> Res {
    let mut x = 20;
    for e in Engine::ALL {
        root.draw(&Text::new(format!("{} fastest", e.name()), (x, y), text(14.0, BLACK, HPos::Left, VPos::Top)))?;
        let sx = x + 120;
        for k in 0..5 {
            let t = k as f64 / 4.0;
            let c = shade(e, t);
            root.draw(&Rectangle::new([(sx + 22 * k, y), (sx + 22 * k + 20, y + 16)], c.filled()))?;
        }
        x += 260;
    }
    let grey = RGBColor(60, 60, 60);
    let lines = [
        "Large label: the sparse engine's time ÷ the best of direct and im2col (below 1×: sparse wins; above: it loses by that factor).",
        "Small label: the fastest engine's time, forward + input gradient + parameter gradient. Colour: the fastest engine,",
        "from light (the engines within a few percent) to full (a ratio of 8× or 1/8×). Grey or \"no fit\": over the memory limit.",
    ];
    for (i, l) in lines.iter().enumerate() {
        root.draw(&Text::new(l.to_string(), (20, y + 26 + 18 * i as i32), text(13.0, grey, HPos::Left, VPos::Top)))?;
    }
    let _ = w;
    Ok(())
}

/// Writes the map as a PNG, atomically ([`cnn_as_mlp::atomic`]).
pub fn write_png(path: &Path, rows: &[MapRow], caption: &str) -> Result<(), String> {
    let mut canvas = Canvas::default();
    draw_map(&mut canvas, rows, caption).map_err(|e| format!("{}: cannot draw the map: {e}", path.display()))?;
    let png = canvas.png().map_err(|e| format!("{}: {e}", path.display()))?;
    cnn_as_mlp::atomic::write(path, &png).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}
