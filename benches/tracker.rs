//! ByteTrack's cost per frame with 50 and 300 detections: a steady scene of objects walking
//! on a grid, a few of them faint, one update measured after the tracks are established.

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use focalyolo::inference::postprocess::Detection;
use focalyolo::track::{ByteTracker, TrackerConfig};

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

criterion_group!(benches, tracker_update);
criterion_main!(benches);
