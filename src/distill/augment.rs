//! Augmented views of a training image: the teacher sees each once, and its outputs are
//! cached.

use std::ops::Range;

use image::RgbImage;
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use crate::preprocess::resize_bilinear;

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

/// One augmented view of `image`: scaled to between half and `max_scale` of the canvas and
/// placed at random (over 1, a random crop of the enlarged image), or, with
/// probability `mosaic`, a 2×2 mosaic of it and three images drawn from `pool` around a
/// random centre (as Ultralytics' mosaic does, which puts more objects and more contexts in
/// front of the global levels); then a horizontal flip of each tile and
/// brightness/contrast/saturation jitter. Planar RGB in 0..1.
pub(super) fn augment(
    image: &RgbImage,
    pool: &[RgbImage],
    imgsz: usize,
    mosaic: f64,
    max_scale: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let tiles = if mosaic > 0.0 && !pool.is_empty() && rng.random_bool(mosaic) {
        mosaic_tiles(image, pool, imgsz, rng)
    } else {
        vec![placed(image, imgsz, max_scale, rng)]
    };
    let flip = rng.random_bool(0.5);
    let (brightness, contrast, saturation) = (
        rng.random_range(0.75..1.25f32),
        rng.random_range(0.75..1.25f32),
        rng.random_range(0.6..1.4f32),
    );
    let plane = imgsz * imgsz;
    let mut out = vec![114.0 / 255.0; 3 * plane];
    for tile in &tiles {
        for y in visible(tile.top, tile.height, imgsz) {
            let row = (tile.top + y as isize) as usize;
            for x in visible(tile.left, tile.width, imgsz) {
                let column = (tile.left + x as isize) as usize;
                let src = if flip { tile.width - 1 - x } else { x };
                let px = &tile.pixels[(y * tile.width + src) * 3..][..3];
                let rgb = [px[0], px[1], px[2]].map(|v| f32::from(v) / 255.0);
                let grey = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
                for c in 0..3 {
                    let saturated = grey + (rgb[c] - grey) * saturation;
                    let value = ((saturated - 0.5) * contrast + 0.5) * brightness;
                    out[c * plane + row * imgsz + column] = value.clamp(0.0, 1.0);
                }
            }
        }
    }
    out
}

/// The pixel indices of a tile, along an axis where it starts at `start` and is `length`
/// long, that land on a canvas `imgsz` long.
fn visible(start: isize, length: usize, imgsz: usize) -> Range<usize> {
    let first = start.min(0).unsigned_abs();
    let last = (imgsz as isize - start).clamp(0, length as isize) as usize;
    first..last.max(first)
}

/// The image alone, its longest side scaled to 50% to `max_scale` of the canvas's; along
/// each side, placed wholly on the canvas where it is shorter, covering it where longer.
fn placed(image: &RgbImage, imgsz: usize, max_scale: f64, rng: &mut ChaCha8Rng) -> Tile {
    let fraction = rng.random_range(0.5..=max_scale.max(0.5));
    // Drawn as usize, as before views could exceed the canvas, so a seed gives the same
    // views it always did.
    let mut offset = |length: usize| {
        if length <= imgsz {
            rng.random_range(0..=imgsz - length) as isize
        } else {
            -(rng.random_range(0..=length - imgsz) as isize)
        }
    };
    Tile::new(image, fraction, imgsz, |width, height| {
        (offset(width), offset(height))
    })
}

