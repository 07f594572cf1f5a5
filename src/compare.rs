//! The research comparison behind `cnn-as-mlp compare`: one layer at a time, the tied sparse
//! formulation against direct convolution and im2col + GEMM.
//!
//! For every layer of a grid and every formulation it measures, at one batch size in f32 with seeded
//! random inputs: the median time of the forward pass, the input gradient and the parameter gradient
//! over `repeats` runs after one warm-up; the time to build the layer (for the sparse formulation: to
//! compile its matrix); the bytes of the index structure the formulation needs besides the kernel; the
//! number of nonzeros; and the largest absolute difference of each result from the direct reference.
//!
//! Before a sparse layer is compiled, [`estimate_index_bytes`] bounds its index bytes from the geometry
//! alone; a layer whose bound exceeds the memory limit is reported as not fitting and never compiled.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::geometry::{ConvGeometry, PaddingMode, PoolGeometry};
use crate::layers::LinearMap;
use crate::network::{Engine, build_map};
use crate::spec::{Layer, Shape, Spec, conv_geometry};
use crate::tensor::Tensor;

/// One layer of the grid: a name, its input shape and the layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub name: String,
    pub input: Shape,
    pub layer: Layer,
}

impl Case {
    fn new(name: &str, spec: &str) -> Self {
        let s = Spec::parse(spec).expect("grid specs parse");
        Case { name: name.into(), input: s.input, layer: s.layers[0] }
    }

    /// `CxHxW > layer`.
    pub fn spec(&self) -> String {
        format!("{} > {}", self.input, self.layer)
    }

    /// The output shape.
    pub fn output(&self) -> Shape {
        let spec = Spec { input: self.input, layers: vec![self.layer] };
        spec.output().expect("cases are checked")
    }

    fn pool(&self) -> Option<PoolGeometry> {
        let i = self.input;
        match self.layer {
            Layer::MaxPool { k, stride } | Layer::AvgPool { k, stride } => {
                Some(PoolGeometry { c: i.c, h_in: i.h, w_in: i.w, k, stride })
            }
            _ => None,
        }
    }

    /// Whether im2col + GEMM applies (convolutions only; the im2col engine runs pools directly).
    pub fn has_im2col(&self) -> bool {
        matches!(self.layer, Layer::Conv { .. })
    }
}

/// Names of LeNet-5's layers in the grid.
pub const LENET: [&str; 4] = ["lenet-conv1", "lenet-pool1", "lenet-conv2", "lenet-pool2"];

/// The default grid: LeNet-5's convolutions and pools, then common CNN layers up to a 56×56 layer with 64
/// channels in and out (the memory wall of the sparse formulation).
pub fn grid() -> Vec<Case> {
    [
        ("lenet-conv1", "1x28x28 > conv(6,5,pad=2)"),
        ("lenet-pool1", "6x28x28 > maxpool(2)"),
        ("lenet-conv2", "6x14x14 > conv(16,5)"),
        ("lenet-pool2", "16x10x10 > maxpool(2)"),
        ("c3-32", "3x32x32 > conv(32,3,pad=1)"),
        ("c32-64", "32x16x16 > conv(64,3,pad=1)"),
        ("stride2", "16x32x32 > conv(32,3,stride=2,pad=1)"),
        ("dil2", "16x32x32 > conv(16,3,pad=2,dil=2)"),
        ("1x1", "64x16x16 > conv(64,1)"),
        ("c64-56", "64x56x56 > conv(64,3,pad=1)"),
    ]
    .iter()
    .map(|(n, s)| Case::new(n, s))
    .collect()
}

/// Splits at commas outside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out
}

