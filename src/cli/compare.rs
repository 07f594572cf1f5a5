//! `cnn-as-mlp compare`: the tied sparse formulation against direct convolution and im2col, layer by
//! layer (see [`cnn_as_mlp::compare`]); with `--model`, the layers of one network and the whole network. Writes `compare.md`, `compare.csv`, `compare-time.png` and
//! `compare-memory.png` into the output directory and prints the Markdown table.

use std::path::PathBuf;

use super::common::{CliError, outln, write_file};
use super::draw::compare as draw;
use cnn_as_mlp::compare::{self, Config};

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Batch size [default: 64].
    #[arg(long, value_name = "B", allow_hyphen_values = true)]
    batch: Option<String>,
    /// Worker threads of the rayon pool everything runs in [default: all cores].
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    threads: Option<String>,
    /// Timed repeats after one warm-up; the median is reported, 1 to 10000 [default: 5].
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    repeats: Option<String>,
    /// Output directory [default: runs/compare-UNIXTIME]. A directory that holds an earlier comparison or
    /// a training run is refused.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// all, lenet, or a comma-separated list of grid names and one-layer specs ("16x8x8 > conv(8,3)")
    /// [default: all].
    #[arg(long, value_name = "all|lenet|LIST")]
    layers: Option<String>,
    /// One whole network instead of the grid (a preset or a spec): each of its conv, local and pool layers
    /// at its shape in the network, then the network on each engine (build time, index bytes, one training
    /// step, peak memory, gradient agreement) as `total` rows.
    #[arg(long, value_name = "PRESET|SPEC", conflicts_with = "layers")]
    model: Option<String>,
    /// Largest index structure to build, in bytes (k, M, G, KiB, MiB, GiB suffixes) [default: half of
    /// MemAvailable, or 8 GiB].
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    memory_limit: Option<String>,
    /// Measure nothing: redraw compare-time.png and compare-memory.png of the comparison in DIR from its
    /// compare.csv and the caption line of its compare.md.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["batch", "threads", "repeats", "out", "memory_limit", "seed", "sparsity"])]
    replot: Option<PathBuf>,
    /// Comma-separated kernel sparsities, each in [0, 1): every layer with parameters runs with a random
    /// mask removing that fraction of its kernel entries; writes compare-sparsity.png [default: 0].
    #[arg(long, value_name = "S,S,...", allow_hyphen_values = true)]
    sparsity: Option<String>,
    /// Seed of the random inputs and parameters [default: 0].
    #[arg(long, allow_hyphen_values = true)]
    seed: Option<String>,
    /// The crossover map instead of the grid: single convolutions `C×S×S > conv(C,3,pad=1)` over channels ×
    /// spatial size × batch, the sparse engine at kernel sparsity 0 and 0.9 (a random mask, as --sparsity),
    /// direct and im2col at 0; each timed as forward + input gradient + parameter gradient (medians of
    /// --repeats). Writes compare-map.csv (every cell and engine: times in ms, the fastest engine, the ratio
    /// sparse ÷ best of direct and im2col), compare-map.md (the same as tables) and compare-map.png (heat maps:
    /// one panel per batch, spatial size across, channels up; each cell coloured by its fastest engine, deeper
    /// the larger the ratio, labelled with it). A formulation over --memory-limit is skipped and marked. The
    /// default grid (72 cells) takes long: restrict it with --map-channels, --map-sizes, --map-batches [default: off, the grid].
    #[arg(long, conflicts_with_all = ["layers", "model", "replot", "sparsity", "batch"])]
    map: bool,
    /// Channels of the map (input and output), comma-separated [default: 3,8,16,32,64,128].
    #[arg(long, value_name = "C,C,...", requires = "map")]
    map_channels: Option<String>,
    /// Spatial sizes S of the map (input S×S), comma-separated [default: 8,16,32,56].
    #[arg(long, value_name = "S,S,...", requires = "map")]
    map_sizes: Option<String>,
    /// Batch sizes of the map, comma-separated [default: 1,8,64].
    #[arg(long, value_name = "B,B,...", requires = "map")]
    map_batches: Option<String>,
}

