//! The report of `compare`: byte counts parsed and printed, the header line, the Markdown table and the CSV.

use std::fmt::Write as _;

use super::{Config, Row, Status};
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

/// `1.23 MiB`-style size.
pub fn human_bytes(n: usize) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", units[u]) }
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
        "batch {}, threads {threads}, repeats {} (median after 1 warm-up), f32, seed {}; machine: {machine}; memory limit {} bytes ({})",
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
        "| layer | formulation | forward ms | input grad ms | param grad ms | compile ms | index bytes | param bytes | nnz | MFLOP | max abs diff fwd / dx / dθ | status |\n",
    );
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
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
            "| {} `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {} | {} |",
            r.layer,
            r.spec,
            r.engine.name(),
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
         definitions). Pools have no parameters and no im2col lowering.\n",
    );
    s.push_str(&losses(rows));
    let totals: Vec<&Row> = rows.iter().filter(|r| r.layer == "total").collect();
    if !totals.is_empty() {
        whole_network(&mut s, &totals);
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

/// The CSV report: one line per layer and formulation, raw numbers (seconds, bytes).
pub fn csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "layer,spec,formulation,status,compile_s,forward_s,input_grad_s,param_grad_s,index_bytes,estimated_index_bytes,param_bytes,nnz,flops,max_diff_forward,max_diff_input_grad,max_diff_param_grad,step_s,peak_rss_bytes\n",
    );
    let o = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:e}"));
    for r in rows {
        let _ = writeln!(
            s,
            "{},\"{}\",{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.layer,
            r.spec,
            r.engine.name(),
            r.status,
            o(r.compile_s),
            o(r.forward_s),
            o(r.input_grad_s),
            o(r.param_grad_s),
            r.index_bytes,
            r.estimated_bytes.map_or(String::new(), |e| e.to_string()),
            r.param_bytes,
            r.nnz,
            r.flops,
            o(r.diff_forward),
            o(r.diff_input_grad),
            o(r.diff_param_grad),
            o(r.step_s),
            r.peak_bytes.map_or(String::new(), |b| b.to_string())
        );
    }
    s
}

/// The reasons a formulation does not apply, as [`Status::NotApplicable`] holds them.
const NOT_APPLICABLE: [&str; 1] = ["no im2col lowering for this layer kind"];

/// Reads the text [`csv`] wrote back into rows (to redraw the plots of a comparison without measuring
/// again). A malformed line is reported with its number.
pub fn read_csv(text: &str) -> Result<Vec<Row>, String> {
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    if !head.starts_with("layer,spec,formulation,status,") {
        return Err("line 1 is not the header of compare.csv".into());
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let bad = |what: &str| format!("line {}: {what}", i + 2);
        // The spec is the one quoted field (it holds commas).
        let (layer, rest) = line.split_once(",\"").ok_or_else(|| bad("no quoted spec"))?;
        let (spec, rest) = rest.split_once("\",").ok_or_else(|| bad("no quoted spec"))?;
        let f: Vec<&str> = rest.split(',').collect();
        // 14 fields after the spec in files written before `step_s` and `peak_rss_bytes`, 16 since.
        if f.len() != 14 && f.len() != 16 {
            return Err(bad(&format!("{} fields after the spec, expected 16 (or 14)", f.len())));
        }
        let opt = |j: usize| -> Result<Option<f64>, String> {
            if f[j].is_empty() {
                Ok(None)
            } else {
                f[j].parse().map(Some).map_err(|_| bad(&format!("{:?} is not a number", f[j])))
            }
        };
        let int = |j: usize| -> Result<usize, String> {
            f[j].parse().map_err(|_| bad(&format!("{:?} is not a count", f[j])))
        };
        let status = match f[1] {
            "ok" => Status::Ran,
            s if s.starts_with("does not fit: needs ") => Status::DoesNotFit(
                s["does not fit: needs ".len()..]
                    .trim_end_matches(" bytes")
                    .parse()
                    .map_err(|_| bad("bad byte count"))?,
            ),
            s => Status::NotApplicable(
                NOT_APPLICABLE
                    .iter()
                    .find(|r| s.strip_prefix("n/a: ") == Some(**r))
                    .ok_or_else(|| bad(&format!("unknown status {s:?}")))?,
            ),
        };
        rows.push(Row {
            layer: layer.to_string(),
            spec: spec.to_string(),
            engine: Engine::from_name(f[0]).ok_or_else(|| bad(&format!("unknown formulation {:?}", f[0])))?,
            status,
            compile_s: opt(2)?,
            forward_s: opt(3)?,
            input_grad_s: opt(4)?,
            param_grad_s: opt(5)?,
            index_bytes: int(6)?,
            estimated_bytes: if f[7].is_empty() { None } else { Some(int(7)?) },
            param_bytes: int(8)?,
            nnz: int(9)?,
            flops: opt(10)?.ok_or_else(|| bad("no flops"))?,
            diff_forward: opt(11)?,
            diff_input_grad: opt(12)?,
            diff_param_grad: opt(13)?,
            step_s: if f.len() > 14 { opt(14)? } else { None },
            peak_bytes: if f.len() > 15 && !f[15].is_empty() { Some(int(15)?) } else { None },
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `csv` writes, `read_csv` reads back and writes again unchanged; a file written before the
    /// `step_s` and `peak_rss_bytes` columns (docs/compare/compare.csv, which holds every status) reads with
    /// them empty.
    #[test]
    fn csv_reads_back() {
        let old = include_str!("../../docs/compare/compare.csv");
        let rows = read_csv(old).unwrap();
        assert_eq!(rows.len(), old.lines().count() - 1);
        let text = csv(&rows);
        for (a, b) in old.lines().skip(1).zip(text.lines().skip(1)) {
            assert_eq!(format!("{a},,"), b);
        }
        assert_eq!(csv(&read_csv(&text).unwrap()), text);
        assert!(
            read_csv("layer,spec,formulation,status,x\nc,\"1x2x2 > conv(1,1)\",sparse,ok\n")
                .unwrap_err()
                .starts_with("line 2")
        );
    }

    fn row(layer: &str, engine: Engine, fwd: f64, ran: bool) -> Row {
        Row {
            layer: layer.into(),
            spec: format!("spec of {layer}"),
            engine,
            status: if ran { Status::Ran } else { Status::DoesNotFit(9) },
            compile_s: None,
            forward_s: Some(fwd),
            input_grad_s: Some(1.0),
            param_grad_s: None,
            index_bytes: 0,
            estimated_bytes: None,
            param_bytes: 0,
            nnz: 0,
            flops: 0.0,
            diff_forward: None,
            diff_input_grad: None,
            diff_param_grad: None,
            step_s: None,
            peak_bytes: None,
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
