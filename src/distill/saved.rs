//! What a run writes: the trained layers with the metadata that says how they were made and
//! what they scored, and the checkpoint files kept beside them until the run is done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{DistillError, DistillOptions};
use crate::weights::{FocalAttributes, MeasuredScores, WeightTensor, Weights};

/// The checkpoint and optimizer-state files kept beside `out` while training.
pub fn checkpoint_paths(out: &Path) -> (PathBuf, PathBuf) {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (
        out.with_file_name(format!("{name}.checkpoint")),
        out.with_file_name(format!("{name}.optimizer")),
    )
}

/// How far a run got, as its files record it.
pub(super) struct Progress {
    pub(super) epochs_done: usize,
    pub(super) loss: f32,
    /// The student's (mAP50-95, mAP50) on `--val` after this epoch, when measured.
    pub(super) score: Option<(f64, f64)>,
    /// The teacher's, when measured in this run.
    pub(super) teacher_score: Option<(f64, f64)>,
}

/// What layer 9 of the student is, as the written file records it.
fn student_name(options: &DistillOptions) -> &'static str {
    if options.control_sppf {
        "fresh SPPF (control)"
    } else {
        "FocalModulation"
    }
}

pub(super) fn save_layers(
    tensors: BTreeMap<String, WeightTensor>,
    attributes: &FocalAttributes,
    teacher: &Weights,
    scale: &str,
    options: &DistillOptions,
    progress: Progress,
    path: &Path,
) -> Result<(), DistillError> {
    let Progress {
        epochs_done,
        loss,
        score,
        teacher_score,
    } = progress;
    let mut layers = Weights::from_tensors(tensors, Vec::new());
    layers.focal = *attributes;
    layers.teacher_hash = Some(teacher.frozen_hash());
    layers.epochs_done = Some(epochs_done);
    let metadata = [
        ("teacher_scale", scale.to_string()),
        ("recipe", options.recipe.describe().to_string()),
        ("train_from", options.train_from.to_string()),
        ("train_through", options.train_through.to_string()),
        ("imgsz", options.imgsz.to_string()),
        ("seed", options.seed.to_string()),
        ("student", student_name(options).to_string()),
        ("views", options.views.to_string()),
        ("echo", options.echo.to_string()),
        ("mosaic", options.mosaic.to_string()),
        ("canvas", format!("{:?}", options.canvas).to_lowercase()),
        ("scale", format!("{}-{}", options.scale.0, options.scale.1)),
        ("learning_rate", options.learning_rate.to_string()),
        (
            "later_layers_lr_scale",
            options.later_layers_lr_scale.to_string(),
        ),
        ("weight_decay", options.weight_decay.to_string()),
        ("final_loss", loss.to_string()),
    ];
    let val_name = options
        .val
        .as_deref()
        .and_then(Path::file_name)
        .map(|name| name.to_string_lossy().into_owned());
    if let (Some((map50_95, map50)), Some((teacher_map50_95, teacher_map50)), Some(data)) =
        (score, teacher_score, val_name)
    {
        layers.scores = Some(MeasuredScores {
            data,
            map50_95,
            map50,
            teacher_map50_95,
            teacher_map50,
        });
    }
    layers.save_safetensors_with(path, &metadata)?;
    Ok(())
}
