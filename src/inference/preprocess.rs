//! Ultralytics' predict-time letterbox: resize keeping the aspect ratio (bilinear, as
//! OpenCV's `INTER_LINEAR` on 8-bit images computes it), pad with grey 114 centred, and
//! hand the model RGB scaled to 0..1 in NCHW.

use std::ops::Deref;

use burn::tensor::{Device, Tensor, TensorData};
use image::{ImageBuffer, Rgb};
use rayon::prelude::*;
use thiserror::Error;

use crate::compute::kernels::{ResizePlan, Tap, resize_pad_on_device, runs_wgsl};

/// Packed RGB pixels, owned (`RgbImage`) or borrowed from a decoded frame.
pub type RgbFrame<Pixels> = ImageBuffer<Rgb<u8>, Pixels>;

/// The model's largest stride: canvas sides are multiples of it.
pub const STRIDE: usize = 32;
const PAD_VALUE: u8 = 114;

#[derive(Debug, Error, PartialEq)]
pub enum PreprocessError {
    #[error("image size {0}×{1} is empty")]
    EmptyImage(u32, u32),
    #[error("--imgsz {0} must be a positive multiple of {STRIDE}")]
    BadImgsz(usize),
}

/// How big the canvas is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Canvas {
    /// The smallest stride-multiple rectangle around the resized image (Ultralytics `auto`, `rect`).
    #[default]
    Minimal,
    /// A full `imgsz × imgsz` square.
    Square,
}

/// Where the source image lands on the model's canvas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub source_width: u32,
    pub source_height: u32,
    pub resized_width: usize,
    pub resized_height: usize,
    pub canvas_width: usize,
    pub canvas_height: usize,
    pub pad_left: usize,
    pub pad_top: usize,
    /// Map boxes back with the ratio and padding actually applied, as Ultralytics'
    /// validator does (it passes `ratio_pad`), rather than recomputing them from the canvas
    /// as its predictor does.
    pub applied_transform: bool,
}

/// Python's `round`: halves go to the even neighbour.
pub fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

impl Letterbox {
    pub fn new(
        source_width: u32,
        source_height: u32,
        imgsz: usize,
        canvas: Canvas,
    ) -> Result<Self, PreprocessError> {
        if source_width == 0 || source_height == 0 {
            return Err(PreprocessError::EmptyImage(source_width, source_height));
        }
        if imgsz == 0 || !imgsz.is_multiple_of(STRIDE) {
            return Err(PreprocessError::BadImgsz(imgsz));
        }
        let (w, h) = (f64::from(source_width), f64::from(source_height));
        let size = imgsz as f64;
        let r = (size / h).min(size / w);
        let resized_width = (round_half_even(w * r) as usize).clamp(1, imgsz);
        let resized_height = (round_half_even(h * r) as usize).clamp(1, imgsz);
        let (mut dw, mut dh) = (imgsz - resized_width, imgsz - resized_height);
        if canvas == Canvas::Minimal {
            dw %= STRIDE;
            dh %= STRIDE;
        }
        let pad_left = round_half_even(dw as f64 / 2.0 - 0.1) as usize;
        let pad_top = round_half_even(dh as f64 / 2.0 - 0.1) as usize;
        Ok(Self {
            source_width,
            source_height,
            resized_width,
            resized_height,
            canvas_width: resized_width + dw,
            canvas_height: resized_height + dh,
            pad_left,
            pad_top,
            applied_transform: false,
        })
    }

