//! The model's architecture as data: the rows `[from, repeats, module, args]` of the YAML
//! an Ultralytics checkpoint pickles (`model.yaml`), resolved as Ultralytics' `parse_model`
//! resolves them (the scale's depth, width and channel cap, each block's defaults), into
//! the [`Graph`] the model is built from. One graph type serves YOLOv8, YOLO11 and YOLO26:
//! they differ in their rows, not in code.

mod block;
mod row;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde_json::Value as Json;
use thiserror::Error;

use crate::weights::Weights;
pub use block::{Block, Task};
use row::Row;

/// The YAML names of the blocks this build implements, as an error lists them.
const SUPPORTED: &str = "Conv, C2f, C3k2, SPPF, FocalModulation, C2PSA, nn.Upsample, Concat, and the heads Detect, Segment, Pose, OBB (and YOLO26's Segment26, Pose26, OBB26)";

/// Why a model's YAML cannot be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GraphError {
    #[error(
        "layer {layer} is `{module}`, a block this build does not implement (it runs {SUPPORTED})"
    )]
    UnknownModule { layer: usize, module: String },
    #[error(
        "layer {layer} is a `{module}` head: this build runs detection, segmentation, pose and oriented-box models (Detect, Segment, Pose, OBB), so it refuses the model rather than run it as something else"
    )]
    UnsupportedHead { layer: usize, module: String },
    #[error("layer {layer} (`{module}`): {reason}")]
    BadRow {
        layer: usize,
        module: String,
        reason: String,
    },
    #[error("the model's YAML {0}")]
    BadYaml(String),
}

/// One layer: where it reads from (`-1` the layer before), how many repeated sub-blocks it
/// has (when the YAML says), and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub from: Vec<isize>,
    pub repeats: Option<usize>,
    pub block: Block,
}

/// The model's layers in order, Detect last, and the head's options.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// DFL bins per box side: 16 (YOLOv8, YOLO11), 1 (YOLO26: distances directly).
    pub reg_max: usize,
    /// Whether the head has a one-to-one branch beside the one-to-many one (YOLO26).
    pub end2end: bool,
    /// YOLOv8's class branch (two 3×3 Convs) rather than YOLO11's DWConv stages: Ultralytics
    /// builds the legacy head for every model without a C3k2.
    pub legacy_head: bool,
    /// The YAML's scale (`n` … `x`), when it names one.
    pub scale: Option<String>,
    /// YOLOv8, YOLO11, YOLO26, or the YAML file's name for other layouts.
    pub family: String,
    /// Outputs a later layer reads (Ultralytics' `save`).
    saved: BTreeSet<usize>,
}

/// `x` rounded up to a multiple of 8 (Ultralytics' `make_divisible`).
fn make_divisible(x: f64) -> usize {
    ((x / 8.0).ceil() * 8.0) as usize
}

impl Graph {
    /// The graph of `weights`: from its YAML, or — for files that carry none, written before
    /// the YAML travelled with them — YOLO11's, each block's options read off its tensors.
    pub fn of(weights: &Weights) -> Result<Self, GraphError> {
        match &weights.yaml {
            Some(yaml) => Self::from_yaml(yaml),
            None => Ok(Self::yolo11_from_tensors(weights)),
        }
    }

