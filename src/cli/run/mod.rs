//! `focalyolo run`: a video, stream, camera or image sequence through the model without a
//! window. From a file, every decoded frame gets exactly one JSON line and one output video
//! frame: the capture thread waits for the model rather than dropping frames. A live source
//! (camera, stream) is never made to wait: the model takes the newest frame each time, the
//! JSON lines keep the decoded frames' indices (gaps are the frames skipped), and a lost
//! source is reconnected until `--reconnect-timeout`. With `--track`, ByteTrack gives
//! each object an ID, in the JSON and on the saved video; `--count-line`/`--count-zone`
//! count the tracks crossing lines and entering zones.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use focalyolo::compute::device::ComputeDevice;
use focalyolo::count::SequenceCounter;
use focalyolo::pipeline::{
    CaptureEvent, CaptureOptions, CaptureStats, Delivery, HandOff, PlaybackControl, spawn_capture,
};
use focalyolo::source::{Looping, OpenOptions, RtspTransport, SourceSpec, StreamOptions};
use indicatif::{ProgressBar, ProgressStyle};

use super::count::{CountArgs, report_counts};
use super::{ModelArgs, NmsArgs, TrackArgs};
use process::Run;

mod process;

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
            "{which}: {} ({}, layer 9 {}, {}) on {}",
            detector.info().name(),
            detector.info().classes(),
            detector.info().layer9,
            detector.info().head(args.nms.no_nms()),
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
