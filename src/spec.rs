//! Model specs: a one-line description of a network, parsed, checked and printed back canonically.
//!
//! ```text
//! spec  := shape ( '>' layer )*                       whitespace is ignored everywhere
//! shape := INT 'x' INT 'x' INT                        C x H x W
//! layer := conv(c_out, k[, stride=S][, pad=P][, dil=D][, mode=zeros|reflect|replicate|circular][, groups=G][, table=NAME])
//!        | local(c_out, k[, stride=S][, pad=P])
//!        | maxpool(k[, stride=S]) | avgpool(k[, stride=S])          stride defaults to k
//!        | dense(n) | relu | sigmoid | tanh
//! ```
//!
//! Layer `i` (0-based, counting every layer after the input shape) owns the parameters `i.weight` and
//! `i.bias`. Presets: [`LENET5`], [`SEED`], [`CIFAR`] and [`VGG16`] ([`PRESETS`]).

use std::fmt;

use crate::geometry::{ConvGeometry, PaddingMode, PoolGeometry, checked_product};
use crate::tables::Table;

/// LeNet-5 as the PyTorch peer builds it (trained with softmax cross-entropy).
pub const LENET5: &str = "1x28x28 > conv(6,5,pad=2) > relu > maxpool(2) > conv(16,5) > relu > maxpool(2) > dense(120) > relu > dense(84) > relu > dense(10)";

/// The source document's choices on LeNet-like sizes chosen here: its ½‖h − y‖² loss on one-hot targets, with
/// sigmoid activations and mean pooling (which the text leaves open); proofs/Errata.md says what comes from the
/// text and what was chosen.
pub const SEED: &str = "1x28x28 > conv(6,5,pad=2) > sigmoid > avgpool(2) > conv(16,5) > sigmoid > avgpool(2) > dense(120) > sigmoid > dense(10) > sigmoid";

/// A small VGG-style network for 3×32×32 colour images (CIFAR-10), as the PyTorch peers
/// `torch_cifar.py` and `torch_step.py --net cifar` build it (trained with softmax cross-entropy).
pub const CIFAR: &str = "3x32x32 > conv(32,3,pad=1) > relu > conv(32,3,pad=1) > relu > maxpool(2) > conv(64,3,pad=1) > relu > conv(64,3,pad=1) > relu > maxpool(2) > conv(128,3,pad=1) > relu > maxpool(2) > dense(256) > relu > dense(10)";

/// VGG-16's 13 convolutions (3×3, pad 1, each followed by relu) and 5 max pools on 3×224×224
/// (64, 64, M, 128, 128, M, 256×3, M, 512×3, M, 512×3, M), then `dense(256) > relu > dense(10)`, as
/// `torch_step.py --net vgg16` builds it (trained with softmax cross-entropy).
pub const VGG16: &str = "3x224x224 > conv(64,3,pad=1) > relu > conv(64,3,pad=1) > relu > maxpool(2) > conv(128,3,pad=1) > relu > conv(128,3,pad=1) > relu > maxpool(2) > conv(256,3,pad=1) > relu > conv(256,3,pad=1) > relu > conv(256,3,pad=1) > relu > maxpool(2) > conv(512,3,pad=1) > relu > conv(512,3,pad=1) > relu > conv(512,3,pad=1) > relu > maxpool(2) > conv(512,3,pad=1) > relu > conv(512,3,pad=1) > relu > conv(512,3,pad=1) > relu > maxpool(2) > dense(256) > relu > dense(10)";

/// Every preset: its name and its spec string.
/// [`LENET5`] with LeCun et al. 1998's S2 → C3 connection table (Table I) in its second convolution.
pub const LENET5_1998: &str = "1x28x28 > conv(6,5,pad=2) > relu > maxpool(2) > conv(16,5,table=lenet5_c3) > relu > maxpool(2) > dense(120) > relu > dense(84) > relu > dense(10)";

pub const PRESETS: [(&str, &str); 5] =
    [("lenet5", LENET5), ("lenet5-1998", LENET5_1998), ("seed", SEED), ("cifar", CIFAR), ("vgg16", VGG16)];

