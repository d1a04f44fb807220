//! `focalyolo run`: a video, stream, camera or image sequence through the model without a
//! window. From a file, every decoded frame gets exactly one JSON line and one output video
//! frame: the capture thread waits for the model rather than dropping frames. A live source
//! (camera, stream) is never made to wait: the model takes the newest frame each time, the
//! JSON lines keep the decoded frames' indices (gaps are the frames skipped), and a lost
//! source is reconnected until `--reconnect-timeout`. With `--track`, ByteTrack gives
//! each object an ID, in the JSON and on the saved video; `--count-line`/`--count-zone`
//! count the tracks crossing lines and entering zones.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use focalyolo::compute::device::ComputeDevice;
use focalyolo::count::{CountFrame, Region, SequenceCounter};
use focalyolo::inference::detector::{Detector, FrameResult};
use focalyolo::inference::postprocess::NmsOptions;
use focalyolo::output::annotate::{draw_detections, draw_regions, draw_tracks, mosaic};
use focalyolo::output::attention_maps::{Colormap, heatmaps, overlay, select};
use focalyolo::output::report::{CountsCsv, FrameRecord, count_records, records, tracked_records};
use focalyolo::output::video_writer::VideoWriter;
use focalyolo::pipeline::{
    CaptureEvent, CaptureOptions, CaptureStats, Delivery, HandOff, PlaybackControl, catch_panic,
    spawn_capture,
};
use focalyolo::source::{Frame, Looping, OpenOptions, RtspTransport, SourceSpec, StreamOptions};
use focalyolo::track::{SequenceTracker, TRACKING_CONF, TrackedFrame, TrackerConfig};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};

use super::count::{CountArgs, report_counts};
use super::{ModelArgs, NmsArgs, TrackArgs};

