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
    for r in rows {
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
    s
}

/// The CSV report: one line per layer and formulation, raw numbers (seconds, bytes).
pub fn csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "layer,spec,formulation,status,compile_s,forward_s,input_grad_s,param_grad_s,index_bytes,estimated_index_bytes,param_bytes,nnz,flops,max_diff_forward,max_diff_input_grad,max_diff_param_grad\n",
    );
    let o = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:e}"));
    for r in rows {
        let _ = writeln!(
            s,
            "{},\"{}\",{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
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
            o(r.diff_param_grad)
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
        if f.len() != 14 {
            return Err(bad(&format!("{} fields after the spec, expected 14", f.len())));
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
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `csv` writes, `read_csv` reads back: written again, the same text (docs/compare/compare.csv,
    /// which holds every status).
    #[test]
    fn csv_reads_back() {
        let text = include_str!("../../docs/compare/compare.csv");
        let rows = read_csv(text).unwrap();
        assert_eq!(rows.len(), text.lines().count() - 1);
        assert_eq!(csv(&rows), text);
        assert!(
            read_csv("layer,spec,formulation,status,x\nc,\"1x2x2 > conv(1,1)\",sparse,ok\n")
                .unwrap_err()
                .starts_with("line 2")
        );
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
