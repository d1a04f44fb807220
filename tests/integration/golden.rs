//! Parity with the PyTorch reference implementation (goldens in `../shared/golden`), on the
//! CPU backend and on wgpu.

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use focalyolo::model::conv::upload;
use focalyolo::model::{
    Activations, FocalModulation, FocalModulationConfig, FocalTaps, LAYER9, Observer, Yolo,
};
use focalyolo::weights::{FocalAttributes, Weights};

use crate::common::{max_abs_diff, nan_max, require_shared, test_devices, to_vec};

#[test]
fn focal_modulation_matches_pytorch_at_every_step() {
    let shared = require_shared!();
    let golden = Weights::load(shared.join("golden/focalmod_dim32.safetensors")).unwrap();
    let params: BTreeMap<_, _> = golden
        .tensors()
        .iter()
        .filter(|(k, _)| k.ends_with("weight") || k.ends_with("bias"))
        .map(|(k, v)| (format!("model.9.{k}"), v.clone()))
        .collect();
    let weights = Weights::from_tensors(params, Vec::new());
    let reference = |name: &str| golden.get(name).unwrap();

    for device in test_devices() {
        let focal = FocalModulation::load(
            &weights.root().pp(9),
            &FocalAttributes::default(),
            &device.device,
        )
        .unwrap();
        assert_eq!(
            (focal.dim(), focal.config()),
            (32, FocalModulationConfig::new())
        );
        let input = upload::<4>(reference("input"), &device.device);
        let projected = focal
            .f_linear
            .forward(input.clone())
            .split_with_sizes(vec![32, 32, 3], 1);
        let (output, taps) = focal.forward_with_taps(input);
        let checks = [
            ("q", projected[0].clone()),
            ("ctx_in", projected[1].clone()),
            ("gates", taps.gates),
            ("ctx_l0", taps.level_contexts[0].clone()),
            ("ctx_l1", taps.level_contexts[1].clone()),
            ("ctx_global", taps.global_context),
            ("ctx_all", taps.context_sum),
            ("modulator", taps.modulator),
            ("output", output),
        ];
        for (name, ours) in checks {
            let diff = max_abs_diff(ours, reference(name));
            assert!(
                diff <= 1e-5,
                "{name} on {}: max |Δ| {diff}",
                device.description
            );
        }
    }
}

#[test]
fn yolo11n_focal_modulation_matches_pytorch_end_to_end() {
    let shared = require_shared!();
    let weights = Weights::load(shared.join("golden/yolo11n_fm_random.safetensors")).unwrap();
    let io = Weights::load(shared.join("golden/yolo11n_fm_io.safetensors")).unwrap();
    let reference = |name: &str| io.get(name).unwrap();

    for device in test_devices() {
        let (model, info) = Yolo::load(&weights, &device.device).unwrap();
        assert_eq!((info.scale.as_str(), info.num_classes), ("n", 80));
        let input = upload::<4>(reference("input"), &device.device);
        let mut observer = LayersAndTaps::default();
        let predictions = model
            .run(Activations::input(input), model.last_layer(), &mut observer)
            .into_predictions()
            .unwrap();
        let LayersAndTaps { layers, taps } = observer;
        assert!(taps.is_some(), "a FocalModulation model gives taps");
        for (name, layer, tolerance) in [
            ("layer9_input", 8, 1e-5),
            ("layer9_output", 9, 1e-5),
            ("feat16", 16, 1e-4),
            ("feat19", 19, 1e-4),
            ("feat22", 22, 1e-4),
        ] {
            let diff = max_abs_diff(layers[layer].clone(), reference(name));
            assert!(
                diff <= tolerance,
                "{name} on {}: max |Δ| {diff}",
                device.description
            );
        }
        // Box coordinates reach ~480 px, where one f32 ulp is 3e-5: allow 1e-4 plus the
        // rounding of the magnitude itself (2e-7·|x|, under 4 ulps).
        let ours = to_vec(predictions);
        let expected = reference("output");
        assert_eq!(expected.shape, [1, 84, 2100]);
        let worst = ours
            .iter()
            .zip(&expected.values)
            .map(|(a, b)| (a - b).abs() / (1e-4 + 2e-7 * b.abs()))
            .fold(0.0, nan_max);
        println!(
            "Detect output on {}: worst |Δ| / tolerance {worst:.3}",
            device.description
        );
        assert!(
            worst <= 1.0,
            "Detect output on {}: |Δ| exceeds 1e-4 + 2e-7·|x| by {worst}×",
            device.description
        );
    }
}

/// Every layer's output and FocalModulation's taps, from one pass.
#[derive(Default)]
struct LayersAndTaps {
    layers: Vec<Tensor<4>>,
    taps: Option<FocalTaps>,
}

impl Observer for LayersAndTaps {
    fn wants_focal_taps(&self) -> bool {
        true
    }
    fn focal_taps(&mut self, taps: FocalTaps) {
        self.taps = Some(taps);
    }
    fn wants_every_output(&self) -> bool {
        true
    }
    fn layer_done(&mut self, _: usize, output: &Tensor<4>) {
        self.layers.push(output.clone());
    }
}

#[test]
fn a_pass_stopped_after_the_backbone_and_resumed_gives_the_same_predictions() {
    let shared = require_shared!();
    let weights = Weights::load(shared.join("weights/yolo11n.pt")).unwrap();
    let device = focalyolo::compute::device::ComputeDevice::cpu().device;
    let (model, _) = Yolo::load(&weights, &device).unwrap();
    let images = focalyolo::compute::random::seeded_random(
        [1, 3, 96, 128],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        0,
        &device,
    );
    let whole = to_vec(model.forward(images.clone()));

    let backbone = model.run(Activations::input(images), LAYER9 - 1, &mut ());
    let kept = |index: usize| backbone.output(index).unwrap().clone();
    let resumed = Activations::resume(
        LAYER9,
        backbone.last().clone(),
        [(4, kept(4)), (6, kept(6))],
    );
    let mut layers = Vec::new();
    let predictions = model
        .run(resumed, model.last_layer(), &mut layers)
        .into_predictions()
        .unwrap();
    assert_eq!(
        layers.len(),
        model.last_layer() - LAYER9,
        "layers 9 to 22 reported"
    );
    assert_eq!(to_vec(predictions), whole);
}
