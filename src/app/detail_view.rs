//! "Why this box?": a window on the box the user picked (in the video or the detections
//! list): the crop with each FocalModulation map over it, the box's top class scores, the
//! pyramid level and anchor it came from, and the modulator's energy inside it. It follows
//! the object while the video plays: by track ID with tracking on, else the box of the next
//! frame that overlaps it most.

use egui::{RichText, TextureHandle, Ui};

use super::session::Processed;
use super::video_view::upload;
use crate::inference::postprocess::{Detection, box_iou};
use crate::output::attention_maps::Colormap;
use crate::output::explain::{Explanation, detail_tiles};
use crate::output::shape_facts::ShapeFacts;

/// The most each picture in the window takes, in points (five make a row); they are made
/// at the screen's pixel density.
const TILE_POINTS: [f32; 2] = [136.0, 112.0];

/// The object the user picked.
struct Selection {
    xyxy: [f32; 4],
    /// Only boxes of its class are the object in later frames.
    class: usize,
    track_id: Option<u64>,
    /// The frame it was last looked for in: a seek or a loop goes back, and the tracker
    /// starts its IDs over.
    frame: u64,
}

#[derive(Default)]
pub struct DetailView {
    selection: Option<Selection>,
    /// The selected box among the current frame's detections; none when this frame has no
    /// box on the object (the window then shows the last frame that had one).
    index: Option<usize>,
    explanation: Option<Explanation>,
    /// The track ID of the explained box, when the frame explained was tracked.
    track_shown: Option<u64>,
    tiles: Vec<(String, Option<TextureHandle>)>,
}

impl DetailView {
    /// Explain detection `index` of `processed`, and follow it from now on.
    pub fn select(
        &mut self,
        ui: &Ui,
        processed: &Processed,
        index: usize,
        names: &[String],
        colormap: Colormap,
    ) {
        let Some(detection) = processed.detections.get(index) else {
            return;
        };
        self.selection = Some(Selection {
            xyxy: detection.xyxy,
            class: detection.class,
            track_id: None,
            frame: processed.frame.index,
        });
        self.follow(ui, processed, names, colormap);
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    pub fn explanation(&self) -> Option<&Explanation> {
        self.explanation.as_ref()
    }

    /// The selected box's index in the current frame's detections.
    pub fn selected(&self) -> Option<usize> {
        self.index
    }

    /// A new frame (or a new look of this one): find the object in it and explain it.
    pub fn follow(&mut self, ui: &Ui, processed: &Processed, names: &[String], colormap: Colormap) {
        let Some(selection) = &mut self.selection else {
            return;
        };
        if processed.frame.index < selection.frame {
            selection.track_id = None;
        }
        selection.frame = processed.frame.index;
        let tracks = processed.tracks.as_ref();
        // The track's box, while it is still about where the object was.
        let tracked_box = selection.track_id.and_then(|id| {
            tracks?
                .objects
                .iter()
                .find(|o| o.id == id)
                .map(|o| o.detection.xyxy)
                .filter(|xyxy| box_iou(xyxy, &selection.xyxy) > 0.0)
        });
        let target = tracked_box.unwrap_or(selection.xyxy);
        let class = selection.class;
        let best = |boxes: &mut dyn Iterator<Item = &Detection>| {
            boxes
                .enumerate()
                .filter(|(_, d)| d.class == class)
                .map(|(i, d)| (i, box_iou(&target, &d.xyxy)))
                .filter(|&(_, iou)| iou > 0.0)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i)
        };
        self.index = best(&mut processed.detections.iter());
        let Some(detection) = self.index.map(|i| &processed.detections[i]) else {
            return;
        };
        selection.xyxy = detection.xyxy;
        self.track_shown = None;
        if let Some(tracks) = tracks {
            let objects = &tracks.objects;
            let on_it = best(&mut objects.iter().map(|o| &o.detection));
            self.track_shown = on_it.map(|i| objects[i].id);
            selection.track_id = self.track_shown.or(selection.track_id);
        }
        let Some(letterbox) = &processed.letterbox else {
            return;
        };
        self.explanation = Some(Explanation::new(
            detection,
            &processed.maps,
            letterbox,
            names,
        ));
        let pictures = detail_tiles(
            &processed.frame.image,
            detection,
            &processed.maps,
            letterbox,
            colormap,
            TILE_POINTS.map(|points| (points * ui.ctx().pixels_per_point()).round() as u32),
        );
        self.tiles
            .resize_with(pictures.len(), || (String::new(), None));
        for ((label, picture), (shown_label, texture)) in pictures.into_iter().zip(&mut self.tiles)
        {
            let size = [picture.width() as usize, picture.height() as usize];
            upload(
                ui,
                texture,
                &format!("why this box: {label}"),
                size,
                picture.as_raw(),
            );
            *shown_label = label;
        }
    }

