//! The choice of engine.

/// Which implementation of the linear layers a network runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Engine {
    /// Conv, local and pooling layers compiled to tied sparse matrices ([`super::sparse`]).
    #[default]
    Sparse,
    /// Direct convolution, local layers and pooling on the batch-innermost layout ([`super::direct`]); dense layers
    /// as in `Sparse`.
    Direct,
    /// Convolutions and local layers by im2col + GEMM ([`super::im2col`]); pooling layers as in `Direct`, dense
    /// layers as in `Sparse`.
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
