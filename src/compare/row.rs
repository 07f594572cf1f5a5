//! The records of a comparison: its settings ([`Config`]) and one measured row per layer, engine and
//! sparsity ([`Row`], [`Status`]), with the `serde` forms of their fields in `compare.csv`.

use crate::engines::Engine;

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
///
/// A row of `compare.csv`, whose columns are the fields in this order under their `serde` names
/// ([`super::report::csv`], [`super::report::read_csv`]): numbers as Rust prints them, times and differences in exponent
/// notation, `None` as an empty field.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub layer: String,
    pub spec: String,
    /// Fraction of kernel entries removed by the layer's random mask (0 for layers without parameters;
    /// files written before this column read as 0).
    #[serde(serialize_with = "shortest", default)]
    pub sparsity: f64,
    #[serde(rename = "formulation", serialize_with = "engine_name", deserialize_with = "engine")]
    pub engine: Engine,
    #[serde(serialize_with = "display", deserialize_with = "status")]
    pub status: Status,
    #[serde(serialize_with = "exp")]
    pub compile_s: Option<f64>,
    #[serde(serialize_with = "exp")]
    pub forward_s: Option<f64>,
    #[serde(serialize_with = "exp")]
    pub input_grad_s: Option<f64>,
    /// `None` also for layers without parameters.
    #[serde(serialize_with = "exp")]
    pub param_grad_s: Option<f64>,
    /// Bytes of the index structure: the compiled matrix (sparse), the per-call column buffer (im2col),
    /// 0 (direct).
    pub index_bytes: usize,
    /// [`crate::budget::index::estimate_index_bytes`] (sparse rows only).
    #[serde(rename = "estimated_index_bytes")]
    pub estimated_bytes: Option<usize>,
    /// Bytes of the parameters (kernel and bias, f32).
    pub param_bytes: usize,
    pub nnz: usize,
    /// `2·nnz·batch`: the FLOPs of one product of the sparse formulation.
    #[serde(serialize_with = "shortest")]
    pub flops: f64,
    #[serde(rename = "max_diff_forward", serialize_with = "exp")]
    pub diff_forward: Option<f64>,
    #[serde(rename = "max_diff_input_grad", serialize_with = "exp")]
    pub diff_input_grad: Option<f64>,
    #[serde(rename = "max_diff_param_grad", serialize_with = "exp")]
    pub diff_param_grad: Option<f64>,
    /// One full training step of the whole network (`total` rows of `compare --model` only).
    #[serde(serialize_with = "exp")]
    pub step_s: Option<f64>,
    /// Peak resident memory of the whole network's run (`total` rows only, where `/proc` tells).
    #[serde(rename = "peak_rss_bytes")]
    pub peak_bytes: Option<usize>,
    /// What the sparse formulation's products put in the vector lanes at this batch
    /// ([`crate::tied::products::layout`]: `samples`, `positions`, `channels`); empty for the others and in
    /// files written before this column.
    #[serde(default)]
    pub layout: Option<String>,
    /// The zero-work floor of a pruned sparse row (sparsity > 0): forward + input gradient + parameter
    /// gradient of the same layer compiled with a mask that keeps nothing, timed in the same rounds — the
    /// cost of reading and writing the activations, which no pruning removes. Empty elsewhere and in files
    /// written before this column.
    #[serde(serialize_with = "exp", default)]
    pub floor_s: Option<f64>,
}

impl Row {
    /// Forward + input gradient + parameter gradient (a layer without parameters has none), if timed.
    pub fn total_s(&self) -> Option<f64> {
        Some(self.forward_s? + self.input_grad_s? + self.param_grad_s.unwrap_or(0.0))
    }

    /// A row of `engine` on `layer` (`spec`) at sparsity 0 that ran and measured nothing yet: every time,
    /// difference and byte count empty or zero.
    pub fn new(layer: impl Into<String>, spec: impl Into<String>, engine: Engine) -> Row {
        Row {
            layer: layer.into(),
            spec: spec.into(),
            sparsity: 0.0,
            engine,
            status: Status::Ran,
            compile_s: None,
            forward_s: None,
            input_grad_s: None,
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
            layout: None,
            floor_s: None,
        }
    }
}

/// Settings of a comparison.
#[derive(Clone, Debug)]
pub struct Config {
    pub batch: usize,
    pub repeats: usize,
    /// Bytes a formulation's index structure may take.
    pub memory_limit: usize,
    pub seed: u64,
    /// Kernel sparsities to measure, each in `[0, 1)`: a random mask removes that fraction of the kernel
    /// entries of each layer with parameters ([`super::measure::random_mask`]).
    pub sparsity: Vec<f64>,
}

/// The reasons a formulation does not apply, as [`Status::NotApplicable`] holds them.
const NOT_APPLICABLE: [&str; 1] = ["no im2col lowering for this layer kind"];

/// `v` as Rust prints it (`{v}`).
fn shortest<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn display<S: serde::Serializer>(v: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// A time or a difference in exponent notation (`{v:e}`), or an empty field.
fn exp<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) => s.collect_str(&format_args!("{x:e}")),
        None => s.serialize_none(),
    }
}

fn engine_name<S: serde::Serializer>(e: &Engine, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(e.name())
}

fn engine<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Engine, D::Error> {
    let name = <String as serde::Deserialize>::deserialize(d)?;
    Engine::from_name(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown formulation {name:?}")))
}

/// [`Status`] from its text (its `Display`).
fn status<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
    use serde::de::Error;
    let s = <String as serde::Deserialize>::deserialize(d)?;
    if s == "ok" {
        return Ok(Status::Ran);
    }
    if let Some(n) = s.strip_prefix("does not fit: needs ").and_then(|n| n.strip_suffix(" bytes")) {
        return n.parse().map(Status::DoesNotFit).map_err(|_| D::Error::custom(format!("bad byte count in {s:?}")));
    }
    NOT_APPLICABLE
        .iter()
        .find(|r| s.strip_prefix("n/a: ") == Some(**r))
        .map(|r| Status::NotApplicable(r))
        .ok_or_else(|| D::Error::custom(format!("unknown status {s:?}")))
}
