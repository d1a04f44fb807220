//! YOLO11 in burn, layer for layer as Ultralytics builds it, with layer 9 either SPPF or
//! FocalModulation. The module tree mirrors Ultralytics' (`model.9.f_linear`,
//! `model.23.cv3.0.0.0.conv`), and the architecture — scale, class count, C3k stages,
//! layer-9 variant — is read from the weights rather than declared.

pub mod attention;
pub mod blocks;
mod check;
pub mod conv;
pub mod detect;
pub mod focal;

use burn::module::Module;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};
use thiserror::Error;

use crate::compute::kernels::Activation;
use crate::compute::kernels::cpu;
use crate::weights::{Weights, WeightsError};
use attention::C2Psa;
use blocks::{C3k2, Sppf};
use conv::Conv;
use detect::Detect;
pub use focal::{FocalModulation, FocalSettings, FocalTaps};

#[derive(Debug, Error)]
pub enum ModelError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("not a YOLO11 detection model: {0}")]
    Architecture(String),
}

/// Index of the layer that is SPPF in stock YOLO11 and FocalModulation in the twin.
pub const LAYER9: usize = 9;
/// Index of the last layer, Detect.
pub const LAST_LAYER: usize = GRAPH.len() - 1;

/// Where each layer of YOLO11 takes its input from (Ultralytics' `from`), and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Conv { stride: usize },
    C3k2,
    Layer9,
    C2Psa,
    Upsample,
    Concat,
    Detect,
}

/// YOLO11's graph, as `yolo11.yaml` lays it out: (inputs, kind); `-1` is the previous layer.
const GRAPH: [(&[isize], Kind); 24] = [
    (&[-1], Kind::Conv { stride: 2 }), // 0  P1/2
    (&[-1], Kind::Conv { stride: 2 }), // 1  P2/4
    (&[-1], Kind::C3k2),               // 2
    (&[-1], Kind::Conv { stride: 2 }), // 3  P3/8
    (&[-1], Kind::C3k2),               // 4
    (&[-1], Kind::Conv { stride: 2 }), // 5  P4/16
    (&[-1], Kind::C3k2),               // 6
    (&[-1], Kind::Conv { stride: 2 }), // 7  P5/32
    (&[-1], Kind::C3k2),               // 8
    (&[-1], Kind::Layer9),             // 9  SPPF or FocalModulation
    (&[-1], Kind::C2Psa),              // 10
    (&[-1], Kind::Upsample),           // 11
    (&[-1, 6], Kind::Concat),          // 12
    (&[-1], Kind::C3k2),               // 13
    (&[-1], Kind::Upsample),           // 14
    (&[-1, 4], Kind::Concat),          // 15
    (&[-1], Kind::C3k2),               // 16 P3 out
    (&[-1], Kind::Conv { stride: 2 }), // 17
    (&[-1, 13], Kind::Concat),         // 18
    (&[-1], Kind::C3k2),               // 19 P4 out
    (&[-1], Kind::Conv { stride: 2 }), // 20
    (&[-1, 10], Kind::Concat),         // 21
    (&[-1], Kind::C3k2),               // 22 P5 out
    (&[16, 19, 22], Kind::Detect),     // 23
];

/// Nearest-neighbour ×2 upsampling (`nn.Upsample(None, 2, "nearest")`).
#[derive(Module, Debug, Default)]
pub struct Upsample;

/// Channel concatenation.
#[derive(Module, Debug, Default)]
pub struct Concat;

/// One entry of `model`, as Ultralytics' `nn.Sequential` holds it.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Layer {
    Conv(Conv),
    C3k2(C3k2),
    Sppf(Sppf),
    FocalModulation(FocalModulation),
    C2Psa(C2Psa),
    Upsample(Upsample),
    Concat(Concat),
    Detect(Detect),
}

/// What layer 9 is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer9 {
    Sppf,
    FocalModulation(FocalSettings),
}

