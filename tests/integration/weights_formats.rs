//! Every weights format loads to the same model, with the right architecture and names.

use burn::tensor::{Tensor, TensorData};
use focalyolo::compute::device::ComputeDevice;
use focalyolo::model::{Layer9, Yolo};
use focalyolo::weights::Weights;

use crate::common::{nan_max, require_shared, to_vec};

fn predictions(weights: &Weights) -> Vec<f32> {
    let device = ComputeDevice::cpu().device;
    let (model, _) = Yolo::load(weights, &device).unwrap();
    // A smooth synthetic image, so every layer sees structure.
    let (h, w) = (160, 224);
    let pixels: Vec<f32> = (0..3 * h * w)
        .map(|i| {
            let (c, y, x) = (i / (h * w), (i / w) % h, i % w);
            0.5 + 0.4 * ((x as f32 * 0.05 + c as f32).sin() * (y as f32 * 0.07).cos())
        })
        .collect();
    let input = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, h, w]), &device);
    to_vec(model.forward(input))
}

#[test]
fn pt_safetensors_and_fused_give_the_same_outputs() {
    let shared = require_shared!();
    let pt = Weights::load(shared.join("weights/yolo11n.pt")).unwrap();
    let st = Weights::load(shared.join("weights/yolo11n.safetensors")).unwrap();
    let fused = Weights::load(shared.join("weights/yolo11n-fused.safetensors")).unwrap();
    assert_eq!(pt.class_names.len(), 80);
    assert_eq!(pt.class_names[0], "person");
    assert_eq!(pt.class_names, st.class_names);
    assert_eq!(pt.class_names, fused.class_names);

    let from_pt = predictions(&pt);
    assert_eq!(
        from_pt,
        predictions(&st),
        ".pt and .safetensors of one model must agree exactly"
    );
    let worst = from_pt
        .iter()
        .zip(predictions(&fused))
        .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
        .fold(0.0, nan_max);
    assert!(worst < 1e-4, "fused weights differ by {worst}");
}

#[test]
fn converted_checkpoint_round_trips() {
    let shared = require_shared!();
    let pt = Weights::load(shared.join("weights/yolo11n-fm-random.pt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("converted.safetensors");
    pt.save_safetensors(&out).unwrap();
    let back = Weights::load(&out).unwrap();
    assert_eq!(back.tensors(), pt.tensors());
    assert_eq!(back.class_names, pt.class_names);
    assert_eq!(back.focal, pt.focal);
}

#[test]
fn focal_checkpoints_load_with_their_architecture_and_names() {
    let shared = require_shared!();
    let device = ComputeDevice::cpu().device;
    let cases = [
        ("yolo11n-fm-random.pt", "n", 80, 256),
        ("yolo11s-fm-nc3-random.pt", "s", 3, 512),
    ];
    for (file, scale, classes, dim) in cases {
        let weights = Weights::load(shared.join("weights").join(file)).unwrap();
        let (_, info) = Yolo::load(&weights, &device).unwrap();
        assert_eq!(info.scale, scale, "{file}");
        assert_eq!(info.num_classes, classes, "{file}");
        let Layer9::FocalModulation { dim: width, config } = info.layer9 else {
            panic!("{file}: layer 9 is not FocalModulation")
        };
        assert_eq!(
            (
                width,
                config.focal_level,
                config.focal_window,
                config.focal_factor
            ),
            (dim, 2, 3, 2)
        );
        assert!(!config.normalize_modulator);
    }
    let nc3 = Weights::load(shared.join("weights/yolo11s-fm-nc3-random.pt")).unwrap();
    assert_eq!(nc3.class_names, ["helmet", "vest", "person"]);

    let (_, stock) = Yolo::load(
        &Weights::load(shared.join("weights/yolo11n.pt")).unwrap(),
        &device,
    )
    .unwrap();
    assert_eq!(stock.layer9, Layer9::Sppf);
    assert_eq!((stock.scale.as_str(), stock.num_classes), ("n", 80));
}