/// Parses `--layers`: `all`, `lenet`, or a comma-separated list of grid names and one-layer specs
/// (`"16x8x8 > conv(8,3,pad=1)"`; conv, local, maxpool or avgpool).
pub fn select(sel: &str) -> Result<Vec<Case>, String> {
    let grid = grid();
    let mut out = Vec::new();
    for item in split_top_level(sel) {
        match item {
            "all" => out.extend(grid.iter().cloned()),
            "lenet" => out.extend(grid.iter().filter(|c| LENET.contains(&c.name.as_str())).cloned()),
            _ => {}
        }
        if item == "all" || item == "lenet" {
            continue;
        }
        if let Some(c) = grid.iter().find(|c| c.name == item) {
            out.push(c.clone());
            continue;
        }
        if !item.contains('>') {
            let names: Vec<&str> = grid.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "--layers: unknown layer {item:?} (expected all, lenet, or a list of {} or one-layer specs like \"16x8x8 > conv(8,3)\")",
                names.join(", ")
            ));
        }
        let spec = Spec::parse(item).map_err(|e| format!("--layers: {e}"))?;
        match spec.layers.as_slice() {
            [l @ (Layer::Conv { .. } | Layer::Local { .. } | Layer::MaxPool { .. } | Layer::AvgPool { .. })] => {
                out.push(Case { name: item.replace(' ', ""), input: spec.input, layer: *l })
            }
            _ => {
                return Err(format!(
                    "--layers: {item:?} must be one conv, local, maxpool or avgpool layer after the input shape"
                ));
            }
        }
    }
    if out.is_empty() {
        return Err("--layers: no layer selected".into());
    }
    Ok(out)
}

/// Number of `(output position, kernel offset)` pairs along one axis whose padded coordinate lies inside
/// the input.
fn axis_inside(n: usize, n_out: usize, k: usize, stride: usize, pad: usize, dil: usize) -> usize {
    let mut count = 0;
    for o in 0..n_out {
        for kk in 0..k {
            let p = (o * stride + kk * dil) as isize - pad as isize;
            if (0..n as isize).contains(&p) {
                count += 1;
            }
        }
    }
    count
}

/// Taps of a convolution: `(inside, all)`, where `all = c_out·h_out·w_out·c_in·k²` and `inside` counts
/// the taps that read an input value without padding (the nonzeros under zero padding).
pub fn conv_taps(g: &ConvGeometry) -> (usize, usize) {
    let (h_out, w_out) = (g.h_out(), g.w_out());
    let all = g.out_len() * g.c_in * g.k * g.k;
    let inside = g.c_out
        * g.c_in
        * axis_inside(g.h_in, h_out, g.k, g.stride, g.pad, g.dil)
        * axis_inside(g.w_in, w_out, g.k, g.stride, g.pad, g.dil);
    (inside, all)
}

/// Number of nonzeros of the compiled matrix, from the geometry: exact for zero padding and pools, an
/// upper bound for the other padding modes (where taps may meet).
pub fn nnz_bound(case: &Case) -> usize {
    if let Some(g) = conv_geometry(&case.layer, case.input) {
        let (inside, all) = conv_taps(&g);
        if g.mode == PaddingMode::Zeros { inside } else { all }
    } else if let Some(p) = case.pool() {
        p.out_len() * p.k * p.k
    } else {
        0
    }
}

