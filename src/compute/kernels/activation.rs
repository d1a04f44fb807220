//! The activation a kernel fuses after its convolution, and applying it on its own.

use burn::tensor::Tensor;
use burn::tensor::activation::{gelu, silu};

use super::cpu;

/// The activation fused into a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Silu,
    /// The exact (erf) GELU, as `nn.GELU()` computes it.
    Gelu,
}

impl Activation {
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Identity => x,
            _ if cpu::on_flex(&x) => cpu::activate_in_place(x, self),
            Activation::Silu => silu(x),
            Activation::Gelu => gelu(x),
        }
    }
}
