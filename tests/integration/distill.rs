//! Distillation of a FocalModulation layer 9, and putting the layer into a checkpoint.

use std::path::PathBuf;

use burn::tensor::Distribution;
use focalyolo::compute::device::ComputeDevice;
use focalyolo::compute::random::seeded_random;
use focalyolo::distill::{DistillEvent, DistillOptions, Recipe, distill, focal_tensors};
use focalyolo::model::{Activations, FocalModulationConfig, LAYER9, Layer9, Yolo};
use focalyolo::weights::{Weights, WeightsError};
use rand::SeedableRng;

use crate::common::{nan_max, require_shared};

fn few_images(shared: &std::path::Path, count: usize) -> Vec<PathBuf> {
    let mut images: Vec<PathBuf> = std::fs::read_dir(shared.join("coco128/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    images.sort();
    images.truncate(count);
    images
}

fn quick_options() -> DistillOptions {
    DistillOptions {
        imgsz: 320,
        epochs: 4,
        batch: 4,
        views: 2,
        ..DistillOptions::default()
    }
}

#[test]
fn short_distillation_lowers_the_loss_and_writes_a_loadable_layer() {
    let shared = require_shared!();
    let teacher = Weights::load(shared.join("weights/yolo11n.pt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("layer9.safetensors");
    let mut images = few_images(&shared, 8);
    let options = DistillOptions {
        validation: images.split_off(6),
        ..quick_options()
    };
    let mut held_out = Vec::new();
    let losses = distill(&teacher, &images, &options, &out, false, &mut |event| {
        if let DistillEvent::EpochDone {
            validation_loss, ..
        } = event
        {
            held_out.push(validation_loss.expect("validation images were given"));
        }
    })
    .unwrap();
    println!("losses per epoch: {losses:?}, on held-out images: {held_out:?}");
    assert!(
        losses.last().unwrap() < &losses[0],
        "loss did not fall: {losses:?}"
    );
    assert_eq!(held_out.len(), losses.len());
    assert!(
        held_out.last().unwrap() < &held_out[0],
        "held-out loss did not fall: {held_out:?}"
    );

    let layer = Weights::load(&out).unwrap();
    assert!(layer.tensors().keys().all(|k| k.starts_with("model.9.")));
    assert_eq!(
        layer.teacher_hash.as_deref(),
        Some(teacher.frozen_hash().as_str())
    );
    let twin = teacher.with_focal_layer(&layer).unwrap();
    let (_, info) = Yolo::load(&twin, &ComputeDevice::cpu().device).unwrap();
    let Layer9::FocalModulation { dim: width, config } = info.layer9 else {
        panic!("layer 9 is not FocalModulation")
    };
    assert_eq!(
        (
            width,
            config.focal_level,
            config.focal_window,
            config.focal_factor
        ),
        (256, 2, 3, 2)
    );
    assert_eq!(twin.class_names, teacher.class_names);
}

#[test]
fn training_c2psa_too_writes_layer_10_in_ultralytics_names_and_it_loads() {
    let shared = require_shared!();
    let teacher = Weights::load(shared.join("weights/yolo11n.pt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("layers9-10.safetensors");
    let options = DistillOptions {
        recipe: Recipe::Layer9And10,
        train_through: 10,
        ..quick_options()
    };
    let losses = distill(
        &teacher,
        &few_images(&shared, 6),
        &options,
        &out,
        false,
        &mut |_| {},
    )
    .unwrap();
    assert!(
        losses.last().unwrap() < &losses[0],
        "loss did not fall: {losses:?}"
    );

    let layer = Weights::load(&out).unwrap();
    let layer10: Vec<&String> = layer
        .tensors()
        .keys()
        .filter(|k| k.starts_with("model.10."))
        .collect();
    // Every conv of the teacher's C2PSA, BatchNorm folded: weight and bias, nothing else.
    let convs = teacher
        .tensors()
        .keys()
        .filter(|k| k.starts_with("model.10.") && k.ends_with(".conv.weight"))
        .count();
    assert_eq!(layer10.len(), 2 * convs, "{layer10:?}");
    for name in &layer10 {
        let conv = name.replace(".conv.bias", ".conv.weight");
        assert_eq!(
            teacher.tensors()[&conv].shape[0],
            layer.tensors()[*name].shape[0],
            "{name}"
        );
    }

    let device = ComputeDevice::cpu().device;
    let twin = teacher.with_focal_layer(&layer).unwrap();
    let (twin_model, _) = Yolo::load(&twin, &device).unwrap();
    let (teacher_model, _) = Yolo::load(&teacher, &device).unwrap();
    let seed = 0;
    let x = seeded_random(
        [1, 256, 10, 10],
        Distribution::Normal(0.0, 1.0),
        seed,
        &device,
    );
    let layer10 = |model: &Yolo| {
        let resumed = Activations::resume(LAYER9 + 1, x.clone(), []);
        model.run(resumed, LAYER9 + 1, &mut ()).last().clone()
    };
    let change = (layer10(&twin_model) - layer10(&teacher_model))
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(
        change > 1e-4,
        "seed {seed}: layer 10 did not train (max change {change})"
    );

    // The layers after 9 learn at their share of layer 9's rate: none, here.
    let frozen_out = dir.path().join("layer10-at-rate-0.safetensors");
    let frozen = DistillOptions {
        epochs: 1,
        later_layers_lr_scale: 0.0,
        ..options
    };
    distill(
        &teacher,
        &few_images(&shared, 6),
        &frozen,
        &frozen_out,
        false,
        &mut |_| {},
    )
    .unwrap();
    let (frozen_model, _) = Yolo::load(
        &teacher
            .with_focal_layer(&Weights::load(&frozen_out).unwrap())
            .unwrap(),
        &device,
    )
    .unwrap();
    let change = (layer10(&frozen_model) - layer10(&teacher_model))
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(
        change < 1e-4,
        "seed {seed}: layer 10 trained at rate 0 (max change {change})"
    );
}

/// Echoed steps (`echo`) are real optimiser steps: after two epochs, a run that steps three
/// times on each batch has gone further than one that steps once, on fresh views of the
/// images it trains on (the same views for both runs).
#[test]
fn echoed_steps_train_further() {
    let shared = require_shared!();
    let teacher = Weights::load(shared.join("weights/yolo11n.pt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let images = few_images(&shared, 4);
    let loss_after_two_epochs = |echo: usize| {
        let options = DistillOptions {
            epochs: 2,
            echo,
            // Far from the teacher, a fresh layer's first steps are small at the default rate.
            learning_rate: 1e-2,
            validation: images.clone(),
            ..quick_options()
        };
        let out = dir.path().join(format!("echo{echo}.safetensors"));
        let mut loss = None;
        distill(&teacher, &images, &options, &out, false, &mut |event| {
            if let DistillEvent::EpochDone {
                validation_loss, ..
            } = event
            {
                loss = validation_loss;
            }
        })
        .unwrap();
        loss.expect("validation images were given")
    };
    let (once, thrice) = (loss_after_two_epochs(1), loss_after_two_epochs(3));
    println!("loss on fresh views after two epochs: echo 1 {once}, echo 3 {thrice}");
    assert!(
        thrice < once * 0.9,
        "three steps per batch did not train further than one: {thrice} against {once}"
    );
}

/// The control run trains a fresh SPPF in layer 9's place: its loss falls, and the file
/// carries layer 9 under SPPF's Ultralytics names, which rebuild an SPPF model.
#[test]
fn a_control_run_trains_a_fresh_sppf() {
    let shared = require_shared!();
    let teacher = Weights::load(shared.join("weights/yolo11n.pt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("control.safetensors");
    let images = few_images(&shared, 4);
    let options = DistillOptions {
        epochs: 2,
        control_sppf: true,
        ..quick_options()
    };
    let losses = distill(&teacher, &images, &options, &out, false, &mut |_| {}).unwrap();
    assert!(losses[1] < losses[0], "loss did not fall: {losses:?}");
    let layer = Weights::load(&out).unwrap();
    assert!(
        layer.contains("model.9.cv1.conv.weight"),
        "{:?}",
        layer.tensors().keys()
    );
    assert!(layer.tensors().keys().all(|k| k.starts_with("model.9.")));
    let (_, info) = Yolo::load(
        &teacher.with_layers(&layer).unwrap(),
        &ComputeDevice::cpu().device,
    )
    .unwrap();
    assert_eq!(info.layer9, Layer9::Sppf);
}

/// Layers 9–23 trained with the `outputs` recipe: with a zero learning rate the file
/// rebuilds exactly the model it started from (every trained layer is written under its
/// Ultralytics name).
#[test]
fn the_outputs_recipe_writes_every_layer_it_trains_under_its_ultralytics_name() {
    let shared = require_shared!();
    recipe_writes_every_layer_it_trains(&shared, Recipe::Outputs, 23, Training::NotChecked);
}

/// Training with the `outputs` recipe lowers its loss on fixed views of the images it
/// trains on. (Its old objective did not: weighted by the student's own detached scores, it
/// was not minimal at the teacher, and its steps raised it in proportion to the learning
/// rate.)
#[test]
fn the_outputs_recipe_lowers_its_loss_on_fixed_views() {
    let shared = require_shared!();
    recipe_writes_every_layer_it_trains(&shared, Recipe::Outputs, 23, Training::Checked);
}

/// As the `outputs` recipe, for the neck's features (layers 9–22); and with a real
/// learning rate the loss falls.
#[test]
fn the_neck_recipe_writes_every_layer_it_trains_under_its_ultralytics_name() {
    let shared = require_shared!();
    recipe_writes_every_layer_it_trains(&shared, Recipe::Neck, 22, Training::Checked);
}

/// Whether a recipe test also trains and checks that the loss falls.
#[derive(PartialEq)]
enum Training {
    Checked,
    NotChecked,
}

fn recipe_writes_every_layer_it_trains(
    shared: &std::path::Path,
    recipe: Recipe,
    train_through: usize,
    training: Training,
) {
    let teacher = Weights::load(shared.join("weights/yolo11n.pt")).unwrap();
    let bundled =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/yolo11n-focal.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let images = few_images(shared, 4);
    let options = DistillOptions {
        recipe,
        train_through,
        start_from: Some(bundled.clone()),
        // Pretrained layers, eight steps without warm-up: at 1e-4 Adam's first full-size
        // steps through the whole head raise the loss before it falls again.
        learning_rate: 1e-5,
        ..quick_options()
    };

    // Every epoch draws new views, so the training loss of a layer that starts trained
    // moves with the views drawn; the loss on fixed views of the same images, before and
    // after training, is the measure.
    let options = DistillOptions {
        validation: images.clone(),
        ..options
    };
    let fixed_view_losses = |options: &DistillOptions, out: &std::path::Path| {
        let mut losses = Vec::new();
        distill(&teacher, &images, options, out, false, &mut |event| {
            if let DistillEvent::EpochDone {
                validation_loss, ..
            } = event
            {
                losses.push(validation_loss.expect("fixed views given"));
            }
        })
        .unwrap();
        losses
    };

    let unchanged = dir.path().join("unchanged.safetensors");
    let frozen = DistillOptions {
        epochs: 1,
        learning_rate: 0.0,
        ..options.clone()
    };
    let before = fixed_view_losses(&frozen, &unchanged)[0];
    let layers = Weights::load(&unchanged).unwrap();
    let with_params = [9, 10, 13, 16, 17, 19, 20, 22, 23];
    assert_eq!(
        layers.layers().into_iter().collect::<Vec<_>>(),
        with_params
            .into_iter()
            .filter(|&layer| layer <= train_through)
            .collect::<Vec<_>>()
    );

    let device = ComputeDevice::cpu().device;
    let seed = 0;
    let x = seeded_random(
        [1, 3, 320, 320],
        Distribution::Uniform(0.0, 1.0),
        seed,
        &device,
    );
    let predict = |layers: &Weights| {
        let (model, _) = Yolo::load(&teacher.with_focal_layer(layers).unwrap(), &device).unwrap();
        model.forward(x.clone())
    };
    let worst = (predict(&layers) - predict(&Weights::load(&bundled).unwrap()))
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(
        worst < 1e-3,
        "seed {seed}: the rebuilt model differs by {worst}"
    );

    if training == Training::NotChecked {
        return;
    }
    let trained = dir.path().join("trained.safetensors");
    let after = fixed_view_losses(&options, &trained);
    println!(
        "{recipe:?}: loss on fixed views {before} before training, {after:?} after each epoch"
    );
    assert!(
        after.last().unwrap() < &before,
        "loss on fixed views did not fall from {before}: {after:?}"
    );
}

#[test]
fn an_interrupted_distillation_resumes_where_it_stopped() {
    let shared = require_shared!();
    let teacher = Weights::load(shared.join("weights/yolo11n.pt")).unwrap();
    let images = few_images(&shared, 4);
    // With echoed steps, so the resumed schedule must count every repeat.
    let options = DistillOptions {
        epochs: 2,
        echo: 2,
        ..quick_options()
    };
    let dir = tempfile::tempdir().unwrap();

    let straight = dir.path().join("straight.safetensors");
    distill(&teacher, &images, &options, &straight, false, &mut |_| {}).unwrap();

    // Stop the second run right after its first epoch is checkpointed.
    let resumed = dir.path().join("resumed.safetensors");
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        distill(&teacher, &images, &options, &resumed, false, &mut |event| {
            if let DistillEvent::EpochDone { epoch: 0, .. } = event {
                panic!("interrupted");
            }
        })
    }));
    assert!(interrupted.is_err() && !resumed.exists());
    distill(&teacher, &images, &options, &resumed, true, &mut |_| {}).unwrap();

    let (a, b) = (
        Weights::load(&straight).unwrap(),
        Weights::load(&resumed).unwrap(),
    );
    for (name, tensor) in a.tensors() {
        let other = &b.tensors()[name];
        let worst = tensor
            .values
            .iter()
            .zip(&other.values)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, nan_max);
        assert!(worst < 1e-5, "{name} differs by {worst} after resuming");
    }
}

#[test]
fn a_layer_for_another_width_or_teacher_is_refused() {
    let shared = require_shared!();
    let n = Weights::load(shared.join("weights/yolo11n.pt")).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let fresh = FocalModulationConfig::new().init(256, &mut rng, &ComputeDevice::cpu().device);
    let mut layer = Weights::from_tensors(focal_tensors(&fresh), Vec::new());

    let s = Weights::load(shared.join("weights/yolo11s-fm-nc3-random.pt")).unwrap();
    let err = s.with_focal_layer(&layer).unwrap_err();
    assert!(matches!(err, WeightsError::Shape { .. }), "{err}");
    assert!(err.to_string().contains("512"), "{err}");

    layer.teacher_hash = Some(n.frozen_hash());
    assert!(n.with_focal_layer(&layer).is_ok());
    let other_n = Weights::load(shared.join("weights/yolo11n-fm-random.pt")).unwrap();
    let err = other_n.with_focal_layer(&layer).unwrap_err();
    assert!(matches!(err, WeightsError::Mismatch(_)), "{err}");
}

#[test]
fn stock_yolo11n_gets_the_bundled_focal_layer() {
    let shared = require_shared!();
    let bundled = focalyolo::weights::bundled::yolo11n_focal();
    assert!(bundled.tensors().keys().all(|k| k.starts_with("model.9.")));
    for file in ["yolo11n.pt", "yolo11n.safetensors"] {
        let (weights, applied) = focalyolo::weights::bundled::with_default_focal(
            Weights::load(shared.join("weights").join(file)).unwrap(),
        )
        .unwrap();
        assert!(applied, "{file}");
        let (_, info) = Yolo::load(&weights, &ComputeDevice::cpu().device).unwrap();
        assert!(
            matches!(info.layer9, Layer9::FocalModulation { .. }),
            "{file}"
        );
    }
    for file in ["yolo11n-fm-random.pt", "yolo11s-fm-nc3-random.pt"] {
        let (_, applied) = focalyolo::weights::bundled::with_default_focal(
            Weights::load(shared.join("weights").join(file)).unwrap(),
        )
        .unwrap();
        assert!(!applied, "{file} is not the stock YOLO11n");
    }
}

/// `--val`: the teacher is scored first, then the student after every `val_every` epochs
/// and after the last, each as `focalyolo val` scores a model; the file records the last
/// scores. A broken training image is reported and left out, not the end of the run.
#[test]
fn distillation_is_judged_by_map_on_a_labelled_folder_and_the_file_says_so() {
    let shared = require_shared!();
    let teacher = Weights::load(shared.join("weights/yolo11n.pt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let val_dir = dir.path().join("val_subset");
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(val_dir.join(sub)).unwrap();
    }
    let mut val_images: Vec<PathBuf> = std::fs::read_dir(shared.join("coco_val_dev/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    val_images.sort();
    for image in &val_images[..6] {
        let stem = image.file_stem().unwrap().to_string_lossy().into_owned();
        std::fs::copy(
            image,
            val_dir.join("images").join(image.file_name().unwrap()),
        )
        .unwrap();
        let labels = shared
            .join("coco_val_dev/labels")
            .join(format!("{stem}.txt"));
        if labels.exists() {
            std::fs::copy(labels, val_dir.join("labels").join(format!("{stem}.txt"))).unwrap();
        }
    }
    let broken = dir.path().join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let mut images = few_images(&shared, 4);
    images.push(broken.clone());

    let options = DistillOptions {
        epochs: 3,
        val: Some(val_dir.clone()),
        val_every: 2,
        val_imgsz: 320,
        mosaic: 0.5,
        ..quick_options()
    };
    let out = dir.path().join("judged.safetensors");
    let (mut scored, mut skipped) = (Vec::new(), Vec::new());
    distill(
        &teacher,
        &images,
        &options,
        &out,
        false,
        &mut |event| match event {
            DistillEvent::Scored { epoch, report } => {
                scored.push((epoch, report.map50_95, report.map50))
            }
            DistillEvent::Skipped { path, .. } => skipped.push(path),
            _ => {}
        },
    )
    .unwrap();
    assert_eq!(
        scored.iter().map(|s| s.0).collect::<Vec<_>>(),
        [None, Some(1), Some(2)],
        "{scored:?}"
    );
    assert!(
        !skipped.is_empty() && skipped.iter().all(|p| p == &broken),
        "{skipped:?}"
    );

    // The teacher's score is `val --stock` at the same size.
    let set = focalyolo::eval::LabelledSet::open(&val_dir).unwrap();
    let input = focalyolo::inference::detector::InputSize {
        imgsz: options.imgsz,
        ..Default::default()
    };
    let device = ComputeDevice::cpu().device;
    let stock =
        focalyolo::inference::detector::Detector::from_weights(&teacher, device.clone(), input)
            .unwrap();
    let stock_report = focalyolo::eval::validate(&stock, &set, &mut || {}).unwrap();
    assert_eq!(
        (scored[0].1, scored[0].2),
        (stock_report.map50_95, stock_report.map50)
    );
    assert!(stock_report.map50_95 > 0.2, "{stock_report:?}");

    // The file's scores are the last epoch's, and they are what `val` gets with the layer.
    let layer = Weights::load(&out).unwrap();
    let scores = layer.scores.clone().expect("scores recorded");
    assert_eq!(scores.data, "val_subset");
    assert!(
        (scores.map50_95 - scored[2].1).abs() < 5e-5,
        "{scores:?} {scored:?}"
    );
    assert!((scores.teacher_map50_95 - stock_report.map50_95).abs() < 5e-5);
    let with_layer = teacher.with_focal_layer(&layer).unwrap();
    let student =
        focalyolo::inference::detector::Detector::from_weights(&with_layer, device, input).unwrap();
    let student_report = focalyolo::eval::validate(&student, &set, &mut || {}).unwrap();
    assert!(
        (student_report.map50_95 - scored[2].1).abs() < 1e-3,
        "{student_report:?} against {scored:?}"
    );
}

/// What the app, `info` and the README say of the bundled layer is what `val` measures on
/// the COCO val2017 images in `../shared/coco_val_dev`: the layer's mAP and stock's, scored
/// side by side by `val --compare-stock`, with the difference's paired-bootstrap interval.
#[test]
fn the_bundled_layers_recorded_scores_are_what_val_measures() {
    let shared = require_shared!();
    let weights = shared.join("weights/yolo11n.pt");
    let stock = Weights::load(&weights).unwrap();
    let (bundled, applied) = focalyolo::weights::bundled::with_default_focal(stock).unwrap();
    assert!(applied);
    let scores = bundled
        .scores
        .clone()
        .expect("the bundled layer records its scores");
    assert_eq!(scores.data, "coco_val_dev");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("val.json");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_focalyolo"))
        .args(["val", "--device", "cpu", "--weights"])
        .arg(&weights)
        .arg("--data")
        .arg(shared.join("coco_val_dev"))
        .arg("--compare")
        .arg(&weights)
        .arg("--compare-stock")
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    crate::common::succeeded(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let number = |value: &serde_json::Value| value.as_f64().expect("a number");
    let compared = &report["compared"];
    for (measured, recorded) in [
        (number(&report["map50_95"]), scores.map50_95),
        (number(&report["map50"]), scores.map50),
        (number(&compared["map50_95"]), scores.teacher_map50_95),
        (number(&compared["map50"]), scores.teacher_map50),
    ] {
        assert!(
            (measured - recorded).abs() < 1e-3,
            "measured {measured}, recorded {recorded}"
        );
    }
    let difference = &compared["map50_95_difference"];
    let (value, low, high) = (
        number(&difference["value"]),
        number(&difference["low"]),
        number(&difference["high"]),
    );
    assert!((value - (number(&compared["map50_95"]) - number(&report["map50_95"]))).abs() < 1e-12);
    assert!(low <= value && value <= high, "{difference}");
    assert_eq!(difference["resamples"], 1000);
    assert!(
        stdout.contains(&format!(
            "difference (compared − first) {value:+.4}, 95% interval [{low:+.4}, {high:+.4}]"
        )),
        "{stdout}"
    );
}
