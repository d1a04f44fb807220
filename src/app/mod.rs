//! The desktop app (eframe/egui on wgpu): open a camera, a video or images; boxes appear
//! live; a side panel shows FocalModulation's gate maps and modulator, any of which can be
//! laid over the video.

mod attention_panel;
mod model_manager;
mod overlay_shader;
mod session;
mod settings;
mod stats_panel;
mod video_view;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::backend::wgpu::WgpuSetup;
use eframe::wgpu;
use egui::{Color32, RichText, Ui};

use crate::default_model::Layer9Choice;
use crate::detector::InputSize;
use crate::device::{ComputeDevice, DeviceChoice};
use crate::postprocess::NmsOptions;
use crate::preprocess::Canvas;
use crate::source::{CameraDescription, CameraMode, SourceSpec, list_cameras};
use crate::weights::download::YOLO11N_URL;

use attention_panel::{AttentionPanel, PanelContent};
pub use model_manager::{ModelManager, ModelStatus, ModelSummary};
pub use session::{InferenceKnobs, Processed, Session, SourceState};
pub use settings::{IMAGE_SIZES, Settings};
use stats_panel::Stats;
use video_view::{VideoView, colour32};

/// What the command line asked for; anything unset comes from the saved settings.
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    pub source: Option<String>,
    pub weights: Option<PathBuf>,
    pub layer9: Option<Layer9Choice>,
    pub device: Option<DeviceChoice>,
    pub imgsz: Option<usize>,
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

/// A message in the status bar.
struct Notice {
    text: String,
    is_error: bool,
}