/// The spec string of a preset name (`lenet5`, `seed`, `cifar`, `vgg16`), or `None`.
pub fn preset(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name.trim()).map(|(_, s)| *s)
}

/// An element-wise activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    Relu,
    Sigmoid,
    Tanh,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }
}

/// One layer of a spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    /// `groups = G`: output channel `o` reads input channels `(o / (c_out/G))·(c_in/G) ..` of its group
    /// only, weight `(c_out, c_in/G, k, k)` as PyTorch's `nn.Conv2d(groups=G)`; depthwise when `G = c_in`.
    /// `table = T`: output channel `o` reads input channel `i` only where the connection table says so
    /// ([`crate::tables`]); weight `(c_out, c_in, k, k)` with zeros elsewhere.
    Conv {
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        dil: usize,
        mode: PaddingMode,
        groups: usize,
        table: Option<Table>,
    },
    Local {
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    },
    MaxPool {
        k: usize,
        stride: usize,
    },
    AvgPool {
        k: usize,
        stride: usize,
    },
    Dense {
        n: usize,
    },
    Act(Activation),
}

/// A feature map shape `C × H × W` (a dense layer's output is `n × 1 × 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    /// Features `C·H·W` (it fits in `usize` for every shape of a checked spec, [`Spec::output_shapes`]).
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// True when some dimension is zero.
    pub fn is_empty(&self) -> bool {
        self.c == 0 || self.h == 0 || self.w == 0
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.c, self.h, self.w)
    }
}

/// A network: an input shape and its layers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Spec {
    pub input: Shape,
    pub layers: Vec<Layer>,
}

/// Why a spec string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The string does not follow the grammar.
    #[error("model spec {spec:?}, at character {pos}: expected {expected}, found {found}")]
    Syntax { spec: String, pos: usize, expected: String, found: String },
    /// A layer does not apply to its input.
    #[error("model spec: layer {index} `{layer}` on input {input}: {reason}")]
    Shape { index: usize, layer: String, input: Shape, reason: String },
}

impl Spec {
    /// A short readable name: the input, then each conv, local, pool and dense layer by kind and width
    /// (`1x28x28-conv6-max2-conv16-max2-dense120-dense84-dense10`, cut to 40 chars), then 8 hex digits of
    /// a hash (FNV-1a, 64 bits, fixed across versions) of the canonical spec string, so that two specs
    /// that differ anywhere (a stride, an activation) get different names.
    pub fn short_name(&self) -> String {
        let mut name = self.input.to_string();
        for layer in &self.layers {
            let part = match *layer {
                Layer::Conv { c_out, .. } => format!("conv{c_out}"),
                Layer::Local { c_out, .. } => format!("local{c_out}"),
                Layer::MaxPool { k, .. } => format!("max{k}"),
                Layer::AvgPool { k, .. } => format!("avg{k}"),
                Layer::Dense { n } => format!("dense{n}"),
                Layer::Act(_) => continue,
            };
            name.push('-');
            name.push_str(&part);
        }
        if name.chars().count() > 40 {
            name = name.chars().take(39).collect::<String>() + "~";
        }
        let hash = self
            .to_string()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
        format!("{name}-{:08x}", hash >> 32)
    }

    /// Parses a spec string or a preset name ([`PRESETS`]) and checks every layer's shape.
    pub fn parse(s: &str) -> Result<Spec, SpecError> {
        if let Some(p) = preset(s) {
            return Spec::parse(p);
        }
        let spec = Parser::new(s).spec()?;
        spec.output_shapes()?;
        Ok(spec)
    }

