//! Drawing detections onto an image: a box and a "name conf" label per detection, in a
//! stable colour per class (Ultralytics' palette); tracked objects add their ID and trail.

use std::sync::LazyLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::{Rgb, RgbImage};

use crate::count::{Region, RegionCount};
use crate::inference::postprocess::{Detection, class_name};
use crate::output::shapes::{View, draw_shape};
use crate::track::TrackedObject;

/// The bundled font, parsed once rather than per label.
static FONT: LazyLock<FontRef<'static>> = LazyLock::new(|| {
    FontRef::try_from_slice(include_bytes!("../../assets/fonts/DejaVuSans.ttf"))
        .expect("the bundled font parses")
});

/// Ultralytics' 20-colour palette, so classes keep the colours users know.
const PALETTE: [[u8; 3]; 20] = [
    [0x04, 0x2A, 0xFF],
    [0x0B, 0xDB, 0xEB],
    [0xF3, 0xF3, 0xF3],
    [0x00, 0xDF, 0xB7],
    [0x11, 0x1F, 0x68],
    [0xFF, 0x6F, 0xDD],
    [0xFF, 0x44, 0x4F],
    [0xCC, 0xED, 0x00],
    [0x00, 0xF3, 0x44],
    [0xBD, 0x00, 0xFF],
    [0x00, 0xB4, 0xFF],
    [0xDD, 0x00, 0xBA],
    [0x00, 0xFF, 0xFF],
    [0x26, 0xC0, 0x00],
    [0x01, 0xFF, 0xB3],
    [0x7D, 0x24, 0xFF],
    [0x7B, 0x00, 0x68],
    [0xFF, 0x1B, 0x6C],
    [0xFC, 0x6D, 0x2F],
    [0xA2, 0xFF, 0x0B],
];

/// The colour of class `class`.
pub fn class_colour(class: usize) -> [u8; 3] {
    PALETTE[class % PALETTE.len()]
}

fn fill(image: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, colour: [u8; 3]) {
    let (w, h) = (i64::from(image.width()), i64::from(image.height()));
    for y in y0.max(0)..y1.min(h) {
        for x in x0.max(0)..x1.min(w) {
            image.put_pixel(x as u32, y as u32, Rgb(colour));
        }
    }
}

/// Text size and box line width that suit an image of this size.
fn line_thickness(image: &RgbImage) -> i64 {
    ((image.width() + image.height()) as f32 * 0.002)
        .round()
        .max(2.0) as i64
}

/// "name conf", the label of a detection; `names[class]` names it.
pub fn detection_label(detection: &Detection, names: &[String]) -> String {
    format!(
        "{} {:.2}",
        class_name(names, detection.class),
        detection.conf
    )
}

/// "id:N name conf", the label of a tracked object (as Ultralytics writes it).
pub fn track_label(object: &TrackedObject, names: &[String]) -> String {
    label_with_id(Some(object.id), &object.detection, names)
}

/// "id:N name conf" with a track ID, else "name conf".
pub fn label_with_id(id: Option<u64>, detection: &Detection, names: &[String]) -> String {
    match id {
        Some(id) => format!("id:{id} {}", detection_label(detection, names)),
        None => detection_label(detection, names),
    }
}

/// A box in its class colour with `label` on it (none when `None`), and what a task model
/// adds to it (its mask, skeleton, or the oriented box in place of the box).
fn draw_box(image: &mut RgbImage, detection: &Detection, label: Option<&str>) {
    let colour = class_colour(detection.class);
    let thickness = line_thickness(image);
    draw_shape(
        image,
        &detection.shape,
        View::WHOLE,
        colour,
        thickness + 1,
        &mut |image, a, b, colour| draw_line(image, a, b, thickness, colour),
    );
    let [x, y] = match detection.shape.corners() {
        Some(corners) => corners[0],
        None => {
            draw_rectangle(image, detection.xyxy, colour, thickness);
            [detection.xyxy[0], detection.xyxy[1]]
        }
    };
    if let Some(label) = label {
        draw_label(image, label, x.round() as i64, y.round() as i64, colour);
    }
}

