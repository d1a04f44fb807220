//! Augmented views of a training image, drawn afresh every epoch: on the canvases inference
//! uses, at random input sizes and crops, flipped and colour-jittered.

use std::ops::Range;

use image::RgbImage;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::inference::preprocess::{Canvas, Letterbox, STRIDE, resize_bilinear};

/// A resized image and where its top-left corner lands on the square canvas. It may hang
/// over the canvas's edges: only what lies on the canvas is painted.
struct Tile {
    pixels: Vec<u8>,
    width: usize,
    height: usize,
    left: isize,
    top: isize,
}

impl Tile {
    /// `image` resized so its longest side is `fraction` of the canvas side `imgsz` (each
    /// side at least a pixel, and larger than the canvas when `fraction` is over 1), with
    /// its top-left corner where `place` puts a tile of the resized width and height.
    fn new(
        image: &RgbImage,
        fraction: f64,
        imgsz: usize,
        place: impl FnOnce(usize, usize) -> (isize, isize),
    ) -> Self {
        let (w, h) = (f64::from(image.width()), f64::from(image.height()));
        let scale = fraction * imgsz as f64 / w.max(h);
        let (width, height) = (
            ((w * scale).round() as usize).max(1),
            ((h * scale).round() as usize).max(1),
        );
        let (left, top) = place(width, height);
        Self {
            pixels: resize_bilinear(image, width, height),
            width,
            height,
            left,
            top,
        }
    }
}

/// One augmented view: planar RGB in 0..1 on a `width × height` canvas.
pub(super) struct View {
    pub(super) pixels: Vec<f32>,
    pub(super) width: usize,
    pub(super) height: usize,
}

/// How views are drawn.
#[derive(Debug, Clone, Copy)]
pub(super) struct Augmentation {
    pub(super) imgsz: usize,
    pub(super) canvas: Canvas,
    /// The range of the image's longest side, as a share of `imgsz`.
    pub(super) scale: (f64, f64),
}

/// One augmented view of `images[0]`, or a 2×2 mosaic of the four `images` (as Ultralytics'
/// mosaic, which puts more objects and more contexts in front of the global levels); then a
/// horizontal flip of each tile and brightness/contrast/saturation jitter.
///
/// A plain view on the minimal canvas is what inference feeds the model: the image
/// letterboxed at a random input size (its longest side `scale` × `imgsz`, rounded to the
/// stride) with the few pixels of slack placed at random, or, above 1, a random crop of the
/// enlarged image on the canvas `imgsz` gives it. On the square canvas the image lands
/// anywhere on an `imgsz` square, the rest grey.
pub(super) fn augment(images: &[RgbImage], how: Augmentation, rng: &mut ChaCha8Rng) -> View {
    let (tiles, width, height) = match images {
        [image] => placed(image, how, rng),
        _ => mosaic_tiles(images, how, rng),
    };
    let flip = rng.random_bool(0.5);
    let (brightness, contrast, saturation) = (
        rng.random_range(0.75..1.25f32),
        rng.random_range(0.75..1.25f32),
        rng.random_range(0.6..1.4f32),
    );
    let plane = width * height;
    let mut pixels = vec![114.0 / 255.0; 3 * plane];
    for tile in &tiles {
        for y in visible(tile.top, tile.height, height) {
            let row = (tile.top + y as isize) as usize;
            for x in visible(tile.left, tile.width, width) {
                let column = (tile.left + x as isize) as usize;
                let src = if flip { tile.width - 1 - x } else { x };
                let px = &tile.pixels[(y * tile.width + src) * 3..][..3];
                let rgb = [px[0], px[1], px[2]].map(|v| f32::from(v) / 255.0);
                let grey = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
                for c in 0..3 {
                    let saturated = grey + (rgb[c] - grey) * saturation;
                    let value = ((saturated - 0.5) * contrast + 0.5) * brightness;
                    pixels[c * plane + row * width + column] = value.clamp(0.0, 1.0);
                }
            }
        }
    }
    View {
        pixels,
        width,
        height,
    }
}

/// The pixel indices of a tile, along an axis where it starts at `start` and is `length`
/// long, that land on a canvas `side` long.
fn visible(start: isize, length: usize, side: usize) -> Range<usize> {
    let first = start.min(0).unsigned_abs();
    let last = (side as isize - start).clamp(0, length as isize) as usize;
    first..last.max(first)
}

/// The canvas inference would give `image` at input size `imgsz`.
fn minimal_canvas(image: &RgbImage, imgsz: usize) -> (usize, usize) {
    Letterbox::new(image.width(), image.height(), imgsz, Canvas::Minimal)
        .map_or((imgsz, imgsz), |lb| (lb.canvas_width, lb.canvas_height))
}

/// The image alone, scaled and placed as [`augment`] says, with its canvas's size. Along
/// each side it lies wholly on the canvas where it is shorter, covers it where longer.
fn placed(image: &RgbImage, how: Augmentation, rng: &mut ChaCha8Rng) -> (Vec<Tile>, usize, usize) {
    let (low, high) = how.scale;
    let mut fraction = rng.random_range(low..=high.max(low));
    let (width, height) = match how.canvas {
        Canvas::Square => (how.imgsz, how.imgsz),
        Canvas::Minimal if fraction <= 1.0 => {
            // Inference at a smaller input size: the image fills that size exactly.
            let strides = (fraction * how.imgsz as f64 / STRIDE as f64).round() as usize;
            let size = strides.max(2) * STRIDE;
            fraction = size as f64 / how.imgsz as f64;
            minimal_canvas(image, size)
        }
        Canvas::Minimal => minimal_canvas(image, how.imgsz),
    };
    let mut offset = |length: usize, side: usize| {
        if length <= side {
            rng.random_range(0..=side - length) as isize
        } else {
            -(rng.random_range(0..=length - side) as isize)
        }
    };
    let tile = Tile::new(image, fraction, how.imgsz, |w, h| {
        let left = offset(w, width);
        (left, offset(h, height))
    });
    (vec![tile], width, height)
}

