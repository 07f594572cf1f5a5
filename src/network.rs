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
//!
//! **Shards.** A batch is cut into shards of [`SHARD`] consecutive samples (the last one may be shorter); each
//! shard runs forward, loss and backward on its own copy of the layers' per-pass state, in parallel, and
//! the parameter gradients of the shards are added in shard order (proofs/T9: the gradient of a batch is
//! the sum of its shards' gradients, each normalised by the whole batch). The cut depends on the batch size
//! alone, never on the number of threads, so the bits do not either; one parallel region per step
//! replaces a fork-join per layer as the main source of parallelism.

use std::ops::Range;

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::activation;
pub use crate::engines::{Engine, build_map};
use crate::linear_map::LinearMap;
use crate::loss::{Loss, Targets, loss_and_delta, partial_loss_and_delta};
use crate::scalar::Real;
use crate::spec::{Activation, Layer, Shape, Spec};
use crate::tensor::Tensor;

/// Parameters (or their gradients) of a network: for each layer, its tensors (`weight`, `bias`; none
/// for activations and pools).
pub type Params<T> = Vec<Vec<Tensor<T>>>;

/// One layer of a built network.
pub enum Node<T: Real> {
    Map(Box<dyn LinearMap<T>>),
    Act(Activation),
}

/// Loads samples `range` of a batch into a shard's input `dst` (range.len(), F), overwriting it.
pub type Loader<'a, T> = dyn Fn(Range<usize>, &mut DMatrix<T>) + Sync + 'a;

/// Samples per shard of a batch (see the module documentation).
pub const SHARD: usize = 32;

/// The shards of a batch of `batch` samples: consecutive ranges of [`SHARD`] samples, the last one shorter.
pub fn shard_ranges(batch: usize) -> Vec<Range<usize>> {
    (0..batch.div_ceil(SHARD)).map(|s| s * SHARD..((s + 1) * SHARD).min(batch)).collect()
}

/// A network built from a spec: its layers, parameters and, per shard of a batch, activation buffers.
pub struct Network<T: Real> {
    pub spec: Spec,
    pub engine: Engine,
    /// Layer `i`'s parameters, PyTorch layouts.
    pub params: Params<T>,
    /// Input shape of each layer, then the output shape.
    shapes: Vec<Shape>,
    /// One per shard of the largest batch seen (at least one); shard `s` holds the layers' state of the
    /// samples `shard_ranges(B)[s]` of the last forward pass.
    shards: Vec<Shard<T>>,
    /// Samples in the last forward pass.
    batch: usize,
    /// The output of the last forward pass, (B, K), assembled from the shards.
    out: DMatrix<T>,
    /// Layer `i`'s pruning mask over its weight, when it has been pruned ([`Self::set_mask`]).
    masks: Vec<Option<Vec<bool>>>,
}

/// The per-pass state of one shard: its copy of the layers (max-pooling winners, scratch; compiled
/// structures shared), activations, deltas and a gradient buffer.
struct Shard<T: Real> {
    nodes: Vec<Node<T>>,
    /// `acts[i]`: (b, F_{i-1}), the input of layer `i`; the last is the output. After a forward pass, the
    /// input of an activation that follows a linear map is stale (the activation ran in its buffer).
    acts: Vec<DMatrix<T>>,
    /// `deltas[i] = ∂J/∂acts[i]`, same shapes.
    deltas: Vec<DMatrix<T>>,
    /// Parameter gradients of shards after the first (the first adds into the caller's).
    grads: Params<T>,
    /// The shard's part of the last batch's loss ([`partial_loss_and_delta`]).
    loss_part: T,
}

impl<T: Real> Network<T> {
    /// Builds the layers of a checked spec, parameters at zero (see [`crate::init`]).
    ///
    /// # Panics
    /// If the spec's shapes do not check ([`Spec::parse`] checks them).
    #[track_caller]
    pub fn new(spec: &Spec, engine: Engine) -> Self {
        Self::with_masks(spec, engine, vec![None; spec.layers.len()])
    }

