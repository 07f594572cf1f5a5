//! `cnn-as-mlp show`: PNG pictures of compiled layers, the star of a node, the errors, and the
//! downsampling rule of [`cnn_as_mlp::picture`].
#![cfg(feature = "cli")]

use crate::common;

use std::path::Path;

use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::picture::{
    Fit, MAX_STRETCH, column_of_w, detail_window, downsample, downsample_rect, fit, fit_rect, row_of_wt,
};
use cnn_as_mlp::spec::Spec;
use cnn_as_mlp::tied::IndexMap;
use common::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sprs::TriMatI;

/// Checks the PNG signature and the IHDR chunk; returns (width, height).
#[track_caller]
fn png_dims(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert!(b.len() > 33, "{}: too short for a PNG", path.display());
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&b[8..12], &13u32.to_be_bytes(), "IHDR length");
    assert_eq!(&b[12..16], b"IHDR", "first chunk is IHDR");
    let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
    assert_eq!(b[24], 8, "bit depth");
    assert_eq!(b[25], 2, "colour type RGB");
    assert!(b.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]), "ends with IEND");
    (w, h)
}

/// Runs `show` with `args` and returns the picture's dimensions.
#[track_caller]
fn show(name: &str, args: &[&str]) -> (u32, u32) {
    let d = scratch(name);
    let out = d.join("w.png");
    let mut all = vec!["show", "--out", s(&out)];
    all.extend_from_slice(args);
    let o = run(&all);
    ok(&o);
    assert!(stdout(&o).contains("show: wrote"), "{}", stdout(&o));
    png_dims(&out)
}

#[test]
fn conv_matrix_of_lenet5_is_a_png() {
    // conv1: W is 4704×784, drawn at 1 px = 6×6 entries: 784×131 pixels plus title and legend.
    let (w, h) = show("show-conv1", &["--model", "lenet5", "--layer", "0"]);
    assert!((784..1000).contains(&h), "height {h}");
    assert!((231..2000).contains(&w), "width {w}");
    // conv2: 1600×1176 at 1 px = 2×2 entries: 800×588.
    let (w, h) = show("show-conv2", &["--model", "lenet5", "--layer", "3", "--size", "800"]);
    assert!(h >= 800 && w >= 588, "{w}x{h}");
}

#[test]
fn pool_matrix_is_a_png() {
    // maxpool(2) on 6x28x28: W is 1176×4704, 1 px = 6×6 entries.
    let (w, h) = show("show-pool", &["--model", "lenet5", "--layer", "2"]);
    assert!(w >= 784 && h >= 196, "{w}x{h}");
    // A small avgpool is zoomed in: 1 entry = z×z px.
    let (w, h) = show("show-avg", &["--model", "1x4x4 > avgpool(2) > dense(2)", "--layer", "0", "--size", "160"]);
    assert!(w >= 160 && h >= 40, "{w}x{h}");
}

#[test]
fn size_sets_the_scale() {
    let (_, h_small) = show("show-size-small", &["--model", "lenet5", "--layer", "3", "--size", "400"]);
    let (_, h_big) = show("show-size-big", &["--model", "lenet5", "--layer", "3", "--size", "1600"]);
    assert!(h_big >= h_small + 1000, "{h_small} then {h_big}");
}

#[test]
fn node_star_is_a_png() {
    let (w, h) = show("show-node", &["--model", "lenet5", "--layer", "3", "--node", "500"]);
    assert!(w >= 800 && h >= 300, "{w}x{h}");
    // A pool's star and the first and last nodes.
    show("show-node-pool", &["--model", "lenet5", "--layer", "2", "--node", "0"]);
    show("show-node-last", &["--model", "lenet5", "--layer", "0", "--node", "783"]);
}

/// Runs `show` expecting one `error:` line with `needles`, exit 2 and no output file.
#[track_caller]
fn show_fails(name: &str, args: &[&str], needles: &[&str]) {
    let d = scratch(name);
    let out = d.join("w.png");
    let mut all = vec!["show", "--out", s(&out)];
    all.extend_from_slice(args);
    fails(&run(&all), needles);
    assert!(!out.exists(), "a picture was written");
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "a temporary file was left");
}

#[test]
fn layer_out_of_range() {
    show_fails("show-err-range", &["--model", "lenet5", "--layer", "11"], &["--layer 11", "out of range", "11 layers"]);
}

#[test]
fn dense_layer_has_no_matrix() {
    show_fails(
        "show-err-dense",
        &["--model", "lenet5", "--layer", "6"],
        &["--layer 6", "dense(120)", "a dense layer", "no compiled"],
    );
}