/// An upper bound on [`crate::tied::TiedMatrix::index_bytes`] of the layer's compiled matrix, computed
/// from the geometry without compiling it.
///
/// With `rows × cols` the matrix shape and `nnz` bounded by [`nnz_bound`]: `W` and `Wᵀ` each take a u32
/// column and a u32 code per nonzero plus `rows + 1` (`cols + 1`) u32 row pointers; the row groups of each
/// take at most `rows + 1` pointers and `rows` row ids (a partition of the rows); a pool has one constant
/// (8 bytes); scatter segments take 16 bytes each; the gradient plan is bounded per row group, the separable-group tables per row. Under reflect, replicate or circular padding a compound entry needs at least one tap in the
/// padding per extra parameter, so the compound tables take at most `12·padded + 4` bytes.
pub fn estimate_index_bytes(case: &Case) -> usize {
    let out = case.output().len();
    let inp = case.input.len();
    let nnz = nnz_bound(case);
    let csr = 8 * nnz + 4 * (out + 1) + 8 * nnz + 4 * (inp + 1);
    let groups = 4 * (2 * out + 1) + 4 * (2 * inp + 1);
    // Scatter segments: one per output channel of a convolution, one per row of a locally connected
    // layer (every row its own parameters), one for a pool (no parameters).
    let n_segments = match case.layer {
        Layer::Conv { c_out, .. } => c_out,
        Layer::Local { .. } => out,
        _ => 1,
    };
    let segments = std::mem::size_of::<crate::tied::ScatterSegment>() * n_segments;
    let extra = match conv_geometry(&case.layer, case.input) {
        Some(g) if g.mode != PaddingMode::Zeros => {
            let (inside, all) = conv_taps(&g);
            12 * (all - inside) + 4
        }
        Some(_) => 4,
        None => 8 + 4,
    };
    // The gradient plan: per row group (positions × ⌈c_out/16⌉) its id, a column per tap of its class (at
    // most c_in·k²) and its rows; per class (⌈c_out/16⌉ for a convolution whose positions share the kernel,
    // every group for a locally connected layer) its taps and at most 16 offsets of 8 bytes. A pool lists its
    // groups as the per-nonzero rest.
    let plan = match conv_geometry(&case.layer, case.input) {
        Some(g) => {
            let per_position = g.c_out.div_ceil(crate::tied::RowGroups::MAX_ROWS);
            let n_groups = g.h_out() * g.w_out() * per_position;
            let n_classes = if matches!(case.layer, Layer::Local { .. }) { n_groups } else { per_position };
            let taps = g.c_in * g.k * g.k;
            4 * n_groups * (1 + taps) + 4 * out + n_classes * (4 * taps + 8 * crate::tied::RowGroups::MAX_ROWS)
        }
        None => 4 * out,
    };
    // Separable groups of W and Wᵀ: a start per group and an offset per row, at most; a pool (no
    // parameters) has no separable group, only the starts.
    let separable = if case.pool().is_some() { 4 * (out + inp) } else { 8 * (out + inp) };
    csr + groups + segments + extra + plan + separable
}

/// Bytes of im2col's scratch: the column buffer `col` and its gradient `δcol`, `[B·P, Q]` f32 each, which an
/// im2col layer keeps between calls.
pub fn im2col_bytes(case: &Case, batch: usize) -> usize {
    conv_geometry(&case.layer, case.input).map_or(0, |g| 2 * 4 * batch * g.h_out() * g.w_out() * g.c_in * g.k * g.k)
}

/// What happened to one formulation of one layer.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Ran,
    /// Not attempted: the index structure needs more bytes than the limit.
    DoesNotFit(usize),
    /// The formulation does not exist for this layer kind.
    NotApplicable(&'static str),
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Ran => f.write_str("ok"),
            Status::DoesNotFit(n) => write!(f, "does not fit: needs {n} bytes"),
            Status::NotApplicable(why) => write!(f, "n/a: {why}"),
        }
    }
}

/// Measurements of one formulation on one layer. Times in seconds; `None` where not measured.
#[derive(Clone, Debug)]
pub struct Row {
    pub layer: String,
    pub spec: String,
    pub engine: Engine,
    pub status: Status,
    pub compile_s: Option<f64>,
    pub forward_s: Option<f64>,
    pub input_grad_s: Option<f64>,
    /// `None` also for layers without parameters.
    pub param_grad_s: Option<f64>,
    /// Bytes of the index structure: the compiled matrix (sparse), the per-call column buffer (im2col),
    /// 0 (direct).
    pub index_bytes: usize,
    /// [`estimate_index_bytes`] (sparse rows only).
    pub estimated_bytes: Option<usize>,
    /// Bytes of the parameters (kernel and bias, f32).
    pub param_bytes: usize,
    pub nnz: usize,
    /// `2·nnz·batch`: the FLOPs of one product of the sparse formulation.
    pub flops: f64,
    pub diff_forward: Option<f64>,
    pub diff_input_grad: Option<f64>,
    pub diff_param_grad: Option<f64>,
}

