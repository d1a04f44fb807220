//! The model's architecture as data: the rows `[from, repeats, module, args]` of the YAML
//! an Ultralytics checkpoint pickles (`model.yaml`), resolved as Ultralytics' `parse_model`
//! resolves them (the scale's depth, width and channel cap, each block's defaults), into
//! the [`Graph`] the model is built from. One graph type serves YOLOv8, YOLO11 and YOLO26:
//! they differ in their rows, not in code.

use std::collections::BTreeSet;

use serde_json::Value as Json;
use thiserror::Error;

use crate::weights::Weights;

/// The YAML names of the blocks this build implements, as an error lists them.
const SUPPORTED: &str =
    "Conv, C2f, C3k2, SPPF, FocalModulation, C2PSA, nn.Upsample, Concat, Detect";

/// Why a model's YAML cannot be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GraphError {
    #[error(
        "layer {layer} is `{module}`, a block this build does not implement (it runs {SUPPORTED})"
    )]
    UnknownModule { layer: usize, module: String },
    #[error(
        "layer {layer} is a `{module}` head: this build runs detection models (Detect) only, so it refuses the model rather than run it as something else"
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

/// One block of the graph, with the options its YAML row resolves to. `out` is the output
/// channel count the YAML asks for (after the scale's width), when a YAML says so.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Conv {
        out: Option<usize>,
        kernel: usize,
        stride: usize,
    },
    /// YOLOv8's C2f: Bottleneck stages, residual only where `shortcut`.
    C2f {
        out: Option<usize>,
        shortcut: bool,
    },
    /// YOLO11's and YOLO26's C3k2: Bottleneck, C3k, or Bottleneck + PSABlock (`attn`) stages.
    C3k2 {
        out: Option<usize>,
        c3k: bool,
        attn: bool,
        shortcut: bool,
    },
    /// `n` chained max-pools of `kernel`; plus the input when `shortcut` (YOLO26).
    Sppf {
        out: Option<usize>,
        kernel: usize,
        n: usize,
        shortcut: bool,
    },
    FocalModulation,
    C2Psa {
        out: Option<usize>,
    },
    Upsample,
    Concat,
    Detect {
        nc: Option<usize>,
    },
}

impl Block {
    /// The module's name as Ultralytics' YAML writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Block::Conv { .. } => "Conv",
            Block::C2f { .. } => "C2f",
            Block::C3k2 { .. } => "C3k2",
            Block::Sppf { .. } => "SPPF",
            Block::FocalModulation => "FocalModulation",
            Block::C2Psa { .. } => "C2PSA",
            Block::Upsample => "Upsample",
            Block::Concat => "Concat",
            Block::Detect { .. } => "Detect",
        }
    }
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
                "Detect" => Block::Detect {
                    nc: match args.first() {
                        Some(Json::String(s)) if s == "nc" => nc,
                        Some(v) => v.as_u64().map(|n| n as usize),
                        None => nc,
                    },
                },
                "Segment" | "Segment26" | "Pose" | "Pose26" | "OBB" | "OBB26" | "Classify"
                | "WorldDetect" | "YOLOEDetect" | "YOLOESegment" | "RTDETRDecoder"
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
            node(&[16, 19, 22], Block::Detect { nc: None }),
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

    /// Whether a later layer reads layer `index`'s output.
    pub fn is_read_later(&self, index: usize) -> bool {
        self.saved.contains(&index)
    }

    /// The layers layer `index` reads.
    pub fn from(&self, index: usize) -> &[isize] {
        &self.nodes[index].from
    }
}

/// One YAML row, its module name normalised.
struct Row {
    layer: usize,
    from: Vec<isize>,
    repeats: usize,
    module: String,
    args: Vec<Json>,
}

