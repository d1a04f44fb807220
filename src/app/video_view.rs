//! The video with its boxes, labels, track IDs and trails, and FocalModulation overlays,
//! scaled to fit.

use egui::{
    Align2, Color32, ColorImage, FontId, Pos2, Rect, Stroke, StrokeKind, TextureHandle,
    TextureOptions, Ui, Vec2, pos2, vec2,
};

use crate::inference::postprocess::Detection;
use crate::output::annotate::{class_colour, detection_label, track_label};

use super::overlay_shader;
use super::session::Processed;
use super::settings::Settings;

#[derive(Default)]
pub struct VideoView {
    frame: Option<TextureHandle>,
}

pub fn colour32(rgb: [u8; 3]) -> Color32 {
    Color32::from_rgb(rgb[0], rgb[1], rgb[2])
}

/// `rgb` pixels of a `width`×`height` image as an egui texture, created or refreshed.
pub fn upload(
    ui: &Ui,
    texture: &mut Option<TextureHandle>,
    name: &str,
    size: [usize; 2],
    rgb: &[u8],
) -> egui::TextureId {
    let image = ColorImage::from_rgb(size, rgb);
    match texture {
        Some(handle) => handle.set(image, TextureOptions::LINEAR),
        None => *texture = Some(ui.ctx().load_texture(name, image, TextureOptions::LINEAR)),
    }
    texture.as_ref().map(TextureHandle::id).expect("just set")
}

impl VideoView {
    /// Upload a new frame.
    pub fn update(&mut self, ui: &Ui, processed: &Processed) {
        let image = &processed.frame.image;
        upload(
            ui,
            &mut self.frame,
            "video frame",
            [image.width() as usize, image.height() as usize],
            image.as_raw(),
        );
    }

    /// Draw the current frame into the space left, with boxes for `processed`.
    pub fn show(
        &self,
        ui: &mut Ui,
        processed: Option<&Processed>,
        settings: &Settings,
        names: &[String],
    ) {
        let available = ui.available_rect_before_wrap();
        let (Some(texture), Some(processed)) = (&self.frame, processed) else {
            return;
        };
        let image = &processed.frame.image;
        let size = vec2(image.width() as f32, image.height() as f32);
        let scale = (available.width() / size.x).min(available.height() / size.y);
        let rect = Rect::from_center_size(available.center(), size * scale);
        ui.allocate_rect(available, egui::Sense::hover());
        let painter = ui.painter_at(available);
        let full_uv = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
        painter.image(texture.id(), rect, full_uv, Color32::WHITE);
        if let Some(letterbox) = &processed.letterbox {
            for map in processed
                .maps
                .iter()
                .filter(|m| settings.overlays.contains(&m.key()))
            {
                painter.add(overlay_shader::overlay(
                    rect,
                    map,
                    letterbox,
                    settings.colormap,
                    settings.opacity,
                ));
            }
        }

        let to_screen = |x: f32, y: f32| Pos2::new(rect.min.x + x * scale, rect.min.y + y * scale);
        let shown = |d: &Detection| !settings.hidden_classes.contains(&d.class);
        let draw_box = |detection: &Detection, label: String| {
            let [x1, y1, x2, y2] = detection.xyxy;
            let colour = colour32(class_colour(detection.class));
            let boxed = Rect::from_min_max(to_screen(x1, y1), to_screen(x2, y2));
            painter.rect_stroke(boxed, 0.0, Stroke::new(2.0, colour), StrokeKind::Inside);
            if settings.show_labels {
                let text_colour = if colour.r() as u32 + colour.g() as u32 + colour.b() as u32 > 382
                {
                    Color32::BLACK
                } else {
                    Color32::WHITE
                };
                let galley = painter.layout_no_wrap(label, FontId::proportional(13.0), text_colour);
                let label_size = galley.size() + Vec2::new(6.0, 2.0);
                // Above the box, or inside it at the top edge of the picture.
                let top = if boxed.min.y - label_size.y >= rect.min.y {
                    boxed.min.y - label_size.y
                } else {
                    boxed.min.y
                };
                let label = Rect::from_min_size(pos2(boxed.min.x, top), label_size);
                painter.rect_filled(label, 0.0, colour);
                painter.galley(label.min + Vec2::new(3.0, 1.0), galley, text_colour);
            }
        };
        match &processed.tracks {
            Some(tracks) => {
                let visible = || tracks.objects.iter().filter(|o| shown(&o.detection));
                for object in visible() {
                    let colour = colour32(class_colour(object.detection.class));
                    let points = object.trail.iter().map(|&[x, y]| to_screen(x, y)).collect();
                    painter.add(egui::Shape::line(points, Stroke::new(2.0, colour)));
                }
                for object in visible() {
                    draw_box(&object.detection, track_label(object, names));
                }
            }
            None => {
                for detection in processed.detections.iter().filter(|d| shown(d)) {
                    draw_box(detection, detection_label(detection, names));
                }
            }
        }
        if let Some(error) = &processed.error {
            painter.text(
                rect.left_top() + Vec2::splat(8.0),
                Align2::LEFT_TOP,
                error,
                FontId::proportional(14.0),
                Color32::RED,
            );
        }
    }
}