impl std::fmt::Display for Layer9 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sppf => f.write_str("SPPF"),
            Self::FocalModulation(s) => write!(
                f,
                "FocalModulation (dim {}, focal_level {}, focal_window {}, focal_factor {}, normalize_modulator {})",
                s.dim, s.focal_level, s.focal_window, s.focal_factor, s.normalize_modulator
            ),
        }
    }
}

/// A summary of the loaded model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// `n`, `s`, `m`, `l`, `x`, or `custom` for widths/depths outside the five scales.
    pub scale: String,
    pub num_classes: usize,
    pub class_names: Vec<String>,
    pub layer9: Layer9,
    pub parameters: usize,
}

impl ModelInfo {
    /// Whether layer 9 is a FocalModulation (and so has gate maps to show).
    pub fn has_focal(&self) -> bool {
        matches!(self.layer9, Layer9::FocalModulation(_))
    }
}

/// The predictions of one forward pass, and FocalModulation's taps when asked for.
pub struct ModelOutput {
    /// `(B, 4 + nc, anchors)`: xywh in input pixels, then class probabilities.
    pub predictions: Tensor<3>,
    pub focal: Option<FocalTaps>,
}

#[derive(Module, Debug)]
pub struct Yolo {
    pub model: Vec<Layer>,
}

impl Yolo {
    /// Build the model the weights describe, on `device`, folding BatchNorm as it goes.
    pub fn load(weights: &Weights, device: &Device) -> Result<(Self, ModelInfo), ModelError> {
        let root = weights.root();
        let mut model = Vec::with_capacity(GRAPH.len());
        for (index, (_, kind)) in GRAPH.iter().enumerate() {
            let view = root.pp(index);
            let layer = match kind {
                Kind::Conv { stride } => {
                    Layer::Conv(Conv::load(&view, *stride, false, Activation::Silu, device)?)
                }
                Kind::C3k2 => Layer::C3k2(C3k2::load(&view, device)?),
                Kind::Layer9 if view.pp("f_linear").exists() => {
                    Layer::FocalModulation(FocalModulation::load(&view, &weights.focal, device)?)
                }
                Kind::Layer9 => Layer::Sppf(Sppf::load(&view, device)?),
                Kind::C2Psa => Layer::C2Psa(C2Psa::load(&view, device)?),
                Kind::Upsample => Layer::Upsample(Upsample),
                Kind::Concat => Layer::Concat(Concat),
                Kind::Detect => Layer::Detect(Detect::load(&view, device)?),
            };
            model.push(layer);
        }
        if root.pp(GRAPH.len()).exists() {
            return Err(ModelError::Architecture(format!(
                "the weights have layers past {}: not YOLO11",
                GRAPH.len() - 1
            )));
        }
        let yolo = Self { model };
        yolo.check_channels()?;
        let info = yolo.describe(weights)?;
        Ok((yolo, info))
    }

    fn describe(&self, weights: &Weights) -> Result<ModelInfo, ModelError> {
        let Layer::Detect(detect) = &self.model[GRAPH.len() - 1] else {
            unreachable!("layer 23 is Detect")
        };
        let num_classes = detect.num_classes;
        let class_names = if weights.class_names.len() == num_classes {
            weights.class_names.clone()
        } else {
            (0..num_classes).map(|i| format!("class{i}")).collect()
        };
        let layer9 = match &self.model[LAYER9] {
            Layer::FocalModulation(f) => Layer9::FocalModulation(f.settings()),
            _ => Layer9::Sppf,
        };
        Ok(ModelInfo {
            scale: self.scale().to_string(),
            num_classes,
            class_names,
            layer9,
            parameters: weights.parameter_count(),
        })
    }

