//! Training a FocalModulation layer 9 for a stock YOLO11 by distillation: the teacher's
//! frozen layers 0–8 turn (augmented) unlabelled images into backbone features, and the
//! twin (the teacher with a fresh FocalModulation at layer 9) learns to reproduce what the
//! teacher makes of them: SPPF's output, C2PSA's, with the `neck` recipe the features the
//! neck hands the Detect head, and with the `outputs` recipe the head's outputs. Layer 9 trains, and optionally the layers after it; layers 0–8 never
//! do, so their outputs are computed once per augmented view and cached.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

mod augment;
mod layers;
mod targets;

pub use layers::{focal_tensors, init_focal, module_tensors};

use augment::{augment, fit};
use layers::trained_tensors;
use targets::{ChannelWeights, Sample, batch_loss};

use crate::model::{LAST_LAYER, LAYER9, ModelError, Yolo};
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

/// What the student is trained to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Recipe {
    /// SPPF's output (layer 9).
    Layer9,
    /// SPPF's output, and what C2PSA (layer 10) makes of it: the student is judged by what
    /// the rest of the network sees.
    #[default]
    Layer9And10,
    /// As `layer9-and10`, plus the P3/P4/P5 features the teacher's neck hands Detect: with
    /// the neck training too, it learns to make up for what layer 9 cannot match, while
    /// the frozen head keeps seeing what it was trained on.
    Neck,
    /// As `layer9-and10`, plus the teacher's outputs: its class scores (binary
    /// cross-entropy against its probabilities, on anchors where either model sees an
    /// object) and its box-side distributions (KL divergence from its softmax, weighted by
    /// the anchor's top class score).
    Outputs,
}

impl Recipe {
    fn describe(self) -> &'static str {
        match self {
            Recipe::Layer9 => "layer-9 feature MSE against the teacher's SPPF",
            Recipe::Layer9And10 => "layer-9 plus layer-10 feature MSE",
            Recipe::Neck => "layer-9 plus layer-10 plus P3/P4/P5 feature MSE",
            Recipe::Outputs => {
                "layer-9 plus layer-10 feature MSE, plus the teacher's class scores (BCE, weighted by the anchors' top score) and box distributions (KL)"
            }
        }
    }

    /// The name `--recipe` takes.
    pub fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map_or_else(String::new, |value| value.get_name().to_string())
    }

    /// The last layer whose output the loss reaches: layers after it would get no gradient.
    fn deepest_layer(self) -> usize {
        match self {
            Recipe::Layer9 => LAYER9,
            Recipe::Layer9And10 => LAYER9 + 1,
            Recipe::Neck => LAST_LAYER - 1,
            Recipe::Outputs => LAST_LAYER,
        }
    }
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

/// Augmented views of images, each cached with what the teacher makes of it.
struct Views<'a> {
    teacher: &'a Yolo,
    options: &'a DistillOptions,
    device: &'a Device,
}

impl Views<'_> {
    fn cache(
        &self,
        images: &[PathBuf],
        pool: &[image::RgbImage],
        rng: &mut ChaCha8Rng,
        on_event: &mut dyn FnMut(DistillEvent),
    ) -> Result<Vec<Sample>, DistillError> {
        let options = self.options;
        let total = images.len() * options.views;
        let mut samples = Vec::with_capacity(total);
        for (i, path) in images.iter().enumerate() {
            let image = load_rgb(path)?;
            for _ in 0..options.views {
                let pixels = augment(
                    &image,
                    pool,
                    options.imgsz,
                    options.mosaic,
                    options.max_scale,
                    rng,
                );
                let input = Tensor::<4>::from_data(
                    TensorData::new(pixels, [1, 3, options.imgsz, options.imgsz]),
                    self.device,
                );
                samples.push(Sample::cache(self.teacher, input, options.recipe));
            }
            on_event(DistillEvent::Caching {
                done: (i + 1) * options.views,
                total,
            });
        }
        Ok(samples)
    }
}

/// The recipe's loss averaged over `samples`, in training-sized batches.
fn mean_loss_over(
    model: &Yolo,
    samples: &[Sample],
    options: &DistillOptions,
    channel_weights: Option<&ChannelWeights>,
) -> f32 {
    let total: f32 = samples
        .chunks(options.batch)
        .map(|batch| {
            let loss: f32 =
                batch_loss(model, batch.iter(), options.recipe, channel_weights).into_scalar();
            loss * batch.len() as f32
        })
        .sum();
    total / samples.len() as f32
}

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