    /// The shape after each layer (`output_shapes()[i]` is layer `i`'s output; the input is not in it,
    /// [`crate::network::Network::activation_shapes`] has both), or the first layer that does not apply,
    /// with the numbers.
    pub fn output_shapes(&self) -> Result<Vec<Shape>, SpecError> {
        let mut shape = self.input;
        let mut out = Vec::with_capacity(self.layers.len());
        if shape.c == 0 || shape.h == 0 || shape.w == 0 {
            return Err(SpecError::Syntax {
                spec: self.to_string(),
                pos: 0,
                expected: "a positive input shape".into(),
                found: shape.to_string(),
            });
        }
        if checked_product(&[shape.c, shape.h, shape.w]).is_none() {
            return Err(SpecError::Syntax {
                spec: self.to_string(),
                pos: 0,
                expected: "an input shape of at most 2^64 - 1 features".into(),
                found: shape.to_string(),
            });
        }
        for (index, layer) in self.layers.iter().enumerate() {
            let fail = |reason: String| SpecError::Shape { index, layer: layer.to_string(), input: shape, reason };
            shape = match *layer {
                Layer::Conv { .. } | Layer::Local { .. } => {
                    let g = conv_geometry(layer, shape).expect("conv or local");
                    g.check().map_err(fail)?;
                    if let Some(t) = conv_table(layer) {
                        if t.dims() != (g.c_out, g.c_in) {
                            let (o, i) = t.dims();
                            return Err(fail(format!(
                                "table {t} connects {i} input to {o} output channels, the layer has c_in={} and c_out={}",
                                g.c_in, g.c_out
                            )));
                        }
                        if conv_groups(layer) != 1 {
                            return Err(fail("a connection table and groups do not combine".into()));
                        }
                    }
                    let groups = conv_groups(layer);
                    if !g.c_in.is_multiple_of(groups) || !g.c_out.is_multiple_of(groups) {
                        return Err(fail(format!(
                            "groups={groups} must divide both c_in={} and c_out={}",
                            g.c_in, g.c_out
                        )));
                    }
                    if matches!(layer, Layer::Local { .. })
                        && checked_product(&[g.c_out, g.h_out(), g.w_out(), g.c_in, g.k, g.k]).is_none()
                    {
                        return Err(fail("its weight has more entries than fit in 64 bits".into()));
                    }
                    Shape { c: g.c_out, h: g.h_out(), w: g.w_out() }
                }
                Layer::MaxPool { k, stride } | Layer::AvgPool { k, stride } => {
                    let g = PoolGeometry { c: shape.c, h_in: shape.h, w_in: shape.w, k, stride };
                    g.check().map_err(fail)?;
                    Shape { c: shape.c, h: g.h_out(), w: g.w_out() }
                }
                Layer::Dense { n } => {
                    if n == 0 {
                        return Err(fail("a dense layer needs at least one output".into()));
                    }
                    if checked_product(&[n, shape.len()]).is_none() {
                        return Err(fail(format!(
                            "the weight ({n}, {}) has more entries than fit in 64 bits",
                            shape.len()
                        )));
                    }
                    Shape { c: n, h: 1, w: 1 }
                }
                Layer::Act(_) => shape,
            };
            out.push(shape);
        }
        Ok(out)
    }

    /// The output shape of the whole network.
    pub fn output(&self) -> Result<Shape, SpecError> {
        Ok(self.output_shapes()?.last().copied().unwrap_or(self.input))
    }
}

/// The number of weight entries of a prunable layer (conv or dense) on `input`, `None` for the others: a
/// convolution's `c_out · (c_in / groups) · k²` (a table convolution keeps the dense layout), a dense
/// layer's `n · input`.
pub fn weight_len(layer: &Layer, input: Shape) -> Option<usize> {
    match *layer {
        Layer::Conv { c_out, k, groups, table: None, .. } => Some(c_out * (input.c / groups.max(1)) * k * k),
        Layer::Conv { c_out, k, .. } => Some(c_out * input.c * k * k),
        Layer::Dense { n } => Some(n * input.len()),
        _ => None,
    }
}

/// The weight entries of a prunable layer that exist before any pruning: all of them, or those its
/// connection table connects; `None` for a layer without a prunable weight.
pub fn free_mask(layer: &Layer, input: Shape) -> Option<Vec<bool>> {
    let n = weight_len(layer, input)?;
    Some(match (*layer, conv_table(layer)) {
        (Layer::Conv { k, .. }, Some(t)) => t.weight_mask(k),
        _ => vec![true; n],
    })
}

