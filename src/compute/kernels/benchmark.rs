//! Timing the depthwise kernel against burn's `conv2d(groups = C)` on one device, for the
//! depthwise layers YOLO11n really has. Used by `focalyolo bench --kernels`.

use std::time::Instant;

use burn::tensor::{Device, Distribution, ExecutionError, Tensor};

use super::Activation;
use super::{burn_depthwise_conv2d, depthwise_conv2d};

/// One depthwise layer shape of YOLO11n: `(channels, height, width)`, kernel size, activation.
#[derive(Debug, Clone, Copy)]
pub struct DepthwiseShape {
    pub label: &'static str,
    pub channels: usize,
    pub size: usize,
    pub kernel: usize,
    pub activation: Activation,
}

/// YOLO11n's depthwise layers at input size `imgsz` (640 gives P5 = 20×20).
pub fn yolo11n_depthwise_shapes(imgsz: usize) -> Vec<DepthwiseShape> {
    let p3 = imgsz / 8;
    let p4 = imgsz / 16;
    let p5 = imgsz / 32;
    let shape = |label, channels, size, kernel, activation| DepthwiseShape {
        label,
        channels,
        size,
        kernel,
        activation,
    };
    vec![
        shape("focal level 0", 256, p5, 3, Activation::Gelu),
        shape("focal level 1", 256, p5, 5, Activation::Gelu),
        shape("Detect DWConv P3", 64, p3, 3, Activation::Silu),
        shape("Detect DWConv P4", 128, p4, 3, Activation::Silu),
        shape("Detect DWConv P5", 256, p5, 3, Activation::Silu),
        shape("C2PSA pe", 128, p5, 3, Activation::Identity),
    ]
}

/// Launches per timed sample: single launches on a software adapter are dominated by
/// submission and readback overhead.
const LAUNCHES_PER_SAMPLE: usize = 20;

/// Median milliseconds per launch, over `samples` samples, of the WGSL kernel and of burn's
/// conv2d; each sample queues 20 launches and waits for the device once.
pub fn time_depthwise(
    shape: &DepthwiseShape,
    device: &Device,
    samples: usize,
) -> Result<(f64, f64), ExecutionError> {
    let DepthwiseShape {
        channels,
        size,
        kernel,
        activation,
        ..
    } = *shape;
    let x = Tensor::<4>::random(
        [1, channels, size, size],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let weight = Tensor::<4>::random(
        [channels, 1, kernel, kernel],
        Distribution::Normal(0.0, 0.3),
        device,
    );
    let bias = Tensor::<1>::random([channels], Distribution::Normal(0.0, 0.1), device);
    let median = |run: &dyn Fn() -> Tensor<4>| -> Result<f64, ExecutionError> {
        let sample = || {
            let start = Instant::now();
            // Keep the outputs alive until the device is idle, so no launch is skipped.
            let outputs: Vec<Tensor<4>> = (0..LAUNCHES_PER_SAMPLE).map(|_| run()).collect();
            device.sync()?;
            drop(outputs);
            Ok(start.elapsed().as_secs_f64() * 1e3 / LAUNCHES_PER_SAMPLE as f64)
        };
        sample()?;
        let mut times = (0..samples.max(1))
            .map(|_| sample())
            .collect::<Result<Vec<f64>, _>>()?;
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    };
    let wgsl =
        median(&|| depthwise_conv2d(x.clone(), weight.clone(), bias.clone(), 1, activation))?;
    let burn =
        median(&|| burn_depthwise_conv2d(x.clone(), weight.clone(), bias.clone(), 1, activation))?;
    Ok((wgsl, burn))
}
