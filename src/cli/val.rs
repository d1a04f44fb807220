//! `focalyolo val`: COCO-style mAP on a YOLO-format labelled folder, as Ultralytics' `val`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use focalyolo::dataset::{labelled_images, read_labels};
use focalyolo::device::ComputeDevice;
use focalyolo::metrics::DetectionStats;
use focalyolo::postprocess::NmsOptions;
use focalyolo::preprocess::{Letterbox, validation_canvases};
use focalyolo::source::{load_rgb, upright_size};
use indicatif::{ProgressBar, ProgressStyle};

use super::ModelArgs;

#[derive(Args)]
pub struct ValArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A folder with images/ and labels/ (YOLO format).
    #[arg(long)]
    data: PathBuf,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Ultralytics' default validation batch size, which decides the rectangular canvases.
const VALIDATION_BATCH: usize = 16;

pub fn run(args: ValArgs) -> anyhow::Result<ExitCode> {
    let images = labelled_images(&args.data)?;
    let device = ComputeDevice::select(args.model.device)?;
    let detector = args.model.load_detector(&device)?;
    let names = detector.info().class_names.clone();
    // Ultralytics' validator settings.
    let options = NmsOptions {
        conf: 0.001,
        iou: 0.7,
        max_det: 300,
        multi_label: true,
        ..NmsOptions::default()
    };

    let progress = ProgressBar::new(images.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} eta {eta}")
            .expect("valid template"),
    );
    // Ultralytics validates in rectangular batches of 16 images of similar aspect ratio.
    let sizes = images
        .iter()
        .map(|(path, _)| upright_size(path))
        .collect::<Result<Vec<_>, _>>()?;
    let canvases = validation_canvases(&sizes, args.model.imgsz, VALIDATION_BATCH);
    let mut stats = DetectionStats::default();
    for ((image_path, label_path), (canvas_width, canvas_height)) in images.iter().zip(canvases) {
        progress.inc(1);
        let image = load_rgb(image_path)?;
        let labels = read_labels(label_path, image.width(), image.height())?;
        let letterbox = Letterbox::for_validation(
            image.width(),
            image.height(),
            args.model.imgsz,
            canvas_width,
            canvas_height,
        )?;
        let detections = detector
            .run_letterboxed(&image, &letterbox, &options, false)?
            .detections;
        stats.add_image(&detections, &labels);
    }
    progress.finish_and_clear();

    let report = stats.report();
    println!(
        "{:>20} {:>8} {:>10} {:>8} {:>10}",
        "class", "images", "instances", "mAP50", "mAP50-95"
    );
    println!(
        "{:>20} {:>8} {:>10} {:>8.3} {:>10.3}",
        "all", report.images, report.instances, report.map50, report.map50_95
    );
    for c in &report.per_class {
        let name = names.get(c.class).map_or("?", String::as_str);
        println!(
            "{name:>20} {:>8} {:>10} {:>8.3} {:>10.3}",
            c.images, c.instances, c.ap50, c.ap50_95
        );
    }
    println!("mAP50-95 {:.4} mAP50 {:.4}", report.map50_95, report.map50);
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "weights": args.model.weights.display().to_string(),
            "data": args.data.display().to_string(),
            "images": report.images,
            "instances": report.instances,
            "map50_95": report.map50_95,
            "map50": report.map50,
            "classes": report.per_class.iter().map(|c| serde_json::json!({
                "class": c.class,
                "name": names.get(c.class),
                "images": c.images,
                "instances": c.instances,
                "map50": c.ap50,
                "map50_95": c.ap50_95,
            })).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
