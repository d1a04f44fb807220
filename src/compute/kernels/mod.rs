//! Hand-written WGSL compute kernels (sources in `shaders/`) and their launchers, and
//! CPU loops (`cpu`) for what burn's CPU backend does slowly.
//!
//! Each kernel is a burn backend extension (`#[backend_extension(Cube, Fusion)]`): with
//! burn's fusion on (the default), the launch is recorded as a custom operation in the
//! fusion stream and runs in order with everything around it, so fused element-wise work
//! before and after a kernel stays fused. The public functions take and return plain
//! `Tensor`s and fall back to burn's own operations on every other device (the CPU
//! backend, autodiff during training).

mod activation;
pub mod benchmark;
pub mod cpu;
mod depthwise;
mod letterbox;
mod self_check;

pub use activation::Activation;
pub use depthwise::{burn_depthwise_conv2d, depthwise_conv2d};
pub use letterbox::{ResizePlan, Tap, resize_pad_on_device};
pub use self_check::{KernelCheckError, check_kernels};

use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::{DispatchDevice, RuntimeId};
use burn::cubecl::prelude::{CubeCount, CubeDim};
use burn::tensor::Device;

/// Invocations per workgroup in every kernel here (`@workgroup_size` in the WGSL).
const WORKGROUP: u32 = 256;
/// WebGPU's minimum guaranteed workgroups per grid dimension.
const MAX_GROUPS_PER_DIM: u32 = 65_535;

static WGSL_ENABLED: AtomicBool = AtomicBool::new(true);

/// Turn the WGSL kernels off (or back on) process-wide, so benchmarks can time the model
/// with burn's own operations on the same device.
pub fn set_wgsl_enabled(enabled: bool) {
    WGSL_ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether the WGSL kernels are on: they are unless [`set_wgsl_enabled`] turned them off,
/// as a device whose kernel check fails does.
pub fn wgsl_enabled() -> bool {
    WGSL_ENABLED.load(Ordering::Relaxed)
}

static CHANNEL_LANES: AtomicBool = AtomicBool::new(false);

/// Lay the depthwise kernel's workgroups out with channels along x, for a software adapter
/// (llvmpipe runs only a workgroup's x axis across its SIMD lanes), or with a row's blocks
/// along x, for a GPU. Both compute the same; the device sets it when it opens.
pub fn set_channel_lanes(on: bool) {
    CHANNEL_LANES.store(on, Ordering::Relaxed);
}

/// Whether the depthwise kernel runs channels along x (see [`set_channel_lanes`]).
pub fn channel_lanes() -> bool {
    CHANNEL_LANES.load(Ordering::Relaxed)
}

/// Whether `device` runs our WGSL: a plain wgpu device (not autodiff, not the CPU backend).
pub fn runs_wgsl(device: &Device) -> bool {
    wgsl_enabled()
        && matches!(device.as_dispatch(), DispatchDevice::Cube(cube) if cube.runtime() == RuntimeId::Wgpu)
}

/// A 2-D grid of 256-wide workgroups covering `invocations` (the kernels flatten it back).
fn grid(invocations: usize) -> (CubeCount, CubeDim) {
    let groups = u32::try_from(invocations.div_ceil(WORKGROUP as usize))
        .expect("fewer than 2^32 workgroups");
    let (x, y) = if groups <= MAX_GROUPS_PER_DIM {
        (groups, 1)
    } else {
        (MAX_GROUPS_PER_DIM, groups.div_ceil(MAX_GROUPS_PER_DIM))
    };
    (CubeCount::Static(x, y, 1), CubeDim::new_1d(WORKGROUP))
}
