//! The two PNG plots of a comparison, as dot plots: one row per layer (sorted by its FLOPs, named with
//! them), one dot per formulation, time or bytes on a log axis. Nothing joins two layers: they are
//! different layers, not points of a trend. The caption gives the machine, batch, threads and repeats.
//! Both show the layers at the smallest sparsity measured; `compare-sparsity.png` plots time against
//! kernel sparsity.

use cnn_as_mlp::compare::{Row, Status};
use cnn_as_mlp::network::Engine;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

use super::Canvas;
use super::axis::{log_ticks, tick_formatter, ticked};

fn color(e: Engine) -> RGBColor {
    match e {
        Engine::Sparse => RGBColor(214, 39, 40),
        Engine::Direct => RGBColor(31, 119, 180),
        Engine::Im2col => RGBColor(44, 160, 44),
    }
}

type Getter = fn(&Row) -> Option<f64>;
/// A series whose label goes in the legend only when it is `Some`.
type LabelledSeries = (Option<String>, RGBColor, Vec<(f64, f64)>);

/// Draws a plot of the rows on a canvas.
pub type Draw = fn(&mut Canvas, &[Row], &str) -> Result<(), Box<dyn std::error::Error>>;

/// An axis label: plain decimals between 0.01 and 10⁴, `1e6` style outside.
fn short(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if (0.01..10_000.0).contains(&v.abs()) {
        let t = format!("{v:.3}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.0e}")
    }
}

/// The rows at the smallest sparsity measured (the layers as they are, without `--sparsity`).
fn least_sparse(rows: &[Row]) -> Vec<Row> {
    let s0 = rows.iter().map(|r| r.sparsity).fold(f64::INFINITY, f64::min);
    rows.iter().filter(|r| r.sparsity == s0).cloned().collect()
}

/// MFLOP in one notation, about three significant digits (`0.205`, `13.8`, `14447`).
fn mflop(v: f64) -> String {
    match v {
        v if v >= 100.0 => format!("{v:.0}"),
        v if v >= 1.0 => format!("{v:.1}"),
        v => format!("{v:.3}"),
    }
}

/// A set of dots: legend label, colour, and one value per layer row (`None`: not measured there).
struct Dots {
    label: String,
    color: RGBColor,
    values: Vec<Option<f64>>,
}

/// The layers of the rows, in order of FLOPs (then of first appearance), labelled with their FLOPs.
fn layers(rows: &[Row]) -> Vec<(String, String)> {
    let mut seen: Vec<(&str, f64)> = Vec::new();
    for r in rows {
        if !seen.iter().any(|(l, _)| *l == r.layer) {
            seen.push((&r.layer, r.flops));
        }
    }
    seen.sort_by(|a, b| a.1.total_cmp(&b.1));
    seen.iter().map(|(l, f)| (l.to_string(), format!("{l} · {} MFLOP", mflop(f / 1e6)))).collect()
}

/// `get` of each engine's row of each layer, as dots.
fn engine_dots(rows: &[Row], layers: &[(String, String)], get: Getter) -> Vec<Dots> {
    Engine::ALL
        .iter()
        .map(|&e| Dots {
            label: e.name().to_string(),
            color: color(e),
            values: layers
                .iter()
                .map(|(l, _)| {
                    rows.iter().find(|r| r.engine == e && &r.layer == l && r.status == Status::Ran).and_then(get)
                })
                .collect(),
        })
        .collect()
}

/// Layout of a dot-plot figure: title and caption lines on top, panels side by side, legend below.
const ROW_PX: u32 = 34;
const LEGEND_PX: u32 = 40;
/// Left label area of the first panel (layer names).
const NAMES_PX: u32 = 230;

/// The caption's lines: its `; `-separated parts.
fn caption_lines(caption: &str) -> Vec<&str> {
    caption.split("; ").collect()
}

/// Height of the title and caption.
fn head_px(caption: &str) -> u32 {
    40 + 18 * caption_lines(caption).len() as u32
}

fn figure_height(n_layers: usize, caption: &str) -> u32 {
    head_px(caption) + 70 + ROW_PX * n_layers as u32 + LEGEND_PX
}