/// Four images, each scaled to 40–80% of `imgsz`, meeting corner to corner at a random
/// centre in the canvas's middle half (the first image's canvas); each is cut off by the
/// canvas edges.
fn mosaic_tiles(
    images: &[RgbImage],
    how: Augmentation,
    rng: &mut ChaCha8Rng,
) -> (Vec<Tile>, usize, usize) {
    let (width, height) = match how.canvas {
        Canvas::Square => (how.imgsz, how.imgsz),
        Canvas::Minimal => minimal_canvas(&images[0], how.imgsz),
    };
    let centre = [width, height].map(|side| rng.random_range(side / 4..=side * 3 / 4) as isize);
    let tiles = images
        .iter()
        .enumerate()
        .map(|(quadrant, image)| {
            let fraction = rng.random_range(0.4..=0.8);
            // Quadrants 0..4: top-left, top-right, bottom-left, bottom-right of the centre.
            Tile::new(image, fraction, how.imgsz, |w, h| {
                let left = if quadrant % 2 == 0 {
                    centre[0] - w as isize
                } else {
                    centre[0]
                };
                let top = if quadrant < 2 {
                    centre[1] - h as isize
                } else {
                    centre[1]
                };
                (left, top)
            })
        })
        .collect();
    (tiles, width, height)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    /// Which channels of a pixel stand above the others: tells solid tiles apart through
    /// the colour jitter, which keeps the channels' order.
    fn signature(view: &View, at: usize) -> [bool; 3] {
        let plane = view.width * view.height;
        let p = &view.pixels;
        let rgb = [p[at], p[plane + at], p[2 * plane + at]];
        let least = rgb.iter().copied().fold(f32::INFINITY, f32::min);
        rgb.map(|v| v > least + 1e-3)
    }

    fn solid(rgb: [u8; 3]) -> RgbImage {
        RgbImage::from_pixel(50, 40, image::Rgb(rgb))
    }

    fn padded(view: &View) -> bool {
        (0..view.width * view.height).any(|at| signature(view, at) == [false; 3])
    }

    #[test]
    fn a_mosaic_shows_all_four_images_and_a_plain_view_only_its_own() {
        let images = [[200, 0, 0], [0, 200, 0], [0, 0, 200], [200, 200, 0]].map(solid);
        let how = Augmentation {
            imgsz: 64,
            canvas: Canvas::Square,
            scale: (0.5, 1.0),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for (shown, expected) in [(&images[..], 5), (&images[..1], 2)] {
            for _ in 0..20 {
                let view = augment(shown, how, &mut rng);
                let mut seen: Vec<[bool; 3]> = (0..view.width * view.height)
                    .map(|at| signature(&view, at))
                    .collect();
                seen.sort();
                seen.dedup();
                // The grey padding shows as no channel above the others.
                assert!(seen.contains(&[true, false, false]), "{seen:?}");
                assert_eq!(seen.len(), expected, "{} images: {seen:?}", shown.len());
            }
        }
    }

    #[test]
    fn views_scaled_past_the_canvas_are_crops_that_cover_it() {
        // A 5:4 image: at most 100% of a square canvas it always leaves grey bars; scaled
        // past 125% its short side covers the canvas too.
        let image = [solid([200, 0, 0])];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let views = |scale: (f64, f64), rng: &mut ChaCha8Rng| -> Vec<bool> {
            let how = Augmentation {
                imgsz: 64,
                canvas: Canvas::Square,
                scale,
            };
            (0..40)
                .map(|_| padded(&augment(&image, how, rng)))
                .collect()
        };
        assert!(views((0.5, 1.0), &mut rng).iter().all(|&p| p));
        let zoomed = views((0.5, 3.0), &mut rng);
        // Fractions from 0.5 to 3: about 70% of them (1.25 to 3) cover the canvas.
        let covered = zoomed.iter().filter(|&&p| !p).count();
        assert!((15..=38).contains(&covered), "{covered} of 40 covered");
    }

    #[test]
    fn minimal_canvas_views_are_what_inference_feeds_at_some_input_size() {
        // 640×480 at imgsz 640: inference's canvas is 640×480, with no padding. Views at or
        // below full size are that image letterboxed at a smaller stride-multiple size (no
        // more grey than inference would add); above it, crops of the 640×480 canvas.
        let image = [RgbImage::from_pixel(640, 480, image::Rgb([200, 0, 0]))];
        let how = Augmentation {
            imgsz: 640,
            canvas: Canvas::Minimal,
            scale: (0.5, 1.5),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut sizes = std::collections::BTreeSet::new();
        for _ in 0..30 {
            let view = augment(&image, how, &mut rng);
            assert!(view.width.is_multiple_of(STRIDE) && view.height.is_multiple_of(STRIDE));
            assert!(view.width <= 640 && view.height <= 480);
            let expected = minimal_canvas(&image[0], view.width);
            assert_eq!((view.width, view.height), expected);
            // At most the stride's worth of slack per side, never a grey half.
            let grey_rows = (0..view.height)
                .filter(|&y| signature(&view, y * view.width + view.width / 2) == [false; 3])
                .count();
            assert!(
                grey_rows < STRIDE,
                "{grey_rows} grey rows of {}",
                view.height
            );
            sizes.insert(view.width);
        }
        assert!(sizes.len() > 3 && sizes.contains(&640), "{sizes:?}");
    }
}
