//! Instance masks from a segmentation head, as Ultralytics' predictor makes them by default
//! (`retina_masks=False`): the kept box's mask coefficients times the prototypes, upsampled
//! bilinearly to the model's input, cropped to the box and thresholded at 0 (a probability
//! of 0.5); and their outlines (`outlines.rs`).

mod outlines;

use burn::tensor::{Tensor, TensorReadError};

use crate::compute::kernels::cpu;

/// The prototypes of one image: `masks` maps of `height × width`, a quarter of the input's
/// size, row-major one after another.
pub struct Prototypes {
    pub values: Vec<f32>,
    pub masks: usize,
    pub width: usize,
    pub height: usize,
}

impl Prototypes {
    /// The first image's prototypes of a segmentation head's `(B, nm, H/4, W/4)` output.
    pub fn read(protos: Tensor<4>) -> Result<Self, TensorReadError> {
        let [_, masks, height, width] = protos.dims();
        let mut values = protos.try_into_vec_as::<f32>()?;
        values.truncate(masks * height * width);
        Ok(Self {
            values,
            masks,
            width,
            height,
        })
    }

    /// Each instance's mask logits on the prototype grid, from its `masks` coefficients
    /// (`coefficients` holds them instance after instance): one matrix product for all.
    pub fn logits(&self, coefficients: &[f32], instances: usize) -> MaskLogits {
        MaskLogits {
            values: cpu::matmul(
                coefficients,
                &self.values,
                instances,
                self.masks,
                self.width * self.height,
            ),
            width: self.width,
            height: self.height,
        }
    }
}

/// Instances' mask logits on the prototype grid, one `width × height` plane after another.
pub struct MaskLogits {
    values: Vec<f32>,
    width: usize,
    height: usize,
}

impl MaskLogits {
    /// Each instance's plane, in the order of its coefficients.
    pub fn planes(&self) -> impl Iterator<Item = LogitPlane<'_>> {
        self.values
            .chunks_exact(self.width * self.height)
            .map(|values| LogitPlane {
                values,
                width: self.width,
                height: self.height,
            })
    }
}

/// One instance's mask logits on the prototype grid (`width × height`, row-major).
pub struct LogitPlane<'a> {
    pub values: &'a [f32],
    pub width: usize,
    pub height: usize,
}

/// One instance's mask on the model's input canvas: the pixels of `width × height` from
/// (`left`, `top`), the box's pixels only (nothing outside a box is ever set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceMask {
    pub left: usize,
    pub top: usize,
    pub width: usize,
    pub height: usize,
    /// Row-major, one entry per pixel of the region.
    pub pixels: Vec<bool>,
}

impl InstanceMask {
    /// Whether canvas pixel (`x`, `y`) is in the mask.
    pub fn contains(&self, x: usize, y: usize) -> bool {
        x >= self.left
            && y >= self.top
            && x < self.left + self.width
            && y < self.top + self.height
            && self.pixels[(y - self.top) * self.width + (x - self.left)]
    }

    /// How many canvas pixels the mask covers.
    pub fn area(&self) -> usize {
        self.pixels.iter().filter(|&&p| p).count()
    }

    /// The mask of the box `xyxy` (canvas pixels) with these mask `logits`, on a
    /// `canvas_width × canvas_height` input: the pixels whose column `c` and row `r` satisfy
    /// `x1 ≤ c < x2`, `y1 ≤ r < y2` (Ultralytics' `crop_mask`) and whose upsampled logit is
    /// above 0.
    pub fn from_logits(
        xyxy: [f32; 4],
        logits: &LogitPlane,
        canvas_width: usize,
        canvas_height: usize,
    ) -> Self {
        let first = |v: f32, size: usize| (v.max(0.0).ceil() as usize).min(size);
        let (left, right) = (first(xyxy[0], canvas_width), first(xyxy[2], canvas_width));
        let (top, bottom) = (first(xyxy[1], canvas_height), first(xyxy[3], canvas_height));
        let (width, height) = (right.saturating_sub(left), bottom.saturating_sub(top));
        let mut mask = Self {
            left,
            top,
            width,
            height,
            pixels: vec![false; width * height],
        };
        if width == 0 || height == 0 {
            return mask;
        }
        // PyTorch's bilinear upsampling (align_corners=False): each output pixel samples the
        // logit grid at (dst + 0.5)·scale − 0.5, clamped at 0.
        let axis = |dst: usize, scale: f32, size: usize| {
            let src = ((dst as f32 + 0.5) * scale - 0.5).max(0.0);
            let low = (src as usize).min(size - 1);
            let high = if low < size - 1 { low + 1 } else { low };
            (low, high, src - low as f32)
        };
        let (scale_x, scale_y) = (
            logits.width as f32 / canvas_width as f32,
            logits.height as f32 / canvas_height as f32,
        );
        let columns: Vec<_> = (left..right)
            .map(|x| axis(x, scale_x, logits.width))
            .collect();
        let rows: Vec<_> = (top..bottom)
            .map(|y| axis(y, scale_y, logits.height))
            .collect();
        // Only the grid cells these pixels read.
        let cell_top = rows[0].0;
        let cells_high = rows[height - 1].1 + 1 - cell_top;
        // Separable: each prototype row the pixels read, interpolated along x once.
        let mut along_x = vec![0.0f32; cells_high * width];
        for (row, out) in along_x.chunks_exact_mut(width).enumerate() {
            let cells = &logits.values[(cell_top + row) * logits.width..][..logits.width];
            for (o, &(x0, x1, lx)) in out.iter_mut().zip(&columns) {
                *o = (1.0 - lx) * cells[x0] + lx * cells[x1];
            }
        }
        for (out, &(y0, y1, ly)) in mask.pixels.chunks_exact_mut(width).zip(&rows) {
            let upper = &along_x[(y0 - cell_top) * width..][..width];
            let lower = &along_x[(y1 - cell_top) * width..][..width];
            for ((o, &a), &b) in out.iter_mut().zip(upper).zip(lower) {
                // Columns and rows from ceil(x1) to ceil(x2) are those crop_mask keeps.
                *o = (1.0 - ly) * a + ly * b > 0.0;
            }
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_the_upsampled_logits_above_zero_inside_the_box() {
        // One prototype, 2×2: positive on the left column, negative on the right; the
        // canvas is 8×8, so the sign changes halfway across.
        let prototypes = Prototypes {
            values: vec![1.0, -1.0, 1.0, -1.0],
            masks: 1,
            width: 2,
            height: 2,
        };
        let logits = prototypes.logits(&[2.0], 1);
        let plane = logits.planes().next().expect("one instance");
        assert_eq!(plane.values, [2.0, -2.0, 2.0, -2.0]);
        let m = InstanceMask::from_logits([0.5, 1.0, 7.0, 3.2], &plane, 8, 8);
        // Columns ceil(0.5)=1 .. ceil(7.0)=7, rows 1 .. ceil(3.2)=4.
        assert_eq!((m.left, m.top, m.width, m.height), (1, 1, 6, 3));
        for y in 0..8 {
            for x in 0..8 {
                let inside = (1..7).contains(&x) && (1..4).contains(&y);
                // Bilinear between the two columns' centres (canvas x 1.5 and 5.5): zero at 3.5.
                assert_eq!(m.contains(x, y), inside && x <= 3, "({x}, {y})");
            }
        }
    }
}
