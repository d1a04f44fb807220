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

use std::sync::Mutex;

use burn::backend::{Device as BackendDevice, DeviceId, DispatchDevice, RuntimeId};
use burn::cubecl::prelude::{CubeCount, CubeDim};
use burn::tensor::Device;

/// Invocations per workgroup in every kernel here (`@workgroup_size` in the WGSL).
const WORKGROUP: u32 = 256;
/// WebGPU's minimum guaranteed workgroups per grid dimension.
const MAX_GROUPS_PER_DIM: u32 = 65_535;

/// How our kernels behave on one wgpu device. Set when the device opens (from its check
/// and its kind) and read at every launch on it, so one device failing its check turns the
/// kernels off for that device alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSettings {
    /// Our WGSL runs; off, burn's own operations take its place.
    pub wgsl: bool,
    /// The depthwise kernel lays its workgroups out with channels along x, for a software
    /// adapter (llvmpipe runs only a workgroup's x axis across its SIMD lanes), rather than
    /// a row's blocks along x, for a GPU. Both compute the same.
    pub channel_lanes: bool,
}

impl Default for KernelSettings {
    fn default() -> Self {
        Self {
            wgsl: true,
            channel_lanes: false,
        }
    }
}

/// Every wgpu device's settings, by the device's id; a device not here has the defaults.
static SETTINGS: Mutex<Vec<(DeviceId, KernelSettings)>> = Mutex::new(Vec::new());

/// The wgpu device under `device`, by id; none for any other backend.
fn wgpu_id(device: &Device) -> Option<DeviceId> {
    match device.as_dispatch() {
        DispatchDevice::Cube(cube) if cube.runtime() == RuntimeId::Wgpu => {
            Some(BackendDevice::to_id(cube))
        }
        _ => None,
    }
}

fn settings_by_id(id: DeviceId) -> KernelSettings {
    let table = SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
    table
        .iter()
        .find(|(known, _)| *known == id)
        .map_or_else(KernelSettings::default, |(_, settings)| *settings)
}

/// The kernel settings of `device` (the defaults for a device never configured).
pub fn settings(device: &Device) -> KernelSettings {
    wgpu_id(device).map_or_else(KernelSettings::default, settings_by_id)
}

/// Set the kernel settings of `device`; nothing for a device that is not wgpu.
pub fn configure(device: &Device, settings: KernelSettings) {
    let Some(id) = wgpu_id(device) else {
        return;
    };
    let mut table = SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
    table.retain(|(known, _)| *known != id);
    table.push((id, settings));
}

/// Whether `device` runs our WGSL: a plain wgpu device (not autodiff, not the CPU backend)
/// whose settings have it on.
pub fn runs_wgsl(device: &Device) -> bool {
    wgpu_id(device).is_some_and(|id| settings_by_id(id).wgsl)
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
