//! One opened source in the app: its capture thread, the inference thread (model, then
//! tracker), and the latest-frame-wins hand-offs between them and the UI.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::count::{CountFrame, Region, SequenceCounter};
use crate::inference::detector::{Detector, InputSize, StageTimes};
use crate::inference::postprocess::{Detection, NmsOptions};
use crate::inference::preprocess::Letterbox;
use crate::output::attention_maps::{Heatmap, heatmaps};
use crate::output::report::CountsCsv;
use crate::pipeline::{
    CaptureEvent, CaptureOptions, CaptureStats, Delivery, HandOff, PlaybackControl, catch_panic,
    spawn_capture, spawn_worker,
};
use crate::source::{Frame, OpenOptions, SourceSpec};
use crate::track::{SequenceTracker, TrackError, TrackedFrame, TrackerConfig};

/// The model the inference thread uses; swapped in when the UI loads another.
pub type ModelSlot = Arc<RwLock<Option<Arc<Detector>>>>;

/// What the inference thread reads before each frame.
#[derive(Debug, Clone)]
pub struct InferenceKnobs {
    pub nms: NmsOptions,
    pub input: InputSize,
    /// Whether to keep FocalModulation's maps (the panel or an overlay shows them).
    pub taps: bool,
    /// Follow objects across frames with these settings.
    pub track: Option<TrackerConfig>,
    /// Counting regions per source size (`Settings::regions`), used while tracking.
    pub regions: BTreeMap<String, Vec<Region>>,
}

/// A frame and everything the model made of it: the boxes belong to this frame.
pub struct Processed {
    pub frame: Frame,
    pub detections: Vec<Detection>,
    pub letterbox: Option<Letterbox>,
    pub maps: Vec<Heatmap>,
    /// The tracks in this frame, with tracking on.
    pub tracks: Option<TrackedFrame>,
    /// The counts so far and this frame's crossings, with tracking on and regions set.
    pub counted: Option<CountFrame>,
    pub times: StageTimes,
    pub error: Option<String>,
    /// What the model it is compared with made of the same frame.
    pub compared: Option<ComparedRun>,
}

/// The second model's boxes on a frame, when one runs beside the first.
pub struct ComparedRun {
    pub detections: Vec<Detection>,
    pub times: StageTimes,
    pub error: Option<String>,
}

/// Where the source stands, for the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceState {
    Opening,
    Playing,
    /// A live source was lost (or not reached yet); the last frame stays on screen.
    Reconnecting {
        attempt: u32,
        next_at: Instant,
        reason: String,
    },
    Ended,
    Failed(String),
}

pub struct Session {
    pub spec: SourceSpec,
    pub control: Arc<PlaybackControl>,
    pub state: SourceState,
    pub frame_rate: Option<f64>,
    pub duration: Option<f64>,
    pub live: bool,
    pub capture_stats: Arc<CaptureStats>,
    frames: Arc<HandOff<Frame>>,
    results: Arc<HandOff<Processed>>,
    /// Frames the worker took, with or without a model.
    processed: Arc<AtomicU64>,
    /// Of those, the ones no model ran on (none loaded yet, or it failed to load).
    without_model: Arc<AtomicU64>,
    events: Receiver<CaptureEvent>,
    capture: Option<JoinHandle<()>>,
    /// Counting, on the inference thread after the tracker; here for reset and export.
    counter: Arc<Mutex<SequenceCounter>>,
}

/// How long closing a source waits for its capture thread to let go of the device (a
/// camera must be free before it is opened again).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

