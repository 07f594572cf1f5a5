//! The crossover map of `compare --map`: where the sparse formulation wins and where it loses, over a grid of
//! single convolutions `C×S×S > conv(C, 3, pad=1)` (channels × spatial size × batch).
//!
//! Every cell is one [`run_case_only`] (the interleaved rounds of [`super::measure`]): the sparse engine at
//! kernel sparsities 0 and 0.9 ([`MAP_SPARSITY`], the random mask of `compare --sparsity`), direct and im2col at
//! sparsity 0 only. A masked kernel costs the dense engines the same work, so the cell's rows at sparsity 0.9
//! compare the pruned sparse layer with the dense engines' times at 0 (their `measured_at_sparsity` column
//! says so). The time of a formulation is the sum forward + input gradient + parameter gradient, each the
//! median of the repeats. A formulation that does not fit the memory limit is skipped and its row says
//! so; the cell's fastest engine is then chosen among those that ran.

use std::fmt::Write as _;

use super::grid::Case;
use super::measure::run_case_only;
use super::row::{Config, Status};
use crate::network::Engine;
use crate::spec::Spec;

/// The default channels of the map (input and output channels alike).
pub const CHANNELS: [usize; 6] = [3, 8, 16, 32, 64, 128];
/// The default spatial sizes (the input is `S×S`; the output too, with `pad=1`).
pub const SIZES: [usize; 4] = [8, 16, 32, 56];
/// The default batch sizes.
pub const BATCHES: [usize; 3] = [1, 8, 64];
/// The kernel sparsities of the sparse engine.
pub const MAP_SPARSITY: [f64; 2] = [0.0, 0.9];

/// The axes of a map.
#[derive(Clone, Debug, PartialEq)]
pub struct MapGrid {
    pub channels: Vec<usize>,
    pub sizes: Vec<usize>,
    pub batches: Vec<usize>,
}

impl Default for MapGrid {
    fn default() -> Self {
        MapGrid { channels: CHANNELS.to_vec(), sizes: SIZES.to_vec(), batches: BATCHES.to_vec() }
    }
}

impl MapGrid {
    /// Number of cells (channels × sizes × batches).
    pub fn cells(&self) -> usize {
        self.channels.len() * self.sizes.len() * self.batches.len()
    }
}

/// The layer of one cell: `C×S×S > conv(C,3,pad=1)`.
pub fn map_case(channels: usize, size: usize) -> Case {
    let text = format!("{channels}x{size}x{size} > conv({channels},3,pad=1)");
    let spec = Spec::parse(&text).expect("map specs parse");
    Case { name: format!("c{channels}-s{size}"), input: spec.input, layer: spec.layers[0] }
}

/// One formulation in one cell of the map at one kernel sparsity. Times in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct MapRow {
    pub channels: usize,
    pub spatial: usize,
    pub batch: usize,
    /// The kernel sparsity of the cell's row set (the sparse engine's mask).
    pub sparsity: f64,
    pub engine: Engine,
    pub forward_s: Option<f64>,
    pub input_grad_s: Option<f64>,
    pub param_grad_s: Option<f64>,
    pub status: Status,
    /// The sparsity this formulation was timed at: the row's own for the sparse engine, 0 for direct and im2col.
    pub measured_at_sparsity: f64,
    /// The engine with the smallest total of this cell and sparsity, among those that ran.
    pub fastest: Option<Engine>,
    /// The sparse engine's total divided by the smaller of direct's and im2col's (below 1: sparse wins).
    pub sparse_ratio: Option<f64>,
}

impl MapRow {
    /// Forward + input gradient + parameter gradient, when the formulation ran.
    pub fn total_s(&self) -> Option<f64> {
        if self.status != Status::Ran {
            return None;
        }
        Some(self.forward_s? + self.input_grad_s? + self.param_grad_s?)
    }
}

/// Measures every cell of `grid` (batch slowest, then channels, then sizes), `progress` told of each step.
/// Call inside the rayon pool whose threads are to be measured.
pub fn run_map(
    grid: &MapGrid,
    repeats: usize,
    memory_limit: usize,
    seed: u64,
    mut progress: impl FnMut(&str),
) -> Vec<MapRow> {
    let mut out = Vec::new();
    let n = grid.cells();
    let mut i = 0;
    for &batch in &grid.batches {
        for &channels in &grid.channels {
            for &size in &grid.sizes {
                i += 1;
                let case = map_case(channels, size);
                progress(&format!("map cell {i}/{n}: {} at batch {batch}", case.spec()));
                let cfg = Config { batch, repeats, memory_limit, seed, sparsity: MAP_SPARSITY.to_vec() };
                let rows = run_case_only(&case, &cfg, |s, e| e == Engine::Sparse || s == 0.0, false, &mut progress);
                out.extend(cell_rows(channels, size, batch, &rows));
            }
        }
    }
    out
}