    /// Resolve a YAML dict as `parse_model` does.
    pub fn from_yaml(yaml: &Json) -> Result<Self, GraphError> {
        let rows = |key: &str| -> Result<&Vec<Json>, GraphError> {
            yaml.get(key)
                .and_then(Json::as_array)
                .ok_or_else(|| GraphError::BadYaml(format!("has no `{key}` list")))
        };
        let (backbone, head) = (rows("backbone")?, rows("head")?);
        let number = |key: &str| yaml.get(key).and_then(Json::as_f64);
        let scale = yaml.get("scale").and_then(Json::as_str).map(str::to_string);
        let (depth, width, max_channels, scale) = match yaml.get("scales").and_then(Json::as_object)
        {
            Some(scales) if !scales.is_empty() => {
                let scale =
                    scale.unwrap_or_else(|| scales.keys().next().cloned().unwrap_or_default());
                let triple = scales
                    .get(&scale)
                    .and_then(Json::as_array)
                    .and_then(|v| {
                        Some((
                            v.first()?.as_f64()?,
                            v.get(1)?.as_f64()?,
                            v.get(2)?.as_f64()?,
                        ))
                    })
                    .ok_or_else(|| {
                        GraphError::BadYaml(format!(
                            "has no [depth, width, max_channels] for scale `{scale}`"
                        ))
                    })?;
                (triple.0, triple.1, triple.2, Some(scale))
            }
            _ => (
                number("depth_multiple").unwrap_or(1.0),
                number("width_multiple").unwrap_or(1.0),
                f64::INFINITY,
                scale,
            ),
        };
        let nc = number("nc").map(|n| n as usize);
        let reg_max = number("reg_max").map_or(16, |r| r as usize);
        let end2end = yaml.get("end2end").and_then(Json::as_bool).unwrap_or(false);
        let large = matches!(scale.as_deref(), Some("m" | "l" | "x"));

        let mut nodes = Vec::new();
        let mut legacy_head = true;
        for (layer, row) in backbone.iter().chain(head).enumerate() {
            let row = Row::parse(layer, row)?;
            let out = |args: &[Json]| -> Result<Option<usize>, GraphError> {
                let c2 = row
                    .int_arg(args, 0)?
                    .ok_or_else(|| row.bad("has no output channels"))?;
                Ok(Some(make_divisible((c2 as f64).min(max_channels) * width)))
            };
            let repeats = if row.repeats > 1 {
                ((row.repeats as f64 * depth).round_ties_even() as usize).max(1)
            } else {
                row.repeats
            };
            let args = &row.args;
            let block = match row.module.as_str() {
                "Conv" => Block::Conv {
                    out: out(args)?,
                    kernel: row.int_arg(args, 1)?.unwrap_or(1),
                    stride: row.int_arg(args, 2)?.unwrap_or(1),
                },
                "C2f" => Block::C2f {
                    out: out(args)?,
                    shortcut: row.bool_arg(args, 1)?.unwrap_or(false),
                },
                "C3k2" => {
                    legacy_head = false;
                    Block::C3k2 {
                        out: out(args)?,
                        c3k: large || row.bool_arg(args, 1)?.unwrap_or(false),
                        attn: row.bool_arg(args, 3)?.unwrap_or(false),
                        shortcut: row.bool_arg(args, 5)?.unwrap_or(true),
                    }
                }
                "SPPF" => Block::Sppf {
                    out: out(args)?,
                    kernel: row.int_arg(args, 1)?.unwrap_or(5),
                    n: row.int_arg(args, 2)?.unwrap_or(3),
                    shortcut: row.bool_arg(args, 3)?.unwrap_or(false),
                },
                "FocalModulation" => Block::FocalModulation,
                "C2PSA" => Block::C2Psa { out: out(args)? },
                "nn.Upsample" | "torch.nn.Upsample" | "Upsample" => {
                    let factor = row.int_arg(args, 1)?;
                    let mode = args.get(2).and_then(Json::as_str).unwrap_or("nearest");
                    if factor != Some(2) || mode != "nearest" {
                        return Err(row.bad("upsamples other than ×2 nearest are not implemented"));
                    }
                    Block::Upsample
                }
                "Concat" => {
                    if row.int_arg(args, 0)?.unwrap_or(1) != 1 {
                        return Err(
                            row.bad("only channel concatenation (dimension 1) is implemented")
                        );
                    }
                    Block::Concat
                }
                "Detect" | "Segment" | "Segment26" | "Pose" | "Pose26" | "OBB" | "OBB26" => {
                    let yolo26 = row.module.ends_with("26");
                    let task = match row.module.trim_end_matches("26") {
                        "Segment" => Task::Segment {
                            masks: row.int_arg(args, 1)?.unwrap_or(32),
                            yolo26,
                        },
                        "Pose" => {
                            let shape = match args.get(1) {
                                Some(Json::String(s)) if s == "kpt_shape" => yaml.get("kpt_shape"),
                                other => other,
                            };
                            let (keypoints, dims) = match shape.and_then(Json::as_array) {
                                None => (17, 3),
                                Some(pair) => match pair.as_slice() {
                                    [k, d] => (
                                        k.as_u64().unwrap_or(0) as usize,
                                        d.as_u64().unwrap_or(0) as usize,
                                    ),
                                    _ => (0, 0),
                                },
                            };
                            if keypoints == 0 || !(2..=3).contains(&dims) {
                                return Err(
                                    row.bad("has a kpt_shape that is not [keypoints, 2 or 3]")
                                );
                            }
                            Task::Pose {
                                keypoints,
                                dims,
                                yolo26,
                            }
                        }
                        "OBB" => {
                            if row.int_arg(args, 1)?.unwrap_or(1) != 1 {
                                return Err(row.bad("predicts more than one angle"));
                            }
                            Task::Obb { yolo26 }
                        }
                        _ => Task::Detect,
                    };
                    Block::Detect {
                        nc: match args.first() {
                            Some(Json::String(s)) if s == "nc" => nc,
                            Some(v) => v.as_u64().map(|n| n as usize),
                            None => nc,
                        },
                        task,
                    }
                }
                "Classify" | "WorldDetect" | "YOLOEDetect" | "YOLOESegment" | "RTDETRDecoder"
                | "v10Detect" => {
                    return Err(GraphError::UnsupportedHead {
                        layer,
                        module: row.module,
                    });
                }
                _ => {
                    return Err(GraphError::UnknownModule {
                        layer,
                        module: row.module,
                    });
                }
            };
            let counted = matches!(
                block,
                Block::C2f { .. } | Block::C3k2 { .. } | Block::C2Psa { .. }
            );
            if !counted && repeats != 1 {
                return Err(row.bad(&format!(
                    "repeats {} times, which this block does not",
                    row.repeats
                )));
            }
            nodes.push(Node {
                from: row.from,
                repeats: counted.then_some(repeats),
                block,
            });
        }
        let family = if nodes.iter().any(|n| matches!(n.block, Block::C2f { .. })) {
            "YOLOv8"
        } else if end2end {
            "YOLO26"
        } else {
            "YOLO11"
        };
        Self::new(nodes, reg_max, end2end, legacy_head, scale, family.into())
    }

