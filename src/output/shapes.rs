//! What task models add to a box, drawn as Ultralytics draws it: a mask as a translucent
//! fill in the class colour with its outline, a COCO pose as its skeleton in Ultralytics'
//! limb colours (keypoints under 0.5 visibility left out), an oriented box as its polygon.

use image::{Rgb, RgbImage};

use crate::inference::masks::InstanceMask;
use crate::inference::postprocess::Shape;
use crate::inference::preprocess::Letterbox;

/// Ultralytics' pose palette (RGB).
const POSE_PALETTE: [[u8; 3]; 20] = [
    [255, 128, 0],
    [255, 153, 51],
    [255, 178, 102],
    [230, 230, 0],
    [255, 153, 255],
    [153, 204, 255],
    [255, 102, 255],
    [255, 51, 255],
    [102, 178, 255],
    [51, 153, 255],
    [255, 153, 153],
    [255, 102, 102],
    [255, 51, 51],
    [153, 255, 153],
    [102, 255, 102],
    [51, 255, 51],
    [0, 255, 0],
    [0, 0, 255],
    [255, 0, 0],
    [255, 255, 255],
];

/// COCO's 19 limbs (keypoint indices from 0) and their palette entries.
const SKELETON: [([usize; 2], usize); 19] = [
    ([15, 13], 9),
    ([13, 11], 9),
    ([16, 14], 9),
    ([14, 12], 9),
    ([11, 12], 7),
    ([5, 11], 7),
    ([6, 12], 7),
    ([5, 6], 0),
    ([5, 7], 0),
    ([6, 8], 0),
    ([7, 9], 0),
    ([8, 10], 0),
    ([1, 2], 16),
    ([0, 1], 16),
    ([0, 2], 16),
    ([1, 3], 16),
    ([2, 4], 16),
    ([3, 5], 16),
    ([4, 6], 16),
];

/// The palette entry of each of COCO's 17 keypoints.
const KEYPOINT_COLOURS: [usize; 17] = [16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9];

/// Keypoints less visible than this are not drawn (Ultralytics' `kpt_line` threshold).
pub const VISIBLE: f32 = 0.5;

/// Draws the segment from `a` to `b` in a colour, as wide as the caller's lines.
pub type LinePainter<'a> = dyn FnMut(&mut RgbImage, [f32; 2], [f32; 2], [u8; 3]) + 'a;

/// Where a picture shows its source image: image point `p` lands at `(p − origin)·scale`
/// (a crop, resized), so one drawing serves the whole frame and the detail view's tiles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub origin: [f32; 2],
    pub scale: f32,
}

impl View {
    /// The image itself, pixel for pixel.
    pub const WHOLE: View = View {
        origin: [0.0, 0.0],
        scale: 1.0,
    };

    /// Where image point (`x`, `y`) lands in the picture.
    pub fn to_picture(self, [x, y]: [f32; 2]) -> [f32; 2] {
        [
            (x - self.origin[0]) * self.scale,
            (y - self.origin[1]) * self.scale,
        ]
    }

    fn to_image(self, [x, y]: [f32; 2]) -> [f32; 2] {
        [
            x / self.scale + self.origin[0],
            y / self.scale + self.origin[1],
        ]
    }
}

/// Draw `shape` (of a detection of colour `colour`) onto `picture`, which shows its image
/// through `view`; its lines through `line`; `radius` is a keypoint's.
pub fn draw_shape(
    picture: &mut RgbImage,
    shape: &Shape,
    view: View,
    colour: [u8; 3],
    radius: i64,
    line: &mut LinePainter,
) {
    let mut segment = |picture: &mut RgbImage, a, b, colour| {
        line(picture, view.to_picture(a), view.to_picture(b), colour);
    };
    match shape {
        Shape::Box => {}
        Shape::Mask {
            mask,
            outlines,
            letterbox,
        } => {
            blend_mask(picture, mask, letterbox, view, colour);
            for outline in outlines.iter() {
                for i in 0..outline.len() {
                    segment(
                        picture,
                        outline[i],
                        outline[(i + 1) % outline.len()],
                        colour,
                    );
                }
            }
        }
        Shape::Keypoints(points) => {
            for (a, b, limb) in limbs(points) {
                segment(picture, a, b, limb);
            }
            for (point, dot) in dots(points, colour) {
                let [x, y] = view.to_picture(point);
                disc(picture, x, y, radius, dot);
            }
        }
        Shape::Oriented(_) => {
            if let Some(corners) = shape.corners() {
                for i in 0..4 {
                    segment(picture, corners[i], corners[(i + 1) % 4], colour);
                }
            }
        }
    }
}

/// A COCO pose's limbs whose two keypoints are both visible, in Ultralytics' colours (none
/// for other keypoint layouts).
pub fn limbs(points: &[[f32; 3]]) -> Vec<([f32; 2], [f32; 2], [u8; 3])> {
    if points.len() != KEYPOINT_COLOURS.len() {
        return Vec::new();
    }
    SKELETON
        .iter()
        .filter(|([a, b], _)| points[*a][2] >= VISIBLE && points[*b][2] >= VISIBLE)
        .map(|&([a, b], limb)| {
            let (p, q) = (points[a], points[b]);
            ([p[0], p[1]], [q[0], q[1]], POSE_PALETTE[limb])
        })
        .collect()
}