/// The map rows of one cell from its measured rows: at each sparsity, sparse (timed there), direct and im2col
/// (timed at 0), with the fastest engine and the ratio filled in.
fn cell_rows(channels: usize, spatial: usize, batch: usize, measured: &[super::Row]) -> Vec<MapRow> {
    let mut out = Vec::new();
    for s in MAP_SPARSITY {
        let mut set: Vec<MapRow> = Engine::ALL
            .iter()
            .map(|&engine| {
                let at = if engine == Engine::Sparse { s } else { 0.0 };
                let r = measured.iter().find(|r| r.engine == engine && r.sparsity == at);
                MapRow {
                    channels,
                    spatial,
                    batch,
                    sparsity: s,
                    engine,
                    forward_s: r.and_then(|r| r.forward_s),
                    input_grad_s: r.and_then(|r| r.input_grad_s),
                    param_grad_s: r.and_then(|r| r.param_grad_s),
                    status: r.map_or(Status::NotApplicable("not measured"), |r| r.status.clone()),
                    measured_at_sparsity: at,
                    fastest: None,
                    sparse_ratio: None,
                }
            })
            .collect();
        decide(&mut set);
        out.extend(set);
    }
    out
}

/// Fills `fastest` and `sparse_ratio` of the rows of one cell and sparsity.
fn decide(set: &mut [MapRow]) {
    let fastest = set.iter().filter_map(|r| r.total_s().map(|t| (t, r.engine))).min_by(|a, b| a.0.total_cmp(&b.0));
    let sparse = set.iter().find(|r| r.engine == Engine::Sparse).and_then(MapRow::total_s);
    let dense =
        set.iter().filter(|r| r.engine != Engine::Sparse).filter_map(MapRow::total_s).min_by(|a, b| a.total_cmp(b));
    let ratio = match (sparse, dense) {
        (Some(s), Some(d)) if d > 0.0 => Some(s / d),
        _ => None,
    };
    for r in set.iter_mut() {
        r.fastest = fastest.map(|f| f.1);
        r.sparse_ratio = ratio;
    }
}

/// The columns of [`map_csv`].
pub const MAP_HEADER: &str = "channels,spatial,batch,sparsity,engine,forward_ms,input_grad_ms,param_grad_ms,total_ms,fastest,sparse_over_best_dense,status,measured_at_sparsity";

fn ms(v: Option<f64>) -> String {
    v.map_or(String::new(), |s| format!("{}", s * 1e3))
}

/// `compare-map.csv`: [`MAP_HEADER`], then one line per row: times in milliseconds, empty where not measured.
pub fn map_csv(rows: &[MapRow]) -> String {
    let mut s = format!("{MAP_HEADER}\n");
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.channels,
            r.spatial,
            r.batch,
            r.sparsity,
            r.engine.name(),
            ms(r.forward_s),
            ms(r.input_grad_s),
            ms(r.param_grad_s),
            ms(r.total_s()),
            r.fastest.map_or("", Engine::name),
            r.sparse_ratio.map_or(String::new(), |v| format!("{v}")),
            r.status,
            r.measured_at_sparsity
        );
    }
    s
}