/// The number of groups of a convolution (1 for every other layer).
pub fn conv_groups(layer: &Layer) -> usize {
    match *layer {
        Layer::Conv { groups, .. } => groups,
        _ => 1,
    }
}

/// The connection table of a convolution, if it has one.
pub fn conv_table(layer: &Layer) -> Option<Table> {
    match *layer {
        Layer::Conv { table, .. } => table,
        _ => None,
    }
}

/// The geometry of a conv or local layer on `input` (`None` for other layers); a grouped convolution's
/// whole geometry (all `c_in` and `c_out` channels; [`conv_groups`] says how they split).
pub fn conv_geometry(layer: &Layer, input: Shape) -> Option<ConvGeometry> {
    let base = |c_out, k, stride, pad, dil, mode| ConvGeometry {
        c_in: input.c,
        h_in: input.h,
        w_in: input.w,
        c_out,
        k,
        stride,
        pad,
        dil,
        mode,
    };
    match *layer {
        Layer::Conv { c_out, k, stride, pad, dil, mode, .. } => Some(base(c_out, k, stride, pad, dil, mode)),
        Layer::Local { c_out, k, stride, pad } => Some(base(c_out, k, stride, pad, 1, PaddingMode::Zeros)),
        _ => None,
    }
}

impl fmt::Display for Layer {
    /// The canonical form: options at their defaults are left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Layer::Conv { c_out, k, stride, pad, dil, mode, groups, table } => {
                write!(f, "conv({c_out},{k}")?;
                if stride != 1 {
                    write!(f, ",stride={stride}")?;
                }
                if pad != 0 {
                    write!(f, ",pad={pad}")?;
                }
                if dil != 1 {
                    write!(f, ",dil={dil}")?;
                }
                if mode != PaddingMode::Zeros {
                    write!(f, ",mode={mode}")?;
                }
                if groups != 1 {
                    write!(f, ",groups={groups}")?;
                }
                if let Some(t) = table {
                    write!(f, ",table={t}")?;
                }
                f.write_str(")")
            }
            Layer::Local { c_out, k, stride, pad } => {
                write!(f, "local({c_out},{k}")?;
                if stride != 1 {
                    write!(f, ",stride={stride}")?;
                }
                if pad != 0 {
                    write!(f, ",pad={pad}")?;
                }
                f.write_str(")")
            }
            Layer::MaxPool { k, stride } | Layer::AvgPool { k, stride } => {
                let name = if matches!(self, Layer::MaxPool { .. }) { "maxpool" } else { "avgpool" };
                write!(f, "{name}({k}")?;
                if stride != k {
                    write!(f, ",stride={stride}")?;
                }
                f.write_str(")")
            }
            Layer::Dense { n } => write!(f, "dense({n})"),
            Layer::Act(a) => f.write_str(a.name()),
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.input)?;
        for l in &self.layers {
            write!(f, " > {l}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Spec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Spec::parse(s)
    }
}

/// A recursive-descent parser over the characters of the spec, skipping whitespace.
struct Parser<'a> {
    src: &'a str,
    chars: Vec<(usize, char)>,
    at: usize,
}

