//! CPU kernels for what burn's CPU backend (`flex`) does slowly, behind the same `Tensor`
//! interface as the WGSL kernels. Measured with `focalyolo bench --profile --device cpu`:
//! flex evaluated SiLU's `exp` one element at a time on one thread (a quarter of YOLO11n's
//! forward pass), and its convolutions convert every input to channels-last and gather
//! im2col tiles channel by channel, which for the stem's 3 and layer 1's 16 input channels
//! ran at a few GFLOP/s. Here convolutions gather im2col rows from the NCHW planes as they
//! are, multiply with the `gemm` crate flex itself uses, and add bias and SiLU while the
//! output tile is still in cache. flex's nearest upsampling returns a view that the concat
//! after it gathers element by element; here it is written out. Detect's sigmoid and DFL
//! softmax run in one vectorised pass. Depthwise convolutions (FocalModulation's levels,
//! Detect's DWConvs, C2PSA's positional conv) run plane by plane on every thread with bias
//! and activation fused, where flex ran them through its grouped convolution. On CPUs with
//! AVX2 and FMA, 1×1 convolutions and those of planes up to 20×20 run on our own
//! micro-kernel ([`direct`]) with weights packed once per layer, and 3×3 stride-1
//! convolutions as Winograd F(2×2, 3×3) ([`winograd`]) on the same micro-kernel; SPPF's
//! max pools run plane by plane; attention's softmax runs row by row, vectorised.

mod activation;
mod conv;
mod decode;
mod depthwise;
#[cfg(target_arch = "x86_64")]
mod direct;
mod im2col;
mod im2col_gemm;
mod matmul;
#[cfg(target_arch = "x86_64")]
mod micro_kernel;
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
mod packed;
mod peak;
mod pool;
mod softmax;
mod upsample;
#[cfg(target_arch = "x86_64")]
mod winograd;

pub use activation::activate_in_place;
pub use conv::{ConvLayer, conv2d};
pub use decode::{AnchorGrid, decode, dfl_distances};
pub use depthwise::depthwise_conv2d;
pub use matmul::matmul;
pub use packed::PackCache;
pub use peak::{FmaPeak, fma_peak};
pub use pool::max_pool2d;
pub use softmax::softmax_last_axis;
pub use upsample::upsample_nearest2x;

use std::cell::RefCell;

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

/// `f()` compiled for the widest SIMD this CPU has (AVX-512, else AVX2 with FMA, else the
/// baseline), chosen at run time: the loops in `f` and in the `#[inline(always)]` functions
/// it calls vectorise at that width. `f` must be `#[inline(always)]` itself: a closure
/// compiled on its own gets none of the features. No path contracts `a * b + c` into an FMA, so all give
/// the same values.
#[inline(always)]
pub(super) fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has just been found to support AVX-512F.
            return unsafe { with_avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has just been found to support AVX2 and FMA.
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// A vector of the `len` values `fill` writes: zeroing it first was a serial `memset` per
/// layer, 5% of the CPU profile.
///
/// # Safety
/// `fill` must write every value of the slice it is given.
pub(super) unsafe fn filled_by(
    len: usize,
    fill: impl FnOnce(&mut [std::mem::MaybeUninit<f32>]),
) -> Vec<f32> {
    let mut values = Vec::with_capacity(len);
    fill(&mut values.spare_capacity_mut()[..len]);
    // SAFETY: `fill` wrote all `len` values (every caller's contract).
    unsafe { values.set_len(len) };
    values
}

/// `values` once they have all been written.
///
/// # Safety
/// Every element of `values` must have been initialised.
pub(super) unsafe fn assume_written(values: &mut [std::mem::MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: MaybeUninit<f32> has f32's layout, and the caller vouches for the values.
    unsafe { &mut *(values as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) }
}

thread_local! {
    /// Each thread's working buffer (im2col rows, padded planes), kept between calls: a
    /// fresh one per band came back from the allocator as pages the kernel zeroes on first
    /// touch, and was zeroed again before being overwritten.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `f` with this thread's buffer of `len` values (holding whatever earlier calls left), or
/// a fresh one while the thread's own is in use further up its stack.
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
            f(&mut buffer[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}
