//! Connection tables: which input channels each output channel of a convolution reads.
//!
//! A table `T` of a `c_in → c_out` convolution is a 0/1 matrix `(c_out, c_in)`; the layer computes
//!
//! ```text
//! y[o, oy, ox] = b[o] + Σ_{i : T[o, i] = 1} Σ_{ky, kx} w[o, i, ky, kx] · x̃[i, oy·s + ky·d, ox·s + kx·d]
//! ```
//!
//! The weight keeps PyTorch's dense layout `(c_out, c_in, k, k)`; entries with `T[o, i] = 0` are 0 and stay
//! 0 (initialisation writes 0 there, and no engine gives them a gradient). The sparse engine simply does
//! not store those connections; the dense engines multiply by a masked kernel. A table is named in the
//! spec (`conv(16,5,table=lenet5_c3)`), so the checkpoint's spec metadata names it.

use std::fmt;

/// A built-in connection table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// LeCun, Bottou, Bengio, Haffner 1998, Table I: C3 map `j` of LeNet-5 reads these S2 maps.
    LeNet5C3,
}

/// LeNet-5's S2 → C3 table (LeCun et al. 1998, Table I), one row per C3 map: the S2 maps it reads.
pub const LENET5_C3: [&[usize]; 16] = [
    &[0, 1, 2],
    &[1, 2, 3],
    &[2, 3, 4],
    &[3, 4, 5],
    &[4, 5, 0],
    &[5, 0, 1],
    &[0, 1, 2, 3],
    &[1, 2, 3, 4],
    &[2, 3, 4, 5],
    &[3, 4, 5, 0],
    &[4, 5, 0, 1],
    &[5, 0, 1, 2],
    &[0, 1, 3, 4],
    &[1, 2, 4, 5],
    &[0, 2, 3, 5],
    &[0, 1, 2, 3, 4, 5],
];

impl Table {
    /// Every built-in table.
    pub const ALL: [Table; 1] = [Table::LeNet5C3];

    /// The name used in specs.
    pub fn name(self) -> &'static str {
        match self {
            Table::LeNet5C3 => "lenet5_c3",
        }
    }

    /// Parses a table name ([`Self::name`]).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    /// `(c_out, c_in)` the table is made for.
    pub fn dims(self) -> (usize, usize) {
        match self {
            Table::LeNet5C3 => (16, 6),
        }
    }

    /// `T[o, i]`: whether output channel `o` reads input channel `i`.
    ///
    /// # Panics
    /// If `o` or `i` is outside the table.
    #[track_caller]
    pub fn connects(self, o: usize, i: usize) -> bool {
        let (c_out, c_in) = self.dims();
        assert!(o < c_out && i < c_in, "Table::connects: ({o}, {i}) outside the {c_out}x{c_in} table {self}");
        match self {
            Table::LeNet5C3 => LENET5_C3[o].contains(&i),
        }
    }

    /// Connections in the table (ones of `T`).
    pub fn connections(self) -> usize {
        let (c_out, c_in) = self.dims();
        (0..c_out).map(|o| (0..c_in).filter(|&i| self.connects(o, i)).count()).sum()
    }

    /// The weight mask `(c_out, c_in, k, k)`, row-major: `true` where the kernel entry exists.
    pub fn weight_mask(self, k: usize) -> Vec<bool> {
        let (c_out, c_in) = self.dims();
        let mut m = Vec::with_capacity(c_out * c_in * k * k);
        for o in 0..c_out {
            for i in 0..c_in {
                m.extend(std::iter::repeat_n(self.connects(o, i), k * k));
            }
        }
        m
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
