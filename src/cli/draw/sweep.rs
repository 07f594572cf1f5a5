//! PNG plot of a sweep: every run's training loss (left) and test accuracy (right) per epoch, one colour
//! per setting (a grid point less its seed), so the spread over seeds shows as a bundle of lines.

use std::path::Path;

use plotters::prelude::*;

use super::Canvas;
use cnn_as_mlp::train::EpochMetrics;

/// Settings in order, each with its runs as (seed, metrics per epoch).
pub type Groups = [(String, Vec<(u64, Vec<EpochMetrics>)>)];

/// Draws the curves of every run into the PNG `path`, written atomically ([`cnn_as_mlp::atomic`]).
pub fn plot_sweep(path: &Path, groups: &Groups) -> Result<(), String> {
    let mut canvas = Canvas::default();
    draw(&mut canvas, groups).map_err(|e| format!("cannot draw the plot: {e}"))?;
    let png = canvas.png()?;
    cnn_as_mlp::atomic::write(path, &png).map_err(|e| format!("cannot write the plot: {e}"))
}

fn colour(i: usize) -> RGBColor {
    let [r, g, b] = super::picture::category_colour(i as u32);
    RGBColor(r, g, b)
}

fn draw(canvas: &mut Canvas, groups: &Groups) -> Result<(), Box<dyn std::error::Error>> {
    let root = canvas.area(1100, 460);
    root.fill(&WHITE)?;
    let root = root.titled("sweep: every run, one colour per setting", ("sans-serif", 20))?;
    let (left, right) = root.split_horizontally(550);
    let all = || groups.iter().flat_map(|(_, runs)| runs.iter().flat_map(|(_, m)| m.iter()));
    let x_max = all().map(|m| m.epoch).max().unwrap_or(1).max(1) as f64;
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let y_loss = all().map(|m| finite(m.loss)).fold(0.0f64, f64::max).max(1e-3) * 1.05;
    let y_lo = all().map(|m| m.test_acc).fold(1.0f64, f64::min).min(0.9) - 0.01;

    type Get = fn(&EpochMetrics) -> f64;
    let panels: [(&DrawingArea<BitMapBackend, _>, &str, Get, std::ops::Range<f64>); 2] = [
        (&left, "training loss", |m| m.loss, 0.0..y_loss),
        (&right, "test accuracy", |m| m.test_acc, y_lo.max(0.0)..1.0),
    ];
    for (area, caption, get, y) in panels {
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .caption(caption, ("sans-serif", 16))
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..x_max, y)?;
        chart.configure_mesh().x_desc("epoch").draw()?;
        for (g, (setting, runs)) in groups.iter().enumerate() {
            let c = colour(g);
            for (r, (_, m)) in runs.iter().enumerate() {
                let pts: Vec<(f64, f64)> = m.iter().map(|e| (e.epoch as f64, get(e))).collect();
                let s = chart.draw_series(LineSeries::new(pts, c.stroke_width(2)))?;
                if r == 0 {
                    s.label(setting.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c));
                }
            }
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
