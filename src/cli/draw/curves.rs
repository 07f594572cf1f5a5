//! PNG plots of training curves: one run's (`curves.png`, written with every epoch) or several runs
//! overlaid (`cnn-as-mlp plot`).
//!
//! Two panels over integer epochs, a marker at each epoch: the loss on a log scale (left) and the accuracy
//! (right). Training curves are dashed with hollow markers, test curves solid with filled markers. The
//! legend and the notes sit below the panels, so they never cover a curve.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{integer_ticks, linear_ticks, log_ticks, tick_formatter, ticked};
use cnn_as_mlp::train::EpochMetrics;

/// Width of the picture and height of the panels, in pixels.
const WIDTH: u32 = 1000;
const PANEL_HEIGHT: u32 = 400;
const TITLE_HEIGHT: u32 = 34;
/// Height of one legend or note row.
const ROW: u32 = 22;
/// The longest note line, in characters (13-pixel text across the picture).
const NOTE_CHARS: usize = 125;

/// Colours of the runs of an overlay, in order (matplotlib's `tab10`).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The note every curve picture carries about its training curves.
pub const TRAIN_NOTE: &str =
    "train: running mean over the epoch's batches, as the parameters move; test: after the epoch";

/// One curve in both panels.
struct Line {
    color: RGBColor,
    /// A training curve: dashed, hollow markers; else a test curve: solid, filled markers.
    train: bool,
    /// (epoch, loss) and (epoch, accuracy).
    loss: Vec<(f64, f64)>,
    acc: Vec<(f64, f64)>,
}

impl Line {
    fn of(metrics: &[EpochMetrics], color: RGBColor, train: bool) -> Line {
        let pick = |f: fn(&EpochMetrics) -> f64| metrics.iter().map(|m| (m.epoch as f64, f(m))).collect();
        if train {
            Line { color, train, loss: pick(|m| m.loss), acc: pick(|m| m.train_acc) }
        } else {
            Line { color, train, loss: pick(|m| m.test_loss), acc: pick(|m| m.test_acc) }
        }
    }
}

/// A legend row: a colour swatch, or a line sample in the style of a training or test curve.
enum Key {
    Swatch(RGBColor),
    Sample(RGBColor, bool),
}

struct Figure {
    title: String,
    lines: Vec<Line>,
    legend: Vec<(Key, String)>,
    notes: Vec<String>,
}

/// The curves of one run (`curves.png`): training (dashed) and test (solid) loss and accuracy; `notes` (the
/// spec, the settings) go below the legend.
pub fn curves_png(metrics: &[EpochMetrics], title: &str, notes: &[String]) -> Result<Vec<u8>, String> {
    let (train, test) = (PALETTE[0], PALETTE[3]);
    figure_png(&Figure {
        title: title.into(),
        lines: vec![Line::of(metrics, train, true), Line::of(metrics, test, false)],
        legend: vec![
            (Key::Sample(train, true), "train (running mean over the epoch)".into()),
            (Key::Sample(test, false), "test".into()),
        ],
        notes: notes.iter().cloned().chain([TRAIN_NOTE.to_string()]).collect(),
    })
}

/// Several runs overlaid (`cnn-as-mlp plot`): run `i` in [`PALETTE`]`[i % 10]`, labelled `runs[i].0`; `notes`
/// go below the legend.
pub fn runs_png(runs: &[(String, Vec<EpochMetrics>)], title: &str, notes: &[String]) -> Result<Vec<u8>, String> {
    let mut lines = Vec::new();
    let mut legend = Vec::new();
    for (i, (label, metrics)) in runs.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        lines.push(Line::of(metrics, c, true));
        lines.push(Line::of(metrics, c, false));
        legend.push((Key::Swatch(c), label.clone()));
    }
    legend.push((Key::Sample(BLACK, false), "test".into()));
    legend.push((Key::Sample(BLACK, true), "train (running mean over the epoch)".into()));
    let mut all_notes = notes.to_vec();
    all_notes.push(TRAIN_NOTE.into());
    figure_png(&Figure { title: title.into(), lines, legend, notes: all_notes })
}

/// Draws a figure in memory and encodes it, so the only way to fail is a drawing error, reported as one
/// plain line; writing the file is the caller's (atomic) business.
fn figure_png(fig: &Figure) -> Result<Vec<u8>, String> {
    super::register_font();
    let height = TITLE_HEIGHT + PANEL_HEIGHT + 12 + ROW * (fig.legend.len() + wrapped(&fig.notes).len()) as u32;
    let mut buf = vec![0u8; WIDTH as usize * height as usize * 3];
    draw(BitMapBackend::with_buffer(&mut buf, (WIDTH, height)).into_drawing_area(), fig)
        .map_err(|e| format!("cannot draw the curves: {}", e.to_string().lines().next().unwrap_or_default()))?;
    super::encode_png(&buf, WIDTH, height, png::Compression::Default)
}

