//! `focalyolo distill`: train a FocalModulation layer 9 for a stock YOLO11 checkpoint.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use focalyolo::distill::{DistillEvent, DistillOptions, Recipe, distill};
use focalyolo::inference::preprocess::Canvas;
use focalyolo::model::FocalModulationConfig;
use focalyolo::source::image_paths_recursive;
use focalyolo::weights::Weights;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct DistillArgs {
    /// The stock (SPPF) YOLO11 checkpoint whose layer 9 is replaced.
    #[arg(long)]
    teacher: PathBuf,
    /// Training images: folders (searched recursively), files or quoted globs; no labels
    /// needed. Repeatable.
    #[arg(long, required = true)]
    images: Vec<String>,
    /// Where to write the trained layer (default: beside the teacher, `<name>-focal.safetensors`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// What the new layer learns to reproduce.
    #[arg(long, value_enum, default_value_t = Recipe::Layer9And10)]
    recipe: Recipe,
    /// The first layer that trains: below 9 the backbone from that layer on adapts to the
    /// new layer 9 too (7: its last stage, which feeds layer 9 alone; 0: all of it); the
    /// file then carries those layers.
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u64).range(0..=9))]
    train_from: u64,
    /// The last layer that trains with the new layer 9 (10 is C2PSA, 23 the Detect head);
    /// the file then carries every layer from 9 to it.
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u64).range(9..=23))]
    train_through: u64,
    /// Start from layers an earlier `distill` wrote instead of a fresh layer 9.
    #[arg(long)]
    start_from: Option<PathBuf>,
    #[arg(long, default_value_t = 640)]
    imgsz: usize,
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: u64,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Fresh augmented views of each image per epoch.
    #[arg(long, default_value_t = 1)]
    views: usize,
    /// Optimiser steps on each batch of views (data echoing): the teacher's work per batch
    /// dwarfs a step of the layers that train, so repeats add steps at little cost.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    echo: u64,
    /// The share of views that are 2×2 mosaics of the image with three others (0 to 1).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    mosaic: f64,
    /// The canvas views are drawn on: `minimal`, the one inference uses (the image's
    /// aspect ratio, padded to the stride), or `square` (imgsz × imgsz, the rest grey).
    #[arg(long, value_enum, default_value_t = Canvas::Minimal)]
    canvas: Canvas,
    /// The smallest a plain view scales an image: its longest side as a share of --imgsz
    /// (on the minimal canvas, the image at that smaller input size).
    #[arg(long, default_value_t = 0.5, value_parser = scale)]
    min_scale: f64,
    /// The largest: above 1 a view is a random crop of the enlarged image, as
    /// Ultralytics' `scale` augmentation makes.
    #[arg(long, default_value_t = 1.5, value_parser = scale)]
    max_scale: f64,
    /// Peak learning rate (AdamW, cosine decay to 1% of it).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// The layers other than 9 that train (--train-from, --train-through) learn at this
    /// share of --lr.
    #[arg(long, default_value_t = 0.1)]
    later_lr_scale: f64,
    /// AdamW's decoupled weight decay.
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Held-out images (a folder, an image or a quoted glob; repeatable), never trained on,
    /// whose loss is printed after every epoch.
    #[arg(long)]
    val_images: Vec<String>,
    /// A labelled folder (images/ and labels/, YOLO format) to measure the layer's mAP on,
    /// as `focalyolo val` does: the teacher's first, then the student's. Never train on it.
    #[arg(long)]
    val: Option<PathBuf>,
    /// Measure --val after every this many epochs (and after the last).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    val_every: u64,
    /// The input size --val is measured at (as `focalyolo val --imgsz`), whatever the
    /// views' --imgsz: the size the layer will run at.
    #[arg(long, default_value_t = 640)]
    val_imgsz: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Focal levels of a fresh layer (cascaded depthwise convolutions).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    focal_level: u64,
    /// The first level's kernel size (odd).
    #[arg(long, default_value_t = 3)]
    focal_window: usize,
    /// How much each level's kernel grows over the previous one's (even, so kernels stay odd).
    #[arg(long, default_value_t = 2)]
    focal_factor: usize,
    /// Train a fresh SPPF (the teacher's own layer 9, re-initialised) instead of
    /// FocalModulation: a control run, not a layer to use. Where it ends shows how much of
    /// the gap to the teacher the procedure itself leaves with the teacher's architecture.
    #[arg(long, conflicts_with = "start_from")]
    control_sppf: bool,
    /// Continue from the checkpoint an interrupted run left beside --out.
    #[arg(long)]
    resume: bool,
}

