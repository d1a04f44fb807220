//! `focalyolo val`: COCO-style mAP on a YOLO-format labelled folder, as Ultralytics' `val`;
//! or, with `--teacher`, against another model's boxes on any images; with `--compare`, a
//! second model on the same images and the difference's interval.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use focalyolo::compute::device::ComputeDevice;
use focalyolo::eval::agreement::{TEACHER_CONF, TeacherBoxes};
use focalyolo::eval::bootstrap::{PairedDifference, RESAMPLES, paired_difference};
use focalyolo::eval::metrics::{DetectionStats, ImageStats, MapReport};
use focalyolo::eval::{LabelledSet, validate_images};
use focalyolo::inference::detector::Detector;
use focalyolo::source::image_paths_recursive;
use indicatif::{ProgressBar, ProgressStyle};

use super::ModelArgs;

#[derive(Args)]
pub struct ValArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A folder with images/ and labels/ (YOLO format); with --teacher, any images (a
    /// folder, searched recursively, a file or a quoted glob).
    #[arg(long)]
    data: String,
    /// Score against this checkpoint's own boxes (confidence ≥ 0.25, with its own layer 9)
    /// instead of labels: how closely a distilled layer follows its teacher.
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Score these weights too, on the same images, and print how far the difference can be
    /// trusted: its 95% interval from a paired bootstrap over the images.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// The --compare model keeps its checkpoint's own layer 9 (with the same --weights:
    /// the bundled or --focal layer against the checkpoint's SPPF).
    #[arg(long, requires = "compare")]
    compare_stock: bool,
}

/// What the detections are scored against.
enum Judge {
    Labels(LabelledSet),
    Teacher(TeacherBoxes),
}

impl Judge {
    fn images(&self) -> usize {
        match self {
            Judge::Labels(set) => set.len(),
            Judge::Teacher(boxes) => boxes.len(),
        }
    }

    /// Each image scored for `detector`, with a progress bar, and the report of them all.
    fn score(&self, detector: &Detector) -> anyhow::Result<(Vec<ImageStats>, MapReport)> {
        let progress = progress_bar(self.images());
        let mut tick = || progress.inc(1);
        let images = match self {
            Judge::Labels(set) => validate_images(detector, set, &mut tick)?,
            Judge::Teacher(boxes) => boxes.score(detector, &mut tick)?,
        };
        progress.finish_and_clear();
        let report = DetectionStats::of(&images).report();
        Ok((images, report))
    }
}

fn progress_bar(images: usize) -> ProgressBar {
    let progress = ProgressBar::new(images as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} eta {eta}")
            .expect("valid template"),
    );
    progress
}

pub fn run(args: ValArgs) -> anyhow::Result<ExitCode> {
    let device = ComputeDevice::select(args.model.device)?;
    let detector = args.model.load_detector(&device)?;
    let judge = match &args.teacher {
        Some(teacher) => {
            let images = image_paths_recursive(&args.data)?;
            eprintln!(
                "scored against {}'s boxes (confidence ≥ {TEACHER_CONF}) on {} images",
                teacher.display(),
                images.len()
            );
            let teacher = args.model.load_other(teacher, true, &device)?;
            let progress = progress_bar(images.len());
            let boxes = TeacherBoxes::find(&teacher, images, &mut || progress.inc(1))?;
            progress.finish_and_clear();
            Judge::Teacher(boxes)
        }
        None => Judge::Labels(LabelledSet::open(std::path::Path::new(&args.data))?),
    };
    let names = detector.info().class_names.clone();
    let (images, report) = judge.score(&detector)?;

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
    let compared = match &args.compare {
        Some(path) => {
            let other = args.model.load_other(path, args.compare_stock, &device)?;
            let (other_images, other_report) = judge.score(&other)?;
            println!(
                "compared: mAP50-95 {:.4} mAP50 {:.4}",
                other_report.map50_95, other_report.map50
            );
            let difference = paired_difference(&images, &other_images, RESAMPLES, 0);
            println!("{}", describe(&difference, images.len()));
            Some((path, other_report, difference))
        }
        None => None,
    };
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "weights": args.model.weights.display().to_string(),
            "data": args.data,
            "judged_by": args.teacher.as_ref().map_or_else(
                || "labels".to_string(),
                |teacher| format!("the boxes of {}", teacher.display()),
            ),
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
            "compared": compared.as_ref().map(|(path, report, difference)| serde_json::json!({
                "weights": path.display().to_string(),
                "own_layer9": args.compare_stock,
                "map50_95": report.map50_95,
                "map50": report.map50,
                "map50_95_difference": {
                    "value": difference.difference,
                    "low": difference.low,
                    "high": difference.high,
                    "resamples": difference.resamples,
                },
            })),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The compared model's mAP50-95 less the first's, its interval, and what it means.
fn describe(difference: &PairedDifference, images: usize) -> String {
    let verdict = if difference.includes_zero() {
        "these images cannot tell the two apart"
    } else if difference.difference > 0.0 {
        "the compared model is better on images like these"
    } else {
        "the compared model is worse on images like these"
    };
    format!(
        "mAP50-95 difference (compared − first) {:+.4}, 95% interval [{:+.4}, {:+.4}] \
         (paired bootstrap: {} resamples of the {images} images): {verdict}",
        difference.difference, difference.low, difference.high, difference.resamples
    )
}