fn draw(root: DrawingArea<BitMapBackend<'_>, Shift>, fig: &Figure) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let (top, legend) = root.split_vertically(TITLE_HEIGHT + PANEL_HEIGHT);
    let panels = top.titled(&fig.title, ("sans-serif", 20))?;
    let (left, right) = panels.split_horizontally(WIDTH / 2);
    let epochs = fig.lines.iter().flat_map(|l| l.loss.iter().map(|p| p.0 as usize));
    let (e0, e1) = epochs.fold((usize::MAX, 0), |(a, b), e| (a.min(e), b.max(e)));
    let (e0, e1) = if e0 > e1 { (1, 1) } else { (e0, e1) };
    let x_ticks = integer_ticks(e0, e1, 12);
    let x_range = e0 as f64 - 0.4..e1 as f64 + 0.4;

    // Loss: log scale over the finite positive values.
    let losses = fig.lines.iter().flat_map(|l| l.loss.iter().map(|p| p.1)).filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = losses.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo / 1.4, hi * 1.4) } else { (0.1, 10.0) };
    let ticks = log_ticks(lo, hi);
    let (fx, fy) = (tick_formatter(&x_ticks), tick_formatter(&ticks));
    let mut chart = ChartBuilder::on(&left)
        .margin(12)
        .caption("loss (log scale)", ("sans-serif", 16))
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(ticked(x_range.clone(), x_ticks.clone()), ticked((lo..hi).log_scale(), ticks))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss")
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .label_style(("sans-serif", 13))
        .draw()?;
    for l in &fig.lines {
        let pts: Vec<(f64, f64)> = l.loss.iter().copied().filter(|p| p.1.is_finite() && p.1 > 0.0).collect();
        draw_line(&mut chart, l, pts)?;
    }

    // Accuracy: linear, from a round value below the lowest up to 1.
    let accs = fig.lines.iter().flat_map(|l| l.acc.iter().map(|p| p.1)).filter(|v| v.is_finite());
    let lowest = accs.fold(1.0f64, f64::min);
    let lo = ((lowest - 0.02) * 20.0).floor().max(0.0) / 20.0;
    let ticks = linear_ticks(lo, 1.0, 8);
    let fy = tick_formatter(&ticks);
    let mut chart = ChartBuilder::on(&right)
        .margin(12)
        .caption("accuracy", ("sans-serif", 16))
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(ticked(x_range, x_ticks), ticked(lo..1.005, ticks))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("accuracy")
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .label_style(("sans-serif", 13))
        .draw()?;
    for l in &fig.lines {
        let pts: Vec<(f64, f64)> = l.acc.iter().copied().filter(|p| p.1.is_finite()).collect();
        draw_line(&mut chart, l, pts)?;
    }

    // Legend and notes, below the panels.
    let text = ("sans-serif", 14).into_font();
    let mut y = 6i32;
    for (key, label) in &fig.legend {
        let (x, mid) = (70i32, y + ROW as i32 / 2);
        match *key {
            Key::Swatch(c) => {
                legend.draw(&Rectangle::new([(x, mid - 6), (x + 34, mid + 6)], c.filled()))?;
            }
            Key::Sample(c, train) => {
                let style = c.stroke_width(2);
                if train {
                    for dx in [0, 14, 28] {
                        legend.draw(&PathElement::new(vec![(x + dx, mid), (x + dx + 7, mid)], style))?;
                    }
                    legend.draw(&Circle::new((x + 17, mid), 4, style))?;
                } else {
                    legend.draw(&PathElement::new(vec![(x, mid), (x + 34, mid)], style))?;
                    legend.draw(&Circle::new((x + 17, mid), 4, c.filled()))?;
                }
            }
        }
        legend.draw(&Text::new(label.as_str(), (x + 46, mid - 8), text.clone()))?;
        y += ROW as i32;
    }
    let note = ("sans-serif", 13).into_font().color(&RGBColor(80, 80, 80));
    for n in wrapped(&fig.notes) {
        legend.draw(&Text::new(n, (70, y + 4), note.clone()))?;
        y += ROW as i32;
    }
    root.present()?;
    Ok(())
}

/// The notes cut into lines of at most [`NOTE_CHARS`] characters, at spaces.
fn wrapped(notes: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    for n in notes {
        let mut line = String::new();
        for word in n.split(' ') {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > NOTE_CHARS {
                lines.push(std::mem::take(&mut line));
                line.push_str("  ");
            }
            if !line.is_empty() && !line.ends_with("  ") {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

/// Draws one curve into a panel: a line (dashed for training) and a marker at each epoch.
fn draw_line<'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    l: &Line,
    pts: Vec<(f64, f64)>,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let style = l.color.stroke_width(2);
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    if l.train {
        chart.draw_series(DashedLineSeries::new(pts.clone(), 7, 5, style)).map_err(e)?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, style))).map_err(e)?;
    } else {
        chart.draw_series(LineSeries::new(pts.clone(), style)).map_err(e)?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, l.color.filled()))).map_err(e)?;
    }
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
            let png = curves_png(&rows, "t", &["spec".into()]).unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{} rows", rows.len());
            let runs = vec![("a".to_string(), rows.clone()), ("b".to_string(), rows.clone())];
            let png = runs_png(&runs, "t", &["n".into()]).unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{} rows", rows.len());
        }
    }
}
