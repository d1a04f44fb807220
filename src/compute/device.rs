//! Choosing where the model runs: a real GPU through wgpu when there is one, burn's CPU
//! backend (`flex`) otherwise. A software Vulkan adapter such as lavapipe runs the same
//! shaders but slower than the CPU backend, so `auto` passes it over; `gpu` still takes it.

use burn::backend::FlexDevice;
use burn::backend::wgpu::graphics::AutoGraphicsApi;
use burn::backend::wgpu::wgpu::{AdapterInfo, DeviceType};
use burn::backend::wgpu::{
    RuntimeOptions, WgpuDevice, WgpuInitError, WgpuSetup, try_init_device, try_init_setup,
};
use burn::tensor::Device;
use std::sync::OnceLock;

use thiserror::Error;

use crate::compute::kernels::{KernelSettings, check_kernels, configure, settings};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum DeviceChoice {
    /// A hardware GPU if there is one, else the CPU backend.
    #[default]
    Auto,
    /// The wgpu device, even a software adapter.
    Gpu,
    /// burn's CPU backend.
    Cpu,
}

#[derive(Debug, Error)]
pub enum DeviceError {
    #[error(
        "no usable GPU adapter ({0}); on Linux, install a Vulkan driver (Debian: mesa-vulkan-drivers) or use --device cpu"
    )]
    NoAdapter(String),
}

/// The device the model runs on, and how to name it to a person.
#[derive(Debug, Clone)]
pub struct ComputeDevice {
    pub device: Device,
    pub description: String,
    pub is_gpu: bool,
    /// A software rasteriser (lavapipe, WARP) rather than a hardware GPU.
    pub is_software: bool,
}

impl ComputeDevice {
    pub fn cpu() -> Self {
        Self {
            device: FlexDevice.into(),
            description: "CPU (burn flex backend)".into(),
            is_gpu: false,
            is_software: false,
        }
    }

    pub fn select(choice: DeviceChoice) -> Result<Self, DeviceError> {
        match choice {
            DeviceChoice::Cpu => Ok(Self::cpu()),
            DeviceChoice::Gpu => default_gpu(),
            DeviceChoice::Auto => match default_gpu() {
                Ok(gpu) if !gpu.is_software => Ok(gpu),
                Ok(_) | Err(_) => Ok(Self::cpu()),
            },
        }
    }

    /// Run burn on a wgpu device someone already opened (the app's renderer), sharing its
    /// queue, so frames and maps need not cross between two devices.
    pub fn adopt(setup: WgpuSetup) -> Result<Self, DeviceError> {
        let info = setup.adapter.get_info();
        let software = is_software(&info);
        let description = format!(
            "{} ({:?}{})",
            info.name,
            info.backend,
            if software {
                ", software rasteriser"
            } else {
                ""
            }
        );
        let options =
            RuntimeOptions::try_default().map_err(|e| DeviceError::NoAdapter(e.to_string()))?;
        let device = match try_init_device(setup, options) {
            Ok(device) => device,
            // burn registered the default adapter already (it does so lazily, e.g. when
            // optimizer state is loaded): that runtime is this same adapter, so use it.
            Err(WgpuInitError::Registration { .. }) => WgpuDevice::default(),
            Err(e) => return Err(DeviceError::NoAdapter(e.to_string())),
        };
        let device = device.into();
        configure(
            &device,
            KernelSettings {
                wgsl: true,
                channel_lanes: software,
            },
        );
        Ok(Self {
            device,
            description,
            is_gpu: true,
            is_software: software,
        }
        .with_kernels_checked())
    }

    /// Switch the WGSL kernels off, and say so in the description, when they fail
    /// [`check_kernels`] on this device: burn's own operations then take their place.
    fn with_kernels_checked(mut self) -> Self {
        if let Err(err) = check_kernels(&self.device) {
            configure(
                &self.device,
                KernelSettings {
                    wgsl: false,
                    ..settings(&self.device)
                },
            );
            tracing::warn!("WGSL kernels switched off on {}: {err}", self.description);
            // The reason's first line; the whole of it (a driver's message) is in the log.
            let reason = err.to_string();
            let reason = reason.lines().next().unwrap_or_default();
            self.description
                .push_str(&format!(", WGSL kernels off: {reason}"));
        }
        self
    }
}

/// Whether an adapter is a software rasteriser (lavapipe, WARP) rather than a GPU.
pub fn is_software(adapter: &AdapterInfo) -> bool {
    adapter.device_type == DeviceType::Cpu
}

/// The default wgpu adapter, opened once per process: cubecl registers a device once.
fn default_gpu() -> Result<ComputeDevice, DeviceError> {
    static GPU: OnceLock<Result<ComputeDevice, String>> = OnceLock::new();
    GPU.get_or_init(|| {
        let options = RuntimeOptions::try_default().map_err(|e| e.to_string())?;
        match try_init_setup::<AutoGraphicsApi>(&WgpuDevice::default(), options) {
            Ok(setup) => {
                ComputeDevice::adopt(setup).map_err(|DeviceError::NoAdapter(reason)| reason)
            }
            // burn registered the default adapter already (it does so lazily, e.g. when
            // optimizer state is loaded): use that runtime.
            Err(WgpuInitError::Registration { .. }) => Ok(ComputeDevice {
                device: WgpuDevice::default().into(),
                description: "default wgpu adapter".into(),
                is_gpu: true,
                is_software: false,
            }
            .with_kernels_checked()),
            Err(e) => Err(e.to_string()),
        }
    })
    .clone()
    .map_err(DeviceError::NoAdapter)
}
