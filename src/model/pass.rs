//! A pass through the layers ([`Yolo::run`]): what it carries from one layer to the next
//! ([`Activations`]), and what watches it go ([`Observer`]).

use burn::tensor::Tensor;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use super::{FocalTaps, Head, HeadOutput, Layer, Yolo};
use crate::compute::kernels::cpu;

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

impl Yolo {
    /// The one way through the model: runs the layers from where `activations` stopped
    /// through layer `through` (Detect is [`last_layer`](Self::last_layer)), and tells `observer` of each as it
    /// finishes. A full pass starts from [`Activations::input`]; distillation stops after the
    /// backbone and resumes a student at layer 9 with [`Activations::resume`].
    ///
    /// # Panics
    /// If a layer reads an output `activations` does not keep (a resume without layers 4
    /// and 6 that runs into the neck).
    pub fn run(
        &self,
        activations: Activations,
        through: usize,
        observer: &mut (impl Observer + Send),
    ) -> Activations {
        // On one of rayon's threads: each of the CPU kernels' parallel loops then starts
        // on this thread, the other joining, instead of waking the pool from outside and
        // sleeping until it is done: about 90 loops a pass, 4–5% of a pass at 320.
        rayon::scope(|_| self.run_layers(activations, through, observer))
    }

    fn run_layers(
        &self,
        activations: Activations,
        through: usize,
        observer: &mut impl Observer,
    ) -> Activations {
        let Activations {
            mut kept,
            mut last,
            next,
            mut predictions,
            head,
        } = activations;
        let last_layer = self.last_layer();
        kept.resize(self.model.len(), None);
        // What a layer that reads several outputs gets for each `from`: the previous
        // layer's (-1) or a kept one.
        let inputs = |kept: &[Option<Tensor<4>>], last: &Tensor<4>, index: usize| {
            self.graph
                .from(index)
                .iter()
                .map(|&from| match from {
                    -1 => last.clone(),
                    from => kept[from as usize].clone().unwrap_or_else(|| {
                        panic!(
                            "layer {index} reads layer {from}, which these activations do not keep"
                        )
                    }),
                })
                .collect::<Vec<_>>()
        };
        let through = through.min(last_layer);
        // A concatenation handed to the next layer as its parts (see `concat_read_by_next`).
        let mut concat_parts = None;
        for index in next..=through {
            last = match &self.model[index] {
                Layer::Conv(m) => m.forward(last),
                Layer::C2f(m) => match concat_parts.take() {
                    Some(parts) => m.forward_concat(parts),
                    None => m.forward(last),
                },
                Layer::Sppf(m) => m.forward(last),
                Layer::FocalModulation(m) if observer.wants_focal_taps() => {
                    let (output, taps) = m.forward_with_taps(last);
                    observer.focal_taps(taps);
                    output
                }
                Layer::FocalModulation(m) => m.forward(last),
                Layer::C2Psa(m) => m.forward(last),
                Layer::Upsample(_) if cpu::on_flex(&last) => cpu::upsample_nearest2x(last),
                Layer::Upsample(_) => {
                    let [_, _, h, w] = last.dims();
                    interpolate(
                        last,
                        InterpolateOptions::new(InterpolateMode::Nearest)
                            .with_output_size([2 * h, 2 * w]),
                    )
                }
                Layer::Concat(_)
                    if index < through
                        && self.concat_read_by_next(index)
                        && !observer.wants_every_output() =>
                {
                    concat_parts = Some(inputs(&kept, &last, index));
                    continue;
                }
                Layer::Concat(_) => Tensor::cat(inputs(&kept, &last, index), 1),
                Layer::Detect(m) => {
                    let output = m.forward(
                        inputs(&kept, &last, index)
                            .try_into()
                            .expect("the graph gives Detect three levels"),
                        head,
                    );
                    observer.detect_done(&output.predictions);
                    predictions = Some(output);
                    continue;
                }
            };
            if self.graph.is_read_later(index) {
                kept[index] = Some(last.clone());
            }
            observer.layer_done(index, &last);
        }
        Activations {
            kept,
            last,
            next: next.max(through + 1),
            predictions,
            head,
        }
    }

    /// Whether Concat `index` is read by the next layer alone, a C2f, whose first
    /// convolution reads the parts where they are: every neck's Concat in the three families.
    fn concat_read_by_next(&self, index: usize) -> bool {
        !self.graph.is_read_later(index)
            && matches!(self.model.get(index + 1), Some(Layer::C2f(_)))
            && self.graph.from(index + 1) == [-1]
    }
}