/// Settings of a comparison.
#[derive(Clone, Debug)]
pub struct Config {
    pub batch: usize,
    pub repeats: usize,
    /// Bytes a formulation's index structure may take.
    pub memory_limit: usize,
    pub seed: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).fold(0.0, f64::max)
}

fn time(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// Results of one formulation: output, input gradient, parameter gradients (flattened).
struct Outputs {
    z: Vec<f32>,
    dx: Vec<f32>,
    dtheta: Vec<f32>,
}

/// Runs one layer on every formulation (rows in the order sparse, direct, im2col). Call inside the
/// rayon pool whose threads are to be measured.
pub fn run_case(case: &Case, cfg: &Config, mut progress: impl FnMut(&str)) -> Vec<Row> {
    let (inp, out) = (case.input.len(), case.output().len());
    let b = cfg.batch;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let x = DMatrix::<f32>::from_fn(b, inp, |_, _| rng.random_range(-1.0..1.0));
    let dz = DMatrix::<f32>::from_fn(b, out, |_, _| rng.random_range(-1.0..1.0));
    let reference = build_map::<f32>(&case.layer, case.input, Engine::Direct).expect("a linear layer");
    let fan_in = conv_geometry(&case.layer, case.input).map_or(1, |g| g.c_in * g.k * g.k);
    let bound = 1.0 / (fan_in as f32).sqrt();
    let params: Vec<Tensor<f32>> = reference
        .param_shapes()
        .iter()
        .map(|(_, s)| {
            let n = s.iter().product();
            Tensor::from_vec(s, (0..n).map(|_| rng.random_range(-bound..bound)).collect())
        })
        .collect();
    drop(reference);
    let param_bytes = 4 * params.iter().map(Tensor::len).sum::<usize>();
    let has_params = !params.is_empty();
    let nnz = nnz_bound(case);
    let estimate = estimate_index_bytes(case);

    let mut rows = Vec::new();
    let mut ref_out: Option<Outputs> = None;
    // Direct first: it is the reference the others are compared with.
    for engine in [Engine::Direct, Engine::Sparse, Engine::Im2col] {
        let mut row = Row {
            layer: case.name.clone(),
            spec: case.spec(),
            engine,
            status: Status::Ran,
            compile_s: None,
            forward_s: None,
            input_grad_s: None,
            param_grad_s: None,
            index_bytes: 0,
            estimated_bytes: (engine == Engine::Sparse).then_some(estimate),
            param_bytes,
            nnz,
            flops: 2.0 * nnz as f64 * b as f64,
            diff_forward: None,
            diff_input_grad: None,
            diff_param_grad: None,
        };
        match engine {
            Engine::Sparse if estimate > cfg.memory_limit => row.status = Status::DoesNotFit(estimate),
            Engine::Im2col if !case.has_im2col() => {
                row.status = Status::NotApplicable("no im2col lowering for this layer kind")
            }
            Engine::Im2col if im2col_bytes(case, b) > cfg.memory_limit => {
                row.status = Status::DoesNotFit(im2col_bytes(case, b))
            }
            _ => {
                progress(&format!("{} on {}", case.name, engine.name()));
                let (r, outputs) = measure(case, cfg, engine, &params, &x, &dz);
                row.compile_s = Some(r.0);
                row.forward_s = Some(r.1);
                row.input_grad_s = Some(r.2);
                row.param_grad_s = has_params.then_some(r.3);
                row.index_bytes = match engine {
                    Engine::Sparse => r.4,
                    Engine::Im2col => im2col_bytes(case, b),
                    Engine::Direct => 0,
                };
                if engine == Engine::Sparse {
                    row.nnz = r.5;
                    row.flops = 2.0 * r.5 as f64 * b as f64;
                }
                match &ref_out {
                    None => ref_out = Some(outputs),
                    Some(o) => {
                        row.diff_forward = Some(max_abs_diff(&outputs.z, &o.z));
                        row.diff_input_grad = Some(max_abs_diff(&outputs.dx, &o.dx));
                        row.diff_param_grad = has_params.then(|| max_abs_diff(&outputs.dtheta, &o.dtheta));
                    }
                }
                if engine == Engine::Direct {
                    row.diff_forward = Some(0.0);
                    row.diff_input_grad = Some(0.0);
                    row.diff_param_grad = has_params.then_some(0.0);
                }
            }
        }
        rows.push(row);
    }
    // Report order: sparse, direct, im2col.
    rows.swap(0, 1);
    rows
}

/// Builds and times one formulation: (compile, forward, input gradient, parameter gradient, index bytes,
/// nnz) and the results of the last repeat.
fn measure(
    case: &Case,
    cfg: &Config,
    engine: Engine,
    params: &[Tensor<f32>],
    x: &DMatrix<f32>,
    dz: &DMatrix<f32>,
) -> ((f64, f64, f64, f64, usize, usize), Outputs) {
    let t0 = Instant::now();
    let mut map: Box<dyn LinearMap<f32>> = build_map(&case.layer, case.input, engine).expect("a linear layer");
    let compile = t0.elapsed().as_secs_f64();
    let (out, inp) = map.dims();
    let b = x.nrows();
    let mut z = DMatrix::<f32>::zeros(b, out);
    let mut dx = DMatrix::<f32>::zeros(b, inp);
    let mut grads: Vec<Tensor<f32>> = params.iter().map(|p| Tensor::zeros(&p.shape)).collect();
    let (mut tf, mut ti, mut tp) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..=cfg.repeats {
        let f = time(|| map.forward(params, x, &mut z));
        let i = time(|| map.backward_input(&mut dx, params, dz));
        grads.iter_mut().for_each(Tensor::fill_zero);
        let p = time(|| map.backward_params(&mut grads, x, dz));
        if rep > 0 {
            tf.push(f);
            ti.push(i);
            tp.push(p);
        }
    }
    let index = map.index_bytes();
    let nnz = map.tied().map_or(0, |t| t.nnz());
    let outputs = Outputs {
        z: z.as_slice().to_vec(),
        dx: dx.as_slice().to_vec(),
        dtheta: grads.iter().flat_map(|t| t.data.iter().copied()).collect(),
    };
    ((compile, median(tf), median(ti), median(tp), index, nnz), outputs)
}

/// The CPU model (from `/proc/cpuinfo`) and the number of cores.
pub fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string());
    let cores = info.lines().filter(|l| l.starts_with("processor")).count();
    let cores = if cores > 0 { cores } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
    format!("{model}, {cores} cores")
}

