//! The left panel: thresholds, inference size, class filter, the frame's boxes, tracking,
//! counting, and the performance view.

use egui::Ui;

use super::Action;
use super::count_panel::{CountView, counting_section};
use super::session::Session;
use super::settings::{CompareLayout, IMAGE_SIZES, Settings};
use super::stats_panel::{ComparisonStats, Stats};
use super::video_view::{Pointed, colour32};
use crate::count::{Region, RegionCount};
use crate::inference::postprocess::{Detection, class_name};
use crate::output::annotate::label_with_id;
use crate::output::shape_facts;
use crate::track::{TRACKING_CONF, TrackedFrame, TrackerConfig};

/// The left panel. It owns the performance and comparison figures it shows; the rest
/// are settings.
#[derive(Default)]
pub struct DetectionPanel {
    pub stats: Stats,
    pub comparison: ComparisonStats,
    /// What the last counts export wrote, or why it failed.
    pub export_note: Option<String>,
}

/// What the panel shows of the frame on screen.
pub struct FrameView<'a> {
    pub detections: &'a [Detection],
    /// The tracker's view of the frame, when tracking.
    pub tracks: Option<&'a TrackedFrame>,
    /// The box the detail view explains, and the one the pointer is on in the video.
    pub marked: Pointed,
    /// The two models' captions, when a second one runs.
    pub compared: Option<&'a [String; 2]>,
    /// The frame size's counting regions and the counts so far.
    pub regions: &'a [Region],
    pub counts: &'a [RegionCount],
    /// Whether tracking is on (counting follows tracks).
    pub tracking: bool,
}

impl DetectionPanel {
    /// Returns the detection whose row was clicked, and the one the pointer is on.
    pub fn show(
        &self,
        ui: &mut Ui,
        settings: &mut Settings,
        names: &[String],
        frame: FrameView,
        session: Option<&Session>,
        actions: &mut Vec<Action>,
    ) -> Pointed {
        ui.heading("Detection");
        ui.add_enabled(
            !settings.track,
            egui::Slider::new(&mut settings.conf, 0.01..=1.0).text("confidence"),
        )
        .on_disabled_hover_text(format!(
            "While tracking, detections down to {TRACKING_CONF} feed the tracker \
             (as Ultralytics does); its thresholds decide which become tracks"
        ));
        ui.add(egui::Slider::new(&mut settings.iou, 0.05..=1.0).text("NMS IoU"));
        egui::ComboBox::from_label("inference size")
            .selected_text(settings.imgsz.to_string())
            .show_ui(ui, |ui| {
                for size in IMAGE_SIZES {
                    ui.selectable_value(&mut settings.imgsz, size, size.to_string());
                }
            });
        ui.checkbox(&mut settings.show_labels, "labels");
        if !names.is_empty() {
            ui.separator();
            ui.horizontal(|ui| {
                ui.label("Classes");
                if ui.small_button("all").clicked() {
                    settings.hidden_classes.clear();
                }
                if ui.small_button("none").clicked() {
                    settings.hidden_classes = (0..names.len()).collect();
                }
            });
            egui::ScrollArea::vertical()
                .id_salt("classes")
                .max_height(180.0)
                .show(ui, |ui| {
                    for (class, name) in names.iter().enumerate() {
                        let mut shown = !settings.hidden_classes.contains(&class);
                        let toggled = ui
                            .horizontal(|ui| {
                                let (swatch, _) = ui.allocate_exact_size(
                                    egui::vec2(10.0, 10.0),
                                    egui::Sense::hover(),
                                );
                                ui.painter().rect_filled(
                                    swatch,
                                    2.0,
                                    colour32(crate::output::annotate::class_colour(class)),
                                );
                                ui.checkbox(&mut shown, name).changed()
                            })
                            .inner;
                        if toggled {
                            if shown {
                                settings.hidden_classes.remove(&class);
                            } else {
                                settings.hidden_classes.insert(class);
                            }
                        }
                    }
                });
        }
        ui.separator();
        let pointed = detections_list(ui, settings, names, &frame);
        ui.separator();
        tracking_section(ui, settings, names, frame.tracks);
        ui.separator();
        actions.extend(counting_section(
            ui,
            CountView {
                regions: frame.regions,
                counts: frame.counts,
                tracking: frame.tracking,
                export_note: self.export_note.as_deref(),
            },
            names,
        ));
        if frame.compared.is_some() {
            ui.separator();
            ui.horizontal(|ui| {
                ui.label("Two models:");
                ui.radio_value(
                    &mut settings.compare_layout,
                    CompareLayout::Split,
                    "side by side",
                );
                ui.radio_value(
                    &mut settings.compare_layout,
                    CompareLayout::Overlay,
                    "one picture",
                );
            });
        }
        ui.separator();
        ui.checkbox(&mut settings.show_performance, "performance");
        if settings.show_performance {
            if let Some(captions) = frame.compared {
                self.comparison.show(ui, captions);
            }
            self.stats.show(ui, session);
        }
        pointed
    }
}