pub struct FocalYoloApp {
    settings: Settings,
    models: ModelManager,
    device_note: Option<String>,
    knobs: Arc<Mutex<InferenceKnobs>>,
    session: Option<Session>,
    current: Option<Processed>,
    view: VideoView,
    panel: AttentionPanel,
    stats: Stats,
    cameras: Option<Vec<CameraDescription>>,
    notice: Option<Notice>,
    weights_folder: PathBuf,
    download_url: String,
    started: Instant,
    /// The frame on screen must be redrawn from `current` (new frame or new look).
    dirty: bool,
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
        if settings.weights.is_none() {
            let downloaded = launch.weights_folder.join("yolo11n.pt");
            settings.weights = downloaded.is_file().then_some(downloaded);
        }
        let (device, device_note) = choose_device(cc.wgpu_render_state.as_ref(), settings.device);
        if let Some(render_state) = &cc.wgpu_render_state {
            overlay_shader::install(render_state);
        }
        let knobs = Arc::new(Mutex::new(knobs_for(&settings)));
        let mut app = Self {
            settings,
            models: ModelManager::new(device),
            device_note,
            knobs,
            session: None,
            current: None,
            view: VideoView::default(),
            panel: AttentionPanel::default(),
            stats: Stats::default(),
            cameras: None,
            notice: None,
            weights_folder: launch.weights_folder,
            download_url: launch.download_url,
            started: Instant::now(),
            dirty: false,
        };
        if let Some(weights) = app.settings.weights.clone() {
            app.open_weights(&cc.egui_ctx, &weights);
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

    /// Play `spec`, replacing whatever was playing.
    pub fn open_source(&mut self, ctx: &egui::Context, spec: SourceSpec) {
        self.settings.last_source = Some(spec.to_string());
        let camera_mode = self.settings.camera_mode;
        let repaint = ctx.clone();
        self.session = None;
        self.current = None;
        self.stats = Stats::default();
        self.notice = None;
        self.session = Some(Session::start(
            spec,
            camera_mode,
            self.models.slot.clone(),
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
        let was_ready = self.models.status == ModelStatus::Ready;
        if let Some(downloaded) = self.models.poll() {
            self.open_weights(ui.ctx(), &downloaded);
        }
        // A model that arrives while a still image or paused frame is shown: run it there.
        if !was_ready
            && self.models.status == ModelStatus::Ready
            && let (Some(session), Some(current)) = (&self.session, &self.current)
        {
            session.reprocess(current.frame.clone());
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let newest = session.poll();
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
            self.stats
                .frame_shown(self.started.elapsed().as_secs_f64(), &processed.times, read);
            self.current = Some(processed);
            self.dirty = true;
        }
    }

    /// Push the thresholds and size to the inference thread; redo a paused frame.
    fn apply_knobs(&mut self) {
        let knobs = knobs_for(&self.settings);
        let mut shared = self.knobs.lock().unwrap_or_else(|e| e.into_inner());
        let changed = shared.nms.conf != knobs.nms.conf
            || shared.nms.iou != knobs.nms.iou
            || shared.input != knobs.input;
        *shared = knobs;
        drop(shared);
        if changed
            && let (Some(session), Some(current)) = (&self.session, &self.current)
            && (session.control.is_paused() || session.state == SourceState::Ended)
        {
            session.reprocess(current.frame.clone());
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

    fn top_bar(&mut self, ui: &mut Ui) {
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

    /// The loaded model's class names; none before a model is loaded.
    fn class_names(&self) -> Vec<String> {
        self.models
            .summary
            .as_ref()
            .map(|s| s.info.class_names.clone())
            .unwrap_or_default()
    }

    fn reload_model(&mut self, ctx: &egui::Context) {
        if let Some(weights) = self.settings.weights.clone() {
            self.open_weights(ctx, &weights);
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

    fn detection_panel(&mut self, ui: &mut Ui) {
        ui.heading("Detection");
        ui.add(egui::Slider::new(&mut self.settings.conf, 0.01..=1.0).text("confidence"));
        ui.add(egui::Slider::new(&mut self.settings.iou, 0.05..=1.0).text("NMS IoU"));
        egui::ComboBox::from_label("inference size")
            .selected_text(self.settings.imgsz.to_string())
            .show_ui(ui, |ui| {
                for size in IMAGE_SIZES {
                    ui.selectable_value(&mut self.settings.imgsz, size, size.to_string());
                }
            });
        ui.checkbox(&mut self.settings.show_labels, "labels");
        let names = self.class_names();
        if !names.is_empty() {
            ui.separator();
            ui.horizontal(|ui| {
                ui.label("Classes");
                if ui.small_button("all").clicked() {
                    self.settings.hidden_classes.clear();
                }
                if ui.small_button("none").clicked() {
                    self.settings.hidden_classes = (0..names.len()).collect();
                }
            });
            egui::ScrollArea::vertical()
                .id_salt("classes")
                .max_height(180.0)
                .show(ui, |ui| {
                    for (class, name) in names.iter().enumerate() {
                        let mut shown = !self.settings.hidden_classes.contains(&class);
                        let toggled = ui
                            .horizontal(|ui| {
                                let (swatch, _) = ui.allocate_exact_size(
                                    egui::vec2(10.0, 10.0),
                                    egui::Sense::hover(),
                                );
                                ui.painter().rect_filled(
                                    swatch,
                                    2.0,
                                    colour32(crate::annotate::class_colour(class)),
                                );
                                ui.checkbox(&mut shown, name).changed()
                            })
                            .inner;
                        if toggled {
                            if shown {
                                self.settings.hidden_classes.remove(&class);
                            } else {
                                self.settings.hidden_classes.insert(class);
                            }
                        }
                    }
                });
        }
        ui.separator();
        ui.checkbox(&mut self.settings.show_performance, "performance");
        if self.settings.show_performance {
            self.stats.show(ui, self.session.as_ref());
        }
    }

    fn status_bar(&mut self, ui: &mut Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.label(format!("Model on {}", self.models.device().description));
            if let Some(note) = &self.device_note {
                ui.label(RichText::new(note).weak());
            }
            ui.separator();
            match &self.models.status {
                ModelStatus::Missing => {
                    ui.label("no weights");
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
                }
            }
            if let Some(session) = &self.session {
                ui.separator();
                let text = match &session.state {
                    SourceState::Opening => format!("opening {}", session.spec),
                    SourceState::Playing => session.spec.to_string(),
                    SourceState::Ended => format!("{}: end", session.spec),
                    SourceState::Failed(reason) => reason.clone(),
                };
                let colour = match session.state {
                    SourceState::Failed(_) => Color32::RED,
                    _ => ui.visuals().text_color(),
                };
                ui.label(RichText::new(text).color(colour));
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
    fn welcome(&mut self, ui: &mut Ui) {
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

impl eframe::App for FocalYoloApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        let draw_started = Instant::now();
        self.poll(ui);
        self.handle_dropped_files(ui);
        self.apply_knobs();

        egui::Panel::top("menu").show(ui, |ui| self.top_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("detection")
            .default_size(230.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("detection panel")
                    .show(ui, |ui| self.detection_panel(ui));
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
                look_changed = self.panel.show(ui, content, &mut self.settings);
            });
        if let Some(current) = &self.current {
            if self.dirty {
                self.view.update(ui, current);
            }
            if self.dirty || look_changed {
                self.panel.update(ui, current, self.settings.colormap);
            }
        }
        self.dirty = false;
        let names = self.class_names();
        egui::CentralPanel::default().show(ui, |ui| {
            if self.current.is_some() {
                self.view
                    .show(ui, self.current.as_ref(), &self.settings, &names);
            } else {
                self.welcome(ui);
            }
        });
        self.stats.drawn(draw_started.elapsed());
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}

fn knobs_for(settings: &Settings) -> InferenceKnobs {
    InferenceKnobs {
        nms: NmsOptions {
            conf: settings.conf,
            iou: settings.iou,
            ..NmsOptions::default()
        },
        input: InputSize {
            imgsz: settings.imgsz,
            canvas: Canvas::Minimal,
        },
        taps: true,
    }
}

fn model_line(summary: &ModelSummary) -> String {
    let info = &summary.info;
    let layer9 = if summary.bundled_layer {
        "FocalModulation (bundled, distilled for YOLO11n)".to_string()
    } else {
        info.layer9.to_string()
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

fn clock(seconds: f64) -> String {
    let total = seconds.max(0.0);
    let minutes = (total / 60.0).floor();
    format!("{minutes:.0}:{:05.2}", total - minutes * 60.0)
}

/// burn on the renderer's own wgpu device when it is a hardware GPU (one device, one queue
/// for frames, model and maps); the CPU backend when the only adapter is a software one,
/// which runs the model slower than the CPU backend does.
fn choose_device(
    render_state: Option<&eframe::egui_wgpu::RenderState>,
    choice: DeviceChoice,
) -> (ComputeDevice, Option<String>) {
    let Some(render_state) = render_state.filter(|_| choice != DeviceChoice::Cpu) else {
        return (ComputeDevice::cpu(), None);
    };
    let info = render_state.adapter.get_info();
    if info.device_type == wgpu::DeviceType::Cpu && choice == DeviceChoice::Auto {
        return (
            ComputeDevice::cpu(),
            Some(format!(
                "(the only GPU adapter, {}, is a software rasteriser)",
                info.name
            )),
        );
    }
    // burn asks for every feature the adapter has; a device opened without them (by
    // another host than `run`) would fail at its first timing query.
    let wanted = render_state
        .adapter
        .features()
        .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS);
    if !render_state.device.features().contains(wanted) {
        return (
            ComputeDevice::cpu(),
            Some("(the window's GPU device lacks features the model needs)".to_string()),
        );
    }
    let setup = WgpuSetup {
        instance: render_state.instance.clone(),
        adapter: render_state.adapter.clone(),
        device: render_state.device.clone(),
        queue: render_state.queue.clone(),
        backend: info.backend,
    };
    match ComputeDevice::adopt(setup) {
        Ok(device) => (device, None),
        Err(err) => (ComputeDevice::cpu(), Some(format!("(GPU unusable: {err})"))),
    }
}

/// The wgpu device the window opens: everything the adapter offers, as burn asks for when
/// it opens a device itself, so the model can share it.
fn shared_device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
    wgpu::DeviceDescriptor {
        label: Some("focalyolo"),
        required_features: adapter
            .features()
            .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
        required_limits: adapter.limits(),
        memory_hints: wgpu::MemoryHints::MemoryUsage,
        ..Default::default()
    }
}

/// How the window opens its wgpu device: with everything the adapter offers, so that the
/// model can run on it too.
pub fn wgpu_setup() -> eframe::egui_wgpu::WgpuSetup {
    eframe::egui_wgpu::WgpuSetup::CreateNew(eframe::egui_wgpu::WgpuSetupCreateNew {
        device_descriptor: Arc::new(shared_device_descriptor),
        ..eframe::egui_wgpu::WgpuSetupCreateNew::without_display_handle()
    })
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
