//! ByteTrack's cost per frame with 50 and 300 detections: a steady scene of objects walking
//! on a grid, a few of them faint, one update measured after the tracks are established.
//! Then counting those tracks in two lines and two zones, and, in the same run, the CPU
//! forward pass of YOLO11n at 640 that both must stay small beside (needs `../shared`).

mod common;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use focalyolo::compute::device::ComputeDevice;
use focalyolo::count::{Counter, Region};
use focalyolo::inference::postprocess::Detection;
use focalyolo::model::Yolo;
use focalyolo::track::{ByteTracker, TrackedObject, TrackerConfig};
use focalyolo::weights::bundled::{Layer9Choice, load_with_layer9};

const FRAME: (u32, u32) = (1920, 1080);

/// `count` objects on frame `t`: each walks its own way; every fifth is faint (second
/// association), and the list is in descending confidence as NMS returns it.
fn scene(count: usize, t: usize) -> Vec<Detection> {
    let columns = (count as f32).sqrt().ceil() as usize;
    let cell = (
        FRAME.0 as f32 / columns as f32,
        FRAME.1 as f32 / columns as f32,
    );
    let mut detections: Vec<Detection> = (0..count)
        .map(|i| {
            let (col, row) = ((i % columns) as f32, (i / columns) as f32);
            let drift = ((i % 7) as f32 - 3.0) * 0.8 * t as f32;
            let cx = (col + 0.5) * cell.0 + drift;
            let cy = (row + 0.5) * cell.1 + drift * 0.5;
            let (w, h) = (cell.0 * 0.6, cell.1 * 0.8);
            Detection {
                xyxy: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
                conf: if i % 5 == 4 {
                    0.18
                } else {
                    0.9 - 0.001 * i as f32
                },
                class: i % 3,
                ..Detection::default()
            }
        })
        .collect();
    detections.sort_by(|a, b| b.conf.total_cmp(&a.conf));
    detections
}

fn tracker_update(c: &mut Criterion) {
    let mut group = c.benchmark_group("bytetrack update");
    for count in [50, 300] {
        let mut tracker = ByteTracker::new(TrackerConfig::default());
        for t in 0..20 {
            tracker.update(&scene(count, t), 1, FRAME).unwrap();
        }
        let next = scene(count, 20);
        group.bench_with_input(BenchmarkId::from_parameter(count), &next, |b, next| {
            b.iter_batched(
                || tracker.clone(),
                |mut tracker| tracker.update(next, 1, FRAME).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Two lines and two zones across the frame, where the grid's objects cross them.
fn regions() -> Vec<Region> {
    let (w, h) = (FRAME.0 as f32, FRAME.1 as f32);
    vec![
        Region::line("line 1", [w * 0.5, 0.0], [w * 0.5, h]).unwrap(),
        Region::line("line 2", [0.0, h * 0.3], [w, h * 0.35]).unwrap(),
        Region::zone(
            "zone 1",
            vec![
                [100.0, 100.0],
                [700.0, 120.0],
                [650.0, 600.0],
                [80.0, 560.0],
            ],
        )
        .unwrap(),
        Region::zone(
            "zone 2",
            vec![
                [1000.0, 500.0],
                [1800.0, 500.0],
                [1800.0, 1000.0],
                [1000.0, 1000.0],
            ],
        )
        .unwrap(),
    ]
}

fn counting_update(c: &mut Criterion) {
    let mut group = c.benchmark_group("counting update (4 regions)");
    for count in [50, 300] {
        let mut tracker = ByteTracker::new(TrackerConfig::default());
        let mut counter = Counter::new(regions(), 30);
        for t in 0..20 {
            let objects = tracker.update(&scene(count, t), 1, FRAME).unwrap();
            counter.update(&objects, 1);
        }
        let next: Vec<TrackedObject> = tracker.update(&scene(count, 20), 1, FRAME).unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(count), &next, |b, next| {
            b.iter_batched(
                || counter.clone(),
                |mut counter| counter.update(next, 1),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// YOLO11n's CPU forward pass at 640×384 (a 16:9 frame), the yardstick for both updates.
fn forward_pass(c: &mut Criterion) {
    let Some(weights) = common::shared("weights/yolo11n.pt") else {
        eprintln!("skipped the forward pass: ../shared/weights/yolo11n.pt is not here");
        return;
    };
    let device = ComputeDevice::cpu().device;
    let (weights, _) = load_with_layer9(&weights, &Layer9Choice::Stock).expect("weights load");
    let (model, _) = Yolo::load(&weights, &device).expect("model builds");
    let input = burn::tensor::Tensor::<4>::ones([1, 3, 384, 640], &device);
    let mut group = c.benchmark_group("forward pass");
    group.sample_size(10);
    group.bench_function("yolo11n 640x384 cpu", |b| {
        b.iter(|| model.forward(input.clone()).into_data())
    });
    group.finish();
}

criterion_group!(benches, tracker_update, counting_update, forward_pass);
criterion_main!(benches);
