//! The video with its boxes, labels, track IDs and trails, counting regions, and
//! FocalModulation overlays, scaled to fit.

use egui::{
    Align2, Color32, ColorImage, FontId, Pos2, Rect, Stroke, StrokeKind, TextureHandle,
    TextureOptions, Ui, Vec2, pos2, vec2,
};

use crate::count::Region;
use crate::inference::postprocess::{Detection, Shape, found_by_one};
use crate::output::annotate::{class_colour, detection_label, track_label};
use crate::output::shapes::{dots, limbs, mask_layer};

use super::count_editor::CountEditor;
use super::overlay_shader;
use super::session::Processed;
use super::settings::{CompareLayout, Settings};

#[derive(Default)]
pub struct VideoView {
    frame: Option<TextureHandle>,
    /// The first model's masks over the frame, when it segments.
    masks: Option<TextureHandle>,
    /// Adding and moving counting regions on the picture.
    pub editor: CountEditor,
    /// Where the frame was drawn last.
    picture: Option<Picture>,
}

/// What the pointer did on the view.
#[derive(Default)]
pub struct Shown {
    pub pointed: Pointed,
    /// The frame size's counting regions as the user just edited them.
    pub edited: Option<Vec<Region>>,
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
    /// Upload a new frame, and its masks when the model segments.
    pub fn update(&mut self, ui: &Ui, processed: &Processed) {
        let image = &processed.frame.image;
        let size = [image.width() as usize, image.height() as usize];
        upload(ui, &mut self.frame, "video frame", size, image.as_raw());
        let shapes = first_model_boxes(processed)
            .into_iter()
            .map(|d| (&d.shape, class_colour(d.class)));
        self.masks = mask_layer(image.width(), image.height(), shapes).map(|rgba| {
            let layer = ColorImage::from_rgba_unmultiplied(size, &rgba);
            match self.masks.take() {
                Some(mut handle) => {
                    handle.set(layer, TextureOptions::LINEAR);
                    handle
                }
                None => ui
                    .ctx()
                    .load_texture("masks", layer, TextureOptions::LINEAR),
            }
        });
    }

    /// Where image pixel (`x`, `y`) of the frame was drawn last, in screen points.
    pub fn to_screen(&self, x: f32, y: f32) -> Option<Pos2> {
        self.picture.map(|picture| picture.to_screen(x, y))
    }

