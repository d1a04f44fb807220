//! What a pass through the layers carries from one to the next ([`Activations`]), and what
//! watches it go ([`Observer`]).

use burn::tensor::Tensor;

use super::{FocalTaps, GRAPH, LAST_LAYER};

/// Whether a later layer reads layer `index`'s output (Ultralytics' `save` list).
pub(super) fn is_read_later(index: usize) -> bool {
    GRAPH
        .iter()
        .any(|(from, _)| from.contains(&(index as isize)))
}

/// What a pass through some of the layers has computed: the last layer's output, each
/// output a later layer reads, and Detect's predictions once it has run. Only those are
/// kept, so a pass holds no more memory than the graph needs.
#[derive(Clone)]
pub struct Activations {
    /// By layer index; `Some` for the outputs a later layer reads.
    pub(super) kept: Vec<Option<Tensor<4>>>,
    /// The output of the layer before `next` (the images before layer 0).
    pub(super) last: Tensor<4>,
    pub(super) next: usize,
    pub(super) predictions: Option<Tensor<3>>,
}

impl Activations {
    /// A batch of letterboxed images `(B, 3, H, W)`, H and W multiples of 32, before layer 0.
    pub fn input(images: Tensor<4>) -> Self {
        Self {
            kept: vec![None; GRAPH.len()],
            last: images,
            next: 0,
            predictions: None,
        }
    }

    /// Outputs computed elsewhere, to run on from layer `next`: `last` is layer `next - 1`'s
    /// output, `earlier` the outputs of earlier layers that later ones read (4 and 6, to
    /// resume at layer 9 and run into the neck).
    pub fn resume(
        next: usize,
        last: Tensor<4>,
        earlier: impl IntoIterator<Item = (usize, Tensor<4>)>,
    ) -> Self {
        let mut kept = vec![None; GRAPH.len()];
        for (index, output) in earlier {
            kept[index] = Some(output);
        }
        Self {
            kept,
            last,
            next,
            predictions: None,
        }
    }

    /// The output of the last layer run (the images, before any).
    pub fn last(&self) -> &Tensor<4> {
        &self.last
    }

    /// Layer `index`'s output, if kept: those a later layer reads, and the last one run.
    pub fn output(&self, index: usize) -> Option<&Tensor<4>> {
        if index + 1 == self.next && self.next <= LAST_LAYER {
            return Some(&self.last);
        }
        self.kept.get(index)?.as_ref()
    }

    /// What Detect reads, P3/P4/P5 (layers 16, 19 and 22), once layer 22 has run.
    pub fn detect_inputs(&self) -> Option<[Tensor<4>; 3]> {
        let (from, _) = GRAPH[LAST_LAYER];
        let [p3, p4, p5] = [from[0], from[1], from[2]].map(|f| self.kept[f as usize].clone());
        Some([p3?, p4?, p5?])
    }

    /// Detect's predictions, once it has run: `(B, 4 + nc, anchors)`.
    pub fn into_predictions(self) -> Option<Tensor<3>> {
        self.predictions
    }
}

/// Watches a pass layer by layer: collects outputs, takes FocalModulation's taps, times
/// layers. Every method defaults to doing nothing.
pub trait Observer {
    /// Whether FocalModulation should compute and hand over its taps.
    fn wants_focal_taps(&self) -> bool {
        false
    }
    /// FocalModulation's taps from this pass (asked for by `wants_focal_taps`).
    fn focal_taps(&mut self, _taps: FocalTaps) {}
    /// Layer `index` (0–22) has computed `output`.
    fn layer_done(&mut self, _index: usize, _output: &Tensor<4>) {}
    /// Detect (layer 23) has computed the predictions.
    fn detect_done(&mut self, _predictions: &Tensor<3>) {}
}

/// Watches nothing.
impl Observer for () {}

/// Collects every layer's output in order, for checks against a reference.
impl Observer for Vec<Tensor<4>> {
    fn layer_done(&mut self, _: usize, output: &Tensor<4>) {
        self.push(output.clone());
    }
}

/// Takes FocalModulation's taps (none come from an SPPF model).
#[derive(Default)]
pub struct TakeFocalTaps(pub Option<FocalTaps>);

impl Observer for TakeFocalTaps {
    fn wants_focal_taps(&self) -> bool {
        true
    }
    fn focal_taps(&mut self, taps: FocalTaps) {
        self.0 = Some(taps);
    }
}
