//! Training a FocalModulation layer 9 for a stock YOLO11 by distillation: the teacher's
//! frozen layers 0–8 turn (augmented) unlabelled images into backbone features, and the
//! twin (the teacher with a fresh FocalModulation at layer 9) learns to reproduce what the
//! teacher makes of them: SPPF's output, C2PSA's, with the `neck` recipe the features the
//! neck hands the Detect head, and with the `outputs` recipe the head's outputs. Layer 9
//! trains, and optionally the layers after it; layers 0–8 never do, so their outputs are
//! computed once per augmented view and cached.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

mod augment;
mod layers;
mod recipe;
mod targets;

pub use layers::{focal_tensors, init_focal, module_tensors};
pub use recipe::Recipe;

use augment::fit;
use layers::trained_tensors;
use targets::{ChannelWeights, Views, batch_loss, mean_loss_over};

use crate::model::{LAYER9, ModelError, Yolo};
use crate::source::{SourceError, load_rgb};
use crate::weights::{FocalAttributes, WeightTensor, Weights, WeightsError};

#[derive(Debug, Error)]
pub enum DistillError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the teacher's layer 9 must be SPPF (a stock YOLO11 checkpoint)")]
    NotStock,
    #[error("no training images")]
    NoImages,
    #[error("{0}")]
    Resume(String),
    #[error(
        "layers {LAYER9} to {layer} cannot train with recipe {}: its loss reaches layer {} at most",
        recipe.name(),
        recipe.deepest_layer()
    )]
    TrainThrough { layer: usize, recipe: Recipe },
}

/// What to train and how.
#[derive(Debug, Clone)]
pub struct DistillOptions {
    pub recipe: Recipe,
    /// The last layer that trains: 9 trains the new layer alone; 10 adds C2PSA, up to 23
    /// (the Detect head). The teacher's weights start the later layers.
    pub train_through: usize,
    /// Layers (as `distill` writes them) to start from instead of a fresh layer 9.
    pub start_from: Option<PathBuf>,
    pub imgsz: usize,
    pub epochs: usize,
    pub batch: usize,
    /// Augmented views cached per image.
    pub views: usize,
    /// The share of views that are 2×2 mosaics with other training images.
    pub mosaic: f64,
    /// The largest a plain view scales an image's longest side, as a share of the canvas
    /// side (the smallest is half); above 1, a view is a crop of the enlarged image.
    pub max_scale: f64,
    /// Weigh each feature channel's squared error by the inverse of the teacher's variance
    /// in that channel (over the cached views).
    pub standardize: bool,
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Images never trained on, whose loss is reported after every epoch: how well the
    /// layer does on what it has not seen.
    pub validation: Vec<PathBuf>,
    pub seed: u64,
    pub focal_level: usize,
    pub focal_window: usize,
    pub focal_factor: usize,
}

impl Default for DistillOptions {
    fn default() -> Self {
        Self {
            recipe: Recipe::default(),
            train_through: LAYER9,
            start_from: None,
            imgsz: 640,
            epochs: 30,
            batch: 16,
            views: 2,
            mosaic: 0.0,
            max_scale: 1.0,
            standardize: false,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            validation: Vec::new(),
            seed: 0,
            focal_level: 2,
            focal_window: 3,
            focal_factor: 2,
        }
    }
}

impl DistillOptions {
    /// The settings of the layer being trained, as its file records them.
    fn focal_attributes(&self) -> FocalAttributes {
        FocalAttributes {
            normalize_modulator: Some(false),
            focal_level: Some(self.focal_level),
            focal_window: Some(self.focal_window),
            focal_factor: Some(self.focal_factor),
        }
    }
}

/// Progress of a run, for a progress bar.
pub enum DistillEvent {
    Caching {
        done: usize,
        total: usize,
    },
    Step {
        epoch: usize,
        step: usize,
        steps: usize,
        loss: f32,
    },
    EpochDone {
        epoch: usize,
        mean_loss: f32,
        /// The mean loss on the validation images' views, when there are any.
        validation_loss: Option<f32>,
    },
}