#[test]
fn activation_has_no_matrix() {
    show_fails(
        "show-err-act",
        &["--model", "lenet5", "--layer", "1"],
        &["--layer 1", "relu", "an activation", "no compiled"],
    );
}

#[test]
fn node_out_of_range() {
    show_fails(
        "show-err-node",
        &["--model", "lenet5", "--layer", "3", "--node", "1176"],
        &["--node 1176", "out of range", "1176 inputs", "6x14x14"],
    );
}

#[test]
fn bad_model_and_size() {
    show_fails("show-err-model", &["--model", "1x28x28 > conv(6", "--layer", "0"], &["model spec"]);
    show_fails("show-err-size", &["--model", "lenet5", "--layer", "0", "--size", "5"], &["--size 5"]);
}

#[test]
fn unwritable_output() {
    let d = scratch("show-err-write");
    let out = d.join("missing-dir").join("w.png");
    fails(&run(&["show", "--model", "lenet5", "--layer", "0", "--out", s(&out)]), &["w.png", "cannot write"]);
    assert!(!out.exists());
}

fn map_of(rows: usize, cols: usize, entries: &[(usize, usize, u32)]) -> IndexMap {
    let mut tri = TriMatI::<u32, u32>::new((rows, cols));
    for &(r, c, v) in entries {
        tri.add_triplet(r, c, v);
    }
    tri.to_csr()
}

#[test]
fn downsampling_keeps_every_nonzero_on_a_known_pattern() {
    // 5×7 matrix, scale 2: pixels cover rows {0,1},{2,3},{4} and columns {0,1},{2,3},{4,5},{6}.
    let m = map_of(5, 7, &[(0, 0, 9), (1, 1, 4), (0, 3, 2), (3, 6, 7), (4, 4, 1), (4, 5, 0)]);
    let g = downsample(&m, 2);
    assert_eq!((g.width, g.height, g.scale), (4, 3, 2));
    let expected = [
        [Some(4), Some(2), None, None], //
        [None, None, None, Some(7)],
        [None, None, Some(0), None],
    ];
    for (y, row) in expected.iter().enumerate() {
        for (x, &want) in row.iter().enumerate() {
            assert_eq!(g.at(x, y), want, "pixel ({x}, {y})");
        }
    }
    // Scale 1 is the pattern itself; a scale beyond the matrix is one pixel owned by the smallest code.
    let g1 = downsample(&m, 1);
    assert_eq!(g1.cells.iter().filter(|c| c.is_some()).count(), 6);
    assert_eq!(g1.at(0, 0), Some(9));
    assert_eq!(downsample(&m, 10).cells, vec![Some(0)]);
}

#[test]
fn downsampling_sets_a_pixel_iff_some_nonzero_falls_in_it() {
    let mut rng = StdRng::seed_from_u64(7);
    for trial in 0..20 {
        let (rows, cols) = (rng.random_range(1..60), rng.random_range(1..60));
        let n = rng.random_range(0..rows * cols / 4 + 1);
        let entries: Vec<(usize, usize, u32)> =
            (0..n).map(|_| (rng.random_range(0..rows), rng.random_range(0..cols), rng.random_range(0..50))).collect();
        // Keep one code per position (the CSR builder would sum duplicates).
        let mut dense = vec![None; rows * cols];
        for &(r, c, v) in &entries {
            dense[r * cols + c] = Some(v);
        }
        let kept: Vec<(usize, usize, u32)> =
            (0..rows * cols).filter_map(|i| dense[i].map(|v| (i / cols, i % cols, v))).collect();
        let m = map_of(rows, cols, &kept);
        for scale in 1..6 {
            let g = downsample(&m, scale);
            assert_eq!((g.width, g.height), (cols.div_ceil(scale), rows.div_ceil(scale)));
            for y in 0..g.height {
                for x in 0..g.width {
                    let brute =
                        kept.iter().filter(|&&(r, c, _)| r / scale == y && c / scale == x).map(|&(_, _, v)| v).min();
                    assert_eq!(g.at(x, y), brute, "trial {trial}, {rows}x{cols}, scale {scale}, pixel ({x}, {y})");
                }
            }
        }
    }
}

