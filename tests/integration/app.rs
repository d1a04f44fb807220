//! The app, rendered through wgpu (lavapipe in CI) by egui_kittest: a real frame with its
//! boxes, the FocalModulation panel, an overlay, the SPPF message, a broken source, and the
//! yolo11n.pt download from a local HTTP server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use egui::Vec2;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use focalyolo::app::{FocalYoloApp, LaunchOptions, ModelStatus, SourceState};
use focalyolo::compute::device::DeviceChoice;
use focalyolo::count::Region;
use focalyolo::inference::postprocess::Shape;
use focalyolo::output::annotate::{REGION_COLOUR, detection_label, label_with_id};
use focalyolo::pipeline::PlaybackControl;
use focalyolo::source::SourceSpec;
use focalyolo::weights::bundled::{Layer9Choice, Layer9Origin};

use crate::common::{HangGuard, HttpFile, frame_records, require_shared, run_yolo11n, succeeded};
use crate::streams::{MPEG_TS_H264, ffmpeg_server, free_port};

fn launch(weights: Option<PathBuf>, weights_folder: &Path) -> LaunchOptions {
    LaunchOptions {
        weights,
        device: Some(DeviceChoice::Cpu),
        imgsz: Some(640),
        weights_folder: weights_folder.to_path_buf(),
        ..LaunchOptions::new()
    }
}

fn harness(options: LaunchOptions) -> Harness<'static, FocalYoloApp> {
    Harness::builder()
        .wgpu_setup(focalyolo::app::wgpu_setup())
        .with_size(Vec2::new(1180.0, 720.0))
        .build_eframe(move |cc| {
            let mut app = FocalYoloApp::new(cc, options);
            // Timings and the FPS plot change from run to run; snapshots leave them out.
            app.settings_mut().show_performance = false;
            app
        })
}