pub fn run(args: DistillArgs) -> anyhow::Result<ExitCode> {
    let teacher = Weights::load(&args.teacher)
        .with_context(|| format!("cannot load {}", args.teacher.display()))?;
    let mut images = Vec::new();
    for source in &args.images {
        images.extend(image_paths_recursive(source)?);
    }
    let mut validation = Vec::new();
    for source in &args.val_images {
        validation.extend(image_paths_recursive(source)?);
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
        train_from: args.train_from as usize,
        train_through: args.train_through as usize,
        start_from: args.start_from.clone(),
        imgsz: args.imgsz,
        epochs: args.epochs as usize,
        batch: args.batch,
        views: args.views,
        echo: args.echo as usize,
        mosaic: args.mosaic,
        canvas: args.canvas,
        scale: (args.min_scale, args.max_scale),
        learning_rate: args.lr,
        later_layers_lr_scale: args.later_lr_scale,
        weight_decay: args.weight_decay,
        validation,
        val: args.val.clone(),
        val_every: args.val_every as usize,
        val_imgsz: args.val_imgsz,
        seed: args.seed,
        focal: FocalModulationConfig::new()
            .with_focal_level(args.focal_level as usize)
            .with_focal_window(args.focal_window)
            .with_focal_factor(args.focal_factor),
        control_sppf: args.control_sppf,
    };
    if args.focal_window.is_multiple_of(2) || !args.focal_factor.is_multiple_of(2) {
        anyhow::bail!(
            "--focal-window {} and --focal-factor {} give even kernels: the window must be odd \
             and the factor even",
            args.focal_window,
            args.focal_factor
        );
    }
    if args.min_scale > args.max_scale {
        anyhow::bail!(
            "--min-scale {} is above --max-scale {}",
            args.min_scale,
            args.max_scale
        );
    }
    eprintln!(
        "distilling layer 9 of {} on {} images, {} fresh view(s) each per epoch, streamed \
         (memory: one batch of {} views)",
        args.teacher.display(),
        images.len(),
        args.views,
        args.batch
    );
    // One bar over the whole run, so its ETA is the run's.
    let steps_per_epoch = (images.len() * args.views).div_ceil(args.batch);
    let bar = ProgressBar::new(steps_per_epoch as u64 * args.epochs);
    bar.set_style(
        ProgressStyle::with_template("{msg:28} {bar:30} {pos}/{len} {elapsed_precise} eta {eta}")
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
            DistillEvent::Skipped { path, reason } => {
                bar.suspend(|| eprintln!("skipped {}: {reason}", path.display()));
            }
            DistillEvent::Scored { epoch, report } => {
                let who = epoch.map_or_else(
                    || "teacher (stock) ".to_string(),
                    |epoch| format!("epoch {:>3}:", epoch + 1),
                );
                bar.suspend(|| {
                    eprintln!(
                        "{who} mAP50-95 {:.4} mAP50 {:.4} on {}",
                        report.map50_95,
                        report.map50,
                        args.val
                            .as_deref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    )
                });
            }
            DistillEvent::Step {
                epoch,
                step,
                steps,
                loss,
            } => {
                bar.set_position((epoch * steps + step + 1) as u64);
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
                    eprintln!(
                        "epoch {:>3}: mean loss {mean_loss:.6}{held_out} ({:.1} min)",
                        epoch + 1,
                        start.elapsed().as_secs_f64() / 60.0
                    )
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

fn scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.1..=4.0).contains(&value) => Ok(value),
        _ => Err(format!("`{text}` is not a number from 0.1 to 4")),
    }
}
