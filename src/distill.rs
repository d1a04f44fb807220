//! Training a FocalModulation layer 9 for a stock YOLO11 by distillation: the teacher's
//! frozen layers 0–8 turn (augmented) unlabelled images into layer-8 features, and a fresh
//! FocalModulation learns to reproduce what the teacher's SPPF makes of them. Only layer 9
//! (and, in one recipe, layer 10 after it) trains, so the teacher's features are computed
//! once per view and cached.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::model::attention::C2Psa;
use crate::model::{FocalModulation, LAYER9, ModelError, Yolo};
use crate::preprocess::resize_bilinear;
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
}

/// What the student is trained to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Recipe {
    /// SPPF's output (layer 9).
    Layer9,
    /// SPPF's output, and what the teacher's frozen C2PSA (layer 10) makes of it: the
    /// student is judged by what the rest of the network sees.
    #[default]
    Layer9And10,
    /// As `layer9-and10`, with C2PSA trained too (starting from the teacher's): the file
    /// then carries `model.10.*` as well.
    TrainC2psa,
}

impl Recipe {
    fn describe(self) -> &'static str {
        match self {
            Recipe::Layer9 => {
                "layer-9 feature MSE against the teacher's SPPF on its own layer-8 features; AdamW, cosine LR"
            }
            Recipe::Layer9And10 => {
                "layer-9 plus layer-10 feature MSE (through the teacher's frozen C2PSA) on the teacher's layer-8 features; AdamW, cosine LR"
            }
            Recipe::TrainC2psa => {
                "layer-9 plus layer-10 feature MSE on the teacher's layer-8 features, C2PSA (layer 10) trained from the teacher's; AdamW, cosine LR"
            }
        }
    }
}

/// What trains: the new layer 9, and C2PSA when the recipe trains it.
#[derive(Module, Debug)]
struct Student {
    focal: FocalModulation,
    c2psa: Option<C2Psa>,
}

impl Student {
    /// Layer 9's output, and layer 10's: through the student's C2PSA when it has one, else
    /// through the teacher's frozen one.
    fn forward(&self, features: Tensor<4>, teacher: &Yolo) -> (Tensor<4>, Tensor<4>) {
        let layer9 = self.focal.forward(features);
        let layer10 = match &self.c2psa {
            Some(c2psa) => c2psa.forward(layer9.clone()),
            None => teacher.layer10(layer9.clone()),
        };
        (layer9, layer10)
    }

    /// The trained layers as Ultralytics-named tensors (`model.9.*`, `model.10.*`; C2PSA's
    /// convolutions in fused form, BatchNorm folded in).
    fn tensors(&self) -> BTreeMap<String, WeightTensor> {
        let mut tensors = focal_tensors(&self.focal);
        if let Some(c2psa) = &self.c2psa {
            tensors.extend(module_tensors(c2psa, &format!("model.{}", LAYER9 + 1)));
        }
        tensors
    }
}

/// What to train and how.
#[derive(Debug, Clone)]
pub struct DistillOptions {
    pub recipe: Recipe,
    pub imgsz: usize,
    pub epochs: usize,
    pub batch: usize,
    /// Augmented views cached per image.
    pub views: usize,
    pub learning_rate: f64,
    pub seed: u64,
    pub focal_level: usize,
    pub focal_window: usize,
    pub focal_factor: usize,
}