/// Step the UI until `done` holds, or fail after five minutes of a fair share of the
/// machine ([`HangGuard`]): a guard against a hang, not a speed check.
fn step_until(
    harness: &mut Harness<'_, FocalYoloApp>,
    what: &str,
    done: impl Fn(&FocalYoloApp) -> bool,
) {
    let mut guard = HangGuard::new(Duration::from_secs(300));
    loop {
        harness.step();
        if done(harness.state()) {
            harness.run_steps(4);
            return;
        }
        guard.check(what);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Play `source` (a file, folder or camera) in the app.
fn play(harness: &mut Harness<'_, FocalYoloApp>, source: &Path) {
    let ctx = harness.ctx.clone();
    harness
        .state_mut()
        .open_source(&ctx, SourceSpec::parse(source.to_str().unwrap()));
}

fn model_ready(app: &FocalYoloApp) -> bool {
    *app.model_status() == ModelStatus::Ready
}

#[test]
fn a_frame_with_boxes_gate_maps_and_an_overlay() {
    let shared = require_shared!();
    let folder = tempfile::tempdir().unwrap();
    let mut harness = app_on_an_image(&shared, folder.path());
    let current = harness.state().current().unwrap();
    assert_eq!(
        current.maps.len(),
        4,
        "two focal levels, the global level, the modulator"
    );
    harness.snapshot("app_frame_with_boxes_and_gate_maps");

    harness.get_by_label("gate level 1").click();
    harness.run_steps(4);
    assert!(harness.state().settings().overlays.contains("gate-level-1"));
    harness.snapshot("app_gate_level_1_overlay");
}

/// The app with stock YOLO11n (SPPF at layer 9) loaded.
fn stock_app(shared: &Path, folder: &Path) -> Harness<'static, FocalYoloApp> {
    let mut options = launch(Some(shared.join("weights/yolo11n.pt")), folder);
    options.layer9 = Some(Layer9Choice::Stock);
    let mut harness = harness(options);
    step_until(&mut harness, "the model", model_ready);
    harness
}

#[test]
fn a_model_without_focal_modulation_says_so() {
    let shared = require_shared!();
    let folder = tempfile::tempdir().unwrap();
    let harness = stock_app(&shared, folder.path());
    harness.get_by_label_contains("there is no FocalModulation to show");
    let summary = harness.state().model_summary().unwrap();
    assert!(!summary.info.has_focal());
}

#[test]
fn weights_no_bundled_layer_fits_say_so_and_how_to_get_one() {
    let shared = require_shared!();
    let folder = tempfile::tempdir().unwrap();
    // Ultralytics' release yolo11n.pt: the bundled layer was distilled from another run.
    let mut harness = harness(launch(
        Some(shared.join("weights/yolo11n-official.pt")),
        folder.path(),
    ));
    step_until(&mut harness, "the model", model_ready);
    let summary = harness.state().model_summary().unwrap();
    assert_eq!(summary.layer9, Layer9Origin::NoLayerFits);
    // In the status bar, and in the panel with how to get a layer.
    assert_eq!(
        harness
            .query_all_by_label_contains("no bundled FocalModulation fits these weights")
            .count(),
        2
    );
    harness.get_by_label_contains("focalyolo distill --teacher");
    // Keep SPPF: the checkpoint's own layer by choice, and no more note.
    harness.state_mut().settings_mut().layer9 = Layer9Choice::Stock;
    let ctx = harness.ctx.clone();
    let official = shared.join("weights/yolo11n-official.pt");
    harness.state_mut().open_weights(&ctx, &official);
    step_until(&mut harness, "the model with its own SPPF", |app| {
        model_ready(app)
            && app
                .model_summary()
                .is_some_and(|s| s.layer9 == Layer9Origin::Own)
    });
    harness.get_by_label_contains("there is no FocalModulation to show");
    assert!(
        harness
            .query_by_label_contains("no bundled FocalModulation fits")
            .is_none()
    );
}

/// Type `text` into the text field labelled `label`.
fn type_into(harness: &mut Harness<'_, FocalYoloApp>, label: &str, text: &str) {
    harness.get_by_label(label).focus();
    harness.run_steps(2);
    harness.get_by_label(label).type_text(text);
    harness.run_steps(2);
}

/// Type `password` into the open stream dialog and open the stream: the stream the app
/// then plays.
fn open_with_password(
    harness: &mut Harness<'_, FocalYoloApp>,
    password: &str,
) -> focalyolo::source::StreamUrl {
    type_into(
        harness,
        "Password (when the address names a user)",
        password,
    );
    harness.get_by_label("Open").click();
    harness.run_steps(4);
    match &harness.state().session().expect("a source").spec {
        SourceSpec::Stream(url) => url.clone(),
        other => panic!("not a stream: {other:?}"),
    }
}

#[test]
fn the_stream_dialog_takes_a_password_apart_and_asks_again_for_a_remembered_stream() {
    let folder = tempfile::tempdir().unwrap();
    let mut harness = harness(launch(None, folder.path()));
    harness.run_steps(2);
    // Nothing listens there: the app tries to reach it, which is all this needs.
    let address = format!("rtsp://admin@127.0.0.1:{}/cam", free_port());
    harness.get_by_label("Source").click();
    harness.run_steps(2);
    harness.get_by_label("Open stream…").click_accesskit();
    // The dialog appears after a frame that sizes it.
    harness.run_steps(4);
    type_into(&mut harness, "Address", &address);
    let url = open_with_password(&mut harness, "hunter2");
    assert!(!url.needs_password(), "the connection carries the password");
    assert_eq!(url.without_secrets(), address);
    // Remembered, shown and stored without it.
    assert_eq!(harness.state().settings().recent_streams, [address.clone()]);
    assert!(
        !serde_json::to_string(harness.state().settings())
            .unwrap()
            .contains("hunter2")
    );
    assert_eq!(harness.query_all_by_label_contains("hunter2").count(), 0);

    // Reopened from the recent streams, it asks for the password again.
    harness.get_by_label("Source").click();
    harness.run_steps(2);
    harness.get_by_label("Recent streams").click();
    harness.run_steps(2);
    harness.get_by_label(&address).click();
    harness.run_steps(4);
    assert_eq!(
        harness.get_by_label("Address").value().as_deref(),
        Some(address.as_str())
    );
    let url = open_with_password(&mut harness, "hunter3");
    assert!(!url.needs_password());
    assert!(
        url.with_password("hunter3") == url,
        "the password typed this time"
    );
}

#[test]
fn a_broken_video_is_reported_and_the_app_carries_on() {
    let shared = require_shared!();
    let folder = tempfile::tempdir().unwrap();
    let broken = folder.path().join("broken.mp4");
    std::fs::write(&broken, b"this is not a video at all").unwrap();
    let mut harness = harness(launch(
        Some(shared.join("weights/yolo11n.pt")),
        folder.path(),
    ));
    play(&mut harness, &broken);
    step_until(&mut harness, "the error", |app| {
        app.session()
            .is_some_and(|s| matches!(s.state, SourceState::Failed(_)))
    });
    harness.get_by_label_contains("cannot read video");

    play(&mut harness, &shared.join("videos/ckd_traffic.webm"));
    step_until(&mut harness, "a frame of the next video", |app| {
        app.current().is_some()
    });
}

#[test]
fn without_weights_the_app_offers_yolo11n_and_downloads_it() {
    let shared = require_shared!();
    let folder = tempfile::tempdir().unwrap();
    let mut options = launch(None, folder.path());
    let server = HttpFile::serve(std::fs::read(shared.join("weights/yolo11n.pt")).unwrap());
    options.download_url = server.url("yolo11n.pt");
    let mut harness = harness(options);
    harness.run_steps(2);
    assert_eq!(*harness.state().model_status(), ModelStatus::Missing);
    harness.get_by_label_contains("No weights loaded");
    harness.get_by_label("Download yolo11n.pt").click();
    step_until(&mut harness, "the downloaded model", model_ready);
    let downloaded = folder.path().join("yolo11n.pt");
    assert_eq!(
        std::fs::read(&downloaded).unwrap(),
        std::fs::read(shared.join("weights/yolo11n.pt")).unwrap()
    );
    let summary = harness.state().model_summary().unwrap();
    assert_eq!(summary.path, downloaded);
    assert_eq!(summary.info.num_classes, 80);
    assert_eq!(
        summary.layer9,
        Layer9Origin::Bundled,
        "stock YOLO11n gets the bundled FocalModulation"
    );
}

/// eframe's storage, kept in memory.
#[derive(Default)]
struct MemoryStorage(std::collections::HashMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }

    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }

    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }

    fn flush(&mut self) {}
}

