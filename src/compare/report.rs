//! The report of `compare`: byte counts parsed and printed, the header line, the Markdown table and the CSV.

use std::fmt::Write as _;

use super::row::{Config, Row, Status};
use crate::network::Engine;

/// Parses a byte count: an integer, optionally followed by `k`, `M`, `G` (powers of 1000) or `KiB`,
/// `MiB`, `GiB` (powers of 1024).
pub fn parse_bytes(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "k" | "K" | "kB" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `1.2 MiB`-style size ([`crate::budget::human`]).
pub fn human_bytes(n: usize) -> String {
    crate::budget::human(n as u128)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| {
        let m = s * 1e3;
        if m >= 100.0 {
            format!("{m:.0}")
        } else if m >= 1.0 {
            format!("{m:.2}")
        } else {
            format!("{m:.3}")
        }
    })
}

fn sci(v: Option<f64>) -> String {
    v.map_or("-".into(), |d| if d == 0.0 { "0".into() } else { format!("{d:.1e}") })
}

/// The header line of the report.
pub fn header(cfg: &Config, threads: usize, machine: &str) -> String {
    format!(
        "batch {}, threads {threads}, repeats {} (median of interleaved rounds after 1 warm-up), f32, seed {}; machine: {machine}; memory limit {} bytes ({})",
        cfg.batch,
        cfg.repeats,
        cfg.seed,
        cfg.memory_limit,
        human_bytes(cfg.memory_limit)
    )
}

/// The Markdown report: header line, notes, and one table row per layer and formulation.
pub fn markdown(rows: &[Row], header: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{header}\n");
    s.push_str(
        "| layer | sparsity | formulation | forward ms | input grad ms | param grad ms | compile ms | index bytes | param bytes | nnz | MFLOP | max abs diff fwd / dx / dθ | status |\n",
    );
    s.push_str("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    for r in rows.iter().filter(|r| r.layer != "total") {
        let index = match (r.engine, &r.status) {
            (_, Status::NotApplicable(_)) => "-".to_string(),
            (Engine::Sparse, Status::DoesNotFit(n)) => format!("({}, est.)", human_bytes(*n)),
            (Engine::Im2col, Status::DoesNotFit(n)) => format!("({} scratch)", human_bytes(*n)),
            (Engine::Im2col, _) => format!("{} scratch", human_bytes(r.index_bytes)),
            _ => human_bytes(r.index_bytes),
        };
        let diffs = if r.status == Status::Ran {
            format!("{} / {} / {}", sci(r.diff_forward), sci(r.diff_input_grad), sci(r.diff_param_grad))
        } else {
            "-".into()
        };
        let _ = writeln!(
            s,
            "| {} `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {} | {} |",
            r.layer,
            r.spec,
            r.sparsity,
            match &r.layout {
                Some(l) => format!("{} ({l})", r.engine.name()),
                None => r.engine.name().to_string(),
            },
            ms(r.forward_s),
            ms(r.input_grad_s),
            ms(r.param_grad_s),
            ms(r.compile_s),
            index,
            human_bytes(r.param_bytes),
            r.nnz,
            r.flops / 1e6,
            diffs,
            r.status
        );
    }
    s.push_str(
        "\nTimes are medians in milliseconds; MFLOP is `2·nnz·batch`, one product of the sparse formulation. \
         Index bytes: the compiled matrix `W`, `Wᵀ`, their row groups and the kernels' tables (sparse; estimated \
         from the geometry when it does not fit); im2col's scratch, the column buffer and its gradient, \
         `B·P·Q·4` bytes each, which the layer keeps between calls; nothing for direct. Param bytes: kernel and bias. \
         Differences are against the direct engine (itself checked against the reference written from the \
         definitions). Pools have no parameters and no im2col lowering. Sparsity: the fraction of kernel entries a \
         random mask removes (the sparse formulation compiles only the kept taps; direct and im2col multiply by \
         the masked kernel, as a pruned PyTorch layer does).\n",
    );
    s.push_str(&floors(rows));
    s.push_str(&losses(rows));
    let totals: Vec<&Row> = rows.iter().filter(|r| r.layer == "total").collect();
    if !totals.is_empty() {
        whole_network(&mut s, &totals);
    }
    s
}

