//! Training a FocalModulation layer 9 for a stock YOLO11 by distillation: the teacher's
//! frozen layers before the first trained one (layers 0–8 by default) turn augmented
//! unlabelled images into backbone features, and the twin (the teacher with a fresh
//! FocalModulation at layer 9) learns to reproduce what the teacher makes of them: SPPF's
//! output, C2PSA's, with the `neck` recipe the features the neck hands the Detect head, and
//! with the `outputs` recipe the head's outputs. Layer 9 trains, and optionally the layers
//! after it and the backbone's layers before it (`--train-from`); the others stay the
//! teacher's.
//!
//! Every epoch draws fresh views of every image (a layer trained on a fixed set of views
//! learns those views), streamed a batch at a time: memory stays that of one batch
//! whatever the number of images. With `--val`, the student's mAP on a labelled folder is
//! measured as `focalyolo val` measures it, so a run is judged by what users see.

use std::collections::BTreeSet;
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
mod loss;
mod recipe;
mod saved;
mod targets;

pub use layers::{focal_tensors, module_tensors};
pub use recipe::Recipe;
pub use saved::checkpoint_paths;

use augment::Augmentation;
use layers::{fresh_sppf, trained_tensors};
use loss::{Objective, batch_loss};
use saved::{Progress, save_layers};
use targets::{Teacher, mean_loss_over};

use crate::eval::metrics::MapReport;
use crate::eval::{EvalError, LabelledSet, validate};
use crate::inference::detector::{Detector, InputSize};
use crate::inference::preprocess::Canvas;
use crate::model::{FocalModulationConfig, Graph, LAYER9, ModelError, ModelInfo, Yolo};
use crate::weights::{Weights, WeightsError};

#[derive(Debug, Error)]
pub enum DistillError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("validation: {0}")]
    Eval(#[from] EvalError),
    #[error("the teacher's layer 9 must be SPPF (a stock YOLOv8, YOLO11 or YOLO26 checkpoint)")]
    NotStock,
    #[error("no training images")]
    NoImages,
    #[error("{0}")]
    Resume(String),
    #[error(
        "layers {LAYER9} to {layer} cannot train with recipe {}: its loss reaches layer {deepest} at most",
        recipe.name()
    )]
    TrainThrough {
        layer: usize,
        recipe: Recipe,
        deepest: usize,
    },
    #[error("training starts at layer {LAYER9} at the latest (the new layer), not {0}")]
    TrainFrom(usize),
}

/// What to train and how.
#[derive(Debug, Clone)]
pub struct DistillOptions {
    pub recipe: Recipe,
    /// The first layer that trains: 9, or an earlier one for the backbone from there on
    /// to adapt to the new layer too (it then reads the teacher's output of the layer
    /// before).
    pub train_from: usize,
    /// The last layer that trains: 9 trains the new layer alone; 10 adds C2PSA, up to 23
    /// (the Detect head). The teacher's weights start the later layers.
    pub train_through: usize,
    /// Layers (as `distill` writes them) to start from instead of a fresh layer 9.
    pub start_from: Option<PathBuf>,
    pub imgsz: usize,
    pub epochs: usize,
    pub batch: usize,
    /// Fresh augmented views of each image per epoch.
    pub views: usize,
    /// Optimiser steps taken on each batch of views (data echoing): the teacher's backbone
    /// and the image decoding cost far more than a step of the layers that train, so
    /// repeating a step on views the teacher has labelled buys steps almost for free.
    pub echo: usize,
    /// The share of views that are 2×2 mosaics with other training images.
    pub mosaic: f64,
    /// The canvas views are drawn on: the minimal one inference uses, or a full square.
    pub canvas: Canvas,
    /// The range of a plain view's scale: its longest side as a share of `imgsz`. Below 1
    /// on the minimal canvas, the image at a smaller input size; above 1, a crop of the
    /// enlarged image.
    pub scale: (f64, f64),
    /// Layer 9's peak learning rate.
    pub learning_rate: f64,
    /// The other layers that train learn at this share of layer 9's rate: they start
    /// trained, and should adapt to the new layer rather than be relearnt.
    pub later_layers_lr_scale: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Images never trained on, whose loss is reported after every epoch: how well the
    /// layer does on what it has not seen.
    pub validation: Vec<PathBuf>,
    /// A labelled folder the student's mAP is measured on (and the teacher's, once).
    pub val: Option<PathBuf>,
    /// Measure `val` after every this many epochs (and after the last).
    pub val_every: usize,
    /// The input size `val` is measured at: the size the layer will run at, which need not
    /// be the views' (`imgsz`).
    pub val_imgsz: usize,
    pub seed: u64,
    /// The FocalModulation to start from when there is no `start_from`.
    pub focal: FocalModulationConfig,
    /// Train a fresh SPPF (the teacher's own layer 9, re-initialised) instead of
    /// FocalModulation: a control, not a layer to use. Where it ends shows how much of the
    /// gap to the teacher the procedure itself leaves with the teacher's own architecture.
    pub control_sppf: bool,
}

