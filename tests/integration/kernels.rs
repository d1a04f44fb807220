//! The WGSL kernels against burn on the CPU backend: depthwise convolution for every kernel
//! size, stride, activation and awkward shape the model can meet, and the letterbox kernel
//! against the CPU letterbox on odd frame sizes.

use burn::tensor::{Device, Distribution, TensorData};
use focalyolo::compute::device::{ComputeDevice, DeviceChoice};
use focalyolo::compute::kernels::{
    Activation, KernelSettings, burn_depthwise_conv2d, configure, depthwise_conv2d, runs_wgsl,
    settings,
};
use focalyolo::compute::random::seeded_random;
use focalyolo::inference::preprocess::{Canvas, Letterbox, letterbox_on_device};

use crate::common::{nan_max, to_vec};

/// The wgpu device, or `None` (with the reason printed) where there is no adapter. The
/// kernels must have passed the check the device runs when it opens: were they switched
/// off, these tests would compare burn with itself.
fn gpu() -> Option<ComputeDevice> {
    match ComputeDevice::select(DeviceChoice::Gpu) {
        Ok(gpu) => {
            assert!(runs_wgsl(&gpu.device), "kernels off: {}", gpu.description);
            Some(gpu)
        }
        Err(err) if std::env::var_os("FOCALYOLO_REQUIRE_GPU").is_some() => {
            panic!("no wgpu adapter: {err}")
        }
        Err(err) => {
            println!("skipped: {err}");
            None
        }
    }
}

/// One depthwise layer the parity test runs: input `[batch, channels, h, w]`, a k×k kernel.
#[derive(Debug, Clone, Copy)]
struct DepthwiseCase {
    batch: usize,
    channels: usize,
    h: usize,
    w: usize,
    kernel: usize,
    stride: usize,
    activation: Activation,
}

/// The largest relative difference between the kernel on `gpu` and burn's `conv2d` on the
/// CPU backend, for random inputs of `case` drawn from seeds `3 seed` to `3 seed + 2`.
fn kernel_error(case: DepthwiseCase, seed: u64, gpu: &Device, cpu: &Device) -> f32 {
    let DepthwiseCase {
        batch,
        channels,
        h,
        w,
        kernel,
        stride,
        activation,
    } = case;
    let x = seeded_random(
        [batch, channels, h, w],
        Distribution::Normal(0.0, 2.0),
        3 * seed,
        cpu,
    );
    let weight = seeded_random(
        [channels, 1, kernel, kernel],
        Distribution::Normal(0.0, 0.3),
        3 * seed + 1,
        cpu,
    );
    let bias = seeded_random(
        [channels],
        Distribution::Normal(0.0, 1.0),
        3 * seed + 2,
        cpu,
    );
    let expected = to_vec(burn_depthwise_conv2d(
        x.clone(),
        weight.clone(),
        bias.clone(),
        stride,
        activation,
    ));
    let ours = to_vec(depthwise_conv2d(
        x.to_device(gpu),
        weight.to_device(gpu),
        bias.to_device(gpu),
        stride,
        activation,
    ));
    assert_eq!(ours.len(), expected.len(), "seed {seed}: {case:?}");
    ours.iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, nan_max)
}

#[test]
fn depthwise_kernel_matches_burn_conv2d() {
    let Some(gpu) = gpu() else { return };
    let cpu = ComputeDevice::cpu().device;
    // Rows a multiple of 4 wide take the vec4 row reader at stride 1; the others, and every
    // odd height, the last block's lone row. 10×10 is YOLO11n's P5 at 320, where the last
    // block of a row is half outside it.
    let sizes = [
        (1, 1),
        (7, 13),
        (5, 12),
        (10, 10),
        (20, 20),
        (80, 80),
        (160, 160),
    ];
    let activations = [Activation::Identity, Activation::Silu, Activation::Gelu];
    let mut cases = Vec::new();
    for kernel in [3, 5, 7, 9] {
        for stride in [1, 2] {
            for activation in activations {
                for (h, w) in sizes {
                    // A batch of two checks the images are told apart.
                    for (batch, channels) in [(1, 1), (1, 3), (2, 17), (1, 256)] {
                        // The largest planes only at the model's own kernel size, to keep
                        // the run short.
                        if h * w * channels <= 80 * 80 * 17 || kernel == 3 {
                            cases.push(DepthwiseCase {
                                batch,
                                channels,
                                h,
                                w,
                                kernel,
                                stride,
                                activation,
                            });
                        }
                    }
                }
            }
        }
    }
    // Both workgroup layouts (a row's blocks along x for GPUs, channels along x for
    // software adapters), whichever this adapter chose.
    let chosen = settings(&gpu.device);
    for channels_along_x in [false, true] {
        configure(
            &gpu.device,
            KernelSettings {
                channel_lanes: channels_along_x,
                ..chosen
            },
        );
        // Each case draws its values from seeds derived from its index.
        for (seed, &case) in (0u64..).zip(&cases) {
            let worst = kernel_error(case, seed, &gpu.device, &cpu);
            assert!(
                worst <= 1e-5,
                "seed {seed}: {case:?}, channels along x: {channels_along_x}: relative |Δ| {worst}"
            );
        }
    }
    configure(&gpu.device, chosen);
    println!("{} depthwise cases match in both layouts", cases.len());
}

#[test]
fn letterbox_kernel_matches_the_cpu_letterbox() {
    let Some(gpu) = gpu() else { return };
    for (w, h) in [(4000, 17), (17, 4000), (1, 1), (1920, 1080), (898, 506)] {
        let rgb: Vec<u8> = (0..w * h * 3)
            .map(|i| ((i * 7919 + i / 3 * 31) % 251) as u8)
            .collect();
        let rgba: Vec<u8> = rgb
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        for canvas in [Canvas::Minimal, Canvas::Square] {
            let letterbox = Letterbox::new(w as u32, h as u32, 640, canvas).unwrap();
            let image = image::RgbImage::from_raw(w as u32, h as u32, rgb.clone()).unwrap();
            let expected = letterbox.apply(&image);
            for (bytes, bpp) in [(&rgb, 3), (&rgba, 4)] {
                let ours = to_vec(letterbox_on_device(bytes, bpp, &letterbox, &gpu.device));
                assert_eq!(ours.len(), expected.len(), "{w}×{h}");
                let worst = ours
                    .iter()
                    .zip(&expected)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, nan_max);
                assert!(
                    worst <= 1.0 / 255.0 + 1e-6,
                    "{w}×{h} {canvas:?} {bpp} bytes/pixel: |Δ| {worst}"
                );
            }
        }
    }
}

#[test]
fn cpu_letterbox_path_matches_letterbox_apply() {
    let device = ComputeDevice::cpu().device;
    let letterbox = Letterbox::new(33, 7, 64, Canvas::Minimal).unwrap();
    let rgba: Vec<u8> = (0..33 * 7 * 4).map(|i| (i % 256) as u8).collect();
    let rgb: Vec<u8> = rgba.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let image = image::RgbImage::from_raw(33, 7, rgb).unwrap();
    let ours = letterbox_on_device(&rgba, 4, &letterbox, &device);
    assert_eq!(to_vec(ours), letterbox.apply(&image));
    let _ = TensorData::new(vec![0f32], [1]);
}
