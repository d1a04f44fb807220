//! FocalModulation's attention as pictures: the gate map of each focal level and of the
//! global level, and the modulator's L2 norm over channels, as heatmaps laid over the frame
//! through the letterbox (padding cropped away).

use burn::tensor::Tensor;
use image::{Rgb, RgbImage};

use crate::model::FocalTaps;
use crate::preprocess::Letterbox;

/// A map over layer 9's grid (stride 32 of the letterbox canvas), with its range.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    pub label: String,
    pub width: usize,
    pub height: usize,
    pub values: Vec<f32>,
    pub min: f32,
    pub max: f32,
}

impl Heatmap {
    fn new(label: String, width: usize, height: usize, values: Vec<f32>) -> Self {
        let min = values.iter().copied().fold(f32::INFINITY, f32::min);
        let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        Self {
            label,
            width,
            height,
            values,
            min,
            max,
        }
    }

    /// Bilinear sample at grid coordinates (cell centres at .5), normalised to 0..1.
    fn sample(&self, x: f32, y: f32) -> f32 {
        let fx = (x - 0.5).clamp(0.0, (self.width - 1) as f32);
        let fy = (y - 0.5).clamp(0.0, (self.height - 1) as f32);
        let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
        let at = |x: usize, y: usize| self.values[y * self.width + x];
        let v = (at(x0, y0) * (1.0 - tx) + at(x1, y0) * tx) * (1.0 - ty)
            + (at(x0, y1) * (1.0 - tx) + at(x1, y1) * tx) * ty;
        let span = self.max - self.min;
        if span > 0.0 {
            (v - self.min) / span
        } else {
            0.0
        }
    }
}

/// One heatmap per gate (focal levels, then the global level) and one for the modulator.
pub fn heatmaps(taps: &FocalTaps) -> Vec<Heatmap> {
    let [_, levels, h, w] = taps.gates.dims();
    let gates: Vec<f32> = taps
        .gates
        .clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32 gates");
    let mut maps: Vec<Heatmap> = (0..levels)
        .map(|l| {
            let label = if l + 1 == levels {
                "gate global".to_string()
            } else {
                format!("gate level {l}")
            };
            Heatmap::new(label, w, h, gates[l * h * w..(l + 1) * h * w].to_vec())
        })
        .collect();
    let norm: Tensor<4> = (taps.modulator.clone() * taps.modulator.clone())
        .sum_dim(1)
        .sqrt();
    let norm = norm
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32 modulator");
    maps.push(Heatmap::new("modulator".to_string(), w, h, norm));
    maps
}

/// The turbo colour map (Google's polynomial fit) at `t` in 0..1.
pub fn turbo(t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    let r = 0.1357 + t * (4.5974 - t * (42.3277 - t * (130.5887 - t * (150.5666 - t * 58.1375))));
    let g = 0.0914 + t * (2.1856 + t * (4.8052 - t * (14.0195 - t * (4.2109 + t * 2.7747))));
    let b = 0.1067 + t * (12.5925 - t * (60.1097 - t * (109.0745 - t * (88.5066 - t * 26.8183))));
    [r, g, b].map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8)
}

/// `heatmap` coloured and blended over `image` at `opacity`, aligned through `letterbox`.
pub fn overlay(
    image: &RgbImage,
    heatmap: &Heatmap,
    letterbox: &Letterbox,
    opacity: f32,
) -> RgbImage {
    let (gain, pad_x, pad_y) = letterbox.box_transform();
    // Canvas pixels per grid cell along each axis.
    let cell_x = letterbox.canvas_width as f32 / heatmap.width as f32;
    let cell_y = letterbox.canvas_height as f32 / heatmap.height as f32;
    let mut out = image.clone();
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let canvas_x = (x as f32 + 0.5) * gain + pad_x;
        let canvas_y = (y as f32 + 0.5) * gain + pad_y;
        let colour = turbo(heatmap.sample(canvas_x / cell_x, canvas_y / cell_y));
        *pixel = Rgb(std::array::from_fn(|c| {
            (f32::from(pixel[c]) * (1.0 - opacity) + f32::from(colour[c]) * opacity).round() as u8
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::Canvas;

    #[test]
    fn overlays_follow_the_letterbox() {
        // A 128×32 frame letterboxed at 64: scaled by 0.5 to 64×16, padded to a 64×32 canvas
        // (8 rows above). A 2×1 grid whose right cell is hot colours the right half only.
        let image = RgbImage::from_pixel(128, 32, Rgb([0, 0, 0]));
        let letterbox = Letterbox::new(128, 32, 64, Canvas::Minimal).unwrap();
        assert_eq!(
            (
                letterbox.canvas_width,
                letterbox.canvas_height,
                letterbox.pad_top
            ),
            (64, 32, 8)
        );
        let map = Heatmap::new("test".into(), 2, 1, vec![0.0, 1.0]);
        let out = overlay(&image, &map, &letterbox, 1.0);
        assert_eq!(out.get_pixel(0, 16).0, turbo(0.0));
        assert_eq!(out.get_pixel(127, 16).0, turbo(1.0));
        let left = out.get_pixel(40, 0).0;
        let right = out.get_pixel(88, 31).0;
        assert!(
            left[2] > left[0] && right[0] > right[2],
            "cold left {left:?}, hot right {right:?}"
        );
    }

    #[test]
    fn turbo_runs_from_blue_to_red() {
        let (cold, hot) = (turbo(0.15), turbo(0.9));
        assert!(cold[2] > cold[0] && hot[0] > hot[2], "{cold:?} {hot:?}");
        assert_eq!(turbo(-1.0), turbo(0.0));
        assert_eq!(turbo(2.0), turbo(1.0));
    }
}