    /// The window, while a box is selected; false once the user closes it.
    pub fn show(&self, ui: &Ui) -> bool {
        let Some(explanation) = &self.explanation else {
            return self.selection.is_some();
        };
        let mut open = true;
        egui::Window::new("Why this box?")
            .open(&mut open)
            .resizable(false)
            .max_width(720.0)
            // Low over the video, clear of both side panels' controls.
            .pivot(egui::Align2::LEFT_BOTTOM)
            .default_pos(ui.ctx().content_rect().left_bottom() + egui::vec2(250.0, -40.0))
            .show(ui.ctx(), |ui| {
                let id = self
                    .track_shown
                    .map(|id| format!("id:{id} "))
                    .unwrap_or_default();
                ui.heading(format!("{id}{} {:.2}", explanation.name, explanation.conf));
                if self.index.is_none() {
                    ui.label(
                        RichText::new("not in this frame: the last frame it was found in")
                            .color(ui.visuals().warn_fg_color),
                    );
                }
                let textures: Vec<(&String, &TextureHandle)> = self
                    .tiles
                    .iter()
                    .filter_map(|(label, texture)| Some((label, texture.as_ref()?)))
                    .collect();
                let pixels_per_point = ui.ctx().pixels_per_point();
                ui.horizontal(|ui| {
                    for (label, texture) in textures {
                        ui.vertical(|ui| {
                            let size = texture.size_vec2() / pixels_per_point;
                            ui.add(egui::Image::new(texture).fit_to_exact_size(size));
                            ui.small(label.as_str());
                        });
                    }
                });
                if self.tiles.len() <= 1 {
                    ui.label("Layer 9 is SPPF here: there are no FocalModulation maps to show.");
                }
                ui.separator();
                numbers(ui, explanation);
            });
        open
    }
}

/// The explanation's numbers, as a two-column grid.
fn numbers(ui: &mut Ui, explanation: &Explanation) {
    egui::Grid::new("why this box")
        .num_columns(2)
        .show(ui, |ui| {
            ui.label("class scores");
            ui.vertical(|ui| {
                for score in &explanation.top_classes {
                    ui.label(format!("{} {:.3}", score.name, score.score));
                }
            });
            ui.end_row();
            ui.label("from");
            ui.label(
                match (&explanation.level, explanation.stride, explanation.cell) {
                    (Some(level), Some(stride), Some([column, row])) => format!(
                        "{level} (stride {stride}), cell {column}, {row}: anchor {}",
                        explanation.anchor
                    ),
                    _ => format!("anchor {}", explanation.anchor),
                },
            );
            ui.end_row();
            if let Some(energy) = &explanation.modulator_energy {
                ui.label("modulator energy");
                ui.label(format!(
                    "{:.1}% inside the box, which is {:.1}% of the frame ({:.2}×)",
                    energy.inside * 100.0,
                    energy.area * 100.0,
                    energy.concentration()
                ))
                .on_hover_text(
                    "The share of the modulator's squared norm (summed over the frame) that falls \
                 inside the box, against the box's share of the frame's area",
                );
                ui.end_row();
            }
            for map in &explanation.maps_inside {
                ui.label(format!("{} inside", map.map));
                ui.label(format!("{:.2} of its frame range", map.mean));
                ui.end_row();
            }
            if let Some(shape) = &explanation.shape {
                shape_rows(ui, shape);
            }
        });
}

/// What a task model adds to the box: its mask's size, its keypoints, or its rotation.
fn shape_rows(ui: &mut Ui, shape: &ShapeFacts) {
    match shape {
        ShapeFacts::Mask { area_px, parts } => {
            ui.label("mask");
            let parts = match parts {
                1 => "one part".to_string(),
                n => format!("{n} parts"),
            };
            ui.label(format!("{area_px} px of the frame, {parts}"));
        }
        ShapeFacts::Keypoints(points) => {
            ui.label("keypoints");
            let visible = points.iter().filter(|p| p.visible()).count();
            egui::CollapsingHeader::new(format!(
                "{visible} of {} visible (0.5 and above are drawn)",
                points.len()
            ))
            .id_salt("why this box keypoints")
            .show(ui, |ui| {
                for point in points {
                    let text = format!(
                        "{} {:.0}, {:.0} ({:.2})",
                        point.name, point.xy[0], point.xy[1], point.visibility
                    );
                    match point.visible() {
                        true => ui.label(text),
                        false => ui.weak(text),
                    };
                }
            });
        }
        ShapeFacts::Oriented {
            width,
            height,
            degrees,
        } => {
            ui.label("oriented box");
            ui.label(format!(
                "{width:.0} × {height:.0} px, rotated {degrees:.1}°"
            ));
        }
    }
    ui.end_row();
}