#[test]
fn settings_survive_a_restart() {
    let folder = tempfile::tempdir().unwrap();
    let mut first = harness(launch(None, folder.path()));
    first.run_steps(2);
    let changed = {
        let settings = first.state_mut().settings_mut();
        settings.conf = 0.4;
        settings.iou = 0.5;
        settings.hidden_classes.insert(2);
        settings.overlays.insert("modulator".into());
        settings.colormap = focalyolo::output::attention_maps::Colormap::Viridis;
        settings.last_source = Some("camera:1".into());
        let door = focalyolo::count::Region::line("line 1", [320.0, 40.0], [320.0, 440.0]);
        settings
            .regions
            .insert(focalyolo::app::size_key(640, 480), vec![door.unwrap()]);
        settings.clone()
    };
    let mut storage = MemoryStorage::default();
    eframe::App::save(first.state_mut(), &mut storage);

    // The next start reads them back (the command line overrides only what it names).
    let storage: &'static MemoryStorage = Box::leak(Box::new(storage));
    let options = LaunchOptions {
        weights_folder: folder.path().to_path_buf(),
        ..LaunchOptions::new()
    };
    let second = Harness::builder().wgpu().build_eframe(move |cc| {
        cc.storage = Some(storage);
        FocalYoloApp::new(cc, options)
    });
    assert_eq!(*second.state().settings(), changed);
}

#[test]
fn on_the_gpu_the_model_shares_the_window_device() {
    let shared = require_shared!();
    let folder = tempfile::tempdir().unwrap();
    let mut options = launch(Some(shared.join("weights/yolo11n.pt")), folder.path());
    // `gpu` takes even a software adapter (lavapipe here), on the renderer's own device.
    options.device = Some(DeviceChoice::Gpu);
    options.imgsz = Some(320);
    let mut harness = harness(options);
    step_until(&mut harness, "the model", model_ready);
    let description = harness.state().model_device().description.clone();
    assert!(
        harness.state().model_device().is_gpu,
        "the model runs on {description}"
    );
    let image = shared.join("coco128/images/000000000036.jpg");
    play(&mut harness, &image);
    step_until(&mut harness, "detections on the GPU", |app| {
        app.current().is_some_and(|c| !c.detections.is_empty())
    });
    let classes: Vec<usize> = harness
        .state()
        .current()
        .unwrap()
        .detections
        .iter()
        .map(|d| d.class)
        .collect();
    // A person (0) under an umbrella (25), as on the CPU.
    assert!(classes.contains(&0) && classes.contains(&25), "{classes:?}");
}

/// Stock YOLO11n tracking `clip`, paused before its first frame: stepped, the tracker sees
/// every frame in order whatever the machine's speed, so snapshots are the same every run.
fn tracking_paused(
    shared: &Path,
    folder: &Path,
    clip: &Path,
) -> (Harness<'static, FocalYoloApp>, Arc<PlaybackControl>) {
    let mut harness = stock_app(shared, folder);
    let control = track_paused(&mut harness, clip);
    (harness, control)
}

/// Tracking on, `clip` opened and paused before its first frame.
fn track_paused(harness: &mut Harness<'_, FocalYoloApp>, clip: &Path) -> Arc<PlaybackControl> {
    harness.state_mut().settings_mut().track = true;
    play(harness, clip);
    let control = harness.state().session().unwrap().control.clone();
    control.set_paused(true);
    control
}

/// Step the paused source to frame `index` and wait for its tracks.
fn step_to_tracked(harness: &mut Harness<'_, FocalYoloApp>, control: &PlaybackControl, index: u64) {
    control.step();
    step_until(harness, "the next tracked frame", |app| {
        app.current()
            .is_some_and(|c| c.frame.index == index && c.tracks.is_some())
    });
}

#[test]
fn tracking_shows_ids_trails_and_counts_on_a_clip() {
    let shared = require_shared!();
    let folder = tempfile::tempdir().unwrap();
    let clip = shared.join("videos/assembly_walking.mp4");
    let (mut harness, control) = tracking_paused(&shared, folder.path(), &clip);
    for index in 0..12 {
        step_to_tracked(&mut harness, &control, index);
    }
    let tracks = harness.state().current().unwrap().tracks.clone().unwrap();
    assert_eq!(tracks.seen_total, 12);
    assert_eq!(tracks.skipped_total, 0, "stepping drops no frame");
    assert!(
        tracks
            .objects
            .iter()
            .filter(|o| o.detection.class == 0)
            .count()
            >= 4,
        "the walkers are tracked: {:?}",
        tracks.objects
    );
    assert!(tracks.objects.iter().all(|o| o.trail.len() > 1));
    harness.get_by_label_contains("tracks now");
    harness.snapshot("app_tracking_ids_and_trails");

    // A seek starts the tracks over.
    control.seek(0.0);
    control.step();
    step_until(&mut harness, "the first frame again", |app| {
        app.current().is_some_and(|c| {
            c.frame.index == 0 && c.tracks.as_ref().is_some_and(|t| t.seen_total == 1)
        })
    });
}

