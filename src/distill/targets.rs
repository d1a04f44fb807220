//! What the student is compared against: the teacher's outputs on fresh augmented views.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::augment::{View, augment};
use super::loss::batch_loss;
use super::{DistillEvent, DistillOptions, Recipe};
use crate::model::{Activations, Head, LAYER9, Yolo};
use crate::source::{SourceError, load_rgb};

/// One augmented view: what the teacher's backbone made of it (the output the student
/// starts from, and, when the neck runs in training, those of layers 4 and 6 that come
/// before the student's first layer) and what the teacher's later layers make of that.
pub(super) struct Sample {
    pub(super) skips: Vec<(usize, Tensor<4>)>,
    /// The teacher's output of the layer before the first one that trains.
    pub(super) start: Tensor<4>,
    pub(super) layer9: Tensor<4>,
    pub(super) layer10: Tensor<4>,
    /// The teacher's P3/P4/P5 features, for the `neck` recipe.
    pub(super) features: Option<[Tensor<4>; 3]>,
    /// The teacher's raw box and class outputs, for the `outputs` recipe.
    pub(super) head: Option<(Tensor<3>, Tensor<3>)>,
}

impl Sample {
    /// The teacher's outputs on `input` for a student whose first trained layer is `first`
    /// (0 to 9).
    pub(super) fn teach(teacher: &Yolo, input: Tensor<4>, recipe: Recipe, first: usize) -> Self {
        let mut before_first = Activations::input(input);
        if let Some(last_frozen) = first.checked_sub(1) {
            before_first = teacher.run(before_first, last_frozen, &mut ());
        }
        let start = before_first.last().clone();
        let with_neck = matches!(recipe, Recipe::Neck | Recipe::Outputs);
        // The backbone outputs the neck reads besides layer 10's; the student makes those
        // from its first layer on itself.
        let skips = (0..first)
            .filter(|&index| with_neck && teacher.graph.is_read_later(index))
            .map(|index| (index, before_first.output(index).expect("kept").clone()))
            .collect();
        let backbone = teacher.run(before_first, LAYER9 - 1, &mut ());
        let after9 = teacher.run(backbone, LAYER9, &mut ());
        let layer9 = after9.last().clone();
        let after10 = teacher.run(after9, LAYER9 + 1, &mut ());
        let layer10 = after10.last().clone();
        let (features, head) = match recipe {
            Recipe::Layer9 | Recipe::Layer9And10 => (None, None),
            Recipe::Neck | Recipe::Outputs => {
                let neck = teacher.run(after10, teacher.last_layer() - 1, &mut ());
                let features = teacher.detect_inputs(&neck).expect("the neck ran");
                if recipe == Recipe::Neck {
                    (Some(features), None)
                } else {
                    (
                        None,
                        Some(teacher.detect().forward_raw(features, Head::OneToMany)),
                    )
                }
            }
        };
        Self {
            skips,
            start,
            layer9,
            layer10,
            features,
            head,
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
                    Some(Sample::teach(
                        self.model,
                        input,
                        options.recipe,
                        options.train_from,
                    ))
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
        let loss: f32 = batch_loss(model, &samples, teacher.options.objective()).into_scalar();
        total += loss * samples.len() as f32;
        count += samples.len();
    }
    total / count.max(1) as f32
}
