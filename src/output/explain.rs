//! "Why this box?": for one detection, where in the model it came from (pyramid level,
//! anchor, its three best class scores), what FocalModulation's maps show over it, and how
//! much of the modulator's energy falls inside it against its share of the frame.

use image::{Rgb, RgbImage, imageops};
use serde::Serialize;

use super::annotate::{class_colour, draw_label, draw_line, draw_rectangle};
use super::attention_maps::{Colormap, Heatmap, blend, colourise_region};
use super::shape_facts::ShapeFacts;
use super::shapes::{View, draw_shape};
use crate::inference::postprocess::{AnchorPlace, Detection, class_name};
use crate::inference::preprocess::Letterbox;

/// Margin around the box in the detail view's crop, as a share of the box's size per side.
const CROP_MARGIN: f32 = 0.25;
/// How strongly a map covers the crop in the detail view's tiles.
const MAP_OPACITY: f32 = 0.6;

/// One class's probability at the detection's anchor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    pub class: usize,
    pub name: String,
    pub score: f32,
}

/// The share of the modulator's energy (its squared L2 norm over channels, summed over the
/// picture) that falls inside a box, and the share of the picture the box covers. A box
/// that holds more energy than area is where layer 9's context concentrates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EnergyShare {
    pub inside: f64,
    pub area: f64,
}

impl EnergyShare {
    /// Energy share over area share: above 1, the modulator concentrates on the box.
    pub fn concentration(&self) -> f64 {
        if self.area > 0.0 {
            self.inside / self.area
        } else {
            0.0
        }
    }
}

/// A map's mean over the box, on the panel's scale (0 at the map's frame minimum, 1 at its
/// maximum).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapInside {
    pub map: String,
    pub mean: f32,
}

/// Everything the detail view and `detect --explain` say about one box.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub xyxy: [f32; 4],
    pub conf: f32,
    pub class: usize,
    pub name: String,
    pub top_classes: Vec<ClassScore>,
    /// `P3`, `P4` or `P5`.
    pub level: Option<String>,
    pub stride: Option<usize>,
    pub anchor: usize,
    /// The anchor's cell on its level's grid, `[column, row]`.
    pub cell: Option<[usize; 2]>,
    /// None for a model without FocalModulation.
    pub modulator_energy: Option<EnergyShare>,
    pub maps_inside: Vec<MapInside>,
    /// A segmentation, pose or OBB model's mask, keypoints or oriented box.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<ShapeFacts>,
}

impl Explanation {
    pub fn new(
        detection: &Detection,
        maps: &[Heatmap],
        letterbox: &Letterbox,
        names: &[String],
    ) -> Self {
        let place = AnchorPlace::of(
            detection.anchor,
            letterbox.canvas_width,
            letterbox.canvas_height,
        );
        Self {
            xyxy: detection.xyxy,
            conf: detection.conf,
            class: detection.class,
            name: class_name(names, detection.class),
            top_classes: detection
                .top_classes
                .iter()
                .map(|&(class, score)| ClassScore {
                    class,
                    name: class_name(names, class),
                    score,
                })
                .collect(),
            level: place.map(|p| format!("P{}", p.level)),
            stride: place.map(|p| p.stride),
            anchor: detection.anchor,
            cell: place.map(|p| [p.column, p.row]),
            modulator_energy: maps
                .iter()
                .find(|map| map.key() == "modulator")
                .map(|modulator| energy_share(modulator, letterbox, detection.xyxy)),
            maps_inside: maps
                .iter()
                .map(|map| MapInside {
                    map: map.key(),
                    mean: mean_inside(map, letterbox, detection.xyxy),
                })
                .collect(),
            shape: ShapeFacts::of(&detection.shape),
        }
    }
}

