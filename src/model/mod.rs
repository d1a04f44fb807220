//! YOLOv8, YOLO11 and YOLO26 in burn, layer for layer as Ultralytics builds them, with
//! layer 9 either SPPF or FocalModulation. The layers are those of the checkpoint's own
//! YAML ([`graph`]); the module tree mirrors Ultralytics' (`model.9.f_linear`,
//! `model.23.one2one_cv3.0.0.0.conv`) so the weights load by name.

pub mod attention;
pub mod blocks;
mod check;
pub mod conv;
pub mod detect;
pub mod flops;
pub mod focal;
pub mod graph;
mod pass;
pub mod proto;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use thiserror::Error;

use crate::compute::kernels::Activation;
use crate::weights::{Weights, WeightsError};
use attention::C2Psa;
use blocks::{C2f, CspOptions, Sppf, StageKind};
use conv::Conv;
use detect::{Detect, DetectOptions};
pub use detect::{Head, HeadOutput};
pub use focal::{FocalModulation, FocalModulationConfig, FocalTaps};
pub use graph::{Block, Graph, GraphError, Task};
pub use pass::{Activations, Observer, TakeFocalTaps};

#[derive(Debug, Error)]
pub enum ModelError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The tensors do not fit the architecture (named by tensor path).
    #[error("the weights do not fit the model: {0}")]
    Architecture(String),
}

/// Index of the layer that is SPPF in stock YOLOv8, YOLO11 and YOLO26, and FocalModulation
/// where the tutorial replaced it.
pub const LAYER9: usize = 9;

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
    /// C2f (YOLOv8) or C3k2 (YOLO11, YOLO26).
    C2f(C2f),
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
    /// YOLOv8, YOLO11 or YOLO26 (from the layout of the model's YAML).
    pub family: String,
    /// `n`, `s`, `m`, `l`, `x`, or `custom` for widths/depths outside the five scales.
    pub scale: String,
    pub num_classes: usize,
    pub class_names: Vec<String>,
    pub layer9: Layer9,
    pub parameters: usize,
    /// Whether the head has YOLO26's one-to-one branch (NMS-free predictions).
    pub has_one_to_one: bool,
    /// What the head predicts beside boxes: masks, keypoints or an angle.
    pub task: Task,
}

impl ModelInfo {
    /// Whether layer 9 is a FocalModulation (and so has gate maps to show).
    pub fn has_focal(&self) -> bool {
        matches!(self.layer9, Layer9::FocalModulation { .. })
    }

    /// "80 classes", or "1 class".
    pub fn classes(&self) -> String {
        match self.num_classes {
            1 => "1 class".to_string(),
            n => format!("{n} classes"),
        }
    }

    /// The family, scale and task as Ultralytics names the model: `YOLO11n`, `YOLOv8s`,
    /// `YOLO26n-seg`, `YOLO11n-pose`, `YOLO11n-obb`.
    pub fn name(&self) -> String {
        let task = match self.task {
            Task::Detect => "",
            Task::Segment { .. } => "-seg",
            Task::Pose { .. } => "-pose",
            Task::Obb { .. } => "-obb",
        };
        format!("{}{}{task}", self.family, self.scale)
    }

    /// How the model's predictions are laid out per anchor.
    pub fn layout(&self) -> crate::inference::postprocess::Layout {
        crate::inference::postprocess::Layout {
            num_classes: self.num_classes,
            task: self.task,
        }
    }

    /// Which head makes the boxes, as `info` and the status bar say it.
    pub fn head(&self, nms_free: bool) -> &'static str {
        match (self.has_one_to_one, nms_free) {
            (true, true) => "one-to-one head, no NMS",
            (true, false) => "one-to-many head + NMS",
            (false, _) => "NMS",
        }
    }
}

#[derive(Module, Debug)]
pub struct Yolo {
    pub model: Vec<Layer>,
    /// The architecture the layers were built from: what each reads.
    #[module(skip)]
    pub graph: Graph,
}