/// The app with YOLO11n (and the bundled FocalModulation) on a COCO image with boxes.
fn app_on_an_image(shared: &Path, folder: &Path) -> Harness<'static, FocalYoloApp> {
    let mut harness = harness(launch(Some(shared.join("weights/yolo11n.pt")), folder));
    step_until(&mut harness, "the model", model_ready);
    let image = shared.join("coco128/images/000000000036.jpg");
    play(&mut harness, &image);
    step_until(&mut harness, "detections", |app| {
        app.current()
            .is_some_and(|c| !c.detections.is_empty() && !c.maps.is_empty())
    });
    harness
}

/// Whether `shape` is what the task model of `file` adds to a box.
fn task_shape(file: &str, shape: &Shape) -> bool {
    match file {
        f if f.contains("pose") => matches!(shape, Shape::Keypoints(points) if points.len() == 17),
        f if f.contains("seg") => matches!(shape, Shape::Mask { .. }),
        _ => matches!(shape, Shape::Oriented(_)),
    }
}

/// The task model `weights` tracking `clip`, stepped to its fourth frame; every box and
/// every track carries the model's mask, keypoints or oriented box.
fn task_model_on_a_clip(
    weights: PathBuf,
    clip: &Path,
    folder: &Path,
) -> Harness<'static, FocalYoloApp> {
    let file = weights.file_name().unwrap().to_string_lossy().to_string();
    let mut harness = harness(launch(Some(weights), folder));
    step_until(&mut harness, "the model", model_ready);
    let control = track_paused(&mut harness, clip);
    for index in 0..4 {
        step_to_tracked(&mut harness, &control, index);
    }
    let current = harness.state().current().unwrap();
    let tracks = current.tracks.as_ref().unwrap();
    assert!(
        !current.detections.is_empty() && !tracks.objects.is_empty(),
        "{file}"
    );
    for detection in current
        .detections
        .iter()
        .chain(tracks.objects.iter().map(|o| &o.detection))
    {
        assert!(
            task_shape(&file, &detection.shape),
            "{file}: {:?}",
            detection.shape
        );
    }
    harness
}

/// Click the first row of the Detections list whose label holds `summary` (what the task
/// head adds, e.g. "· mask"), opening "Why this box?" on it.
fn explain_first_row(harness: &mut Harness<'_, FocalYoloApp>, summary: &str) {
    let row = harness.query_all_by_label_contains(summary).next();
    row.unwrap_or_else(|| panic!("no detection row says {summary}"))
        .click();
    harness.run_steps(4);
    harness.get_by_label("Why this box?");
}

/// Segmentation, pose and oriented-box models in the app on clips, tracking: masks filled
/// over the picture with their outlines, skeletons, rotated boxes, each with its track ID,
/// and "Why this box?" showing the mask, keypoints or rotation of the box picked from the
/// list. The transplanted checkpoints' detector is YOLO11n's (their masks and angles
/// random), so the bundled FocalModulation layer fits them: their gate maps show in the
/// panel and beside the box. The pose model is Ultralytics' own, with SPPF.
#[test]
fn task_models_draw_masks_skeletons_and_rotated_boxes() {
    let shared = require_shared!();
    // One result for the three harnesses' snapshots, reported together.
    let mut snapshots = egui_kittest::SnapshotResults::new();
    for (file, clip, snapshot, summary, row) in [
        (
            "yolo11n-pose.pt",
            "fiyud_dance.mp4",
            "app_pose",
            "/17 keypoints",
            "keypoints",
        ),
        (
            "yolo11n-seg-transplant.pt",
            "huutrinh_people_movement.mp4",
            "app_segment",
            " · mask ",
            "mask",
        ),
        (
            "yolo11n-obb-transplant.pt",
            "huutrinh_people_movement.mp4",
            "app_obb",
            " · rotated ",
            "oriented box",
        ),
    ] {
        let folder = tempfile::tempdir().unwrap();
        let weights = shared.join("weights/tasks").join(file);
        let clip = shared.join("videos").join(clip);
        let mut harness = task_model_on_a_clip(weights, &clip, folder.path());
        let focal = !harness.state().current().unwrap().maps.is_empty();
        assert_eq!(focal, file != "yolo11n-pose.pt", "{file}");
        if !focal {
            // SPPF at layer 9, and no bundled layer for it: the panel says how to make one.
            harness.get_by_label_contains("focalyolo distill --teacher");
        }
        explain_first_row(&mut harness, summary);
        harness.get_by_label(row);
        for map in ["gate level 0", "gate level 1", "gate global", "modulator"] {
            let shown = harness.query_all_by_label(map).count();
            assert_eq!(
                shown,
                if focal { 2 } else { 0 },
                "{file} {map}: panel and detail view"
            );
        }
        harness.snapshot(snapshot);
        snapshots.extend_harness(&mut harness);
    }
}

#[test]
fn why_this_box_explains_a_detection_picked_from_the_list() {
    let shared = require_shared!();
    let folder = tempfile::tempdir().unwrap();
    let mut harness = app_on_an_image(&shared, folder.path());
    let app = harness.state();
    let first = app.current().unwrap().detections[0].clone();
    let names = &app.model_summary().unwrap().info.class_names;
    let row = detection_label(&first, names);
    harness.get_by_label(&row).click();
    harness.run_steps(4);
    harness.get_by_label("Why this box?");
    harness.get_by_label_contains("inside the box, which is");
    harness.get_by_label_contains("(stride ");
    for map in ["gate level 0", "gate level 1", "gate global", "modulator"] {
        assert!(
            harness.query_all_by_label(map).count() >= 2,
            "{map}: the panel's and the detail view's"
        );
    }
    harness.snapshot("app_why_this_box");
}