/// `0.62×`, `2.1×`, `14×`.
pub fn ratio_label(r: f64) -> String {
    if r >= 9.95 {
        format!("{r:.0}×")
    } else if r >= 0.995 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

/// A time in milliseconds with about three significant digits.
pub fn ms_label(s: f64) -> String {
    let m = s * 1e3;
    if m >= 100.0 {
        format!("{m:.0} ms")
    } else if m >= 1.0 {
        format!("{m:.1} ms")
    } else {
        format!("{m:.3} ms")
    }
}

/// The distinct values of `f` over `rows`, in order of first appearance.
fn distinct<T: PartialEq + Copy>(rows: &[MapRow], f: impl Fn(&MapRow) -> T) -> Vec<T> {
    let mut v = Vec::new();
    for r in rows {
        if !v.contains(&f(r)) {
            v.push(f(r));
        }
    }
    v
}

/// The text of one cell: `fastest engine · ratio`, or why there is none.
pub fn cell_text(set: &[&MapRow]) -> String {
    let Some(first) = set.first() else { return "-".into() };
    let sparse_fits = set.iter().any(|r| r.engine == Engine::Sparse && !matches!(r.status, Status::DoesNotFit(_)));
    match (first.fastest, first.sparse_ratio) {
        (Some(e), Some(r)) => format!("{} {}", e.name(), ratio_label(r)),
        (Some(e), None) if !sparse_fits => format!("{} (sparse does not fit)", e.name()),
        (Some(e), None) => e.name().to_string(),
        (None, _) => "does not fit".into(),
    }
}

/// `compare-map.md`: for each sparsity and batch a table (channels down, spatial size across) of the fastest
/// engine and the ratio sparse ÷ best dense, then every cell's totals.
pub fn map_markdown(rows: &[MapRow], header: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{header}\n");
    s.push_str(
        "Each cell is one convolution `C×S×S > conv(C,3,pad=1)`; its time is forward + input gradient + parameter \
         gradient (each the median of the repeats). A cell names the fastest engine and the ratio of the sparse \
         engine's time to the best of direct and im2col: below 1× the sparse formulation wins, above 1× it loses by \
         that factor. At kernel sparsity 0.9 the sparse engine compiles a tenth of the taps (a seeded random mask); \
         direct and im2col are timed at sparsity 0, as a masked kernel costs them the same work.\n",
    );
    let (sizes, channels) = (distinct(rows, |r| r.spatial), distinct(rows, |r| r.channels));
    for sp in distinct(rows, |r| r.sparsity) {
        let here: Vec<&MapRow> = rows.iter().filter(|r| r.sparsity == sp).collect();
        let sets: Vec<&MapRow> = here.iter().filter(|r| r.engine == Engine::Sparse).copied().collect();
        let wins = sets.iter().filter(|r| r.fastest == Some(Engine::Sparse)).count();
        let _ = writeln!(
            s,
            "\n## Kernel sparsity {sp}: the sparse engine is the fastest in {wins} of {} cells\n",
            sets.len()
        );
        for b in distinct(rows, |r| r.batch) {
            let _ = writeln!(s, "Batch {b}:\n");
            s.push_str("| channels \\ S |");
            sizes.iter().for_each(|z| {
                let _ = write!(s, " {z} |");
            });
            s.push_str("\n|---|");
            sizes.iter().for_each(|_| s.push_str("---|"));
            s.push('\n');
            for &c in channels.iter().rev() {
                let _ = write!(s, "| {c} |");
                for &z in &sizes {
                    let set: Vec<&MapRow> =
                        here.iter().filter(|r| r.batch == b && r.channels == c && r.spatial == z).copied().collect();
                    let _ = write!(s, " {} |", if set.is_empty() { "-".into() } else { cell_text(&set) });
                }
                s.push('\n');
            }
            s.push('\n');
        }
    }
    s.push_str("\n## Every cell\n\n");
    s.push_str("| channels | S | batch | sparsity | sparse | direct | im2col | fastest | sparse ÷ best dense |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---|---:|\n");
    for chunk in rows.chunks(Engine::ALL.len()) {
        let r0 = &chunk[0];
        let t = |e: Engine| {
            chunk.iter().find(|r| r.engine == e).map_or("-".into(), |r| match (&r.status, r.total_s()) {
                (_, Some(t)) => ms_label(t),
                (Status::DoesNotFit(n), _) => format!("does not fit ({})", super::human_bytes(*n)),
                (st, None) => st.to_string(),
            })
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r0.channels,
            r0.spatial,
            r0.batch,
            r0.sparsity,
            t(Engine::Sparse),
            t(Engine::Direct),
            t(Engine::Im2col),
            r0.fastest.map_or("-", Engine::name),
            r0.sparse_ratio.map_or("-".into(), ratio_label)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Row;

    fn measured(engine: Engine, s: f64, t: Option<f64>) -> Row {
        let mut r = Row::new("c", "spec", engine);
        r.sparsity = s;
        match t {
            Some(t) => (r.forward_s, r.input_grad_s, r.param_grad_s) = (Some(t), Some(t), Some(t)),
            None => r.status = Status::DoesNotFit(123),
        }
        r
    }

    /// The fastest engine is the smallest total; the ratio is sparse over the best dense; a formulation that
    /// does not fit is left out of both.
    #[test]
    fn fastest_and_ratio() {
        let m = [
            measured(Engine::Sparse, 0.0, Some(3.0)),
            measured(Engine::Direct, 0.0, Some(2.0)),
            measured(Engine::Im2col, 0.0, Some(4.0)),
            measured(Engine::Sparse, 0.9, Some(1.0)),
        ];
        let rows = cell_rows(8, 16, 4, &m);
        assert_eq!(rows.len(), 6);
        assert!(rows[..3].iter().all(|r| r.fastest == Some(Engine::Direct) && r.sparse_ratio == Some(1.5)));
        assert!(rows[3..].iter().all(|r| r.fastest == Some(Engine::Sparse) && r.sparse_ratio == Some(0.5)));
        assert_eq!(rows[4].measured_at_sparsity, 0.0);
        assert_eq!(rows[4].total_s(), Some(6.0));
        let m = [
            measured(Engine::Sparse, 0.0, None),
            measured(Engine::Direct, 0.0, Some(2.0)),
            measured(Engine::Im2col, 0.0, None),
            measured(Engine::Sparse, 0.9, None),
        ];
        let rows = cell_rows(8, 16, 4, &m);
        assert!(rows.iter().all(|r| r.fastest == Some(Engine::Direct) && r.sparse_ratio.is_none()));
        let set: Vec<&MapRow> = rows[..3].iter().collect();
        assert_eq!(cell_text(&set), "direct (sparse does not fit)");
        assert_eq!(map_csv(&rows).lines().count(), 7);
    }

    #[test]
    fn labels() {
        assert_eq!([ratio_label(0.617), ratio_label(2.14), ratio_label(14.2)], ["0.62×", "2.1×", "14×"]);
        assert_eq!(map_case(3, 8).spec(), "3x8x8 > conv(3,3,pad=1)");
    }
}
