//! What the student is compared against (the teacher's outputs on fresh augmented views)
//! and the recipes' losses.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::nn::loss::{MseLoss, Reduction};
use burn::tensor::activation::{log_softmax, sigmoid, softplus};
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::augment::{View, augment};
use super::{DistillEvent, DistillOptions, Recipe};
use crate::model::{Activations, LAST_LAYER, LAYER9, Yolo};
use crate::source::{SourceError, load_rgb};

/// One augmented view: what the teacher's backbone made of it (layers 4 and 6 only
/// when the neck runs in training) and what the teacher's later layers make of that.
pub(super) struct Sample {
    skips: Option<[Tensor<4>; 2]>,
    pub(super) layer8: Tensor<4>,
    layer9: Tensor<4>,
    layer10: Tensor<4>,
    /// The teacher's P3/P4/P5 features, for the `neck` recipe.
    features: Option<[Tensor<4>; 3]>,
    /// The teacher's raw box and class outputs, for the `outputs` recipe.
    head: Option<(Tensor<3>, Tensor<3>)>,
}

impl Sample {
    pub(super) fn teach(teacher: &Yolo, input: Tensor<4>, recipe: Recipe) -> Self {
        let backbone = teacher.run(Activations::input(input), LAYER9 - 1, &mut ());
        let layer_output = |activations: &Activations, index: usize| {
            activations.output(index).expect("kept").clone()
        };
        let layer8 = backbone.last().clone();
        let skips = [4, 6].map(|index| layer_output(&backbone, index));
        let after9 = teacher.run(backbone, LAYER9, &mut ());
        let layer9 = after9.last().clone();
        let after10 = teacher.run(after9, LAYER9 + 1, &mut ());
        let layer10 = after10.last().clone();
        let (features, head) = match recipe {
            Recipe::Layer9 | Recipe::Layer9And10 => (None, None),
            Recipe::Neck | Recipe::Outputs => {
                let neck = teacher.run(after10, LAST_LAYER - 1, &mut ());
                let features = neck.detect_inputs().expect("the neck ran");
                if recipe == Recipe::Neck {
                    (Some(features), None)
                } else {
                    (None, Some(teacher.detect().forward_raw(features)))
                }
            }
        };
        Self {
            skips: matches!(recipe, Recipe::Neck | Recipe::Outputs).then_some(skips),
            layer8,
            layer9,
            layer10,
            features,
            head,
        }
    }
}

/// The student's head against the teacher's over every anchor: binary cross-entropy of
/// the class logits against the teacher's probabilities, summed over classes and averaged
/// over anchors weighted by the higher of the two models' top class probability there (an
/// anchor neither calls an object cannot change a detection; thousands of them would
/// otherwise outweigh the few that do); plus the KL divergence of each box side's
/// distribution from the teacher's, weighted by the teacher's top class probability at the
/// anchor (a background anchor's box means nothing).
fn output_loss(student: (Tensor<3>, Tensor<3>), teacher: (Tensor<3>, Tensor<3>)) -> Tensor<1> {
    let ((student_boxes, student_classes), (teacher_boxes, teacher_classes)) = (student, teacher);
    let [batch, box_channels, anchors] = student_boxes.dims();
    let sides = [batch, 4, box_channels / 4, anchors];
    let probabilities = sigmoid(teacher_classes);
    let teacher_top = probabilities.clone().max_dim(1);
    let confident = teacher_top
        .clone()
        .max_pair(sigmoid(student_classes.clone().detach()).max_dim(1));
    let classes = ((softplus(student_classes.clone(), 1.0)
        - probabilities.clone() * student_classes)
        .sum_dim(1)
        * confident.clone())
    .sum()
        / confident.sum().add_scalar(1e-6);
    let weight = teacher_top.reshape([batch, 1, 1, anchors]);
    let target = log_softmax(teacher_boxes.reshape(sides), 2);
    let divergence = (target.clone().exp()
        * (target - log_softmax(student_boxes.reshape(sides), 2)))
    .sum_dim(2)
    .sum_dim(1);
    let boxes = (divergence * weight.clone()).sum() / weight.sum().add_scalar(1e-6);
    classes + boxes
}

/// Mean squared error.
fn feature_loss(output: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    MseLoss::new().forward(output, target, Reduction::Mean)
}