impl Row {
    fn parse(layer: usize, row: &Json) -> Result<Self, GraphError> {
        let bad = |reason: &str| GraphError::BadYaml(format!("row {layer} {reason}"));
        let [from, repeats, module, args] = row
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| bad("is not a list"))?
        else {
            return Err(bad("is not [from, repeats, module, args]"));
        };
        let from = match from {
            Json::Array(items) => items.iter().map(Json::as_i64).collect::<Option<Vec<_>>>(),
            single => single.as_i64().map(|f| vec![f]),
        }
        .ok_or_else(|| bad("has a `from` that is not layer numbers"))?
        .into_iter()
        .map(|f| f as isize)
        .collect();
        let repeats = repeats
            .as_u64()
            .filter(|&n| n >= 1)
            .ok_or_else(|| bad("has a repeat count that is not a positive number"))?
            as usize;
        let module = module
            .as_str()
            .ok_or_else(|| bad("names no module"))?
            .to_string();
        let args = args.as_array().cloned().unwrap_or_default();
        Ok(Self {
            layer,
            from,
            repeats,
            module,
            args,
        })
    }

    fn bad(&self, reason: &str) -> GraphError {
        GraphError::BadRow {
            layer: self.layer,
            module: self.module.clone(),
            reason: reason.into(),
        }
    }

    /// Argument `i` as a count: absent (the block's default) or a non-negative integer.
    fn int_arg(&self, args: &[Json], i: usize) -> Result<Option<usize>, GraphError> {
        match args.get(i) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| self.bad(&format!("argument {i} ({v}) is not a whole number"))),
        }
    }

    /// Argument `i` as a flag: absent (the block's default) or a boolean.
    fn bool_arg(&self, args: &[Json], i: usize) -> Result<Option<bool>, GraphError> {
        match args.get(i) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.bad(&format!("argument {i} ({v}) is not true or false"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// YOLO26n's rows as its checkpoint pickles them.
    fn yolo26n() -> Json {
        json!({
            "nc": 80, "scale": "n", "end2end": true, "reg_max": 1,
            "scales": {"n": [0.5, 0.25, 1024], "s": [0.5, 0.5, 1024], "m": [0.5, 1.0, 512],
                       "l": [1.0, 1.0, 512], "x": [1.0, 1.5, 512]},
            "backbone": [
                [-1, 1, "Conv", [64, 3, 2]], [-1, 1, "Conv", [128, 3, 2]],
                [-1, 2, "C3k2", [256, false, 0.25]], [-1, 1, "Conv", [256, 3, 2]],
                [-1, 2, "C3k2", [512, false, 0.25]], [-1, 1, "Conv", [512, 3, 2]],
                [-1, 2, "C3k2", [512, true]], [-1, 1, "Conv", [1024, 3, 2]],
                [-1, 2, "C3k2", [1024, true]], [-1, 1, "SPPF", [1024, 5, 3, true]],
                [-1, 2, "C2PSA", [1024]]],
            "head": [
                [-1, 1, "nn.Upsample", ["None", 2, "nearest"]], [[-1, 6], 1, "Concat", [1]],
                [-1, 2, "C3k2", [512, true]], [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
                [[-1, 4], 1, "Concat", [1]], [-1, 2, "C3k2", [256, true]],
                [-1, 1, "Conv", [256, 3, 2]], [[-1, 13], 1, "Concat", [1]],
                [-1, 2, "C3k2", [512, true]], [-1, 1, "Conv", [512, 3, 2]],
                [[-1, 10], 1, "Concat", [1]], [-1, 1, "C3k2", [1024, true, 0.5, true]],
                [[16, 19, 22], 1, "Detect", ["nc"]]]
        })
    }

    #[test]
    fn yolo26n_resolves_as_parse_model_does() {
        let graph = Graph::from_yaml(&yolo26n()).unwrap();
        assert_eq!(graph.nodes.len(), 24);
        assert_eq!(
            (graph.reg_max, graph.end2end, graph.legacy_head),
            (1, true, false)
        );
        assert_eq!(graph.family, "YOLO26");
        assert_eq!(graph.detect_layer(), 23);
        // Width 0.25 of 64, depth 0.5 of 2, the SPPF's shortcut, the last C3k2's attention.
        assert_eq!(
            graph.nodes[0].block,
            Block::Conv {
                out: Some(16),
                kernel: 3,
                stride: 2
            }
        );
        assert_eq!(graph.nodes[2].repeats, Some(1));
        assert_eq!(
            graph.nodes[9].block,
            Block::Sppf {
                out: Some(256),
                kernel: 5,
                n: 3,
                shortcut: true
            }
        );
        assert_eq!(
            graph.nodes[22].block,
            Block::C3k2 {
                out: Some(256),
                c3k: true,
                attn: true,
                shortcut: true
            }
        );
        assert_eq!(graph.nodes[23].block, Block::Detect { nc: Some(80) });
        assert!(graph.is_read_later(4) && graph.is_read_later(22) && !graph.is_read_later(5));
    }

    #[test]
    fn large_scales_force_c3k_and_cap_channels() {
        let mut yaml = yolo26n();
        yaml["scale"] = json!("l");
        let graph = Graph::from_yaml(&yaml).unwrap();
        assert!(matches!(
            graph.nodes[2].block,
            Block::C3k2 { c3k: true, .. }
        ));
        // min(1024, 512) × 1.0, and depth 1.0 keeps two repeats.
        assert!(matches!(
            graph.nodes[8].block,
            Block::C3k2 { out: Some(512), .. }
        ));
        assert_eq!(graph.nodes[8].repeats, Some(2));
    }

    #[test]
    fn repeats_round_half_to_even_as_python_does() {
        let mut yaml = yolo26n();
        yaml["scales"]["n"] = json!([0.25, 0.25, 1024]);
        yaml["backbone"][2] = json!([-1, 6, "C3k2", [256, false, 0.25]]);
        yaml["backbone"][4] = json!([-1, 10, "C3k2", [256, false, 0.25]]);
        let graph = Graph::from_yaml(&yaml).unwrap();
        // round(1.5) = 2 and round(2.5) = 2 in Python.
        assert_eq!(graph.nodes[2].repeats, Some(2));
        assert_eq!(graph.nodes[4].repeats, Some(2));
    }

    #[test]
    fn unknown_blocks_and_task_heads_are_refused_by_name_and_layer() {
        let mut yaml = yolo26n();
        yaml["backbone"][6] = json!([-1, 2, "A2C2f", [512, true, 4]]);
        assert_eq!(
            Graph::from_yaml(&yaml).unwrap_err(),
            GraphError::UnknownModule {
                layer: 6,
                module: "A2C2f".into()
            }
        );
        let message = Graph::from_yaml(&yaml).unwrap_err().to_string();
        assert!(message.contains("layer 6 is `A2C2f`"), "{message}");

        let mut yaml = yolo26n();
        yaml["head"][12] = json!([[16, 19, 22], 1, "Segment26", ["nc", 32, 256]]);
        assert_eq!(
            Graph::from_yaml(&yaml).unwrap_err(),
            GraphError::UnsupportedHead {
                layer: 23,
                module: "Segment26".into()
            }
        );
    }

    #[test]
    fn malformed_rows_are_named() {
        for (row, expected) in [
            (
                json!([-1, 1, "Conv"]),
                "row 3 is not [from, repeats, module, args]",
            ),
            (
                json!([-1, 1, "Conv", ["wide", 3, 2]]),
                "layer 3 (`Conv`): argument 0",
            ),
            (json!([[-1, 30], 1, "Concat", [1]]), "reads layer 30"),
            (
                json!([-1, 0, "Conv", [256, 3, 2]]),
                "row 3 has a repeat count",
            ),
        ] {
            let mut yaml = yolo26n();
            yaml["backbone"][3] = row;
            let message = Graph::from_yaml(&yaml).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
        }
        let message = Graph::from_yaml(&json!({"backbone": []}))
            .unwrap_err()
            .to_string();
        assert!(message.contains("no `head` list"), "{message}");
    }
}