/// Parses a `--map-*` list: distinct positive integers, at most `max` each.
fn parse_list(name: &str, v: &Option<String>, default: &[usize], max: usize) -> Result<Vec<usize>, CliError> {
    let Some(list) = v else { return Ok(default.to_vec()) };
    let mut out = Vec::new();
    for item in list.split(',') {
        let t = item.trim();
        match t.parse::<usize>() {
            Ok(n) if n > 0 && n <= max && !out.contains(&n) => out.push(n),
            Ok(n) if out.contains(&n) => {
                return Err(CliError::other(format!("--{name} {list:?}: {n} is listed twice")));
            }
            _ => {
                return Err(CliError::other(format!(
                    "--{name} {list:?}: {t:?} is not an integer from 1 to {max} (e.g. --{name} {})",
                    default.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
                )));
            }
        }
    }
    Ok(out)
}

/// The most timed repeats per measurement.
const MAX_REPEATS: usize = 10_000;

/// The files a comparison writes into its directory.
const OUTPUT_FILES: [&str; 5] =
    ["compare.md", "compare.csv", "compare-time.png", "compare-memory.png", "compare-sparsity.png"];

/// Checks `--out` before anything is measured: a directory (or a new name) that is not a training run's,
/// holds no earlier comparison (its files are never replaced by another), and can be written; it is created here, so a read-only
/// place fails now rather than after every measurement.
fn check_out_dir(out: &std::path::Path) -> Result<(), CliError> {
    let shown = out.display();
    if out.exists() && !out.is_dir() {
        return Err(CliError::other(format!("--out {shown}: exists and is not a directory")));
    }
    if cnn_as_mlp::run::is_run_dir(out) {
        return Err(CliError::other(format!("--out {shown}: is a training run's directory; choose another")));
    }
    for name in OUTPUT_FILES {
        let f = out.join(name);
        cnn_as_mlp::atomic::check_target(&f).map_err(|e| CliError::other(format!("--out {shown}: {name} {e}")))?;
        if f.exists() {
            return Err(CliError::other(format!(
                "--out {shown}: holds an earlier comparison ({name}); choose another directory (or remove its compare files)"
            )));
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|e| CliError::other(format!("--out {shown}: cannot create the directory: {e}")))?;
    super::common::check_writable_dir("--out", out)
}

fn positive(name: &str, v: &Option<String>, default: usize) -> Result<usize, CliError> {
    match v {
        None => Ok(default),
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(CliError::other(format!("--{name} {s:?}: expected a positive integer"))),
        },
    }
}

/// `--replot DIR`: the plots again, from the files of an earlier comparison.
fn replot(dir: &std::path::Path) -> Result<(), CliError> {
    let read = |name: &str| {
        let p = dir.join(name);
        let bytes = cnn_as_mlp::read::read_regular(&p)
            .map_err(|e| CliError::other(format!("{}: cannot read: {e}", p.display())))?;
        String::from_utf8(bytes).map_err(|_| CliError::other(format!("{}: is not UTF-8 text", p.display())))
    };
    let rows = compare::read_csv(&read("compare.csv")?)
        .map_err(|e| CliError::other(format!("{}: {e}", dir.join("compare.csv").display())))?;
    let title = read("compare.md")?.lines().next().unwrap_or_default().to_string();
    // As a measuring run draws them: the layers only, not the whole network's `total` rows.
    let layers: Vec<_> = rows.iter().filter(|r| r.layer != "total").cloned().collect();
    draw::write_png(&dir.join("compare-time.png"), &layers, &title, draw::draw_time).map_err(CliError::other)?;
    draw::write_png(&dir.join("compare-memory.png"), &layers, &title, draw::draw_memory).map_err(CliError::other)?;
    // A comparison over several sparsities has its sparsity chart too.
    if layers.iter().any(|r| r.sparsity != layers[0].sparsity) {
        draw::write_png(&dir.join("compare-sparsity.png"), &layers, &title, draw::draw_sparsity)
            .map_err(CliError::other)?;
    }
    outln!("compare: redrew the plots of {} ({} rows)", dir.display(), rows.len());
    Ok(())
}