/// Frames decoded ahead of the model: enough to overlap decoding with inference.
const DECODE_AHEAD: usize = 4;

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    nms: NmsArgs,
    #[command(flatten)]
    track: TrackArgs,
    /// A video file, `camera:N`, a stream (rtsp://, rtmp://, http(s)://, tcp://, udp://,
    /// srt://), or an image, folder or glob.
    #[arg(long)]
    source: String,
    /// A camera or stream gone longer than this many seconds ends the run (with status 0
    /// when frames were processed).
    #[arg(long, default_value_t = 30.0)]
    reconnect_timeout: f64,
    /// How RTSP carries the video.
    #[arg(long, value_enum, default_value_t = RtspTransport::Tcp)]
    rtsp_transport: RtspTransport,
    /// Write the annotated video here (mp4, mkv, mov, avi or webm).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Write one JSON object per frame, one per line, to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// FocalModulation maps to lay over the saved video: `gates` (every gate level),
    /// `gate-level-0`, `gate-level-1`, …, `gate-global`, `modulator`. Several make a mosaic.
    #[arg(long, value_delimiter = ',', requires = "save")]
    overlay: Vec<String>,
    /// Opacity of the overlays, 0 to 1.
    #[arg(long, default_value_t = 0.5)]
    overlay_opacity: f32,
    /// Replay the source from its start each time it ends (with --max-frames to stop).
    #[arg(long = "loop")]
    looping: bool,
    /// Stop after this many frames.
    #[arg(long)]
    max_frames: Option<u64>,
    /// A second model on the same frames (often the same checkpoint with
    /// --compare-stock): its boxes go to `"detections_b"` in the JSON, and --save writes
    /// the two side by side, this one on the right.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// The --compare model keeps its checkpoint's own layer 9 (SPPF for stock YOLO11n).
    #[arg(long, requires = "compare")]
    compare_stock: bool,
    #[command(flatten)]
    count: CountArgs,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.overlay_opacity) {
        bail!("--overlay-opacity must be between 0 and 1");
    }
    if !(args.reconnect_timeout.is_finite() && args.reconnect_timeout > 0.0) {
        bail!("--reconnect-timeout must be a positive number of seconds");
    }
    let reconnect_timeout = Duration::from_secs_f64(args.reconnect_timeout);
    let regions = args.count.regions()?;
    let tracking = match args.track.config()? {
        None if !regions.is_empty() => {
            eprintln!("counting follows track IDs: --track is on");
            Some(args.track.settings()?)
        }
        tracking => tracking,
    };
    let spec = SourceSpec::parse(&args.source);
    // The source as it may be shown: a stream's password masked.
    let spec_name = spec.to_string();
    let device = ComputeDevice::select(args.model.device)?;
    let detector = args.model.load_detector(&device)?;
    let compared = match &args.compare {
        Some(path) => Some(args.model.load_other(path, args.compare_stock, &device)?),
        None => None,
    };
    for (which, detector) in [
        ("model", Some(&detector)),
        ("compared with", compared.as_ref()),
    ] {
        let Some(detector) = detector else { continue };
        eprintln!(
            "{which}: YOLO11{} ({} classes, layer 9 {}) on {}",
            detector.info().scale,
            detector.info().num_classes,
            detector.info().layer9,
            device.description
        );
        if !args.overlay.is_empty() && !detector.info().has_focal() {
            bail!("--overlay: a model's layer 9 is SPPF; there is no FocalModulation to show");
        }
    }

    let frames = Arc::new(HandOff::new(Delivery::EveryFrame {
        capacity: DECODE_AHEAD,
    }));
    let control = Arc::new(PlaybackControl::default());
    let (events_tx, events) = channel();
    let looping = args.looping;
    let options = OpenOptions {
        camera_mode: None,
        stream: StreamOptions {
            rtsp_transport: args.rtsp_transport,
            // A stream silent for the whole timeout is gone, whatever the default.
            stall_timeout: StreamOptions::default()
                .stall_timeout
                .min(reconnect_timeout),
        },
    };
    let progress = match args.max_frames {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    let reporter = progress.clone();
    let capture = spawn_capture(
        move |first_frame_within| {
            let source = spec.open(&options, first_frame_within)?;
            Ok(if looping {
                Box::new(Looping::new(source))
            } else {
                source
            })
        },
        frames.clone(),
        control.clone(),
        Arc::new(CaptureStats::default()),
        events_tx,
        CaptureOptions {
            real_time: false,
            hold_at_end: false,
            reconnect_timeout: Some(reconnect_timeout),
            live_latest_wins: true,
            notify: Box::new(move |event| {
                if let CaptureEvent::Reconnecting {
                    attempt,
                    retry_in,
                    reason,
                } = event
                {
                    reporter.suspend(|| {
                        eprintln!(
                            "{reason}: reconnecting (attempt {attempt}, in {:.1} s)",
                            retry_in.as_secs_f64()
                        );
                    });
                }
            }),
        },
    );
    // Ctrl-C (the way to end a camera run) stops the capture; what was processed is kept.
    let interrupted = control.clone();
    ctrlc::set_handler(move || interrupted.stop()).context("cannot install the Ctrl-C handler")?;
    let frame_rate = match first_opening(&events) {
        Some(CaptureEvent::Opened { frame_rate, .. }) => frame_rate.unwrap_or(25.0),
        Some(CaptureEvent::Failed(reason)) => bail!("{reason}"),
        Some(CaptureEvent::GaveUp { reason, gone_for }) => bail!(
            "{reason}; no frame came in {:.0} s (--reconnect-timeout)",
            gone_for.as_secs_f64()
        ),
        _ => bail!("{}: the source ended before its first frame", spec_name),
    };

    let mut run = Run::new(
        &args,
        &detector,
        compared.as_ref(),
        frame_rate,
        tracking,
        regions,
    )?;
    progress.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} frames {per_sec} {elapsed_precise} {msg}",
        )
        .expect("valid template"),
    );
    let mut outcome = Ok(());
    while args.max_frames.is_none_or(|n| run.frames_done < n) {
        let Some(frame) = frames.take() else { break };
        if let Err(err) = run.process(frame) {
            outcome = Err(err);
            break;
        }
        progress.inc(1);
    }
    control.stop();
    frames.close();
    let _ = capture.join();
    progress.finish_and_clear();
    let frames_done = run.frames_done;
    let counts = run.sides[0].counter.as_ref().map(SequenceCounter::counts);
    // What was written stays usable even when the source failed part-way; the first
    // failure is the one reported.
    let finished = run.finish();
    if let Some(counts) = counts {
        report_counts(&counts, &detector.info().class_names);
    }
    outcome?;
    finished?;
    let later: Vec<CaptureEvent> = events.try_iter().collect();
    let reconnections = later
        .iter()
        .filter(|e| matches!(e, CaptureEvent::Opened { .. }))
        .count();
    // How the source ended, if it did not simply run out: its own error, or the reconnect
    // timeout.
    let ending = later
        .into_iter()
        .rfind(|e| matches!(e, CaptureEvent::Failed(_) | CaptureEvent::GaveUp { .. }));
    if let Some(CaptureEvent::Failed(reason)) = &ending {
        bail!("{reason}");
    }
    let skipped = frames.dropped();
    let mut summary = format!("{frames_done} frames");
    if skipped > 0 {
        summary += &format!(", {skipped} skipped (the model was slower than the source)");
    }
    if reconnections > 0 {
        summary += &format!(", {reconnections} reconnections");
    }
    eprintln!("{summary}");
    if let Some(CaptureEvent::GaveUp { reason, gone_for }) = ending {
        eprintln!(
            "{spec_name}: gone for {:.1} s (--reconnect-timeout), the run ends ({reason})",
            gone_for.as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What the capture said before the first frame: the source opened, or why it did not.
/// Reconnection attempts before it opened are passed over (`notify` printed them).
fn first_opening(events: &Receiver<CaptureEvent>) -> Option<CaptureEvent> {
    events
        .iter()
        .find(|e| !matches!(e, CaptureEvent::Reconnecting { .. }))
}

/// One model of the run, its tracker and, for the first model, its counting.
struct Side<'a> {
    detector: &'a Detector,
    tracker: Option<SequenceTracker>,
    counter: Option<SequenceCounter>,
}

impl Side<'_> {
    /// The model on `frame` (with FocalModulation's maps when `taps`), and its tracker
    /// after it.
    fn infer(&mut self, frame: &Frame, nms: &NmsOptions, taps: bool) -> anyhow::Result<SideOutput> {
        // The last guard: a bug that panics on one frame ends the run with a message, and
        // what was written so far is kept.
        let result =
            catch_panic(|| self.detector.run(&frame.image, nms, taps)).map_err(|panic| {
                anyhow::anyhow!(
                    "the model failed on frame {} ({panic}); this is a bug, please report it",
                    frame.index
                )
            })??;
        let tracked = match self.tracker.as_mut() {
            Some(tracker) => Some(tracker.track(frame, &result.detections)?),
            None => None,
        };
        let counted = self
            .counter
            .as_mut()
            .zip(tracked.as_ref())
            .map(|(counter, tracked)| counter.count(frame, tracked));
        Ok(SideOutput {
            result,
            tracked,
            counted,
        })
    }
}

