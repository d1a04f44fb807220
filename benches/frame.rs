//! One 1080p frame through the CPU path at 640, stage by stage, in one run: letterbox (the
//! frame's bytes to the model's input tensor), the forward pass of the default model
//! (YOLO11n with the bundled FocalModulation layer), NMS with the boxes mapped back to the
//! frame, and drawing them. Pre- and post-processing must stay a small share of the
//! forward pass. Also what the app adds: explaining one box ("Why this box?": its numbers
//! and the five pictures of the detail view) and, for a comparison, the stock model's
//! forward pass beside the default one's. Needs `../shared` for the weights and a COCO
//! photo.

mod common;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use focalyolo::compute::device::ComputeDevice;
use focalyolo::inference::postprocess::{NmsOptions, non_max_suppression, unletterbox};
use focalyolo::inference::preprocess::letterbox_on_device;
use focalyolo::inference::preprocess::{Canvas, Letterbox};
use focalyolo::model::{Activations, LAST_LAYER, TakeFocalTaps, Yolo};
use focalyolo::output::annotate::draw_detections;
use focalyolo::output::attention_maps::{Colormap, heatmaps};
use focalyolo::output::explain::{Explanation, detail_tiles};
use focalyolo::weights::bundled::{Layer9Choice, load_with_layer9};
use image::imageops::FilterType;

use common::shared;

const IMGSZ: usize = 640;

fn frame_stages(c: &mut Criterion) {
    let (Some(weights), Some(photo)) = (
        shared("weights/yolo11n.pt"),
        shared("coco128/images/000000000009.jpg"),
    ) else {
        eprintln!("skipped: ../shared/weights/yolo11n.pt or ../shared/coco128 is not here");
        return;
    };
    let device = ComputeDevice::cpu().device;
    let (stock, _) = load_with_layer9(&weights, &Layer9Choice::Stock).expect("weights load");
    let (stock, _) = Yolo::load(&stock, &device).expect("model builds");
    let (weights, _) = load_with_layer9(&weights, &Layer9Choice::Bundled).expect("weights load");
    let (model, info) = Yolo::load(&weights, &device).expect("model builds");
    // A real photo at 1080p, so NMS and drawing see a real scene's boxes.
    let frame = image::open(photo)
        .expect("photo decodes")
        .resize_exact(1920, 1080, FilterType::Triangle)
        .to_rgb8();
    let letterbox =
        Letterbox::new(frame.width(), frame.height(), IMGSZ, Canvas::Minimal).expect("valid size");
    let options = NmsOptions::default();
    let input = letterbox_on_device(frame.as_raw(), 3, &letterbox, &device);
    let predictions = model
        .forward(input.clone())
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 predictions");
    let mut detections = non_max_suppression(&predictions, info.num_classes, &options);
    unletterbox(&mut detections, &letterbox);
    assert!(!detections.is_empty(), "the photo has objects");
    let mut taps = TakeFocalTaps::default();
    model.run(Activations::input(input.clone()), LAST_LAYER, &mut taps);
    let maps = heatmaps(&taps.0.expect("FocalModulation's taps")).expect("maps read back");

    let mut group = c.benchmark_group("frame_1080p_cpu_640");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(2));
    group.bench_function("letterbox", |b| {
        b.iter(|| letterbox_on_device(frame.as_raw(), 3, &letterbox, &device))
    });
    group.bench_function("forward", |b| {
        b.iter(|| model.forward(input.clone()).into_data())
    });
    group.bench_function("nms", |b| {
        b.iter(|| {
            let mut found = non_max_suppression(&predictions, info.num_classes, &options);
            unletterbox(&mut found, &letterbox);
            found
        })
    });
    group.bench_function("explain_one_box", |b| {
        b.iter(|| {
            let numbers = Explanation::new(&detections[0], &maps, &letterbox, &info.class_names);
            let pictures = detail_tiles(
                &frame,
                detections[0].xyxy,
                &maps,
                &letterbox,
                Colormap::Turbo,
                // The app's pictures on a 2× screen.
                [272, 224],
            );
            (numbers, pictures)
        })
    });
    group.bench_function("forward_stock", |b| {
        b.iter(|| stock.forward(input.clone()).into_data())
    });
    group.bench_function("draw", |b| {
        b.iter_batched_ref(
            || frame.clone(),
            |canvas| draw_detections(canvas, &detections, &info.class_names),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, frame_stages);
criterion_main!(benches);
