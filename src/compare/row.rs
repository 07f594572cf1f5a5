//! The records of a comparison: its settings ([`Config`]) and one measured row per layer, engine and
//! sparsity ([`Row`], [`Status`]).

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
#[derive(Clone, Debug)]
pub struct Row {
    pub layer: String,
    pub spec: String,
    /// Fraction of kernel entries removed by the layer's random mask (0 for layers without parameters).
    pub sparsity: f64,
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
    /// [`crate::budget::index::estimate_index_bytes`] (sparse rows only).
    pub estimated_bytes: Option<usize>,
    /// Bytes of the parameters (kernel and bias, f32).
    pub param_bytes: usize,
    pub nnz: usize,
    /// `2·nnz·batch`: the FLOPs of one product of the sparse formulation.
    pub flops: f64,
    pub diff_forward: Option<f64>,
    pub diff_input_grad: Option<f64>,
    pub diff_param_grad: Option<f64>,
    /// One full training step of the whole network (`total` rows of `compare --model` only).
    pub step_s: Option<f64>,
    /// Peak resident memory of the whole network's run (`total` rows only, where `/proc` tells).
    pub peak_bytes: Option<usize>,
}

impl Row {
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