impl Default for DistillOptions {
    fn default() -> Self {
        Self {
            recipe: Recipe::default(),
            train_from: LAYER9,
            train_through: LAYER9,
            start_from: None,
            imgsz: 640,
            epochs: 30,
            batch: 16,
            views: 1,
            echo: 1,
            mosaic: 0.0,
            canvas: Canvas::Minimal,
            scale: (0.5, 1.5),
            learning_rate: 1e-3,
            later_layers_lr_scale: 0.1,
            weight_decay: 1e-4,
            validation: Vec::new(),
            val: None,
            val_every: 1,
            val_imgsz: 640,
            seed: 0,
            focal: FocalModulationConfig::new(),
            control_sppf: false,
        }
    }
}

impl DistillOptions {
    fn objective(&self) -> Objective {
        Objective {
            recipe: self.recipe,
            first: self.train_from,
        }
    }

    fn augmentation(&self) -> Augmentation {
        Augmentation {
            imgsz: self.imgsz,
            canvas: self.canvas,
            scale: self.scale,
        }
    }
}

/// Progress of a run, for a progress bar.
pub enum DistillEvent {
    /// A training or validation image that could not be read, left out.
    Skipped { path: PathBuf, reason: String },
    /// mAP on the `--val` folder: the teacher's before training (`epoch` None), then the
    /// student's.
    Scored {
        epoch: Option<usize>,
        report: MapReport,
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
    // The teacher's graph, before any tensor is built: a layer the loss cannot reach is
    // refused before any work.
    let graph = Graph::of(teacher).map_err(ModelError::from)?;
    let deepest = options.recipe.deepest_layer(graph.detect_layer());
    if !(LAYER9..=deepest).contains(&options.train_through) {
        return Err(DistillError::TrainThrough {
            layer: options.train_through,
            recipe: options.recipe,
            deepest,
        });
    }
    if options.train_from > LAYER9 {
        return Err(DistillError::TrainFrom(options.train_from));
    }
    let device = Device::flex();
    device.seed(options.seed);
    let (teacher_model, info) = Yolo::load(teacher, &device)?;
    if info.layer9 != crate::model::Layer9::Sppf {
        return Err(DistillError::NotStock);
    }

    let teacher_views = Teacher {
        model: &teacher_model,
        options,
        device: &device,
    };
    let val_set = options.val.as_deref().map(LabelledSet::open).transpose()?;
    let judge = |model: Yolo, info: &ModelInfo| -> Result<MapReport, DistillError> {
        let set = val_set.as_ref().expect("judged only with --val");
        let input = InputSize {
            imgsz: options.val_imgsz,
            canvas: Canvas::Minimal,
        };
        let detector = Detector::from_model(model, info.clone(), device.clone(), input);
        Ok(validate(&detector, set, &mut || {})?)
    };
    let mut teacher_score = None;
    if val_set.is_some() {
        let report = judge(teacher_model.clone(), &info)?;
        teacher_score = Some((report.map50_95, report.map50));
        on_event(DistillEvent::Scored {
            epoch: None,
            report,
        });
    }

    // The student is the teacher's twin with the new layer 9: fresh, from --start-from, or
    // from the checkpoint. Only layers train_from..=train_through get gradients.
    let checkpoint = checkpoint_paths(out);
    let (start, first_epoch) = if resume && checkpoint.0.is_file() {
        let saved = Weights::load(&checkpoint.0)?;
        let done = saved.epochs_done.ok_or_else(|| {
            DistillError::Resume("the checkpoint does not say how far it got".into())
        })?;
        (saved, done)
    } else if options.control_sppf {
        (fresh_sppf(teacher, options.seed), 0)
    } else if let Some(path) = &options.start_from {
        (Weights::load(path)?, 0)
    } else {
        // SPPF's input width, which FocalModulation keeps.
        let dim = teacher.get("model.9.cv1.conv.weight")?.shape[1];
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let layer = options.focal.init(dim, &mut rng, &device);
        let mut fresh = Weights::from_tensors(focal_tensors(&layer), Vec::new());
        fresh.focal = options.focal.record();
        (fresh, 0)
    };
    // The layer's settings: the starting file's when there is one, else the options'.
    let attributes = start.focal;
    let training = options.train_from..=options.train_through;
    let trained: BTreeSet<usize> = training.clone().chain(start.layers()).collect();
    let twin_weights = if options.control_sppf {
        teacher.with_layers(&start)?
    } else {
        teacher.with_focal_layer(&start)?
    };
    let (twin, twin_info) = Yolo::load(&twin_weights, &device)?;
    let mut student = twin.map(&mut StableIds(0)).train();
    student.model = student
        .model
        .into_iter()
        .enumerate()
        .map(|(index, layer)| {
            if training.contains(&index) {
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

    let views = images.len() * options.views;
    let steps = views.div_ceil(options.batch);
    let echo = options.echo.max(1);
    let total_steps = (options.epochs * steps * echo).max(1);
    let mut losses = Vec::new();
    for epoch in first_epoch..options.epochs {
        // Each epoch's order and views follow from the seed and the epoch alone, so a
        // resumed run sees what an uninterrupted one would have.
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed.wrapping_add(1 + epoch as u64));
        let mut order: Vec<usize> = (0..views).map(|view| view % images.len()).collect();
        order.shuffle(&mut rng);
        let (mut epoch_loss, mut seen) = (0.0, 0);
        for (step, batch) in order.chunks(options.batch).enumerate() {
            let samples = teacher_views.samples(images, batch, &mut rng, on_event);
            if samples.is_empty() {
                continue;
            }
            // The loss reported is the first repeat's: on views the student has not
            // stepped on yet.
            let mut value = None;
            for repeat in 0..echo {
                let progress = ((epoch * steps + step) * echo + repeat) as f64 / total_steps as f64;
                let lr = options.learning_rate
                    * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
                let loss = batch_loss(&student, &samples, options.objective());
                value.get_or_insert_with(|| loss.clone().into_scalar::<f32>());
                let mut grads = loss.backward();
                let layer9 = GradientsParams::from_module(&mut grads, &student.model[LAYER9]);
                let others = GradientsParams::from_grads(grads, &student);
                student = optimizer.step(lr, student, layer9);
                if !others.is_empty() {
                    student = optimizer.step(lr * options.later_layers_lr_scale, student, others);
                }
            }
            let value = value.expect("at least one step");
            epoch_loss += value * samples.len() as f32;
            seen += samples.len();
            on_event(DistillEvent::Step {
                epoch,
                step,
                steps,
                loss: value,
            });
        }
        if seen == 0 {
            return Err(DistillError::NoImages);
        }
        let mean_loss = epoch_loss / seen as f32;
        losses.push(mean_loss);
        let validation_loss = (!options.validation.is_empty()).then(|| {
            mean_loss_over(
                &student.valid(),
                &teacher_views,
                &options.validation,
                &mut ChaCha8Rng::seed_from_u64(options.seed ^ VALIDATION_STREAM),
                on_event,
            )
        });
        let done = epoch + 1 == options.epochs;
        let score = if val_set.is_some() && (done || (epoch + 1) % options.val_every.max(1) == 0) {
            let report = judge(student.valid(), &twin_info)?;
            let score = (report.map50_95, report.map50);
            on_event(DistillEvent::Scored {
                epoch: Some(epoch),
                report,
            });
            Some(score)
        } else {
            None
        };

        let target = if done {
            out.to_path_buf()
        } else {
            checkpoint.0.clone()
        };
        let layers = trained_tensors(&student.valid(), &trained, teacher);
        let progress = Progress {
            epochs_done: epoch + 1,
            loss: mean_loss,
            score,
            teacher_score,
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

#[cfg(test)]
mod tests;