/// The pruned sparse rows against what pruning can give (empty without such rows): the speed-up over the
/// sparse formulation's own dense row (sparsity 0, same layer), and the bound on it,
/// `min(1/(1−s), dense ÷ floor)` — the work left, and the zero-work floor's time (a mask that keeps
/// nothing: reading and writing the activations). Attained is speed-up ÷ bound.
pub fn floors(rows: &[Row]) -> String {
    let pruned: Vec<&Row> =
        rows.iter().filter(|r| r.engine == Engine::Sparse && r.sparsity > 0.0 && r.floor_s.is_some()).collect();
    if pruned.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "\nPruned products against their floor (forward + input grad + param grad, ms): the speed-up over the \
         sparse formulation at sparsity 0, and its bound `min(1/(1−s), dense ÷ floor)`, where the floor is the \
         same layer compiled with a mask that keeps nothing (reading and writing the activations), timed in the \
         same rounds.\n\n| layer | sparsity | dense ms | pruned ms | floor ms | speed-up | bound | attained |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in pruned {
        let dense = rows
            .iter()
            .find(|d| d.engine == Engine::Sparse && d.sparsity == 0.0 && d.layer == r.layer && d.spec == r.spec)
            .and_then(Row::total_s);
        let (pruned_s, floor_s) = (r.total_s(), r.floor_s);
        let speedup = dense.zip(pruned_s).map(|(d, p)| d / p);
        let bound = dense.zip(floor_s).map(|(d, f)| (1.0 / (1.0 - r.sparsity)).min(d / f));
        let ratio = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.2}×"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.layer,
            r.sparsity,
            ms(dense),
            ms(pruned_s),
            ms(floor_s),
            ratio(speedup),
            ratio(bound),
            speedup.zip(bound).map_or("-".into(), |(a, b)| format!("{:.0}%", 100.0 * a / b)),
        );
    }
    s
}

/// One paragraph naming every product where the sparse formulation is slower than the fastest other
/// formulation that ran, with both times, or saying that there is none.
pub fn losses(rows: &[Row]) -> String {
    type Product = (&'static str, fn(&Row) -> Option<f64>);
    let products: [Product; 3] =
        [("forward", |r| r.forward_s), ("input grad", |r| r.input_grad_s), ("param grad", |r| r.param_grad_s)];
    let mut lost = Vec::new();
    for sparse in rows.iter().filter(|r| r.engine == Engine::Sparse && r.status == Status::Ran && r.layer != "total") {
        let others = rows.iter().filter(|r| {
            r.layer == sparse.layer && r.spec == sparse.spec && r.engine != Engine::Sparse && r.status == Status::Ran
        });
        for (name, get) in products {
            let Some(mine) = get(sparse) else { continue };
            let best = others.clone().filter_map(|r| get(r).map(|t| (t, r.engine))).min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((t, engine)) = best
                && t < mine
            {
                lost.push(format!(
                    "{} {name} ({} ms against {} ms on {})",
                    sparse.layer,
                    ms(Some(mine)),
                    ms(Some(t)),
                    engine.name()
                ));
            }
        }
    }
    if lost.is_empty() {
        "\nThe sparse formulation is the fastest on every product of every layer that ran here.\n".into()
    } else {
        format!("\nWhere the sparse formulation is slower than another: {}.\n", lost.join("; "))
    }
}

/// The `total` rows of `compare --model`: one line per engine.
fn whole_network(s: &mut String, totals: &[&Row]) {
    let _ = writeln!(s, "\nWhole network `{}`:\n", totals[0].spec);
    s.push_str("| formulation | build ms | training step ms | index bytes | peak resident | param bytes | nnz | max abs diff dθ | status |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---|---|\n");
    for r in totals {
        let index = match (&r.status, r.engine) {
            (Status::DoesNotFit(n), _) => format!("(needs {} in all, est.)", human_bytes(*n)),
            (_, Engine::Im2col) => format!("{} scratch", human_bytes(r.index_bytes)),
            _ => human_bytes(r.index_bytes),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.engine.name(),
            ms(r.compile_s),
            ms(r.step_s),
            index,
            r.peak_bytes.map_or("-".into(), human_bytes),
            human_bytes(r.param_bytes),
            r.nnz,
            sci(r.diff_param_grad),
            r.status
        );
    }
    s.push_str(
        "\nBuild: every layer of the network constructed (the sparse engine compiles its matrices). Training step: \
         forward, cross-entropy, backward and an SGD step with momentum on one batch of random images, median \
         over the repeats. Peak resident: the process's `VmHWM` from the start of that engine's build (reset \
         through `/proc/self/clear_refs`), so it includes the batch and the process's own baseline. dθ: the \
         largest difference of the first gradient from the direct engine's, same parameters and batch.\n",
    );
}

/// The CSV report: a header, then one line per layer and formulation, raw numbers (seconds, bytes). Text
/// holding a comma or a quote (a spec, a one-layer spec given as a layer name) is quoted (RFC 4180).
pub fn csv(rows: &[Row]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).expect("a row serializes");
    }
    if rows.is_empty() {
        w.write_record(HEADER).expect("writes to memory");
    }
    String::from_utf8(w.into_inner().expect("writes to memory")).expect("UTF-8")
}

