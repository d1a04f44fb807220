//! The status bar (device, model, source, errors) and what the window says before
//! there is anything to show.

use egui::{Color32, RichText, Ui};

use super::Action;
use super::model_manager::{ModelManager, ModelStatus, ModelSummary};
use super::session::{Session, SourceState};
use crate::weights::bundled::Layer9Origin;

/// The bottom line: where the model runs, which model, the source, and what went wrong.
pub struct StatusBar {
    /// Why the model runs where it does, when that was not the user's choice.
    device_note: Option<String>,
    /// What became of the last recording or snapshot.
    pub note: Option<Note>,
}

/// A line for the status bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub text: String,
    pub error: bool,
}

impl Note {
    pub fn info(text: String) -> Self {
        Self { text, error: false }
    }

    pub fn error(text: String) -> Self {
        Self { text, error: true }
    }
}

impl StatusBar {
    pub fn new(device_note: Option<String>) -> Self {
        Self {
            device_note,
            note: None,
        }
    }

    pub fn show(
        &self,
        ui: &mut Ui,
        models: &ModelManager,
        compared: &ModelManager,
        session: Option<&Session>,
        nms_free: bool,
    ) -> Option<Action> {
        let mut action = None;
        ui.horizontal_wrapped(|ui| {
            ui.label(format!("Model on {}", models.device().description));
            if let Some(note) = &self.device_note {
                ui.label(RichText::new(note).weak());
            }
            ui.separator();
            let mut offer_download = false;
            match &models.status {
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
                    if let Some(summary) = &models.summary {
                        ui.label(model_line(summary, nms_free));
                    }
                }
                ModelStatus::Failed(reason) => {
                    ui.label(RichText::new(reason).color(Color32::RED));
                    offer_download = true;
                }
            }
            // With a source playing and no model, say so where the eye is, and offer the
            // model the welcome screen offers.
            if offer_download && session.is_some() {
                ui.label(RichText::new("no model runs: frames are shown without boxes").strong());
                if ui.button("Download yolo11n.pt").clicked() {
                    action = Some(Action::DownloadWeights);
                }
            }
            match (&compared.status, &compared.summary) {
                (ModelStatus::Ready, Some(summary)) => {
                    ui.separator();
                    ui.label(format!("compared with {}", model_line(summary, nms_free)));
                }
                (ModelStatus::Loading(path), _) => {
                    ui.separator();
                    ui.spinner();
                    ui.label(format!("loading {} to compare", path.display()));
                }
                (ModelStatus::Failed(reason), _) => {
                    ui.separator();
                    ui.label(
                        RichText::new(format!("cannot compare: {reason}")).color(Color32::RED),
                    );
                }
                _ => {}
            }
            if let Some(session) = session {
                ui.separator();
                let name = session.spec.short_name();
                let text = match &session.state {
                    SourceState::Opening => format!("opening {name}"),
                    SourceState::Playing => name,
                    SourceState::Reconnecting {
                        attempt,
                        next_at,
                        reason,
                    } => {
                        // Counting down needs a repaint each second until the attempt.
                        ui.ctx()
                            .request_repaint_after(std::time::Duration::from_millis(250));
                        let next_in = next_at.saturating_duration_since(std::time::Instant::now());
                        format!(
                            "{reason}: reconnecting (attempt {attempt}, next in {:.0} s)",
                            next_in.as_secs_f64().ceil()
                        )
                    }
                    SourceState::Ended => format!("{name}: end"),
                    SourceState::Failed(reason) => reason.clone(),
                };
                let colour = match session.state {
                    SourceState::Failed(_) => Color32::RED,
                    SourceState::Reconnecting { .. } => Color32::from_rgb(230, 160, 0),
                    _ => ui.visuals().text_color(),
                };
                ui.label(RichText::new(text).color(colour))
                    .on_hover_text(session.spec.to_string());
            }
            if let Some(note) = &self.note {
                ui.separator();
                let colour = if note.error {
                    Color32::RED
                } else {
                    ui.visuals().text_color()
                };
                ui.label(RichText::new(&note.text).color(colour));
            }
        });
        action
    }
}

/// What the central area says when there is nothing to show yet.
pub fn welcome(ui: &mut Ui, models: &ModelManager) -> Option<Action> {
    let mut action = None;
    ui.vertical_centered(|ui| {
        ui.add_space(ui.available_height() / 4.0);
        ui.heading("focalyolo");
        ui.label("YOLO11 with FocalModulation, live.");
        ui.add_space(12.0);
        if matches!(models.status, ModelStatus::Missing | ModelStatus::Failed(_)) {
            ui.label(
                "No weights loaded. Open your own (Model > Open weights…, or drop a .pt or \
                     .safetensors file here), or download Ultralytics' official yolo11n.pt \
                     (COCO, 80 classes, 5.4 MB) into the weights folder:",
            );
            if ui
                .add_enabled(!models.is_busy(), egui::Button::new("Download yolo11n.pt"))
                .clicked()
            {
                action = Some(Action::DownloadWeights);
            }
            ui.add_space(12.0);
        }
        ui.label("Open a video, images or a camera from the Source menu, or drop a file here.");
    });
    action
}

fn model_line(summary: &ModelSummary, nms_free: bool) -> String {
    let info = &summary.info;
    let layer9 = match (&summary.layer9, &summary.scores) {
        (Layer9Origin::Bundled, Some(scores)) => {
            format!("FocalModulation (bundled for YOLO11n: {scores})")
        }
        (Layer9Origin::Bundled, None) => "FocalModulation (bundled for YOLO11n)".to_string(),
        (Layer9Origin::NoLayerFits, _) => {
            format!(
                "{} (no bundled FocalModulation fits these weights)",
                info.layer9
            )
        }
        (_, Some(scores)) => format!("{} ({scores})", info.layer9),
        (_, None) => info.layer9.to_string(),
    };
    // Only a model with two heads has a choice to show.
    let head = if info.has_one_to_one {
        format!(", {}", info.head(nms_free))
    } else {
        String::new()
    };
    format!(
        "{} — {}, {}, {:.1} M parameters, layer 9 {layer9}{head}",
        summary.path.file_name().map_or_else(
            || summary.path.display().to_string(),
            |n| n.to_string_lossy().into()
        ),
        info.name(),
        info.classes(),
        info.parameters as f64 / 1e6,
    )
}
