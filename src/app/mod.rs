//! The desktop app (eframe/egui on wgpu): open a camera, a video or images; boxes appear
//! live; a side panel shows FocalModulation's gate maps and modulator, any of which can be
//! laid over the video; lines and zones clicked on the video count the tracks crossing them.

mod attention_panel;
mod count_editor;
mod count_panel;
mod detail_view;
mod detection_panel;
mod gpu;
mod launch;
mod menus;
mod model_manager;
mod overlay_shader;
mod recorder;
mod recording;
mod session;
mod settings;
mod stats_panel;
mod status_bar;
mod stream_dialog;
mod video_view;
mod view_picture;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use egui::Ui;

use crate::compute::device::ComputeDevice;
use crate::count::Region;
use crate::output::explain::Explanation;
use crate::source::{OpenOptions, SourceSpec, StreamOptions, StreamUrl};
use crate::weights::bundled::Layer9Choice;

use attention_panel::{AttentionPanel, PanelContent};
pub use count_editor::RegionKind;
use detail_view::DetailView;
use detection_panel::{DetectionPanel, FrameView};
use gpu::choose_device;
pub use gpu::wgpu_setup;
pub use launch::{LaunchOptions, run};
use menus::{CountMenu, MenuBar, RecordButtons};
pub use model_manager::{ModelManager, ModelStatus, ModelSummary};
pub use recorder::{RecordError, Recorded, Recorder, default_folder};
pub use session::{InferenceKnobs, Processed, Session, SourceState};
pub use settings::{IMAGE_SIZES, Settings, size_key};
use stats_panel::{ComparisonStats, Stats};
pub use status_bar::Note;
use status_bar::{StatusBar, welcome};
use video_view::{ComparedBoxes, Comparison, Pointed, VideoView};
use view_picture::ViewFrame;

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

pub struct FocalYoloApp {
    settings: Settings,
    models: ModelManager,
    /// The model run beside the first, when comparing.
    compared: ModelManager,
    knobs: Arc<Mutex<InferenceKnobs>>,
    session: Option<Session>,
    current: Option<Processed>,
    menu_bar: MenuBar,
    status_bar: StatusBar,
    detection: DetectionPanel,
    view: VideoView,
    attention: AttentionPanel,
    detail: DetailView,
    /// The detection the pointer was on last frame, in the video or the list.
    hovered: Option<usize>,
    /// What the two models show of the frame on screen, while comparing.
    compared_boxes: Option<ComparedBoxes>,
    weights_folder: PathBuf,
    download_url: String,
    started: Instant,
    /// The frame on screen must be redrawn from `current` (new frame or new look).
    dirty: bool,
    /// The view being recorded.
    recorder: Option<Recorder>,
}