/// Fixed parameter ids (in field order), so a saved optimizer state finds its parameters
/// again in a rebuilt module.
struct StableIds(u64);

impl ModuleMapper for StableIds {
    fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.id = ParamId::from(0xF0CA_1000 + self.0);
        self.0 += 1;
        param
    }
}

/// Train a FocalModulation layer 9 (and the layers after it up to
/// `options.train_through`) for `teacher` on `images`, writing the trained layers (and,
/// after every epoch, a resumable checkpoint beside them) to `out`.
pub fn distill(
    teacher: &Weights,
    images: &[PathBuf],
    options: &DistillOptions,
    out: &Path,
    resume: bool,
    on_event: &mut dyn FnMut(DistillEvent),
) -> Result<Vec<f32>, DistillError> {
    if images.is_empty() {
        return Err(DistillError::NoImages);
    }
    if !(LAYER9..=options.recipe.deepest_layer()).contains(&options.train_through) {
        return Err(DistillError::TrainThrough {
            layer: options.train_through,
            recipe: options.recipe,
        });
    }
    let device = Device::flex();
    device.seed(options.seed);
    let (teacher_model, info) = Yolo::load(teacher, &device)?;
    if info.layer9 != crate::model::Layer9::Sppf {
        return Err(DistillError::NotStock);
    }

    // Teacher outputs, once per view.
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let pool = if options.mosaic > 0.0 {
        images
            .iter()
            .map(|path| Ok(fit(load_rgb(path)?, options.imgsz)))
            .collect::<Result<Vec<_>, DistillError>>()?
    } else {
        Vec::new()
    };
    let views = Views {
        teacher: &teacher_model,
        options,
        device: &device,
    };
    let samples = views.cache(images, &pool, &mut rng, on_event)?;
    // Validation views come from their own random stream, so adding them leaves the
    // training views (and a seed's result) as they were; no mosaics of training images.
    let validation = views.cache(
        &options.validation,
        &[],
        &mut ChaCha8Rng::seed_from_u64(options.seed ^ VALIDATION_STREAM),
        on_event,
    )?;
    let dim = samples[0].layer8.dims()[1];
    let channel_weights = options
        .standardize
        .then(|| ChannelWeights::from_samples(&samples));

    // The student is the teacher's twin with the new layer 9: fresh, from --start-from, or
    // from the checkpoint. Only layers 9..=train_through get gradients.
    let checkpoint = checkpoint_paths(out);
    let (start, first_epoch) = if resume && checkpoint.0.is_file() {
        let saved = Weights::load(&checkpoint.0)?;
        let done = saved.epochs_done.ok_or_else(|| {
            DistillError::Resume("the checkpoint does not say how far it got".into())
        })?;
        (saved, done)
    } else if let Some(path) = &options.start_from {
        (Weights::load(path)?, 0)
    } else {
        let mut fresh = Weights::from_tensors(init_focal(dim, options, &mut rng), Vec::new());
        fresh.focal = options.focal_attributes();
        (fresh, 0)
    };
    // The layer's settings: the starting file's when there is one, else the options'.
    let attributes = start.focal;
    let trained: BTreeSet<usize> = (LAYER9..=options.train_through)
        .chain(start.layers())
        .collect();
    let (twin, _) = Yolo::load(&teacher.with_focal_layer(&start)?, &device)?;
    let mut student = twin.map(&mut StableIds(0)).train();
    student.model = student
        .model
        .into_iter()
        .enumerate()
        .map(|(index, layer)| {
            if (LAYER9..=options.train_through).contains(&index) {
                layer
            } else {
                layer.no_grad()
            }
        })
        .collect();
    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(options.weight_decay as f32)
        .init();
    if first_epoch > 0 {
        optimizer = optimizer
            .load(&checkpoint.1)
            .map_err(|e| DistillError::Resume(format!("optimizer state: {e:?}")))?;
    }

    let steps = samples.len().div_ceil(options.batch);
    let total_steps = (options.epochs * steps).max(1);
    let mut losses = Vec::new();
    for epoch in first_epoch..options.epochs {
        let mut order: Vec<usize> = (0..samples.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(
            options.seed.wrapping_add(1 + epoch as u64),
        ));
        let mut epoch_loss = 0.0;
        for (step, batch) in order.chunks(options.batch).enumerate() {
            let progress = (epoch * steps + step) as f64 / total_steps as f64;
            let lr = options.learning_rate
                * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
            let loss = batch_loss(
                &student,
                batch.iter().map(|&i| &samples[i]),
                options.recipe,
                channel_weights.as_ref(),
            );
            let value: f32 = loss.clone().into_scalar();
            let grads = GradientsParams::from_grads(loss.backward(), &student);
            student = optimizer.step(lr, student, grads);
            epoch_loss += value * batch.len() as f32;
            on_event(DistillEvent::Step {
                epoch,
                step,
                steps,
                loss: value,
            });
        }
        let mean_loss = epoch_loss / samples.len() as f32;
        losses.push(mean_loss);
        let validation_loss = (!validation.is_empty()).then(|| {
            mean_loss_over(
                &student.valid(),
                &validation,
                options,
                channel_weights.as_ref(),
            )
        });

        let done = epoch + 1 == options.epochs;
        let target = if done {
            out.to_path_buf()
        } else {
            checkpoint.0.clone()
        };
        let layers = trained_tensors(&student.valid(), &trained, teacher);
        let progress = Progress {
            epochs_done: epoch + 1,
            loss: mean_loss,
        };
        save_layers(
            layers,
            &attributes,
            teacher,
            &info.scale,
            options,
            progress,
            &target,
        )?;
        if done {
            let _ = std::fs::remove_file(&checkpoint.0);
            let _ = std::fs::remove_file(&checkpoint.1);
        } else {
            optimizer
                .save(&checkpoint.1)
                .map_err(|e| DistillError::Resume(format!("cannot save optimizer state: {e:?}")))?;
        }
        // Reported once the epoch is safely on disk.
        on_event(DistillEvent::EpochDone {
            epoch,
            mean_loss,
            validation_loss,
        });
    }
    Ok(losses)
}

