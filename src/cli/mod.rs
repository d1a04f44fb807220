//! Subcommands of the `focalyolo` binary.

mod bench;
mod count;
mod detect;
mod distill;
mod run;
mod val;
mod weights;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use focalyolo::compute::device::ComputeDevice;
use focalyolo::compute::device::DeviceChoice;
use focalyolo::inference::detector::{Detector, InputSize};
use focalyolo::inference::postprocess::NmsOptions;
use focalyolo::inference::preprocess::Canvas;
use focalyolo::track::TrackerConfig;
use focalyolo::weights::Weights;
use focalyolo::weights::bundled::{Layer9Choice, load_with_layer9};

#[derive(Parser)]
#[command(
    name = "focalyolo",
    version,
    about = "YOLO11 + FocalModulation object detection on burn/wgpu",
    long_about = "YOLO11 + FocalModulation object detection on burn/wgpu.\n\n\
                  Without a command, opens the app: `focalyolo --source video.mp4 --weights best.pt`.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    app: AppArgs,
}

/// What the app opens with; unset options come from its saved settings.
#[derive(Args)]
struct AppArgs {
    /// Play this at start: a video file, `camera:N`, a stream (rtsp://, rtmp://,
    /// http(s)://, tcp://, udp://, srt://), or an image, folder or glob.
    #[arg(long)]
    source: Option<String>,
    /// Weights: an Ultralytics .pt checkpoint or a .safetensors file.
    #[arg(long)]
    weights: Option<std::path::PathBuf>,
    #[command(flatten)]
    layer9: Layer9Args,
    /// Where the model runs: auto picks a hardware GPU if present, else the CPU backend.
    #[arg(long, value_enum)]
    device: Option<DeviceChoice>,
    /// Inference size (longest side), a multiple of 32.
    #[arg(long)]
    imgsz: Option<usize>,
    /// Start with tracking on (ByteTrack IDs and trails on the boxes).
    #[arg(long)]
    track: bool,
    /// Run these weights too, with their own layer 9, on the same frames (the weights
    /// themselves for stock YOLO11n with SPPF beside the bundled FocalModulation).
    #[arg(long)]
    compare: Option<std::path::PathBuf>,
    /// Where Record (Ctrl+R) and Snapshot (Ctrl+S) save their files (kept in the settings;
    /// first default: the platform's video folder, in a `focalyolo` folder).
    #[arg(long)]
    record_dir: Option<std::path::PathBuf>,
}

impl AppArgs {
    fn launch(self) -> anyhow::Result<ExitCode> {
        // Without a flag the app keeps the layer 9 choice it saved.
        let layer9 =
            (self.layer9.focal.is_some() || self.layer9.stock).then(|| self.layer9.choice());
        let launch = focalyolo::app::LaunchOptions {
            source: self.source,
            weights: self.weights,
            layer9,
            device: self.device,
            imgsz: self.imgsz,
            track: self.track,
            compare: self.compare,
            record_dir: self.record_dir,
            ..focalyolo::app::LaunchOptions::new()
        };
        focalyolo::app::run(launch).map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Detect objects in an image, a folder of images or a glob.
    Detect(detect::DetectArgs),
    /// Run a video, camera or image sequence through the model without a window.
    Run(run::RunArgs),
    /// Describe a weights file: scale, classes, layer 9, parameters.
    Info(weights::InfoArgs),
    /// Convert a checkpoint (.pt) to safetensors in Ultralytics' layout.
    Convert(weights::ConvertArgs),
    /// Time the model's forward pass on this machine.
    Bench(bench::BenchArgs),
    /// COCO-style mAP50-95 and mAP50 on a YOLO-format labelled folder.
    Val(val::ValArgs),
    /// Train a FocalModulation layer 9 for a stock YOLO11 checkpoint by distillation.
    Distill(distill::DistillArgs),
}

/// Model options shared by every command that runs the model.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Weights: an Ultralytics .pt checkpoint or a .safetensors file.
    #[arg(long)]
    weights: std::path::PathBuf,
    /// Inference size (longest side), a multiple of 32.
    #[arg(long, default_value_t = 640)]
    imgsz: usize,
    /// Letterbox to a full imgsz×imgsz square instead of the minimal stride-32 rectangle.
    #[arg(long)]
    square: bool,
    #[command(flatten)]
    layer9: Layer9Args,
    /// Where the model runs: auto picks a hardware GPU if present, else the CPU backend.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

/// Which layer 9 the model runs with.
#[derive(Args, Clone)]
pub struct Layer9Args {
    /// A trained FocalModulation layer 9 (from `distill`) to put into the checkpoint.
    #[arg(long, conflicts_with = "stock")]
    focal: Option<std::path::PathBuf>,
    /// Keep the checkpoint's own layer 9: stock YOLO11n otherwise gets the bundled
    /// FocalModulation layer (weights/yolo11n-focal.safetensors).
    #[arg(long)]
    stock: bool,
}

impl Layer9Args {
    fn choice(&self) -> Layer9Choice {
        match (&self.focal, self.stock) {
            (Some(focal), _) => Layer9Choice::Focal(focal.clone()),
            (None, true) => Layer9Choice::Stock,
            (None, false) => Layer9Choice::Bundled,
        }
    }

    /// The weights at `path` with this layer 9, saying where it came from unless it is the
    /// checkpoint's own.
    pub fn load(&self, path: &std::path::Path) -> anyhow::Result<Weights> {
        let (weights, origin) = load_with_layer9(path, &self.choice())?;
        if let Some(note) = origin.note(path, weights.scores.as_ref()) {
            eprintln!("{note}");
        }
        Ok(weights)
    }
}

impl ModelArgs {
    fn load_detector(&self, device: &ComputeDevice) -> anyhow::Result<Detector> {
        self.detector_with(&self.weights, &self.layer9, device)
    }