    /// Draw the current frame into the space left, with boxes for `processed` (and the
    /// compared model's, side by side or on the same picture) and the frame size's counting
    /// `regions`; `selected` (an index into its detections) is outlined. Returns the
    /// detection a click landed on, and the regions when the pointer edited them.
    pub fn show(
        &mut self,
        ui: &mut Ui,
        processed: &Processed,
        settings: &Settings,
        names: &[String],
        comparison: Option<&Comparison>,
        marked: Pointed,
    ) -> Shown {
        let available = ui.available_rect_before_wrap();
        let Some(texture) = self.frame.as_ref() else {
            return Shown::default();
        };
        let response = ui.allocate_rect(available, egui::Sense::click_and_drag());
        let painter = ui.painter_at(available);
        let image = &processed.frame.image;
        let size = vec2(image.width() as f32, image.height() as f32);
        let compared = processed.compared.as_ref().zip(comparison);
        let split = compared.is_some() && settings.compare_layout == CompareLayout::Split;
        let areas = if split {
            let (left, right) = available.split_left_right_at_fraction(0.5);
            vec![left.shrink(2.0), right.shrink(2.0)]
        } else {
            vec![available]
        };
        let pictures: Vec<Picture> = areas.iter().map(|area| Picture::fit(*area, size)).collect();
        let full_uv = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
        for picture in &pictures {
            painter.image(texture.id(), picture.rect, full_uv, Color32::WHITE);
        }
        let main = pictures[0];
        self.picture = Some(main);
        if let Some(masks) = &self.masks {
            painter.image(masks.id(), main.rect, full_uv, Color32::WHITE);
        }
        if let Some(letterbox) = &processed.letterbox {
            for map in processed
                .maps
                .iter()
                .filter(|m| settings.overlays.contains(&m.key()))
            {
                painter.add(overlay_shader::overlay(
                    main.rect,
                    map,
                    letterbox,
                    settings.colormap,
                    settings.opacity,
                ));
            }
        }
        let boxes = Boxes {
            painter: &painter,
            settings,
        };
        let shown = |d: &Detection| !settings.hidden_classes.contains(&d.class);
        let first_boxes = first_model_boxes(processed);
        let (second_boxes, only_a, only_b): (&[Detection], &[bool], &[bool]) = match compared {
            Some((_, comparison)) => (
                &comparison.boxes.second,
                &comparison.boxes.only[0],
                &comparison.boxes.only[1],
            ),
            None => (&[], &[], &[]),
        };
        // With two models on one picture, colours say which model; otherwise the class.
        let colour_of = |model: usize, class: usize| match (compared, split) {
            (Some(_), false) => MODEL_COLOURS[model],
            _ => colour32(class_colour(class)),
        };
        let mark = |only: &[bool], index: usize, model: usize| {
            only.get(index)
                .copied()
                .unwrap_or(false)
                .then_some(MODEL_TAGS[model])
        };
        if let Some(tracks) = &processed.tracks {
            for object in tracks.objects.iter().filter(|o| shown(&o.detection)) {
                let colour = colour_of(0, object.detection.class);
                let points = object
                    .trail
                    .iter()
                    .map(|&[x, y]| main.to_screen(x, y))
                    .collect();
                painter.add(egui::Shape::line(points, Stroke::new(2.0, colour)));
            }
        }
        for (index, detection) in first_boxes.iter().enumerate() {
            if shown(detection) {
                let label = match &processed.tracks {
                    Some(tracks) => track_label(&tracks.objects[index], names),
                    None => detection_label(detection, names),
                };
                let colour = colour_of(0, detection.class);
                let only = mark(only_a, index, 0);
                boxes.draw(main, detection, label, colour, only, false);
            }
        }
        if let Some((run, comparison)) = compared {
            let picture = *pictures.last().expect("one picture at least");
            for (index, detection) in second_boxes.iter().enumerate() {
                if shown(detection) {
                    let colour = colour_of(1, detection.class);
                    let label = detection_label(detection, &comparison.names);
                    let only = mark(only_b, index, 1);
                    boxes.draw(picture, detection, label, colour, only, !split);
                }
            }
            let captions: Vec<(Picture, usize)> = if split {
                vec![(pictures[0], 0), (pictures[1], 1)]
            } else {
                vec![(main, 0)]
            };
            for (picture, model) in captions {
                let text = if split {
                    comparison.captions[model].clone()
                } else {
                    format!(
                        "{}: {}   {}: {}",
                        MODEL_TAGS[0],
                        comparison.captions[0],
                        MODEL_TAGS[1],
                        comparison.captions[1]
                    )
                };
                let galley =
                    painter.layout_no_wrap(text, FontId::proportional(13.0), Color32::WHITE);
                let at = pos2(
                    picture.rect.min.x,
                    picture.rect.max.y - galley.size().y - 4.0,
                );
                painter.rect_filled(
                    Rect::from_min_size(at, galley.size() + vec2(8.0, 4.0)),
                    0.0,
                    Color32::from_black_alpha(180),
                );
                painter.galley(at + vec2(4.0, 2.0), galley, Color32::WHITE);
            }
            if let Some(error) = &run.error {
                boxes.error(picture, error);
            }
        }
        // The explained box, and the one the pointer is on here or in the list.
        for (index, width) in [(marked.clicked, 2.0), (marked.hovered, 1.0)] {
            if let Some(detection) = index.and_then(|i| processed.detections.get(i)) {
                let [x1, y1, x2, y2] = detection.xyxy;
                let outline = Rect::from_min_max(main.to_screen(x1, y1), main.to_screen(x2, y2));
                painter.rect_stroke(
                    outline.expand(3.0),
                    0.0,
                    Stroke::new(width, Color32::WHITE),
                    StrokeKind::Outside,
                );
            }
        }
        if let Some(error) = &processed.error {
            boxes.error(main, error);
        }
        let (width, height) = image.dimensions();
        let regions = settings.regions_for(width, height);
        let counts = processed
            .counted
            .as_ref()
            .map_or(&[][..], |c| c.counts.as_slice());
        let edited = self
            .editor
            .interact(ui, &response, main, regions, (width, height));
        self.editor
            .paint(&painter, main, regions, counts, response.hover_pos());
        if self.editor.is_busy() {
            return Shown {
                pointed: Pointed::default(),
                edited,
            };
        }
        // The smallest box under the pointer: a small object in front of a large one.
        let under_pointer = response.hover_pos().and_then(|at| {
            let (x, y) = main.to_image(at);
            processed
                .detections
                .iter()
                .enumerate()
                .filter(|(_, d)| shown(d))
                .filter(|(_, d)| {
                    d.xyxy[0] <= x && x <= d.xyxy[2] && d.xyxy[1] <= y && y <= d.xyxy[3]
                })
                .min_by(|(_, a), (_, b)| area(a).total_cmp(&area(b)))
                .map(|(index, _)| index)
        });
        if under_pointer.is_some() {
            ui.ctx().set_cursor_icon(egui::CursorIcon::PointingHand);
        }
        Shown {
            pointed: Pointed {
                clicked: under_pointer.filter(|_| response.clicked()),
                hovered: under_pointer,
            },
            edited,
        }
    }
}