#[test]
fn a_second_model_runs_beside_the_first_on_the_same_frames() {
    let shared = require_shared!();
    let folder = tempfile::tempdir().unwrap();
    let mut harness = app_on_an_image(&shared, folder.path());
    harness.get_by_label("Model").click();
    harness.run_steps(2);
    harness
        .get_by_label_contains("Compare with these weights' own layer 9")
        .click();
    step_until(&mut harness, "the compared model's boxes", |app| {
        app.current()
            .and_then(|c| c.compared.as_ref())
            .is_some_and(|compared| !compared.detections.is_empty())
    });
    let current = harness.state().current().unwrap();
    let compared = current.compared.as_ref().unwrap();
    assert!(compared.error.is_none(), "{:?}", compared.error);
    assert_ne!(
        current.detections, compared.detections,
        "the bundled FocalModulation beside the checkpoint's own SPPF"
    );
    harness.get_by_label_contains("compared with yolo11n.pt");
    harness.snapshot("app_compare_side_by_side");

    harness.get_by_label("one picture").click();
    harness.run_steps(4);
    harness.snapshot("app_compare_one_picture");
}

#[test]
fn yolo26_beside_yolo11_tags_the_boxes_only_one_model_finds() {
    let shared = require_shared!();
    let folder = tempfile::tempdir().unwrap();
    let mut harness = app_on_an_image(&shared, folder.path());
    let ctx = harness.ctx.clone();
    let yolo26 = shared.join("weights/tasks/yolo26n-random.pt");
    harness.state_mut().compare_with(&ctx, &yolo26);
    step_until(&mut harness, "YOLO26n's boxes", |app| {
        app.current()
            .and_then(|c| c.compared.as_ref())
            .is_some_and(|compared| !compared.detections.is_empty())
    });
    harness.get_by_label_contains("compared with yolo26n-random.pt — YOLO26n");
    // YOLO11n finds the person and the umbrella; YOLO26n's random weights find cars at
    // the edges: each model has boxes the other lacks, drawn thicker and tagged.
    let boxes = harness.state().compared_boxes().unwrap();
    let only = boxes
        .only
        .each_ref()
        .map(|o| o.iter().filter(|&&o| o).count());
    println!("boxes only A finds: {}, only B: {}", only[0], only[1]);
    assert!(only[0] >= 1 && only[1] >= 1, "{only:?}");
    // No snapshot: random weights put boxes right at the confidence threshold, where
    // another CPU's rounding may keep one more or one fewer.
}

#[test]
fn why_this_box_stays_on_its_object_while_the_video_plays() {
    let shared = require_shared!();
    let clip = shared.join("videos/huutrinh_people_movement.mp4");
    for track in [false, true] {
        let folder = tempfile::tempdir().unwrap();
        let mut harness = harness(launch(
            Some(shared.join("weights/yolo11n.pt")),
            folder.path(),
        ));
        step_until(&mut harness, "the model", model_ready);
        harness.state_mut().settings_mut().track = track;
        play(&mut harness, &clip);
        let control = harness.state().session().unwrap().control.clone();
        control.set_paused(true);
        let step_to = |harness: &mut Harness<'_, FocalYoloApp>, index: u64| {
            control.step();
            step_until(harness, "the next frame", |app| {
                app.current().is_some_and(|c| c.frame.index == index)
            });
        };
        step_to(&mut harness, 0);
        let app = harness.state();
        let names = &app.model_summary().unwrap().info.class_names;
        let tv = app
            .current()
            .unwrap()
            .detections
            .iter()
            .find(|d| names[d.class] == "tv")
            .expect("the clip's first frame shows the television");
        // With tracking, the row names the box's track ID too.
        let id = app
            .current()
            .unwrap()
            .tracks
            .as_ref()
            .and_then(|t| t.ids_of(std::slice::from_ref(tv))[0]);
        assert_eq!(id.is_some(), track, "a tracked box has an ID in the list");
        let row = label_with_id(id, tv, names);
        harness.get_by_label(&row).click();
        harness.run_steps(2);
        if let Some(id) = id {
            // The window takes a frame to size itself before it shows its heading.
            harness.run_steps(2);
            let named = harness
                .query_all_by_label_contains(&format!("id:{id} tv"))
                .count();
            assert!(
                named >= 2,
                "the list's row and the window's heading name the ID"
            );
        }
        let mut last = harness.state().explained().unwrap().xyxy;
        for index in 1..12 {
            step_to(&mut harness, index);
            let explained = harness.state().explained().expect("still open");
            assert_eq!(explained.name, "tv", "frame {index}, tracking {track}");
            let moved = focalyolo::inference::postprocess::box_iou(&last, &explained.xyxy);
            assert!(moved > 0.8, "frame {index}: IoU {moved} with the last box");
            last = explained.xyxy;
        }
        // A seek (or a loop) starts the tracker's IDs over: the view stays on the object.
        control.seek(0.0);
        step_to(&mut harness, 0);
        assert_eq!(harness.state().explained().unwrap().name, "tv");
    }
}