/// For each cell of `map`'s grid, the area (canvas pixels²) it shares with the picture
/// and with `xyxy` (source pixels) inside the picture. Layer 9's cells tile the letterbox
/// canvas; padding is not picture.
fn cell_overlaps(map: &Heatmap, letterbox: &Letterbox, xyxy: [f32; 4]) -> Vec<(f64, f64)> {
    let (gain, pad_x, pad_y) = letterbox.box_transform();
    let (gain, pad_x, pad_y) = (f64::from(gain), f64::from(pad_x), f64::from(pad_y));
    let picture = [
        pad_x,
        pad_y,
        pad_x + f64::from(letterbox.source_width) * gain,
        pad_y + f64::from(letterbox.source_height) * gain,
    ];
    let boxed = [
        f64::from(xyxy[0]) * gain + pad_x,
        f64::from(xyxy[1]) * gain + pad_y,
        f64::from(xyxy[2]) * gain + pad_x,
        f64::from(xyxy[3]) * gain + pad_y,
    ];
    let boxed = intersection(boxed, picture);
    let cell_w = letterbox.canvas_width as f64 / map.width as f64;
    let cell_h = letterbox.canvas_height as f64 / map.height as f64;
    (0..map.height)
        .flat_map(|row| (0..map.width).map(move |column| (column, row)))
        .map(|(column, row)| {
            let cell = [
                column as f64 * cell_w,
                row as f64 * cell_h,
                (column + 1) as f64 * cell_w,
                (row + 1) as f64 * cell_h,
            ];
            (
                area(intersection(cell, picture)),
                area(intersection(cell, boxed)),
            )
        })
        .collect()
}

fn intersection(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [
        a[0].max(b[0]),
        a[1].max(b[1]),
        a[2].min(b[2]),
        a[3].min(b[3]),
    ]
}

fn area(r: [f64; 4]) -> f64 {
    (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0)
}

/// The modulator's energy inside `xyxy` (source pixels) against the box's share of the
/// picture, with each cell's energy (its value squared: the map is the L2 norm) spread
/// evenly over the cell.
pub fn energy_share(modulator: &Heatmap, letterbox: &Letterbox, xyxy: [f32; 4]) -> EnergyShare {
    let (mut total, mut inside) = (0.0, 0.0);
    for ((in_picture, in_box), value) in cell_overlaps(modulator, letterbox, xyxy)
        .into_iter()
        .zip(&modulator.values)
    {
        let energy = f64::from(*value).powi(2);
        total += energy * in_picture;
        inside += energy * in_box;
    }
    let picture = f64::from(letterbox.source_width) * f64::from(letterbox.source_height);
    let clipped = intersection(
        xyxy.map(f64::from),
        [
            0.0,
            0.0,
            f64::from(letterbox.source_width),
            f64::from(letterbox.source_height),
        ],
    );
    EnergyShare {
        inside: if total > 0.0 { inside / total } else { 0.0 },
        area: area(clipped) / picture,
    }
}

/// `map`'s area-weighted mean over the box, on the panel's 0–1 scale.
fn mean_inside(map: &Heatmap, letterbox: &Letterbox, xyxy: [f32; 4]) -> f32 {
    let span = map.max - map.min;
    let (mut sum, mut weight) = (0.0, 0.0);
    for ((_, in_box), value) in cell_overlaps(map, letterbox, xyxy)
        .into_iter()
        .zip(&map.values)
    {
        let scaled = if span > 0.0 {
            (value - map.min) / span
        } else {
            0.0
        };
        sum += f64::from(scaled) * in_box;
        weight += in_box;
    }
    if weight > 0.0 {
        (sum / weight) as f32
    } else {
        0.0
    }
}