/// Four images, each scaled to 40–80% of the canvas, meeting corner to corner at a random
/// centre in the canvas's middle half; each is cut off by the canvas edges.
fn mosaic_tiles(
    image: &RgbImage,
    pool: &[RgbImage],
    imgsz: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<Tile> {
    let centre = [0, 1].map(|_| rng.random_range(imgsz / 4..=imgsz * 3 / 4) as isize);
    let mut images = vec![image];
    images.extend(pool.choose_multiple(rng, 3));
    images
        .into_iter()
        .enumerate()
        .map(|(quadrant, image)| {
            let fraction = rng.random_range(0.4..=0.8);
            // Quadrants 0..4: top-left, top-right, bottom-left, bottom-right of the centre.
            Tile::new(image, fraction, imgsz, |width, height| {
                let left = if quadrant % 2 == 0 {
                    centre[0] - width as isize
                } else {
                    centre[0]
                };
                let top = if quadrant < 2 {
                    centre[1] - height as isize
                } else {
                    centre[1]
                };
                (left, top)
            })
        })
        .collect()
}

/// `image` shrunk so its longest side is at most `imgsz`: what a mosaic pool keeps of
/// each training image, since a tile is never larger.
pub(super) fn fit(image: RgbImage, imgsz: usize) -> RgbImage {
    let longest = image.width().max(image.height()) as usize;
    if longest <= imgsz {
        return image;
    }
    let tile = Tile::new(&image, 1.0, imgsz, |_, _| (0, 0));
    RgbImage::from_raw(tile.width as u32, tile.height as u32, tile.pixels)
        .expect("sized by Tile::new")
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    /// Which channels of a pixel stand above the others: tells solid tiles apart through
    /// the colour jitter, which keeps the channels' order.
    fn signature(view: &[f32], plane: usize, at: usize) -> [bool; 3] {
        let rgb = [view[at], view[plane + at], view[2 * plane + at]];
        let least = rgb.iter().copied().fold(f32::INFINITY, f32::min);
        rgb.map(|v| v > least + 1e-3)
    }

    #[test]
    fn a_mosaic_shows_all_four_images_and_a_plain_view_only_its_own() {
        let solid = |rgb: [u8; 3]| RgbImage::from_pixel(50, 40, image::Rgb(rgb));
        let image = solid([200, 0, 0]);
        let pool = [[0, 200, 0], [0, 0, 200], [200, 200, 0]].map(solid);
        let imgsz = 64;
        let plane = imgsz * imgsz;
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for (mosaic, expected) in [(1.0, 5), (0.0, 2)] {
            for _ in 0..20 {
                let view = augment(&image, &pool, imgsz, mosaic, 1.0, &mut rng);
                let mut seen: Vec<[bool; 3]> =
                    (0..plane).map(|at| signature(&view, plane, at)).collect();
                seen.sort();
                seen.dedup();
                // The grey padding shows as no channel above the others.
                assert!(seen.contains(&[true, false, false]), "{seen:?}");
                assert_eq!(seen.len(), expected, "mosaic {mosaic}: {seen:?}");
            }
        }
    }

    #[test]
    fn views_scaled_past_the_canvas_are_crops_that_cover_it() {
        // A 5:4 image: at most 100% of the canvas it always leaves grey bars; scaled past
        // 125% its short side covers the canvas too.
        let image = RgbImage::from_pixel(50, 40, image::Rgb([200, 0, 0]));
        let imgsz = 64;
        let plane = imgsz * imgsz;
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let padded = |view: &[f32]| (0..plane).any(|at| signature(view, plane, at) == [false; 3]);
        let views = |max_scale: f64, rng: &mut ChaCha8Rng| -> Vec<bool> {
            (0..40)
                .map(|_| padded(&augment(&image, &[], imgsz, 0.0, max_scale, rng)))
                .collect()
        };
        assert!(views(1.0, &mut rng).iter().all(|&p| p));
        let zoomed = views(3.0, &mut rng);
        // Fractions from 0.5 to 3: about 70% of them (1.25 to 3) cover the canvas.
        let covered = zoomed.iter().filter(|&&p| !p).count();
        assert!((15..=38).contains(&covered), "{covered} of 40 covered");
    }

    #[test]
    fn the_mosaic_pool_keeps_images_no_larger_than_the_canvas() {
        let large = fit(RgbImage::new(1000, 500), 640);
        assert_eq!(large.dimensions(), (640, 320));
        let small = fit(RgbImage::new(300, 200), 640);
        assert_eq!(small.dimensions(), (300, 200));
    }
}