/// Half of `MemAvailable` from `/proc/meminfo`, or 8 GiB if it cannot be read.
pub fn default_memory_limit() -> usize {
    let kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<usize>().ok())
    });
    kb.map_or(8 << 30, |kb| kb * 1024 / 2)
}

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

pub mod plot {
    //! The two PNG plots of a comparison: time against FLOPs, memory against FLOPs, log axes.

    use super::{Row, Status};
    use crate::network::Engine;
    use plotters::prelude::*;
    use std::path::Path;

    fn color(e: Engine) -> RGBColor {
        match e {
            Engine::Sparse => RGBColor(214, 39, 40),
            Engine::Direct => RGBColor(31, 119, 180),
            Engine::Im2col => RGBColor(44, 160, 44),
        }
    }

    type Series = (String, RGBColor, Vec<(f64, f64)>);
    type Getter = fn(&Row) -> Option<f64>;

    /// Draws a plot of the rows into a PNG file.
    pub type Draw = fn(&Path, &[Row], &str) -> Result<(), Box<dyn std::error::Error>>;

    fn range(series: &[Series], f: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
        let v = series.iter().flat_map(|s| s.2.iter().map(&f));
        let (lo, hi) = v.fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
        if lo.is_finite() && hi > 0.0 { (lo / 2.0, hi * 2.0) } else { (1.0, 10.0) }
    }