impl Session {
    /// Open `spec` on a new capture thread and run `model` on its frames, and `compared`
    /// (when it holds one) on the same frames after it.
    pub fn start(
        spec: SourceSpec,
        options: OpenOptions,
        model: ModelSlot,
        compared: ModelSlot,
        knobs: Arc<Mutex<InferenceKnobs>>,
        repaint: impl Fn() + Clone + Send + 'static,
    ) -> Self {
        let frames = Arc::new(HandOff::new(Delivery::LatestWins));
        let results = Arc::new(HandOff::new(Delivery::LatestWins));
        let control = Arc::new(PlaybackControl::default());
        let capture_stats = Arc::new(CaptureStats::default());
        let processed = Arc::new(AtomicU64::new(0));
        let without_model = Arc::new(AtomicU64::new(0));
        let no_model = without_model.clone();
        let (events_tx, events) = channel();
        let opened = spec.clone();
        let capture = spawn_capture(
            move |first_frame_within| opened.open(&options, first_frame_within),
            frames.clone(),
            control.clone(),
            capture_stats.clone(),
            events_tx,
            CaptureOptions {
                real_time: true,
                hold_at_end: true,
                // A camera or stream is worth waiting for: the app tries until told otherwise.
                reconnect_timeout: None,
                live_latest_wins: true,
                notify: Box::new({
                    let repaint = repaint.clone();
                    move |_| repaint()
                }),
            },
        );
        // The tracker lives on the inference thread and sees every frame the model does, and
        // so does the counter after it.
        let mut tracker = None;
        let counter = Arc::new(Mutex::new(SequenceCounter::new(Vec::new(), 0)));
        let counting = counter.clone();
        spawn_worker(
            frames.clone(),
            results.clone(),
            processed.clone(),
            move |frame| {
                // One reading of the knobs for both models: their boxes compare like for like.
                let knobs = knobs.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let mut processed = infer(frame, &model, &knobs, &mut tracker, &no_model);
                processed.counted = count(&processed, &knobs, &counting);
                processed.compared = infer_compared(&processed.frame, &compared, &knobs);
                processed
            },
            repaint,
        );
        Self {
            spec,
            control,
            state: SourceState::Opening,
            frame_rate: None,
            duration: None,
            live: false,
            capture_stats,
            frames,
            results,
            processed,
            without_model,
            events,
            capture: Some(capture),
            counter,
        }
    }

    /// Every count to zero and the crossings' log emptied, from the next frame on.
    pub fn reset_counts(&self) {
        self.counter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reset();
    }

    /// Write every crossing since counting (re)started to a CSV at `path`; the number of
    /// rows.
    pub fn export_counts(&self, path: &Path, names: &[String]) -> Result<usize, csv::Error> {
        let events = self
            .counter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .log()
            .to_vec();
        CountsCsv::create(path)?.write(&events, names)?;
        Ok(events.len())
    }

    /// Take in what the capture thread reported; the newest processed frame, if any.
    pub fn poll(&mut self) -> Option<Processed> {
        for event in self.events.try_iter() {
            match event {
                CaptureEvent::Opened {
                    frame_rate,
                    duration,
                    live,
                } => {
                    self.frame_rate = frame_rate;
                    self.duration = duration;
                    self.live = live;
                    self.state = SourceState::Playing;
                }
                CaptureEvent::Reconnecting {
                    attempt,
                    retry_in,
                    reason,
                } => {
                    self.state = SourceState::Reconnecting {
                        attempt,
                        next_at: Instant::now() + retry_in,
                        reason,
                    }
                }
                CaptureEvent::Failed(reason) => self.state = SourceState::Failed(reason),
                CaptureEvent::GaveUp { reason, gone_for } => {
                    self.state = SourceState::Failed(format!(
                        "{reason} (gone for {:.0} s)",
                        gone_for.as_secs_f64()
                    ));
                }
                CaptureEvent::Ended => self.state = SourceState::Ended,
            }
        }
        // The inference thread only ends early when it panicked (out of memory, say).
        if self.results.is_closed() && !matches!(self.state, SourceState::Failed(_)) {
            self.state = SourceState::Failed(
                "the inference thread stopped unexpectedly (see the log on stderr)".into(),
            );
        }
        self.results.try_take()
    }

    /// Continue from `seconds` (a replay or loop after the end, too).
    pub fn seek(&mut self, seconds: f64) {
        self.control.seek(seconds);
        if self.state == SourceState::Ended {
            self.state = SourceState::Playing;
        }
    }

    /// Run the model again on `frame` (settings changed while paused).
    pub fn reprocess(&self, frame: Frame) {
        self.frames.put(frame);
    }

    pub fn captured(&self) -> u64 {
        self.capture_stats.captured.load(Ordering::Relaxed)
    }

    /// Frames the model ran on.
    pub fn inferred(&self) -> u64 {
        // Read in this order: a frame is counted without a model before it is processed.
        let without_model = self.shown_without_model();
        self.processed
            .load(Ordering::Relaxed)
            .saturating_sub(without_model)
    }

    /// Frames passed on with no model to run (none loaded, or it failed to load).
    pub fn shown_without_model(&self) -> u64 {
        self.without_model.load(Ordering::Relaxed)
    }

    /// Captured frames replaced before the model got to them.
    pub fn dropped_before_inference(&self) -> u64 {
        self.frames.dropped()
    }

