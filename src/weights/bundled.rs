//! The project's own FocalModulation layer 9 for Ultralytics' YOLO11n (COCO), trained with
//! `focalyolo distill` (the README says how). No one publishes FocalModulation weights for
//! YOLO11, so whoever opens the stock `yolo11n.pt` gets this layer in place of SPPF, and
//! with it real boxes and meaningful gate maps.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::weights::{MeasuredScores, Weights, WeightsError};

static YOLO11N_FOCAL: &[u8] = include_bytes!("../../weights/yolo11n-focal.safetensors");

/// The bundled layer, as `model.9.*` tensors.
pub fn yolo11n_focal() -> Weights {
    Weights::from_safetensors_bytes(YOLO11N_FOCAL, "weights/yolo11n-focal.safetensors")
        .expect("the bundled layer parses")
}

/// `weights` with the bundled FocalModulation layer 9 when they are exactly the stock
/// YOLO11n it was distilled from (same frozen layers, SPPF at layer 9); otherwise
/// `weights` unchanged. The flag says which.
pub fn with_default_focal(weights: Weights) -> Result<(Weights, bool), WeightsError> {
    let layer = yolo11n_focal();
    let is_stock_sppf = weights.contains("model.9.cv1.conv.weight");
    if is_stock_sppf && layer.teacher_hash.as_deref() == Some(weights.frozen_hash().as_str()) {
        Ok((weights.with_focal_layer(&layer)?, true))
    } else {
        Ok((weights, false))
    }
}

/// `weights` as the default choice runs them: with the bundled FocalModulation where it
/// fits (see [`with_default_focal`]), else with their own layer 9, and where it came from.
pub fn with_bundled_layer(weights: Weights) -> Result<(Weights, Layer9Origin), WeightsError> {
    let has_focal = weights.has_focal_modulation();
    let (weights, applied) = with_default_focal(weights)?;
    let origin = match (applied, has_focal) {
        (true, _) => Layer9Origin::Bundled,
        (false, true) => Layer9Origin::Own,
        (false, false) => Layer9Origin::NoLayerFits,
    };
    Ok((weights, origin))
}

/// Which layer 9 a checkpoint runs with.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Layer9Choice {
    /// The checkpoint's own, except stock YOLO11n, which gets the bundled FocalModulation.
    #[default]
    Bundled,
    /// A FocalModulation layer trained by `focalyolo distill`.
    Focal(PathBuf),
    /// The checkpoint's own, even for stock YOLO11n.
    Stock,
}

/// Where the layer 9 a model runs with came from: what the model line and the
/// FocalModulation panel tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer9Origin {
    /// The checkpoint's own: its FocalModulation, or the SPPF asked for
    /// ([`Layer9Choice::Stock`]).
    Own,
    /// The bundled FocalModulation, made for exactly this stock YOLO11n.
    Bundled,
    /// A layer `distill` wrote ([`Layer9Choice::Focal`]).
    Distilled(PathBuf),
    /// The checkpoint's own SPPF, because no bundled FocalModulation fits these weights:
    /// never left unsaid, since the user gets no gate maps.
    NoLayerFits,
}

impl Layer9Origin {
    /// The command line's note on layer 9 for the weights at `path` (with the `scores`
    /// measured of their layer): none for the checkpoint's own.
    pub fn note(&self, path: &Path, scores: Option<&MeasuredScores>) -> Option<String> {
        match self {
            Self::Own => None,
            Self::Bundled => {
                let measured = scores.map(|s| format!(": {s}")).unwrap_or_default();
                Some(format!(
                    "layer 9: the bundled FocalModulation for YOLO11n{measured} (--stock keeps SPPF)"
                ))
            }
            Self::Distilled(focal) => {
                Some(format!("layer 9: FocalModulation from {}", focal.display()))
            }
            Self::NoLayerFits => Some(format!(
                "layer 9: SPPF, as no bundled FocalModulation fits {path} (the bundled layer was \
                 distilled from one YOLO11n training run); make one with `focalyolo distill \
                 --teacher {path} --images PHOTOS` and pass it with --focal, or pass --stock to \
                 keep SPPF without this note",
                path = path.display()
            )),
        }
    }
}

#[derive(Debug, Error)]
pub enum LoadError {
    // The errors are part of the message, not a cause of it, so that a report that walks the
    // causes says each once.
    #[error("{}", naming_the_file(path, error))]
    Weights { path: PathBuf, error: WeightsError },
    #[error("{focal} does not fit {weights}: {error}")]
    Misfit {
        focal: PathBuf,
        weights: PathBuf,
        error: WeightsError,
    },
}

/// `error`, prefixed with the file it is about where it does not already name it.
fn naming_the_file(path: &Path, error: &WeightsError) -> String {
    let message = error.to_string();
    if message.contains(&path.display().to_string()) {
        message
    } else {
        format!("cannot load {}: {message}", path.display())
    }
}

/// Read the weights at `path` with the layer 9 `choice` asks for, and where it came from.
pub fn load_with_layer9(
    path: &Path,
    choice: &Layer9Choice,
) -> Result<(Weights, Layer9Origin), LoadError> {
    let load = |path: &Path| {
        Weights::load(path).map_err(|error| LoadError::Weights {
            path: path.into(),
            error,
        })
    };
    let weights = load(path)?;
    match choice {
        Layer9Choice::Stock => Ok((weights, Layer9Origin::Own)),
        Layer9Choice::Bundled => with_bundled_layer(weights).map_err(|error| LoadError::Weights {
            path: path.into(),
            error,
        }),
        Layer9Choice::Focal(focal) => {
            let layer = load(focal)?;
            let swapped = weights
                .with_focal_layer(&layer)
                .map_err(|error| LoadError::Misfit {
                    focal: focal.clone(),
                    weights: path.into(),
                    error,
                })?;
            Ok((swapped, Layer9Origin::Distilled(focal.clone())))
        }
    }
}
