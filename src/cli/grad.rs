//! `cnn-as-mlp grad`: the loss and gradients of one batch, for cross-checks against PyTorch.
//!
//! Input batch file: `x` (N, C, H, W) F32, and `y` either (N) I64 labels or (N, K) F32 targets (mse
//! only). Output: `loss` (a scalar, the mean over the batch, no weight decay) and one gradient per
//! parameter, named and shaped like the parameters.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nalgebra::DMatrix;
use safetensors::Dtype;

use super::common::{CliError, Common, LossArg, outln};
use cnn_as_mlp::budget;
use cnn_as_mlp::checkpoint::{self, Stored};
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::network::Network;
use cnn_as_mlp::tensor::Tensor;
use cnn_as_mlp::train::Hyper;

#[derive(clap::Args, Debug)]
pub struct GradArgs {
    /// lenet5, lenet5-1998, seed, cifar, vgg16, or a model spec string.
    #[arg(long, allow_hyphen_values = true)]
    model: String,
    /// Parameters (safetensors, named "{i}.weight", "{i}.bias").
    #[arg(long, value_name = "P.safetensors")]
    params: PathBuf,
    /// The batch: tensors x and y.
    #[arg(long, value_name = "B.safetensors")]
    batch: PathBuf,
    /// Where to write the loss and gradients.
    #[arg(long, value_name = "G.safetensors")]
    out: PathBuf,
    /// ce or mse [default: the model's; ce for custom specs].
    #[arg(long)]
    loss: Option<LossArg>,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: GradArgs) -> Result<(), CliError> {
    let engine = a.common.engine();
    let pool = a.common.pool()?;
    super::common::check_output("--out", &a.out, &[&a.params, &a.batch])?;
    pool.install(|| {
        let spec = super::common::parse_model(&a.model)?;
        let loss = match &a.loss {
            Some(l) => Loss::from(*l),
            None => Hyper::preset(&a.model).loss,
        };
        let k = spec.output()?.len();
        let batch = Stored::read(&a.batch)?;
        let x = batch.f32_tensor("x", None)?;
        let s = spec.input;
        let n = x.shape.first().copied().unwrap_or(0);
        if x.shape.len() != 4 || x.shape[1..] != [s.c, s.h, s.w] || n == 0 {
            return Err(CliError::other(format!(
                "{}: tensor \"x\" has shape {:?}, expected (N, {}, {}, {}) with N >= 1 for the model's input {s}",
                a.batch.display(),
                x.shape,
                s.c,
                s.h,
                s.w
            )));
        }
        budget::check(&spec, engine, budget::Use::grad(n))?;
        let mut net = Network::<f32>::new(&spec, engine);
        checkpoint::load_params(&mut net, &Stored::read(&a.params)?)?;
        // (N, C·H·W) column-major from row-major (N, C, H, W).
        let f = s.len();
        let xm = DMatrix::from_fn(n, f, |b, j| x.data[b * f + j]);
        let raw = batch.get("y")?;
        let bad_y = |what: String| CliError::other(format!("{}: tensor \"y\" {what}", a.batch.display()));
        let mut grads = net.zero_grads();
        let j = match (raw.dtype, raw.shape.as_slice()) {
            (Dtype::I64, [m]) if *m == n => {
                let labels: Vec<usize> = raw
                    .bytes
                    .chunks_exact(8)
                    .enumerate()
                    .map(|(i, c)| {
                        let v = i64::from_le_bytes(c.try_into().expect("8 bytes"));
                        usize::try_from(v)
                            .ok()
                            .filter(|&u| u < k)
                            .ok_or_else(|| bad_y(format!("holds label {v} at index {i}, outside 0..{k}")))
                    })
                    .collect::<Result<_, _>>()?;
                net.loss_and_grad(&mut grads, &xm, Targets::Labels(&labels), loss)
            }
            (Dtype::F32, [m, kk]) if *m == n && *kk == k => {
                if loss != Loss::HalfSquared {
                    return Err(bad_y("holds target vectors, which need --loss mse".into()));
                }
                let t = batch.f32_tensor("y", None)?;
                let tm = DMatrix::from_fn(n, k, |b, c| t.data[b * k + c]);
                net.loss_and_grad(&mut grads, &xm, Targets::Dense(&tm), loss)
            }
            (dt, shape) => {
                return Err(bad_y(format!(
                    "has dtype {dt:?} and shape {shape:?}; expected I64 ({n}) labels or F32 ({n}, {k}) targets"
                )));
            }
        };
        if !j.is_finite() {
            return Err(CliError::other(format!("the loss is {j} on this batch; nothing written")));
        }
        for (name, g) in checkpoint::named(&net, &grads, "") {
            if let Some((i, v)) = g.data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(CliError::other(format!(
                    "the gradient {name:?} holds {v} at flat index {i} on this batch (the values overflow f32); nothing written"
                )));
            }
        }
        let loss_t = Tensor::from_vec(&[], vec![j]);
        let mut tensors = vec![("loss".to_string(), &loss_t)];
        tensors.extend(checkpoint::named(&net, &grads, ""));
        let mut meta = BTreeMap::new();
        meta.insert("spec".to_string(), spec.to_string());
        meta.insert("loss".to_string(), loss.name().to_string());
        checkpoint::write(&a.out, &tensors, &meta)?;
        outln!(
            "grad: model={} n={n} loss={j} out={}",
            a.model.split_whitespace().collect::<String>(),
            a.out.display()
        );
        Ok(())
    })
}
