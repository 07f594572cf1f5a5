//! Tick positions and tick labels shared by the plots: integer epochs, decades on log axes, and one
//! notation per axis (never `1000` beside `1e4`).

use std::ops::Range;

use plotters::coord::ranged1d::{AsRangedCoord, DefaultFormatting, KeyPointHint, Ranged};

/// An axis (linear or log) with the ticks given, not the ones plotters would choose; labels come from the
/// chart's formatter ([`tick_formatter`]).
pub struct Ticked<R> {
    inner: R,
    ticks: Vec<f64>,
}

/// `range` (`lo..hi`, or `(lo..hi).log_scale()`) with ticks at `ticks`.
pub fn ticked<A: AsRangedCoord<Value = f64>>(range: A, ticks: Vec<f64>) -> Ticked<A::CoordDescType> {
    Ticked { inner: range.into(), ticks }
}

impl<R: Ranged<ValueType = f64>> Ranged for Ticked<R> {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // The ticks are the bold grid lines; no light lines between them.
        if hint.weight().allow_light_points() { Vec::new() } else { self.ticks.clone() }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }

    fn axis_pixel_range(&self, limit: (i32, i32)) -> Range<i32> {
        self.inner.axis_pixel_range(limit)
    }
}

/// Integer ticks from `lo` to `hi` (inclusive) at a step of 1, 2, 5, 10, 20, 50, … chosen so that at most
/// `max` ticks are drawn.
pub fn integer_ticks(lo: usize, hi: usize, max: usize) -> Vec<f64> {
    let span = hi.saturating_sub(lo).max(1);
    let mut decade = 1usize;
    let mut step;
    'search: loop {
        for m in [1, 2, 5] {
            step = m * decade;
            if span / step < max.max(2) {
                break 'search;
            }
        }
        decade *= 10;
    }
    let first = lo.div_ceil(step) * step;
    (first..=hi).step_by(step).map(|v| v as f64).collect()
}

/// Ticks at every multiple of a step of 1, 2 or 5 × 10ᵏ inside `[lo, hi]`, the smallest step giving at most
/// `max` ticks.
pub fn linear_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    assert!(lo < hi && lo.is_finite() && hi.is_finite(), "linear_ticks({lo}, {hi}): need lo < hi, finite");
    let mut e = ((hi - lo) / max.max(2) as f64).log10().floor() as i32 - 1;
    loop {
        for m in [1.0, 2.0, 5.0] {
            let step = m * 10f64.powi(e);
            let (a, b) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
            if b - a < max.max(2) as i64 {
                // Multiples computed as k · step, rounded to the step's precision (no 0.30000000000000004).
                let digits = (-e).max(0) as usize + 1;
                return (a..=b)
                    .map(|k| {
                        let v = k as f64 * step;
                        format!("{v:.digits$}").parse().unwrap_or(v)
                    })
                    .collect();
            }
        }
        e += 1;
    }
}

/// Ticks on a log axis over `[lo, hi]` (`0 < lo < hi`): the powers of ten inside, or with 2 and 5 (or every
/// mantissa 1 … 9) between them when fewer than three powers fall inside.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    assert!(lo > 0.0 && hi > lo && hi.is_finite(), "log_ticks({lo}, {hi}): need 0 < lo < hi < inf");
    let mantissas: [&[f64]; 3] = [&[1.0], &[1.0, 2.0, 5.0], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]];
    let (e0, e1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let mut ticks = Vec::new();
    for set in mantissas {
        ticks = (e0..=e1)
            .flat_map(|e| set.iter().map(move |m| m * 10f64.powi(e)))
            .filter(|v| (lo..=hi).contains(v))
            .collect();
        if ticks.len() >= 3 {
            break;
        }
    }
    ticks
}

/// One notation for every tick of an axis: plain decimals when every nonzero tick lies in
/// `[0.001, 10⁴)`, else `2e-4` / `1e4` style for all.
pub fn tick_formatter(ticks: &[f64]) -> impl Fn(&f64) -> String + use<> {
    let plain = ticks.iter().filter(|v| **v != 0.0).all(|v| (1e-3..1e4).contains(&v.abs()));
    move |v: &f64| {
        if *v == 0.0 {
            "0".into()
        } else if plain {
            let t = format!("{v:.4}");
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            let t = format!("{v:e}");
            // `2.5e-4` stays, `1e4` stays; rounding noise (`2.0000000000000004e-4`) is cut.
            match t.split_once('e') {
                Some((m, e)) if m.len() > 5 => format!("{:.2}e{e}", m.parse::<f64>().unwrap_or(0.0)),
                _ => t,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_ticks_are_integers_with_a_round_step() {
        assert_eq!(integer_ticks(1, 12, 12), (1..=12).map(f64::from).collect::<Vec<_>>());
        assert_eq!(integer_ticks(1, 1, 12), [1.0]);
        assert_eq!(integer_ticks(1, 30, 12), [5.0, 10.0, 15.0, 20.0, 25.0, 30.0]);
        assert_eq!(integer_ticks(0, 100, 12), [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]);
    }

    #[test]
    fn log_ticks_use_decades_then_fill_in() {
        assert_eq!(log_ticks(0.5, 2000.0), [1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(log_ticks(0.03, 0.9), [0.05, 0.1, 0.2, 0.5]);
        let close = log_ticks(0.25, 0.45);
        assert!(close.len() >= 2 && close.iter().all(|v| (0.25..=0.45).contains(v)), "{close:?}");
    }

    #[test]
    fn linear_ticks_use_a_round_step() {
        assert_eq!(linear_ticks(0.85, 1.0, 8), [0.86, 0.88, 0.9, 0.92, 0.94, 0.96, 0.98, 1.0]);
        assert_eq!(linear_ticks(0.0, 1.0, 8), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
    }

    #[test]
    fn one_notation_per_axis() {
        let f = tick_formatter(&[1.0, 10.0, 100.0, 1000.0]);
        assert_eq!([f(&1.0), f(&1000.0), f(&0.05)], ["1", "1000", "0.05"]);
        let f = tick_formatter(&[100.0, 1000.0, 1e4, 1e5]);
        assert_eq!([f(&100.0), f(&1000.0), f(&1e4)], ["1e2", "1e3", "1e4"]);
        let f = tick_formatter(&[2e-4, 5e-4, 1e-3]);
        assert_eq!([f(&2e-4), f(&1e-3)], ["2e-4", "1e-3"]);
    }
}
