//! `focalyolo detect`: images in, boxes out (JSON lines and/or annotated images).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use focalyolo::compute::device::ComputeDevice;
use focalyolo::output::annotate::draw_detections;
use focalyolo::output::attention_maps::{Colormap, heatmaps, overlay};
use focalyolo::output::explain::{Explanation, detail_tiles, strip};
use focalyolo::output::report::{ImageRecord, records};
use focalyolo::source::{image_paths, load_rgb};
use indicatif::{ProgressBar, ProgressStyle};

use super::{ModelArgs, NmsArgs};

/// The most each picture of an `--explain` strip takes (width, height).
const EXPLAIN_TILE: [u32; 2] = [384, 192];

#[derive(Args)]
pub struct DetectArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    nms: NmsArgs,
    /// An image, a folder of images, or a glob pattern (quote it).
    #[arg(long)]
    source: String,
    /// Write annotated images into this folder.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Write one JSON object per image, one per line, to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// With --save: also write FocalModulation's gate maps and modulator laid over each
    /// image (`<name>.gate-level-0.png`, ...).
    #[arg(long, requires = "save")]
    save_attention: bool,
    /// Write into this folder, per box, the crop around it with each gate map and the
    /// modulator laid over it (`<name>.box<N>.png`) and what explains it: pyramid level,
    /// anchor, top-3 class scores, the modulator's energy inside it (`<name>.box<N>.json`).
    #[arg(long)]
    explain: Option<PathBuf>,
}

pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let paths = image_paths(&args.source)?;
    let device = ComputeDevice::select(args.model.device)?;
    let detector = args.model.load_detector(&device)?;
    let names = detector.info().class_names.clone();
    eprintln!(
        "model: {} ({}, {}) on {}",
        detector.info().name(),
        detector.info().classes(),
        detector.info().head(args.nms.no_nms()),
        device.description
    );

    let mut json = match &args.json {
        Some(path) => {
            Some(BufWriter::new(File::create(path).with_context(|| {
                format!("cannot create {}", path.display())
            })?))
        }
        None => None,
    };
    for dir in [&args.save, &args.explain].into_iter().flatten() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let want_maps = args.save_attention || args.explain.is_some();
    if want_maps && !detector.info().has_focal() {
        eprintln!(
            "no FocalModulation in this model: --save-attention and --explain have no gate maps \
             to write (boxes only)"
        );
    }
    let progress = if paths.len() > 1 {
        ProgressBar::new(paths.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} eta {eta} {msg}")
            .expect("valid template"),
    );

    let options = args.nms.options();
    let mut failures = 0;
    for path in &paths {
        progress.inc(1);
        let result = load_rgb(path)
            .map_err(anyhow::Error::from)
            .and_then(|image| {
                let frame = detector.run(&image, &options, want_maps)?;
                Ok((image, frame))
            });
        let (mut image, frame) = match result {
            Ok(ok) => ok,
            Err(err) => {
                // A hidden bar (one image) prints nothing of its own: write past it.
                progress.suspend(|| eprintln!("skipped {}: {err:#}", path.display()));
                failures += 1;
                continue;
            }
        };
        let detections = &frame.detections;
        if let Some(out) = json.as_mut() {
            let record = ImageRecord {
                source: path.display().to_string(),
                width: image.width(),
                height: image.height(),
                detections: records(detections, &names),
            };
            serde_json::to_writer(&mut *out, &record)?;
            out.write_all(b"\n")?;
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let maps = match &frame.taps {
            Some(taps) => heatmaps(taps).context("reading the attention maps")?,
            None => Vec::new(),
        };
        if let (Some(dir), true) = (&args.save, args.save_attention) {
            for map in &maps {
                let target = dir.join(format!("{stem}.{}.png", map.key()));
                overlay(&image, map, &frame.letterbox, Colormap::Turbo, 0.55)
                    .save(&target)
                    .with_context(|| format!("cannot write {}", target.display()))?;
            }
        }
        if let Some(dir) = &args.explain {
            for (index, detection) in detections.iter().enumerate() {
                let tiles = detail_tiles(
                    &image,
                    detection,
                    &maps,
                    &frame.letterbox,
                    Colormap::Turbo,
                    EXPLAIN_TILE,
                );
                let png = dir.join(format!("{stem}.box{index}.png"));
                strip(&tiles)
                    .save(&png)
                    .with_context(|| format!("cannot write {}", png.display()))?;
                let record = Explanation::new(detection, &maps, &frame.letterbox, &names);
                let json_path = dir.join(format!("{stem}.box{index}.json"));
                let file = File::create(&json_path)
                    .with_context(|| format!("cannot create {}", json_path.display()))?;
                serde_json::to_writer_pretty(BufWriter::new(file), &record)?;
            }
        }
        if let Some(dir) = &args.save {
            draw_detections(&mut image, detections, &names);
            let target = dir.join(path.file_name().unwrap_or(path.as_os_str()));
            save_image(&image, &target)
                .with_context(|| format!("cannot write {}", target.display()))?;
        }
        if paths.len() == 1 {
            for d in detections {
                let [x1, y1, x2, y2] = d.xyxy;
                println!(
                    "{:>16} {:.2}  [{x1:.1}, {y1:.1}, {x2:.1}, {y2:.1}]",
                    names[d.class], d.conf
                );
            }
        }
    }
    progress.finish_and_clear();
    if let Some(mut out) = json {
        out.flush()?;
    }
    if failures > 0 {
        eprintln!(
            "{failures} of {} images could not be processed",
            paths.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn save_image(image: &image::RgbImage, target: &Path) -> image::ImageResult<()> {
    // Keep the source's format where the encoder supports it, else PNG.
    match image::ImageFormat::from_path(target) {
        Ok(image::ImageFormat::Jpeg | image::ImageFormat::Png | image::ImageFormat::Bmp) => {
            image.save(target)
        }
        _ => image.save_with_format(target.with_extension("png"), image::ImageFormat::Png),
    }
}