/// A click at `at` on the window: pointer moved there, pressed, released.
fn click_at(harness: &mut Harness<'_, FocalYoloApp>, at: egui::Pos2) {
    harness.hover_at(at);
    harness.run_steps(1);
    harness.drag_at(at);
    harness.run_steps(1);
    harness.drop_at(at);
    harness.run_steps(2);
}

/// Where pixel `point` of the frame on screen is drawn.
fn on_screen(harness: &Harness<'_, FocalYoloApp>, [x, y]: [f32; 2]) -> egui::Pos2 {
    harness
        .state()
        .video_to_screen(x, y)
        .expect("a frame on screen")
}

/// The counting line the test clicks: two pedestrians cross it leftwards in the first 20
/// frames (`run` counts them on frames 12 and 19).
const COUNTING_LINE: [[f32; 2]; 2] = [[300.0, 100.0], [300.0, 350.0]];
/// Frames the test steps through, 0 included.
const COUNTED_FRAMES: u64 = 22;

#[test]
fn a_line_clicked_on_the_video_counts_as_run_does_and_exports() {
    let shared = require_shared!();
    let folder = tempfile::tempdir().unwrap();
    let clip = shared.join("videos/vamsi_pedestrians.avi");
    let (mut harness, control) = tracking_paused(&shared, folder.path(), &clip);
    step_to_tracked(&mut harness, &control, 0);

    // The panel's Add line, then the line's two ends clicked on the picture; a first try
    // at the lower end lands lower and is dragged up to its place.
    // Panel buttons by accessibility action: the panel may scroll them out of view.
    harness.get_by_label("Add line").click_accesskit();
    harness.run_steps(2);
    let [top, bottom] = COUNTING_LINE;
    let too_low = [bottom[0], bottom[1] + 15.0];
    for point in [top, too_low] {
        let at = on_screen(&harness, point);
        click_at(&mut harness, at);
    }
    let (from, to) = (on_screen(&harness, too_low), on_screen(&harness, bottom));
    harness.hover_at(from);
    harness.run_steps(1);
    harness.drag_at(from);
    harness.run_steps(1);
    for step in 1..=4 {
        harness.hover_at(from + (to - from) * (step as f32 / 4.0));
        harness.run_steps(1);
    }
    harness.drop_at(to);
    harness.run_steps(2);
    let regions = harness.state().settings().regions_for(480, 360).to_vec();
    assert_eq!(regions.len(), 1, "{regions:?}");
    assert_eq!(regions[0].name, "line 1");
    for (placed, wanted) in regions[0].points.iter().zip(COUNTING_LINE) {
        let off = (placed[0] - wanted[0]).hypot(placed[1] - wanted[1]);
        assert!(off < 1.5, "{placed:?} for {wanted:?}");
    }

    // New regions redo the paused frame: counting starts from frame 0, as `run`'s does.
    step_until(&mut harness, "frame 0 counted", |app| {
        app.current()
            .is_some_and(|c| c.frame.index == 0 && c.counted.is_some())
    });
    for index in 1..COUNTED_FRAMES {
        step_to_tracked(&mut harness, &control, index);
    }
    let counted = harness.state().current().unwrap().counted.clone().unwrap();
    let count = &counted.counts[0];
    assert!(count.total.inward + count.total.outward > 0, "{count:?}");

    // The same line through `run`, over the same frames, counts the same.
    let json = folder.path().join("run.jsonl");
    let placed: Vec<String> = regions[0]
        .points
        .iter()
        .flatten()
        .map(|v| v.to_string())
        .collect();
    let line = placed.join(",");
    let frames = COUNTED_FRAMES.to_string();
    let args = [
        "--stock",
        "--imgsz",
        "640",
        "--track",
        "--count-line",
        &line,
        "--max-frames",
        &frames,
    ];
    let output = run_yolo11n(&shared, &clip, &args, &json);
    succeeded(&output);
    let last = frame_records(&json).pop().expect("frames");
    let theirs = &last.counts.unwrap()[0];
    assert_eq!(
        (count.total.inward, count.total.outward),
        (theirs.inward, theirs.outward)
    );
    harness.get_by_label(&format!(
        "IN {}  OUT {}",
        count.total.inward, count.total.outward
    ));
    harness.snapshot("app_counting_line");

    // Export: a row per crossing since counting started.
    let csv = folder.path().join("counts.csv");
    let rows = harness.state_mut().export_counts(&csv).unwrap();
    assert_eq!(rows as u64, count.total.inward + count.total.outward);
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), rows + 1, "{text}");
    assert!(
        text.lines().skip(1).all(|row| row.contains(",line 1,")),
        "{text}"
    );

    // Reset, then delete the region from the panel.
    harness.get_by_label("Reset counts").click_accesskit();
    harness.run_steps(2);
    assert!(harness.state().current().unwrap().counted.is_none());
    harness.get_by_label("Delete").click_accesskit();
    harness.run_steps(2);
    assert!(harness.state().settings().regions_for(480, 360).is_empty());

    // A zone: its corners, then the first corner again closes it.
    harness.get_by_label("Add zone").click_accesskit();
    harness.run_steps(2);
    let corners = [
        [120.0, 200.0],
        [360.0, 200.0],
        [360.0, 330.0],
        [120.0, 330.0],
    ];
    for point in corners.iter().chain(&corners[..1]) {
        let at = on_screen(&harness, *point);
        click_at(&mut harness, at);
    }
    let regions = harness.state().settings().regions_for(480, 360).to_vec();
    assert_eq!(regions.len(), 1, "{regions:?}");
    assert_eq!(regions[0].name, "zone 1");
    assert_eq!(regions[0].points.len(), 4, "closing adds no corner");
    for (placed, wanted) in regions[0].points.iter().zip(corners) {
        let off = (placed[0] - wanted[0]).hypot(placed[1] - wanted[1]);
        assert!(off < 1.5, "{placed:?} for {wanted:?}");
    }
}