#[test]
fn fit_never_exceeds_the_size() {
    for (rows, cols) in [(4704, 784), (1600, 1176), (1176, 4704), (3, 5), (800, 800), (801, 1)] {
        for max_px in [100, 400, 800] {
            let (w, h) = match fit(rows, cols, max_px) {
                Fit::Down(s) => (cols.div_ceil(s), rows.div_ceil(s)),
                Fit::Up(z) => (cols * z, rows * z),
            };
            assert!(w <= max_px && h <= max_px, "{rows}x{cols} in {max_px}: {w}x{h}");
        }
    }
}

#[test]
fn star_column_of_w_equals_row_of_wt() {
    let spec = Spec::parse("lenet5").unwrap();
    let net = Network::<f32>::new(&spec, Engine::Sparse);
    for layer in [0, 2, 3, 5] {
        let t = net.linear_map(layer).unwrap().tied().unwrap();
        for node in [0, 17, t.shape().1 / 2, t.shape().1 - 1] {
            assert_eq!(column_of_w(t, node), row_of_wt(t, node), "layer {layer} node {node}");
        }
    }
    // An interior node of conv2 (6x14x14 → 16x10x10, k = 5) feeds 16 channels × 25 positions, each through
    // a different kernel entry of its input channel.
    let t = net.linear_map(3).unwrap().tied().unwrap();
    let node = 2 * 196 + 7 * 14 + 7;
    let star = column_of_w(t, node);
    assert_eq!(star.len(), 16 * 25);
    let mut params: Vec<u32> = star.iter().map(|&(_, p)| p).collect();
    params.sort_unstable();
    params.dedup();
    assert_eq!(params.len(), 400);
    assert!(params.iter().all(|&p| (p as usize / 25) % 6 == 2), "every entry is from input channel 2");
}

/// Rows and columns scaled separately: each side fits, the longer-scaled axis fills the picture, and the
/// stretch never exceeds MAX_STRETCH (LeNet's max pool, 1176 × 4704 in 800 px: 1 px = 2 rows × 6 columns).
#[test]
fn fit_rect_fills_within_the_stretch_limit() {
    assert_eq!(fit_rect(1176, 4704, 800), (2, 6));
    assert_eq!(fit_rect(4704, 784, 800), (6, 2));
    assert_eq!(fit_rect(100, 100_000, 800), (32, 125));
    for (rows, cols) in [(4704, 784), (1600, 1176), (1176, 4704), (3, 5), (801, 1), (1, 100_000)] {
        for max_px in [100, 400, 800] {
            let (sy, sx) = fit_rect(rows, cols, max_px);
            let (w, h) = (cols.div_ceil(sx), rows.div_ceil(sy));
            assert!(w <= max_px && h <= max_px, "{rows}x{cols} in {max_px}: {w}x{h}");
            assert!(sy.max(sx) <= MAX_STRETCH * sy.min(sx), "{rows}x{cols}: stretch {sy} vs {sx}");
            // The more downsampled axis could not be downsampled less.
            let (long, s, n) = if sy >= sx { (h, sy, rows) } else { (w, sx, cols) };
            assert!(s == 1 || n.div_ceil(s - 1) > max_px, "{rows}x{cols}: {long} px at {s} could be finer");
        }
    }
}

/// `downsample_rect` with different scales per axis keeps every nonzero, like the square rule.
#[test]
fn rectangular_downsampling_sets_a_pixel_iff_some_nonzero_falls_in_it() {
    let mut rng = StdRng::seed_from_u64(8);
    for _ in 0..10 {
        let (rows, cols) = (rng.random_range(1..50), rng.random_range(1..50));
        let mut dense = vec![None; rows * cols];
        for _ in 0..rows * cols / 5 {
            dense[rng.random_range(0..rows * cols)] = Some(rng.random_range(0..20u32));
        }
        let kept: Vec<(usize, usize, u32)> =
            (0..rows * cols).filter_map(|i| dense[i].map(|v| (i / cols, i % cols, v))).collect();
        let m = map_of(rows, cols, &kept);
        for (sy, sx) in [(1, 3), (4, 1), (2, 5)] {
            let g = downsample_rect(&m, sy, sx);
            assert_eq!((g.width, g.height, g.row_scale, g.scale), (cols.div_ceil(sx), rows.div_ceil(sy), sy, sx));
            for y in 0..g.height {
                for x in 0..g.width {
                    let brute = kept.iter().filter(|&&(r, c, _)| r / sy == y && c / sx == x).map(|&(_, _, v)| v).min();
                    assert_eq!(g.at(x, y), brute);
                }
            }
        }
    }
}

