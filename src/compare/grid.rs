//! The grid of `compare`: the default case list and the `--layers` parser.

use crate::budget::index as bytes;
use crate::spec::{Layer, Shape, Spec};

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

    /// [`bytes::nnz_bound`] of the layer.
    pub fn nnz_bound(&self) -> usize {
        bytes::nnz_bound(&self.layer, self.input)
    }

    /// [`bytes::estimate_index_bytes`] of the layer.
    pub fn estimate_index_bytes(&self) -> usize {
        bytes::estimate_index_bytes(&self.layer, self.input)
    }

    /// Whether im2col + GEMM applies (convolutions only; the im2col engine runs pools directly).
    pub fn has_im2col(&self) -> bool {
        matches!(self.layer, Layer::Conv { .. })
    }
}

/// Names of LeNet-5's layers in the grid.
pub const LENET: [&str; 4] = ["lenet-conv1", "lenet-pool1", "lenet-conv2", "lenet-pool2"];

/// The default grid: LeNet-5's convolutions and pools, a mean pool, then common CNN layers up to a 56×56 layer with 64
/// channels in and out (the memory wall of the sparse formulation).
pub fn grid() -> Vec<Case> {
    [
        ("lenet-conv1", "1x28x28 > conv(6,5,pad=2)"),
        ("lenet-pool1", "6x28x28 > maxpool(2)"),
        ("lenet-conv2", "6x14x14 > conv(16,5)"),
        ("lenet-pool2", "16x10x10 > maxpool(2)"),
        ("avgpool", "16x32x32 > avgpool(2)"),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