/// Every frame of `video` as packed RGB, and its size and frame rate.
fn decode(video: &Path) -> (Vec<Vec<u8>>, (u32, u32), f64) {
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-of", "csv=p=0"])
        .args(["-show_entries", "stream=width,height,r_frame_rate"])
        .arg(video)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&probe.stdout).trim().to_string();
    let fields: Vec<&str> = text.split(',').collect();
    assert_eq!(fields.len(), 3, "ffprobe: {text}");
    let (width, height): (u32, u32) = (fields[0].parse().unwrap(), fields[1].parse().unwrap());
    let (num, den) = fields[2].split_once('/').unwrap();
    let rate = num.parse::<f64>().unwrap() / den.parse::<f64>().unwrap();
    let raw = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(video)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(raw.status.success(), "the recording decodes");
    let frame = (width * height * 3) as usize;
    assert_eq!(raw.stdout.len() % frame, 0);
    let frames = raw.stdout.chunks_exact(frame).map(<[u8]>::to_vec).collect();
    (frames, (width, height), rate)
}

/// The mean absolute difference of two packed RGB pictures of one size.
fn mean_difference(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sum: u64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
    sum as f64 / a.len() as f64
}

/// Frame `index` of `video` as packed RGB.
fn decode_frame(video: &Path, index: u64) -> Vec<u8> {
    let raw = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(video)
        .args(["-vf", &format!("select=eq(n\\,{index})"), "-vsync", "0"])
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(
        !raw.stdout.is_empty(),
        "frame {index} of {}",
        video.display()
    );
    raw.stdout
}