/// The recipe's loss on one batch of views: views of one canvas size go through the
/// student together, and every view counts the same.
pub(super) fn batch_loss(student: &Yolo, batch: &[Sample], recipe: Recipe) -> Tensor<1> {
    let mut by_size: BTreeMap<[usize; 4], Vec<&Sample>> = BTreeMap::new();
    for sample in batch {
        by_size
            .entry(sample.layer8.dims())
            .or_default()
            .push(sample);
    }
    by_size
        .into_values()
        .map(|group| same_size_loss(student, &group, recipe) * group.len() as f32)
        .reduce(|total, loss| total + loss)
        .expect("a batch has views")
        / batch.len() as f32
}

/// The recipe's loss on views of one canvas size.
fn same_size_loss(student: &Yolo, batch: &[&Sample], recipe: Recipe) -> Tensor<1> {
    let cat4 = |part: &dyn Fn(&Sample) -> Tensor<4>| {
        Tensor::cat(batch.iter().map(|s| part(s)).collect(), 0)
    };
    let cat3 =
        |part: fn(&Sample) -> Tensor<3>| Tensor::cat(batch.iter().map(|s| part(s)).collect(), 0);
    let layer8 = cat4(&|s| s.layer8.clone());
    let layer9_target = || cat4(&|s| s.layer9.clone());
    let layer10_target = || cat4(&|s| s.layer10.clone());
    match recipe {
        Recipe::Layer9 => {
            let layer9 = student.run(Activations::resume(LAYER9, layer8, []), LAYER9, &mut ());
            feature_loss(layer9.last().clone(), layer9_target())
        }
        Recipe::Layer9And10 => {
            let after9 = student.run(Activations::resume(LAYER9, layer8, []), LAYER9, &mut ());
            let layer9 = after9.last().clone();
            let after10 = student.run(after9, LAYER9 + 1, &mut ());
            feature_loss(layer9, layer9_target())
                + feature_loss(after10.last().clone(), layer10_target())
        }
        Recipe::Neck | Recipe::Outputs => {
            let skip = |i: usize| cat4(&|s| s.skips.as_ref().expect("taught")[i].clone());
            let resumed = Activations::resume(LAYER9, layer8, [(4, skip(0)), (6, skip(1))]);
            let after9 = student.run(resumed, LAYER9, &mut ());
            let layer9 = after9.last().clone();
            let after10 = student.run(after9, LAYER9 + 1, &mut ());
            let backbone_loss = feature_loss(layer9, layer9_target())
                + feature_loss(after10.last().clone(), layer10_target());
            let features = student
                .run(after10, LAST_LAYER - 1, &mut ())
                .detect_inputs()
                .expect("the neck ran");
            if recipe == Recipe::Neck {
                let level = |i: usize| cat4(&|s| s.features.as_ref().expect("taught")[i].clone());
                features
                    .into_iter()
                    .enumerate()
                    .fold(backbone_loss, |loss, (i, output)| {
                        loss + feature_loss(output, level(i))
                    })
            } else {
                let teacher_head = (
                    cat3(|s| s.head.as_ref().expect("taught").0.clone()),
                    cat3(|s| s.head.as_ref().expect("taught").1.clone()),
                );
                let student_head = student.detect().forward_raw(features);
                backbone_loss + output_loss(student_head, teacher_head)
            }
        }
    }
}

/// Draws fresh augmented views of training images and has the teacher label them.
pub(super) struct Teacher<'a> {
    pub(super) model: &'a Yolo,
    pub(super) options: &'a DistillOptions,
    pub(super) device: &'a Device,
}

