//! One 1080p frame through the CPU path at 640, stage by stage, in one run: letterbox (the
//! frame's bytes to the model's input tensor), the forward pass of the default model
//! (YOLO11n with the bundled FocalModulation layer), NMS with the boxes mapped back to the
//! frame, and drawing them. Pre- and post-processing must stay a small share of the
//! forward pass. Also what the app adds: explaining one box ("Why this box?": its numbers
//! and the five pictures of the detail view) and, for a comparison, the stock model's
//! forward pass beside the default one's. And the window's redraw on this machine's wgpu
//! adapter (lavapipe where there is no GPU). Needs `../shared` for the weights and a COCO
//! photo.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use eframe::egui_wgpu::RendererOptions;
use egui_kittest::Harness;
use egui_kittest::wgpu::{WgpuTestRenderer, create_render_state};
use focalyolo::app::{FocalYoloApp, LaunchOptions, ModelStatus};
use focalyolo::compute::device::ComputeDevice;
use focalyolo::compute::device::DeviceChoice;
use focalyolo::inference::masks::Prototypes;
use focalyolo::inference::postprocess::{
    NmsOptions, non_max_suppression, postprocess, unletterbox,
};
use focalyolo::inference::preprocess::letterbox_on_device;
use focalyolo::inference::preprocess::{Canvas, Letterbox};
use focalyolo::model::{Activations, Head, TakeFocalTaps, Yolo};
use focalyolo::output::annotate::draw_detections;
use focalyolo::output::attention_maps::{Colormap, heatmaps};
use focalyolo::output::explain::{Explanation, detail_tiles};
use focalyolo::source::SourceSpec;
use focalyolo::weights::bundled::{Layer9Choice, load_with_layer9};
use image::imageops::FilterType;

use common::shared;

const IMGSZ: usize = 640;