#[test]
fn record_makes_a_playable_mp4_of_the_view_and_snapshot_saves_png_and_json() {
    let shared = require_shared!();
    let folder = tempfile::tempdir().unwrap();
    let recordings = folder.path().join("recordings");
    let mut harness = harness(LaunchOptions {
        record_dir: Some(recordings.clone()),
        imgsz: Some(320),
        ..launch(Some(shared.join("weights/yolo11n.pt")), folder.path())
    });
    step_until(&mut harness, "the model", model_ready);
    // All the view shows goes into the recording: tracks and their trails, an overlay, a
    // counting line. The clip is stepped a frame at a time, so that every frame is shown.
    let overlay = "gate-level-1";
    harness.state_mut().settings_mut().track = true;
    harness
        .state_mut()
        .settings_mut()
        .overlays
        .insert(overlay.into());
    let clip = shared.join("videos/vamsi_pedestrians.avi");
    play(&mut harness, &clip);
    let control = harness.state().session().unwrap().control.clone();
    control.set_paused(true);
    step_to_tracked(&mut harness, &control, 0);
    let line = Region::line("line 1", [240.0, 150.0], [240.0, 360.0]).unwrap();
    harness.state_mut().set_regions(vec![line]);
    for index in 1..10 {
        step_to_tracked(&mut harness, &control, index);
    }
    harness.get_by_label("Record").click();
    harness.run_steps(2);
    assert!(harness.state().recorder().is_some(), "recording");
    // Frames 9 to 39: 31 frames, 3.1 s of a 10 fps clip.
    for index in 10..40 {
        step_to_tracked(&mut harness, &control, index);
    }
    harness.get_by_label_contains("REC ");
    // Ctrl+S: the frame as shown, and its detections; then Ctrl+R ends the recording.
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
    harness.run_steps(2);
    let note = harness.state().record_note().unwrap().clone();
    let png = PathBuf::from(
        note.text
            .strip_prefix("snapshot saved: ")
            .expect(&note.text),
    );
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::R);
    harness.run_steps(2);
    assert!(harness.state().recorder().is_none(), "Ctrl+R stopped it");
    let note = harness.state().record_note().unwrap().clone();
    assert!(
        !note.error && note.text.starts_with("recording saved: "),
        "{note:?}"
    );

    let videos: Vec<PathBuf> = std::fs::read_dir(&recordings)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "mp4"))
        .collect();
    assert_eq!(videos.len(), 1, "{videos:?}");
    let name = videos[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("focalyolo-20"), "{name}");
    let (frames, size, rate) = decode(&videos[0]);
    assert_eq!(size, (480, 360), "the source's resolution");
    assert!(
        (rate - 10.0).abs() < 0.01,
        "the source's frame rate: {rate}"
    );
    assert_eq!(frames.len(), 31, "frames 9 to 39, each once");

    // The snapshot is the last frame recorded, as the view shows it, without the codec's
    // losses: the recording holds the same picture.
    let current = harness.state().current().unwrap();
    assert_eq!(current.frame.index, 39);
    let snapshot = image::open(&png).unwrap().to_rgb8();
    assert_eq!(snapshot.dimensions(), (480, 360));
    let recorded = mean_difference(snapshot.as_raw(), &frames[30]);
    let source = decode_frame(&clip, 39);
    let overlaid = mean_difference(snapshot.as_raw(), &source);
    println!(
        "the last recorded frame differs from the snapshot by {recorded:.2} levels on \
         average; the snapshot from the clip's frame by {overlaid:.2}"
    );
    let before = mean_difference(snapshot.as_raw(), &frames[29]);
    println!("the frame recorded before it differs from the snapshot by {before:.2}");
    assert!(
        recorded < 6.0 && recorded < before,
        "{recorded:.2}, {before:.2}"
    );
    assert!(
        overlaid > 20.0,
        "the overlay is in the picture: {overlaid:.2}"
    );
    // The counting line: magenta down x = 240.
    let magenta = (150..360)
        .filter(|&y| (236..=244).any(|x| snapshot.get_pixel(x, y).0 == REGION_COLOUR))
        .count();
    assert!(magenta >= 200, "{magenta} rows of the line drawn");
    // The tracks' trails of recent centres are drawn in their class's colour (boxes and
    // labels drawn after them cover some of it: a parked car's trail is under its label).
    let tracks = &current.tracks.as_ref().unwrap().objects;
    let trailed: Vec<_> = tracks.iter().filter(|o| o.trail.len() > 1).collect();
    assert!(trailed.len() >= 3, "{tracks:?}");
    let mut drawn = [0, 0];
    for object in trailed {
        let colour = focalyolo::output::annotate::class_colour(object.detection.class);
        let painted = |&[x, y]: &[f32; 2]| {
            (-2..=2).any(|dy: i64| {
                (-2..=2).any(|dx: i64| {
                    let px = (x.round() as i64 + dx).clamp(0, 479) as u32;
                    let py = (y.round() as i64 + dy).clamp(0, 359) as u32;
                    snapshot.get_pixel(px, py).0 == colour
                })
            })
        };
        let shown = object.trail.iter().filter(|p| painted(p)).count();
        drawn[0] += shown;
        drawn[1] += object.trail.len();
    }
    println!("{} of {} trail points drawn", drawn[0], drawn[1]);
    assert!(5 * drawn[0] >= 3 * drawn[1], "{drawn:?}");
    let record: focalyolo::output::report::FrameRecord =
        serde_json::from_str(&std::fs::read_to_string(png.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(record.frame, 39);
    assert_eq!(record.detections.len(), tracks.len());
    assert!(record.detections.iter().all(|d| d.track_id.is_some()));

    // The window closed mid-recording: the file is still finished and plays.
    harness.get_by_label("Record").click();
    harness.run_steps(2);
    step_to_tracked(&mut harness, &control, 40);
    let unfinished = harness.state().recorder().unwrap().path().to_path_buf();
    drop(harness);
    let (frames, size, _) = decode(&unfinished);
    assert_eq!(size, (480, 360));
    assert_eq!(frames.len(), 2, "frames 39 and 40");
}

#[test]
fn a_lost_stream_shows_reconnecting_over_its_last_frame_and_comes_back() {
    let shared = require_shared!();
    let folder = tempfile::tempdir().unwrap();
    let mut harness = harness(LaunchOptions {
        record_dir: Some(folder.path().join("recordings")),
        imgsz: Some(320),
        ..launch(Some(shared.join("weights/yolo11n.pt")), folder.path())
    });
    step_until(&mut harness, "the model", model_ready);
    let url = format!("tcp://127.0.0.1:{}", free_port());
    let listen = format!("{url}?listen=1");
    let videos = shared.join("videos");
    let server = ffmpeg_server(
        &videos.join("vamsi_pedestrians.avi"),
        60.0,
        true,
        &MPEG_TS_H264,
        &listen,
    );
    let ctx = harness.ctx.clone();
    harness
        .state_mut()
        .open_source(&ctx, SourceSpec::parse(&url));
    let width = |app: &FocalYoloApp| app.current().map(|c| c.frame.image.width());
    step_until(&mut harness, "the stream's frames", |app| {
        width(app) == Some(480)
    });
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::R);
    harness.run_steps(2);
    assert!(harness.state().recorder().is_some());

    drop(server);
    step_until(&mut harness, "the loss noticed", |app| {
        matches!(
            app.session().unwrap().state,
            SourceState::Reconnecting { .. }
        )
    });
    assert_eq!(
        width(harness.state()),
        Some(480),
        "the last frame stays on screen"
    );
    harness.get_by_label_contains("reconnecting (attempt");
    let note = harness.state().record_note().unwrap().text.clone();
    assert!(
        note.starts_with("recording saved: ") && note.ends_with("(the stream was lost)"),
        "{note}"
    );
    assert!(harness.state().settings().recent_streams.contains(&url));

    let _back = ffmpeg_server(
        &videos.join("ckd_traffic.webm"),
        60.0,
        true,
        &MPEG_TS_H264,
        &listen,
    );
    step_until(&mut harness, "the stream back at 640", |app| {
        width(app) == Some(640)
    });
    assert_eq!(
        harness.state().session().unwrap().state,
        SourceState::Playing
    );
}
