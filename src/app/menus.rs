//! The menu bar: sources (files, folders, cameras, streams), the model, counting, playback,
//! and recording.

use std::time::Duration;

use egui::{Color32, Key, KeyboardShortcut, Modifiers, RichText, Ui};

use super::Action;
use super::count_editor::RegionKind;
use super::session::Session;
use super::settings::Settings;
use super::stream_dialog::StreamDialog;
use crate::compute::device::DeviceChoice;
use crate::source::{CameraDescription, CameraMode, SourceSpec, list_cameras};

/// Ctrl+R (⌘R on macOS) starts and stops recording; Ctrl+S saves a snapshot.
const RECORD_KEY: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::R);
const SNAPSHOT_KEY: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::S);
use crate::weights::bundled::Layer9Choice;

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

/// The menu bar: Source and Model menus, then the playback controls.
#[derive(Default)]
pub struct MenuBar {
    /// Cameras found the last time the Camera menu looked (it looks when first opened).
    cameras: Option<Vec<CameraDescription>>,
    /// *Open stream…*.
    pub streams: StreamDialog,
}

impl MenuBar {
    /// `session` and `position` (the frame on screen's time) drive the playback controls.
    pub fn show(
        &mut self,
        ui: &mut Ui,
        settings: &mut Settings,
        session: Option<&Session>,
        position: Option<f64>,
        model_busy: bool,
        comparing: bool,
        counting: CountMenu,
        record: RecordButtons,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        actions.extend(self.streams.show(ui.ctx(), settings));
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("Source", |ui| self.source_menu(ui, settings, &mut actions));
            ui.menu_button("Model", |ui| {
                model_menu(ui, settings, model_busy, &mut actions);
                ui.separator();
                compare_menu(ui, settings, comparing, &mut actions);
            });
            ui.menu_button("Count", |ui| count_menu(ui, counting, &mut actions));
            ui.separator();
            if let Some(session) = session {
                playback_controls(ui, settings, session, position, &mut actions);
            }
            ui.separator();
            actions.extend(record.show(ui));
        });
        actions
    }

    fn source_menu(&mut self, ui: &mut Ui, settings: &mut Settings, actions: &mut Vec<Action>) {
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
                actions.push(Action::OpenSource(SourceSpec::parse(
                    &path.to_string_lossy(),
                )));
            }
        }
        if ui.button("Open image folder…").clicked() {
            ui.close();
            if let Some(folder) = rfd::FileDialog::new().pick_folder() {
                actions.push(Action::OpenSource(SourceSpec::Images(
                    folder.display().to_string(),
                )));
            }
        }
        if ui.button("Open stream…").clicked() {
            ui.close();
            self.streams.ask(None);
        }
        if !settings.recent_streams.is_empty() {
            ui.menu_button("Recent streams", |ui| {
                for recent in &settings.recent_streams {
                    if ui.button(recent).clicked() {
                        ui.close();
                        actions.push(self.reopen(recent));
                    }
                }
            });
        }
        if let Some(last) = &settings.last_source
            && ui.button(format!("Reopen {last}")).clicked()
        {
            ui.close();
            actions.push(self.reopen(last));
        }
        if ui
            .button("Recording folder…")
            .on_hover_text(match &settings.record_dir {
                Some(folder) => folder.display().to_string(),
                None => super::default_folder().display().to_string(),
            })
            .clicked()
        {
            ui.close();
            if let Some(folder) = rfd::FileDialog::new().pick_folder() {
                settings.record_dir = Some(folder);
            }
        }
        ui.separator();
        ui.menu_button("Camera", |ui| {
            if self.cameras.is_none() || ui.button("Look for cameras again").clicked() {
                self.cameras = Some(list_cameras().unwrap_or_default());
            }
            let cameras = self.cameras.as_deref().unwrap_or_default();
            if cameras.is_empty() {
                ui.label("No camera found.");
            }
            for camera in cameras {
                if ui
                    .button(format!("camera:{} — {}", camera.index, camera.name))
                    .clicked()
                {
                    ui.close();
                    actions.push(Action::OpenSource(SourceSpec::Camera(camera.index)));
                }
            }
            ui.separator();
            ui.label("Resolution (closest the camera offers):");
            ui.radio_value(&mut settings.camera_mode, None, "highest frame rate");
            for mode in CAMERA_MODES {
                ui.radio_value(&mut settings.camera_mode, Some(mode), mode.to_string());
            }
        });
    }
}