/// The outline of `xyxy`, `thickness` pixels wide, inside it.
pub fn draw_rectangle(image: &mut RgbImage, xyxy: [f32; 4], colour: [u8; 3], thickness: i64) {
    let [x1, y1, x2, y2] = xyxy.map(|v| v.round() as i64);
    fill(image, x1, y1, x2, y1 + thickness, colour);
    fill(image, x1, y2 - thickness, x2, y2, colour);
    fill(image, x1, y1, x1 + thickness, y2, colour);
    fill(image, x2 - thickness, y1, x2, y2, colour);
}

/// Draw every detection; `names[class]` labels it.
pub fn draw_detections(image: &mut RgbImage, detections: &[Detection], names: &[String]) {
    for d in detections {
        draw_box(image, d, Some(&detection_label(d, names)));
    }
}

/// Draw every tracked object: the trail of its centre, then its box labelled with its ID.
pub fn draw_tracks(image: &mut RgbImage, objects: &[TrackedObject], names: &[String]) {
    draw_trails(image, objects);
    for object in objects {
        draw_box(image, &object.detection, Some(&track_label(object, names)));
    }
}

/// The trail of each tracked object's centre, in its class colour.
pub fn draw_trails(image: &mut RgbImage, objects: &[TrackedObject]) {
    let thickness = line_thickness(image);
    for object in objects {
        let colour = class_colour(object.detection.class);
        for pair in object.trail.windows(2) {
            draw_line(image, pair[0], pair[1], thickness, colour);
        }
    }
}

/// Each detection's box (and mask, skeleton or oriented box) in its class colour, without a
/// label (the app's labels off).
pub fn draw_unlabelled(image: &mut RgbImage, detections: &[Detection]) {
    for detection in detections {
        draw_box(image, detection, None);
    }
}

/// The colour of counting lines and zones (Ultralytics draws its regions in magenta too).
pub const REGION_COLOUR: [u8; 3] = [255, 0, 255];

/// "line 1  IN 3  OUT 6", a region's label.
pub fn region_label(count: &RegionCount) -> String {
    format!(
        "{}  IN {}  OUT {}",
        count.region, count.total.inward, count.total.outward
    )
}

/// Every counting region, twice the box line width, labelled with its counts at its first
/// point.
pub fn draw_regions<'a>(
    image: &mut RgbImage,
    regions: impl IntoIterator<Item = &'a Region>,
    counts: &[RegionCount],
) {
    let thickness = line_thickness(image) * 2;
    for region in regions {
        let points = &region.points;
        let closing = (!region.is_line()).then(|| [points[points.len() - 1], points[0]]);
        for pair in points.windows(2).chain(closing.as_ref().map(|c| &c[..])) {
            draw_line(image, pair[0], pair[1], thickness, REGION_COLOUR);
        }
        if let Some(count) = counts.iter().find(|c| c.region == region.name) {
            let [x, y] = points[0].map(|v| v.round() as i64);
            draw_label(image, &region_label(count), x, y, REGION_COLOUR);
        }
    }
}

/// A `thickness`-wide line from `a` to `b`, as squares stamped every half pixel.
pub fn draw_line(image: &mut RgbImage, a: [f32; 2], b: [f32; 2], thickness: i64, colour: [u8; 3]) {
    let length = (b[0] - a[0]).hypot(b[1] - a[1]);
    let steps = (length * 2.0).ceil().max(1.0) as usize;
    let half = thickness / 2;
    for s in 0..=steps {
        let t = s as f32 / steps as f32;
        let x = (a[0] + (b[0] - a[0]) * t).round() as i64;
        let y = (a[1] + (b[1] - a[1]) * t).round() as i64;
        fill(
            image,
            x - half,
            y - half,
            x - half + thickness,
            y - half + thickness,
            colour,
        );
    }
}

