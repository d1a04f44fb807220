//! The menu bar: sources (files, folders, cameras), the model, and playback.

use egui::Ui;

use crate::compute::device::DeviceChoice;
use crate::source::{CameraMode, SourceSpec, list_cameras};
use crate::weights::bundled::Layer9Choice;

use super::FocalYoloApp;

/// Resolutions offered for cameras; nokhwa picks the closest the camera supports.
const CAMERA_MODES: [CameraMode; 4] = [
    CameraMode {
        width: 640,
        height: 480,
        fps: 30,
    },
    CameraMode {
        width: 1280,
        height: 720,
        fps: 30,
    },
    CameraMode {
        width: 1920,
        height: 1080,
        fps: 30,
    },
    CameraMode {
        width: 1280,
        height: 720,
        fps: 60,
    },
];

impl FocalYoloApp {
    pub(super) fn top_bar(&mut self, ui: &mut Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("Source", |ui| self.source_menu(ui));
            ui.menu_button("Model", |ui| self.model_menu(ui));
            ui.separator();
            self.playback_controls(ui);
        });
    }

    fn source_menu(&mut self, ui: &mut Ui) {
        if ui.button("Open video or image…").clicked() {
            ui.close();
            if let Some(path) = rfd::FileDialog::new()
                .add_filter(
                    "video and images",
                    &[
                        "mp4", "mkv", "webm", "avi", "mov", "m4v", "mjpeg", "jpg", "jpeg", "png",
                        "bmp", "webp", "tif", "tiff",
                    ],
                )
                .add_filter("all files", &["*"])
                .pick_file()
            {
                self.open_source(ui.ctx(), SourceSpec::parse(&path.to_string_lossy()));
            }
        }
        if ui.button("Open image folder…").clicked() {
            ui.close();
            if let Some(folder) = rfd::FileDialog::new().pick_folder() {
                self.open_source(ui.ctx(), SourceSpec::Images(folder.display().to_string()));
            }
        }
        if let Some(last) = self.settings.last_source.clone()
            && ui.button(format!("Reopen {last}")).clicked()
        {
            ui.close();
            self.open_source(ui.ctx(), SourceSpec::parse(&last));
        }
        ui.separator();
        ui.menu_button("Camera", |ui| {
            if self.cameras.is_none() || ui.button("Look for cameras again").clicked() {
                self.cameras = Some(list_cameras().unwrap_or_default());
            }
            let cameras = self.cameras.clone().unwrap_or_default();
            if cameras.is_empty() {
                ui.label("No camera found.");
            }
            for camera in cameras {
                if ui
                    .button(format!("camera:{} — {}", camera.index, camera.name))
                    .clicked()
                {
                    ui.close();
                    self.open_source(ui.ctx(), SourceSpec::Camera(camera.index));
                }
            }
            ui.separator();
            ui.label("Resolution (closest the camera offers):");
            ui.radio_value(&mut self.settings.camera_mode, None, "highest frame rate");
            for mode in CAMERA_MODES {
                ui.radio_value(&mut self.settings.camera_mode, Some(mode), mode.to_string());
            }
        });
    }

    fn model_menu(&mut self, ui: &mut Ui) {
        if ui.button("Open weights…").clicked() {
            ui.close();
            if let Some(path) = rfd::FileDialog::new()
                .add_filter("YOLO11 weights", &["pt", "safetensors"])
                .pick_file()
            {
                self.open_weights(ui.ctx(), &path);
            }
        }
        if ui.button("Open trained FocalModulation layer…").clicked() {
            ui.close();
            if let Some(path) = rfd::FileDialog::new()
                .add_filter("distilled layer 9", &["safetensors"])
                .pick_file()
            {
                self.settings.layer9 = Layer9Choice::Focal(path);
                self.reload_model(ui.ctx());
            }
        }
        let mut stock = self.settings.layer9 == Layer9Choice::Stock;
        if ui
            .checkbox(
                &mut stock,
                "Keep SPPF (no bundled FocalModulation for YOLO11n)",
            )
            .changed()
        {
            self.settings.layer9 = if stock {
                Layer9Choice::Stock
            } else {
                Layer9Choice::Bundled
            };
            self.reload_model(ui.ctx());
        }
        if ui
            .add_enabled(
                !self.models.is_busy(),
                egui::Button::new("Download yolo11n.pt (Ultralytics, COCO)"),
            )
            .clicked()
        {
            ui.close();
            self.download_default_weights(ui.ctx());
        }
        ui.separator();
        ui.label("Run on (takes effect at the next start):");
        for (choice, label) in [
            (DeviceChoice::Auto, "auto: hardware GPU, else CPU"),
            (DeviceChoice::Gpu, "GPU, even a software one"),
            (DeviceChoice::Cpu, "CPU"),
        ] {
            ui.radio_value(&mut self.settings.device, choice, label);
        }
    }

    fn playback_controls(&mut self, ui: &mut Ui) {
        let Some(session) = &mut self.session else {
            return;
        };
        let control = session.control.clone();
        let paused = control.is_paused();
        if ui.button(if paused { "Play" } else { "Pause" }).clicked() {
            control.set_paused(!paused);
        }
        if ui
            .add_enabled(paused, egui::Button::new("Step"))
            .on_hover_text("Show the next frame")
            .clicked()
        {
            control.step();
        }
        ui.checkbox(&mut self.settings.looping, "Loop");
        if let (Some(duration), false) = (session.duration, session.live) {
            let mut position = self.current.as_ref().map_or(0.0, |p| p.frame.pts);
            let slider = ui.add(
                egui::Slider::new(&mut position, 0.0..=duration)
                    .show_value(false)
                    .trailing_fill(true),
            );
            // The bar shows no text; screen readers still need its name.
            slider.widget_info(|| egui::WidgetInfo::slider(true, position, "playback position"));
            if slider.drag_stopped() || (slider.changed() && !slider.dragged()) {
                session.seek(position);
                if paused {
                    control.step();
                }
            }
            ui.label(format!("{} / {}", clock(position), clock(duration)));
        } else if let Some(current) = &self.current {
            ui.label(clock(current.frame.pts));
        }
    }
}

fn clock(seconds: f64) -> String {
    let total = seconds.max(0.0);
    let minutes = (total / 60.0).floor();
    format!("{minutes:.0}:{:05.2}", total - minutes * 60.0)
}