impl Yolo {
    /// Build the model the weights describe — the layers of its YAML (YOLO11's for files
    /// without one), each from its tensors — on `device`, folding BatchNorm as it goes.
    pub fn load(weights: &Weights, device: &Device) -> Result<(Self, ModelInfo), ModelError> {
        let graph = Graph::of(weights)?;
        let root = weights.root();
        let mut model = Vec::with_capacity(graph.nodes.len());
        for (index, node) in graph.nodes.iter().enumerate() {
            let view = root.pp(index);
            let csp = |stage, shortcut| CspOptions {
                stage,
                shortcut,
                repeats: node.repeats,
            };
            let layer = match &node.block {
                Block::Conv { stride, .. } => {
                    Layer::Conv(Conv::load(&view, *stride, false, Activation::Silu, device)?)
                }
                Block::C2f { shortcut, .. } => Layer::C2f(C2f::load(
                    &view,
                    csp(StageKind::Bottleneck, *shortcut),
                    device,
                )?),
                Block::C3k2 {
                    c3k,
                    attn,
                    shortcut,
                    ..
                } => {
                    let stage = match (attn, c3k) {
                        (true, _) => StageKind::Attention,
                        (false, true) => StageKind::C3k,
                        (false, false) => StageKind::Bottleneck,
                    };
                    Layer::C2f(C2f::load(&view, csp(stage, *shortcut), device)?)
                }
                // SPPF and FocalModulation stand in for each other (a distilled layer
                // replaces one with the other): the tensors say which this is.
                Block::Sppf { .. } | Block::FocalModulation if view.pp("f_linear").exists() => {
                    Layer::FocalModulation(FocalModulation::load(&view, &weights.focal, device)?)
                }
                Block::Sppf {
                    kernel,
                    n,
                    shortcut,
                    ..
                } => Layer::Sppf(Sppf::load(&view, *kernel, *n, *shortcut, device)?),
                Block::FocalModulation => Layer::Sppf(Sppf::load(&view, 5, 3, false, device)?),
                Block::C2Psa { .. } => Layer::C2Psa(C2Psa::load(&view, node.repeats, device)?),
                Block::Upsample => Layer::Upsample(Upsample),
                Block::Concat => Layer::Concat(Concat),
                Block::Detect { task, .. } => Layer::Detect(Detect::load(
                    &view,
                    DetectOptions {
                        legacy: graph.legacy_head,
                        reg_max: graph.reg_max,
                        end2end: graph.end2end,
                        task: *task,
                    },
                    device,
                )?),
            };
            model.push(layer);
        }
        if root.pp(graph.nodes.len()).exists() {
            return Err(ModelError::Architecture(format!(
                "the weights have layers past {}, the model's last ({})",
                graph.detect_layer(),
                graph.family
            )));
        }
        let yolo = Self { model, graph };
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
        let layer9 = match self.focal() {
            Some(f) => Layer9::FocalModulation {
                dim: f.dim(),
                config: f.config(),
            },
            None => Layer9::Sppf,
        };
        Ok(ModelInfo {
            family: self.graph.family.clone(),
            scale: self
                .graph
                .scale
                .clone()
                .unwrap_or_else(|| self.scale().to_string()),
            num_classes,
            class_names,
            layer9,
            parameters: weights.parameter_count(),
            has_one_to_one: self.detect().has_one_to_one(),
            task: self.graph.task(),
        })
    }

    /// The Ultralytics scale of a YOLO11 without a YAML, recognised by the stem's width and
    /// the first C3k2's depth.
    fn scale(&self) -> &'static str {
        let (Some(Layer::Conv(stem)), Some(Layer::C2f(c3k2))) =
            (self.model.first(), self.model.get(2))
        else {
            return "custom";
        };
        match (stem.out_channels(), c3k2.depth()) {
            (16, 1) => "n",
            (32, 1) => "s",
            (64, 1) => "m",
            (64, 2) => "l",
            (96, 2) => "x",
            _ => "custom",
        }
    }

    /// The index of the last layer, Detect.
    pub fn last_layer(&self) -> usize {
        self.graph.detect_layer()
    }

    /// The model's FocalModulation block (the first, where the YAML puts more than one).
    pub fn focal(&self) -> Option<&FocalModulation> {
        self.model.iter().find_map(|layer| match layer {
            Layer::FocalModulation(f) => Some(f),
            _ => None,
        })
    }

    pub fn detect(&self) -> &Detect {
        match &self.model[self.last_layer()] {
            Layer::Detect(m) => m,
            _ => unreachable!("the graph ends in Detect"),
        }
    }

    /// Predictions for a batch of letterboxed images `(B, 3, H, W)`, H and W multiples of
    /// 32: `(B, 4 + nc + extra, anchors)`, xywh in input pixels, then class probabilities,
    /// then the task's rows ([`Detect::forward`]).
    pub fn forward(&self, images: Tensor<4>) -> Tensor<3> {
        self.forward_head(images, Head::OneToMany)
    }

    /// As [`forward`](Self::forward), from the chosen head (YOLO26's one-to-one head gives
    /// predictions that need top-k, not NMS).
    pub fn forward_head(&self, images: Tensor<4>, head: Head) -> Tensor<3> {
        self.forward_outputs(images, head).predictions
    }

    /// As [`forward_head`](Self::forward_head), with a segmentation head's prototypes.
    pub fn forward_outputs(&self, images: Tensor<4>, head: Head) -> HeadOutput {
        self.run(
            Activations::input(images).with_head(head),
            self.last_layer(),
            &mut (),
        )
        .into_outputs()
        .expect("the pass ran Detect")
    }

    /// What layer `index` is, as Ultralytics names its modules (`C3k2`, `FocalModulation`).
    pub fn layer_name(&self, index: usize) -> &'static str {
        match &self.model[index] {
            Layer::FocalModulation(_) => "FocalModulation",
            Layer::Sppf(_) => "SPPF",
            _ => self.graph.nodes[index].block.name(),
        }
    }

    /// What Detect reads (P3, P4, P5) in `activations`, once the layers it reads have run.
    pub fn detect_inputs(&self, activations: &Activations) -> Option<[Tensor<4>; 3]> {
        let from = self.graph.from(self.last_layer());
        let [p3, p4, p5] =
            [from[0], from[1], from[2]].map(|f| activations.output(f as usize).cloned());
        Some([p3?, p4?, p5?])
    }
}
