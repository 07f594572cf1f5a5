//! The one engine: a network is a list of layers, each a [`LinearMap`] or an activation, and one
//! forward / backward routine trains every network, whatever its layers compile to.
//!
//! Letters: `B` batch, `F_i` features after layer `i`. `acts[0] = x` (B, F_in) and
//! `acts[i + 1]` (B, F_i) is layer `i`'s output. Backward walks the layers in reverse with
//! `δ_{i} = ∂J/∂acts[i]`:
//!
//! ```text
//! linear map     z = W a + b      d_θ += pattern-restricted (δ_{i+1} ⊗ a),   δ_i = Wᵀ δ_{i+1}
//! activation     a' = f(z)        δ_i = δ_{i+1} ⊙ f'(z)
//! ```

use nalgebra::DMatrix;

use crate::activation;
use crate::direct::{FastAvgPool, FastConv, FastMaxPool};
use crate::geometry::PoolGeometry;
use crate::layers::LinearMap;
use crate::layers::avgpool::avgpool_layer;
use crate::layers::conv::conv_layer;
use crate::layers::dense::Dense;
use crate::layers::local::local_layer;
use crate::layers::maxpool::MaxPool;
use crate::loss::{Loss, Targets, loss_and_delta};
use crate::reference::{DirectAvgPool, DirectLocal, DirectMaxPool, Im2colConv};
use crate::scalar::Real;
use crate::spec::{Activation, Layer, Shape, Spec, conv_geometry};
use crate::tensor::Tensor;

/// Which implementation of the linear layers a network runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Engine {
    /// Conv, local and pooling layers compiled to tied sparse matrices.
    #[default]
    Sparse,
    /// Direct convolution and pooling on the batch-innermost layout ([`crate::direct`], checked against the
    /// definitions in [`crate::reference::direct`]); local layers from their definitions
    /// ([`crate::reference::DirectLocal`]); dense layers as in `Sparse`.
    Direct,
    /// Convolutions by im2col + GEMM ([`crate::reference::im2col`]); local and pooling layers direct,
    /// dense layers as in `Sparse`.
    Im2col,
}

impl Engine {
    /// All engines, in the order of their names.
    pub const ALL: [Engine; 3] = [Engine::Sparse, Engine::Direct, Engine::Im2col];

    /// `sparse`, `direct` or `im2col`.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sparse => "sparse",
            Engine::Direct => "direct",
            Engine::Im2col => "im2col",
        }
    }

    /// Parses an engine name ([`Self::name`]).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == s)
    }
}

/// Parameters (or their gradients) of a network: for each layer, its tensors (`weight`, `bias`; none
/// for activations and pools).
pub type Params<T> = Vec<Vec<Tensor<T>>>;

/// One layer of a built network.
pub enum Node<T: Real> {
    Map(Box<dyn LinearMap<T>>),
    Act(Activation),
}

/// Builds the linear map of `layer` on `input` for `engine` (`None` for activations).
pub fn build_map<T: Real>(layer: &Layer, input: Shape, engine: Engine) -> Option<Box<dyn LinearMap<T>>> {
    let pool = |k, stride| PoolGeometry { c: input.c, h_in: input.h, w_in: input.w, k, stride };
    Some(match (engine, *layer) {
        (_, Layer::Act(_)) => return None,
        (_, Layer::Dense { n }) => Box::new(Dense::new(input.len(), n)),
        (Engine::Sparse, Layer::Conv { .. }) => Box::new(conv_layer::<T>(&conv_geometry(layer, input)?)),
        (Engine::Sparse, Layer::Local { .. }) => Box::new(local_layer::<T>(&conv_geometry(layer, input)?)),
        (Engine::Sparse, Layer::MaxPool { k, stride }) => Box::new(MaxPool::new(&pool(k, stride))),
        (Engine::Sparse, Layer::AvgPool { k, stride }) => Box::new(avgpool_layer::<T>(&pool(k, stride))),
        (Engine::Direct, Layer::Conv { .. }) => Box::new(FastConv::new(&conv_geometry(layer, input)?)),
        (Engine::Im2col, Layer::Conv { .. }) => Box::new(Im2colConv::new(&conv_geometry(layer, input)?)),
        (Engine::Direct | Engine::Im2col, Layer::Local { .. }) => {
            Box::new(DirectLocal::new(&conv_geometry(layer, input)?))
        }
        (Engine::Direct, Layer::MaxPool { k, stride }) => Box::new(FastMaxPool::new(&pool(k, stride))),
        (Engine::Direct, Layer::AvgPool { k, stride }) => Box::new(FastAvgPool::new(&pool(k, stride))),
        (Engine::Im2col, Layer::MaxPool { k, stride }) => Box::new(DirectMaxPool::new(&pool(k, stride))),
        (Engine::Im2col, Layer::AvgPool { k, stride }) => Box::new(DirectAvgPool::new(&pool(k, stride))),
    })
}

