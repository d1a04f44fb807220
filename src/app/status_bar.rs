//! The status bar (device, model, source, messages) and what the window says before
//! there is anything to show.

use egui::{Color32, RichText, Ui};

use super::FocalYoloApp;
use super::model_manager::{ModelStatus, ModelSummary};
use super::session::SourceState;

impl FocalYoloApp {
    pub(super) fn status_bar(&mut self, ui: &mut Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.label(format!("Model on {}", self.models.device().description));
            if let Some(note) = &self.device_note {
                ui.label(RichText::new(note).weak());
            }
            ui.separator();
            let mut offer_download = false;
            match &self.models.status {
                ModelStatus::Missing => {
                    ui.label("no weights");
                    offer_download = true;
                }
                ModelStatus::Downloading { received, total } => {
                    let text = match total {
                        Some(total) => format!(
                            "downloading yolo11n.pt: {:.1} of {:.1} MB",
                            *received as f64 / 1e6,
                            *total as f64 / 1e6
                        ),
                        None => format!("downloading yolo11n.pt: {:.1} MB", *received as f64 / 1e6),
                    };
                    ui.spinner();
                    ui.label(text);
                }
                ModelStatus::Loading(path) => {
                    ui.spinner();
                    ui.label(format!("loading {}", path.display()));
                }
                ModelStatus::Ready => {
                    if let Some(summary) = &self.models.summary {
                        ui.label(model_line(summary));
                    }
                }
                ModelStatus::Failed(reason) => {
                    ui.label(RichText::new(reason).color(Color32::RED));
                    offer_download = true;
                }
            }
            // With a source playing and no model, say so where the eye is, and offer the
            // model the welcome screen offers.
            if offer_download && self.session.is_some() {
                ui.label(RichText::new("no model runs: frames are shown without boxes").strong());
                if ui.button("Download yolo11n.pt").clicked() {
                    self.download_default_weights(ui.ctx());
                }
            }
            if let Some(session) = &self.session {
                ui.separator();
                let name = session.spec.short_name();
                let text = match &session.state {
                    SourceState::Opening => format!("opening {name}"),
                    SourceState::Playing => name,
                    SourceState::Ended => format!("{name}: end"),
                    SourceState::Failed(reason) => reason.clone(),
                };
                let colour = match session.state {
                    SourceState::Failed(_) => Color32::RED,
                    _ => ui.visuals().text_color(),
                };
                ui.label(RichText::new(text).color(colour))
                    .on_hover_text(session.spec.to_string());
            }
            if let Some(notice) = &self.notice {
                ui.separator();
                let colour = if notice.is_error {
                    Color32::RED
                } else {
                    ui.visuals().text_color()
                };
                ui.label(RichText::new(&notice.text).color(colour));
            }
        });
    }

    /// What the central area says when there is nothing to show yet.
    pub(super) fn welcome(&mut self, ui: &mut Ui) {
        ui.vertical_centered(|ui| {
            ui.add_space(ui.available_height() / 4.0);
            ui.heading("focalyolo");
            ui.label("YOLO11 with FocalModulation, live.");
            ui.add_space(12.0);
            if matches!(
                self.models.status,
                ModelStatus::Missing | ModelStatus::Failed(_)
            ) {
                ui.label(
                    "No weights loaded. Open your own (Model > Open weights…, or drop a .pt or \
                     .safetensors file here), or download Ultralytics' official yolo11n.pt \
                     (COCO, 80 classes, 5.4 MB) into the weights folder:",
                );
                if ui
                    .add_enabled(
                        !self.models.is_busy(),
                        egui::Button::new("Download yolo11n.pt"),
                    )
                    .clicked()
                {
                    self.download_default_weights(ui.ctx());
                }
                ui.add_space(12.0);
            }
            ui.label("Open a video, images or a camera from the Source menu, or drop a file here.");
        });
    }
}

fn model_line(summary: &ModelSummary) -> String {
    let info = &summary.info;
    let layer9 = match (summary.bundled_layer, &summary.scores) {
        (true, Some(scores)) => format!("FocalModulation (bundled for YOLO11n: {scores})"),
        (true, None) => "FocalModulation (bundled for YOLO11n)".to_string(),
        (false, Some(scores)) => format!("{} ({scores})", info.layer9),
        (false, None) => info.layer9.to_string(),
    };
    format!(
        "{} — YOLO11{}, {} classes, {:.1} M parameters, layer 9 {layer9}",
        summary.path.file_name().map_or_else(
            || summary.path.display().to_string(),
            |n| n.to_string_lossy().into()
        ),
        info.scale,
        info.num_classes,
        info.parameters as f64 / 1e6,
    )
}
