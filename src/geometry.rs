//! Shapes of convolution and pooling layers: the output-size formula, written once, and the padding
//! modes as index maps.

use std::fmt;

/// How a convolution reads outside its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PaddingMode {
    /// Outside is 0: the tap has no nonzero.
    #[default]
    Zeros,
    /// Mirror without repeating the edge: `-1 → 1`, `n → n - 2` (PyTorch `reflect`).
    Reflect,
    /// Clamp to the edge: `-1 → 0`, `n → n - 1`.
    Replicate,
    /// Wrap around: `-1 → n - 1`, `n → 0`.
    Circular,
}

impl PaddingMode {
    /// All modes, in the order of the grammar.
    pub const ALL: [PaddingMode; 4] =
        [PaddingMode::Zeros, PaddingMode::Reflect, PaddingMode::Replicate, PaddingMode::Circular];

    /// The name used in model specs and by PyTorch's `padding_mode`.
    pub fn name(self) -> &'static str {
        match self {
            PaddingMode::Zeros => "zeros",
            PaddingMode::Reflect => "reflect",
            PaddingMode::Replicate => "replicate",
            PaddingMode::Circular => "circular",
        }
    }

    /// Parses a mode name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Maps a coordinate `i` of the padded input (`-pad <= i < n + pad`) to the input coordinate it reads,
    /// or `None` when it reads a zero. Valid for `pad < n` (reflect) and `pad <= n` (circular), which
    /// [`ConvGeometry::check`] enforces.
    #[inline]
    pub fn source(self, i: isize, n: usize) -> Option<usize> {
        let n = n as isize;
        if (0..n).contains(&i) {
            return Some(i as usize);
        }
        match self {
            PaddingMode::Zeros => None,
            PaddingMode::Reflect => Some(if i < 0 { -i } else { 2 * (n - 1) - i } as usize),
            PaddingMode::Replicate => Some(i.clamp(0, n - 1) as usize),
            PaddingMode::Circular => Some(i.rem_euclid(n) as usize),
        }
    }
}

impl fmt::Display for PaddingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A 2-D convolution (or locally connected layer) of a `c_in × h_in × w_in` input with square kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    pub c_in: usize,
    pub h_in: usize,
    pub w_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub dil: usize,
    pub mode: PaddingMode,
}

/// Output length of a sliding window: `⌊(n + 2p − d(k − 1) − 1) / s⌋ + 1`, or `None` when it is not
/// positive or when a size on the way does not fit in `isize` (see [`window_sizes`]).
pub fn out_len(n: usize, k: usize, stride: usize, pad: usize, dil: usize) -> Option<usize> {
    let (padded, span) = window_sizes(n, k, pad, dil)?;
    (padded >= span && stride > 0).then(|| (padded - span) / stride + 1)
}

/// Along one axis, the coordinate in the unpadded input that output `o` reads through tap `κ`:
/// `o·s + κ·d − p`, outside `0..n` when it falls in the padding (a padding mode then maps it back, see
/// [`PaddingMode::source`]). Written once here for every engine and estimate; the tests' oracle keeps its own.
/// The sizes come from a checked geometry ([`window_sizes`]), so the value fits in `isize`.
#[inline(always)]
pub fn tap_coord(o: usize, kappa: usize, stride: usize, dil: usize, pad: usize) -> isize {
    (o * stride + kappa * dil) as isize - pad as isize
}

/// `(n + 2p, d(k − 1) + 1)`, the padded length and the kernel's span, computed with checked arithmetic:
/// `None` when `k = 0` or either does not fit in `isize` (every coordinate of a layer is then an `isize`
/// without overflow).
pub fn window_sizes(n: usize, k: usize, pad: usize, dil: usize) -> Option<(usize, usize)> {
    let padded = pad.checked_mul(2)?.checked_add(n)?;
    let span = dil.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
    (isize::try_from(padded).is_ok() && isize::try_from(span).is_ok()).then_some((padded, span))
}

/// `a · b · c`, or `None` when it overflows.
pub fn checked_product(factors: &[usize]) -> Option<usize> {
    factors.iter().try_fold(1usize, |p, &f| p.checked_mul(f))
}

impl ConvGeometry {
    /// Output height.
    pub fn h_out(&self) -> usize {
        out_len(self.h_in, self.k, self.stride, self.pad, self.dil).unwrap_or(0)
    }

    /// Output width.
    pub fn w_out(&self) -> usize {
        out_len(self.w_in, self.k, self.stride, self.pad, self.dil).unwrap_or(0)
    }

    /// Input features `c_in · h_in · w_in`.
    pub fn in_len(&self) -> usize {
        self.c_in * self.h_in * self.w_in
    }

    /// Output features `c_out · h_out · w_out`.
    pub fn out_len(&self) -> usize {
        self.c_out * self.h_out() * self.w_out()
    }