    /// Builds the layers of a checked spec with the pruning masks `masks` (one per layer: `true` where a
    /// weight entry is kept, as [`crate::prune::read_masks`] reads them from a checkpoint), each layer once:
    /// a masked layer is compiled without its removed entries ([`crate::engines::build_pruned_map`]).
    /// Parameters at zero.
    ///
    /// # Panics
    /// If the spec's shapes do not check, `masks` does not have one entry per layer, or a mask is on a layer
    /// that is not [`Self::prunable`] or does not have one flag per weight entry.
    #[track_caller]
    pub fn with_masks(spec: &Spec, engine: Engine, masks: Vec<Option<Vec<bool>>>) -> Self {
        let out_shapes = spec.output_shapes().unwrap_or_else(|e| panic!("Network::new: {e}"));
        assert_eq!(
            masks.len(),
            spec.layers.len(),
            "Network::with_masks: {} masks for {} layers",
            masks.len(),
            spec.layers.len()
        );
        let mut shapes = vec![spec.input];
        shapes.extend(out_shapes);
        let mut nodes = Vec::new();
        let mut params = Vec::new();
        for (i, layer) in spec.layers.iter().enumerate() {
            let map = match &masks[i] {
                Some(keep) => {
                    let n = crate::spec::weight_len(layer, shapes[i]);
                    assert_eq!(
                        n,
                        Some(keep.len()),
                        "Network::with_masks: a mask of {} flags on layer {i} `{layer}`",
                        keep.len()
                    );
                    crate::engines::build_pruned_map::<T>(layer, shapes[i], engine, keep)
                }
                None => build_map::<T>(layer, shapes[i], engine),
            };
            match (layer, map) {
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
        let first = Shard { nodes, acts: Vec::new(), deltas: Vec::new(), grads: Vec::new(), loss_part: T::zero() };
        Network {
            spec: spec.clone(),
            engine,
            params,
            shapes,
            shards: vec![first],
            batch: 0,
            out: DMatrix::zeros(0, 0),
            masks,
        }
    }

    /// Layer `i`'s pruning mask (`true` where the weight entry is kept), if it has one.
    pub fn mask(&self, i: usize) -> Option<&[bool]> {
        self.masks[i].as_deref()
    }

    /// Whether layer `i` can be pruned: a conv or dense layer.
    pub fn prunable(&self, i: usize) -> bool {
        matches!(self.spec.layers[i], Layer::Conv { .. } | Layer::Dense { .. })
    }

    /// The weight entries of layer `i` that exist before any pruning: all of them, or those a connection
    /// table connects.
    ///
    /// # Panics
    /// If layer `i` is not [`Self::prunable`].
    #[track_caller]
    pub fn free_mask(&self, i: usize) -> Vec<bool> {
        assert!(self.prunable(i), "free_mask: layer {i} `{}` has no prunable weight", self.spec.layers[i]);
        crate::spec::free_mask(&self.spec.layers[i], self.shapes[i]).expect("a prunable layer")
    }

    /// Prunes layer `i` to the entries where `keep` is true: rebuilds its map without the others
    /// ([`crate::engines::build_pruned_map`]) in every shard and sets those weights to 0. The mask is the
    /// layer's whole structure from now on (a later mask replaces it).
    ///
    /// # Panics
    /// If layer `i` is not [`Self::prunable`], or `keep` is not one flag per weight entry.
    #[track_caller]
    pub fn set_mask(&mut self, i: usize, keep: &[bool]) {
        assert!(self.prunable(i), "set_mask: layer {i} `{}` has no prunable weight", self.spec.layers[i]);
        let w = &mut self.params[i][0];
        assert_eq!(keep.len(), w.len(), "set_mask: {} flags for layer {i}'s {} weights", keep.len(), w.len());
        w.data.iter_mut().zip(keep).filter(|(_, k)| !**k).for_each(|(v, _)| *v = T::zero());
        let map = crate::engines::build_pruned_map::<T>(&self.spec.layers[i], self.shapes[i], self.engine, keep)
            .expect("a prunable layer builds a map");
        for shard in &mut self.shards {
            shard.nodes[i] = Node::Map(map.replica());
        }
        self.masks[i] = Some(keep.to_vec());
    }

    /// The layers (the first shard's copies).
    pub fn nodes(&self) -> &[Node<T>] {
        &self.shards[0].nodes
    }

    /// The linear map of layer `i`, if it has one.
    pub fn linear_map(&self, i: usize) -> Option<&dyn LinearMap<T>> {
        match &self.shards[0].nodes[i] {
            Node::Map(m) => Some(m.as_ref()),
            Node::Act(_) => None,
        }
    }

    /// The shapes of the activations: `[i]` is layer `i`'s input, the last (index `len`) the network's output.
    pub fn activation_shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// `(name, shape)` of every parameter tensor, in order: `"{i}.weight"`, `"{i}.bias"`.
    pub fn param_names(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        for (i, node) in self.nodes().iter().enumerate() {
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
        self.nodes()
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

    /// Parameter values the network can use: [`Self::n_params`] less the kernel entries that a connection
    /// table leaves out (they are stored, as zeros, only to keep PyTorch's dense layout).
    pub fn n_free_params(&self) -> usize {
        let shapes = self.activation_shapes();
        let absent: usize = (self.spec.layers.iter().zip(shapes.iter()))
            .map(|(layer, input)| match (*layer, crate::spec::conv_table(layer)) {
                (Layer::Conv { c_out, k, .. }, Some(t)) => (c_out * input.c - t.connections()) * k * k,
                _ => 0,
            })
            .sum();
        self.n_params() - absent
    }

    /// Makes one shard per range of a batch of `batch` samples, each with buffers of its size.
    fn prepare(&mut self, batch: usize) -> Vec<Range<usize>> {
        let ranges = shard_ranges(batch);
        while self.shards.len() < ranges.len() {
            let nodes = self.shards[0]
                .nodes
                .iter()
                .map(|n| match n {
                    Node::Map(m) => Node::Map(m.replica()),
                    Node::Act(a) => Node::Act(*a),
                })
                .collect();
            self.shards.push(Shard {
                nodes,
                acts: Vec::new(),
                deltas: Vec::new(),
                grads: Vec::new(),
                loss_part: T::zero(),
            });
        }
        for (shard, r) in self.shards.iter_mut().zip(&ranges) {
            shard.ensure_buffers(&self.shapes, r.len());
        }
        self.batch = batch;
        ranges
    }

    #[track_caller]
    fn check_input(&self, x: &DMatrix<T>) {
        assert_eq!(
            x.ncols(),
            self.spec.input.len(),
            "Network::forward: input has {} features, the spec takes {} ({})",
            x.ncols(),
            self.spec.input.len(),
            self.spec.input
        );
    }

    /// Copies the shards' outputs into `out` (B, K).
    fn assemble_output(&mut self, ranges: &[Range<usize>]) {
        let k = self.shapes.last().expect("output shape").len();
        if self.out.shape() != (self.batch, k) {
            self.out = DMatrix::zeros(self.batch, k);
        }
        for (shard, r) in self.shards.iter().zip(ranges) {
            let o = shard.acts.last().expect("at least the input");
            self.out.rows_mut(r.start, r.len()).copy_from(o);
        }
    }

    /// Forward pass on `x` (B, C·H·W), shard by shard in parallel; returns the output (B, K).
    #[track_caller]
    pub fn forward(&mut self, x: &DMatrix<T>) -> &DMatrix<T> {
        self.check_input(x);
        self.forward_from(x.nrows(), &|r, dst| dst.copy_from(&x.rows(r.start, r.len())))
    }

    /// [`Self::forward`] on a batch of `batch` samples that each shard loads itself, in its own task:
    /// `load(range, dst)` writes the samples `range` of the batch into `dst` (range.len(), C·H·W).
    pub fn forward_from(&mut self, batch: usize, load: &Loader<'_, T>) -> &DMatrix<T> {
        let ranges = self.prepare(batch);
        let params = &self.params;
        let run = |(shard, r): (&mut Shard<T>, &Range<usize>)| {
            shard.load_input(load, r);
            shard.forward(params);
        };
        if ranges.len() == 1 {
            run((&mut self.shards[0], &ranges[0]));
        } else {
            self.shards.par_iter_mut().zip(&ranges).for_each(run);
        }
        self.assemble_output(&ranges);
        &self.out
    }

    /// The output of the last forward pass.
    pub fn output(&self) -> &DMatrix<T> {
        &self.out
    }

    /// Backward pass after [`Self::forward`]: given `δ = ∂J/∂output` (B, K), adds `∂J/∂θ` to `grads`, the
    /// shards' gradients in shard order. The gradient with respect to the input is not computed (the first
    /// layer's `Wᵀ δ` is skipped).
    #[track_caller]
    pub fn backward(&mut self, grads: &mut Params<T>, delta_out: &DMatrix<T>) {
        let n = self.shapes.len() - 1;
        assert_eq!(delta_out.shape(), self.out.shape(), "Network::backward: δ shape differs from the output");
        let ranges = shard_ranges(self.batch);
        for_each_shard(&mut self.shards, &self.params, grads, &ranges, |shard, params, r, g| {
            shard.load_delta(n, delta_out, r);
            shard.backward(params, g);
        });
        self.add_shard_grads(grads, ranges.len());
    }

    /// `grads += Σ_{s ≥ 1} shards[s].grads`, in shard order for every value.
    fn add_shard_grads(&self, grads: &mut Params<T>, n_shards: usize) {
        if n_shards <= 1 {
            return;
        }
        let others = &self.shards[1..n_shards];
        const CHUNK: usize = 4096;
        for (i, layer) in grads.iter_mut().enumerate() {
            for (t, tensor) in layer.iter_mut().enumerate() {
                tensor.data.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
                    for shard in others {
                        let src = &shard.grads[i][t].data[c * CHUNK..][..out.len()];
                        out.iter_mut().zip(src).for_each(|(o, &v)| *o += v);
                    }
                });
            }
        }
    }

    /// Forward, loss and backward on one batch, each shard in one parallel task: returns `J` (the shards'
    /// parts added in order) and adds `∂J/∂θ` to `grads`.
    #[track_caller]
    pub fn loss_and_grad(&mut self, grads: &mut Params<T>, x: &DMatrix<T>, targets: Targets<'_, T>, loss: Loss) -> T {
        self.check_input(x);
        self.loss_and_grad_from(grads, x.nrows(), &|r, dst| dst.copy_from(&x.rows(r.start, r.len())), targets, loss)
    }

    /// [`Self::loss_and_grad`] on a batch of `batch` samples that each shard loads itself, in its own task
    /// (see [`Self::forward_from`]): a training loop gathers its shuffled images in parallel this way.
    #[track_caller]
    pub fn loss_and_grad_from(
        &mut self,
        grads: &mut Params<T>,
        batch: usize,
        load: &Loader<'_, T>,
        targets: Targets<'_, T>,
        loss: Loss,
    ) -> T {
        check_targets(targets, batch);
        let ranges = self.prepare(batch);
        let n = self.shapes.len() - 1;
        for_each_shard(&mut self.shards, &self.params, grads, &ranges, |shard, params, r, g| {
            shard.load_input(load, r);
            shard.forward(params);
            let (out, d) = (&shard.acts[n], &mut shard.deltas[n]);
            shard.loss_part = match targets {
                Targets::Labels(y) => partial_loss_and_delta(loss, out, Targets::Labels(&y[r.clone()]), d, batch),
                Targets::Dense(t) => {
                    let t = t.rows(r.start, r.len()).into_owned();
                    partial_loss_and_delta(loss, out, Targets::Dense(&t), d, batch)
                }
            };
            shard.backward(params, g);
        });
        self.add_shard_grads(grads, ranges.len());
        self.assemble_output(&ranges);
        if ranges.is_empty() {
            // The mean over no samples, as PyTorch gives it; no gradient is added.
            return T::zero() / T::zero();
        }
        self.shards[..ranges.len()].iter().fold(T::zero(), |s, shard| s + shard.loss_part)
    }

    /// Forward, loss and backward of the shards `mine` (indices into [`shard_ranges`]`(batch)`) only, each
    /// into its own zeroed gradient buffer: returns per shard its part of `J`, its gradient and its output
    /// (rows, K). Data-parallel training ([`crate::distributed`]) runs a block of shards per process and adds
    /// every shard's gradient in shard order afterwards, as [`Self::loss_and_grad_from`] does in one process.
    #[track_caller]
    pub fn shard_parts_from(
        &mut self,
        batch: usize,
        mine: Range<usize>,
        load: &Loader<'_, T>,
        targets: Targets<'_, T>,
        loss: Loss,
    ) -> Vec<(T, Params<T>, DMatrix<T>)> {
        check_targets(targets, batch);
        let ranges = self.prepare(batch);
        assert!(mine.end <= ranges.len(), "shards {mine:?} of a batch of {} shards", ranges.len());
        let n = self.shapes.len() - 1;
        let params = &self.params;
        let shards = &mut self.shards[mine.clone()];
        shards
            .par_iter_mut()
            .zip(&ranges[mine])
            .map(|(shard, r)| {
                shard.zero_grads(params);
                let mut g = std::mem::take(&mut shard.grads);
                shard.load_input(load, r);
                shard.forward(params);
                let (out, d) = (&shard.acts[n], &mut shard.deltas[n]);
                let part = match targets {
                    Targets::Labels(y) => partial_loss_and_delta(loss, out, Targets::Labels(&y[r.clone()]), d, batch),
                    Targets::Dense(t) => {
                        let t = t.rows(r.start, r.len()).into_owned();
                        partial_loss_and_delta(loss, out, Targets::Dense(&t), d, batch)
                    }
                };
                shard.backward(params, &mut g);
                let result = (part, g.clone(), shard.acts[n].clone());
                shard.grads = g;
                result
            })
            .collect()
    }

    /// The loss on one batch, without gradients.
    #[track_caller]
    pub fn loss(&mut self, x: &DMatrix<T>, targets: Targets<'_, T>, loss: Loss) -> T {
        self.check_input(x);
        self.loss_from(x.nrows(), &|r, dst| dst.copy_from(&x.rows(r.start, r.len())), targets, loss)
    }

    /// [`Self::loss`] on a batch of `batch` samples that each shard loads itself (see [`Self::forward_from`]);
    /// the output stays in [`Self::output`].
    pub fn loss_from(&mut self, batch: usize, load: &Loader<'_, T>, targets: Targets<'_, T>, loss: Loss) -> T {
        self.forward_from(batch, load);
        let out = &self.out;
        let mut delta = DMatrix::zeros(out.nrows(), out.ncols());
        loss_and_delta(loss, out, targets, &mut delta)
    }
}

/// Runs `f(shard, params, range, grads)` on the shards of `ranges` in parallel: the first shard's `grads` are
/// the caller's, the others' their own buffers, zeroed first.
fn for_each_shard<T: Real, F>(
    shards: &mut [Shard<T>],
    params: &Params<T>,
    grads: &mut Params<T>,
    ranges: &[Range<usize>],
    f: F,
) where
    F: Fn(&mut Shard<T>, &Params<T>, &Range<usize>, &mut Params<T>) + Sync,
{
    let (first, rest) = shards.split_first_mut().expect("at least one shard");
    if ranges.is_empty() {
        return;
    }
    if ranges.len() == 1 {
        return f(first, params, &ranges[0], grads);
    }
    rayon::join(
        || f(first, params, &ranges[0], grads),
        || {
            rest.par_iter_mut().zip(&ranges[1..]).for_each(|(shard, r)| {
                shard.zero_grads(params);
                let mut g = std::mem::take(&mut shard.grads);
                f(shard, params, r, &mut g);
                shard.grads = g;
            })
        },
    );
}

/// Panics unless `targets` hold one target per sample.
#[track_caller]
fn check_targets<T: Real>(targets: Targets<'_, T>, batch: usize) {
    let n = match targets {
        Targets::Labels(y) => y.len(),
        Targets::Dense(t) => t.nrows(),
    };
    assert_eq!(n, batch, "loss: {n} targets for batch {batch}");
}

impl<T: Real> Shard<T> {
    fn ensure_buffers(&mut self, shapes: &[Shape], rows: usize) {
        if self.acts.first().is_some_and(|a| a.nrows() == rows) {
            return;
        }
        self.acts = shapes.iter().map(|s| DMatrix::zeros(rows, s.len())).collect();
        self.deltas = shapes.iter().map(|s| DMatrix::zeros(rows, s.len())).collect();
    }

    fn zero_grads(&mut self, params: &Params<T>) {
        if self.grads.len() != params.len() {
            self.grads = params.iter().map(|ts| ts.iter().map(|t| Tensor::zeros(&t.shape)).collect()).collect();
        } else {
            self.grads.iter_mut().flatten().for_each(Tensor::fill_zero);
        }
    }

    /// Loads the samples `r` of the batch into `acts[0]` with `load`.
    ///
    /// # Panics
    /// If `load` leaves the input with another shape than (r.len(), F).
    #[track_caller]
    fn load_input(&mut self, load: &Loader<'_, T>, r: &Range<usize>) {
        let shape = self.acts[0].shape();
        load(r.clone(), &mut self.acts[0]);
        assert_eq!(self.acts[0].shape(), shape, "Network: the loader of samples {r:?} changed the input's shape");
    }

    /// Copies rows `r` of `m` into `deltas[i]`.
    fn load_delta(&mut self, i: usize, m: &DMatrix<T>, r: &Range<usize>) {
        self.deltas[i].copy_from(&m.rows(r.start, r.len()));
    }

    /// Forward pass of the shard's input `acts[0]`.
    fn forward(&mut self, params: &Params<T>) {
        for i in 0..self.nodes.len() {
            let (before, after) = self.acts.split_at_mut(i + 1);
            let (a_in, a_out) = (&mut before[i], &mut after[0]);
            let after_map = i > 0 && matches!(self.nodes[i - 1], Node::Map(_));
            match &mut self.nodes[i] {
                Node::Map(m) => m.forward(&params[i], a_in, a_out),
                // After a linear map, nothing reads its output z again (the activation's backward pass
                // reads a = f(z)): apply f in z's buffer, then the buffers trade places.
                Node::Act(f) if after_map => {
                    activation::forward_in_place(*f, a_in);
                    std::mem::swap(a_in, a_out);
                }
                Node::Act(f) => activation::forward(*f, a_out, a_in),
            }
        }
    }

    /// Backward pass of the shard's `δ` in `deltas[n]`, adding `∂J/∂θ` to `grads`.
    fn backward(&mut self, params: &Params<T>, grads: &mut Params<T>) {
        let n = self.nodes.len();
        for i in (0..n).rev() {
            let (before, after) = self.deltas.split_at_mut(i + 1);
            let (d_in, after) = (&mut before[i], after);
            match &mut self.nodes[i] {
                Node::Map(m) => {
                    m.backward_params(&mut grads[i], &self.acts[i], &after[0]);
                    if i > 0 {
                        m.backward_input(d_in, &params[i], &after[0]);
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
}
