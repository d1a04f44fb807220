//! Training a FocalModulation layer 9 for a stock YOLO11 by distillation: the teacher's
//! frozen layers 0–8 turn (augmented) unlabelled images into backbone features, and the
//! twin (the teacher with a fresh FocalModulation at layer 9) learns to reproduce what the
//! teacher makes of them: SPPF's output, C2PSA's, and with the `outputs` recipe the
//! Detect head's. Layer 9 trains, and optionally the layers after it; layers 0–8 never
//! do, so their outputs are computed once per augmented view and cached.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::{log_softmax, sigmoid, softplus};
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::model::{FocalModulation, LAST_LAYER, LAYER9, ModelError, Yolo};
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
    /// As `layer9-and10`, plus the teacher's outputs over all anchors: its class scores
    /// (binary cross-entropy against its probabilities) and its box-side distributions
    /// (KL divergence from its softmax, weighted by the anchor's top class score).
    Outputs,
}

impl Recipe {
    fn describe(self) -> &'static str {
        match self {
            Recipe::Layer9 => "layer-9 feature MSE against the teacher's SPPF",
            Recipe::Layer9And10 => "layer-9 plus layer-10 feature MSE",
            Recipe::Outputs => {
                "layer-9 plus layer-10 feature MSE, plus the teacher's class scores (BCE) and box distributions (KL) over all anchors"
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
            train_through: LAYER9,
            start_from: None,
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
/// the module tree mirrors Ultralytics', so these are Ultralytics' names. Enum variants
/// (`Layer::C2Psa`) are not part of the path.
pub fn module_tensors<M: Module>(module: &M, prefix: &str) -> BTreeMap<String, WeightTensor> {
    struct Collect {
        path: Vec<Option<String>>,
        tensors: BTreeMap<String, WeightTensor>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            let is_variant = container_type.starts_with("Enum:");
            self.path.push((!is_variant).then(|| name.to_string()));
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
            let name: Vec<&str> = self.path.iter().flatten().map(String::as_str).collect();
            self.tensors
                .insert(name.join("."), WeightTensor { shape, values });
        }
    }
    let mut collect = Collect {
        path: vec![Some(prefix.to_string())],
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

/// One cached augmented view: what the teacher's backbone made of it (layers 4 and 6 only
/// when the neck runs in training) and what the teacher's later layers make of that.
struct Sample {
    skips: Option<[Tensor<4>; 2]>,
    layer8: Tensor<4>,
    layer9: Tensor<4>,
    layer10: Tensor<4>,
    /// The teacher's raw box and class outputs, for the `outputs` recipe.
    head: Option<(Tensor<3>, Tensor<3>)>,
}

impl Sample {
    fn cache(teacher: &Yolo, input: Tensor<4>, recipe: Recipe) -> Self {
        let [layer4, layer6, layer8] = teacher.backbone(input);
        if recipe == Recipe::Outputs {
            let neck = teacher.neck([layer4.clone(), layer6.clone(), layer8.clone()]);
            Self {
                skips: Some([layer4, layer6]),
                layer8,
                layer9: neck.layer9,
                layer10: neck.layer10,
                head: Some(teacher.detect().forward_raw(neck.features)),
            }
        } else {
            let layer9 = teacher.layer9(layer8.clone());
            Self {
                skips: None,
                layer8,
                layer10: teacher.layer10(layer9.clone()),
                layer9,
                head: None,
            }
        }
    }
}

/// The student's head against the teacher's over every anchor: binary cross-entropy of
/// the class logits against the teacher's probabilities, summed over classes; plus the KL
/// divergence of each box side's distribution from the teacher's, weighted by the
/// teacher's top class probability at the anchor (a background anchor's box means
/// nothing). Both are averages over anchors.
fn output_loss(student: (Tensor<3>, Tensor<3>), teacher: (Tensor<3>, Tensor<3>)) -> Tensor<1> {
    let ((student_boxes, student_classes), (teacher_boxes, teacher_classes)) = (student, teacher);
    let [batch, box_channels, anchors] = student_boxes.dims();
    let sides = [batch, 4, box_channels / 4, anchors];
    let probabilities = sigmoid(teacher_classes);
    let classes = (softplus(student_classes.clone(), 1.0)
        - probabilities.clone() * student_classes)
        .sum_dim(1)
        .mean();
    let weight = probabilities.max_dim(1).reshape([batch, 1, 1, anchors]);
    let target = log_softmax(teacher_boxes.reshape(sides), 2);
    let divergence = (target.clone().exp()
        * (target - log_softmax(student_boxes.reshape(sides), 2)))
    .sum_dim(2)
    .sum_dim(1);
    let boxes = (divergence * weight.clone()).sum() / weight.sum().add_scalar(1e-6);
    classes + boxes
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
    let total = images.len() * options.views;
    let mut samples = Vec::with_capacity(total);
    for (i, path) in images.iter().enumerate() {
        let image = load_rgb(path)?;
        for _ in 0..options.views {
            let pixels = augment(&image, options.imgsz, &mut rng);
            let input = Tensor::<4>::from_data(
                TensorData::new(pixels, [1, 3, options.imgsz, options.imgsz]),
                &device,
            );
            samples.push(Sample::cache(&teacher_model, input, options.recipe));
        }
        on_event(DistillEvent::Caching {
            done: (i + 1) * options.views,
            total,
        });
    }
    let dim = samples[0].layer8.dims()[1];

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
            let loss = batch_loss(&student, batch.iter().map(|&i| &samples[i]), options.recipe);
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
        on_event(DistillEvent::EpochDone { epoch, mean_loss });
    }
    Ok(losses)
}

/// The recipe's loss on one batch of cached views.
fn batch_loss<'a>(
    student: &Yolo,
    batch: impl Iterator<Item = &'a Sample> + Clone,
    recipe: Recipe,
) -> Tensor<1> {
    let cat4 = |part: fn(&Sample) -> Tensor<4>| Tensor::cat(batch.clone().map(part).collect(), 0);
    let cat3 = |part: fn(&Sample) -> Tensor<3>| Tensor::cat(batch.clone().map(part).collect(), 0);
    let mse = |output, target| MseLoss::new().forward(output, target, Reduction::Mean);
    let layer8 = cat4(|s| s.layer8.clone());
    match recipe {
        Recipe::Layer9 => mse(student.layer9(layer8), cat4(|s| s.layer9.clone())),
        Recipe::Layer9And10 => {
            let layer9 = student.layer9(layer8);
            let layer10 = student.layer10(layer9.clone());
            mse(layer9, cat4(|s| s.layer9.clone())) + mse(layer10, cat4(|s| s.layer10.clone()))
        }
        Recipe::Outputs => {
            let skip = |i: usize| move |s: &Sample| s.skips.as_ref().expect("cached")[i].clone();
            let neck = student.neck([
                Tensor::cat(batch.clone().map(skip(0)).collect(), 0),
                Tensor::cat(batch.clone().map(skip(1)).collect(), 0),
                layer8,
            ]);
            let teacher_head = (
                cat3(|s| s.head.as_ref().expect("cached").0.clone()),
                cat3(|s| s.head.as_ref().expect("cached").1.clone()),
            );
            let student_head = student.detect().forward_raw(neck.features);
            mse(neck.layer9, cat4(|s| s.layer9.clone()))
                + mse(neck.layer10, cat4(|s| s.layer10.clone()))
                + output_loss(student_head, teacher_head)
        }
    }
}

/// The trained layers of `student` as Ultralytics-named tensors: layer 9 as FocalModulation
/// names it, later layers' convolutions in fused form (BatchNorm folded in), and, with
/// Detect, DFL's fixed projection (not a parameter) from the teacher.
fn trained_tensors(
    student: &Yolo,
    trained: &BTreeSet<usize>,
    teacher: &Weights,
) -> BTreeMap<String, WeightTensor> {
    let mut tensors = BTreeMap::new();
    for &index in trained {
        if index == LAYER9 {
            tensors.extend(focal_tensors(
                student.focal().expect("the twin has FocalModulation"),
            ));
            continue;
        }
        tensors.extend(module_tensors(
            &student.model[index],
            &format!("model.{index}"),
        ));
        if index == LAST_LAYER {
            let dfl = format!("model.{LAST_LAYER}.dfl.conv.weight");
            if let Ok(projection) = teacher.get(&dfl) {
                tensors.insert(dfl, projection.clone());
            }
        }
    }
    tensors
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
        for (recipe, train_through) in [(Recipe::Layer9, 10), (Recipe::Layer9And10, 11)] {
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