    fn panel(
        area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
        caption: &str,
        y_desc: &str,
        series: &[Series],
    ) -> Result<(), Box<dyn std::error::Error>> {
        let (x0, x1) = range(series, |p| p.0);
        let (y0, y1) = range(series, |p| p.1);
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .caption(caption, ("sans-serif", 16))
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("MFLOP per product (2·nnz·batch)")
            .y_desc(y_desc)
            .x_label_formatter(&|v| short(*v))
            .y_label_formatter(&|v| short(*v))
            .draw()?;
        for (name, c, pts) in series {
            let c = *c;
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c));
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
        Ok(())
    }

    /// An axis label: plain decimals between 0.01 and 10⁴, `1e6` style outside.
    fn short(v: f64) -> String {
        if v == 0.0 {
            "0".into()
        } else if (0.01..10_000.0).contains(&v.abs()) {
            let t = format!("{v:.3}");
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            format!("{v:.0e}")
        }
    }

    fn sorted(mut v: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
        v.retain(|p| p.0 > 0.0 && p.1 > 0.0);
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    }

    /// Time (ms) against MFLOP, one panel per product, one line per formulation.
    pub fn draw_time(path: &Path, rows: &[Row], title: &str) -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (1500, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 20))?;
        let panels = root.split_evenly((1, 3));
        let getters: [(&str, Getter); 3] = [
            ("forward", |r| r.forward_s),
            ("input gradient", |r| r.input_grad_s),
            ("parameter gradient", |r| r.param_grad_s),
        ];
        for (area, (caption, get)) in panels.iter().zip(getters) {
            let series: Vec<Series> = Engine::ALL
                .iter()
                .map(|&e| {
                    let pts = rows
                        .iter()
                        .filter(|r| r.engine == e && r.status == Status::Ran)
                        .filter_map(|r| get(r).map(|t| (r.flops / 1e6, t * 1e3)))
                        .collect();
                    (e.name().to_string(), color(e), sorted(pts))
                })
                .collect();
            panel(area, caption, "median time (ms)", &series)?;
        }
        root.present()?;
        Ok(())
    }

    /// Bytes against MFLOP: the sparse index (compiled, or estimated where it does not fit), im2col's scratch
    /// (col and δcol), the parameters.
    pub fn draw_memory(path: &Path, rows: &[Row], title: &str) -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (800, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 20))?;
        let pick = |e: Engine, f: fn(&Row) -> Option<f64>| {
            sorted(rows.iter().filter(|r| r.engine == e).filter_map(|r| f(r).map(|b| (r.flops / 1e6, b))).collect())
        };
        let series: Vec<Series> = vec![
            (
                "sparse index (W, Wᵀ, groups)".into(),
                color(Engine::Sparse),
                pick(Engine::Sparse, |r| match r.status {
                    Status::Ran => Some(r.index_bytes as f64),
                    _ => None,
                }),
            ),
            (
                "sparse index, estimate".into(),
                RGBColor(255, 152, 150),
                pick(Engine::Sparse, |r| r.estimated_bytes.map(|b| b as f64)),
            ),
            (
                "im2col col + δcol scratch".into(),
                color(Engine::Im2col),
                pick(Engine::Im2col, |r| match r.status {
                    Status::NotApplicable(_) => None,
                    _ => Some(r.index_bytes.max(1) as f64),
                }),
            ),
            (
                "parameters (kernel + bias)".into(),
                RGBColor(90, 90, 90),
                pick(Engine::Direct, |r| Some(r.param_bytes as f64)),
            ),
        ];
        panel(&root, "memory", "bytes", &series)?;
        root.present()?;
        Ok(())
    }
}

