//! Starting the app: what the command line asked for, and the window that runs it.

use std::path::PathBuf;

use super::{FocalYoloApp, wgpu_setup};
use crate::compute::device::DeviceChoice;
use crate::weights::bundled::Layer9Choice;
use crate::weights::download::YOLO11N_URL;

/// What the command line asked for; anything unset comes from the saved settings.
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    pub source: Option<String>,
    pub weights: Option<PathBuf>,
    pub layer9: Option<Layer9Choice>,
    pub device: Option<DeviceChoice>,
    pub imgsz: Option<usize>,
    /// Turn tracking on; otherwise the saved setting holds.
    pub track: bool,
    /// Weights to run beside the model (with their own layer 9).
    pub compare: Option<PathBuf>,
    /// Where recordings and snapshots go; otherwise the saved setting, else the platform's
    /// video folder.
    pub record_dir: Option<PathBuf>,
    /// Where downloaded weights go (`weights/`).
    pub weights_folder: PathBuf,
    /// Where Ultralytics' yolo11n.pt is downloaded from.
    pub download_url: String,
}

impl LaunchOptions {
    pub fn new() -> Self {
        Self {
            weights_folder: PathBuf::from("weights"),
            download_url: YOLO11N_URL.to_string(),
            ..Self::default()
        }
    }
}

/// Open the window and run until it closes.
pub fn run(launch: LaunchOptions) -> eframe::Result {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("focalyolo")
            .with_inner_size([1400.0, 860.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        wgpu_options: eframe::egui_wgpu::WgpuConfiguration {
            wgpu_setup: wgpu_setup(),
            ..Default::default()
        },
        ..Default::default()
    };
    eframe::run_native(
        "focalyolo",
        options,
        Box::new(|cc| Ok(Box::new(FocalYoloApp::new(cc, launch)))),
    )
}