/// The frame's boxes, one row each (a click explains it); the explained one selected, the
/// one the pointer is on in the video highlighted.
fn detections_list(
    ui: &mut Ui,
    settings: &Settings,
    names: &[String],
    frame: &FrameView,
) -> Pointed {
    let shown: Vec<(usize, &Detection)> = frame
        .detections
        .iter()
        .enumerate()
        .filter(|(_, d)| !settings.hidden_classes.contains(&d.class))
        .collect();
    let ids = frame
        .tracks
        .map(|t| t.ids_of(frame.detections))
        .unwrap_or_default();
    let mut pointed = Pointed::default();
    egui::CollapsingHeader::new(format!("Detections ({})", shown.len()))
        .id_salt("detections")
        .default_open(true)
        .show(ui, |ui| {
            egui::ScrollArea::vertical()
                .id_salt("detections list")
                .max_height(160.0)
                .show(ui, |ui| {
                    for (index, detection) in shown {
                        let id = ids.get(index).copied().flatten();
                        let mut label = label_with_id(id, detection, names);
                        if let Some(summary) = shape_facts::summary(&detection.shape) {
                            label = format!("{label} · {summary}");
                        }
                        let mut row =
                            ui.selectable_label(frame.marked.clicked == Some(index), label);
                        if frame.marked.hovered == Some(index) {
                            row = row.highlight();
                        }
                        if row.clicked() {
                            pointed.clicked = Some(index);
                        }
                        if row.on_hover_text("Why this box?").hovered() {
                            pointed.hovered = Some(index);
                        }
                    }
                });
        });
    pointed
}

/// The Track toggle, ByteTrack's settings, and the track counts per class.
fn tracking_section(
    ui: &mut Ui,
    settings: &mut Settings,
    names: &[String],
    tracks: Option<&TrackedFrame>,
) {
    ui.checkbox(&mut settings.track, "Track (ByteTrack)")
        .on_hover_text("Follow objects across frames: IDs and trails on the boxes");
    if !settings.track {
        return;
    }
    egui::CollapsingHeader::new("tracker settings")
        .id_salt("tracker settings")
        .show(ui, |ui| tracker_settings(ui, &mut settings.tracker));
    let Some(tracks) = tracks else {
        ui.label("waiting for a tracked frame");
        return;
    };
    track_counts(ui, tracks, names);
}

fn tracker_settings(ui: &mut Ui, config: &mut TrackerConfig) {
    ui.add(egui::Slider::new(&mut config.high_thresh, 0.05..=0.95).text("high score"))
        .on_hover_text("Detections at or above this are associated first");
    ui.add(egui::Slider::new(&mut config.low_thresh, 0.0..=0.5).text("low score"))
        .on_hover_text(
            "Fainter detections above this get a second round with the tracks left over",
        );
    ui.add(egui::Slider::new(&mut config.new_track_thresh, 0.05..=0.95).text("new track"))
        .on_hover_text("An unmatched detection starts a track at or above this score");
    ui.add(egui::Slider::new(&mut config.buffer, 1..=300).text("buffer (frames)"))
        .on_hover_text("Frames a lost track is kept to be found again");
    ui.add(egui::Slider::new(&mut config.match_thresh, 0.1..=1.0).text("match cost"))
        .on_hover_text("Largest 1 − IoU (times the score when fused) that still matches");
    ui.checkbox(&mut config.fuse_score, "fuse score")
        .on_hover_text("Weigh IoU by the detection's score when associating");
    ui.add(egui::Slider::new(&mut config.trail, 1..=120).text("trail (frames)"));
    config.low_thresh = config.low_thresh.min(config.high_thresh);
    if ui.small_button("Ultralytics defaults").clicked() {
        *config = TrackerConfig::default();
    }
}

fn track_counts(ui: &mut Ui, tracks: &TrackedFrame, names: &[String]) {
    let now = tracks.now();
    let total_now: u64 = now.values().sum();
    let total_since: u64 = tracks.since_start.values().sum();
    ui.label(format!(
        "tracks now {total_now}, since the start {total_since}"
    ));
    egui::Grid::new("track counts")
        .striped(true)
        .show(ui, |ui| {
            ui.strong("class");
            ui.strong("now");
            ui.strong("since start");
            ui.end_row();
            for (&class, &since) in &tracks.since_start {
                ui.horizontal(|ui| {
                    let (swatch, _) =
                        ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
                    ui.painter().rect_filled(
                        swatch,
                        2.0,
                        colour32(crate::output::annotate::class_colour(class)),
                    );
                    ui.label(class_name(names, class));
                });
                ui.label(now.get(&class).copied().unwrap_or(0).to_string());
                ui.label(since.to_string());
                ui.end_row();
            }
        });
    if tracks.skipped_total > 0 {
        let seen = tracks.seen_total.max(1) as f64;
        let per_seen = (tracks.seen_total + tracks.skipped_total) as f64 / seen;
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "tracking on dropped frames: the model sees about 1 frame in {per_seen:.1} \
                 ({} skipped just now); the tracker predicts across the gaps",
                tracks.frames_skipped
            ),
        );
    }
}