/// What one model made of a frame.
struct SideOutput {
    result: FrameResult,
    tracked: Option<TrackedFrame>,
    counted: Option<CountFrame>,
}

/// The outputs of one run and what has gone into them.
struct Run<'a> {
    args: &'a RunArgs,
    /// The model, then the one it is compared with.
    sides: Vec<Side<'a>>,
    frame_rate: f64,
    nms: NmsOptions,
    json: Option<BufWriter<File>>,
    video: Option<VideoWriter>,
    counts_csv: Option<CountsCsv<File>>,
    /// The frame size the counting regions were last checked against.
    regions_checked: Option<(u32, u32)>,
    frames_done: u64,
}

impl<'a> Run<'a> {
    fn new(
        args: &'a RunArgs,
        detector: &'a Detector,
        compared: Option<&'a Detector>,
        frame_rate: f64,
        tracking: Option<TrackerConfig>,
        regions: Vec<Region>,
    ) -> anyhow::Result<Self> {
        let json = match &args.json {
            Some(path) => {
                Some(BufWriter::new(File::create(path).with_context(|| {
                    format!("cannot create {}", path.display())
                })?))
            }
            None => None,
        };
        let counts_csv = args.count.csv()?;
        let counter = tracking
            .filter(|_| !regions.is_empty())
            .map(|config| SequenceCounter::new(regions, u64::from(config.buffer)));
        let sides = std::iter::once((detector, counter))
            .chain(compared.map(|detector| (detector, None)))
            .map(|(detector, counter)| Side {
                detector,
                tracker: tracking.map(SequenceTracker::new),
                counter,
            })
            .collect();
        Ok(Self {
            args,
            sides,
            frame_rate,
            nms: match tracking {
                Some(_) => args.nms.options_with_default_conf(TRACKING_CONF),
                None => args.nms.options(),
            },
            json,
            video: None,
            counts_csv,
            regions_checked: None,
            frames_done: 0,
        })
    }

    /// Refuse counting regions that leave the frame, checked whenever its size changes.
    fn check_regions(&mut self, frame: &Frame) -> anyhow::Result<()> {
        let size = frame.image.dimensions();
        if self.regions_checked == Some(size) {
            return Ok(());
        }
        if let Some(counter) = &self.sides[0].counter {
            for region in counter.regions() {
                region.check_inside(size.0, size.1)?;
            }
        }
        self.regions_checked = Some(size);
        Ok(())
    }