/// A filled label in `colour` whose bottom-left corner is at (`x`, `y`), or whose top-left
/// is there when the label would leave the image at the top.
pub fn draw_label(image: &mut RgbImage, label: &str, x: i64, y: i64, colour: [u8; 3]) {
    let font = &*FONT;
    let scale = PxScale::from((line_thickness(image) as f32 * 7.0).max(12.0));
    let scaled = font.as_scaled(scale);
    let width: f32 = label
        .chars()
        .map(|c| scaled.h_advance(scaled.glyph_id(c)))
        .sum();
    let height = scaled.height().ceil() as i64;
    let top = if y - height >= 0 { y - height } else { y };
    fill(
        image,
        x,
        top,
        x + width.ceil() as i64 + 4,
        top + height,
        colour,
    );
    let text: [u8; 3] = if colour.iter().map(|&c| u32::from(c)).sum::<u32>() > 382 {
        [0, 0, 0]
    } else {
        [255, 255, 255]
    };
    let mut caret = x as f32 + 2.0;
    for c in label.chars() {
        let glyph = scaled.scaled_glyph(c);
        let advance = scaled.h_advance(glyph.id);
        let glyph = ab_glyph::Glyph {
            position: point(caret, top as f32 + scaled.ascent()),
            ..glyph
        };
        if let Some(outline) = font.outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                let (px, py) = (
                    bounds.min.x as i64 + i64::from(gx),
                    bounds.min.y as i64 + i64::from(gy),
                );
                if px >= 0
                    && py >= 0
                    && px < i64::from(image.width())
                    && py < i64::from(image.height())
                {
                    let pixel = image.get_pixel_mut(px as u32, py as u32);
                    for ch in 0..3 {
                        let blended = f32::from(pixel[ch]) * (1.0 - coverage)
                            + f32::from(text[ch]) * coverage;
                        pixel[ch] = blended.round() as u8;
                    }
                }
            });
        }
        caret += advance;
    }
}

/// Same-sized images side by side, two to a row, each named in its top-left corner.
pub fn mosaic(tiles: &[(String, RgbImage)]) -> RgbImage {
    let Some((_, first)) = tiles.first() else {
        return RgbImage::new(0, 0);
    };
    if tiles.len() == 1 {
        return first.clone();
    }
    let (w, h) = first.dimensions();
    let columns = 2;
    let rows = tiles.len().div_ceil(columns) as u32;
    let mut out = RgbImage::new(w * columns as u32, h * rows);
    for (i, (name, tile)) in tiles.iter().enumerate() {
        let (x, y) = ((i % columns) as u32 * w, (i / columns) as u32 * h);
        image::imageops::replace(&mut out, tile, i64::from(x), i64::from(y));
        draw_label(&mut out, name, i64::from(x), i64::from(y), [32, 32, 32]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_is_drawn_closed_and_labelled_with_its_counts() {
        let mut image = RgbImage::new(320, 240);
        let zone = Region::zone(
            "zone 1",
            vec![[40.0, 100.0], [280.0, 100.0], [280.0, 200.0], [40.0, 200.0]],
        )
        .unwrap();
        let count = RegionCount {
            region: "zone 1".into(),
            ..RegionCount::default()
        };
        assert_eq!(region_label(&count), "zone 1  IN 0  OUT 0");
        draw_regions(&mut image, std::slice::from_ref(&zone), &[count]);
        let colour = Rgb(REGION_COLOUR);
        // The closing edge (last corner back to the first), another edge, the label.
        assert_eq!(*image.get_pixel(40, 150), colour);
        assert_eq!(*image.get_pixel(160, 200), colour);
        assert_eq!(*image.get_pixel(41, 90), colour);
        assert_eq!(*image.get_pixel(160, 150), Rgb([0, 0, 0]));
    }

    #[test]
    fn a_track_is_drawn_with_its_trail_and_id() {
        let mut image = RgbImage::new(320, 240);
        let object = TrackedObject {
            id: 7,
            detection: Detection {
                xyxy: [200.0, 100.0, 280.0, 220.0],
                conf: 0.8,
                class: 2,
                ..Detection::default()
            },
            trail: vec![[40.0, 200.0], [120.0, 200.0], [240.0, 160.0]],
        };
        assert_eq!(
            track_label(&object, &["a".into(), "b".into(), "car".into()]),
            "id:7 car 0.80"
        );
        draw_tracks(&mut image, std::slice::from_ref(&object), &[]);
        let colour = Rgb(class_colour(2));
        // On the trail's first leg, on its second, and on the box's left edge.
        assert_eq!(*image.get_pixel(80, 200), colour);
        assert_eq!(*image.get_pixel(180, 180), colour);
        assert_eq!(*image.get_pixel(200, 180), colour);
        // Away from all of them the image is untouched.
        assert_eq!(*image.get_pixel(100, 60), Rgb([0, 0, 0]));
    }
}
