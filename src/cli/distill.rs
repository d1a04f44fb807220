//! `focalyolo distill`: train a FocalModulation layer 9 for a stock YOLO11 checkpoint.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use focalyolo::distill::{DistillEvent, DistillOptions, Recipe, distill};
use focalyolo::source::image_paths;
use focalyolo::weights::Weights;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct DistillArgs {
    /// The stock (SPPF) YOLO11 checkpoint whose layer 9 is replaced.
    #[arg(long)]
    teacher: PathBuf,
    /// Training images: folders, files or quoted globs; no labels needed. Repeatable.
    #[arg(long, required = true)]
    images: Vec<String>,
    /// Where to write the trained layer (default: beside the teacher, `<name>-focal.safetensors`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// What the new layer learns to reproduce.
    #[arg(long, value_enum, default_value_t = Recipe::Layer9And10)]
    recipe: Recipe,
    /// The last layer that trains with the new layer 9 (10 is C2PSA, 23 the Detect head);
    /// the file then carries every layer from 9 to it.
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u64).range(9..=23))]
    train_through: u64,
    /// Start from layers an earlier `distill` wrote instead of a fresh layer 9.
    #[arg(long)]
    start_from: Option<PathBuf>,
    #[arg(long, default_value_t = 640)]
    imgsz: usize,
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Augmented views of each image (teacher features are cached per view).
    #[arg(long, default_value_t = 2)]
    views: usize,
    /// The share of views that are 2×2 mosaics of the image with three others (0 to 1).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    mosaic: f64,
    /// The largest a plain view scales an image, as a share of the canvas (the smallest is
    /// 0.5); above 1 a view is a random crop of the enlarged image, as Ultralytics' `scale`
    /// augmentation makes.
    #[arg(long, default_value_t = 1.0, value_parser = at_least_half)]
    max_scale: f64,
    /// Weigh each feature channel's error by the inverse of the teacher's variance in that
    /// channel, so quiet channels count as much as loud ones.
    #[arg(long)]
    standardize: bool,
    /// Peak learning rate (AdamW, cosine decay to 1% of it).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// AdamW's decoupled weight decay.
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Held-out images (a folder, an image or a quoted glob; repeatable), never trained on,
    /// whose loss is printed after every epoch.
    #[arg(long)]
    val_images: Vec<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 2)]
    focal_level: usize,
    #[arg(long, default_value_t = 3)]
    focal_window: usize,
    #[arg(long, default_value_t = 2)]
    focal_factor: usize,
    /// Continue from the checkpoint an interrupted run left beside --out.
    #[arg(long)]
    resume: bool,
}

pub fn run(args: DistillArgs) -> anyhow::Result<ExitCode> {
    let teacher = Weights::load(&args.teacher)
        .with_context(|| format!("cannot load {}", args.teacher.display()))?;
    let mut images = Vec::new();
    for source in &args.images {
        images.extend(image_paths(source)?);
    }
    let mut validation = Vec::new();
    for source in &args.val_images {
        validation.extend(image_paths(source)?);
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .teacher
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        args.teacher
            .with_file_name(format!("{stem}-focal.safetensors"))
    });
    let options = DistillOptions {
        recipe: args.recipe,
        train_through: args.train_through as usize,
        start_from: args.start_from.clone(),
        imgsz: args.imgsz,
        epochs: args.epochs,
        batch: args.batch,
        views: args.views,
        mosaic: args.mosaic,
        max_scale: args.max_scale,
        standardize: args.standardize,
        learning_rate: args.lr,
        weight_decay: args.weight_decay,
        validation,
        seed: args.seed,
        focal_level: args.focal_level,
        focal_window: args.focal_window,
        focal_factor: args.focal_factor,
    };
    eprintln!(
        "distilling layer 9 of {} on {} images × {} views",
        args.teacher.display(),
        images.len(),
        args.views
    );
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:24} {bar:40} {pos}/{len} {elapsed_precise} eta {eta}")
            .expect("valid template"),
    );
    let start = Instant::now();
    let losses = distill(
        &teacher,
        &images,
        &options,
        &out,
        args.resume,
        &mut |event| match event {
            DistillEvent::Caching { done, total } => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                bar.set_message("teacher features");
            }
            DistillEvent::Step {
                epoch,
                step,
                steps,
                loss,
            } => {
                bar.set_length(steps as u64);
                bar.set_position(step as u64 + 1);
                bar.set_message(format!(
                    "epoch {}/{} loss {loss:.5}",
                    epoch + 1,
                    args.epochs
                ));
            }
            DistillEvent::EpochDone {
                epoch,
                mean_loss,
                validation_loss,
            } => {
                let held_out = validation_loss
                    .map(|loss| format!(", held-out loss {loss:.6}"))
                    .unwrap_or_default();
                bar.suspend(|| {
                    eprintln!("epoch {:>3}: mean loss {mean_loss:.6}{held_out}", epoch + 1)
                });
            }
        },
    )?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} after {:.1} min (final loss {:.6})",
        out.display(),
        start.elapsed().as_secs_f64() / 60.0,
        losses.last().copied().unwrap_or(f32::NAN)
    );
    Ok(ExitCode::SUCCESS)
}

/// A probability, 0 to 1.
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("`{text}` is not a number from 0 to 1")),
    }
}

fn at_least_half(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.5..=4.0).contains(&value) => Ok(value),
        _ => Err(format!("`{text}` is not a number from 0.5 to 4")),
    }
}
