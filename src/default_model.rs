//! The project's own FocalModulation layer 9 for Ultralytics' YOLO11n (COCO), trained with
//! `focalyolo distill` (the README says how). No one publishes FocalModulation weights for
//! YOLO11, so whoever opens the stock `yolo11n.pt` gets this layer in place of SPPF, and
//! with it real boxes and meaningful gate maps.

use crate::weights::{Weights, WeightsError};

static YOLO11N_FOCAL: &[u8] = include_bytes!("../weights/yolo11n-focal.safetensors");

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