/// A detection (an index into the frame's) that the pointer clicked, and one it is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pointed {
    pub clicked: Option<usize>,
    pub hovered: Option<usize>,
}

/// What the view needs to know of a second model running beside the first.
pub struct Comparison<'a> {
    pub names: Vec<String>,
    /// One line naming each model.
    pub captions: [String; 2],
    pub boxes: &'a ComparedBoxes,
}

/// The first model's boxes as the view draws them: its tracks with tracking on, else its
/// detections.
fn first_model_boxes(processed: &Processed) -> Vec<&Detection> {
    match &processed.tracks {
        Some(tracks) => tracks.objects.iter().map(|o| &o.detection).collect(),
        None => processed.detections.iter().collect(),
    }
}

/// The two models' boxes on a frame as the view shows them, and which of them the other
/// model does not find: worked out once per frame, for the view and the comparison
/// figures alike.
pub struct ComparedBoxes {
    /// How many boxes the first model shows ([`first_model_boxes`]).
    pub first: usize,
    /// The compared model's boxes, from `conf` up when tracking feeds the first model
    /// fainter detections than the user chose to see.
    pub second: Vec<Detection>,
    /// Per box of each model: the other model has no same-class box on it.
    pub only: [Vec<bool>; 2],
}

impl ComparedBoxes {
    /// None when no second model ran on the frame.
    pub fn new(processed: &Processed, conf: f32) -> Option<Self> {
        let compared = processed.compared.as_ref()?;
        let floor = if processed.tracks.is_some() {
            conf
        } else {
            0.0
        };
        let first: Vec<Detection> = first_model_boxes(processed).into_iter().cloned().collect();
        let second: Vec<Detection> = compared
            .detections
            .iter()
            .filter(|d| d.conf >= floor)
            .cloned()
            .collect();
        let (only_a, only_b) = found_by_one(&first, &second);
        Some(Self {
            first: first.len(),
            second,
            only: [only_a, only_b],
        })
    }
}

/// Box colours of the two models when both draw on one picture.
const MODEL_COLOURS: [Color32; 2] = [
    Color32::from_rgb(255, 149, 0),
    Color32::from_rgb(0, 200, 255),
];
/// How the view and the panel name the two models.
pub const MODEL_TAGS: [&str; 2] = ["A", "B"];

fn area(d: &Detection) -> f32 {
    (d.xyxy[2] - d.xyxy[0]) * (d.xyxy[3] - d.xyxy[1])
}

/// Where the frame is drawn: its screen rectangle and screen pixels per image pixel.
#[derive(Clone, Copy)]
pub struct Picture {
    pub rect: Rect,
    scale: f32,
}

impl Picture {
    /// The frame of `size`, as large as fits in `area`, centred.
    fn fit(area: Rect, size: Vec2) -> Self {
        let scale = (area.width() / size.x).min(area.height() / size.y);
        Self {
            rect: Rect::from_center_size(area.center(), size * scale),
            scale,
        }
    }