/// The visible keypoints and their colours: COCO's own, else the detection's `colour`.
pub fn dots(points: &[[f32; 3]], colour: [u8; 3]) -> Vec<([f32; 2], [u8; 3])> {
    let coco = points.len() == KEYPOINT_COLOURS.len();
    points
        .iter()
        .enumerate()
        .filter(|(_, p)| p[2] >= VISIBLE)
        .map(|(k, p)| {
            let dot = if coco {
                POSE_PALETTE[KEYPOINT_COLOURS[k]]
            } else {
                colour
            };
            ([p[0], p[1]], dot)
        })
        .collect()
}

/// Each pixel (`x`, `y`) of a `width × height` picture (showing its image through `view`)
/// that `mask` covers, the pixels' centres looked up on the model's canvas through the
/// letterbox.
fn mask_pixels(
    mask: &InstanceMask,
    letterbox: &Letterbox,
    view: View,
    [width, height]: [u32; 2],
    mut covered: impl FnMut(u32, u32),
) {
    let (scale_x, scale_y) = (
        letterbox.resized_width as f32 / letterbox.source_width as f32,
        letterbox.resized_height as f32 / letterbox.source_height as f32,
    );
    let pad = [letterbox.pad_left as f32, letterbox.pad_top as f32];
    let to_canvas = |[x, y]: [f32; 2]| [x * scale_x + pad[0], y * scale_y + pad[1]];
    let to_image = |[x, y]: [f32; 2]| [(x - pad[0]) / scale_x, (y - pad[1]) / scale_y];
    let first = view.to_picture(to_image([mask.left as f32, mask.top as f32]));
    let last = view.to_picture(to_image([
        (mask.left + mask.width) as f32,
        (mask.top + mask.height) as f32,
    ]));
    let x0 = first[0].max(0.0).floor() as u32;
    let y0 = first[1].max(0.0).floor() as u32;
    let x1 = (last[0].max(0.0).ceil() as u32).min(width);
    let y1 = (last[1].max(0.0).ceil() as u32).min(height);
    // The canvas column of each picture column, worked out once rather than per row.
    let columns: Vec<f32> = (x0..x1)
        .map(|x| to_canvas(view.to_image([x as f32 + 0.5, 0.0]))[0])
        .collect();
    for y in y0..y1 {
        let cy = to_canvas(view.to_image([0.0, y as f32 + 0.5]))[1];
        for (x, &cx) in (x0..x1).zip(&columns) {
            if cx >= 0.0 && cy >= 0.0 && mask.contains(cx as usize, cy as usize) {
                covered(x, y);
            }
        }
    }
}

/// Half the class colour over the mask's pixels.
fn blend_mask(
    picture: &mut RgbImage,
    mask: &InstanceMask,
    letterbox: &Letterbox,
    view: View,
    colour: [u8; 3],
) {
    let size = [picture.width(), picture.height()];
    mask_pixels(mask, letterbox, view, size, |x, y| {
        let Rgb(p) = picture.get_pixel_mut(x, y);
        for (c, &k) in p.iter_mut().zip(&colour) {
            *c = ((u16::from(*c) + u16::from(k)) / 2) as u8;
        }
    });
}

/// The masks of `detections` as one RGBA layer of a `width × height` image (each in its
/// colour at half opacity), for a view that draws the picture and the masks apart; none
/// when no detection has a mask.
pub fn mask_layer<'a>(
    width: u32,
    height: u32,
    detections: impl IntoIterator<Item = (&'a Shape, [u8; 3])>,
) -> Option<Vec<u8>> {
    let mut layer: Option<Vec<u8>> = None;
    for (shape, colour) in detections {
        if let Shape::Mask {
            mask, letterbox, ..
        } = shape
        {
            let pixels = layer.get_or_insert_with(|| vec![0; (width * height * 4) as usize]);
            mask_pixels(mask, letterbox, View::WHOLE, [width, height], |x, y| {
                let at = ((y * width + x) * 4) as usize;
                pixels[at..at + 4].copy_from_slice(&[colour[0], colour[1], colour[2], 128]);
            });
        }
    }
    layer
}

/// A filled disc of `radius` at (`x`, `y`).
fn disc(image: &mut RgbImage, x: f32, y: f32, radius: i64, colour: [u8; 3]) {
    let (cx, cy) = (x.round() as i64, y.round() as i64);
    for dy in -radius..=radius {
        for dx in -radius..=radius {
            let (px, py) = (cx + dx, cy + dy);
            let inside = dx * dx + dy * dy <= radius * radius;
            if inside
                && px >= 0
                && py >= 0
                && px < i64::from(image.width())
                && py < i64::from(image.height())
            {
                image.put_pixel(px as u32, py as u32, Rgb(colour));
            }
        }
    }
}