/// The part of the frame the detail view shows: the box and a margin, inside the frame.
pub fn crop_region(xyxy: [f32; 4], width: u32, height: u32) -> [u32; 4] {
    let [x1, y1, x2, y2] = xyxy;
    let (mx, my) = ((x2 - x1) * CROP_MARGIN, (y2 - y1) * CROP_MARGIN);
    let x0 = (x1 - mx).floor().clamp(0.0, width.saturating_sub(1) as f32) as u32;
    let y0 = (y1 - my)
        .floor()
        .clamp(0.0, height.saturating_sub(1) as f32) as u32;
    let x1 = ((x2 + mx).ceil() as u32).clamp(x0 + 1, width.max(x0 + 1));
    let y1 = ((y2 + my).ceil() as u32).clamp(y0 + 1, height.max(y0 + 1));
    [x0, y0, x1, y1]
}

/// The detail view's pictures, each as large as fits in `bound` (width, height): the crop
/// around the box with its mask, skeleton or oriented box, then each map laid over the crop
/// (the panel's colours and ranges), each with the box outlined.
pub fn detail_tiles(
    image: &RgbImage,
    detection: &Detection,
    maps: &[Heatmap],
    letterbox: &Letterbox,
    colormap: Colormap,
    bound: [u32; 2],
) -> Vec<(String, RgbImage)> {
    let xyxy = detection.xyxy;
    let [x0, y0, x1, y1] = crop_region(xyxy, image.width(), image.height());
    let (crop_w, crop_h) = (x1 - x0, y1 - y0);
    let scale = (bound[0] as f32 / crop_w as f32).min(bound[1] as f32 / crop_h as f32);
    let width = ((crop_w as f32 * scale).round() as u32).max(1);
    let height = ((crop_h as f32 * scale).round() as u32).max(1);
    let region_view = imageops::crop_imm(image, x0, y0, crop_w, crop_h);
    // A large box shrinks by area averaging (a filtered resize of a 1080p crop costs as
    // much as the pictures); a small one grows smoothly.
    let crop = if crop_h > height {
        imageops::thumbnail(&*region_view, width, height)
    } else {
        imageops::resize(&*region_view, width, height, imageops::FilterType::Triangle)
    };
    let view = View {
        origin: [x0 as f32, y0 as f32],
        scale,
    };
    let outline = |mut tile: RgbImage| {
        let [left, top] = view.to_picture([xyxy[0], xyxy[1]]);
        let [right, bottom] = view.to_picture([xyxy[2], xyxy[3]]);
        draw_rectangle(&mut tile, [left, top, right, bottom], [255, 255, 255], 2);
        tile
    };
    let region = [x0 as f32, y0 as f32, x1 as f32, y1 as f32];
    let mut framed = crop.clone();
    draw_shape(
        &mut framed,
        &detection.shape,
        view,
        class_colour(detection.class),
        2,
        &mut |tile, a, b, colour| draw_line(tile, a, b, 2, colour),
    );
    let mut tiles = vec![("frame".to_string(), outline(framed))];
    for map in maps {
        let colours = colourise_region(map, letterbox, colormap, region, width, height);
        let mut tile = crop.clone();
        for (pixel, colour) in tile.pixels_mut().zip(colours.pixels()) {
            *pixel = Rgb(std::array::from_fn(|c| {
                blend(pixel[c], colour[c], MAP_OPACITY)
            }));
        }
        tiles.push((map.label.clone(), outline(tile)));
    }
    tiles
}

