//! `cnn-as-mlp compare`: the files it writes, one row per layer and formulation, small differences, the
//! memory limit, and one-line errors.
#![cfg(feature = "cli")]

use crate::common;

use approx::abs_diff_eq;
use common::*;

const FORMULATIONS: [&str; 3] = ["sparse", "direct", "im2col"];
const LENET: [&str; 4] = ["lenet-conv1", "lenet-pool1", "lenet-conv2", "lenet-pool2"];

/// CSV rows as maps from column name to value.
fn csv_rows(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    csv::Reader::from_reader(text.as_bytes()).deserialize().map(Result::unwrap).collect()
}

#[test]
fn compare_lenet_writes_table_csv_and_plots() {
    let d = scratch("compare-lenet");
    let out = d.join("cmp");
    let o = run(&["compare", "--layers", "lenet", "--batch", "4", "--repeats", "1", "--out", s(&out)]);
    ok(&o);
    assert_eq!(listing(&out), ["compare-memory.png", "compare-time.png", "compare.csv", "compare.md"]);
    for png in ["compare-memory.png", "compare-time.png"] {
        let b = std::fs::read(out.join(png)).unwrap();
        assert!(b.starts_with(b"\x89PNG") && b.len() > 1000, "{png}");
    }
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    let printed = stdout(&o);
    assert!(printed.contains(md.trim_end()), "the table is printed");
    let header = md.lines().next().unwrap();
    for needle in ["batch 4", "threads 2", "repeats 1", "machine:", "cores"] {
        assert!(header.contains(needle), "header lacks {needle:?}: {header}");
    }
    for layer in LENET {
        for f in FORMULATIONS {
            let n = md.lines().filter(|l| l.starts_with(&format!("| {layer} ")) && names_formulation(l, f)).count();
            assert_eq!(n, 1, "{layer} × {f}: {n} rows\n{md}");
        }
    }
    let rows = csv_rows(&std::fs::read_to_string(out.join("compare.csv")).unwrap());
    assert_eq!(rows.len(), LENET.len() * FORMULATIONS.len());
    for r in &rows {
        let pool = r["layer"].contains("pool");
        if pool && r["formulation"] == "im2col" {
            assert!(r["status"].starts_with("n/a"), "{r:?}");
            continue;
        }
        assert_eq!(r["status"], "ok", "{r:?}");
        for k in ["forward_s", "input_grad_s"] {
            assert!(r[k].parse::<f64>().unwrap() >= 0.0, "{r:?}");
        }
        for k in ["max_diff_forward", "max_diff_input_grad", "max_diff_param_grad"] {
            if let Ok(v) = r[k].parse::<f64>() {
                assert!(v < 1e-3, "{k} = {v}: {r:?}");
            } else {
                assert!(pool && k == "max_diff_param_grad", "{k} missing: {r:?}");
            }
        }
        if r["formulation"] == "sparse" {
            let real: usize = r["index_bytes"].parse().unwrap();
            let est: usize = r["estimated_index_bytes"].parse().unwrap();
            assert!(real > 0 && est >= real, "{r:?}");
        }
    }
}

#[test]
fn tiny_memory_limit_skips_sparse_layers() {
    let d = scratch("compare-limit");
    let out = d.join("cmp");
    let o = run(&[
        "compare",
        "--layers",
        "lenet-conv2,lenet-pool2",
        "--batch",
        "2",
        "--repeats",
        "1",
        "--memory-limit",
        "1000",
        "--out",
        s(&out),
    ]);
    ok(&o);
    assert!(!stderr(&o).contains("on sparse"), "a sparse layer was attempted: {}", stderr(&o));
    let rows = csv_rows(&std::fs::read_to_string(out.join("compare.csv")).unwrap());
    assert_eq!(rows.len(), 6);
    for r in &rows {
        match r["formulation"].as_str() {
            "sparse" => {
                assert!(r["status"].starts_with("does not fit: needs "), "{r:?}");
                assert!(r["compile_s"].is_empty() && r["forward_s"].is_empty(), "{r:?}");
            }
            "direct" => assert_eq!(r["status"], "ok"),
            _ => {}
        }
    }
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert_eq!(md.matches("does not fit: needs").count(), 3, "sparse ×2 and im2col's col buffer:\n{md}");
}