/// The title, then the caption (the run's settings and machine), one part a line, centred.
fn heading(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    what: &str,
    caption: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let w = root.dim_in_pixel().0 as i32;
    let centre = TextStyle::from(("sans-serif", 20).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    root.draw(&Text::new(what.to_string(), (w / 2, 8), centre))?;
    let small = TextStyle::from(("sans-serif", 14).into_font())
        .color(&RGBColor(70, 70, 70))
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (i, line) in caption_lines(caption).iter().enumerate() {
        root.draw(&Text::new(line.to_string(), (w / 2, 36 + 18 * i as i32), small.clone()))?;
    }
    Ok(())
}

/// One panel: a row per layer, the dots of each set offset within the row, `x` on a log axis.
fn dot_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    x_desc: &str,
    layers: &[(String, String)],
    dots: &[Dots],
    names: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let n = layers.len();
    let values = dots.iter().flat_map(|d| d.values.iter().flatten().copied()).filter(|v| *v > 0.0 && v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo / 2.0, hi * 2.0) } else { (1.0, 10.0) };
    let x_ticks = log_ticks(lo, hi);
    let fx = tick_formatter(&x_ticks);
    // Row i (the i-th smallest layer) at y = n − 1 − i, so the smallest is at the top.
    let rows: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let name_of = |y: &f64| -> String {
        let i = n as i64 - 1 - y.round() as i64;
        if names && (0..n as i64).contains(&i) { layers[i as usize].1.clone() } else { String::new() }
    };
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .caption(caption, ("sans-serif", 16))
        .x_label_area_size(44)
        .y_label_area_size(if names { NAMES_PX } else { 10 })
        .build_cartesian_2d(ticked((lo..hi).log_scale(), x_ticks), ticked(-0.6..n as f64 - 0.4, rows))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .x_label_formatter(&fx)
        .y_label_formatter(&name_of)
        .label_style(("sans-serif", 13))
        .draw()?;
    let k = dots.len() as f64;
    for (j, d) in dots.iter().enumerate() {
        // Offsets spread the sets over the middle half of the row.
        let dy = if k > 1.0 { 0.25 - 0.5 * j as f64 / (k - 1.0) } else { 0.0 };
        let pts = d
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.filter(|v| *v > 0.0).map(|v| (v, (n - 1 - i) as f64 + dy)));
        chart.draw_series(pts.map(|p| Circle::new(p, 5, d.color.filled())))?;
    }
    Ok(())
}

/// The legend, one line below the panels.
fn legend_row(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    dots: &[Dots],
) -> Result<(), Box<dyn std::error::Error>> {
    let (mut x, y) = (40, 12);
    for d in dots {
        area.draw(&Circle::new((x, y + 8), 5, d.color.filled()))?;
        area.draw(&Text::new(d.label.clone(), (x + 12, y), ("sans-serif", 14).into_font()))?;
        x += 44 + 7 * d.label.chars().count() as i32;
    }
    Ok(())
}

/// Median time (ms) of each product, one panel per product, a row per layer, a dot per formulation.
pub fn draw_time(canvas: &mut Canvas, rows: &[Row], title: &str) -> Result<(), Box<dyn std::error::Error>> {
    let rows = &least_sparse(rows)[..];
    let layers = layers(rows);
    let root = canvas.area(1500, figure_height(layers.len(), title));
    root.fill(&WHITE)?;
    heading(&root, "median time of each product, layer by layer (log scale)", title)?;
    let (body, legend) = root.split_vertically(root.dim_in_pixel().1 - LEGEND_PX);
    let (_, body) = body.split_vertically(head_px(title));
    let (first, rest) = body.split_horizontally(NAMES_PX + 400);
    let (second, third) = rest.split_horizontally(435);
    let getters: [(&str, Getter); 3] = [
        ("forward", |r| r.forward_s.map(|t| t * 1e3)),
        ("input gradient", |r| r.input_grad_s.map(|t| t * 1e3)),
        ("parameter gradient", |r| r.param_grad_s.map(|t| t * 1e3)),
    ];
    let mut all = Vec::new();
    for (i, (area, (caption, get))) in [first, second, third].iter().zip(getters).enumerate() {
        let dots = engine_dots(rows, &layers, get);
        dot_panel(area, caption, "median time (ms)", &layers, &dots, i == 0)?;
        all = dots;
    }
    legend_row(&legend, &all)?;
    root.present()?;
    Ok(())
}

/// Bytes of each formulation's extra structure per layer: the sparse index (compiled, or estimated where it
/// does not fit), im2col's scratch (col and δcol), and the parameters for scale.
pub fn draw_memory(canvas: &mut Canvas, rows: &[Row], title: &str) -> Result<(), Box<dyn std::error::Error>> {
    let rows = &least_sparse(rows)[..];
    let layers = layers(rows);
    let root = canvas.area(1200, figure_height(layers.len(), title));
    root.fill(&WHITE)?;
    heading(&root, "memory beside the parameters, layer by layer (log scale)", title)?;
    let (body, legend) = root.split_vertically(root.dim_in_pixel().1 - LEGEND_PX);
    let (_, body) = body.split_vertically(head_px(title));
    let value = |e: Engine, f: &dyn Fn(&Row) -> Option<f64>| -> Vec<Option<f64>> {
        layers.iter().map(|(l, _)| rows.iter().find(|r| r.engine == e && &r.layer == l).and_then(f)).collect()
    };
    let dots = vec![
        Dots {
            label: "sparse index (W, Wᵀ, groups)".into(),
            color: color(Engine::Sparse),
            values: value(Engine::Sparse, &|r| (r.status == Status::Ran).then_some(r.index_bytes as f64)),
        },
        Dots {
            label: "sparse index, estimate (does not fit)".into(),
            color: RGBColor(255, 152, 150),
            values: value(Engine::Sparse, &|r| match r.status {
                Status::DoesNotFit(_) => r.estimated_bytes.map(|b| b as f64),
                _ => None,
            }),
        },
        Dots {
            label: "im2col col + δcol scratch".into(),
            color: color(Engine::Im2col),
            values: value(Engine::Im2col, &|r| match r.status {
                Status::NotApplicable(_) => None,
                _ => Some(r.index_bytes.max(1) as f64),
            }),
        },
        Dots {
            label: "parameters (kernel + bias)".into(),
            color: RGBColor(90, 90, 90),
            values: value(Engine::Direct, &|r| Some(r.param_bytes as f64)),
        },
    ];
    dot_panel(&body, "index structure, scratch and parameters", "bytes", &layers, &dots, true)?;
    legend_row(&legend, &dots)?;
    root.present()?;
    Ok(())
}

