//! What the panels ask of the app ([`Action`]) and how the app carries it out, files
//! dropped on the window included.

use std::path::PathBuf;

use egui::Ui;

use super::FocalYoloApp;
use super::count_editor::RegionKind;
use crate::count::Region;
use crate::source::{SourceSpec, StreamUrl};
use crate::weights::bundled::Layer9Choice;

/// What a panel asks of the app; [`FocalYoloApp::apply`] carries it out.
pub enum Action {
    OpenSource(SourceSpec),
    OpenWeights(PathBuf),
    /// Reload the weights with this layer 9.
    UseLayer9(Layer9Choice),
    /// Fetch Ultralytics' yolo11n.pt into the weights folder, then load it.
    DownloadWeights,
    /// Jump to this many seconds into the video (and show that frame when paused).
    Seek(f64),
    /// Run these weights (with their own layer 9) beside the model, on the same frames.
    Compare(PathBuf),
    StopComparing,
    /// Open "Why this box?" on this detection of the frame on screen.
    Explain(usize),
    /// Place a new counting region's points with the next clicks on the video.
    DrawRegion(RegionKind),
    /// These are now the counting regions of the frame on screen's size.
    SetRegions(Vec<Region>),
    ResetCounts,
    /// Write every crossing since counting (re)started to this CSV.
    ExportCounts(PathBuf),
    /// Start recording the view, or stop and save the recording.
    ToggleRecording,
    /// Save the frame on screen as the view shows it, with its detections.
    Snapshot,
    /// Ask for a stream's address (and password), this one filled in.
    AskForStream(Option<StreamUrl>),
}

impl FocalYoloApp {
    pub(super) fn apply(&mut self, ui: &Ui, action: Action) {
        let ctx = ui.ctx();
        match action {
            Action::OpenSource(spec) => self.open_source(ctx, spec),
            Action::OpenWeights(path) => self.open_weights(ctx, &path),
            Action::UseLayer9(choice) => {
                self.settings.layer9 = choice;
                if let Some(weights) = self.settings.weights.clone() {
                    self.open_weights(ctx, &weights);
                }
            }
            Action::DownloadWeights => self.download_default_weights(ctx),
            Action::Compare(path) => self.compare_with(ctx, &path),
            Action::StopComparing => self.compared.unload(),
            Action::Explain(index) => {
                if let Some(current) = &self.current {
                    let names = self.class_names();
                    self.detail
                        .select(ui, current, index, &names, self.settings.colormap);
                }
            }
            Action::DrawRegion(kind) => self.draw_region(kind),
            Action::SetRegions(regions) => self.set_regions(regions),
            Action::ResetCounts => {
                if let Some(session) = &self.session {
                    session.reset_counts();
                }
                // Else the frame on screen shows the old counts until the next one arrives.
                if let Some(current) = &mut self.current {
                    current.counted = None;
                }
            }
            Action::ExportCounts(path) => {
                // The outcome is shown in the panel.
                let _ = self.export_counts(&path);
            }
            // Outcomes of these show in the status bar.
            Action::ToggleRecording => {
                if self.recorder.is_some() {
                    self.stop_recording("");
                } else {
                    let _ = self.start_recording();
                }
            }
            Action::Snapshot => {
                let _ = self.snapshot();
            }
            Action::AskForStream(url) => self.menu_bar.streams.ask(url.as_ref()),
            Action::Seek(seconds) => {
                if let Some(session) = &mut self.session {
                    session.seek(seconds);
                    if session.control.is_paused() {
                        session.control.step();
                    }
                }
            }
        }
    }

    pub(super) fn handle_dropped_files(&mut self, ui: &Ui) {
        let dropped: Vec<PathBuf> = ui.ctx().input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        for path in dropped.into_iter().filter(|p| !p.as_os_str().is_empty()) {
            let is_weights = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "pt" | "safetensors"));
            if is_weights {
                self.open_weights(ui.ctx(), &path);
            } else {
                self.open_source(ui.ctx(), SourceSpec::parse(&path.to_string_lossy()));
            }
        }
    }
}