    /// YOLO11's layout (`yolo11.yaml`), each C3k2's stage type read off its tensors.
    fn yolo11_from_tensors(weights: &Weights) -> Self {
        let c3k = |layer: usize| weights.root().pp(layer).pp("m").pp(0).pp("cv3").exists();
        let node = |from: &[isize], block| Node {
            from: from.to_vec(),
            repeats: None,
            block,
        };
        let conv = |stride| {
            node(
                &[-1],
                Block::Conv {
                    out: None,
                    kernel: 3,
                    stride,
                },
            )
        };
        let c3k2 = |from: &[isize], layer| {
            node(
                from,
                Block::C3k2 {
                    out: None,
                    c3k: c3k(layer),
                    attn: false,
                    shortcut: true,
                },
            )
        };
        let nodes = vec![
            conv(2),
            conv(2),
            c3k2(&[-1], 2),
            conv(2),
            c3k2(&[-1], 4),
            conv(2),
            c3k2(&[-1], 6),
            conv(2),
            c3k2(&[-1], 8),
            node(
                &[-1],
                Block::Sppf {
                    out: None,
                    kernel: 5,
                    n: 3,
                    shortcut: false,
                },
            ),
            node(&[-1], Block::C2Psa { out: None }),
            node(&[-1], Block::Upsample),
            node(&[-1, 6], Block::Concat),
            c3k2(&[-1], 13),
            node(&[-1], Block::Upsample),
            node(&[-1, 4], Block::Concat),
            c3k2(&[-1], 16),
            conv(2),
            node(&[-1, 13], Block::Concat),
            c3k2(&[-1], 19),
            conv(2),
            node(&[-1, 10], Block::Concat),
            c3k2(&[-1], 22),
            node(
                &[16, 19, 22],
                Block::Detect {
                    nc: None,
                    task: Task::Detect,
                },
            ),
        ];
        Self::new(nodes, 16, false, false, None, "YOLO11".into())
            .expect("YOLO11's layout is a valid graph")
    }

    fn new(
        nodes: Vec<Node>,
        reg_max: usize,
        end2end: bool,
        legacy_head: bool,
        scale: Option<String>,
        family: String,
    ) -> Result<Self, GraphError> {
        let detects = nodes
            .iter()
            .filter(|n| matches!(n.block, Block::Detect { .. }))
            .count();
        let last = nodes.len().checked_sub(1);
        if detects != 1 || !last.is_some_and(|l| matches!(nodes[l].block, Block::Detect { .. })) {
            return Err(GraphError::BadYaml(
                "does not end in one Detect head".into(),
            ));
        }
        let mut saved = BTreeSet::new();
        for (layer, node) in nodes.iter().enumerate() {
            let most = if matches!(node.block, Block::Detect { .. } | Block::Concat) {
                usize::MAX
            } else {
                1
            };
            let bad = |reason: String| GraphError::BadRow {
                layer,
                module: node.block.name().into(),
                reason,
            };
            if !(1..=most).contains(&node.from.len()) {
                return Err(bad(format!("reads {} inputs", node.from.len())));
            }
            for &from in &node.from {
                match from {
                    -1 if layer > 0 || node.from.len() == 1 => {}
                    f if f >= 0 && (f as usize) < layer => {
                        saved.insert(f as usize);
                    }
                    f => {
                        return Err(bad(format!(
                            "reads layer {f}, which does not come before it"
                        )));
                    }
                }
            }
            if layer == 0 && node.from != [-1] {
                return Err(bad("the first layer must read the image (from -1)".into()));
            }
        }
        if let Block::Detect { .. } = nodes[nodes.len() - 1].block
            && nodes[nodes.len() - 1].from.len() != 3
        {
            return Err(GraphError::BadRow {
                layer: nodes.len() - 1,
                module: "Detect".into(),
                reason: format!(
                    "reads {} levels; this build runs P3, P4 and P5 heads (three levels)",
                    nodes[nodes.len() - 1].from.len()
                ),
            });
        }
        if reg_max == 0 {
            return Err(GraphError::BadYaml("has reg_max 0".into()));
        }
        Ok(Self {
            nodes,
            reg_max,
            end2end,
            legacy_head,
            scale,
            family,
            saved,
        })
    }

    /// The index of the last layer, Detect.
    pub fn detect_layer(&self) -> usize {
        self.nodes.len() - 1
    }

    /// What the head predicts.
    pub fn task(&self) -> Task {
        match self.nodes[self.detect_layer()].block {
            Block::Detect { task, .. } => task,
            _ => unreachable!("the graph ends in Detect"),
        }
    }

    /// Whether a later layer reads layer `index`'s output.
    pub fn is_read_later(&self, index: usize) -> bool {
        self.saved.contains(&index)
    }

    /// The layers layer `index` reads.
    pub fn from(&self, index: usize) -> &[isize] {
        &self.nodes[index].from
    }
}