    /// Another checkpoint at the same size and place, for comparisons: with its own layer 9
    /// when `stock`, else with what --focal/--stock ask of this one's.
    fn load_other(
        &self,
        path: &std::path::Path,
        stock: bool,
        device: &ComputeDevice,
    ) -> anyhow::Result<Detector> {
        let layer9 = if stock {
            Layer9Args {
                focal: None,
                stock: true,
            }
        } else {
            self.layer9.clone()
        };
        self.detector_with(path, &layer9, device)
    }

    fn detector_with(
        &self,
        path: &std::path::Path,
        layer9: &Layer9Args,
        device: &ComputeDevice,
    ) -> anyhow::Result<Detector> {
        let weights = layer9.load(path)?;
        Ok(Detector::from_weights(
            &weights,
            device.device.clone(),
            self.input_size(),
        )?)
    }

    fn input_size(&self) -> InputSize {
        InputSize {
            imgsz: self.imgsz,
            canvas: if self.square {
                Canvas::Square
            } else {
                Canvas::Minimal
            },
        }
    }
}

/// Detection thresholds and filters.
#[derive(Args, Clone)]
pub struct NmsArgs {
    /// Minimum confidence [default: 0.25, or 0.1 with --track as Ultralytics tracks].
    #[arg(long)]
    conf: Option<f32>,
    /// IoU above which NMS suppresses a box.
    #[arg(long, default_value_t = 0.7)]
    iou: f32,
    /// Most detections per image.
    #[arg(long, default_value_t = 300)]
    max_det: usize,
    /// Keep only these class ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<usize>>,
    /// Class-agnostic NMS.
    #[arg(long)]
    agnostic: bool,
    /// YOLO26: predict with the one-to-one head and its top-k instead of NMS, as
    /// Ultralytics' `predict(nms=False)` (other models have one head and ignore it).
    #[arg(long)]
    no_nms: bool,
}

impl NmsArgs {
    /// Whether `--no-nms` asks for the one-to-one head.
    pub fn no_nms(&self) -> bool {
        self.no_nms
    }

    fn options(&self) -> NmsOptions {
        self.options_with_default_conf(NmsOptions::default().conf)
    }

    /// The options with `conf` where `--conf` was not given.
    fn options_with_default_conf(&self, conf: f32) -> NmsOptions {
        NmsOptions {
            conf: self.conf.unwrap_or(conf),
            iou: self.iou,
            max_det: self.max_det,
            agnostic: self.agnostic,
            classes: self.classes.clone(),
            multi_label: false,
            nms_free: self.no_nms,
        }
    }
}

/// ByteTrack's settings; the defaults are Ultralytics' `bytetrack.yaml`.
#[derive(Args, Clone)]
pub struct TrackArgs {
    /// Follow objects across frames with ByteTrack: track IDs in the JSON, IDs and trails
    /// on the saved video. Without --conf, detections down to 0.1 feed the tracker.
    #[arg(long)]
    track: bool,
    /// Detections at or above this score are associated first.
    #[arg(long, default_value_t = TrackerConfig::default().high_thresh)]
    track_high_thresh: f32,
    /// Fainter detections above this score get a second round with the tracks left over.
    #[arg(long, default_value_t = TrackerConfig::default().low_thresh)]
    track_low_thresh: f32,
    /// An unmatched detection starts a new track at or above this score.
    #[arg(long, default_value_t = TrackerConfig::default().new_track_thresh)]
    new_track_thresh: f32,
    /// Frames a lost track is kept to be found again.
    #[arg(long, default_value_t = TrackerConfig::default().buffer)]
    track_buffer: u32,
    /// Largest association cost (1 − IoU, times the score when fused) that still matches.
    #[arg(long, default_value_t = TrackerConfig::default().match_thresh)]
    match_thresh: f32,
    /// Weigh IoU by the detection score when associating.
    #[arg(long, default_value_t = TrackerConfig::default().fuse_score, action = clap::ArgAction::Set)]
    fuse_score: bool,
    /// Centres drawn per track as its trail on the saved video.
    #[arg(long, default_value_t = TrackerConfig::default().trail)]
    trail: usize,
}

impl TrackArgs {
    /// The tracker's settings, when --track is on.
    fn config(&self) -> anyhow::Result<Option<TrackerConfig>> {
        if !self.track {
            return Ok(None);
        }
        self.settings().map(Some)
    }

    /// The tracker's settings, whether or not --track is on.
    fn settings(&self) -> anyhow::Result<TrackerConfig> {
        let config = TrackerConfig {
            high_thresh: self.track_high_thresh,
            low_thresh: self.track_low_thresh,
            new_track_thresh: self.new_track_thresh,
            buffer: self.track_buffer,
            match_thresh: self.match_thresh,
            fuse_score: self.fuse_score,
            trail: self.trail,
        };
        config.validate()?;
        Ok(config)
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Some(command) = cli.command else {
        return cli.app.launch();
    };
    match command {
        Command::Detect(args) => detect::run(args),
        Command::Run(args) => run::run(args),
        Command::Info(args) => weights::info(args),
        Command::Convert(args) => weights::convert(args),
        Command::Bench(args) => bench::run(args),
        Command::Val(args) => val::run(args),
        Command::Distill(args) => distill::run(args),
    }
}