/// A network built from a spec: its layers, parameters and activation buffers.
pub struct Network<T: Real> {
    pub spec: Spec,
    pub engine: Engine,
    /// Layer `i`'s parameters, PyTorch layouts.
    pub params: Params<T>,
    nodes: Vec<Node<T>>,
    /// Input shape of each layer, then the output shape.
    shapes: Vec<Shape>,
    /// `acts[i]`: (B, F_{i-1}), the input of layer `i`; the last is the output. After a forward pass, the
    /// input of an activation that follows a linear map is stale (the activation ran in its buffer).
    acts: Vec<DMatrix<T>>,
    /// `deltas[i] = ∂J/∂acts[i]`, same shapes.
    deltas: Vec<DMatrix<T>>,
}

impl<T: Real> Network<T> {
    /// Builds the layers of a checked spec, parameters at zero (see [`crate::init`]).
    ///
    /// # Panics
    /// If the spec's shapes do not check ([`Spec::parse`] checks them).
    #[track_caller]
    pub fn new(spec: &Spec, engine: Engine) -> Self {
        let out_shapes = spec.shapes().unwrap_or_else(|e| panic!("Network::new: {e}"));
        let mut shapes = vec![spec.input];
        shapes.extend(out_shapes);
        let mut nodes = Vec::new();
        let mut params = Vec::new();
        for (i, layer) in spec.layers.iter().enumerate() {
            match (layer, build_map::<T>(layer, shapes[i], engine)) {
                (Layer::Act(a), _) => {
                    nodes.push(Node::Act(*a));
                    params.push(Vec::new());
                }
                (_, Some(map)) => {
                    params.push(map.param_shapes().iter().map(|(_, s)| Tensor::zeros(s)).collect());
                    nodes.push(Node::Map(map));
                }
                (_, None) => unreachable!("every non-activation layer builds a map"),
            }
        }
        Network { spec: spec.clone(), engine, params, nodes, shapes, acts: Vec::new(), deltas: Vec::new() }
    }

    /// The layers.
    pub fn nodes(&self) -> &[Node<T>] {
        &self.nodes
    }

    /// The linear map of layer `i`, if it has one.
    pub fn map(&self, i: usize) -> Option<&dyn LinearMap<T>> {
        match &self.nodes[i] {
            Node::Map(m) => Some(m.as_ref()),
            Node::Act(_) => None,
        }
    }