#[test]
fn compare_bad_options() {
    let d = scratch("compare-bad");
    let out = d.join("cmp");
    for (args, needles) in [
        (vec!["--batch", "0"], vec!["--batch", "positive"]),
        (vec!["--threads", "two"], vec!["--threads", "two"]),
        (vec!["--repeats", "-1"], vec!["--repeats"]),
        (vec!["--memory-limit", "lots"], vec!["--memory-limit", "lots"]),
        (vec!["--layers", "conv9"], vec!["--layers", "conv9"]),
        (vec!["--layers", "4x8x8 > dense(3)"], vec!["--layers", "dense"]),
        (vec!["--layers", "4x8x8 > conv(3,9)"], vec!["--layers", "conv(3,9)"]),
        (vec!["--sparsity", "1"], vec!["--sparsity", "\"1\"", "[0, 1)"]),
        (vec!["--sparsity", "0,-0.1"], vec!["--sparsity", "-0.1"]),
        (vec!["--sparsity", "NaN"], vec!["--sparsity", "NaN"]),
        (vec!["--sparsity", "0.5,x"], vec!["--sparsity", "\"x\""]),
        (vec!["--sparsity", "0.5,0.5"], vec!["--sparsity", "twice"]),
        (vec!["--sparsity", ""], vec!["--sparsity"]),
    ] {
        let mut a = vec!["compare", "--out", s(&out)];
        a.extend(args);
        fails(&run(&a), &needles);
        assert!(!out.exists(), "{a:?} created the output directory");
    }
    let file = d.join("f");
    std::fs::write(&file, "x").unwrap();
    fails(&run(&["compare", "--layers", "lenet-pool2", "--out", s(&file)]), &["--out", "not a directory"]);
}

/// `--replot DIR` redraws both plots from compare.csv and compare.md without measuring; a corrupt CSV is
/// refused with the line named and the plots left as they were.
#[test]
fn replot_redraws_from_the_csv() {
    let d = scratch("compare-replot");
    let out = d.join("cmp");
    ok(&run(&["compare", "--layers", "lenet-pool1,lenet-conv1", "--batch", "2", "--repeats", "1", "--out", s(&out)]));
    let before = std::fs::read(out.join("compare-time.png")).unwrap();
    std::fs::remove_file(out.join("compare-time.png")).unwrap();
    std::fs::remove_file(out.join("compare-memory.png")).unwrap();
    let o = run(&["compare", "--replot", s(&out)]);
    ok(&o);
    assert!(stdout(&o).contains("(6 rows)"), "{}", stdout(&o));
    // The same rows and caption draw the same picture.
    assert_eq!(std::fs::read(out.join("compare-time.png")).unwrap(), before);
    assert!(std::fs::read(out.join("compare-memory.png")).unwrap().starts_with(b"\x89PNG"));
    let csv = std::fs::read_to_string(out.join("compare.csv")).unwrap();
    std::fs::write(out.join("compare.csv"), csv.replacen(",ok,", ",fine,", 1)).unwrap();
    fails(&run(&["compare", "--replot", s(&out)]), &["compare.csv", "line 2", "unknown status \"fine\""]);
    assert_eq!(std::fs::read(out.join("compare-time.png")).unwrap(), before);
    fails(&run(&["compare", "--replot", s(&out), "--batch", "4"]), &["--batch"]);
}

/// `--sparsity`: one row per layer, sparsity and formulation; the sparse formulation stores only the kept
/// taps (its nnz falls with the sparsity, the dense engines' stays), every formulation still agrees with the
/// masked direct reference, pools run once, and the sparsity plot is written.
#[test]
fn compare_sparsity_levels() {
    let d = scratch("compare-sparsity");
    let out = d.join("cmp");
    let o = run(&[
        "compare",
        "--layers",
        "lenet-conv2,lenet-pool2,8x6x6 > conv(8,3,pad=1,groups=2)",
        "--sparsity",
        "0, 0.5,0.9",
        "--batch",
        "4",
        "--repeats",
        "1",
        "--out",
        s(&out),
    ]);
    ok(&o);
    assert_eq!(
        listing(&out),
        ["compare-memory.png", "compare-sparsity.png", "compare-time.png", "compare.csv", "compare.md"]
    );
    let b = std::fs::read(out.join("compare-sparsity.png")).unwrap();
    assert!(b.starts_with(b"\x89PNG") && b.len() > 1000);
    let text = std::fs::read_to_string(out.join("compare.csv")).unwrap();
    // A layer named by its spec holds commas, so the CSV quotes it.
    assert!(text.contains("\n\"8x6x6>conv(8,3,pad=1,groups=2)\","), "{text}");
    let rows = csv_rows(&text);
    // Two convolutions at three sparsities, the pool once; three formulations each.
    assert_eq!(rows.len(), (2 * 3 + 1) * 3);
    let nnz = |layer: &str, sp: &str, f: &str| -> f64 {
        let r = rows.iter().find(|r| r["layer"] == layer && r["sparsity"] == sp && r["formulation"] == f).unwrap();
        assert_eq!(r["status"], "ok", "{r:?}");
        for k in ["max_diff_forward", "max_diff_input_grad", "max_diff_param_grad"] {
            let v: f64 = r[k].parse().unwrap();
            assert!(v < 1e-3, "{k} = {v}: {r:?}");
        }
        r["nnz"].parse().unwrap()
    };
    for layer in ["lenet-conv2", "8x6x6>conv(8,3,pad=1,groups=2)"] {
        let full = nnz(layer, "0", "sparse");
        for (sp, kept) in [("0.5", 0.5), ("0.9", 0.1)] {
            let n = nnz(layer, sp, "sparse");
            // A random mask keeps about that fraction of the taps (each kernel entry has its own count of copies).
            assert!(abs_diff_eq!(n / full, kept, epsilon = 0.05), "{layer} at {sp}: {n} of {full}");
            for f in ["direct", "im2col"] {
                assert_eq!(nnz(layer, sp, f), nnz(layer, "0", f), "{f} multiplies by every zero");
            }
        }
    }
    let pool: Vec<_> = rows.iter().filter(|r| r["layer"] == "lenet-pool2").collect();
    assert!(pool.len() == 3 && pool.iter().all(|r| r["sparsity"] == "0"), "{pool:?}");
}

