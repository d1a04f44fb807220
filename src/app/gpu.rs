//! One wgpu device for the window and the model.

use std::sync::Arc;

use burn::backend::wgpu::WgpuSetup;
use eframe::wgpu;

use crate::compute::device::{ComputeDevice, DeviceChoice, is_software};

/// burn on the renderer's own wgpu device when it is a hardware GPU (one device, one queue
/// for frames, model and maps); the CPU backend when the only adapter is a software one,
/// which runs the model slower than the CPU backend does.
pub(super) fn choose_device(
    render_state: Option<&eframe::egui_wgpu::RenderState>,
    choice: DeviceChoice,
) -> (ComputeDevice, Option<String>) {
    let Some(render_state) = render_state.filter(|_| choice != DeviceChoice::Cpu) else {
        return (ComputeDevice::cpu(), None);
    };
    let info = render_state.adapter.get_info();
    if is_software(&info) && choice == DeviceChoice::Auto {
        return (
            ComputeDevice::cpu(),
            Some(format!(
                "(the only GPU adapter, {}, is a software rasteriser)",
                info.name
            )),
        );
    }
    // burn asks for every feature the adapter has; a device opened without them (by
    // another host than `run`) would fail at its first timing query.
    let wanted = render_state
        .adapter
        .features()
        .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS);
    if !render_state.device.features().contains(wanted) {
        return (
            ComputeDevice::cpu(),
            Some("(the window's GPU device lacks features the model needs)".to_string()),
        );
    }
    let setup = WgpuSetup {
        instance: render_state.instance.clone(),
        adapter: render_state.adapter.clone(),
        device: render_state.device.clone(),
        queue: render_state.queue.clone(),
        backend: info.backend,
    };
    match ComputeDevice::adopt(setup) {
        Ok(device) => (device, None),
        Err(err) => (ComputeDevice::cpu(), Some(format!("(GPU unusable: {err})"))),
    }
}

/// The wgpu device the window opens: everything the adapter offers, as burn asks for when
/// it opens a device itself, so the model can share it.
fn shared_device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
    wgpu::DeviceDescriptor {
        label: Some("focalyolo"),
        required_features: adapter
            .features()
            .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
        required_limits: adapter.limits(),
        memory_hints: wgpu::MemoryHints::MemoryUsage,
        ..Default::default()
    }
}

/// How the window opens its wgpu device: with everything the adapter offers, so that the
/// model can run on it too.
pub fn wgpu_setup() -> eframe::egui_wgpu::WgpuSetup {
    eframe::egui_wgpu::WgpuSetup::CreateNew(eframe::egui_wgpu::WgpuSetupCreateNew {
        device_descriptor: Arc::new(shared_device_descriptor),
        ..eframe::egui_wgpu::WgpuSetupCreateNew::without_display_handle()
    })
}
