//! Detect's decoding on the CPU in one pass: flex's `sigmoid` and `softmax` evaluate `exp`
//! one element at a time on one thread, which took 12 ms of a 640 forward pass.

use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use super::activation::{exp, sigmoid};
use super::{flex_tensor, values, vectorised};

/// Class logits per rayon task: large enough that scheduling costs nothing next to them.
const SIGMOIDS_PER_TASK: usize = 1 << 14;

/// Where each anchor sits, in cells of its level, and its level's stride in pixels.
pub struct AnchorGrid<'a> {
    /// x centres, then y centres (`2 × anchors`).
    pub centres: &'a [f32],
    pub strides: &'a [f32],
}

/// `(B, 4 + nc, anchors)` from Detect's raw outputs: box centre and size in input pixels
/// (DFL: each side's expected value over its bins, weighted by `projection`; without one,
/// YOLO26's single bin is the distance itself), then class probabilities. `boxes` is
/// `(B, 4 · bins, anchors)`, `scores` `(B, nc, anchors)`.
pub fn decode(
    boxes: Tensor<3>,
    scores: Tensor<3>,
    grid: &AnchorGrid,
    projection: Option<Tensor<1>>,
) -> Tensor<3> {
    let device = boxes.device();
    let [batch, box_rows, anchors] = boxes.dims();
    let classes = scores.dims()[1];
    let (boxes, scores, projection) = (
        flex_tensor(boxes),
        flex_tensor(scores),
        projection.map(flex_tensor),
    );
    let (boxes, scores) = (values(&boxes), values(&scores));
    let projection = projection.as_ref().map(values);
    let bins = box_rows / 4;
    let rows = 4 + classes;
    let mut out = vec![0.0f32; batch * rows * anchors];
    // An image's four sides and its class rows on rayon's threads, each at the widest
    // SIMD the CPU has: one image at a time, on one thread at baseline width, this was the
    // serial tail of every pass.
    for (image, out) in out.chunks_exact_mut(rows * anchors).enumerate() {
        let (box_out, class_out) = out.split_at_mut(4 * anchors);
        let logits = &boxes[image * box_rows * anchors..(image + 1) * box_rows * anchors];
        let image_scores = &scores[image * classes * anchors..(image + 1) * classes * anchors];
        rayon::join(
            || {
                let distances: Vec<Vec<f32>> = logits
                    .par_chunks_exact(bins * anchors)
                    .map(|side| match projection {
                        Some(projection) => expected_bins(side, anchors, projection),
                        None => side.to_vec(),
                    })
                    .collect();
                write_boxes(&distances, grid, box_out, anchors);
            },
            || {
                class_out
                    .par_chunks_mut(SIGMOIDS_PER_TASK)
                    .zip(image_scores.par_chunks(SIGMOIDS_PER_TASK))
                    .for_each(|(out, logits)| {
                        vectorised(
                            #[inline(always)]
                            || {
                                for (o, &s) in out.iter_mut().zip(logits) {
                                    *o = sigmoid(s);
                                }
                            },
                        )
                    })
            },
        );
    }
    Tensor::from_data(TensorData::new(out, [batch, rows, anchors]), &device)
}

/// Each side's distance from its anchor, in cells, `(B, 4, anchors)`: DFL's expected value
/// over the bins of `boxes` `(B, 4 · bins, anchors)`, as [`decode`] computes it.
pub fn dfl_distances(boxes: Tensor<3>, projection: Tensor<1>) -> Tensor<3> {
    let device = boxes.device();
    let [batch, box_rows, anchors] = boxes.dims();
    let (boxes, projection) = (flex_tensor(boxes), flex_tensor(projection));
    let projection = values(&projection);
    let bins = box_rows / 4;
    let out: Vec<f32> = values(&boxes)
        .par_chunks(bins * anchors)
        .flat_map_iter(|side| expected_bins(side, anchors, projection))
        .collect();
    Tensor::from_data(TensorData::new(out, [batch, 4, anchors]), &device)
}

/// DFL for one side: per anchor, the softmax over the bins (rows of `side`, `anchors`
/// apart) weighted by `projection`. Loops run along anchors, so they vectorise, at the
/// widest SIMD the CPU has.
fn expected_bins(side: &[f32], anchors: usize, projection: &[f32]) -> Vec<f32> {
    vectorised(
        #[inline(always)]
        || expected_bins_inline(side, anchors, projection),
    )
}

/// [`expected_bins`]' loops, inlined where [`vectorised`] compiles them.
#[inline(always)]
fn expected_bins_inline(side: &[f32], anchors: usize, projection: &[f32]) -> Vec<f32> {
    let mut max = vec![f32::NEG_INFINITY; anchors];
    for bin in side.chunks_exact(anchors) {
        for (m, &v) in max.iter_mut().zip(bin) {
            *m = m.max(v);
        }
    }
    let mut sum = vec![0.0f32; anchors];
    let mut weighted = vec![0.0f32; anchors];
    for (bin, &p) in side.chunks_exact(anchors).zip(projection) {
        for (((s, w), &m), &v) in sum.iter_mut().zip(&mut weighted).zip(&max).zip(bin) {
            let e = exp(v - m);
            *s += e;
            *w += e * p;
        }
    }
    weighted.iter().zip(&sum).map(|(w, s)| w / s).collect()
}

/// Centre and size in pixels from the four side distances, in the operation order of
/// Ultralytics' `dist2bbox` so that rounding matches too.
fn write_boxes(distances: &[Vec<f32>], grid: &AnchorGrid, out: &mut [f32], anchors: usize) {
    let (cx, rest) = out.split_at_mut(anchors);
    let (cy, rest) = rest.split_at_mut(anchors);
    let (w, h) = rest.split_at_mut(anchors);
    let (ax, ay) = grid.centres.split_at(anchors);
    for a in 0..anchors {
        let stride = grid.strides[a];
        let (left, top) = (ax[a] - distances[0][a], ay[a] - distances[1][a]);
        let (right, bottom) = (ax[a] + distances[2][a], ay[a] + distances[3][a]);
        cx[a] = (left + right) / 2.0 * stride;
        cy[a] = (top + bottom) / 2.0 * stride;
        w[a] = (right - left) * stride;
        h[a] = (bottom - top) * stride;
    }
}
