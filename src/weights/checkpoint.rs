//! Ultralytics `.pt` checkpoints: a zip holding a pickled `DetectionModel` (fp16) under
//! `model`, or under `ema` in a training checkpoint. Tensors come from burn-store's reader;
//! class names and FocalModulation attributes from [`pickle`](super::pickle).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use burn_store::pytorch_reader::{DType, PytorchReader};

use super::pickle::read_checkpoint_meta;
use super::{FloatEncoding, Result, WeightTensor, Weights, WeightsError, decode_floats};

/// Top-level keys that may hold the model, in the order Ultralytics fills them.
const MODEL_KEYS: [&str; 2] = ["model", "ema"];

pub fn load(path: &Path) -> Result<Weights> {
    let format_error = |reason: String| WeightsError::Format {
        path: path.into(),
        reason,
    };

    // The metadata pass also vets the pickle's globals before anything else reads it.
    let pickle = read_data_pkl(path).map_err(format_error)?;
    let meta =
        read_checkpoint_meta(&pickle, &MODEL_KEYS).map_err(|source| WeightsError::Pickle {
            path: path.into(),
            source,
        })?;

    let mut last_error = None;
    for key in MODEL_KEYS {
        match PytorchReader::with_top_level_key(path, key) {
            Ok(reader) if !reader.is_empty() => {
                let tensors = widen_to_f32(reader).map_err(format_error)?;
                let mut weights =
                    Weights::from_tensors(tensors, meta.class_names.unwrap_or_default());
                weights.focal = meta.focal.unwrap_or_default();
                weights.yaml = meta.yaml;
                weights.plain_convs = meta.plain_convs.into_iter().collect();
                return Ok(weights);
            }
            Ok(_) => {}
            Err(err) => last_error = Some(err.to_string()),
        }
    }
    Err(format_error(last_error.unwrap_or_else(|| {
        "the checkpoint holds no model tensors".into()
    })))
}

/// The pickle of a `torch.save` zip: the one entry named `<archive>/data.pkl`.
fn read_data_pkl(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| match e {
        // A torch.save zip ends in its directory: a file cut short has none.
        zip::result::ZipError::InvalidArchive(reason) if reason.contains("EOCD") => {
            "the file is truncated (a PyTorch checkpoint's zip directory, at its end, is missing)"
                .to_string()
        }
        e => format!("not a valid zip archive ({e})"),
    })?;
    let name = archive
        .file_names()
        .filter_map(std::result::Result::ok)
        .find(|n| n.ends_with("data.pkl"))
        .map(|n| n.to_string())
        .ok_or("the archive has no data.pkl: not a PyTorch checkpoint")?;
    let mut entry = archive.by_name(&name).map_err(|e| e.to_string())?;
    let mut bytes = Vec::with_capacity(
        entry
            .size()
            .min(burn_store::pytorch_reader::MAX_PICKLE_SIZE) as usize,
    );
    entry
        .by_ref()
        .take(burn_store::pytorch_reader::MAX_PICKLE_SIZE)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read data.pkl ({e})"))?;
    Ok(bytes)
}

/// Float tensors widened to f32; integer buffers (`num_batches_tracked`) are not weights.
fn widen_to_f32(
    reader: PytorchReader,
) -> std::result::Result<BTreeMap<String, WeightTensor>, String> {
    let mut out = BTreeMap::new();
    for (name, tensor) in reader.into_tensors() {
        let encoding = match tensor.dtype() {
            DType::F16 => FloatEncoding::F16,
            DType::BF16 => FloatEncoding::Bf16,
            DType::F32 => FloatEncoding::F32,
            DType::F64 => FloatEncoding::F64,
            _ => continue,
        };
        let shape = tensor.shape().to_vec();
        let bytes = tensor.read().map_err(|e| e.to_string())?;
        out.insert(
            name,
            WeightTensor {
                shape,
                values: decode_floats(&bytes, encoding),
            },
        );
    }
    Ok(out)
}
