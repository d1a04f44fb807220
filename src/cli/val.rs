//! `focalyolo val`: COCO-style mAP on a YOLO-format labelled folder, as Ultralytics' `val`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use focalyolo::compute::device::ComputeDevice;
use focalyolo::eval::{LabelledSet, validate};
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

pub fn run(args: ValArgs) -> anyhow::Result<ExitCode> {
    let set = LabelledSet::open(&args.data)?;
    let device = ComputeDevice::select(args.model.device)?;
    let detector = args.model.load_detector(&device)?;
    let names = detector.info().class_names.clone();

    let progress = ProgressBar::new(set.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} eta {eta}")
            .expect("valid template"),
    );
    let report = validate(&detector, &set, &mut || progress.inc(1))?;
    progress.finish_and_clear();

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
