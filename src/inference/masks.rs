//! Instance masks from a segmentation head, as Ultralytics' predictor makes them by default
//! (`retina_masks=False`): the kept box's mask coefficients times the prototypes, upsampled
//! bilinearly to the model's input, cropped to the box and thresholded at 0 (a probability
//! of 0.5); and their outlines, traced as `cv2.findContours(RETR_EXTERNAL,
//! CHAIN_APPROX_SIMPLE)` traces them.

use burn::tensor::{Tensor, TensorReadError};

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

    /// The mask of the box `xyxy` (canvas pixels) with these mask `coefficients`, on a
    /// `canvas_width × canvas_height` input: the pixels whose column `c` and row `r` satisfy
    /// `x1 ≤ c < x2`, `y1 ≤ r < y2` (Ultralytics' `crop_mask`) and whose upsampled logit is
    /// above 0.
    pub fn from_prototypes(
        xyxy: [f32; 4],
        coefficients: &[f32],
        prototypes: &Prototypes,
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
        // prototype grid at (dst + 0.5)·scale − 0.5, clamped at 0.
        let axis = |dst: usize, scale: f32, size: usize| {
            let src = ((dst as f32 + 0.5) * scale - 0.5).max(0.0);
            let low = (src as usize).min(size - 1);
            let high = if low < size - 1 { low + 1 } else { low };
            (low, high, src - low as f32)
        };
        let (scale_x, scale_y) = (
            prototypes.width as f32 / canvas_width as f32,
            prototypes.height as f32 / canvas_height as f32,
        );
        let columns: Vec<_> = (left..right)
            .map(|x| axis(x, scale_x, prototypes.width))
            .collect();
        let rows: Vec<_> = (top..bottom)
            .map(|y| axis(y, scale_y, prototypes.height))
            .collect();
        // The mask's logits on the prototype cells these pixels read, and no others.
        let (cell_left, cell_right) = (columns[0].0, columns[width - 1].1 + 1);
        let (cell_top, cell_bottom) = (rows[0].0, rows[height - 1].1 + 1);
        let cells_wide = cell_right - cell_left;
        let mut logits = vec![0.0f32; cells_wide * (cell_bottom - cell_top)];
        let plane = prototypes.width * prototypes.height;
        for (k, &coefficient) in coefficients.iter().enumerate().take(prototypes.masks) {
            let map = &prototypes.values[k * plane..(k + 1) * plane];
            for (row, out) in (cell_top..cell_bottom).zip(logits.chunks_exact_mut(cells_wide)) {
                let cells = &map[row * prototypes.width + cell_left..][..cells_wide];
                for (o, &p) in out.iter_mut().zip(cells) {
                    *o += coefficient * p;
                }
            }
        }
        // Separable: each prototype row the pixels read, interpolated along x once.
        let cells_high = cell_bottom - cell_top;
        let mut along_x = vec![0.0f32; cells_high * width];
        for (row, out) in along_x.chunks_exact_mut(width).enumerate() {
            let cells = &logits[row * cells_wide..(row + 1) * cells_wide];
            for (o, &(x0, x1, lx)) in out.iter_mut().zip(&columns) {
                let (a, b) = (cells[x0 - cell_left], cells[x1 - cell_left]);
                *o = (1.0 - lx) * a + lx * b;
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

    /// The outer outline of each connected part (8-connected, as `cv2.findContours` with
    /// `RETR_EXTERNAL`; a part inside another's hole is left out), through the centres of
    /// its border pixels, straight runs reduced to their ends (`CHAIN_APPROX_SIMPLE`); in
    /// canvas pixels.
    pub fn outlines(&self) -> Vec<Vec<[f32; 2]>> {
        // Work on the region with a one-pixel empty frame, so every part has a border.
        let (w, h) = (self.width + 2, self.height + 2);
        let mut grid = vec![false; w * h];
        for y in 0..self.height {
            grid[(y + 1) * w + 1..][..self.width]
                .copy_from_slice(&self.pixels[y * self.width..][..self.width]);
        }
        // The background 4-connected to the frame, and the 8-connected parts, labelled as
        // runs of a row: a part is external when one of its pixels has a 4-neighbour in that
        // background (a run beside it in its row, or overlapping it in the row above or below).
        let background = Runs::new(&grid, w, h, false);
        let outside = background.root[0];
        let parts = Runs::new(&grid, w, h, true);
        let mut external = vec![false; parts.runs.len()];
        for (i, run) in parts.runs.iter().enumerate() {
            let touches = |row: usize, from: usize, to: usize| {
                background.in_row(row).any(|(j, other)| {
                    other.start < to && from < other.end && background.root[j] == outside
                })
            };
            external[parts.root[i]] |= touches(run.row, run.start - 1, run.end + 1)
                || touches(run.row - 1, run.start, run.end)
                || touches(run.row + 1, run.start, run.end);
        }
        // Each external part's first run (its root) starts at its top-left pixel, where the
        // tracing starts; roots come in raster order.
        let starts: Vec<usize> = (0..parts.runs.len())
            .filter(|&i| parts.root[i] == i && external[i])
            .map(|i| parts.runs[i].row * w + parts.runs[i].start)
            .collect();
        let offset = [self.left as f32 - 1.0, self.top as f32 - 1.0];
        starts
            .into_iter()
            .map(|start| {
                trace_border(&grid, w, start)
                    .into_iter()
                    .map(|p| [(p % w) as f32 + offset[0], (p / w) as f32 + offset[1]])
                    .collect()
            })
            .collect()
    }
}

/// A row's stretch of pixels of one value, `start..end`.
struct Run {
    row: usize,
    start: usize,
    end: usize,
}

/// The runs of the pixels of `grid` equal to `foreground`, in raster order, and the
/// connected part each belongs to (its first run): 8-connected for the mask, 4-connected
/// for the background. Union-find over runs rather than pixels: a mask has few per row.
struct Runs {
    runs: Vec<Run>,
    /// The first run of each row, and one past the last row's.
    row_starts: Vec<usize>,
    root: Vec<usize>,
}

impl Runs {
    fn new(grid: &[bool], w: usize, h: usize, foreground: bool) -> Self {
        let mut runs = Vec::new();
        let mut row_starts = Vec::with_capacity(h + 1);
        for row in 0..h {
            row_starts.push(runs.len());
            let line = &grid[row * w..(row + 1) * w];
            let mut x = 0;
            while x < w {
                if line[x] != foreground {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < w && line[x] == foreground {
                    x += 1;
                }
                runs.push(Run { row, start, end: x });
            }
        }
        row_starts.push(runs.len());
        let mut parent: Vec<usize> = (0..runs.len()).collect();
        fn find(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        // Diagonal neighbours join parts of the mask, not of the background.
        let reach = usize::from(foreground);
        for row in 1..h {
            let above = row_starts[row - 1]..row_starts[row];
            for i in row_starts[row]..row_starts[row + 1] {
                for j in above.clone() {
                    let (a, b) = (&runs[i], &runs[j]);
                    if b.start < a.end + reach && a.start < b.end + reach {
                        let (x, y) = (find(&mut parent, i), find(&mut parent, j));
                        parent[x.max(y)] = x.min(y);
                    }
                }
            }
        }
        let root = (0..runs.len()).map(|i| find(&mut parent, i)).collect();
        Self {
            runs,
            row_starts,
            root,
        }
    }

    /// The runs of `row`, with their indices.
    fn in_row(&self, row: usize) -> impl Iterator<Item = (usize, &Run)> {
        let range = self.row_starts[row]..self.row_starts[row + 1];
        range.clone().zip(&self.runs[range])
    }
}

/// The outer border of the part whose top-left pixel is `start`, by Moore-neighbour
/// tracing (the border following of Suzuki and Abe, which OpenCV implements), keeping only
/// the pixels where the direction turns.
fn trace_border(grid: &[bool], w: usize, start: usize) -> Vec<usize> {
    // The 8 neighbours clockwise from east, in image coordinates (y down).
    let steps: [isize; 8] = [
        1,
        w as isize + 1,
        w as isize,
        w as isize - 1,
        -1,
        -(w as isize) - 1,
        -(w as isize),
        -(w as isize) + 1,
    ];
    let neighbour = |p: usize, d: usize| (p as isize + steps[d]) as usize;
    // From the top-left pixel, the pixel to its west is empty: search clockwise from there.
    let first_direction = (0..8)
        .map(|k| (4 + k) % 8)
        .find(|&d| grid[neighbour(start, d)]);
    let Some(first_direction) = first_direction else {
        return vec![start];
    };
    let mut border = vec![start];
    let mut directions = vec![first_direction];
    let (mut at, mut direction) = (neighbour(start, first_direction), first_direction);
    loop {
        // Search clockwise from the neighbour after the one we came from.
        let from = (direction + 6) % 8;
        let next = (0..8)
            .map(|k| (from + k) % 8)
            .find(|&d| grid[neighbour(at, d)])
            .expect("a pixel reached by a step has that step's pixel as a neighbour");
        if at == start && next == first_direction {
            break;
        }
        border.push(at);
        directions.push(next);
        at = neighbour(at, next);
        direction = next;
    }
    // A point stays where the direction it leaves by differs from the one it came by.
    let n = border.len();
    (0..n)
        .filter(|&i| directions[i] != directions[(i + n - 1) % n])
        .map(|i| border[i])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> InstanceMask {
        InstanceMask {
            left: 10,
            top: 20,
            width: rows[0].len(),
            height: rows.len(),
            pixels: rows
                .iter()
                .flat_map(|r| r.chars().map(|c| c == '#'))
                .collect(),
        }
    }

    #[test]
    fn a_rectangle_is_its_four_corner_pixels() {
        let m = mask(&["....", ".###", ".###", "...."]);
        assert_eq!(
            m.outlines(),
            vec![vec![[11.0, 21.0], [13.0, 21.0], [13.0, 22.0], [11.0, 22.0]]]
        );
        assert_eq!(m.area(), 6);
        assert!(m.contains(11, 21) && !m.contains(10, 21) && !m.contains(14, 21));
    }

    #[test]
    fn parts_are_traced_apart_and_a_part_inside_a_hole_is_left_out() {
        let m = mask(&[
            "#####..#", //
            "#...#...", //
            "#.#.#...", //
            "#...#...", //
            "#####...",
        ]);
        let outlines = m.outlines();
        assert_eq!(outlines.len(), 2, "{outlines:?}");
        assert_eq!(
            outlines[0],
            vec![[10.0, 20.0], [14.0, 20.0], [14.0, 24.0], [10.0, 24.0]]
        );
        assert_eq!(outlines[1], vec![[17.0, 20.0]]);
    }

    #[test]
    fn diagonal_runs_keep_their_ends() {
        let m = mask(&["#...", ".#..", "..#.", "...#"]);
        assert_eq!(m.outlines(), vec![vec![[10.0, 20.0], [13.0, 23.0]]]);
    }

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
        let m = InstanceMask::from_prototypes([0.5, 1.0, 7.0, 3.2], &[2.0], &prototypes, 8, 8);
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
