//! The desktop app (eframe/egui on wgpu): open a camera, a video or images; boxes appear
//! live; a side panel shows FocalModulation's gate maps and modulator, any of which can be
//! laid over the video; lines and zones clicked on the video count the tracks crossing them.

mod action;
mod attention_panel;
mod count_editor;
mod count_panel;
mod detail_view;
mod detection_panel;
mod frame;
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
use crate::source::{OpenOptions, SourceSpec, StreamOptions};
use crate::weights::bundled::Layer9Choice;

pub use action::Action;
use attention_panel::AttentionPanel;
pub use count_editor::RegionKind;
use detail_view::DetailView;
use detection_panel::DetectionPanel;
use gpu::choose_device;
pub use gpu::wgpu_setup;
pub use launch::{LaunchOptions, run};
use menus::MenuBar;
pub use model_manager::{ModelManager, ModelStatus, ModelSummary};
pub use recorder::{RecordError, Recorded, Recorder, default_folder};
pub use session::{InferenceKnobs, Processed, Session, SourceState};
pub use settings::{IMAGE_SIZES, Settings, size_key};
use stats_panel::{ComparisonStats, Stats};
pub use status_bar::Note;
use status_bar::StatusBar;
pub use video_view::ComparedBoxes;
use video_view::VideoView;
use view_picture::ViewFrame;

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

    /// The two models' boxes on the frame on screen, when a second model runs.
    pub fn compared_boxes(&self) -> Option<&ComparedBoxes> {
        self.compared_boxes.as_ref()
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

    /// The loaded model's class names; none before a model is loaded.
    fn class_names(&self) -> Vec<String> {
        self.models
            .summary
            .as_ref()
            .map(|s| s.info.class_names.clone())
            .unwrap_or_default()
    }
}