fn frame_stages(c: &mut Criterion) {
    let Some((weights, photo)) = weights_and_photo("000000000009.jpg") else {
        return;
    };
    let device = ComputeDevice::cpu().device;
    let (stock, _) = load_with_layer9(&weights, &Layer9Choice::Stock).expect("weights load");
    let (stock, _) = Yolo::load(&stock, &device).expect("model builds");
    let (weights, _) = load_with_layer9(&weights, &Layer9Choice::Bundled).expect("weights load");
    let (model, info) = Yolo::load(&weights, &device).expect("model builds");
    // A real photo at 1080p, so NMS and drawing see a real scene's boxes.
    let (frame, letterbox) = frame_1080p(&photo);
    let options = NmsOptions::default();
    let input = letterbox_on_device(frame.as_raw(), 3, &letterbox, &device);
    let predictions = model
        .forward(input.clone())
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 predictions");
    let mut detections = non_max_suppression(&predictions, info.layout(), &options);
    unletterbox(&mut detections, &letterbox);
    assert!(!detections.is_empty(), "the photo has objects");
    let mut taps = TakeFocalTaps::default();
    model.run(
        Activations::input(input.clone()),
        model.last_layer(),
        &mut taps,
    );
    let maps = heatmaps(&taps.0.expect("FocalModulation's taps")).expect("maps read back");

    let mut group = group_of_20(c, "frame_1080p_cpu_640");
    group.bench_function("letterbox", |b| {
        b.iter(|| letterbox_on_device(frame.as_raw(), 3, &letterbox, &device))
    });
    group.bench_function("forward", |b| {
        b.iter(|| model.forward(input.clone()).into_data())
    });
    group.bench_function("nms", |b| {
        b.iter(|| {
            let mut found = non_max_suppression(&predictions, info.layout(), &options);
            unletterbox(&mut found, &letterbox);
            found
        })
    });
    group.bench_function("explain_one_box", |b| {
        b.iter(|| {
            let numbers = Explanation::new(&detections[0], &maps, &letterbox, &info.class_names);
            let pictures = detail_tiles(
                &frame,
                &detections[0],
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

/// What a task model adds after its forward pass, at 640 on the 1080p photo: a segmentation
/// model's 20 instances (NMS, then each mask from the prototypes and its outlines), a pose
/// model's keypoints, an oriented-box model's ProbIoU NMS; each beside the model's forward
/// pass, in the same run.
fn task_postprocessing(c: &mut Criterion) {
    let Some((_, photo)) = weights_and_photo("000000000009.jpg") else {
        return;
    };
    let device = ComputeDevice::cpu().device;
    let (frame, letterbox) = frame_1080p(&photo);
    let input = letterbox_on_device(frame.as_raw(), 3, &letterbox, &device);
    let mut group = group_of_20(c, "task_postprocess_1080p_cpu_640");
    for (file, task) in [
        ("yolo11n-seg-transplant.pt", "segment"),
        ("yolo11n-pose.pt", "pose"),
        ("yolo11n-obb-transplant.pt", "obb"),
    ] {
        let Some(path) = shared(&format!("weights/tasks/{file}")) else {
            eprintln!("skipped {task}: ../shared/weights/tasks/{file} is not here");
            continue;
        };
        let weights = focalyolo::weights::Weights::load(path).expect("weights load");
        let (model, info) = Yolo::load(&weights, &device).expect("model builds");
        // About twenty instances: the most confident 32 at any confidence, less a
        // segmentation model's empty masks.
        let options = NmsOptions {
            conf: 0.001,
            max_det: 32,
            ..NmsOptions::default()
        };
        let outputs = model.forward_outputs(input.clone(), Head::OneToMany);
        let prototypes = outputs
            .protos
            .map(|p| Prototypes::read(p).expect("f32 prototypes"));
        let predictions = outputs
            .predictions
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 predictions");
        let run = || {
            postprocess(
                &predictions,
                prototypes.as_ref(),
                info.layout(),
                &letterbox,
                &options,
                false,
            )
        };
        let instances = run().len();
        assert!(instances >= 20, "{task}: {instances} instances");
        group.bench_function(format!("{task}_forward"), |b| {
            b.iter(|| model.forward_outputs(input.clone(), Head::OneToMany))
        });
        group.bench_function(format!("{task}_postprocess"), |b| b.iter(run));
    }
    group.finish();
}

/// `photo` stretched to 1080p, and its letterbox at 640.
fn frame_1080p(photo: &Path) -> (image::RgbImage, Letterbox) {
    let frame = image::open(photo)
        .expect("photo decodes")
        .resize_exact(1920, 1080, FilterType::Triangle)
        .to_rgb8();
    let letterbox =
        Letterbox::new(frame.width(), frame.height(), IMGSZ, Canvas::Minimal).expect("valid size");
    (frame, letterbox)
}

/// The weights and coco128's `photo` from `../shared`, or the reason to skip, printed.
fn weights_and_photo(photo: &str) -> Option<(PathBuf, PathBuf)> {
    let found = shared("weights/yolo11n.pt").zip(shared(&format!("coco128/images/{photo}")));
    if found.is_none() {
        eprintln!("skipped: ../shared/weights/yolo11n.pt or ../shared/coco128 is not here");
    }
    found
}

/// 20 samples over 10 s: each iteration takes milliseconds to tens of them.
fn group_of_20<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(2));
    group
}

/// One redraw of the app's window (1400×860, as it opens) showing a photo's boxes and the
/// FocalModulation panel: laid out, tessellated, rasterised and read back. egui-wgpu's
/// default options against its predictable texture filtering (kittest's snapshots), which
/// every redraw paid for on a software rasteriser until `vendor/egui-wgpu` made it a
/// pipeline constant: a software rasteriser runs both sides of a branch on a uniform.
fn window_redraw(c: &mut Criterion) {
    let Some((weights, photo)) = weights_and_photo("000000000036.jpg") else {
        return;
    };
    let mut group = group_of_20(c, "window_redraw");
    for (name, options) in [
        ("predictable_filtering", RendererOptions::PREDICTABLE),
        ("default", RendererOptions::default()),
    ] {
        let mut harness = app_showing(&weights, &photo, options);
        group.bench_function(name, |b| {
            b.iter(|| {
                harness.step();
                harness.render().expect("the window renders")
            })
        });
    }
    group.finish();
}

/// The app rendering with `options`, once it shows `photo`'s detections and maps.
fn app_showing(
    weights: &Path,
    photo: &Path,
    options: RendererOptions,
) -> Harness<'static, FocalYoloApp> {
    let launch = LaunchOptions {
        weights: Some(weights.to_path_buf()),
        device: Some(DeviceChoice::Cpu),
        imgsz: Some(IMGSZ),
        ..LaunchOptions::new()
    };
    let renderer = WgpuTestRenderer::from_render_state(create_render_state(
        focalyolo::app::wgpu_setup(),
        options,
    ));
    let mut harness = Harness::builder()
        .renderer(renderer)
        .with_size(egui::Vec2::new(1400.0, 860.0))
        .build_eframe(move |cc| FocalYoloApp::new(cc, launch));
    step_until(&mut harness, "the model", |app| {
        *app.model_status() == ModelStatus::Ready
    });
    let ctx = harness.ctx.clone();
    harness
        .state_mut()
        .open_source(&ctx, SourceSpec::parse(photo.to_str().expect("UTF-8 path")));
    step_until(&mut harness, "the photo's detections", |app| {
        app.current().is_some_and(|shown| !shown.maps.is_empty())
    });
    harness
}

fn step_until(
    harness: &mut Harness<'_, FocalYoloApp>,
    what: &str,
    done: impl Fn(&FocalYoloApp) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done(harness.state()) {
        assert!(
            Instant::now() < deadline,
            "{what} did not come in 10 minutes"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(50));
    }
}

criterion_group!(benches, frame_stages, task_postprocessing, window_redraw);
criterion_main!(benches);