/// Writes a PNG drawn by `draw` atomically ([`crate::atomic`]).
pub fn write_png(path: &Path, rows: &[Row], title: &str, draw: plot::Draw) -> Result<(), String> {
    crate::plot::register_font();
    crate::atomic::write_with(path, |tmp| draw(tmp, rows, title)).map_err(|f| match f {
        crate::atomic::Failure::Fill(e) => format!("{}: cannot draw the plot: {e}", path.display()),
        crate::atomic::Failure::Io(e) => format!("{}: cannot write: {e}", path.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(spec: &str) -> Case {
        Case::new(spec, spec)
    }

    /// The estimate bounds the real index bytes, and is tight (within 20%) under zero padding.
    #[test]
    fn estimate_bounds_index_bytes() {
        for spec in [
            "1x28x28 > conv(6,5,pad=2)",
            "6x14x14 > conv(16,5)",
            "3x9x9 > conv(4,3,stride=2,pad=1)",
            "2x11x11 > conv(3,3,pad=2,dil=2)",
            "4x6x6 > conv(5,1)",
            "2x7x7 > conv(3,3,pad=1,mode=reflect)",
            "2x5x5 > conv(2,3,pad=2,mode=circular)",
            "2x6x6 > conv(2,3,pad=2,mode=replicate)",
            "2x8x8 > local(3,3,pad=1)",
            "6x28x28 > maxpool(2)",
            "3x9x9 > avgpool(3,stride=2)",
        ] {
            let c = case(spec);
            let real = build_map::<f32>(&c.layer, c.input, Engine::Sparse).unwrap();
            let (real_bytes, real_nnz) = (real.index_bytes(), real.tied().unwrap().nnz());
            let est = estimate_index_bytes(&c);
            assert!(est >= real_bytes, "{spec}: estimate {est} < real {real_bytes}");
            assert!(nnz_bound(&c) >= real_nnz, "{spec}: nnz bound {} < {real_nnz}", nnz_bound(&c));
            let zeros = !spec.contains("mode=");
            if zeros {
                assert_eq!(nnz_bound(&c), real_nnz, "{spec}: nnz is exact under zero padding");
                assert!((est as f64) < 1.2 * real_bytes as f64, "{spec}: estimate {est} loose against {real_bytes}");
            }
        }
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

    #[test]
    fn layer_selection() {
        assert_eq!(select("all").unwrap().len(), grid().len());
        assert_eq!(select("lenet").unwrap().len(), 4);
        let v = select("1x1, 4x8x8 > conv(2,3)").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(select("lenet,1x1").unwrap().len(), 5);
        assert_eq!(v[1].output(), Shape { c: 2, h: 6, w: 6 });
        assert!(select("conv9").unwrap_err().contains("conv9"));
        assert!(select("4x8x8 > dense(3)").is_err());
    }

    /// Small layers: every formulation runs and agrees with the direct reference.
    #[test]
    fn formulations_agree() {
        let cfg = Config { batch: 3, repeats: 1, memory_limit: usize::MAX, seed: 1 };
        for c in select("lenet-pool2, 3x7x7 > conv(4,3,stride=2,pad=1,dil=2)").unwrap() {
            let rows = run_case(&c, &cfg, |_| {});
            assert_eq!(rows.iter().map(|r| r.engine).collect::<Vec<_>>(), Engine::ALL.to_vec());
            for r in rows.iter().filter(|r| r.status == Status::Ran) {
                for d in [r.diff_forward, r.diff_input_grad, r.diff_param_grad].into_iter().flatten() {
                    assert!(d < 1e-5, "{}: {:?}", c.name, r);
                }
            }
        }
    }
}
