//! Our depthwise kernels against burn's `conv2d(groups = C)` on the same device (the WGSL
//! kernel on wgpu, the CPU loops on burn's CPU backend), for every depthwise layer shape of
//! YOLO11n at 320 and 640.

use std::time::{Duration, Instant};

use burn::tensor::{Distribution, Tensor};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use focalyolo::compute::device::{ComputeDevice, DeviceChoice};
use focalyolo::compute::kernels::benchmark::yolo11n_depthwise_shapes;
use focalyolo::compute::kernels::{burn_depthwise_conv2d, depthwise_conv2d, runs_wgsl};

fn depthwise(c: &mut Criterion) {
    match ComputeDevice::select(DeviceChoice::Gpu) {
        Ok(gpu) if runs_wgsl(&gpu.device) => depthwise_on(c, "wgsl", gpu),
        // The description says why the kernel check switched them off.
        Ok(gpu) => eprintln!(
            "skipped: the WGSL kernels cannot be timed on {}",
            gpu.description
        ),
        Err(err) => eprintln!("skipped the WGSL kernels: {err}"),
    }
    depthwise_on(c, "cpu", ComputeDevice::cpu());
}

/// Our kernel (named `ours`) against burn's on `device`.
fn depthwise_on(c: &mut Criterion, ours: &str, device: ComputeDevice) {
    let device = device.device;
    let mut group = c.benchmark_group("depthwise");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for imgsz in [320, 640] {
        for shape in yolo11n_depthwise_shapes(imgsz) {
            let x = Tensor::<4>::random(
                [1, shape.channels, shape.size, shape.size],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let w = Tensor::<4>::random(
                [shape.channels, 1, shape.kernel, shape.kernel],
                Distribution::Normal(0.0, 0.3),
                &device,
            );
            let b = Tensor::<1>::random([shape.channels], Distribution::Normal(0.0, 0.1), &device);
            let id = format!(
                "{}x{}x{}/k{}/{:?}",
                shape.channels, shape.size, shape.size, shape.kernel, shape.activation
            );
            let run = |f: fn(Tensor<4>, Tensor<4>, Tensor<1>, usize, _) -> Tensor<4>| {
                let (x, w, b, device) = (x.clone(), w.clone(), b.clone(), device.clone());
                move |iters: u64| {
                    // Queue every launch, then wait once: per-launch readback would dominate.
                    let start = Instant::now();
                    let outputs: Vec<_> = (0..iters)
                        .map(|_| f(x.clone(), w.clone(), b.clone(), 1, shape.activation))
                        .collect();
                    device.sync().expect("device runs the launches");
                    drop(outputs);
                    start.elapsed()
                }
            };
            group.bench_function(BenchmarkId::new(ours, &id), |bench| {
                bench.iter_custom(run(depthwise_conv2d))
            });
            group.bench_function(
                BenchmarkId::new(format!("{ours}_burn_conv2d"), &id),
                |bench| bench.iter_custom(run(burn_depthwise_conv2d)),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, depthwise);
criterion_main!(benches);