fn model_menu(ui: &mut Ui, settings: &mut Settings, model_busy: bool, actions: &mut Vec<Action>) {
    if ui.button("Open weights…").clicked() {
        ui.close();
        actions.extend(pick_weights().map(Action::OpenWeights));
    }
    if ui.button("Open trained FocalModulation layer…").clicked() {
        ui.close();
        if let Some(path) = rfd::FileDialog::new()
            .add_filter("distilled layer 9", &["safetensors"])
            .pick_file()
        {
            actions.push(Action::UseLayer9(Layer9Choice::Focal(path)));
        }
    }
    let mut stock = settings.layer9 == Layer9Choice::Stock;
    if ui
        .checkbox(
            &mut stock,
            "Keep SPPF (no bundled FocalModulation for YOLO11n)",
        )
        .changed()
    {
        actions.push(Action::UseLayer9(if stock {
            Layer9Choice::Stock
        } else {
            Layer9Choice::Bundled
        }));
    }
    ui.checkbox(
        &mut settings.nms_free,
        "NMS-free head (YOLO26: one-to-one head, top-k, no NMS)",
    );
    if ui
        .add_enabled(
            !model_busy,
            egui::Button::new("Download yolo11n.pt (Ultralytics, COCO)"),
        )
        .clicked()
    {
        ui.close();
        actions.push(Action::DownloadWeights);
    }
    ui.separator();
    ui.label("Run on (takes effect at the next start):");
    for (choice, label) in [
        (DeviceChoice::Auto, "auto: hardware GPU, else CPU"),
        (DeviceChoice::Gpu, "GPU, even a software one"),
        (DeviceChoice::Cpu, "CPU"),
    ] {
        ui.radio_value(&mut settings.device, choice, label);
    }
}

/// What the Count menu can act on.
#[derive(Clone, Copy)]
pub struct CountMenu {
    /// A frame is on screen to click regions on.
    pub has_frame: bool,
    /// Regions exist for the frame's size.
    pub has_regions: bool,
}

impl MenuBar {
    /// Open a remembered source; a stream remembered without its password asks for it.
    fn reopen(&mut self, remembered: &str) -> Action {
        match SourceSpec::parse(remembered) {
            SourceSpec::Stream(url) if url.needs_password() => Action::AskForStream(Some(url)),
            spec => Action::OpenSource(spec),
        }
    }
}

/// Record and Snapshot, beside the playback controls.
#[derive(Clone, Copy)]
pub struct RecordButtons {
    /// A frame is on screen to record or save.
    pub has_frame: bool,
    /// How long the recording under way has run.
    pub recording: Option<Duration>,
}