impl Teacher<'_> {
    /// One view of each of `images[batch]`, with what the teacher makes of it; views are
    /// drawn from `rng` alone, so a seed gives the same ones on any thread count. An image
    /// that cannot be read is skipped and reported (a mosaic partner that cannot be read
    /// makes a plain view instead): a run over thousands of a user's files does not stop
    /// at the first broken one.
    pub(super) fn samples(
        &self,
        images: &[PathBuf],
        batch: &[usize],
        rng: &mut ChaCha8Rng,
        on_event: &mut dyn FnMut(DistillEvent),
    ) -> Vec<Sample> {
        let options = self.options;
        let plans: Vec<(usize, Vec<usize>, u64)> = batch
            .iter()
            .map(|&image| {
                let partners = if options.mosaic > 0.0 && rng.random_bool(options.mosaic) {
                    (0..3).map(|_| rng.random_range(0..images.len())).collect()
                } else {
                    Vec::new()
                };
                (image, partners, rng.random())
            })
            .collect();
        let how = options.augmentation();
        let views: Vec<Result<View, (PathBuf, SourceError)>> = plans
            .into_par_iter()
            .map(|(image, partners, seed)| {
                let first = load_rgb(&images[image]).map_err(|e| (images[image].clone(), e))?;
                let others: Option<Vec<RgbImage>> = partners
                    .iter()
                    .map(|&partner| load_rgb(&images[partner]).ok())
                    .collect();
                let tiles = match others {
                    Some(others) if !others.is_empty() => {
                        std::iter::once(first).chain(others).collect()
                    }
                    _ => vec![first],
                };
                Ok(augment(&tiles, how, &mut ChaCha8Rng::seed_from_u64(seed)))
            })
            .collect();
        views
            .into_iter()
            .filter_map(|view| match view {
                Ok(view) => {
                    let input = Tensor::<4>::from_data(
                        TensorData::new(view.pixels, [1, 3, view.height, view.width]),
                        self.device,
                    );
                    Some(Sample::teach(self.model, input, options.recipe))
                }
                Err((path, error)) => {
                    on_event(DistillEvent::Skipped {
                        path,
                        reason: error.to_string(),
                    });
                    None
                }
            })
            .collect()
    }
}

/// The recipe's loss averaged over views of `images`, in training-sized batches, the same
/// views every time `rng` starts from the same seed.
pub(super) fn mean_loss_over(
    model: &Yolo,
    teacher: &Teacher,
    images: &[PathBuf],
    rng: &mut ChaCha8Rng,
    on_event: &mut dyn FnMut(DistillEvent),
) -> f32 {
    let order: Vec<usize> = (0..images.len()).collect();
    let (mut total, mut count) = (0.0, 0);
    for batch in order.chunks(teacher.options.batch) {
        let samples = teacher.samples(images, batch, rng, on_event);
        if samples.is_empty() {
            continue;
        }
        let loss: f32 = batch_loss(model, &samples, teacher.options.recipe).into_scalar();
        total += loss * samples.len() as f32;
        count += samples.len();
    }
    total / count.max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn a_small_step_against_the_output_loss_gradient_lowers_it() {
        let device = Device::flex().autodiff();
        let random = |shape: [usize; 3], scale: f32| {
            Tensor::<3>::random(shape, burn::tensor::Distribution::Normal(0.0, 1.0), &device)
                * scale
        };
        let (anchors, classes) = (50, 5);
        let teacher = (
            random([2, 64, anchors], 2.0),
            random([2, classes, anchors], 3.0) - 2.0,
        );
        let student_boxes = random([2, 64, anchors], 2.0).require_grad();
        let student_classes = random([2, classes, anchors], 3.0)
            .sub_scalar(2.0)
            .require_grad();
        let loss = output_loss(
            (student_boxes.clone(), student_classes.clone()),
            teacher.clone(),
        );
        let grads = loss.backward();
        let before: f32 = loss.into_scalar();
        let step = 1e-3;
        let moved = |t: &Tensor<3>| (t.clone() - t.grad(&grads).unwrap() * step).detach();
        let after: f32 =
            output_loss((moved(&student_boxes), moved(&student_classes)), teacher).into_scalar();
        assert!(after < before, "{before} → {after}");
    }

    #[test]
    fn anchors_neither_model_calls_an_object_do_not_dilute_the_class_loss() {
        let device = Device::flex();
        // One class, two anchors: the teacher is 90% sure of an object at the first, where the
        // student says 50%; both see nothing at the second. Identical boxes: no KL term.
        let classes = |logits: [f32; 2]| {
            Tensor::<3>::from_data(TensorData::new(logits.to_vec(), [1, 1, 2]), &device)
        };
        let boxes = Tensor::<3>::zeros([1, 4, 2], &device);
        let teacher = classes([(0.9f32 / 0.1).ln(), -20.0]);
        let student = classes([0.0, -20.0]);
        let loss: f32 = output_loss((boxes.clone(), student), (boxes, teacher)).into_scalar();
        // The first anchor's cross-entropy alone, softplus(0) − 0.9·0 = ln 2, not its mean with
        // the empty anchor's (~ln 2 / 2).
        assert!((loss - 2f32.ln()).abs() < 1e-4, "{loss}");
    }
}
