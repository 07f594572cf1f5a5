//! PNG plot of a run's curves: training and test loss (left), training and test accuracy (right), per
//! epoch.

use std::path::Path;

use plotters::prelude::*;

use cnn_as_mlp::atomic::Failure;
use cnn_as_mlp::train::EpochMetrics;

/// Draws the curves of `metrics` into the PNG `path`, written atomically ([`cnn_as_mlp::atomic`]).
pub fn plot_curves(path: &Path, metrics: &[EpochMetrics], title: &str) -> Result<(), String> {
    super::register_font();
    cnn_as_mlp::atomic::write_with(path, |tmp| draw(tmp, metrics, title)).map_err(|f| match f {
        Failure::Fill(e) => format!("cannot draw the plot: {e}"),
        Failure::Io(e) => format!("cannot write the plot: {e}"),
    })
}

fn draw(path: &Path, metrics: &[EpochMetrics], title: &str) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let (left, right) = root.split_horizontally(500);
    let x_max = metrics.iter().map(|m| m.epoch).max().unwrap_or(1).max(1) as f64;
    let x_min = metrics.iter().map(|m| m.epoch).min().unwrap_or(0).saturating_sub(1) as f64;
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let y_loss =
        metrics.iter().flat_map(|m| [finite(m.loss), finite(m.test_loss)]).fold(0.0f64, f64::max).max(1e-3) * 1.05;

    let mut chart = ChartBuilder::on(&left)
        .margin(12)
        .caption("loss", ("sans-serif", 16))
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(x_min..x_max, 0.0..y_loss)?;
    chart.configure_mesh().x_desc("epoch").draw()?;
    let series = |f: fn(&EpochMetrics) -> f64| metrics.iter().map(move |m| (m.epoch as f64, f(m))).collect::<Vec<_>>();
    chart
        .draw_series(LineSeries::new(series(|m| m.loss), &BLUE))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    chart
        .draw_series(LineSeries::new(series(|m| m.test_loss), &RED))?
        .label("test")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;

    let y_lo = metrics.iter().flat_map(|m| [m.train_acc, m.test_acc]).fold(1.0f64, f64::min).min(0.9) - 0.01;
    let mut chart = ChartBuilder::on(&right)
        .margin(12)
        .caption("accuracy", ("sans-serif", 16))
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(x_min..x_max, y_lo.max(0.0)..1.0)?;
    chart.configure_mesh().x_desc("epoch").draw()?;
    chart
        .draw_series(LineSeries::new(series(|m| m.train_acc), &BLUE))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    chart
        .draw_series(LineSeries::new(series(|m| m.test_acc), &RED))?
        .label("test")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}
