//! The PNG plots of a comparison: time against FLOPs, memory against FLOPs (log axes, at the smallest
//! sparsity measured), and time against kernel sparsity.

use cnn_as_mlp::atomic::Failure;
use cnn_as_mlp::compare::{Row, Status};
use cnn_as_mlp::network::Engine;
use plotters::prelude::*;
use std::path::Path;

fn color(e: Engine) -> RGBColor {
    match e {
        Engine::Sparse => RGBColor(214, 39, 40),
        Engine::Direct => RGBColor(31, 119, 180),
        Engine::Im2col => RGBColor(44, 160, 44),
    }
}

type Series = (String, RGBColor, Vec<(f64, f64)>);
type Getter = fn(&Row) -> Option<f64>;
/// A series whose label goes in the legend only when it is `Some`.
type LabelledSeries = (Option<String>, RGBColor, Vec<(f64, f64)>);

/// Draws a plot of the rows into a PNG file.
pub type Draw = fn(&Path, &[Row], &str) -> Result<(), Box<dyn std::error::Error>>;

fn range(series: &[Series], f: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
    let v = series.iter().flat_map(|s| s.2.iter().map(&f));
    let (lo, hi) = v.fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    if lo.is_finite() && hi > 0.0 { (lo / 2.0, hi * 2.0) } else { (1.0, 10.0) }
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let (x0, x1) = range(series, |p| p.0);
    let (y0, y1) = range(series, |p| p.1);
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .caption(caption, ("sans-serif", 16))
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("MFLOP per product (2·nnz·batch)")
        .y_desc(y_desc)
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .draw()?;
    for (name, c, pts) in series {
        let c = *c;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}

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

fn sorted(mut v: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    v.retain(|p| p.0 > 0.0 && p.1 > 0.0);
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// The rows at the smallest sparsity measured (the layers as they are, without `--sparsity`).
fn least_sparse(rows: &[Row]) -> Vec<Row> {
    let s0 = rows.iter().map(|r| r.sparsity).fold(f64::INFINITY, f64::min);
    rows.iter().filter(|r| r.sparsity == s0).cloned().collect()
}

/// Time (ms) against MFLOP, one panel per product, one line per formulation.
pub fn draw_time(path: &Path, rows: &[Row], title: &str) -> Result<(), Box<dyn std::error::Error>> {
    let rows = &least_sparse(rows)[..];
    let root = BitMapBackend::new(path, (1500, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let panels = root.split_evenly((1, 3));
    let getters: [(&str, Getter); 3] = [
        ("forward", |r| r.forward_s),
        ("input gradient", |r| r.input_grad_s),
        ("parameter gradient", |r| r.param_grad_s),
    ];
    for (area, (caption, get)) in panels.iter().zip(getters) {
        let series: Vec<Series> = Engine::ALL
            .iter()
            .map(|&e| {
                let pts = rows
                    .iter()
                    .filter(|r| r.engine == e && r.status == Status::Ran)
                    .filter_map(|r| get(r).map(|t| (r.flops / 1e6, t * 1e3)))
                    .collect();
                (e.name().to_string(), color(e), sorted(pts))
            })
            .collect();
        panel(area, caption, "median time (ms)", &series)?;
    }
    root.present()?;
    Ok(())
}

/// Bytes against MFLOP: the sparse index (compiled, or estimated where it does not fit), im2col's scratch
/// (col and δcol), the parameters.
pub fn draw_memory(path: &Path, rows: &[Row], title: &str) -> Result<(), Box<dyn std::error::Error>> {
    let rows = &least_sparse(rows)[..];
    let root = BitMapBackend::new(path, (800, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let pick = |e: Engine, f: fn(&Row) -> Option<f64>| {
        sorted(rows.iter().filter(|r| r.engine == e).filter_map(|r| f(r).map(|b| (r.flops / 1e6, b))).collect())
    };
    let series: Vec<Series> = vec![
        (
            "sparse index (W, Wᵀ, groups)".into(),
            color(Engine::Sparse),
            pick(Engine::Sparse, |r| match r.status {
                Status::Ran => Some(r.index_bytes as f64),
                _ => None,
            }),
        ),
        (
            "sparse index, estimate".into(),
            RGBColor(255, 152, 150),
            pick(Engine::Sparse, |r| r.estimated_bytes.map(|b| b as f64)),
        ),
        (
            "im2col col + δcol scratch".into(),
            color(Engine::Im2col),
            pick(Engine::Im2col, |r| match r.status {
                Status::NotApplicable(_) => None,
                _ => Some(r.index_bytes.max(1) as f64),
            }),
        ),
        (
            "parameters (kernel + bias)".into(),
            RGBColor(90, 90, 90),
            pick(Engine::Direct, |r| Some(r.param_bytes as f64)),
        ),
    ];
    panel(&root, "memory", "bytes", &series)?;
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
pub fn draw_sparsity(path: &Path, rows: &[Row], title: &str) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (1500, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&format!("time against kernel sparsity; {title}"), ("sans-serif", 20))?;
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
    super::register_font();
    cnn_as_mlp::atomic::write_with(path, |tmp| draw(tmp, rows, title)).map_err(|f| match f {
        Failure::Fill(e) => format!("{}: cannot draw the plot: {e}", path.display()),
        Failure::Io(e) => format!("{}: cannot write: {e}", path.display()),
    })
}