/// What follows the name of a layer: positional numbers, then `key=value` options.
struct Args {
    positional: Vec<(usize, usize)>,
    named: Vec<(usize, String, String)>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser { src, chars: src.char_indices().collect(), at: 0 }
    }

    fn skip_ws(&mut self) {
        while self.at < self.chars.len() && self.chars[self.at].1.is_whitespace() {
            self.at += 1;
        }
    }

    /// Character position of the next token (for messages), 0-based.
    fn pos(&mut self) -> usize {
        self.skip_ws();
        self.at
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.chars.get(self.at).map(|&(_, c)| c)
    }

    fn found(&mut self) -> String {
        self.skip_ws();
        match self.chars.get(self.at) {
            None => "the end of the spec".into(),
            Some(&(i, _)) => {
                let rest: String = self.src[i..].chars().take(12).collect();
                format!("{rest:?}")
            }
        }
    }

    fn error<T>(&mut self, expected: &str) -> Result<T, SpecError> {
        let pos = self.pos();
        Err(SpecError::Syntax { spec: self.src.to_string(), pos, expected: expected.into(), found: self.found() })
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char, expected: &str) -> Result<(), SpecError> {
        if self.eat(c) { Ok(()) } else { self.error(expected) }
    }

    fn number(&mut self, expected: &str) -> Result<usize, SpecError> {
        self.skip_ws();
        let start = self.at;
        let mut digits = String::new();
        while let Some(&(_, c)) = self.chars.get(self.at) {
            if !c.is_ascii_digit() {
                break;
            }
            digits.push(c);
            self.at += 1;
        }
        if digits.is_empty() {
            return self.error(expected);
        }
        digits.parse().or_else(|_| {
            self.at = start;
            self.error(&format!("{expected} (a number that fits in 64 bits)"))
        })
    }

    fn word(&mut self) -> String {
        self.skip_ws();
        let mut w = String::new();
        while let Some(&(_, c)) = self.chars.get(self.at) {
            if !(c.is_ascii_alphanumeric() || c == '_') {
                break;
            }
            w.push(c);
            self.at += 1;
        }
        w
    }

    fn spec(&mut self) -> Result<Spec, SpecError> {
        let c = self.number("an input shape CxHxW, e.g. 1x28x28")?;
        self.expect('x', "'x' between the dimensions of the input shape CxHxW")?;
        let h = self.number("the input height (CxHxW)")?;
        self.expect('x', "'x' between the dimensions of the input shape CxHxW")?;
        let w = self.number("the input width (CxHxW)")?;
        let mut layers = Vec::new();
        while self.peek().is_some() {
            self.expect('>', "'>' before the next layer")?;
            layers.push(self.layer()?);
        }
        Ok(Spec { input: Shape { c, h, w }, layers })
    }

    fn layer(&mut self) -> Result<Layer, SpecError> {
        const KINDS: &str = "a layer (conv, local, maxpool, avgpool, dense, relu, sigmoid, tanh)";
        let start = self.pos();
        let name = self.word();
        let layer = match name.as_str() {
            "relu" => Layer::Act(Activation::Relu),
            "sigmoid" => Layer::Act(Activation::Sigmoid),
            "tanh" => Layer::Act(Activation::Tanh),
            "conv" | "local" | "maxpool" | "avgpool" | "dense" => {
                let args = self.args(&name)?;
                self.build(&name, args)?
            }
            _ => {
                self.at = start;
                return self.error(KINDS);
            }
        };
        if matches!(layer, Layer::Act(_)) && self.peek() == Some('(') {
            return self.error(&format!("'>' after `{name}` (it takes no arguments)"));
        }
        Ok(layer)
    }

    fn args(&mut self, name: &str) -> Result<Args, SpecError> {
        self.expect('(', &format!("'(' after `{name}`"))?;
        let mut args = Args { positional: Vec::new(), named: Vec::new() };
        loop {
            let pos = self.pos();
            match self.peek() {
                Some(c) if c.is_ascii_digit() => {
                    if !args.named.is_empty() {
                        return self.error("a named option `key=value` (numbers come first)");
                    }
                    args.positional.push((pos, self.number("a number")?));
                }
                Some(c) if c.is_ascii_alphabetic() => {
                    let key = self.word();
                    self.expect('=', &format!("'=' after option `{key}`"))?;
                    let value = self.word();
                    if value.is_empty() {
                        return self.error(&format!("a value for option `{key}`"));
                    }
                    args.named.push((pos, key, value));
                }
                _ => return self.error(&format!("an argument of `{name}`")),
            }
            if self.eat(')') {
                return Ok(args);
            }
            self.expect(',', &format!("',' or ')' in the arguments of `{name}`"))?;
        }
    }

    fn build(&mut self, name: &str, args: Args) -> Result<Layer, SpecError> {
        let (n_pos, options): (usize, &[&str]) = match name {
            "conv" => (2, &["stride", "pad", "dil", "mode", "groups", "table"]),
            "local" => (2, &["stride", "pad"]),
            "maxpool" | "avgpool" => (1, &["stride"]),
            _ => (1, &[]),
        };
        let usage = match name {
            "conv" => "conv(c_out, k[, stride=S][, pad=P][, dil=D][, mode=M][, groups=G][, table=NAME])",
            "local" => "local(c_out, k[, stride=S][, pad=P])",
            "maxpool" => "maxpool(k[, stride=S])",
            "avgpool" => "avgpool(k[, stride=S])",
            _ => "dense(n)",
        };
        if args.positional.len() != n_pos {
            let pos = args.positional.get(n_pos).map_or(self.at.saturating_sub(1), |p| p.0);
            return Err(SpecError::Syntax {
                spec: self.src.to_string(),
                pos,
                expected: format!("{n_pos} number(s): {usage}"),
                found: format!("{} number(s)", args.positional.len()),
            });
        }
        let p: Vec<usize> = args.positional.iter().map(|a| a.1).collect();
        let mut stride = None;
        let mut pad = 0;
        let mut dil = 1;
        let mut groups = 1;
        let mut table = None;
        let mut mode = PaddingMode::Zeros;
        let mut seen: Vec<&str> = Vec::new();
        for (pos, key, value) in &args.named {
            let err = |expected: String, found: String| {
                Err(SpecError::Syntax { spec: self.src.to_string(), pos: *pos, expected, found })
            };
            let Some(&opt) = options.iter().find(|&&o| o == key) else {
                return err(format!("an option of {usage}"), format!("{key:?}"));
            };
            if seen.contains(&opt) {
                return err(format!("each option once in {usage}"), format!("{key:?} twice"));
            }
            seen.push(opt);
            if opt == "mode" {
                match PaddingMode::from_name(value) {
                    Some(m) => mode = m,
                    None => {
                        return err(
                            "a padding mode: zeros, reflect, replicate or circular".into(),
                            format!("{value:?}"),
                        );
                    }
                }
                continue;
            }
            if opt == "table" {
                match Table::from_name(value) {
                    Some(t) => table = Some(t),
                    None => {
                        let names: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
                        return err(format!("a connection table: {}", names.join(", ")), format!("{value:?}"));
                    }
                }
                continue;
            }
            let Ok(v) = value.parse::<usize>() else {
                return err(format!("a number for `{opt}`"), format!("{value:?}"));
            };
            match opt {
                "stride" => stride = Some(v),
                "pad" => pad = v,
                "groups" => groups = v,
                _ => dil = v,
            }
        }
        let positive = |what: &str, v: usize, pos: usize| -> Result<(), SpecError> {
            if v == 0 {
                Err(SpecError::Syntax {
                    spec: self.src.to_string(),
                    pos,
                    expected: format!("a positive {what} in {usage}"),
                    found: "0".into(),
                })
            } else {
                Ok(())
            }
        };
        for (i, &(pos, v)) in args.positional.iter().enumerate() {
            let what = match (name, i) {
                ("conv" | "local", 0) => "channel count",
                ("dense", _) => "output count",
                _ => "kernel size",
            };
            positive(what, v, pos)?;
        }
        let opt_pos = |key: &str| args.named.iter().find(|a| a.1 == key).map_or(0, |a| a.0);
        if let Some(s) = stride {
            positive("stride", s, opt_pos("stride"))?;
        }
        positive("dilation", dil, opt_pos("dil"))?;
        positive("groups", groups, opt_pos("groups"))?;
        Ok(match name {
            "conv" => Layer::Conv { c_out: p[0], k: p[1], stride: stride.unwrap_or(1), pad, dil, mode, groups, table },
            "local" => Layer::Local { c_out: p[0], k: p[1], stride: stride.unwrap_or(1), pad },
            "maxpool" => Layer::MaxPool { k: p[0], stride: stride.unwrap_or(p[0]) },
            "avgpool" => Layer::AvgPool { k: p[0], stride: stride.unwrap_or(p[0]) },
            _ => Layer::Dense { n: p[0] },
        })
    }
}