/// `x = −log₁₀(1 − s)`: sparsities 0, 0.9, 0.99 at 0, 1, 2.
fn sparsity_x(s: f64) -> f64 {
    -(1.0 - s).log10()
}

/// Time against kernel sparsity: one panel per product; for each layer and formulation, its median time
/// divided by its own time at the smallest sparsity measured (log scale), against `−log₁₀(1 − s)` labelled
/// with `s`; the dashed line is time proportional to the kept entries, `(1 − s)/(1 − s₀)`.
pub fn draw_sparsity(canvas: &mut Canvas, rows: &[Row], title: &str) -> Result<(), Box<dyn std::error::Error>> {
    let root = canvas.area(1500, 520 + head_px(title));
    root.fill(&WHITE)?;
    // The run's settings one part a line under the title, as the other figures have them (on one line they
    // ran past both edges).
    heading(&root, "time against kernel sparsity", title)?;
    let (_, root) = root.split_vertically(head_px(title));
    let panels = root.split_evenly((1, 3));
    let getters: [(&str, Getter); 3] = [
        ("forward", |r| r.forward_s),
        ("input gradient", |r| r.input_grad_s),
        ("parameter gradient", |r| r.param_grad_s),
    ];
    let s0 = rows.iter().map(|r| r.sparsity).fold(f64::INFINITY, f64::min);
    let s1 = rows.iter().map(|r| r.sparsity).fold(0.0, f64::max);
    let mut layers: Vec<&str> = rows.iter().map(|r| r.layer.as_str()).collect();
    layers.dedup();
    for (area, (caption, get)) in panels.iter().zip(getters) {
        // (label, colour, points) per layer and formulation, time relative to the layer's time at s0.
        let mut series: Vec<LabelledSeries> = Vec::new();
        for &e in &Engine::ALL {
            let mut first = true;
            for layer in &layers {
                let mine: Vec<&Row> =
                    rows.iter().filter(|r| r.engine == e && r.layer == *layer && r.status == Status::Ran).collect();
                let Some(base) = mine.iter().find(|r| r.sparsity == s0).and_then(|r| get(r)) else { continue };
                let mut pts: Vec<(f64, f64)> =
                    mine.iter().filter_map(|r| get(r).map(|t| (sparsity_x(r.sparsity), t / base))).collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                if pts.len() < 2 {
                    continue;
                }
                series.push((first.then(|| e.name().to_string()), color(e), pts));
                first = false;
            }
        }
        let (x0, x1) = (sparsity_x(s0), sparsity_x(s1).max(sparsity_x(s0) + 0.1));
        let lo = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold((1.0 - s1) / (1.0 - s0), f64::min);
        let hi = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .caption(caption, ("sans-serif", 16))
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x0 - 0.05..x1 + 0.05, (lo / 1.5..hi * 1.5).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("kernel sparsity s (axis: −log10(1 − s))")
            .x_labels(5)
            .y_desc("time / time at the lowest sparsity")
            .x_label_formatter(&|v| short(1.0 - 10f64.powf(-*v)))
            .y_label_formatter(&|v| short(*v))
            .draw()?;
        let ideal: Vec<(f64, f64)> =
            (0..=40).map(|i| x0 + (x1 - x0) * i as f64 / 40.0).map(|x| (x, 10f64.powf(-x) / (1.0 - s0))).collect();
        let grey = RGBColor(120, 120, 120);
        chart
            .draw_series(DashedLineSeries::new(ideal, 6, 4, grey.into()))?
            .label("time ∝ kept entries")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], grey));
        for (name, c, pts) in &series {
            let c = *c;
            let drawn = chart.draw_series(LineSeries::new(pts.iter().copied(), c))?;
            if let Some(name) = name {
                drawn.label(name.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c));
            }
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .position(SeriesLabelPosition::LowerLeft)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Writes a PNG drawn by `draw` atomically ([`cnn_as_mlp::atomic`]).
pub fn write_png(path: &Path, rows: &[Row], title: &str, draw: Draw) -> Result<(), String> {
    let mut canvas = Canvas::default();
    draw(&mut canvas, rows, title).map_err(|e| format!("{}: cannot draw the plot: {e}", path.display()))?;
    let png = canvas.png().map_err(|e| format!("{}: {e}", path.display()))?;
    cnn_as_mlp::atomic::write(path, &png).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}