/// The detail of a picture covers the first rows whole: for LeNet's first max pool, 16 rows (14 windows of
/// the first output row, 2 of the second) reach column 87 (= 2·28 + 28 + 3). It starts at the first row with a
/// nonzero and at the first column those rows touch (a pruned layer's top rows may be empty).
#[test]
fn the_detail_shows_whole_windows() {
    let spec = Spec::parse("6x28x28 > maxpool(2)").unwrap();
    let net = Network::<f32>::new(&spec, Engine::Sparse);
    let t = net.linear_map(0).unwrap().tied().unwrap();
    let span = |r: usize| {
        t.map().outer_view(r).and_then(|v| Some((*v.indices().first()? as usize, *v.indices().last()? as usize)))
    };
    assert_eq!(detail_window(1176, 4704, span), (0, 0, 16, 88));
    // A short or narrow matrix: all of it, and never beyond 8 × the rows.
    assert_eq!(detail_window(3, 5, |_| Some((0, 4))), (0, 0, 3, 5));
    assert_eq!(detail_window(100, 1000, |r| Some((r, r * 60))), (0, 0, 16, 128));
    // Empty top rows (rows 0-9); row r >= 10 spans columns 300 + r to 310 + r: the detail starts at row 10,
    // column 310, and reaches column 335 (row 25).
    let pruned = |r: usize| (r >= 10).then_some((300 + r, 310 + r));
    assert_eq!(detail_window(100, 1000, pruned), (10, 310, 16, 26));
    // Nothing at all: the corner.
    assert_eq!(detail_window(20, 30, |_| None), (0, 0, 16, 16));
}

/// The nonzeros of layer `layer` of `net` in CSR order: (row, column, value bits, entry code).
fn compiled_nonzeros(net: &Network<f32>, layer: usize) -> Vec<(usize, usize, u32, u32)> {
    let t = net.linear_map(layer).and_then(|m| m.tied()).unwrap();
    let theta: &[f32] = if t.n_params() > 0 { &net.params[layer][0].data } else { &[] };
    let mut v = Vec::new();
    t.for_each_row(|r, cs, codes| {
        for (&c, &code) in cs.iter().zip(codes) {
            v.push((r, c as usize, t.value(theta, code).to_bits(), code));
        }
    });
    v
}

/// Reads `W.mtx` back with sprs's reader: the nonzeros in CSR order as (row, column, value bits).
fn read_mtx(path: &Path) -> (usize, usize, Vec<(usize, usize, u32)>) {
    let tri = sprs::io::read_matrix_market::<f32, usize, _>(path).unwrap();
    let m: sprs::CsMatI<f32, usize> = tri.to_csr();
    let v = m.iter().map(|(v, (r, c))| (r, c, v.to_bits())).collect();
    (m.rows(), m.cols(), v)
}

/// The lines of `W.params.csv` after its header, split into fields.
fn read_sources(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("row,col,tensor,index"));
    lines.map(|l| l.split(',').map(str::to_string).collect()).collect()
}

/// `show --export` writes the compiled matrix: read back with sprs, rows, columns and values equal the compiled
/// layer's bit for bit, and `W.params.csv` names for each nonzero, in the same order, the weight it copies
/// (whose value is the nonzero's). Without a checkpoint the weights are the seeded initial ones.
#[test]
fn export_writes_the_compiled_matrix_and_its_parameters() {
    let d = scratch("show-export");
    let mtx = d.join("W.mtx");
    let o = run(&["show", "--model", "lenet5", "--layer", "3", "--export", s(&mtx)]);
    ok(&o);
    assert!(stdout(&o).contains("W.params.csv"), "{}", stdout(&o));
    assert_eq!(listing(&d), ["W.mtx", "W.params.csv"]);
    let text = std::fs::read_to_string(&mtx).unwrap();
    assert!(text.starts_with("%%MatrixMarket matrix coordinate real general"), "{}", &text[..80]);

    let spec = Spec::parse("1x28x28 > conv(6,5,pad=2) > relu > maxpool(2) > conv(16,5) > relu > maxpool(2) > dense(120) > relu > dense(84) > relu > dense(10)").unwrap();
    let mut net = Network::<f32>::new(&spec, Engine::Sparse);
    cnn_as_mlp::init::init_params(&mut net, cnn_as_mlp::init::Init::TorchDefault, 0);
    let want = compiled_nonzeros(&net, 3);
    let (rows, cols, got) = read_mtx(&mtx);
    assert_eq!((rows, cols), (1600, 1176));
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(*g, (w.0, w.1, w.2), "nonzero of row {} column {}", w.0, w.1);
    }
    assert!(got.iter().any(|g| g.2 != 0), "the weights are not all zero");
    let theta = &net.params[3][0].data;
    let sources = read_sources(&d.join("W.params.csv"));
    assert_eq!(sources.len(), want.len());
    for (f, w) in sources.iter().zip(&want) {
        assert_eq!((f[0].parse::<usize>().unwrap(), f[1].parse::<usize>().unwrap()), (w.0, w.1));
        assert_eq!(f[2], "3.weight");
        let p: usize = f[3].parse().unwrap();
        assert_eq!(p, w.3 as usize, "{f:?}");
        assert_eq!(theta[p].to_bits(), w.2, "{f:?}");
    }

    // Another seed: the same pattern, other values.
    let other = d.join("seed5.mtx");
    ok(&run(&["show", "--model", "lenet5", "--layer", "3", "--export", s(&other), "--seed", "5"]));
    let (_, _, got5) = read_mtx(&other);
    assert!(got5.iter().zip(&got).all(|(a, b)| (a.0, a.1) == (b.0, b.1)));
    assert!(got5.iter().zip(&got).any(|(a, b)| a.2 != b.2));
    assert!(d.join("seed5.params.csv").is_file());
}

