//! Augmented views of a training image: the teacher sees each once, and its outputs are
//! cached.

use image::RgbImage;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::preprocess::resize_bilinear;

/// One augmented view: random scale and placement on the square canvas, horizontal flip,
/// brightness/contrast/saturation jitter. Planar RGB in 0..1.
pub(super) fn augment(image: &RgbImage, imgsz: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let (w, h) = (image.width() as f64, image.height() as f64);
    let scale = rng.random_range(0.5..=1.0) * imgsz as f64 / w.max(h);
    let (rw, rh) = (
        ((w * scale).round() as usize).clamp(1, imgsz),
        ((h * scale).round() as usize).clamp(1, imgsz),
    );
    let resized = resize_bilinear(image, rw, rh);
    let (left, top) = (
        rng.random_range(0..=imgsz - rw),
        rng.random_range(0..=imgsz - rh),
    );
    let flip = rng.random_bool(0.5);
    let (brightness, contrast, saturation) = (
        rng.random_range(0.75..1.25f32),
        rng.random_range(0.75..1.25f32),
        rng.random_range(0.6..1.4f32),
    );
    let plane = imgsz * imgsz;
    let mut out = vec![114.0 / 255.0; 3 * plane];
    for y in 0..rh {
        for x in 0..rw {
            let src = if flip { rw - 1 - x } else { x };
            let px = &resized[(y * rw + src) * 3..][..3];
            let rgb = [px[0], px[1], px[2]].map(|v| f32::from(v) / 255.0);
            let grey = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
            for c in 0..3 {
                let saturated = grey + (rgb[c] - grey) * saturation;
                let value = ((saturated - 0.5) * contrast + 0.5) * brightness;
                out[c * plane + (y + top) * imgsz + x + left] = value.clamp(0.0, 1.0);
            }
        }
    }
    out
}