/// Tiles side by side with a few pixels between them, for one PNG per box.
pub fn strip(tiles: &[(String, RgbImage)]) -> RgbImage {
    const GAP: u32 = 4;
    let height = tiles.iter().map(|(_, t)| t.height()).max().unwrap_or(1);
    let width = tiles
        .iter()
        .map(|(_, t)| t.width() + GAP)
        .sum::<u32>()
        .max(1 + GAP)
        - GAP;
    let mut out = RgbImage::from_pixel(width, height, Rgb([32, 32, 32]));
    let mut x = 0;
    for (label, tile) in tiles {
        imageops::replace(&mut out, tile, i64::from(x), 0);
        draw_label(&mut out, label, i64::from(x), 0, [32, 32, 32]);
        x += tile.width() + GAP;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::preprocess::Canvas;

    fn map(label: &str, width: usize, height: usize, values: Vec<f32>) -> Heatmap {
        let min = values.iter().copied().fold(f32::INFINITY, f32::min);
        let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        Heatmap {
            label: label.into(),
            width,
            height,
            values,
            min,
            max,
        }
    }

    #[test]
    fn energy_share_matches_a_hand_computation() {
        // A 128×32 frame letterboxed at 64: scaled by 0.5 to 64×16 on a 64×32 canvas, 8
        // rows of padding above and below. A 4×2 grid of 16×16 cells: each cell holds 16×8
        // pixels of picture. Norms [1 2 0 0 / 0 0 0 3] are energies [1 4 0 0 / 0 0 0 9],
        // 14 × 128 = 1792 over the picture.
        let letterbox = Letterbox::new(128, 32, 64, Canvas::Minimal).unwrap();
        let modulator = map(
            "modulator",
            4,
            2,
            vec![1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0],
        );
        // The left half of the frame covers the first two columns: (1 + 4) × 128 = 640.
        let left = energy_share(&modulator, &letterbox, [0.0, 0.0, 64.0, 32.0]);
        assert!((left.inside - 640.0 / 1792.0).abs() < 1e-9, "{left:?}");
        assert!((left.area - 0.5).abs() < 1e-9);
        // The bottom-right 32×16 of the frame is the picture part of cell (3, 1): 9 × 128.
        let corner = energy_share(&modulator, &letterbox, [96.0, 16.0, 128.0, 32.0]);
        assert!((corner.inside - 1152.0 / 1792.0).abs() < 1e-9, "{corner:?}");
        assert!((corner.area - 0.125).abs() < 1e-9);
        assert!((corner.concentration() - 1152.0 / 1792.0 / 0.125).abs() < 1e-9);
        // Half of cell (1, 0)'s picture columns (x 16..24 on the canvas): 4 × 64 = 256.
        let sliver = energy_share(&modulator, &letterbox, [32.0, 0.0, 48.0, 16.0]);
        assert!((sliver.inside - 256.0 / 1792.0).abs() < 1e-9, "{sliver:?}");
    }

    #[test]
    fn an_explanation_names_the_level_the_cell_and_the_maps_over_the_box() {
        let letterbox = Letterbox::new(128, 32, 64, Canvas::Minimal).unwrap();
        let gate = map(
            "gate level 0",
            4,
            2,
            vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        );
        let detection = Detection {
            xyxy: [96.0, 16.0, 128.0, 32.0],
            conf: 0.8,
            class: 1,
            // 64×32 input: P3 has 8×4 = 32 anchors, P4 4×2 = 8; anchor 39 is P4's last cell.
            anchor: 39,
            top_classes: vec![(1, 0.8), (0, 0.1)],
            ..Detection::default()
        };
        let names = vec!["cat".to_string(), "dog".to_string()];
        let explanation = Explanation::new(&detection, &[gate], &letterbox, &names);
        assert_eq!(explanation.name, "dog");
        assert_eq!(explanation.level.as_deref(), Some("P4"));
        assert_eq!(
            (explanation.stride, explanation.cell),
            (Some(16), Some([3, 1]))
        );
        assert_eq!(explanation.top_classes[1].name, "cat");
        assert_eq!(explanation.modulator_energy, None);
        assert_eq!(
            explanation.maps_inside,
            [MapInside {
                map: "gate-level-0".into(),
                mean: 1.0
            }]
        );
    }

    #[test]
    fn the_crop_keeps_a_margin_inside_the_frame() {
        assert_eq!(
            crop_region([40.0, 40.0, 80.0, 60.0], 100, 100),
            [30, 35, 90, 65]
        );
        assert_eq!(
            crop_region([0.0, 0.0, 100.0, 100.0], 100, 100),
            [0, 0, 100, 100]
        );
    }
}
