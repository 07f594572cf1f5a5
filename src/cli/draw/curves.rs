//! PNG plot of a run's curves: training and test loss (left), training and test accuracy (right), per
//! epoch.

use plotters::prelude::*;

use cnn_as_mlp::train::EpochMetrics;

/// Width and height of the curves' picture, in pixels.
const SIZE: (u32, u32) = (1000, 420);

/// The curves of `metrics` as PNG bytes. The picture is drawn in memory and encoded here, so the only
/// way to fail is a drawing error, reported as one plain line; writing the file is the caller's (atomic)
/// business.
pub fn curves_png(metrics: &[EpochMetrics], title: &str) -> Result<Vec<u8>, String> {
    super::register_font();
    let mut buf = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    draw(BitMapBackend::with_buffer(&mut buf, SIZE), metrics, title)
        .map_err(|e| format!("cannot draw the curves: {}", one_line(&e.to_string())))?;
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, SIZE.0, SIZE.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(|e| format!("cannot encode the curves as PNG: {e}"))?;
        wr.write_image_data(&buf).map_err(|e| format!("cannot encode the curves as PNG: {e}"))?;
    }
    Ok(out)
}

/// `s` on one line, without Rust's debug noise beyond the first line.
fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn draw(backend: BitMapBackend<'_>, metrics: &[EpochMetrics], title: &str) -> Result<(), Box<dyn std::error::Error>> {
    let root = backend.into_drawing_area();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize, v: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            step: epoch,
            loss: v,
            train_acc: 0.5,
            test_loss: v,
            test_acc: 0.5,
            img_per_s: 1.0,
            train_secs: 1.0,
            lr: 0.05,
            wall_secs: 1.0,
        }
    }

    /// The curves are drawn in memory: a PNG for no rows, one row, and rows with NaN or huge losses.
    #[test]
    fn curves_are_png_bytes_for_any_metrics() {
        for rows in [vec![], vec![row(1, 2.0)], vec![row(1, f64::NAN), row(2, 1e300), row(3, f64::INFINITY)]] {
            let png = curves_png(&rows, "t").unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{} rows", rows.len());
        }
    }
}