impl Default for DistillOptions {
    fn default() -> Self {
        Self {
            recipe: Recipe::default(),
            imgsz: 640,
            epochs: 30,
            batch: 16,
            views: 2,
            learning_rate: 1e-3,
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
    },
}

/// PyTorch's default initialisation for a conv of `fan_in` inputs: U(±1/√fan_in).
fn uniform(rng: &mut ChaCha8Rng, shape: Vec<usize>, fan_in: usize) -> WeightTensor {
    let bound = 1.0 / (fan_in as f32).sqrt();
    let values = (0..shape.iter().product())
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    WeightTensor { shape, values }
}

/// A freshly initialised FocalModulation of width `dim`, as `model.9.*` tensors.
pub fn init_focal(
    dim: usize,
    options: &DistillOptions,
    rng: &mut ChaCha8Rng,
) -> BTreeMap<String, WeightTensor> {
    let level = options.focal_level;
    let mut t = BTreeMap::new();
    let out = 2 * dim + level + 1;
    t.insert(
        "model.9.f_linear.weight".into(),
        uniform(rng, vec![out, dim, 1, 1], dim),
    );
    t.insert("model.9.f_linear.bias".into(), uniform(rng, vec![out], dim));
    for l in 0..level {
        let k = options.focal_factor * l + options.focal_window;
        t.insert(
            format!("model.9.focal_layers.{l}.0.weight"),
            uniform(rng, vec![dim, 1, k, k], k * k),
        );
    }
    for name in ["h", "proj"] {
        t.insert(
            format!("model.9.{name}.weight"),
            uniform(rng, vec![dim, dim, 1, 1], dim),
        );
        t.insert(format!("model.9.{name}.bias"), uniform(rng, vec![dim], dim));
    }
    t
}

/// A module's parameters named by its field path under `prefix` (`model.10.cv1.conv.weight`):
/// the module tree mirrors Ultralytics', so these are Ultralytics' names.
pub fn module_tensors<M: Module>(module: &M, prefix: &str) -> BTreeMap<String, WeightTensor> {
    struct Collect {
        path: Vec<String>,
        tensors: BTreeMap<String, WeightTensor>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let tensor = param.val();
            let shape = tensor.dims().to_vec();
            let values = tensor
                .into_data()
                .convert::<f32>()
                .try_to_vec()
                .expect("f32 parameters");
            self.tensors
                .insert(self.path.join("."), WeightTensor { shape, values });
        }
    }
    let mut collect = Collect {
        path: vec![prefix.to_string()],
        tensors: BTreeMap::new(),
    };
    module.visit(&mut collect);
    collect.tensors
}

