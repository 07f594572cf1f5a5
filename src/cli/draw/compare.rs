//! The two PNG plots of a comparison: time against FLOPs, memory against FLOPs, log axes.

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

/// Time (ms) against MFLOP, one panel per product, one line per formulation.
pub fn draw_time(path: &Path, rows: &[Row], title: &str) -> Result<(), Box<dyn std::error::Error>> {
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

/// Writes a PNG drawn by `draw` atomically ([`cnn_as_mlp::atomic`]).
pub fn write_png(path: &Path, rows: &[Row], title: &str, draw: Draw) -> Result<(), String> {
    super::register_font();
    cnn_as_mlp::atomic::write_with(path, |tmp| draw(tmp, rows, title)).map_err(|f| match f {
        Failure::Fill(e) => format!("{}: cannot draw the plot: {e}", path.display()),
        Failure::Io(e) => format!("{}: cannot write: {e}", path.display()),
    })
}