    /// Shape of the kernel, PyTorch's `(c_out, c_in, k, k)`.
    pub fn weight_shape(&self) -> Vec<usize> {
        vec![self.c_out, self.c_in, self.k, self.k]
    }

    /// Kernel parameters `c_out · c_in · k · k`.
    pub fn kernel_len(&self) -> usize {
        self.c_out * self.c_in * self.k * self.k
    }

    /// `(out_features, in_features)` of the layer's matrix, [`crate::linear_map::LinearMap::dims`].
    pub fn dims(&self) -> (usize, usize) {
        (self.out_len(), self.in_len())
    }

    /// A convolution's parameter tensors: weight `(c_out, c_in, k, k)`, bias `(c_out)`.
    pub fn conv_param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        vec![("weight", self.weight_shape()), ("bias", vec![self.c_out])]
    }

    /// A locally connected layer's parameter tensors: weight `(c_out, h_out, w_out, c_in, k, k)`, bias
    /// `(c_out, h_out, w_out)`.
    pub fn local_param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let (c_out, h_out, w_out) = (self.c_out, self.h_out(), self.w_out());
        vec![("weight", vec![c_out, h_out, w_out, self.c_in, self.k, self.k]), ("bias", vec![c_out, h_out, w_out])]
    }

    /// A convolution's multiplicities ([`crate::linear_map::LinearMap::multiplicity`]): taps that read an
    /// input value per kernel entry, `h_out·w_out` per bias.
    pub fn conv_multiplicity(&self) -> Vec<Vec<u32>> {
        let mut m = vec![0u32; self.kernel_len()];
        self.for_each_tap(|t| m[((t.o * self.c_in + t.i) * self.k + t.ky) * self.k + t.kx] += 1);
        vec![m, vec![(self.h_out() * self.w_out()) as u32; self.c_out]]
    }

    /// A locally connected layer's multiplicities: one per tap that reads an input value (zero-padding taps
    /// copy nothing), one per bias.
    pub fn local_multiplicity(&self) -> Vec<Vec<u32>> {
        let (h_out, w_out, taps) = (self.h_out(), self.w_out(), self.c_in * self.k * self.k);
        let mut m = vec![0u32; self.out_len() * taps];
        self.for_each_tap(|t| {
            let row = (t.o * h_out + t.oy) * w_out + t.ox;
            m[row * taps + (t.i * self.k + t.ky) * self.k + t.kx] += 1;
        });
        vec![m, vec![1; self.out_len()]]
    }

    /// The geometry, or a panic naming `what` and the geometry's problem ([`Self::check`]): for
    /// constructors, whose callers checked the spec.
    #[track_caller]
    pub fn checked(&self, what: &str) -> Self {
        if let Err(e) = self.check() {
            panic!("{what}: {e}");
        }
        *self
    }

    /// Checks that the layer applies: positive sizes, an output of at least one position, and a padding
    /// its mode can produce. The message names the numbers.
    pub fn check(&self) -> Result<(), String> {
        let ConvGeometry { c_in, h_in, w_in, c_out, k, stride, pad, dil, mode } = *self;
        if c_in == 0 || c_out == 0 || k == 0 || stride == 0 || dil == 0 || h_in == 0 || w_in == 0 {
            return Err(format!(
                "sizes must be positive (c_in={c_in}, c_out={c_out}, k={k}, stride={stride}, dil={dil}, input {h_in}x{w_in})"
            ));
        }
        let (Some((ph, span)), Some((pw, _))) = (window_sizes(h_in, k, pad, dil), window_sizes(w_in, k, pad, dil))
        else {
            return Err(format!(
                "k={k}, pad={pad}, dil={dil} on input {h_in}x{w_in}: the padded input (n + 2·pad) or the kernel span (dil·(k − 1) + 1) exceeds {}",
                isize::MAX
            ));
        };
        if span > ph || span > pw {
            return Err(format!(
                "kernel span {span} (k={k}, dil={dil}) exceeds the padded input {ph}x{pw} (input {h_in}x{w_in}, pad={pad}): output size would be {}x{}",
                ph as isize - span as isize + 1,
                pw as isize - span as isize + 1,
            ));
        }
        let small = h_in.min(w_in);
        match mode {
            PaddingMode::Reflect if pad >= small => {
                Err(format!("reflect padding {pad} must be smaller than the input size {h_in}x{w_in}"))
            }
            PaddingMode::Circular if pad > small => {
                Err(format!("circular padding {pad} must not exceed the input size {h_in}x{w_in}"))
            }
            _ => Ok(()),
        }?;
        if checked_product(&[c_out, self.h_out(), self.w_out()]).is_none()
            || checked_product(&[c_in, h_in, w_in]).is_none()
        {
            return Err(format!(
                "the output {c_out}x{}x{} or the input {c_in}x{h_in}x{w_in} has more features than fit in 64 bits",
                self.h_out(),
                self.w_out()
            ));
        }
        if checked_product(&[c_out, c_in, k, k]).is_none() {
            return Err(format!("the kernel ({c_out}, {c_in}, {k}, {k}) has more entries than fit in 64 bits"));
        }
        Ok(())
    }

    /// Calls `f(tap)` with a [`Tap`] `{ o, oy, ox, i, ky, kx, iy, ix }` for every tap of the convolution that
    /// reads an input value (taps in the zero padding are skipped), in order of output, then input channel,
    /// then kernel row and column. `(iy, ix)` is the input position after the padding map.
    #[inline]
    pub fn for_each_tap(&self, mut f: impl FnMut(Tap)) {
        let (h_out, w_out) = (self.h_out(), self.w_out());
        for o in 0..self.c_out {
            for oy in 0..h_out {
                for ox in 0..w_out {
                    for i in 0..self.c_in {
                        for ky in 0..self.k {
                            let py = tap_coord(oy, ky, self.stride, self.dil, self.pad);
                            let Some(iy) = self.mode.source(py, self.h_in) else { continue };
                            for kx in 0..self.k {
                                let px = tap_coord(ox, kx, self.stride, self.dil, self.pad);
                                let Some(ix) = self.mode.source(px, self.w_in) else { continue };
                                f(Tap { o, oy, ox, i, ky, kx, iy, ix });
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One tap of a convolution: output `(o, oy, ox)` reads input `(i, iy, ix)` through kernel entry
/// `(o, i, ky, kx)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tap {
    pub o: usize,
    pub oy: usize,
    pub ox: usize,
    pub i: usize,
    pub ky: usize,
    pub kx: usize,
    pub iy: usize,
    pub ix: usize,
}

/// A pooling window `k × k` with stride `stride`, over each channel of a `c × h_in × w_in` input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolGeometry {
    pub c: usize,
    pub h_in: usize,
    pub w_in: usize,
    pub k: usize,
    pub stride: usize,
}

impl PoolGeometry {
    /// Output height `⌊(h − k) / s⌋ + 1`.
    pub fn h_out(&self) -> usize {
        out_len(self.h_in, self.k, self.stride, 0, 1).unwrap_or(0)
    }

    /// Output width.
    pub fn w_out(&self) -> usize {
        out_len(self.w_in, self.k, self.stride, 0, 1).unwrap_or(0)
    }

    /// Input features.
    pub fn in_len(&self) -> usize {
        self.c * self.h_in * self.w_in
    }

    /// Output features.
    pub fn out_len(&self) -> usize {
        self.c * self.h_out() * self.w_out()
    }

    /// `(out_features, in_features)` of the layer's matrix, [`crate::linear_map::LinearMap::dims`].
    pub fn dims(&self) -> (usize, usize) {
        (self.out_len(), self.in_len())
    }

    /// The geometry, or a panic naming `what` and the window's problem ([`Self::check`]).
    #[track_caller]
    pub fn checked(&self, what: &str) -> Self {
        if let Err(e) = self.check() {
            panic!("{what}: {e}");
        }
        *self
    }

    /// Checks that the window fits the input; the message names the numbers.
    pub fn check(&self) -> Result<(), String> {
        let PoolGeometry { c, h_in, w_in, k, stride } = *self;
        if c == 0 || k == 0 || stride == 0 || h_in == 0 || w_in == 0 {
            return Err(format!("sizes must be positive (k={k}, stride={stride}, input {c}x{h_in}x{w_in})"));
        }
        if k > h_in || k > w_in {
            return Err(format!(
                "window {k}x{k} larger than the input {h_in}x{w_in}: output size would be {}x{}",
                h_in as i128 - k as i128 + 1,
                w_in as i128 - k as i128 + 1
            ));
        }
        if isize::try_from(h_in).is_err() || isize::try_from(w_in).is_err() {
            return Err(format!("input {h_in}x{w_in}: a side exceeds {}", isize::MAX));
        }
        if checked_product(&[c, h_in, w_in]).is_none() || checked_product(&[k, k]).is_none() {
            return Err(format!("input {c}x{h_in}x{w_in} or window {k}x{k}: more entries than fit in 64 bits"));
        }
        Ok(())
    }

    /// The input features of window `(c, oy, ox)`, in row-major window order.
    pub fn window(&self, c: usize, oy: usize, ox: usize) -> impl Iterator<Item = usize> + '_ {
        let (y0, x0) = (oy * self.stride, ox * self.stride);
        (0..self.k).flat_map(move |ky| (0..self.k).map(move |kx| (c * self.h_in + y0 + ky) * self.w_in + x0 + kx))
    }
}