    fn process(&mut self, frame: Frame) -> anyhow::Result<()> {
        self.check_regions(&frame)?;
        let taps = !self.args.overlay.is_empty();
        let outputs = self
            .sides
            .iter_mut()
            .map(|side| side.infer(&frame, &self.nms, taps))
            .collect::<anyhow::Result<Vec<SideOutput>>>()?;
        let records_of = |side: &Side, output: &SideOutput| {
            let names = &side.detector.info().class_names;
            match &output.tracked {
                Some(tracked) => tracked_records(&tracked.objects, names),
                None => records(&output.result.detections, names),
            }
        };
        let names = &self.sides[0].detector.info().class_names;
        let counted = outputs[0].counted.as_ref();
        if let (Some(csv), Some(counted)) = (self.counts_csv.as_mut(), counted) {
            csv.write(&counted.crossings, names)?;
        }
        if let Some(out) = self.json.as_mut() {
            let (counts, crossings) = counted.map(|c| count_records(c, names)).unzip();
            let record = FrameRecord {
                frame: frame.index,
                pts: frame.pts,
                width: frame.image.width(),
                height: frame.image.height(),
                detections: records_of(&self.sides[0], &outputs[0]),
                detections_b: self
                    .sides
                    .get(1)
                    .zip(outputs.get(1))
                    .map(|(side, output)| records_of(side, output)),
                counts,
                crossings,
            };
            serde_json::to_writer(&mut *out, &record)?;
            out.write_all(b"\n")?;
        }
        if let Some(path) = &self.args.save {
            let halves = self
                .sides
                .iter()
                .zip(&outputs)
                .map(|(side, output)| self.picture(side, &frame, output))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let picture = side_by_side(&halves);
            let video = match self.video.as_mut() {
                Some(video) => video,
                None => self.video.insert(VideoWriter::create(
                    path,
                    picture.width(),
                    picture.height(),
                    self.frame_rate,
                )?),
            };
            video.write(&picture)?;
        }
        self.frames_done += 1;
        Ok(())
    }

    /// The frame with one model's boxes (or tracks) and the chosen overlays.
    fn picture(&self, side: &Side, frame: &Frame, output: &SideOutput) -> anyhow::Result<RgbImage> {
        let names = &side.detector.info().class_names;
        let mut annotated = frame.image.clone();
        match &output.tracked {
            Some(tracked) => draw_tracks(&mut annotated, &tracked.objects, names),
            None => draw_detections(&mut annotated, &output.result.detections, names),
        }
        if let (Some(counter), Some(counted)) = (&side.counter, &output.counted) {
            draw_regions(&mut annotated, counter.regions(), &counted.counts);
        }
        let Some(taps) = &output.result.taps else {
            return Ok(annotated);
        };
        let maps = heatmaps(taps).context("reading the attention maps")?;
        let chosen = select(&maps, &self.args.overlay);
        if chosen.is_empty() {
            let known: Vec<String> = maps.iter().map(|m| m.key()).collect();
            bail!(
                "--overlay {}: no such map; choose from gates, {}",
                self.args.overlay.join(","),
                known.join(", ")
            );
        }
        let tiles: Vec<(String, RgbImage)> = chosen
            .iter()
            .map(|map| {
                let tile = overlay(
                    &annotated,
                    map,
                    &output.result.letterbox,
                    Colormap::Turbo,
                    self.args.overlay_opacity,
                );
                (map.label.clone(), tile)
            })
            .collect();
        Ok(mosaic(&tiles))
    }

    fn finish(self) -> anyhow::Result<()> {
        if let Some(mut json) = self.json {
            json.flush()?;
        }
        if let Some(video) = self.video {
            video.finish()?;
        }
        Ok(())
    }
}

/// Pictures of one height left to right (one picture as it is).
fn side_by_side(pictures: &[RgbImage]) -> RgbImage {
    let width = pictures.iter().map(RgbImage::width).sum();
    let height = pictures.iter().map(RgbImage::height).max().unwrap_or(0);
    let mut out = RgbImage::new(width, height);
    let mut x = 0;
    for picture in pictures {
        image::imageops::replace(&mut out, picture, i64::from(x), 0);
        x += picture.width();
    }
    out
}
