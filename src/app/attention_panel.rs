//! The FocalModulation panel: the gate map of each focal level and of the global level,
//! and the modulator's L2 norm, each with its colour bar, range and an overlay toggle.

use egui::{Color32, Rect, Sense, TextureHandle, Ui, pos2, vec2};

use crate::output::attention_maps::{Colormap, colourise};

use super::session::Processed;
use super::settings::Settings;
use super::video_view::upload;

/// The box a thumbnail fits into, in points; maps keep their aspect ratio.
const THUMBNAIL_BOX: egui::Vec2 = egui::vec2(200.0, 112.0);
/// Colour bars are drawn from this many samples of the colour map.
const COLOUR_BAR_STEPS: usize = 64;

#[derive(Default)]
pub struct AttentionPanel {
    thumbnails: Vec<Option<TextureHandle>>,
    colour_bar: Option<(Colormap, TextureHandle)>,
}

/// What the panel can show, decided by the caller from the model.
pub enum PanelContent<'a> {
    NoModel,
    /// Layer 9 is SPPF, as asked for.
    Sppf,
    /// Layer 9 is SPPF because no bundled FocalModulation fits the weights.
    SppfWithoutLayer,
    Waiting,
    Maps(&'a Processed),
}

impl AttentionPanel {
    /// Recolour the thumbnails for a new frame or colour map.
    pub fn update(&mut self, ui: &Ui, processed: &Processed, colormap: Colormap) {
        let Some(letterbox) = &processed.letterbox else {
            self.thumbnails.clear();
            return;
        };
        self.thumbnails.resize_with(processed.maps.len(), || None);
        // Thumbnails show the whole frame's extent, at twice the grid's resolution.
        for (map, texture) in processed.maps.iter().zip(&mut self.thumbnails) {
            let width = (map.width * 2) as u32;
            let height = ((letterbox.source_height as u64 * u64::from(width))
                / u64::from(letterbox.source_width.max(1)))
            .max(1) as u32;
            let colours = colourise(map, letterbox, colormap, width, height);
            upload(
                ui,
                texture,
                &format!("thumbnail {}", map.key()),
                [width as usize, height as usize],
                colours.as_raw(),
            );
        }
    }

    /// Draw the panel. Returns true when the overlay selection or look changed.
    pub fn show(
        &mut self,
        ui: &mut Ui,
        content: PanelContent<'_>,
        settings: &mut Settings,
    ) -> bool {
        ui.heading("FocalModulation");
        let processed = match content {
            PanelContent::NoModel => {
                ui.label("Load a model to see what layer 9 attends to.");
                return false;
            }
            PanelContent::Sppf => {
                ui.label(
                    "Layer 9 of this model is SPPF: there is no FocalModulation to show. \
                     Load a YOLO11-FocalModulation checkpoint, or stock YOLO11n with its \
                     bundled FocalModulation layer.",
                );
                return false;
            }
            PanelContent::SppfWithoutLayer => {
                ui.label(
                    "Layer 9 of this model is SPPF: no bundled FocalModulation fits these \
                     weights (the bundled layer was distilled from one YOLO11n training run), \
                     so there are no gate maps to show. Make a layer for them with \
                     `focalyolo distill --teacher <these weights> --images <photos>` and open \
                     it with Model > Open trained FocalModulation layer…, or tick Model > Keep \
                     SPPF to run without this note.",
                );
                return false;
            }
            PanelContent::Waiting => {
                ui.label("Waiting for the first frame…");
                return false;
            }
            PanelContent::Maps(processed) => processed,
        };
        let mut changed = false;
        egui::ComboBox::from_label("colour map")
            .selected_text(settings.colormap.name())
            .show_ui(ui, |ui| {
                for colormap in Colormap::ALL {
                    changed |= ui
                        .selectable_value(&mut settings.colormap, colormap, colormap.name())
                        .changed();
                }
            });
        ui.add(egui::Slider::new(&mut settings.opacity, 0.0..=1.0).text("overlay opacity"));
        ui.separator();
        let bar = self.colour_bar(ui, settings.colormap);
        egui::ScrollArea::vertical().show(ui, |ui| {
            for (map, texture) in processed.maps.iter().zip(&self.thumbnails) {
                let key = map.key();
                let mut on = settings.overlays.contains(&key);
                if ui.checkbox(&mut on, &map.label).changed() {
                    if on {
                        settings.overlays.insert(key);
                    } else {
                        settings.overlays.remove(&key);
                    }
                    changed = true;
                }
                if let Some(texture) = texture {
                    let size = texture.size_vec2();
                    let scale = (THUMBNAIL_BOX.x / size.x).min(THUMBNAIL_BOX.y / size.y);
                    ui.image((texture.id(), size * scale));
                }
                ui.horizontal(|ui| {
                    ui.label(format!("{:.3}", map.min));
                    let (rect, _) = ui.allocate_exact_size(vec2(120.0, 10.0), Sense::hover());
                    ui.painter().image(
                        bar,
                        rect,
                        Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)),
                        Color32::WHITE,
                    );
                    ui.label(format!("{:.3}", map.max));
                });
                ui.add_space(6.0);
            }
        });
        changed
    }

    fn colour_bar(&mut self, ui: &Ui, colormap: Colormap) -> egui::TextureId {
        if let Some((drawn, texture)) = &self.colour_bar
            && *drawn == colormap
        {
            return texture.id();
        }
        let rgb: Vec<u8> = (0..COLOUR_BAR_STEPS)
            .flat_map(|i| colormap.colour(i as f32 / (COLOUR_BAR_STEPS - 1) as f32))
            .collect();
        let mut texture = None;
        let id = upload(ui, &mut texture, "colour bar", [COLOUR_BAR_STEPS, 1], &rgb);
        self.colour_bar = texture.map(|t| (colormap, t));
        id
    }
}