    /// The letterbox of Ultralytics' validation loader: the long side first resized to
    /// `imgsz` (`ceil`, as `load_image` does), then centred without further scaling on the
    /// batch canvas `canvas_width × canvas_height` (see [`validation_canvases`]).
    pub fn for_validation(
        source_width: u32,
        source_height: u32,
        imgsz: usize,
        canvas_width: usize,
        canvas_height: usize,
    ) -> Result<Self, PreprocessError> {
        if source_width == 0 || source_height == 0 {
            return Err(PreprocessError::EmptyImage(source_width, source_height));
        }
        let r = imgsz as f64 / f64::from(source_width.max(source_height));
        let resized_width =
            ((f64::from(source_width) * r).ceil() as usize).clamp(1, imgsz.min(canvas_width));
        let resized_height =
            ((f64::from(source_height) * r).ceil() as usize).clamp(1, imgsz.min(canvas_height));
        let (dw, dh) = (canvas_width - resized_width, canvas_height - resized_height);
        Ok(Self {
            source_width,
            source_height,
            resized_width,
            resized_height,
            canvas_width,
            canvas_height,
            pad_left: round_half_even(dw as f64 / 2.0 - 0.1) as usize,
            pad_top: round_half_even(dh as f64 / 2.0 - 0.1) as usize,
            applied_transform: true,
        })
    }

    /// The gain and padding Ultralytics' `scale_boxes` undoes: canvas = source × gain + pad.
    pub fn box_transform(&self) -> (f32, f32, f32) {
        if self.applied_transform {
            let gain = self.resized_height as f64 / f64::from(self.source_height);
            let pad_x = (self.canvas_width - self.resized_width) as f64 / 2.0;
            let pad_y = (self.canvas_height - self.resized_height) as f64 / 2.0;
            return (gain as f32, pad_x as f32, pad_y as f32);
        }
        let gain = (self.canvas_height as f64 / f64::from(self.source_height))
            .min(self.canvas_width as f64 / f64::from(self.source_width));
        let pad_x = round_half_even(
            (self.canvas_width as f64 - f64::from(self.source_width) * gain) / 2.0 - 0.1,
        );
        let pad_y = round_half_even(
            (self.canvas_height as f64 - f64::from(self.source_height) * gain) / 2.0 - 0.1,
        );
        (gain as f32, pad_x as f32, pad_y as f32)
    }

    /// The letterboxed image as planar RGB f32 in 0..1, `3 × canvas_height × canvas_width`.
    pub fn apply<Pixels: Deref<Target = [u8]>>(&self, image: &RgbFrame<Pixels>) -> Vec<f32> {
        let resized = resize_bilinear(image, self.resized_width, self.resized_height);
        let plane = self.canvas_width * self.canvas_height;
        let mut out = vec![f32::from(PAD_VALUE) / 255.0; 3 * plane];
        let (left, top, width) = (self.pad_left, self.pad_top, self.resized_width);
        out.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(channel, out_plane)| {
                let canvas_rows = out_plane.chunks_exact_mut(self.canvas_width).skip(top);
                for (row_out, row_in) in canvas_rows.zip(resized.chunks_exact(3 * width)) {
                    for (o, px) in row_out[left..left + width]
                        .iter_mut()
                        .zip(row_in.chunks_exact(3))
                    {
                        *o = f32::from(px[channel]) / 255.0;
                    }
                }
            });
        out
    }
}

/// The model input `(1, 3, canvas_height, canvas_width)` for a packed 8-bit frame with
/// `bytes_per_pixel` 3 (RGB) or 4 (RGBA), rows `letterbox.source_width` pixels long: on a
/// device that runs our WGSL the frame crosses as bytes and the letterbox kernel does the
/// rest; elsewhere the CPU letterbox runs.
pub fn letterbox_on_device(
    bytes: &[u8],
    bytes_per_pixel: usize,
    letterbox: &Letterbox,
    device: &Device,
) -> Tensor<4> {
    let (width, height) = (
        letterbox.source_width as usize,
        letterbox.source_height as usize,
    );
    if runs_wgsl(device) {
        let x_taps = axis_taps(width, letterbox.resized_width);
        let y_taps = axis_taps(height, letterbox.resized_height);
        let plan = ResizePlan {
            source: (width, height),
            resized: (letterbox.resized_width, letterbox.resized_height),
            canvas: (letterbox.canvas_width, letterbox.canvas_height),
            pad: (letterbox.pad_left, letterbox.pad_top),
            x_taps: &x_taps,
            y_taps: &y_taps,
        };
        return resize_pad_on_device(bytes, bytes_per_pixel, &plan, device);
    }
    assert!(matches!(bytes_per_pixel, 3 | 4), "frames are RGB or RGBA");
    assert_eq!(bytes.len(), width * height * bytes_per_pixel, "frame size");
    let packed;
    let rgb_bytes: &[u8] = if bytes_per_pixel == 3 {
        bytes
    } else {
        packed = bytes
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect::<Vec<u8>>();
        &packed
    };
    let rgb =
        RgbFrame::from_raw(width as u32, height as u32, rgb_bytes).expect("size checked above");
    let shape = [1, 3, letterbox.canvas_height, letterbox.canvas_width];
    Tensor::from_data(TensorData::new(letterbox.apply(&rgb), shape), device)
}

