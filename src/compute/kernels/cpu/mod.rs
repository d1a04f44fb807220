//! CPU kernels for what burn's CPU backend (`flex`) does slowly, behind the same `Tensor`
//! interface as the WGSL kernels. Measured with `focalyolo bench --profile --device cpu`:
//! flex evaluated SiLU's `exp` one element at a time on one thread (a quarter of YOLO11n's
//! forward pass), and its convolutions convert every input to channels-last and gather
//! im2col tiles channel by channel, which for the stem's 3 and layer 1's 16 input channels
//! ran at a few GFLOP/s. Here convolutions gather im2col rows from the NCHW planes as they
//! are, multiply with the `gemm` crate flex itself uses, and add bias and SiLU while the
//! output tile is still in cache. flex's nearest upsampling returns a view that the concat
//! after it gathers element by element; here it is written out. Detect's sigmoid and DFL
//! softmax run in one vectorised pass.

mod activation;
mod conv;
mod decode;
mod upsample;

pub use activation::silu_in_place;
pub use conv::conv2d;
pub use decode::{AnchorGrid, decode};
pub use upsample::upsample_nearest2x;

use burn::backend::flex::FlexTensor;
use burn::backend::{BackendTensor, DispatchDevice, DispatchTensorKind};
use burn::tensor::{DType, Tensor};

/// Whether `x` lives on burn's CPU backend in f32, outside autodiff (training needs burn's
/// own operations, which record their gradients).
pub fn on_flex<const D: usize>(x: &Tensor<D>) -> bool {
    matches!(x.device().as_dispatch(), DispatchDevice::Flex(_))
        && !x.is_autodiff()
        && x.dtype() == DType::F32
}
/// Read-only access to a CPU tensor's values without copying them (a parameter's tensor
/// is shared with the module, so `into_data` would copy it on every call).
pub(super) fn flex_tensor<const D: usize>(tensor: Tensor<D>) -> FlexTensor {
    match tensor.into_dispatch().kind {
        DispatchTensorKind::Flex(BackendTensor::Float(t)) if t.is_contiguous() => t,
        DispatchTensorKind::Flex(BackendTensor::Float(t)) => t.to_contiguous(),
        _ => unreachable!("callers check on_flex"),
    }
}

pub(super) fn values(tensor: &FlexTensor) -> &[f32] {
    tensor
        .as_slice::<f32>()
        .expect("on_flex checked the dtype; flex_tensor made it contiguous")
}
