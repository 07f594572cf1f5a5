//! Scatter segments: runs of consecutive rows of a tied matrix whose nonzeros read disjoint, increasing ranges
//! of parameters, so that the scatter of the parameter gradient runs them in parallel.

/// Rows `rows.0..rows.1` whose nonzeros read only parameters `params.0..params.1` (`(u32::MAX, u32::MAX)`
/// when they read none); the parameter ranges of successive segments are disjoint and increasing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScatterSegment {
    pub rows: (u32, u32),
    pub params: (u32, u32),
}

/// Cuts rows into segments, given the range of parameters each row reads (`ranges[r]`, `None`: none): a row
/// starts a new segment when every parameter it reads lies above every parameter read so far; otherwise it
/// joins the last segment, which absorbs earlier segments its range now overlaps. Rows that read no parameter
/// join the last segment.
pub(super) fn cut(ranges: impl IntoIterator<Item = Option<(u32, u32)>>) -> Vec<ScatterSegment> {
    const NONE: (u32, u32) = (u32::MAX, u32::MAX);
    let mut segments: Vec<ScatterSegment> = Vec::new();
    for (r, range) in ranges.into_iter().enumerate() {
        let row_end = r as u32 + 1;
        let Some((lo, hi)) = range else {
            match segments.last_mut() {
                Some(last) => last.rows.1 = row_end,
                None => segments.push(ScatterSegment { rows: (r as u32, row_end), params: NONE }),
            }
            continue;
        };
        // Parameter ranges of the segments increase: the last that reads any holds the highest.
        let highest = segments.iter().rev().find(|s| s.params != NONE).map(|s| s.params.1);
        if highest.is_none_or(|h| lo >= h) {
            segments.push(ScatterSegment { rows: (r as u32, row_end), params: (lo, hi) });
            continue;
        }
        let mut last = segments.pop().expect("a segment reads parameters");
        last.rows.1 = row_end;
        last.params = if last.params == NONE { (lo, hi) } else { (last.params.0.min(lo), last.params.1.max(hi)) };
        while let Some(prev) = segments.last().filter(|p| p.params != NONE && p.params.1 > last.params.0) {
            last.rows.0 = prev.rows.0;
            last.params = (prev.params.0.min(last.params.0), prev.params.1.max(last.params.1));
            segments.pop();
        }
        segments.push(last);
    }
    segments
}