/// The canvases Ultralytics' rectangular validation batches use, per image in input order:
/// images sorted by aspect ratio are cut into batches of `batch`, and each batch gets the
/// stride-32 canvas (with half a stride of slack) that fits its most extreme aspect ratio.
pub fn validation_canvases(
    sizes: &[(u32, u32)],
    imgsz: usize,
    batch: usize,
) -> Vec<(usize, usize)> {
    let aspect = |i: usize| f64::from(sizes[i].1) / f64::from(sizes[i].0);
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| aspect(a).total_cmp(&aspect(b)));
    let mut canvases = vec![(imgsz, imgsz); sizes.len()];
    for group in order.chunks(batch.max(1)) {
        let (min, max) = group
            .iter()
            .map(|&i| aspect(i))
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), a| {
                (lo.min(a), hi.max(a))
            });
        let (h, w) = if max < 1.0 {
            (max, 1.0)
        } else if min > 1.0 {
            (1.0, 1.0 / min)
        } else {
            (1.0, 1.0)
        };
        let side =
            |ratio: f64| ((ratio * imgsz as f64 / STRIDE as f64 + 0.5).ceil() as usize) * STRIDE;
        for &i in group {
            canvases[i] = (side(w), side(h));
        }
    }
    canvases
}

/// OpenCV's fixed-point coefficient scale for 8-bit bilinear resizing.
const COEF_SCALE: f32 = 2048.0;

/// Source index and fixed-point weights along one axis, as OpenCV's `resize` computes them
/// (half-pixel centres, edges clamped).
fn axis_taps(src: usize, dst: usize) -> Vec<Tap> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as isize;
            let mut frac = f - s as f32;
            if s < 0 {
                s = 0;
                frac = 0.0;
            }
            if s as usize >= src - 1 {
                s = src as isize - 1;
                frac = 0.0;
            }
            let w0 = ((1.0 - frac) * COEF_SCALE).round() as i32;
            let s = s as usize;
            (
                s,
                (s + 1).min(src - 1),
                w0,
                (frac * COEF_SCALE).round() as i32,
            )
        })
        .collect()
}