    pub fn to_screen(self, x: f32, y: f32) -> Pos2 {
        Pos2::new(
            self.rect.min.x + x * self.scale,
            self.rect.min.y + y * self.scale,
        )
    }

    pub fn to_image(self, at: Pos2) -> (f32, f32) {
        (
            (at.x - self.rect.min.x) / self.scale,
            (at.y - self.rect.min.y) / self.scale,
        )
    }
}

/// Draws boxes and messages on the view.
struct Boxes<'a> {
    painter: &'a egui::Painter,
    settings: &'a Settings,
}

impl Boxes<'_> {
    /// A box with its label; `only` (the model's tag) marks a box the other model does
    /// not find: a thicker line and the tag in the label. `below` puts the label under the
    /// box, clear of another model's label on the same object.
    fn draw(
        &self,
        picture: Picture,
        detection: &Detection,
        label: String,
        colour: Color32,
        only: Option<&str>,
        below: bool,
    ) {
        let [x1, y1, x2, y2] = detection.xyxy;
        let boxed = Rect::from_min_max(picture.to_screen(x1, y1), picture.to_screen(x2, y2));
        let width = if only.is_some() { 4.0 } else { 2.0 };
        let screen = |[x, y]: [f32; 2]| picture.to_screen(x, y);
        match &detection.shape {
            Shape::Oriented(_) => {
                let corners = detection
                    .shape
                    .corners()
                    .expect("an oriented box has corners");
                self.painter.add(egui::Shape::closed_line(
                    corners.iter().map(|&c| screen(c)).collect(),
                    Stroke::new(width, colour),
                ));
            }
            shape => {
                self.painter.rect_stroke(
                    boxed,
                    0.0,
                    Stroke::new(width, colour),
                    StrokeKind::Inside,
                );
                self.draw_shape(picture, shape, colour);
            }
        }
        if !self.settings.show_labels {
            return;
        }
        let label = match only {
            Some(tag) => format!("{label} (only {tag})"),
            None => label,
        };
        let text_colour = if colour.r() as u32 + colour.g() as u32 + colour.b() as u32 > 382 {
            Color32::BLACK
        } else {
            Color32::WHITE
        };
        let galley = self
            .painter
            .layout_no_wrap(label, FontId::proportional(13.0), text_colour);
        let label_size = galley.size() + Vec2::new(6.0, 2.0);
        // Above the box (or below it), or inside it at the edge of the picture.
        let top = if below {
            if boxed.max.y + label_size.y <= picture.rect.max.y {
                boxed.max.y
            } else {
                boxed.max.y - label_size.y
            }
        } else if boxed.min.y - label_size.y >= picture.rect.min.y {
            boxed.min.y - label_size.y
        } else {
            boxed.min.y
        };
        let label = Rect::from_min_size(pos2(boxed.min.x, top), label_size);
        self.painter.rect_filled(label, 0.0, colour);
        self.painter
            .galley(label.min + Vec2::new(3.0, 1.0), galley, text_colour);
    }

    /// A mask's outlines, or a pose's skeleton and keypoints.
    fn draw_shape(&self, picture: Picture, shape: &Shape, colour: Color32) {
        let screen = |[x, y]: [f32; 2]| picture.to_screen(x, y);
        match shape {
            Shape::Mask { outlines, .. } => {
                for outline in outlines.iter() {
                    self.painter.add(egui::Shape::closed_line(
                        outline.iter().map(|&p| screen(p)).collect(),
                        Stroke::new(1.5, colour),
                    ));
                }
            }
            Shape::Keypoints(points) => {
                let colour = [colour.r(), colour.g(), colour.b()];
                for (a, b, limb) in limbs(points) {
                    self.painter
                        .line_segment([screen(a), screen(b)], Stroke::new(2.0, colour32(limb)));
                }
                for (at, dot) in dots(points, colour) {
                    self.painter.circle_filled(screen(at), 3.0, colour32(dot));
                }
            }
            Shape::Box | Shape::Oriented(_) => {}
        }
    }

    fn error(&self, picture: Picture, error: &str) {
        self.painter.text(
            picture.rect.left_top() + Vec2::splat(8.0),
            Align2::LEFT_TOP,
            error,
            FontId::proportional(14.0),
            Color32::RED,
        );
    }
}