/// Seeds the validation views' random stream (xor the run's seed).
const VALIDATION_STREAM: u64 = 0x0005_EED0_F0A1;

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
struct Progress {
    epochs_done: usize,
    loss: f32,
}

fn save_layers(
    tensors: BTreeMap<String, WeightTensor>,
    attributes: &FocalAttributes,
    teacher: &Weights,
    scale: &str,
    options: &DistillOptions,
    Progress { epochs_done, loss }: Progress,
    path: &Path,
) -> Result<(), DistillError> {
    let mut layers = Weights::from_tensors(tensors, Vec::new());
    layers.focal = *attributes;
    layers.teacher_hash = Some(teacher.frozen_hash());
    layers.epochs_done = Some(epochs_done);
    layers.save_safetensors_with(
        path,
        &[
            ("teacher_scale", scale.to_string()),
            ("recipe", options.recipe.describe().to_string()),
            ("train_through", options.train_through.to_string()),
            ("imgsz", options.imgsz.to_string()),
            ("seed", options.seed.to_string()),
            ("views", options.views.to_string()),
            ("mosaic", options.mosaic.to_string()),
            ("max_scale", options.max_scale.to_string()),
            ("standardize", options.standardize.to_string()),
            ("weight_decay", options.weight_decay.to_string()),
            ("final_loss", loss.to_string()),
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_the_loss_cannot_reach_are_refused_before_any_work() {
        let nothing = Weights::from_tensors(BTreeMap::new(), Vec::new());
        let images = [PathBuf::from("never-read.jpg")];
        for (recipe, train_through) in [
            (Recipe::Layer9, 10),
            (Recipe::Layer9And10, 11),
            (Recipe::Neck, 23),
        ] {
            let options = DistillOptions {
                recipe,
                train_through,
                ..DistillOptions::default()
            };
            let err = distill(
                &nothing,
                &images,
                &options,
                Path::new("x"),
                false,
                &mut |_| {},
            )
            .unwrap_err();
            assert!(
                matches!(err, DistillError::TrainThrough { layer, .. } if layer == train_through),
                "{err}"
            );
        }
    }
}