impl RecordButtons {
    fn show(self, ui: &mut Ui) -> Option<Action> {
        let mut action = None;
        let (label, hint) = match self.recording {
            Some(_) => ("Stop recording", "Finish the MP4 (Ctrl+R)"),
            None => ("Record", "Record the view to an MP4 (Ctrl+R)"),
        };
        if ui
            .add_enabled(
                self.has_frame || self.recording.is_some(),
                egui::Button::new(label),
            )
            .on_hover_text(hint)
            .clicked()
        {
            action = Some(Action::ToggleRecording);
        }
        if let Some(elapsed) = self.recording {
            let seconds = elapsed.as_secs();
            let (dot, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
            ui.painter().circle_filled(dot.center(), 5.0, Color32::RED);
            ui.label(
                RichText::new(format!("REC {}:{:02}", seconds / 60, seconds % 60))
                    .color(Color32::RED)
                    .strong(),
            );
            // The clock ticks while nothing else changes (a paused source).
            ui.ctx().request_repaint_after(Duration::from_millis(500));
        }
        if ui
            .add_enabled(self.has_frame, egui::Button::new("Snapshot"))
            .on_hover_text("Save the frame as shown (PNG) with its detections (JSON) (Ctrl+S)")
            .clicked()
        {
            action = Some(Action::Snapshot);
        }
        action
    }

    /// Ctrl+R and Ctrl+S, wherever the focus is.
    pub fn shortcuts(self, ui: &Ui) -> Vec<Action> {
        let mut actions = Vec::new();
        if ui.input_mut(|i| i.consume_shortcut(&RECORD_KEY))
            && (self.has_frame || self.recording.is_some())
        {
            actions.push(Action::ToggleRecording);
        }
        if ui.input_mut(|i| i.consume_shortcut(&SNAPSHOT_KEY)) && self.has_frame {
            actions.push(Action::Snapshot);
        }
        actions
    }
}

fn count_menu(ui: &mut Ui, counting: CountMenu, actions: &mut Vec<Action>) {
    for (kind, label) in [
        (RegionKind::Line, "Add line"),
        (RegionKind::Zone, "Add zone"),
    ] {
        if ui
            .add_enabled(counting.has_frame, egui::Button::new(label))
            .on_disabled_hover_text("Open a source first: regions are clicked on its picture")
            .clicked()
        {
            ui.close();
            actions.push(Action::DrawRegion(kind));
        }
    }
    ui.separator();
    if ui
        .add_enabled(counting.has_regions, egui::Button::new("Reset counts"))
        .clicked()
    {
        ui.close();
        actions.push(Action::ResetCounts);
    }
    if ui
        .add_enabled(
            counting.has_regions,
            egui::Button::new("Remove all regions"),
        )
        .clicked()
    {
        ui.close();
        actions.push(Action::SetRegions(Vec::new()));
    }
}

/// A .pt or .safetensors file the user picks, if any.
fn pick_weights() -> Option<std::path::PathBuf> {
    rfd::FileDialog::new()
        .add_filter("YOLO11 weights", &["pt", "safetensors"])
        .pick_file()
}

/// A second model on the same frames: the same weights with SPPF, or other weights.
fn compare_menu(ui: &mut Ui, settings: &Settings, comparing: bool, actions: &mut Vec<Action>) {
    if let Some(weights) = &settings.weights
        && ui
            .button("Compare with these weights' own layer 9 (SPPF for YOLO11n)")
            .clicked()
    {
        ui.close();
        actions.push(Action::Compare(weights.clone()));
    }
    if ui.button("Compare with other weights…").clicked() {
        ui.close();
        actions.extend(pick_weights().map(Action::Compare));
    }
    if ui
        .add_enabled(comparing, egui::Button::new("Stop comparing"))
        .clicked()
    {
        ui.close();
        actions.push(Action::StopComparing);
    }
}

/// Play/Pause, Step, Loop, and for a file the position bar.
fn playback_controls(
    ui: &mut Ui,
    settings: &mut Settings,
    session: &Session,
    position: Option<f64>,
    actions: &mut Vec<Action>,
) {
    let control = &session.control;
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
    if !session.live {
        ui.checkbox(&mut settings.looping, "Loop");
    }
    if let (Some(duration), false) = (session.duration, session.live) {
        let mut position = position.unwrap_or(0.0);
        let slider = ui.add(
            egui::Slider::new(&mut position, 0.0..=duration)
                .show_value(false)
                .trailing_fill(true),
        );
        // The bar shows no text; screen readers still need its name.
        slider.widget_info(|| egui::WidgetInfo::slider(true, position, "playback position"));
        if slider.drag_stopped() || (slider.changed() && !slider.dragged()) {
            actions.push(Action::Seek(position));
        }
        ui.label(format!("{} / {}", clock(position), clock(duration)));
    } else if let Some(position) = position {
        ui.label(clock(position));
    }
}

fn clock(seconds: f64) -> String {
    let total = seconds.max(0.0);
    let minutes = (total / 60.0).floor();
    format!("{minutes:.0}:{:05.2}", total - minutes * 60.0)
}
