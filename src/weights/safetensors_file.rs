//! Safetensors in Ultralytics' state_dict layout (unfused with BatchNorm, or fused with conv
//! bias). Class names travel in the metadata as `names`, a JSON object `{"0": "person"}`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors, View};

use super::{
    FloatEncoding, FocalAttributes, MeasuredScores, Result, WeightTensor, Weights, WeightsError,
    decode_floats,
};

/// Metadata keys of the model's architecture: the YAML dict, and the activation-less convs.
const MODEL_YAML: &str = "model_yaml";
const PLAIN_CONVS: &str = "plain_convs";

pub fn load(path: &Path) -> Result<Weights> {
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.into(),
        source,
    })?;
    parse(&bytes, path)
}

/// Parse safetensors bytes; `path` names them in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Weights> {
    let format_error = |reason: String| WeightsError::Format {
        path: path.into(),
        reason,
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| {
        format_error(format!(
            "neither a PyTorch checkpoint nor safetensors ({e})"
        ))
    })?;
    let file = SafeTensors::deserialize(bytes).map_err(|e| format_error(e.to_string()))?;

    let mut tensors = BTreeMap::new();
    for (name, view) in file.iter() {
        let encoding = match view.dtype() {
            Dtype::F32 => FloatEncoding::F32,
            Dtype::F16 => FloatEncoding::F16,
            Dtype::BF16 => FloatEncoding::Bf16,
            Dtype::F64 => FloatEncoding::F64,
            _ => continue,
        };
        let values = decode_floats(view.data(), encoding);
        tensors.insert(
            name.to_string(),
            WeightTensor {
                shape: view.shape().to_vec(),
                values,
            },
        );
    }

    let metadata = header.metadata().clone().unwrap_or_default();
    let class_names = match metadata.get("names") {
        Some(json) => parse_names(json)
            .map_err(|e| format_error(format!("metadata `names` is not a name table ({e})")))?,
        None => Vec::new(),
    };
    let json = |key: &str| -> Result<Option<serde_json::Value>> {
        metadata
            .get(key)
            .map(|text| {
                serde_json::from_str(text)
                    .map_err(|e| format_error(format!("metadata `{key}` is not JSON ({e})")))
            })
            .transpose()
    };
    let yaml = json(MODEL_YAML)?;
    let plain_convs = match json(PLAIN_CONVS)? {
        None => Default::default(),
        Some(value) => serde_json::from_value(value).map_err(|e| {
            format_error(format!(
                "metadata `{PLAIN_CONVS}` is not a list of paths ({e})"
            ))
        })?,
    };
    let mut weights = Weights::from_tensors(tensors, class_names);
    weights.yaml = yaml;
    weights.plain_convs = plain_convs;
    weights.teacher_hash = metadata.get("teacher_hash").cloned();
    weights.epochs_done = metadata.get("epochs_done").and_then(|v| v.parse().ok());
    weights.scores = MeasuredScores::from_metadata(|key| metadata.get(key).cloned());
    weights.focal = FocalAttributes {
        normalize_modulator: metadata
            .get("normalize_modulator")
            .and_then(|v| v.parse().ok()),
        focal_level: metadata.get("focal_level").and_then(|v| v.parse().ok()),
        focal_window: metadata.get("focal_window").and_then(|v| v.parse().ok()),
        focal_factor: metadata.get("focal_factor").and_then(|v| v.parse().ok()),
    };
    Ok(weights)
}

/// `{"0": "person", "1": "bicycle"}` (or a plain list) into names by index.
fn parse_names(json: &str) -> std::result::Result<Vec<String>, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "a name is not a string".to_string())
            })
            .collect(),
        serde_json::Value::Object(map) => {
            let mut indexed = map
                .into_iter()
                .map(|(k, v)| {
                    let index: usize = k
                        .parse()
                        .map_err(|_| format!("key `{k}` is not an index"))?;
                    let name = v.as_str().ok_or("a name is not a string")?.to_string();
                    Ok((index, name))
                })
                .collect::<std::result::Result<Vec<_>, String>>()?;
            indexed.sort();
            if indexed.iter().enumerate().any(|(n, (i, _))| n != *i) {
                return Err("indices are not 0..n".into());
            }
            Ok(indexed.into_iter().map(|(_, name)| name).collect())
        }
        _ => Err("expected an object or a list".into()),
    }
}

struct F32View<'a>(&'a WeightTensor);

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.0.values.len() * 4
    }
}

pub fn save(weights: &Weights, path: &Path, extra_metadata: &[(&str, String)]) -> Result<()> {
    let mut metadata = HashMap::new();
    if !weights.class_names.is_empty() {
        let names: serde_json::Map<String, serde_json::Value> = weights
            .class_names
            .iter()
            .enumerate()
            .map(|(i, n)| (i.to_string(), serde_json::Value::String(n.clone())))
            .collect();
        metadata.insert(
            "names".to_string(),
            serde_json::Value::Object(names).to_string(),
        );
    }
    let focal = weights.focal;
    let fields = [
        (
            "normalize_modulator",
            focal.normalize_modulator.map(|v| v.to_string()),
        ),
        ("focal_level", focal.focal_level.map(|v| v.to_string())),
        ("focal_window", focal.focal_window.map(|v| v.to_string())),
        ("focal_factor", focal.focal_factor.map(|v| v.to_string())),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            metadata.insert(key.to_string(), value);
        }
    }
    if let Some(yaml) = &weights.yaml {
        metadata.insert(MODEL_YAML.into(), yaml.to_string());
    }
    if !weights.plain_convs.is_empty() {
        metadata.insert(
            PLAIN_CONVS.into(),
            serde_json::json!(weights.plain_convs).to_string(),
        );
    }
    if let Some(epochs) = weights.epochs_done {
        metadata.insert("epochs_done".into(), epochs.to_string());
    }
    if let Some(hash) = &weights.teacher_hash {
        metadata.insert("teacher_hash".into(), hash.clone());
    }
    if let Some(scores) = &weights.scores {
        metadata.extend(scores.to_metadata().map(|(k, v)| (k.to_string(), v)));
    }
    metadata.extend(
        extra_metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    metadata.insert(
        "format".into(),
        "ultralytics state_dict, float32, written by focalyolo".into(),
    );
    let views = weights
        .tensors()
        .iter()
        .map(|(k, v)| (k.as_str(), F32View(v)));
    safetensors::serialize_to_file(views, Some(metadata), path).map_err(|e| WeightsError::Format {
        path: path.into(),
        reason: format!("cannot write safetensors ({e})"),
    })
}