    /// The Ultralytics scale, recognised by the stem's width and the first C3k2's depth.
    fn scale(&self) -> &'static str {
        let (Layer::Conv(stem), Layer::C3k2(c3k2)) = (&self.model[0], &self.model[2]) else {
            return "custom";
        };
        match (stem.out_channels(), c3k2.m.len()) {
            (16, 1) => "n",
            (32, 1) => "s",
            (64, 1) => "m",
            (64, 2) => "l",
            (96, 2) => "x",
            _ => "custom",
        }
    }

    pub fn focal(&self) -> Option<&FocalModulation> {
        match &self.model[LAYER9] {
            Layer::FocalModulation(f) => Some(f),
            _ => None,
        }
    }

    /// The outputs of layers 4, 6 and 8: what the neck reads from the backbone (layer 8's
    /// through layer 9). Layers 0–8 are a plain chain.
    pub fn backbone(&self, x: Tensor<4>) -> [Tensor<4>; 3] {
        let mut taps = Vec::with_capacity(3);
        let mut y = x;
        for (index, layer) in self.model[..LAYER9].iter().enumerate() {
            y = match layer {
                Layer::Conv(m) => m.forward(y),
                Layer::C3k2(m) => m.forward(y),
                _ => unreachable!("layers 0-8 are Conv and C3k2"),
            };
            if matches!(index, 4 | 6 | 8) {
                taps.push(y.clone());
            }
        }
        taps.try_into().expect("layers 4, 6 and 8")
    }

    /// From the backbone's outputs (layers 4, 6, 8) through the neck: layer 9's and layer
    /// 10's outputs and the P3/P4/P5 features Detect reads.
    pub fn neck(&self, backbone: [Tensor<4>; 3]) -> NeckOutput {
        let [layer4, layer6, layer8] = backbone;
        let mut saved: Vec<Option<Tensor<4>>> = vec![None; GRAPH.len()];
        saved[4] = Some(layer4);
        saved[6] = Some(layer6);
        let mut trace = Vec::new();
        let (features, _) = self.run_layers(LAYER9, layer8, &mut saved, false, &mut trace);
        let mut trace = trace.into_iter();
        NeckOutput {
            layer9: trace.next().expect("layer 9 ran"),
            layer10: trace.next().expect("layer 10 ran"),
            features,
        }
    }

    pub fn detect(&self) -> &Detect {
        match &self.model[GRAPH.len() - 1] {
            Layer::Detect(m) => m,
            _ => unreachable!("layer 23 is Detect"),
        }
    }

    /// Layer 9 alone, SPPF or FocalModulation.
    pub fn layer9(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.model[LAYER9] {
            Layer::Sppf(m) => m.forward(x),
            Layer::FocalModulation(m) => m.forward(x),
            _ => unreachable!("layer 9 is SPPF or FocalModulation"),
        }
    }

    /// Layer 10 (C2PSA), which reads layer 9's output.
    pub fn layer10(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.model[LAYER9 + 1] {
            Layer::C2Psa(m) => m.forward(x),
            _ => unreachable!("layer 10 is C2PSA"),
        }
    }

    /// Predictions for a batch of letterboxed images `(B, 3, H, W)`, H and W multiples of 32.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        self.run(x, false, &mut ()).predictions
    }

    /// Predictions, plus FocalModulation's taps from the same pass (none for an SPPF model).
    pub fn forward_with_taps(&self, x: Tensor<4>) -> ModelOutput {
        self.run(x, true, &mut ())
    }

    /// Every layer's output before Detect (index = layer), for checks against a reference.
    pub fn forward_layers(&self, x: Tensor<4>) -> (ModelOutput, Vec<Tensor<4>>) {
        let mut layers = Vec::with_capacity(GRAPH.len() - 1);
        let output = self.run(x, true, &mut layers);
        (output, layers)
    }

    /// Predictions, with `observer` told of every layer as it finishes (profiling).
    pub fn forward_observed(&self, x: Tensor<4>, observer: &mut dyn LayerObserver) -> Tensor<3> {
        self.run(x, false, observer).predictions
    }

    /// What layer `index` is, as Ultralytics names its modules (`C3k2`, `FocalModulation`).
    pub fn layer_name(&self, index: usize) -> &'static str {
        match &self.model[index] {
            Layer::Conv(_) => "Conv",
            Layer::C3k2(_) => "C3k2",
            Layer::Sppf(_) => "SPPF",
            Layer::FocalModulation(_) => "FocalModulation",
            Layer::C2Psa(_) => "C2PSA",
            Layer::Upsample(_) => "Upsample",
            Layer::Concat(_) => "Concat",
            Layer::Detect(_) => "Detect",
        }
    }

    fn run(&self, x: Tensor<4>, want_taps: bool, observer: &mut dyn LayerObserver) -> ModelOutput {
        let mut saved: Vec<Option<Tensor<4>>> = vec![None; GRAPH.len()];
        let (features, focal) = self.run_layers(0, x, &mut saved, want_taps, observer);
        let predictions = self.detect().forward(features);
        observer.detect_done(&predictions);
        ModelOutput { predictions, focal }
    }

    /// Layers `first..23` on `current` (layer `first - 1`'s output, or the image), reading
    /// earlier layers' outputs from `saved`; the P3/P4/P5 features Detect reads, and
    /// FocalModulation's taps when asked for. `observer` sees every layer's output.
    fn run_layers(
        &self,
        first: usize,
        mut current: Tensor<4>,
        saved: &mut [Option<Tensor<4>>],
        want_taps: bool,
        observer: &mut dyn LayerObserver,
    ) -> ([Tensor<4>; 3], Option<FocalTaps>) {
        // Keep only the outputs a later layer reads.
        let referenced = |i: usize| GRAPH.iter().any(|(from, _)| from.contains(&(i as isize)));
        let mut taps = None;
        for (index, (layer, (from, _))) in
            self.model.iter().zip(GRAPH.iter()).enumerate().skip(first)
        {
            let input = |f: isize| {
                if f < 0 {
                    current.clone()
                } else {
                    saved[f as usize].clone().expect("saved earlier")
                }
            };
            current = match layer {
                Layer::Conv(m) => m.forward(current),
                Layer::C3k2(m) => m.forward(current),
                Layer::Sppf(m) => m.forward(current),
                Layer::FocalModulation(m) if want_taps => {
                    let (out, t) = m.forward_with_taps(current);
                    taps = Some(t);
                    out
                }
                Layer::FocalModulation(m) => m.forward(current),
                Layer::C2Psa(m) => m.forward(current),
                Layer::Upsample(_) if cpu::on_flex(&current) => cpu::upsample_nearest2x(current),
                Layer::Upsample(_) => {
                    let [_, _, h, w] = current.dims();
                    interpolate(
                        current,
                        InterpolateOptions::new(InterpolateMode::Nearest)
                            .with_output_size([2 * h, 2 * w]),
                    )
                }
                Layer::Concat(_) => Tensor::cat(from.iter().map(|&f| input(f)).collect(), 1),
                Layer::Detect(_) => return ([from[0], from[1], from[2]].map(input), taps),
            };
            if referenced(index) {
                saved[index] = Some(current.clone());
            }
            observer.layer_done(index, &current);
        }
        unreachable!("the last layer is Detect")
    }
}

/// Watches a forward pass layer by layer: collects outputs (a `Vec`), times layers.
pub trait LayerObserver {
    /// Layer `index` (0–22) has computed `output`.
    fn layer_done(&mut self, index: usize, output: &Tensor<4>);
    /// Detect (layer 23) has computed the predictions.
    fn detect_done(&mut self, _predictions: &Tensor<3>) {}
}

/// Watches nothing.
impl LayerObserver for () {
    fn layer_done(&mut self, _: usize, _: &Tensor<4>) {}
}

/// Collects every layer's output in order.
impl LayerObserver for Vec<Tensor<4>> {
    fn layer_done(&mut self, _: usize, output: &Tensor<4>) {
        self.push(output.clone());
    }
}

/// What [`Yolo::neck`] computes.
pub struct NeckOutput {
    pub layer9: Tensor<4>,
    pub layer10: Tensor<4>,
    /// P3, P4 and P5, as Detect reads them.
    pub features: [Tensor<4>; 3],
}
