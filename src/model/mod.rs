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
mod pass;

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
pub use focal::{FocalModulation, FocalModulationConfig, FocalTaps};
use pass::is_read_later;
pub use pass::{Activations, Observer, TakeFocalTaps};

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
    FocalModulation {
        dim: usize,
        config: FocalModulationConfig,
    },
}

impl std::fmt::Display for Layer9 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sppf => f.write_str("SPPF"),
            Self::FocalModulation { dim, config } => write!(
                f,
                "FocalModulation (dim {dim}, focal_level {}, focal_window {}, focal_factor {}, normalize_modulator {})",
                config.focal_level,
                config.focal_window,
                config.focal_factor,
                config.normalize_modulator
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
        matches!(self.layer9, Layer9::FocalModulation { .. })
    }
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
        let num_classes = self.detect().num_classes;
        let class_names = if weights.class_names.len() == num_classes {
            weights.class_names.clone()
        } else {
            (0..num_classes).map(|i| format!("class{i}")).collect()
        };
        let layer9 = match &self.model[LAYER9] {
            Layer::FocalModulation(f) => Layer9::FocalModulation {
                dim: f.dim(),
                config: f.config(),
            },
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

    pub fn detect(&self) -> &Detect {
        match &self.model[LAST_LAYER] {
            Layer::Detect(m) => m,
            _ => unreachable!("layer 23 is Detect"),
        }
    }

    /// Predictions for a batch of letterboxed images `(B, 3, H, W)`, H and W multiples of
    /// 32: `(B, 4 + nc, anchors)`, xywh in input pixels, then class probabilities.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<3> {
        self.run(Activations::input(images), LAST_LAYER, &mut ())
            .into_predictions()
            .expect("the pass ran Detect")
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

    /// The one way through the model: runs the layers from where `activations` stopped
    /// through layer `through` (Detect is [`LAST_LAYER`]), and tells `observer` of each as it
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
        } = activations;
        let read = |kept: &[Option<Tensor<4>>], index: usize, from: isize| {
            kept[from as usize].clone().unwrap_or_else(|| {
                panic!("layer {index} reads layer {from}, which these activations do not keep")
            })
        };
        for index in next..=through.min(LAST_LAYER) {
            let (from, _) = GRAPH[index];
            last = match &self.model[index] {
                Layer::Conv(m) => m.forward(last),
                Layer::C3k2(m) => m.forward(last),
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
                Layer::Concat(_) => {
                    let inputs = from
                        .iter()
                        .map(|&f| {
                            if f < 0 {
                                last.clone()
                            } else {
                                read(&kept, index, f)
                            }
                        })
                        .collect();
                    Tensor::cat(inputs, 1)
                }
                Layer::Detect(m) => {
                    let features = from
                        .iter()
                        .map(|&f| read(&kept, index, f))
                        .collect::<Vec<_>>();
                    let output = m.forward(features.try_into().expect("Detect reads three levels"));
                    observer.detect_done(&output);
                    predictions = Some(output);
                    continue;
                }
            };
            if is_read_later(index) {
                kept[index] = Some(last.clone());
            }
            observer.layer_done(index, &last);
        }
        Activations {
            kept,
            last,
            next: next.max(through.min(LAST_LAYER) + 1),
            predictions,
        }
    }
}
