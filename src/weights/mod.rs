//! Model weights as named f32 tensors, read from Ultralytics checkpoints (`.pt`) or from
//! safetensors in Ultralytics' state_dict layout, with the class names and the
//! FocalModulation settings the file carries.
//!
//! Blocks take their tensors through a [`WeightsView`], a prefix into the map
//! (`view.pp("cv1")`), so the model tree mirrors Ultralytics' module paths.

pub mod bundled;
mod checkpoint;
pub mod download;
mod pickle;
mod safetensors_file;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use thiserror::Error;

pub use pickle::{FocalAttributes, PickleMetaError};

/// Why a weights file could not be used.
#[derive(Debug, Error)]
pub enum WeightsError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable weights file: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Pickle {
        path: PathBuf,
        source: PickleMetaError,
    },
    #[error("the weights have no tensor `{0}`, which the model's architecture needs")]
    Missing(String),
    #[error("{0}")]
    Mismatch(String),
    #[error("tensor `{name}` has shape {found:?}, expected {expected}")]
    Shape {
        name: String,
        expected: String,
        found: Vec<usize>,
    },
}

pub type Result<T> = std::result::Result<T, WeightsError>;

/// Little-endian float encodings found in weight files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatEncoding {
    F16,
    Bf16,
    F32,
    F64,
}

/// Widen little-endian floats to f32.
pub fn decode_floats(bytes: &[u8], encoding: FloatEncoding) -> Vec<f32> {
    match encoding {
        FloatEncoding::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        FloatEncoding::Bf16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        FloatEncoding::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        FloatEncoding::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
    }
}

/// One tensor of the file, widened to f32.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Every tensor of a model, by Ultralytics name, plus what the file says about the model.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    tensors: BTreeMap<String, WeightTensor>,
    /// Class names in index order; empty when the file does not carry them.
    pub class_names: Vec<String>,
    /// FocalModulation attributes that are not tensors (only `.pt` and our safetensors carry them).
    pub focal: FocalAttributes,
    /// For a distilled layer: [`frozen_hash`](Self::frozen_hash) of the teacher it was trained against.
    pub teacher_hash: Option<String>,
    /// For a distillation checkpoint: the epochs it has trained.
    pub epochs_done: Option<usize>,
    /// For a distilled layer: its model's mAP on a labelled folder, and the teacher's there.
    pub scores: Option<MeasuredScores>,
    /// The model's YAML dict (as JSON), which [`crate::model::graph`] builds the model from;
    /// `None` for files written before it travelled with the weights (YOLO11 is assumed).
    pub yaml: Option<serde_json::Value>,
    /// Module paths (`model.9.cv1`) of the `Conv` blocks built without an activation.
    pub plain_convs: BTreeSet<String>,
}

/// What `distill --val` measured on a labelled folder: mAP50-95 and mAP50 of the model with
/// the trained layer, and of its teacher, as `focalyolo val` computes them.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredScores {
    /// The folder's name.
    pub data: String,
    pub map50_95: f64,
    pub map50: f64,
    pub teacher_map50_95: f64,
    pub teacher_map50: f64,
}

impl MeasuredScores {
    /// As the safetensors metadata keeps them: "0.4343 0.5938" per model, and the folder.
    pub(crate) fn to_metadata(&self) -> [(&'static str, String); 3] {
        [
            ("val_data", self.data.clone()),
            ("val_map", format!("{:.4} {:.4}", self.map50_95, self.map50)),
            (
                "teacher_val_map",
                format!("{:.4} {:.4}", self.teacher_map50_95, self.teacher_map50),
            ),
        ]
    }

    pub(crate) fn from_metadata(get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let pair = |key: &str| -> Option<(f64, f64)> {
            let text = get(key)?;
            let (a, b) = text.split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        let (map50_95, map50) = pair("val_map")?;
        let (teacher_map50_95, teacher_map50) = pair("teacher_val_map")?;
        Some(Self {
            data: get("val_data")?,
            map50_95,
            map50,
            teacher_map50_95,
            teacher_map50,
        })
    }
}

impl std::fmt::Display for MeasuredScores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mAP50-95 {:.3} against stock's {:.3} on {}",
            self.map50_95, self.teacher_map50_95, self.data
        )
    }
}

