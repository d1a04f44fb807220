//! The training loop's own checks: exact gradients on the training device, and options
//! refused before any work.

use std::collections::BTreeMap;

use burn::tensor::Distribution;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use super::*;
use crate::compute::random::seeded_random;

/// The focal levels train through burn's grouped-convolution backward on the CPU
/// backend; checked against the gradient written out by hand, for both the kernel and
/// the input, at FocalModulation's kernel sizes. Each kernel size draws its tensors from a
/// seed of its own, printed on failure.
#[test]
fn depthwise_convolution_gradients_on_the_training_device_are_exact() {
    let device = Device::flex().autodiff();
    let (channels, side) = (3, 6);
    for kernel in [3usize, 5] {
        let pad = kernel / 2;
        let seed = 3 * kernel as u64;
        let random = |shape: [usize; 4], seed: u64| {
            seeded_random(shape, Distribution::Normal(0.0, 1.0), seed, &device)
        };
        let x = random([1, channels, side, side], seed).require_grad();
        let w = random([channels, 1, kernel, kernel], seed + 1).require_grad();
        let r = random([1, channels, side, side], seed + 2);
        let options = ConvOptions::new([1, 1], [pad, pad], [1, 1], channels);
        let loss = (conv2d(x.clone(), w.clone(), None, options) * r.clone()).sum();
        let grads = loss.backward();
        let values = |t: Tensor<4>| t.try_into_vec_as::<f32>().unwrap();
        let (xv, rv) = (values(x.clone()), values(r));
        let (grad_w, grad_x) = (
            values(w.grad(&grads).unwrap()),
            values(x.grad(&grads).unwrap()),
        );
        let at = |c: usize, y: usize, x: usize| c * side * side + y * side + x;
        let mut expected_w = vec![0.0f32; channels * kernel * kernel];
        let mut expected_x = vec![0.0f32; channels * side * side];
        let wv = values(w);
        for c in 0..channels {
            for (y, x) in (0..side).flat_map(|y| (0..side).map(move |x| (y, x))) {
                for (i, j) in (0..kernel).flat_map(|i| (0..kernel).map(move |j| (i, j))) {
                    let (sy, sx) = (
                        (y + i) as isize - pad as isize,
                        (x + j) as isize - pad as isize,
                    );
                    if (0..side as isize).contains(&sy) && (0..side as isize).contains(&sx) {
                        let source = at(c, sy as usize, sx as usize);
                        let k = c * kernel * kernel + i * kernel + j;
                        expected_w[k] += rv[at(c, y, x)] * xv[source];
                        expected_x[source] += rv[at(c, y, x)] * wv[k];
                    }
                }
            }
        }
        for (name, got, expected) in [
            ("kernel", grad_w, expected_w),
            ("input", grad_x, expected_x),
        ] {
            let worst = got
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst < 1e-4,
                "seed {seed}: kernel {kernel}: {name} gradient off by {worst}"
            );
        }
    }
}

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
