//! *Source ▸ Open stream…*: a stream's address, its password apart (so that it is never
//! remembered), RTSP's transport, and the streams opened lately.

use egui::{Context, RichText};

use super::Action;
use super::settings::Settings;
use crate::source::{RtspTransport, STREAM_SCHEMES, SourceSpec, StreamUrl};

#[derive(Default)]
pub struct StreamDialog {
    open: bool,
    address: String,
    password: String,
    error: Option<String>,
}

impl StreamDialog {
    /// Show the dialog, with `url` (its secrets left out) filled in.
    pub fn ask(&mut self, url: Option<&StreamUrl>) {
        self.open = true;
        self.address = url.map(StreamUrl::without_secrets).unwrap_or_default();
        self.password.clear();
        self.error = None;
    }

    pub fn show(&mut self, ctx: &Context, settings: &mut Settings) -> Option<Action> {
        if !self.open {
            return None;
        }
        let mut open = self.open;
        let mut action = None;
        egui::Window::new("Open stream")
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
            .show(ctx, |ui| {
                // Each field named by its label (for screen readers, and tests).
                let address_label = ui.label("Address");
                let address = ui
                    .add(
                        egui::TextEdit::singleline(&mut self.address)
                            .hint_text("rtsp://camera.local:554/stream1")
                            .desired_width(360.0),
                    )
                    .labelled_by(address_label.id);
                let password_label = ui.label("Password (when the address names a user)");
                let password = ui
                    .add(
                        egui::TextEdit::singleline(&mut self.password)
                            .password(true)
                            .desired_width(360.0),
                    )
                    .labelled_by(password_label.id);
                ui.horizontal(|ui| {
                    ui.label("RTSP over");
                    ui.radio_value(&mut settings.rtsp_transport, RtspTransport::Tcp, "TCP");
                    ui.radio_value(&mut settings.rtsp_transport, RtspTransport::Udp, "UDP");
                });
                if !settings.recent_streams.is_empty() {
                    ui.separator();
                    ui.label("Recent");
                    for recent in &settings.recent_streams {
                        if ui
                            .selectable_label(self.address == *recent, recent)
                            .clicked()
                        {
                            self.address = recent.clone();
                        }
                    }
                }
                if let Some(error) = &self.error {
                    ui.label(RichText::new(error).color(egui::Color32::RED));
                }
                ui.separator();
                let entered = (address.lost_focus() || password.lost_focus())
                    && ui.input(|i| i.key_pressed(egui::Key::Enter));
                ui.horizontal(|ui| {
                    if ui.button("Open").clicked() || entered {
                        action = self.submit();
                    }
                    if ui.button("Cancel").clicked() {
                        self.open = false;
                    }
                });
            });
        self.open &= open;
        action
    }

    /// The stream to open, or why the address is not one.
    fn submit(&mut self) -> Option<Action> {
        let Some(url) = StreamUrl::parse(&self.address) else {
            self.error = Some(format!(
                "not a stream address: it starts with {}://",
                STREAM_SCHEMES.join("://, ")
            ));
            return None;
        };
        let url = if self.password.is_empty() {
            url
        } else {
            url.with_password(&self.password)
        };
        self.open = false;
        self.password.clear();
        Some(Action::OpenSource(SourceSpec::Stream(url)))
    }
}