    /// Input shape of layer `i` (`shapes()[len]` is the output shape).
    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// `(name, shape)` of every parameter tensor, in order: `"{i}.weight"`, `"{i}.bias"`.
    pub fn param_names(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if let Node::Map(m) = node {
                for (name, shape) in m.param_shapes() {
                    v.push((format!("{i}.{name}"), shape));
                }
            }
        }
        v
    }

    /// Zero gradients shaped like the parameters.
    pub fn zero_grads(&self) -> Params<T> {
        self.params.iter().map(|ts| ts.iter().map(|t| Tensor::zeros(&t.shape)).collect()).collect()
    }

    /// Multiplicity of each parameter element (see [`LinearMap::multiplicity`]), shaped like `params`.
    pub fn multiplicity(&self) -> Vec<Vec<Vec<u32>>> {
        self.nodes
            .iter()
            .map(|n| match n {
                Node::Map(m) => m.multiplicity(),
                Node::Act(_) => Vec::new(),
            })
            .collect()
    }

    /// Total number of parameter values.
    pub fn n_params(&self) -> usize {
        self.params.iter().flatten().map(Tensor::len).sum()
    }

    fn ensure_buffers(&mut self, batch: usize) {
        if self.acts.first().is_some_and(|a| a.nrows() == batch) {
            return;
        }
        self.acts = self.shapes.iter().map(|s| DMatrix::zeros(batch, s.len())).collect();
        self.deltas = self.shapes.iter().map(|s| DMatrix::zeros(batch, s.len())).collect();
    }

    /// Forward pass on `x` (B, C·H·W); returns the output (B, K).
    #[track_caller]
    pub fn forward(&mut self, x: &DMatrix<T>) -> &DMatrix<T> {
        let batch = x.nrows();
        assert_eq!(
            x.ncols(),
            self.spec.input.len(),
            "Network::forward: input has {} features, the spec takes {} ({})",
            x.ncols(),
            self.spec.input.len(),
            self.spec.input
        );
        self.ensure_buffers(batch);
        self.acts[0].copy_from(x);
        for i in 0..self.nodes.len() {
            let (before, after) = self.acts.split_at_mut(i + 1);
            let (a_in, a_out) = (&mut before[i], &mut after[0]);
            let after_map = i > 0 && matches!(self.nodes[i - 1], Node::Map(_));
            match &mut self.nodes[i] {
                Node::Map(m) => m.forward(&self.params[i], a_in, a_out),
                // After a linear map, nothing reads its output z again (the activation's backward pass
                // reads a = f(z)): apply f in z's buffer, then the buffers trade places.
                Node::Act(f) if after_map => {
                    activation::forward_in_place(*f, a_in);
                    std::mem::swap(a_in, a_out);
                }
                Node::Act(f) => activation::forward(*f, a_out, a_in),
            }
        }
        self.acts.last().expect("at least the input")
    }

    /// The output of the last forward pass.
    pub fn output(&self) -> &DMatrix<T> {
        self.acts.last().expect("forward was called")
    }

    /// Backward pass after [`Self::forward`]: given `δ = ∂J/∂output` (B, K), adds `∂J/∂θ` to `grads`.
    /// The gradient with respect to the input is not computed (the first layer's `Wᵀ δ` is skipped).
    #[track_caller]
    pub fn backward(&mut self, grads: &mut Params<T>, delta_out: &DMatrix<T>) {
        let n = self.nodes.len();
        assert_eq!(delta_out.shape(), self.acts[n].shape(), "Network::backward: δ shape differs from the output");
        self.deltas[n].copy_from(delta_out);
        for i in (0..n).rev() {
            let (before, after) = self.deltas.split_at_mut(i + 1);
            let (d_in, after) = (&mut before[i], after);
            match &mut self.nodes[i] {
                Node::Map(m) => {
                    m.backward_params(&mut grads[i], &self.acts[i], &after[0]);
                    if i > 0 {
                        m.backward_input(d_in, &self.params[i], &after[0]);
                    }
                }
                Node::Act(f) => {
                    // δ_i = δ_{i+1} ⊙ f'(z) computed in δ_{i+1}'s buffer (no longer needed), then the
                    // buffers trade places: one pass over two arrays instead of three.
                    let d_out = &mut after[0];
                    activation::backward_in_place(*f, d_out, &self.acts[i + 1]);
                    std::mem::swap(d_in, d_out);
                }
            }
        }
    }

    /// Forward, loss and backward on one batch: returns `J` and adds `∂J/∂θ` to `grads`.
    pub fn loss_and_grad(&mut self, grads: &mut Params<T>, x: &DMatrix<T>, targets: Targets<'_, T>, loss: Loss) -> T {
        self.forward(x);
        let out = self.acts.last().expect("forward ran");
        let mut delta = DMatrix::zeros(out.nrows(), out.ncols());
        let j = loss_and_delta(loss, out, targets, &mut delta);
        self.backward(grads, &delta);
        j
    }

    /// The loss on one batch, without gradients.
    pub fn loss(&mut self, x: &DMatrix<T>, targets: Targets<'_, T>, loss: Loss) -> T {
        self.forward(x);
        let out = self.acts.last().expect("forward ran");
        let mut delta = DMatrix::zeros(out.nrows(), out.ncols());
        loss_and_delta(loss, out, targets, &mut delta)
    }
}