/// Parses `--sparsity`: comma-separated numbers in `[0, 1)`, distinct, at least one.
fn parse_sparsities(list: &str) -> Result<Vec<f64>, CliError> {
    let mut v: Vec<f64> = Vec::new();
    for item in list.split(',') {
        let s = item.trim();
        match s.parse::<f64>() {
            Ok(x) if (0.0..1.0).contains(&x) && !v.contains(&x) => v.push(x),
            Ok(x) if v.contains(&x) => {
                return Err(CliError::other(format!("--sparsity {list:?}: {s} is listed twice")));
            }
            _ => {
                return Err(CliError::other(format!(
                    "--sparsity {list:?}: {s:?} is not a sparsity in [0, 1) (e.g. --sparsity 0,0.5,0.9,0.99)"
                )));
            }
        }
    }
    Ok(v)
}

pub fn run(a: CompareArgs) -> Result<(), CliError> {
    if let Some(dir) = &a.replot {
        return replot(dir);
    }
    let batch = positive("batch", &a.batch, 64)?;
    let threads = positive("threads", &a.threads, std::thread::available_parallelism().map_or(1, |n| n.get()))?;
    if threads > super::common::MAX_THREADS {
        return Err(CliError::other(format!("--threads {threads}: at most {}", super::common::MAX_THREADS)));
    }
    let repeats = positive("repeats", &a.repeats, 5)?;
    if repeats > MAX_REPEATS {
        return Err(CliError::other(format!("--repeats {repeats}: at most {MAX_REPEATS}")));
    }
    let seed = match &a.seed {
        None => 0,
        Some(s) => {
            s.trim().parse::<u64>().map_err(|_| CliError::other(format!("--seed {s:?}: expected an integer")))?
        }
    };
    let memory_limit = match &a.memory_limit {
        None => compare::default_memory_limit(),
        Some(s) => compare::parse_bytes(s).ok_or_else(|| {
            CliError::other(format!("--memory-limit {s:?}: expected a byte count such as 4000000000 or 4GiB"))
        })?,
    };
    let sparsity = match &a.sparsity {
        None => vec![0.0],
        Some(list) => parse_sparsities(list)?,
    };
    if a.map {
        return run_map(&a, threads, repeats, seed, memory_limit);
    }
    let model = a.model.as_deref().map(super::common::parse_model).transpose()?;
    let cases = match &model {
        Some(spec) => compare::network_cases(spec),
        None => compare::select(a.layers.as_deref().unwrap_or("all")).map_err(CliError::other)?,
    };
    // A layer whose activations alone exceed what the process may use is refused before anything is allocated
    // or created (`--memory-limit` bounds what the formulations build on top of them).
    let avail = cnn_as_mlp::system::available();
    // Pruned levels bring one more: their zero-work floor.
    let levels = sparsity.len().max(1) + usize::from(sparsity.iter().any(|&s| s > 0.0));
    for c in &cases {
        let need = compare::activation_bytes(c, batch, levels);
        if need > avail.bytes {
            return Err(CliError::other(format!(
                "{} `{}` at batch {batch} needs about {need} bytes for its inputs, outputs and gradients, more than the {} bytes the process may use ({})",
                c.name,
                c.spec(),
                avail.bytes,
                avail.source
            )));
        }
    }
    let out = out_dir(&a, "compare")?;
    let pool = thread_pool(threads)?;
    let cfg = Config { batch, repeats, memory_limit, seed, sparsity: sparsity.clone() };
    let mut rows = Vec::new();
    pool.install(|| {
        for c in &cases {
            rows.extend(compare::run_case(c, &cfg, |what| super::common::errln(&format!("compare: {what}"))));
        }
        if let Some(spec) = &model {
            rows.extend(compare::run_network(spec, &cfg, |what| super::common::errln(&format!("compare: {what}"))));
        }
    });
    let header = compare::header(&cfg, threads, &compare::machine());
    let md = compare::markdown(&rows, &header);
    std::fs::create_dir_all(&out)
        .map_err(|e| CliError::other(format!("--out {}: cannot create the directory: {e}", out.display())))?;
    write_file(&out.join("compare.md"), md.as_bytes())?;
    write_file(&out.join("compare.csv"), compare::csv(&rows).as_bytes())?;
    // The plots' caption: batch, threads, repeats, seed; the machine; the memory limit.
    let title = header.clone();
    // The plots place layers by their FLOPs; the whole network's rows are in the tables only.
    let layers: Vec<_> = rows.iter().filter(|r| r.layer != "total").cloned().collect();
    draw::write_png(&out.join("compare-time.png"), &layers, &title, draw::draw_time).map_err(CliError::other)?;
    draw::write_png(&out.join("compare-memory.png"), &layers, &title, draw::draw_memory).map_err(CliError::other)?;
    if a.sparsity.is_some() {
        draw::write_png(&out.join("compare-sparsity.png"), &layers, &title, draw::draw_sparsity)
            .map_err(CliError::other)?;
    }
    {
        use std::io::Write as _;
        let _ = std::io::stdout().lock().write_all(md.as_bytes());
    }
    outln!("compare: wrote {}", out.display());
    Ok(())
}