/// Bilinear resize of packed RGB bytes, the way OpenCV's `INTER_LINEAR` does on `uint8`;
/// output rows on rayon's threads.
pub fn resize_bilinear<Pixels: Deref<Target = [u8]>>(
    image: &RgbFrame<Pixels>,
    width: usize,
    height: usize,
) -> Vec<u8> {
    let (src_w, src_h) = (image.width() as usize, image.height() as usize);
    let raw: &[u8] = image.as_raw();
    if (src_w, src_h) == (width, height) {
        return raw.to_vec();
    }
    let xs = axis_taps(src_w, width);
    let ys = axis_taps(src_h, height);
    let horizontal = |row: usize, out: &mut Vec<i32>| {
        let line = &raw[row * src_w * 3..][..src_w * 3];
        out.clear();
        for &(x0, x1, a0, a1) in &xs {
            let (p0, p1) = (&line[x0 * 3..x0 * 3 + 3], &line[x1 * 3..x1 * 3 + 3]);
            out.extend((0..3).map(|c| i32::from(p0[c]) * a0 + i32::from(p1[c]) * a1));
        }
    };
    let mut out = vec![0u8; width * height * 3];
    out.par_chunks_mut(width * 3).zip(&ys).for_each_init(
        || (Vec::with_capacity(width * 3), Vec::with_capacity(width * 3)),
        |(row0, row1), (out_row, &(y0, y1, b0, b1))| {
            horizontal(y0, row0);
            horizontal(y1, row1);
            // OpenCV's vectorised vertical pass: 16-bit products, then a rounding shift.
            for ((o, &d0), &d1) in out_row.iter_mut().zip(row0.iter()).zip(row1.iter()) {
                let v = (((b0 * (d0 >> 4)) >> 16) + ((b1 * (d1 >> 4)) >> 16) + 2) >> 2;
                *o = v.clamp(0, 255) as u8;
            }
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    #[test]
    fn rounds_like_python() {
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(3.5), 4.0);
        assert_eq!(round_half_even(6.4), 6.0);
        assert_eq!(round_half_even(-0.5), -0.0);
    }

    #[test]
    fn minimal_canvas_matches_ultralytics() {
        // 640×480 at 640: resized 640×480, rect canvas 640×480, no padding.
        let lb = Letterbox::new(640, 480, 640, Canvas::Minimal).unwrap();
        assert_eq!(
            (lb.canvas_width, lb.canvas_height, lb.pad_left, lb.pad_top),
            (640, 480, 0, 0)
        );
        // 500×375 → 640×480; 1280×720 → 640×360 padded to 640×384 (12 top, 12 bottom).
        let lb = Letterbox::new(1280, 720, 640, Canvas::Minimal).unwrap();
        assert_eq!(
            (lb.resized_height, lb.canvas_height, lb.pad_top),
            (360, 384, 12)
        );
        let lb = Letterbox::new(1280, 720, 640, Canvas::Square).unwrap();
        assert_eq!(
            (lb.canvas_width, lb.canvas_height, lb.pad_top),
            (640, 640, 140)
        );
    }

    #[test]
    fn validation_canvases_follow_ultralytics_batches() {
        // A landscape batch gets Ultralytics' 640 → 672 canvas with half a stride of slack.
        let canvases = validation_canvases(&[(640, 480), (640, 427), (500, 375)], 640, 16);
        assert_eq!(canvases, vec![(672, 512); 3]);
        // Portrait and landscape in one batch: a square canvas.
        assert_eq!(
            validation_canvases(&[(640, 480), (480, 640)], 640, 16),
            vec![(672, 672); 2]
        );
        let lb = Letterbox::for_validation(500, 375, 640, 672, 512).unwrap();
        assert_eq!(
            (lb.resized_width, lb.resized_height, lb.pad_left, lb.pad_top),
            (640, 480, 16, 16)
        );
        assert_eq!(lb.box_transform(), (1.28, 16.0, 16.0));
    }

    #[test]
    fn extreme_aspect_ratios_stay_valid() {
        for (w, h) in [(4000, 17), (17, 4000), (1, 1), (100_000, 1)] {
            let lb = Letterbox::new(w, h, 640, Canvas::Minimal).unwrap();
            assert!(lb.resized_width >= 1 && lb.resized_height >= 1);
            assert_eq!(lb.canvas_width % STRIDE, 0);
            assert_eq!(lb.canvas_height % STRIDE, 0);
            let image = RgbImage::from_pixel(w.min(4000), h.min(4000), image::Rgb([10, 20, 30]));
            if u64::from(w) * u64::from(h) <= 4_000_000 {
                let data = Letterbox::new(image.width(), image.height(), 640, Canvas::Minimal)
                    .unwrap()
                    .apply(&image);
                assert_eq!(data.len(), 3 * lb.canvas_width * lb.canvas_height);
            }
        }
        assert_eq!(
            Letterbox::new(0, 5, 640, Canvas::Minimal),
            Err(PreprocessError::EmptyImage(0, 5))
        );
        assert_eq!(
            Letterbox::new(5, 5, 100, Canvas::Minimal),
            Err(PreprocessError::BadImgsz(100))
        );
    }

    #[test]
    fn uniform_images_resize_to_the_same_colour() {
        let image = RgbImage::from_pixel(37, 23, image::Rgb([200, 100, 7]));
        let out = resize_bilinear(&image, 91, 11);
        assert!(out.chunks(3).all(|p| p == [200, 100, 7]));
    }
}
