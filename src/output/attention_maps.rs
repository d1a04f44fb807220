//! FocalModulation's attention as pictures: the gate map of each focal level and of the
//! global level, and the modulator's L2 norm over channels, as heatmaps laid over the frame
//! through the letterbox (padding cropped away).

use burn::tensor::{Tensor, TensorReadError};
use image::{Rgb, RgbImage};

use crate::inference::preprocess::Letterbox;
use crate::model::FocalTaps;

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
    /// The label as one word (`gate-level-0`, `gate-global`, `modulator`), for file names
    /// and `--overlay`.
    pub fn key(&self) -> String {
        self.label.replace(' ', "-")
    }

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
        // Truncation is floor here (both are clamped to 0 and up), and far cheaper.
        let (x0, y0) = (fx as usize, fy as usize);
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

/// One heatmap per gate (focal levels, then the global level) and one for the modulator;
/// an error when the device cannot hand them back.
pub fn heatmaps(taps: &FocalTaps) -> Result<Vec<Heatmap>, TensorReadError> {
    let [_, levels, h, w] = taps.gates.dims();
    let gates: Vec<f32> = taps.gates.clone().try_into_vec_as::<f32>()?;
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
    maps.push(Heatmap::new(
        "modulator".to_string(),
        w,
        h,
        norm.try_into_vec_as::<f32>()?,
    ));
    Ok(maps)
}

/// The maps `selection` names: a map's [`key`](Heatmap::key), or `gates` for every gate.
pub fn select<'a>(maps: &'a [Heatmap], selection: &[String]) -> Vec<&'a Heatmap> {
    maps.iter()
        .filter(|map| {
            let key = map.key();
            selection
                .iter()
                .any(|s| *s == key || (s == "gates" && key.starts_with("gate")))
        })
        .collect()
}

/// A colour map for heatmaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Colormap {
    #[default]
    Turbo,
    Viridis,
}

impl Colormap {
    pub const ALL: [Self; 2] = [Self::Turbo, Self::Viridis];

    pub fn name(self) -> &'static str {
        match self {
            Self::Turbo => "turbo",
            Self::Viridis => "viridis",
        }
    }

    /// The colour at `t` in 0..1 (clamped).
    pub fn colour(self, t: f32) -> [u8; 3] {
        match self {
            Self::Turbo => turbo(t),
            Self::Viridis => viridis(t),
        }
    }
}

/// The turbo colour map (Google's polynomial fit) at `t` in 0..1.
pub fn turbo(t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    let r = 0.1357 + t * (4.5974 - t * (42.3277 - t * (130.5887 - t * (150.5666 - t * 58.1375))));
    let g = 0.0914 + t * (2.1856 + t * (4.8052 - t * (14.0195 - t * (4.2109 + t * 2.7747))));
    let b = 0.1067 + t * (12.5925 - t * (60.1097 - t * (109.0745 - t * (88.5066 - t * 26.8183))));
    [r, g, b].map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8)
}

/// The viridis colour map (matplotlib's), as a degree-6 polynomial fit, at `t` in 0..1.
pub fn viridis(t: f32) -> [u8; 3] {
    const C: [[f32; 3]; 7] = [
        [0.277_727_33, 0.005_407_344_5, 0.334_099_8],
        [0.105_093_04, 1.404_613_5, 1.384_590_2],
        [-0.330_861_83, 0.214_847_56, 0.095_095_16],
        [-4.634_230_6, -5.799_101, -19.332_441],
        [6.228_27, 14.179_933, 56.690_55],
        [4.776_385, -13.745_145, -65.353_03],
        [-5.435_456, 4.645_852_6, 26.312_435],
    ];
    let t = t.clamp(0.0, 1.0);
    std::array::from_fn(|c| {
        let v = C.iter().rev().fold(0.0, |acc, coeffs| acc * t + coeffs[c]);
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    })
}

/// `heatmap` upsampled bilinearly and coloured for a `width`×`height` picture of the
/// letterbox's source image (any scale of it), the letterbox padding cropped away.
pub fn colourise(
    heatmap: &Heatmap,
    letterbox: &Letterbox,
    colormap: Colormap,
    width: u32,
    height: u32,
) -> RgbImage {
    let whole = [
        0.0,
        0.0,
        letterbox.source_width as f32,
        letterbox.source_height as f32,
    ];
    colourise_region(heatmap, letterbox, colormap, whole, width, height)
}

/// As [`colourise`], for a `width`×`height` picture of `region` (`xyxy`, source pixels)
/// of the source image; the colours keep the whole map's range.
pub fn colourise_region(
    heatmap: &Heatmap,
    letterbox: &Letterbox,
    colormap: Colormap,
    region: [f32; 4],
    width: u32,
    height: u32,
) -> RgbImage {
    let (gain, pad_x, pad_y) = letterbox.box_transform();
    // Source pixels per picture pixel, and canvas pixels per grid cell.
    let scale_x = (region[2] - region[0]) / width as f32;
    let scale_y = (region[3] - region[1]) / height as f32;
    let cell_x = letterbox.canvas_width as f32 / heatmap.width as f32;
    let cell_y = letterbox.canvas_height as f32 / heatmap.height as f32;
    // The colour map's polynomial once per output level, not once per pixel.
    let colours: Vec<[u8; 3]> = (0..=255)
        .map(|level| colormap.colour(f32::from(level as u8) / 255.0))
        .collect();
    RgbImage::from_fn(width, height, |x, y| {
        let canvas_x = (region[0] + (x as f32 + 0.5) * scale_x) * gain + pad_x;
        let canvas_y = (region[1] + (y as f32 + 0.5) * scale_y) * gain + pad_y;
        let t = heatmap.sample(canvas_x / cell_x, canvas_y / cell_y);
        Rgb(colours[(t.clamp(0.0, 1.0) * 255.0 + 0.5) as usize])
    })
}

/// `over` laid on `under` at `opacity`, rounded to the nearest level (`+ 0.5` then
/// truncation: `f32::round` is a library call per pixel on baseline x86-64).
pub fn blend(under: u8, over: u8, opacity: f32) -> u8 {
    (f32::from(under) * (1.0 - opacity) + f32::from(over) * opacity + 0.5) as u8
}

/// `heatmap` coloured with `colormap` and blended over `image` at `opacity`, aligned
/// through `letterbox`.
pub fn overlay(
    image: &RgbImage,
    heatmap: &Heatmap,
    letterbox: &Letterbox,
    colormap: Colormap,
    opacity: f32,
) -> RgbImage {
    let colours = colourise(heatmap, letterbox, colormap, image.width(), image.height());
    let mut out = image.clone();
    for (pixel, colour) in out.pixels_mut().zip(colours.pixels()) {
        *pixel = Rgb(std::array::from_fn(|c| blend(pixel[c], colour[c], opacity)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::preprocess::Canvas;

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
        let out = overlay(&image, &map, &letterbox, Colormap::Turbo, 1.0);
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
    fn viridis_matches_matplotlib_at_its_ends_and_middle() {
        // matplotlib's viridis: #440154, #21918c, #fde725.
        let close = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(&x, y)| x.abs_diff(y) <= 6);
        assert!(
            close(viridis(0.0), [0x44, 0x01, 0x54]),
            "{:?}",
            viridis(0.0)
        );
        assert!(
            close(viridis(0.5), [0x21, 0x91, 0x8c]),
            "{:?}",
            viridis(0.5)
        );
        assert!(
            close(viridis(1.0), [0xfd, 0xe7, 0x25]),
            "{:?}",
            viridis(1.0)
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