/// The trained layer's parameters as `model.9.*` tensors. Each focal level is an
/// `nn.Sequential(conv, GELU)` in Ultralytics, so its conv is `focal_layers.N.0`.
pub fn focal_tensors(focal: &FocalModulation) -> BTreeMap<String, WeightTensor> {
    let levels = format!("model.{LAYER9}.focal_layers.");
    module_tensors(focal, &format!("model.{LAYER9}"))
        .into_iter()
        .map(|(name, tensor)| match name.strip_prefix(&levels) {
            Some(rest) => {
                let (level, param) = rest.split_once('.').expect("focal_layers.N.param");
                (format!("{levels}{level}.0.{param}"), tensor)
            }
            None => (name, tensor),
        })
        .collect()
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

/// One augmented view: random scale and placement on the square canvas, horizontal flip,
/// brightness/contrast/saturation jitter. Planar RGB in 0..1.
fn augment(image: &RgbImage, imgsz: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let (w, h) = (image.width() as f64, image.height() as f64);
    let scale = rng.random_range(0.5..=1.0) * imgsz as f64 / w.max(h);
    let (rw, rh) = (
        ((w * scale).round() as usize).clamp(1, imgsz),
        ((h * scale).round() as usize).clamp(1, imgsz),
    );
    let resized = resize_bilinear(image, rw, rh);
    let (left, top) = (
        rng.random_range(0..=imgsz - rw),
        rng.random_range(0..=imgsz - rh),
    );
    let flip = rng.random_bool(0.5);
    let (brightness, contrast, saturation) = (
        rng.random_range(0.75..1.25f32),
        rng.random_range(0.75..1.25f32),
        rng.random_range(0.6..1.4f32),
    );
    let plane = imgsz * imgsz;
    let mut out = vec![114.0 / 255.0; 3 * plane];
    for y in 0..rh {
        for x in 0..rw {
            let src = if flip { rw - 1 - x } else { x };
            let px = &resized[(y * rw + src) * 3..][..3];
            let rgb = [px[0], px[1], px[2]].map(|v| f32::from(v) / 255.0);
            let grey = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
            for c in 0..3 {
                let saturated = grey + (rgb[c] - grey) * saturation;
                let value = ((saturated - 0.5) * contrast + 0.5) * brightness;
                out[c * plane + (y + top) * imgsz + x + left] = value.clamp(0.0, 1.0);
            }
        }
    }
    out
}

/// Train a FocalModulation layer 9 (and C2PSA after it, if the recipe says so) for `teacher`
/// on `images`, writing the trained layers (and, after every epoch, a resumable checkpoint
/// beside them) to `out`.
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
    let device = Device::flex();
    device.seed(options.seed);
    let (teacher_model, info) = Yolo::load(teacher, &device)?;
    if info.layer9 != crate::model::Layer9::Sppf {
        return Err(DistillError::NotStock);
    }

    // Teacher features, once per view.
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let total = images.len() * options.views;
    let mut samples: Vec<(Tensor<4>, Tensor<4>, Tensor<4>)> = Vec::with_capacity(total);
    for (i, path) in images.iter().enumerate() {
        let image = load_rgb(path)?;
        for _ in 0..options.views {
            let pixels = augment(&image, options.imgsz, &mut rng);
            let input = Tensor::<4>::from_data(
                TensorData::new(pixels, [1, 3, options.imgsz, options.imgsz]),
                &device,
            );
            let features = teacher_model.backbone(input);
            let target = teacher_model.layer9(features.clone());
            let after = teacher_model.layer10(target.clone());
            samples.push((features, target, after));
        }
        on_event(DistillEvent::Caching {
            done: (i + 1) * options.views,
            total,
        });
    }
    let dim = samples[0].0.dims()[1];

    // The student, fresh or from the checkpoint.
    let checkpoint = checkpoint_paths(out);
    let (initial, first_epoch) = if resume && checkpoint.0.is_file() {
        let saved = Weights::load(&checkpoint.0)?;
        let done = saved.epochs_done.ok_or_else(|| {
            DistillError::Resume("the checkpoint does not say how far it got".into())
        })?;
        (saved.tensors().clone(), done)
    } else {
        (init_focal(dim, options, &mut rng), 0)
    };
    let attributes = options.focal_attributes();
    let student_weights = Weights::from_tensors(initial, Vec::new());
    let focal = FocalModulation::load(&student_weights.root().pp(LAYER9), &attributes, &device)?;
    let c2psa = if options.recipe == Recipe::TrainC2psa {
        let layer10 = student_weights.root().pp(LAYER9 + 1);
        // A fresh run starts from the teacher's C2PSA; a resumed one from its checkpoint.
        let start = if layer10.exists() {
            layer10
        } else {
            teacher.root().pp(LAYER9 + 1)
        };
        Some(C2Psa::load(&start, &device)?)
    } else {
        None
    };
    let mut student = Student { focal, c2psa }.map(&mut StableIds(0)).train();
    let mut optimizer = AdamWConfig::new().with_weight_decay(1e-4).init();
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
            let x = Tensor::cat(batch.iter().map(|&i| samples[i].0.clone()).collect(), 0);
            let y = Tensor::cat(batch.iter().map(|&i| samples[i].1.clone()).collect(), 0);
            let (layer9, layer10) = student.forward(x, &teacher_model);
            let mut loss = MseLoss::new().forward(layer9, y, Reduction::Mean);
            if options.recipe != Recipe::Layer9 {
                let after = Tensor::cat(batch.iter().map(|&i| samples[i].2.clone()).collect(), 0);
                loss = loss + MseLoss::new().forward(layer10, after, Reduction::Mean);
            }
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

        let done = epoch + 1 == options.epochs;
        let target = if done {
            out.to_path_buf()
        } else {
            checkpoint.0.clone()
        };
        save_layer(
            &student.valid(),
            teacher,
            &info.scale,
            options,
            epoch + 1,
            mean_loss,
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
        on_event(DistillEvent::EpochDone { epoch, mean_loss });
    }
    Ok(losses)
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

fn save_layer(
    student: &Student,
    teacher: &Weights,
    scale: &str,
    options: &DistillOptions,
    epochs_done: usize,
    loss: f32,
    path: &Path,
) -> Result<(), DistillError> {
    let mut layer = Weights::from_tensors(student.tensors(), Vec::new());
    layer.focal = options.focal_attributes();
    layer.teacher_hash = Some(teacher.frozen_hash());
    layer.epochs_done = Some(epochs_done);
    layer.save_safetensors_with(
        path,
        &[
            ("teacher_scale", scale.to_string()),
            ("recipe", options.recipe.describe().to_string()),
            ("imgsz", options.imgsz.to_string()),
            ("seed", options.seed.to_string()),
            ("final_loss", loss.to_string()),
        ],
    )?;
    Ok(())
}