impl FocalYoloApp {
    pub fn new(cc: &eframe::CreationContext<'_>, launch: LaunchOptions) -> Self {
        let mut settings: Settings = cc
            .storage
            .and_then(|storage| eframe::get_value(storage, eframe::APP_KEY))
            .unwrap_or_default();
        if let Some(weights) = &launch.weights {
            settings.weights = Some(weights.clone());
        }
        if let Some(layer9) = &launch.layer9 {
            settings.layer9 = layer9.clone();
        }
        if let Some(device) = launch.device {
            settings.device = device;
        }
        if let Some(imgsz) = launch.imgsz {
            settings.imgsz = imgsz;
        }
        if launch.track {
            settings.track = true;
        }
        if let Some(folder) = &launch.record_dir {
            settings.record_dir = Some(folder.clone());
        }
        if settings.weights.is_none() {
            let downloaded = launch.weights_folder.join("yolo11n.pt");
            settings.weights = downloaded.is_file().then_some(downloaded);
        }
        let (device, device_note) = choose_device(cc.wgpu_render_state.as_ref(), settings.device);
        if let Some(render_state) = &cc.wgpu_render_state {
            overlay_shader::install(render_state);
        }
        let knobs = Arc::new(Mutex::new(settings.knobs()));
        let mut app = Self {
            settings,
            models: ModelManager::new(device.clone()),
            compared: ModelManager::new(device),
            knobs,
            session: None,
            current: None,
            menu_bar: MenuBar::default(),
            status_bar: StatusBar::new(device_note),
            detection: DetectionPanel::default(),
            view: VideoView::default(),
            attention: AttentionPanel::default(),
            detail: DetailView::default(),
            hovered: None,
            compared_boxes: None,
            weights_folder: launch.weights_folder,
            download_url: launch.download_url,
            started: Instant::now(),
            dirty: false,
            recorder: None,
        };
        if let Some(weights) = app.settings.weights.clone() {
            app.open_weights(&cc.egui_ctx, &weights);
        }
        if let Some(compared) = &launch.compare {
            app.compare_with(&cc.egui_ctx, compared);
        }
        if let Some(source) = &launch.source {
            app.open_source(&cc.egui_ctx, SourceSpec::parse(source));
        }
        app
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    pub fn model_status(&self) -> &ModelStatus {
        &self.models.status
    }

    /// Where the model runs.
    pub fn model_device(&self) -> &ComputeDevice {
        self.models.device()
    }

    pub fn model_summary(&self) -> Option<&ModelSummary> {
        self.models.summary.as_ref()
    }

    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// The frame on screen and what the model made of it.
    pub fn current(&self) -> Option<&Processed> {
        self.current.as_ref()
    }

    /// What "Why this box?" says of the box it follows, while it is open.
    pub fn explained(&self) -> Option<&Explanation> {
        self.detail.explanation()
    }

    /// Where pixel (`x`, `y`) of the frame on screen was drawn, in screen points.
    pub fn video_to_screen(&self, x: f32, y: f32) -> Option<egui::Pos2> {
        self.view.to_screen(x, y)
    }

    /// Place a new counting region's points with the next clicks on the video (a frame must
    /// be on screen).
    pub fn draw_region(&mut self, kind: RegionKind) {
        if self.current.is_some() {
            self.view.editor.start(kind);
        }
    }

    /// Make `regions` the counting regions of the frame on screen's size; counting needs
    /// tracks, so regions turn tracking on.
    pub fn set_regions(&mut self, regions: Vec<Region>) {
        let Some(current) = &self.current else {
            return;
        };
        let (width, height) = current.frame.image.dimensions();
        let key = size_key(width, height);
        if regions.is_empty() {
            self.settings.regions.remove(&key);
        } else {
            self.settings.regions.insert(key, regions);
            self.settings.track = true;
        }
    }

    /// Write every crossing since counting (re)started to a CSV; the rows written.
    pub fn export_counts(&mut self, path: &Path) -> Result<usize, csv::Error> {
        let names = self.class_names();
        let Some(session) = &self.session else {
            return Ok(0);
        };
        let written = session.export_counts(path, &names);
        self.detection.export_note = Some(match &written {
            Ok(rows) => format!("{rows} crossings written to {}", path.display()),
            Err(err) => format!("cannot write {}: {err}", path.display()),
        });
        written
    }

    /// Play `spec`, replacing whatever was playing.
    pub fn open_source(&mut self, ctx: &egui::Context, spec: SourceSpec) {
        self.stop_recording("another source was opened");
        self.settings.last_source = Some(spec.to_remembered());
        if let SourceSpec::Stream(url) = &spec {
            self.settings.remember_stream(url);
        }
        let options = OpenOptions {
            camera_mode: self.settings.camera_mode,
            stream: StreamOptions {
                rtsp_transport: self.settings.rtsp_transport,
                ..StreamOptions::default()
            },
        };
        let repaint = ctx.clone();
        self.session = None;
        self.current = None;
        self.detection.stats = Stats::default();
        self.detection.comparison = ComparisonStats::default();
        self.detail.clear();
        self.session = Some(Session::start(
            spec,
            options,
            self.models.slot.clone(),
            self.compared.slot.clone(),
            self.knobs.clone(),
            move || repaint.request_repaint(),
        ));
    }

    /// Load weights in the background; the old model keeps running until they are ready.
    pub fn open_weights(&mut self, ctx: &egui::Context, path: &Path) {
        self.settings.weights = Some(path.to_path_buf());
        let repaint = ctx.clone();
        self.models.load(path, &self.settings.layer9, move || {
            repaint.request_repaint()
        });
    }

    /// Run the weights at `path`, with their own layer 9, beside the model on the same
    /// frames (loaded in the background).
    pub fn compare_with(&mut self, ctx: &egui::Context, path: &Path) {
        let repaint = ctx.clone();
        self.compared.load(path, &Layer9Choice::Stock, move || {
            repaint.request_repaint()
        });
        self.detection.comparison = ComparisonStats::default();
    }

    /// Fetch Ultralytics' yolo11n.pt into the weights folder, then load it.
    pub fn download_default_weights(&mut self, ctx: &egui::Context) {
        let repaint = ctx.clone();
        let destination = self.weights_folder.join("yolo11n.pt");
        self.models
            .download(&self.download_url, &destination, move || {
                repaint.request_repaint()
            });
    }

    fn poll(&mut self, ui: &Ui) {
        let ready = |app: &Self| {
            [&app.models, &app.compared].map(|models| models.status == ModelStatus::Ready)
        };
        let ready_before = ready(self);
        if let Some(downloaded) = self.models.poll() {
            self.open_weights(ui.ctx(), &downloaded);
        }
        self.compared.poll();
        let arrived = ready(self)
            .into_iter()
            .zip(ready_before)
            .any(|(now, before)| now && !before);
        // A model that arrives while a still image or paused frame is shown: run it there.
        if arrived && let (Some(session), Some(current)) = (&self.session, &self.current) {
            session.reprocess(current.frame.clone());
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let newest = session.poll();
        let interrupted = match &session.state {
            SourceState::Ended if !self.settings.looping || session.live => {
                Some("the source ended")
            }
            SourceState::Failed(_) => Some("the source failed"),
            SourceState::Reconnecting { .. } => Some("the stream was lost"),
            _ => None,
        };
        if session.state == SourceState::Ended && self.settings.looping && !session.live {
            session.seek(0.0);
        }
        if let Some(processed) = newest {
            let read = std::time::Duration::from_micros(
                session
                    .capture_stats
                    .last_read_us
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
            self.detection.stats.frame_shown(
                self.started.elapsed().as_secs_f64(),
                &processed.times,
                read,
            );
            self.compared_boxes = ComparedBoxes::new(&processed, self.settings.conf);
            if let Some(boxes) = &self.compared_boxes {
                self.detection.comparison.record(&processed, boxes);
            }
            if let Some(recorder) = &mut self.recorder {
                recorder.record(ViewFrame::of(&processed, &self.settings));
            }
            self.current = Some(processed);
            self.dirty = true;
        }
        if let Some(why) = interrupted {
            self.stop_recording(why);
        }
    }

    /// Push the thresholds and size to the inference thread; redo a paused frame.
    fn apply_knobs(&mut self) {
        let knobs = self.settings.knobs();
        let mut shared = self.knobs.lock().unwrap_or_else(|e| e.into_inner());
        let changed = shared.nms.conf != knobs.nms.conf
            || shared.nms.iou != knobs.nms.iou
            || shared.input != knobs.input
            || shared.track != knobs.track
            || shared.regions != knobs.regions;
        *shared = knobs;
        drop(shared);
        if changed
            && let (Some(session), Some(current)) = (&self.session, &self.current)
            && (session.control.is_paused() || session.state == SourceState::Ended)
        {
            session.reprocess(current.frame.clone());
        }
    }

    fn apply(&mut self, ui: &Ui, action: Action) {
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

    fn handle_dropped_files(&mut self, ui: &Ui) {
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

    /// The loaded model's class names; none before a model is loaded.
    fn class_names(&self) -> Vec<String> {
        self.models
            .summary
            .as_ref()
            .map(|s| s.info.class_names.clone())
            .unwrap_or_default()
    }
}

impl eframe::App for FocalYoloApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        let draw_started = Instant::now();
        self.poll(ui);
        self.handle_dropped_files(ui);
        self.apply_knobs();
        let names = self.class_names();
        // Find the explained object in a new frame before anything shows which box it is.
        if self.dirty
            && let Some(current) = &self.current
        {
            self.detail
                .follow(ui, current, &names, self.settings.colormap);
        }

        let mut actions = Vec::new();
        let position = self.current.as_ref().map(|current| current.frame.pts);
        let busy = self.models.is_busy();
        let regions: Vec<Region> = self
            .current
            .as_ref()
            .map(|c| {
                let (width, height) = c.frame.image.dimensions();
                self.settings.regions_for(width, height).to_vec()
            })
            .unwrap_or_default();
        let counting = CountMenu {
            has_frame: self.current.is_some(),
            has_regions: !regions.is_empty(),
        };
        let record = RecordButtons {
            has_frame: self.current.is_some(),
            recording: self.recorder.as_ref().map(Recorder::elapsed),
        };
        actions.extend(record.shortcuts(ui));
        egui::Panel::top("menu").show(ui, |ui| {
            actions.extend(self.menu_bar.show(
                ui,
                &mut self.settings,
                self.session.as_ref(),
                position,
                busy,
                self.compared.summary.is_some() || self.compared.is_busy(),
                counting,
                record,
            ));
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            actions.extend(self.status_bar.show(
                ui,
                &self.models,
                &self.compared,
                self.session.as_ref(),
            ));
        });
        let comparison = comparison(&self.models, &self.compared, self.compared_boxes.as_ref());
        let mut hovered = None;
        egui::Panel::left("detection")
            .default_size(230.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("detection panel")
                    .show(ui, |ui| {
                        let frame = FrameView {
                            detections: self
                                .current
                                .as_ref()
                                .map_or(&[], |c| c.detections.as_slice()),
                            tracks: self.current.as_ref().and_then(|c| c.tracks.as_ref()),
                            marked: Pointed {
                                clicked: self.detail.selected(),
                                hovered: self.hovered,
                            },
                            compared: comparison.as_ref().map(|c| &c.captions),
                            regions: &regions,
                            tracking: self.settings.track,
                            counts: self
                                .current
                                .as_ref()
                                .and_then(|c| c.counted.as_ref())
                                .map_or(&[], |c| c.counts.as_slice()),
                        };
                        let pointed = self.detection.show(
                            ui,
                            &mut self.settings,
                            &names,
                            frame,
                            self.session.as_ref(),
                            &mut actions,
                        );
                        actions.extend(pointed.clicked.map(Action::Explain));
                        hovered = pointed.hovered;
                    });
            });
        let has_focal = self.models.summary.as_ref().map(|s| s.info.has_focal());
        let mut look_changed = false;
        egui::Panel::right("focal")
            .default_size(230.0)
            .show(ui, |ui| {
                let content = match (has_focal, &self.current) {
                    (None, _) => PanelContent::NoModel,
                    (Some(false), _) => PanelContent::Sppf,
                    (Some(true), Some(current)) if !current.maps.is_empty() => {
                        PanelContent::Maps(current)
                    }
                    (Some(true), _) => PanelContent::Waiting,
                };
                look_changed = self.attention.show(ui, content, &mut self.settings);
            });
        if let Some(current) = &self.current {
            if self.dirty {
                self.view.update(ui, current);
            }
            if self.dirty || look_changed {
                self.attention.update(ui, current, self.settings.colormap);
            }
            if look_changed {
                self.detail
                    .follow(ui, current, &names, self.settings.colormap);
            }
        }
        self.dirty = false;
        egui::CentralPanel::default().show(ui, |ui| match &self.current {
            Some(current) => {
                let marked = Pointed {
                    clicked: self.detail.selected(),
                    hovered: hovered.or(self.hovered),
                };
                let shown = self.view.show(
                    ui,
                    current,
                    &self.settings,
                    &names,
                    comparison.as_ref(),
                    marked,
                );
                actions.extend(shown.pointed.clicked.map(Action::Explain));
                actions.extend(shown.edited.map(Action::SetRegions));
                hovered = hovered.or(shown.pointed.hovered);
            }
            None => actions.extend(welcome(ui, &self.models)),
        });
        self.hovered = hovered;
        if !self.detail.show(ui) {
            self.detail.clear();
        }
        for action in actions {
            self.apply(ui, action);
        }
        self.detection.stats.drawn(draw_started.elapsed());
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}

/// Each model's caption and what they show of the frame, while a second one runs beside
/// the first.
fn comparison<'a>(
    first: &ModelManager,
    second: &ModelManager,
    boxes: Option<&'a ComparedBoxes>,
) -> Option<Comparison<'a>> {
    let (Some(first), Some(second), Some(boxes)) = (&first.summary, &second.summary, boxes) else {
        return None;
    };
    Some(Comparison {
        names: second.info.class_names.clone(),
        captions: [first.caption(), second.caption()],
        boxes,
    })
}