/// `compare --model`: each conv/pool layer of the network at its shape, then one `total` row per engine
/// with the build time, one training step, the index bytes and the peak memory; the engines' gradients
/// agree; the Markdown has the whole-network table.
#[test]
fn compare_model_reports_layers_and_the_whole_network() {
    let d = scratch("compare-model");
    let out = d.join("cmp");
    let spec = "1x12x12 > conv(4,3,pad=1) > relu > avgpool(2) > conv(6,3) > relu > dense(10)";
    let o = run(&["compare", "--model", spec, "--batch", "8", "--repeats", "1", "--out", s(&out)]);
    ok(&o);
    let rows = csv_rows(&std::fs::read_to_string(out.join("compare.csv")).unwrap());
    let layers: Vec<&str> = rows.iter().map(|r| r["layer"].as_str()).collect();
    let mut expected = Vec::new();
    for l in ["0.conv", "2.avgpool", "3.conv", "total"] {
        expected.extend([l; 3]);
    }
    assert_eq!(layers, expected);
    assert_eq!(rows[3]["spec"], "4x12x12 > avgpool(2)", "layers at their shape in the network");
    for r in rows.iter().filter(|r| r["layer"] == "total") {
        assert_eq!(r["status"], "ok", "{r:?}");
        let step: f64 = r["step_s"].parse().unwrap();
        assert!(step > 0.0, "{r:?}");
        let diff: f64 = r["max_diff_param_grad"].parse().unwrap();
        assert!(diff < 1e-4, "{r:?}");
        assert_eq!(r["param_bytes"], (4 * (4 * 9 + 4 + 6 * 4 * 9 + 6 + 10 * 6 * 4 * 4 + 10)).to_string());
        if r["formulation"] == "sparse" {
            assert!(r["index_bytes"].parse::<usize>().unwrap() > 0);
        }
        if std::path::Path::new("/proc/self/clear_refs").exists() {
            assert!(r["peak_rss_bytes"].parse::<usize>().unwrap() > 1 << 20, "{r:?}");
        }
    }
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(md.contains("Whole network `1x12x12 > conv(4,3,pad=1)"), "{md}");
    assert!(md.contains("| training step ms |"), "{md}");
    // --model and --layers together, and a bad model: one error line each.
    let o = run(&["compare", "--model", "lenet5", "--layers", "lenet", "--out", s(&d.join("x"))]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["compare", "--model", "lenet", "--out", s(&d.join("y"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("did you mean lenet5"), "{}", stderr(&o));
    assert!(!d.join("y").exists());
}

/// `compare --map` on a tiny grid: compare-map.csv has every cell (2 channels × 1 size × 1 batch × 2 sparsities ×
/// 3 engines), "fastest" is the engine with the smallest total of its cell and sparsity, the ratio is sparse ÷
/// best dense, and compare-map.png decodes. Under a tiny memory limit the sparse and im2col rows are marked as not
/// fitting, the cells still present, direct the fastest.
#[test]
fn compare_map_has_every_cell_and_the_fastest_engine() {
    let d = scratch("compare-map");
    let out = d.join("map");
    let base =
        ["compare", "--map", "--map-channels", "3,8", "--map-sizes", "8", "--map-batches", "1", "--repeats", "1"];
    let mut a = base.to_vec();
    a.extend(["--out", s(&out)]);
    let o = run(&a);
    ok(&o);
    assert_eq!(listing(&out), ["compare-map.csv", "compare-map.md", "compare-map.png"]);
    let rows = csv_rows(&std::fs::read_to_string(out.join("compare-map.csv")).unwrap());
    assert_eq!(rows.len(), 2 * 2 * 3, "{rows:?}");
    for c in ["3", "8"] {
        for sp in ["0", "0.9"] {
            let set: Vec<_> = rows.iter().filter(|r| r["channels"] == c && r["sparsity"] == sp).collect();
            let engines: Vec<&str> = set.iter().map(|r| r["engine"].as_str()).collect();
            assert_eq!(engines, FORMULATIONS, "C={c} s={sp}");
            let total = |r: &std::collections::BTreeMap<String, String>| -> f64 {
                let t: f64 = r["total_ms"].parse().unwrap();
                let parts: f64 = ["forward_ms", "input_grad_ms", "param_grad_ms"]
                    .iter()
                    .map(|k| r[*k].parse::<f64>().unwrap())
                    .sum();
                assert!(abs_diff_eq!(t, parts, epsilon = 1e-9 * t.max(1.0)), "{r:?}");
                t
            };
            let totals: Vec<f64> = set.iter().map(|r| total(r)).collect();
            let min = (0..3).min_by(|&i, &j| totals[i].total_cmp(&totals[j])).unwrap();
            let best_dense = totals[1].min(totals[2]);
            for r in &set {
                assert_eq!(r["status"], "ok", "{r:?}");
                assert_eq!(r["spatial"], "8");
                assert_eq!(r["batch"], "1");
                assert_eq!(r["fastest"], FORMULATIONS[min], "{set:?}");
                let ratio: f64 = r["sparse_over_best_dense"].parse().unwrap();
                assert!(abs_diff_eq!(ratio, totals[0] / best_dense, epsilon = 1e-9 * ratio), "{r:?}");
            }
            let at: Vec<&str> = set.iter().map(|r| r["measured_at_sparsity"].as_str()).collect();
            assert_eq!(at, [sp, "0", "0"]);
        }
    }
    let md = std::fs::read_to_string(out.join("compare-map.md")).unwrap();
    assert!(stdout(&o).contains(md.trim_end()), "the tables are printed");
    assert!(md.contains("Batch 1") && md.contains("| 8 |") && md.contains("×"), "{md}");
    let png = std::fs::File::open(out.join("compare-map.png")).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(png)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert!(info.width >= 900 && info.height >= 300, "{}x{}", info.width, info.height);
    assert!(buf.iter().any(|&b| b != 255), "something is drawn");

    // Nothing fits but the direct engine: every row is still there, marked.
    let tight = d.join("tight");
    let mut a = base.to_vec();
    a.extend(["--memory-limit", "1000", "--out", s(&tight)]);
    ok(&run(&a));
    let rows = csv_rows(&std::fs::read_to_string(tight.join("compare-map.csv")).unwrap());
    assert_eq!(rows.len(), 12);
    for r in &rows {
        assert_eq!(r["fastest"], "direct", "{r:?}");
        assert_eq!(r["sparse_over_best_dense"], "", "{r:?}");
        if r["engine"] == "direct" {
            assert_eq!(r["status"], "ok");
        } else {
            assert!(r["status"].starts_with("does not fit"), "{r:?}");
            assert_eq!(r["total_ms"], "", "{r:?}");
        }
    }
    let md = std::fs::read_to_string(tight.join("compare-map.md")).unwrap();
    assert!(md.contains("sparse does not fit"), "{md}");
}

#[test]
fn compare_map_bad_options() {
    let d = scratch("compare-map-bad");
    let out = d.join("map");
    for (args, needles) in [
        (vec!["--map-channels", "3,0"], vec!["--map-channels", "\"0\""]),
        (vec!["--map-sizes", "8,x"], vec!["--map-sizes", "\"x\""]),
        (vec!["--map-batches", "1,1"], vec!["--map-batches", "twice"]),
        (vec!["--map-sizes", "99999"], vec!["--map-sizes", "99999"]),
    ] {
        let mut a = vec!["compare", "--map", "--out", s(&out)];
        a.extend(args);
        fails(&run(&a), &needles);
        assert!(!out.exists(), "{a:?} created the output directory");
    }
}

/// Whether a table line's formulation cell is `f`, alone or with the layout its products ran in
/// (`sparse (positions)`).
fn names_formulation(line: &str, f: &str) -> bool {
    line.split('|').map(str::trim).any(|cell| cell == f || cell.strip_prefix(f).is_some_and(|r| r.starts_with(" (")))
}