/// The columns of [`csv`](fn@csv) (the names of [`Row`]'s fields in the file).
const HEADER: [&str; 21] = [
    "layer",
    "spec",
    "sparsity",
    "formulation",
    "status",
    "compile_s",
    "forward_s",
    "input_grad_s",
    "param_grad_s",
    "index_bytes",
    "estimated_index_bytes",
    "param_bytes",
    "nnz",
    "flops",
    "max_diff_forward",
    "max_diff_input_grad",
    "max_diff_param_grad",
    "step_s",
    "peak_rss_bytes",
    "layout",
    "floor_s",
];

/// Reads the text [`csv()`] wrote back into rows (to redraw the plots of a comparison without measuring
/// again), by the names in its header: files written before the `sparsity`, `step_s` and `peak_rss_bytes`
/// columns read with sparsity 0 and the others empty. A malformed line is reported with its number.
pub fn read_csv(text: &str) -> Result<Vec<Row>, String> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let head = r.headers().map_err(|e| format!("line 1: {e}"))?.clone();
    if head.get(0) != Some("layer") {
        return Err("line 1 is not the header of compare.csv".into());
    }
    let bad = |e: csv::Error| {
        let line = e.position().map_or(0, |p| p.line());
        match e.kind() {
            csv::ErrorKind::Deserialize { err, .. } => match err.field().and_then(|j| head.get(j as usize)) {
                Some(name) if !matches!(err.kind(), csv::DeserializeErrorKind::Message(_)) => {
                    format!("line {line}: {name}: {}", err.kind())
                }
                _ => format!("line {line}: {}", err.kind()),
            },
            csv::ErrorKind::UnequalLengths { len, expected_len, .. } => {
                format!("line {line}: {len} fields, the header names {expected_len}")
            }
            _ => format!("line {line}: {e}"),
        }
    };
    r.deserialize().map(|row| row.map_err(bad)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `csv` writes, `read_csv` reads back and writes again unchanged (a layer name with commas and
    /// quotes included); a file written before the `sparsity`, `step_s` and `peak_rss_bytes` columns
    /// (tests/fixtures/compare-before-sparsity.csv, an older report that holds every status) reads with sparsity 0 and the others empty.
    #[test]
    fn csv_reads_back() {
        let old = include_str!("../../tests/fixtures/compare-before-sparsity.csv");
        let mut rows = read_csv(old).unwrap();
        assert_eq!(rows.len(), old.lines().count() - 1);
        assert!(rows.iter().all(|r| r.sparsity == 0.0
            && r.step_s.is_none()
            && r.peak_bytes.is_none()
            && r.layout.is_none()
            && r.floor_s.is_none()));
        rows[0].layer = "8x6x6 > conv(8,3,pad=1) \"q\"".into();
        rows[1].sparsity = 0.9;
        let text = csv(&rows);
        assert_eq!(csv(&read_csv(&text).unwrap()), text);
        for (a, b) in old.lines().skip(3).zip(text.lines().skip(3)) {
            let (layer, rest) = a.split_once(',').unwrap();
            // The spec was always quoted; it is now quoted where it holds a comma (RFC 4180's rule).
            let (spec, rest) = rest.strip_prefix('"').unwrap().split_once("\",").unwrap();
            let spec = if spec.contains(',') { format!("\"{spec}\"") } else { spec.to_string() };
            // The columns added since (`step_s`, `peak_rss_bytes`, `layout`, `floor_s`) are empty.
            assert_eq!(format!("{layer},{spec},0,{rest},,,,"), b);
        }
        let e = read_csv("layer,spec,formulation,status\nc,\"1x2x2 > conv(1,1)\",sparse,fine\n").unwrap_err();
        assert!(e.starts_with("line 2"), "{e}");
    }

    fn row(layer: &str, engine: Engine, fwd: f64, ran: bool) -> Row {
        Row {
            status: if ran { Status::Ran } else { Status::DoesNotFit(9) },
            forward_s: Some(fwd),
            input_grad_s: Some(1.0),
            ..Row::new(layer, format!("spec of {layer}"), engine)
        }
    }

    /// The report names each product where sparse is slower than the fastest other formulation that ran,
    /// and only those.
    #[test]
    fn losses_name_the_slower_sparse_products() {
        let rows = [
            row("a", Engine::Sparse, 0.002, true),
            row("a", Engine::Direct, 0.003, true),
            row("a", Engine::Im2col, 0.001, true),
            row("b", Engine::Sparse, 0.002, true),
            row("b", Engine::Direct, 0.004, true),
            row("b", Engine::Im2col, 0.0001, false),
        ];
        let text = losses(&rows);
        assert!(text.contains("a forward (2.00 ms against 1.00 ms on im2col)"), "{text}");
        assert!(!text.contains("b forward") && !text.contains("input grad"), "{text}");
        assert!(losses(&rows[3..]).contains("fastest on every product"));
    }

    /// Attained is the speed-up over the sparse row at 0 divided by `min(1/(1−s), dense ÷ floor)`: the
    /// work bound at 0.5 (2×), the floor bound at 0.99 (dense 10 ms ÷ floor 2 ms = 5×, not 100×).
    #[test]
    fn floors_divide_the_speedup_by_the_smaller_bound() {
        let timed = |s: f64, fwd: f64, floor: Option<f64>| Row {
            sparsity: s,
            forward_s: Some(fwd),
            input_grad_s: Some(0.0),
            param_grad_s: Some(0.0),
            floor_s: floor,
            ..Row::new("a", "spec", Engine::Sparse)
        };
        let rows = [timed(0.0, 0.010, None), timed(0.5, 0.010, Some(0.002)), timed(0.99, 0.004, Some(0.002))];
        let text = floors(&rows);
        assert!(text.contains("| a | 0.5 | 10.00 | 10.00 | 2.00 | 1.00× | 2.00× | 50% |"), "{text}");
        assert!(text.contains("| a | 0.99 | 10.00 | 4.00 | 2.00 | 2.50× | 5.00× | 50% |"), "{text}");
        assert_eq!(floors(&rows[..1]), "");
    }

    #[test]
    fn byte_counts_parse() {
        assert_eq!(parse_bytes("1000"), Some(1000));
        assert_eq!(parse_bytes("2GiB"), Some(2 << 30));
        assert_eq!(parse_bytes("3 M"), Some(3_000_000));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("-1"), None);
        assert_eq!(parse_bytes(""), None);
    }
}