impl Weights {
    /// Read a `.pt` checkpoint or a `.safetensors` file, told apart by their first bytes.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut magic = [0u8; 4];
        {
            use std::io::Read;
            let mut file = std::fs::File::open(path).map_err(|source| WeightsError::Io {
                path: path.into(),
                source,
            })?;
            let n = file.read(&mut magic).map_err(|source| WeightsError::Io {
                path: path.into(),
                source,
            })?;
            if n < 4 {
                return Err(WeightsError::Format {
                    path: path.into(),
                    reason: "the file is empty or truncated".into(),
                });
            }
        }
        if magic == *b"PK\x03\x04" {
            checkpoint::load(path)
        } else {
            safetensors_file::load(path)
        }
    }

    /// Read safetensors bytes already in memory; `name` labels them in errors.
    pub fn from_safetensors_bytes(bytes: &[u8], name: &str) -> Result<Self> {
        safetensors_file::parse(bytes, Path::new(name))
    }

    /// Build from tensors already in memory (tests, distillation output).
    pub fn from_tensors(tensors: BTreeMap<String, WeightTensor>, class_names: Vec<String>) -> Self {
        Self {
            tensors,
            class_names,
            focal: FocalAttributes::default(),
            teacher_hash: None,
            epochs_done: None,
            scores: None,
            yaml: None,
            plain_convs: BTreeSet::new(),
        }
    }

    /// Write as safetensors in Ultralytics' state_dict layout, names and focal settings in the metadata.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        safetensors_file::save(self, path.as_ref(), &[])
    }

    /// As [`save_safetensors`](Self::save_safetensors), with extra metadata entries.
    pub fn save_safetensors_with(
        &self,
        path: impl AsRef<Path>,
        metadata: &[(&str, String)],
    ) -> Result<()> {
        safetensors_file::save(self, path.as_ref(), metadata)
    }

    pub fn tensors(&self) -> &BTreeMap<String, WeightTensor> {
        &self.tensors
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Whether some layer is a FocalModulation (its `f_linear`, the projection to the
    /// query, context and gates, is FocalModulation's alone).
    pub fn has_focal_modulation(&self) -> bool {
        self.tensors.keys().any(|name| name.contains(".f_linear."))
    }

    pub fn get(&self, name: &str) -> Result<&WeightTensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| WeightsError::Missing(name.to_string()))
    }

    /// A view at the root of the Ultralytics module tree (`model.N...`).
    pub fn root(&self) -> WeightsView<'_> {
        WeightsView {
            weights: self,
            prefix: "model".to_string(),
        }
    }

    /// These weights with layer 9 replaced by the FocalModulation in `focal` (a file of
    /// `model.9.*` tensors, as `distill` writes), which must fit this model's layer 8. When
    /// the file also carries later layers that were trained with it (`model.10.*`), those
    /// replace this model's too.
    pub fn with_focal_layer(&self, focal: &Weights) -> Result<Weights> {
        let f_linear = focal.get("model.9.f_linear.weight")?;
        let dim = f_linear.shape.get(1).copied().unwrap_or(0);
        let layer8 = self
            .root()
            .pp(8)
            .pp("cv2")
            .pp("conv")
            .get_rank("weight", 4)?
            .shape[0];
        if dim != layer8 {
            return Err(WeightsError::Shape {
                name: "model.9.f_linear.weight".into(),
                expected: format!("{layer8} input channels (this model's layer 8)"),
                found: f_linear.shape.clone(),
            });
        }
        if let Some(expected) = &focal.teacher_hash {
            let actual = self.frozen_hash();
            if *expected != actual {
                return Err(WeightsError::Mismatch(format!(
                    "this FocalModulation layer was trained for other weights (teacher {expected}, these are {actual})"
                )));
            }
        }
        Ok(Weights {
            focal: focal.focal,
            // What was measured of the layer is measured of this very model.
            scores: focal.scores.clone(),
            ..self.with_layers(focal)?
        })
    }

    /// These weights with every layer `layers` carries (`model.9.*`, `model.10.*`…)
    /// replaced by its tensors there; a layer this model does not have is refused.
    pub fn with_layers(&self, layers: &Weights) -> Result<Weights> {
        let replaced = layers.layers();
        if let Some(absent) = replaced.iter().find(|p| !self.root().pp(p).exists()) {
            return Err(WeightsError::Mismatch(format!(
                "the layers' file carries `model.{absent}`, which this model does not have"
            )));
        }
        let is_replaced = |name: &str| {
            replaced
                .iter()
                .any(|layer| name.starts_with(&format!("model.{layer}.")))
        };
        let mut tensors: BTreeMap<String, WeightTensor> = self
            .tensors
            .iter()
            .filter(|(k, _)| !is_replaced(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tensors.extend(
            layers
                .tensors
                .iter()
                .filter(|(k, _)| is_replaced(k))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        Ok(Weights {
            tensors,
            class_names: self.class_names.clone(),
            focal: self.focal,
            yaml: self.yaml.clone(),
            plain_convs: self.plain_convs.clone(),
            ..Weights::default()
        })
    }

    /// The top-level layers these tensors belong to (`9`, `10`), in order.
    pub fn layers(&self) -> BTreeSet<usize> {
        self.tensors
            .keys()
            .filter_map(|k| k.strip_prefix("model.")?.split('.').next()?.parse().ok())
            .collect()
    }

    /// SHA-256 over every tensor outside layer 9 and the head's task branches (names,
    /// shapes, f32 values): identifies the frozen layers a FocalModulation layer was
    /// distilled against. Distillation matches boxes and classes, so a segmentation, pose or
    /// OBB model built on the same detector (its masks, keypoints or angles read the same
    /// features) is one the layer fits.
    pub fn frozen_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        const TASK_BRANCHES: [&str; 5] = [
            "cv4",
            "one2one_cv4",
            "cv4_kpts",
            "one2one_cv4_kpts",
            "proto",
        ];
        let layer = |name: &str| name.split('.').nth(1)?.parse::<usize>().ok();
        let head = self.tensors.keys().filter_map(|k| layer(k)).max();
        let frozen = |name: &str| match (layer(name), name.split('.').nth(2)) {
            (Some(9), _) => false,
            (index, Some(child)) if index == head => !TASK_BRANCHES.contains(&child),
            _ => true,
        };
        let mut hasher = Sha256::new();
        for (name, tensor) in self.tensors.iter().filter(|(k, _)| frozen(k)) {
            hasher.update(name.as_bytes());
            for d in &tensor.shape {
                hasher.update((*d as u64).to_le_bytes());
            }
            for v in &tensor.values {
                hasher.update(v.to_le_bytes());
            }
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Number of scalar parameters (BatchNorm statistics included, as Ultralytics counts them).
    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(|t| t.values.len()).sum()
    }
}

/// A position in the module tree: `model.23.cv3.0`.
#[derive(Clone)]
pub struct WeightsView<'a> {
    weights: &'a Weights,
    prefix: String,
}

impl<'a> WeightsView<'a> {
    /// The child module `name` (`"cv1"`, `"0"`).
    pub fn pp(&self, name: impl std::fmt::Display) -> WeightsView<'a> {
        WeightsView {
            weights: self.weights,
            prefix: format!("{}.{name}", self.prefix),
        }
    }

    pub fn path(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn has(&self, name: &str) -> bool {
        self.weights.contains(&self.path(name))
    }

    pub fn get(&self, name: &str) -> Result<&'a WeightTensor> {
        self.weights.get(&self.path(name))
    }

    /// The tensor `name`, which must have `rank` dimensions.
    pub fn get_rank(&self, name: &str, rank: usize) -> Result<&'a WeightTensor> {
        let tensor = self.get(name)?;
        if tensor.shape.len() != rank {
            return Err(WeightsError::Shape {
                name: self.path(name),
                expected: format!("{rank} dimensions"),
                found: tensor.shape.clone(),
            });
        }
        Ok(tensor)
    }

    /// Whether the checkpoint built this `Conv` without an activation.
    pub fn is_plain_conv(&self) -> bool {
        self.weights.plain_convs.contains(&self.prefix)
    }

    /// How many numbered children (`m.0`, `m.1`, ...) this module has.
    pub fn count_children(&self) -> usize {
        (0..).take_while(|i| self.pp(i).exists()).count()
    }

    /// Whether any tensor lives under this module.
    pub fn exists(&self) -> bool {
        let child = format!("{}.", self.prefix);
        self.weights
            .tensors
            .range(child.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&child))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(names: &[&str]) -> Weights {
        let tensors = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let tensor = WeightTensor {
                    shape: vec![1],
                    values: vec![i as f32],
                };
                (name.to_string(), tensor)
            })
            .collect();
        Weights::from_tensors(tensors, Vec::new())
    }

    #[test]
    fn the_frozen_hash_leaves_out_layer_9_and_the_heads_task_branches_only() {
        let detector = [
            "model.0.conv.weight",
            "model.10.cv1.conv.weight",
            "model.23.cv2.0.0.conv.weight",
        ];
        let hash = weights(&detector).frozen_hash();
        let with = |extra: &[&str]| {
            let names: Vec<&str> = detector.iter().chain(extra).copied().collect();
            weights(&names).frozen_hash()
        };
        // A segmentation head's mask branch and prototypes, a pose head's keypoints, layer 9.
        let task = [
            "model.23.cv4.0.0.conv.weight",
            "model.23.proto.cv1.conv.weight",
        ];
        assert_eq!(with(&task), hash);
        assert_eq!(
            with(&["model.23.cv4_kpts.0.weight", "model.9.cv1.conv.weight"]),
            hash
        );
        // A `cv4` outside the head, or another head branch, is part of what was frozen.
        assert_ne!(with(&["model.10.cv4.conv.weight"]), hash);
        assert_ne!(with(&["model.23.cv5.0.weight"]), hash);
    }
}
