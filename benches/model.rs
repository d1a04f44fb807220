//! Whole-model forward time at 320 and 640, on the CPU backend and the wgpu device, for
//! YOLO11n (stock SPPF) and its FocalModulation twin. Needs `../shared` for real weights.

mod common;

use std::time::Duration;

use burn::tensor::{Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use focalyolo::compute::device::{ComputeDevice, DeviceChoice};
use focalyolo::model::Yolo;
use focalyolo::weights::Weights;

use common::shared;

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(3));
    let mut devices = vec![ComputeDevice::cpu()];
    match ComputeDevice::select(DeviceChoice::Gpu) {
        Ok(gpu) => devices.push(gpu),
        Err(err) => eprintln!("wgpu skipped: {err}"),
    }
    for (label, file) in [
        ("yolo11n", "yolo11n.pt"),
        ("yolo11n-fm", "yolo11n-fm-random.pt"),
    ] {
        let Some(path) = shared(&format!("weights/{file}")) else {
            eprintln!("skipped {label}: ../shared/weights/{file} is not here");
            continue;
        };
        let weights = Weights::load(path).expect("weights load");
        for device in &devices {
            let (model, _) = Yolo::load(&weights, &device.device).expect("model builds");
            let backend = if device.is_gpu { "wgpu" } else { "cpu" };
            for imgsz in [320, 640] {
                let data = TensorData::new(vec![0.5f32; 3 * imgsz * imgsz], [1, 3, imgsz, imgsz]);
                let input = Tensor::<4>::from_data(data, &device.device);
                group.bench_with_input(
                    BenchmarkId::new(format!("{label}/{backend}"), imgsz),
                    &input,
                    |b, input| b.iter(|| model.forward(input.clone()).into_data()),
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