/// `--out`, or `runs/PREFIX-UNIXTIME`; refused when it exists and is not a directory.
fn out_dir(a: &CompareArgs, prefix: &str) -> Result<PathBuf, CliError> {
    let out = a.out.clone().unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        PathBuf::from(format!("runs/{prefix}-{t}"))
    });
    check_out_dir(&out)?;
    Ok(out)
}

fn thread_pool(threads: usize) -> Result<rayon::ThreadPool, CliError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| CliError::other(format!("cannot start the thread pool: {e}")))
}

/// Largest channel count and spatial size `--map-*` accept (a cell beyond them is far past any memory limit).
const MAP_MAX_CHANNELS: usize = 4096;
const MAP_MAX_SIZE: usize = 1024;
const MAP_MAX_BATCH: usize = 4096;

/// `--map`: the crossover map ([`cnn_as_mlp::compare::map`]).
fn run_map(a: &CompareArgs, threads: usize, repeats: usize, seed: u64, memory_limit: usize) -> Result<(), CliError> {
    use cnn_as_mlp::compare::map;
    let grid = map::MapGrid {
        channels: parse_list("map-channels", &a.map_channels, &map::CHANNELS, MAP_MAX_CHANNELS)?,
        sizes: parse_list("map-sizes", &a.map_sizes, &map::SIZES, MAP_MAX_SIZE)?,
        batches: parse_list("map-batches", &a.map_batches, &map::BATCHES, MAP_MAX_BATCH)?,
    };
    let out = out_dir(a, "compare-map")?;
    let pool = thread_pool(threads)?;
    let start = std::time::Instant::now();
    let rows = pool.install(|| {
        map::run_map(&grid, repeats, memory_limit, seed, |what| {
            eprintln!("compare: [{:.0} s] {what}", start.elapsed().as_secs_f64())
        })
    });
    let elapsed = start.elapsed().as_secs_f64();
    let cfg = Config { batch: 0, repeats, memory_limit, seed, sparsity: map::MAP_SPARSITY.to_vec() };
    // The header names the batch of each panel instead of one batch.
    let header = compare::header(&cfg, threads, &compare::machine()).replacen("batch 0, ", "", 1);
    let header = format!("crossover map, {} cells measured in {elapsed:.0} s; {header}", grid.cells());
    let md = map::map_markdown(&rows, &header);
    std::fs::create_dir_all(&out)
        .map_err(|e| CliError::other(format!("--out {}: cannot create the directory: {e}", out.display())))?;
    write_file(&out.join("compare-map.md"), md.as_bytes())?;
    write_file(&out.join("compare-map.csv"), map::map_csv(&rows).as_bytes())?;
    super::draw::map::write_png(&out.join("compare-map.png"), &rows, &header).map_err(CliError::other)?;
    {
        use std::io::Write as _;
        let _ = std::io::stdout().lock().write_all(md.as_bytes());
    }
    outln!("compare: wrote {} ({} cells in {elapsed:.0} s)", out.display(), grid.cells());
    Ok(())
}
