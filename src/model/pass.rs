//! What a pass through the layers carries from one to the next ([`Activations`]), and what
//! watches it go ([`Observer`]).

use burn::tensor::Tensor;

use super::{FocalTaps, Head, HeadOutput};

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
    pub(super) predictions: Option<HeadOutput>,
    /// The head Detect runs.
    pub(super) head: Head,
}

impl Activations {
    /// A batch of letterboxed images `(B, 3, H, W)`, H and W multiples of 32, before layer 0.
    pub fn input(images: Tensor<4>) -> Self {
        Self {
            kept: Vec::new(),
            last: images,
            next: 0,
            predictions: None,
            head: Head::OneToMany,
        }
    }

    /// These activations, Detect to run `head`.
    pub fn with_head(self, head: Head) -> Self {
        Self { head, ..self }
    }

    /// Outputs computed elsewhere, to run on from layer `next`: `last` is layer `next - 1`'s
    /// output, `earlier` the outputs of earlier layers that later ones read (4 and 6, to
    /// resume at layer 9 and run into the neck).
    pub fn resume(
        next: usize,
        last: Tensor<4>,
        earlier: impl IntoIterator<Item = (usize, Tensor<4>)>,
    ) -> Self {
        let mut kept = Vec::new();
        for (index, output) in earlier {
            if kept.len() <= index {
                kept.resize(index + 1, None);
            }
            kept[index] = Some(output);
        }
        Self {
            kept,
            last,
            next,
            predictions: None,
            head: Head::OneToMany,
        }
    }

    /// The output of the last layer run (the images, before any).
    pub fn last(&self) -> &Tensor<4> {
        &self.last
    }

    /// Layer `index`'s output, if kept: those a later layer reads, and the last one run.
    pub fn output(&self, index: usize) -> Option<&Tensor<4>> {
        if index + 1 == self.next && self.predictions.is_none() {
            return Some(&self.last);
        }
        self.kept.get(index)?.as_ref()
    }

    /// Detect's predictions, once it has run: `(B, 4 + nc + extra, anchors)`.
    pub fn into_predictions(self) -> Option<Tensor<3>> {
        self.predictions.map(|output| output.predictions)
    }

    /// Detect's predictions and a segmentation head's prototypes, once it has run.
    pub fn into_outputs(self) -> Option<HeadOutput> {
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
    /// Whether `layer_done` must see every layer's output. Otherwise a Concat that only the
    /// next layer reads, a C2f, is handed to it as its parts, not written out, and
    /// `layer_done` does not hear of it.
    fn wants_every_output(&self) -> bool {
        false
    }
    /// Layer `index` (any but Detect) has computed `output`.
    fn layer_done(&mut self, _index: usize, _output: &Tensor<4>) {}
    /// Detect (the last layer) has computed the predictions.
    fn detect_done(&mut self, _predictions: &Tensor<3>) {}
}

/// Watches nothing.
impl Observer for () {}

/// Collects every layer's output in order, for checks against a reference.
impl Observer for Vec<Tensor<4>> {
    fn wants_every_output(&self) -> bool {
        true
    }
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
