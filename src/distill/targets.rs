//! What the student is compared against (the teacher's outputs, cached per augmented view)
//! and the recipes' losses.

use std::path::PathBuf;

use burn::nn::loss::{MseLoss, Reduction};
use burn::tensor::activation::{log_softmax, sigmoid, softplus};
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use rand_chacha::ChaCha8Rng;

use super::augment::augment;
use super::{DistillError, DistillEvent, DistillOptions, Recipe};
use crate::model::Yolo;
use crate::source::load_rgb;

/// One cached augmented view: what the teacher's backbone made of it (layers 4 and 6 only
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
    pub(super) fn cache(teacher: &Yolo, input: Tensor<4>, recipe: Recipe) -> Self {
        let [layer4, layer6, layer8] = teacher.backbone(input);
        match recipe {
            Recipe::Layer9 | Recipe::Layer9And10 => {
                let layer9 = teacher.layer9(layer8.clone());
                Self {
                    skips: None,
                    layer8,
                    layer10: teacher.layer10(layer9.clone()),
                    layer9,
                    features: None,
                    head: None,
                }
            }
            Recipe::Neck | Recipe::Outputs => {
                let neck = teacher.neck([layer4.clone(), layer6.clone(), layer8.clone()]);
                let (features, head) = if recipe == Recipe::Neck {
                    (Some(neck.features), None)
                } else {
                    (None, Some(teacher.detect().forward_raw(neck.features)))
                };
                Self {
                    skips: Some([layer4, layer6]),
                    layer8,
                    layer9: neck.layer9,
                    layer10: neck.layer10,
                    features,
                    head,
                }
            }
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

/// Per-channel weights for the squared errors of layers 9 and 10: the inverse of the
/// teacher's variance in each channel over all cached views, scaled to average 1 so the
/// loss keeps its size.
pub(super) struct ChannelWeights {
    layer9: Tensor<4>,
    layer10: Tensor<4>,
}

impl ChannelWeights {
    pub(super) fn from_samples(samples: &[Sample]) -> Self {
        Self {
            layer9: inverse_variance(samples.iter().map(|s| &s.layer9)),
            layer10: inverse_variance(samples.iter().map(|s| &s.layer10)),
        }
    }
}

/// Each channel's inverse variance over every value of `tensors` (NCHW, same C), scaled to
/// average 1, as a `[1, C, 1, 1]` tensor.
fn inverse_variance<'a>(tensors: impl Iterator<Item = &'a Tensor<4>>) -> Tensor<4> {
    let mut moments: Option<(Tensor<1>, Tensor<1>)> = None;
    let mut count = 0;
    for tensor in tensors {
        let [n, c, h, w] = tensor.dims();
        let values = tensor.clone().swap_dims(0, 1).reshape([c, n * h * w]);
        let sum = values.clone().sum_dim(1).reshape([c]);
        let squares = values.powi_scalar(2).sum_dim(1).reshape([c]);
        moments = Some(match moments {
            Some((s, q)) => (s + sum, q + squares),
            None => (sum, squares),
        });
        count += n * h * w;
    }
    let (sum, squares) = moments.expect("at least one tensor");
    let mean = sum / count as f32;
    let variance = squares / count as f32 - mean.clone() * mean;
    let inverse = variance.clamp_min(1e-6).recip();
    let [channels] = inverse.dims();
    (inverse.clone() / inverse.mean()).reshape([1, channels, 1, 1])
}

/// Mean squared error, each channel's weighted by `weights` when given.
fn feature_loss(output: Tensor<4>, target: Tensor<4>, weights: Option<&Tensor<4>>) -> Tensor<1> {
    match weights {
        Some(weights) => ((output - target).powi_scalar(2) * weights.clone()).mean(),
        None => MseLoss::new().forward(output, target, Reduction::Mean),
    }
}

/// The recipe's loss on one batch of cached views.
pub(super) fn batch_loss<'a>(
    student: &Yolo,
    batch: impl Iterator<Item = &'a Sample> + Clone,
    recipe: Recipe,
    channel_weights: Option<&ChannelWeights>,
) -> Tensor<1> {
    let cat4 =
        |part: &dyn Fn(&Sample) -> Tensor<4>| Tensor::cat(batch.clone().map(part).collect(), 0);
    let cat3 = |part: fn(&Sample) -> Tensor<3>| Tensor::cat(batch.clone().map(part).collect(), 0);
    let layer9_loss =
        |output, target| feature_loss(output, target, channel_weights.map(|w| &w.layer9));
    let layer10_loss =
        |output, target| feature_loss(output, target, channel_weights.map(|w| &w.layer10));
    let layer8 = cat4(&|s| s.layer8.clone());
    match recipe {
        Recipe::Layer9 => layer9_loss(student.layer9(layer8), cat4(&|s| s.layer9.clone())),
        Recipe::Layer9And10 => {
            let layer9 = student.layer9(layer8);
            let layer10 = student.layer10(layer9.clone());
            layer9_loss(layer9, cat4(&|s| s.layer9.clone()))
                + layer10_loss(layer10, cat4(&|s| s.layer10.clone()))
        }
        Recipe::Neck | Recipe::Outputs => {
            let skip = |i: usize| cat4(&|s| s.skips.as_ref().expect("cached")[i].clone());
            let neck = student.neck([skip(0), skip(1), layer8]);
            let backbone_loss = layer9_loss(neck.layer9, cat4(&|s| s.layer9.clone()))
                + layer10_loss(neck.layer10, cat4(&|s| s.layer10.clone()));
            if recipe == Recipe::Neck {
                let level = |i: usize| cat4(&|s| s.features.as_ref().expect("cached")[i].clone());
                neck.features
                    .into_iter()
                    .enumerate()
                    .fold(backbone_loss, |loss, (i, output)| {
                        loss + feature_loss(output, level(i), None)
                    })
            } else {
                let teacher_head = (
                    cat3(|s| s.head.as_ref().expect("cached").0.clone()),
                    cat3(|s| s.head.as_ref().expect("cached").1.clone()),
                );
                let student_head = student.detect().forward_raw(neck.features);
                backbone_loss + output_loss(student_head, teacher_head)
            }
        }
    }
}

/// Augmented views of images, each cached with what the teacher makes of it.
pub(super) struct Views<'a> {
    pub(super) teacher: &'a Yolo,
    pub(super) options: &'a DistillOptions,
    pub(super) device: &'a Device,
}

impl Views<'_> {
    pub(super) fn cache(
        &self,
        images: &[PathBuf],
        pool: &[RgbImage],
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
pub(super) fn mean_loss_over(
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

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

    #[test]
    fn channel_weights_are_inverse_variances_averaging_one() {
        let device = Device::flex();
        // Channel 0 alternates ±2 (variance 4) around 1, channel 1 ±1 (variance 1) around -3,
        // split over two tensors.
        let tensor = |values: [f32; 4]| {
            Tensor::<4>::from_data(TensorData::new(values.to_vec(), [1, 2, 1, 2]), &device)
        };
        let first = tensor([3.0, -1.0, -2.0, -4.0]);
        let second = tensor([-1.0, 3.0, -4.0, -2.0]);
        let weights = inverse_variance([&first, &second].into_iter())
            .try_into_vec_as::<f32>()
            .unwrap();
        // 1/4 and 1/1, scaled to average 1: 0.4 and 1.6.
        assert!(
            (weights[0] - 0.4).abs() < 1e-5 && (weights[1] - 1.6).abs() < 1e-5,
            "{weights:?}"
        );
    }
}