    /// Processed frames replaced before the screen showed them.
    pub fn dropped_before_display(&self) -> u64 {
        self.results.dropped()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The threads notice and end on their own (the inference thread after its current
        // frame), so closing a source never waits on the model; it waits, briefly, for the
        // capture thread to release its camera or ffmpeg.
        self.control.stop();
        self.frames.close();
        self.results.close();
        let deadline = Instant::now() + RELEASE_TIMEOUT;
        if let Some(capture) = self.capture.take() {
            while !capture.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

fn infer(
    frame: Frame,
    model: &ModelSlot,
    knobs: &InferenceKnobs,
    tracker: &mut Option<SequenceTracker>,
    without_model: &AtomicU64,
) -> Processed {
    let detector = model.read().unwrap_or_else(|e| e.into_inner()).clone();
    let mut processed = Processed {
        frame,
        detections: Vec::new(),
        letterbox: None,
        maps: Vec::new(),
        tracks: None,
        counted: None,
        times: StageTimes::default(),
        error: None,
        compared: None,
    };
    let Some(detector) = detector else {
        without_model.fetch_add(1, Ordering::Relaxed);
        return processed;
    };
    let taps = knobs.taps && detector.info().has_focal();
    let run =
        catch_panic(|| detector.run_sized(&processed.frame.image, knobs.input, &knobs.nms, taps));
    let run = match run {
        Ok(run) => run,
        Err(panic) => {
            processed.error = Some(format!(
                "the model failed on this frame ({panic}); this is a bug, please report it"
            ));
            return processed;
        }
    };
    match run {
        Ok(result) => {
            match result.taps.as_ref().map(heatmaps).transpose() {
                Ok(maps) => processed.maps = maps.unwrap_or_default(),
                Err(err) => processed.error = Some(format!("reading the attention maps: {err}")),
            }
            processed.detections = result.detections;
            processed.letterbox = Some(result.letterbox);
            processed.times = result.times;
            match track(
                tracker,
                knobs.track,
                &processed.frame,
                &processed.detections,
            ) {
                Ok(tracks) => processed.tracks = tracks,
                Err(err) => processed.error = Some(err.to_string()),
            }
        }
        Err(err) => processed.error = Some(err.to_string()),
    }
    processed
}

/// The second model's boxes on `frame`, without maps or tracks, when there is one.
fn infer_compared(frame: &Frame, model: &ModelSlot, knobs: &InferenceKnobs) -> Option<ComparedRun> {
    let detector = model.read().unwrap_or_else(|e| e.into_inner()).clone()?;
    let run = catch_panic(|| detector.run_sized(&frame.image, knobs.input, &knobs.nms, false));
    let failed = |error: String| ComparedRun {
        detections: Vec::new(),
        times: StageTimes::default(),
        error: Some(error),
    };
    Some(match run {
        Ok(Ok(result)) => ComparedRun {
            detections: result.detections,
            times: result.times,
            error: None,
        },
        Ok(Err(err)) => failed(err.to_string()),
        Err(panic) => failed(format!(
            "the compared model failed on this frame ({panic}); this is a bug, please report it"
        )),
    })
}

/// The counts after `processed`, when it was tracked and its source size has regions. The
/// counter follows every tracked frame, regions or not, so a region added mid-sequence
/// counts from where each track was last seen.
fn count(
    processed: &Processed,
    knobs: &InferenceKnobs,
    counter: &Mutex<SequenceCounter>,
) -> Option<CountFrame> {
    let (tracks, config) = (processed.tracks.as_ref()?, knobs.track?);
    let (width, height) = processed.frame.image.dimensions();
    let regions = knobs
        .regions
        .get(&super::settings::size_key(width, height))
        .map_or(&[][..], Vec::as_slice);
    let mut counter = counter.lock().unwrap_or_else(|e| e.into_inner());
    counter.set_regions(regions, u64::from(config.buffer));
    let counted = counter.count(&processed.frame, tracks);
    (!regions.is_empty()).then_some(counted)
}

/// The tracks in `frame` when tracking is on; turning it off forgets them.
fn track(
    tracker: &mut Option<SequenceTracker>,
    config: Option<TrackerConfig>,
    frame: &Frame,
    detections: &[Detection],
) -> Result<Option<TrackedFrame>, TrackError> {
    let Some(config) = config else {
        *tracker = None;
        return Ok(None);
    };
    let tracker = tracker.get_or_insert_with(|| SequenceTracker::new(config));
    tracker.set_config(config);
    tracker.track(frame, detections).map(Some)
}