/// From a checkpoint, the export holds the checkpoint's weights; a pool exports its fixed matrix as constants,
/// a replicate-padded border as the sum of the taps it adds.
#[test]
fn export_reads_checkpoints_pools_and_padded_borders() {
    let d = scratch("show-export-ckpt");
    let text = "1x6x6 > conv(3,3,pad=1,mode=replicate) > relu > avgpool(2) > dense(2)";
    let spec = Spec::parse(text).unwrap();
    let mut net = Network::<f32>::new(&spec, Engine::Sparse);
    cnn_as_mlp::init::init_params(&mut net, cnn_as_mlp::init::Init::TorchDefault, 11);
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("spec".to_string(), text.to_string());
    let ckpt = d.join("model.safetensors");
    cnn_as_mlp::checkpoint::write(&ckpt, &cnn_as_mlp::checkpoint::named(&net, &net.params, ""), &meta).unwrap();

    let conv = d.join("conv.mtx");
    ok(&run(&["show", "--checkpoint", s(&ckpt), "--layer", "0", "--export", s(&conv)]));
    let want = compiled_nonzeros(&net, 0);
    let (rows, cols, got) = read_mtx(&conv);
    assert_eq!((rows, cols), (108, 36));
    assert_eq!(got, want.iter().map(|w| (w.0, w.1, w.2)).collect::<Vec<_>>());
    let theta = &net.params[0][0].data;
    let sources = read_sources(&d.join("conv.params.csv"));
    let mut sums = 0;
    for (f, w) in sources.iter().zip(&want) {
        assert_eq!(f[2], "0.weight");
        let ids: Vec<usize> = f[3].split('+').map(|i| i.parse().unwrap()).collect();
        sums += usize::from(ids.len() > 1);
        let v = ids.iter().fold(0.0f32, |a, &i| a + theta[i]);
        assert_eq!(v.to_bits(), w.2, "{f:?}");
    }
    assert!(sums > 0, "a replicate-padded border adds taps");

    let pool = d.join("pool.mtx");
    ok(&run(&["show", "--checkpoint", s(&ckpt), "--layer", "2", "--export", s(&pool), "--out", s(&d.join("p.png"))]));
    assert!(d.join("p.png").is_file());
    let (rows, cols, got) = read_mtx(&pool);
    assert_eq!((rows, cols, got.len()), (27, 108, 108));
    assert!(got.iter().all(|g| g.2 == 0.25f32.to_bits()));
    assert!(read_sources(&d.join("pool.params.csv")).iter().all(|f| f[2] == "const" && f[3].is_empty()));
}

#[test]
fn export_errors() {
    let d = scratch("show-export-err");
    let a = |extra: &[&str]| {
        let mut v = vec!["show", "--model", "lenet5"];
        v.extend_from_slice(extra);
        run(&v)
    };
    fails(&a(&["--layer", "1", "--export", s(&d.join("w.mtx"))]), &["--layer 1", "no compiled sparse matrix"]);
    std::fs::create_dir_all(d.join("dir.mtx")).unwrap();
    fails(&a(&["--layer", "0", "--export", s(&d.join("dir.mtx"))]), &["dir.mtx", "directory"]);
    fails(&a(&["--layer", "0", "--export", s(&d.join("none/w.mtx"))]), &["w.mtx", "cannot write"]);
    assert_eq!(listing(&d), ["dir.mtx"]);
}
