//! The capture thread: reads a source, paces file frames to their timestamps, obeys
//! play/pause/step/seek, and reopens a live source that failed.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::handoff::{CloseOnDrop, HandOff};
use crate::source::{Frame, FrameSource, SourceError};

/// Play, pause, step and seek, set from the UI and obeyed by the capture thread.
#[derive(Default)]
pub struct PlaybackControl {
    paused: AtomicBool,
    steps: AtomicU32,
    seek_to: Mutex<Option<f64>>,
    stop: AtomicBool,
}

impl PlaybackControl {
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
        self.steps.store(0, Ordering::Relaxed);
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// While paused, let one more frame through (presses do not pile up).
    pub fn step(&self) {
        self.steps.store(1, Ordering::Relaxed);
    }

    pub fn seek(&self, seconds: f64) {
        *self.seek_to.lock().unwrap_or_else(|e| e.into_inner()) = Some(seconds);
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn take_seek(&self) -> Option<f64> {
        self.seek_to
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn take_step(&self) -> bool {
        self.steps
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// What the capture thread tells its owner, besides frames.
#[derive(Debug, Clone, PartialEq)]
pub enum CaptureEvent {
    Opened {
        frame_rate: Option<f64>,
        duration: Option<f64>,
        live: bool,
    },
    /// The source failed; a live source is retried every second until it comes back.
    Failed(String),
    /// A finite source reached its end.
    Ended,
}

/// Frames read from the source, and how long reading one took.
#[derive(Default)]
pub struct CaptureStats {
    pub captured: AtomicU64,
    /// Microseconds the last frame took to read and decode.
    pub last_read_us: AtomicU64,
}

/// How often a lost live source is tried again, and how finely waits notice a stop.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
const WAIT_TICK: Duration = Duration::from_millis(10);

/// Options of a capture thread.
pub struct CaptureOptions {
    /// Show file frames at their presentation times (the app), or as fast as they decode.
    pub real_time: bool,
    /// At the end of a file, or after it failed part-way, wait for a seek (the app's
    /// replay and loop) instead of ending.
    pub hold_at_end: bool,
    /// Called after each [`CaptureEvent`] is sent (the app asks for a repaint there).
    pub notify: Box<dyn Fn() + Send>,
}

/// Start a capture thread. `open` runs on that thread (a camera handle may not move
/// between threads), and again to reopen a live source that failed.
pub fn spawn_capture<F>(
    open: F,
    frames: Arc<HandOff<Frame>>,
    control: Arc<PlaybackControl>,
    stats: Arc<CaptureStats>,
    events: Sender<CaptureEvent>,
    options: CaptureOptions,
) -> JoinHandle<()>
where
    F: Fn() -> Result<Box<dyn FrameSource>, SourceError> + Send + 'static,
{
    std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            let _close = CloseOnDrop(&frames);
            let capture = Capture {
                frames: &frames,
                control: &control,
                stats: &stats,
                events: &events,
                options: &options,
            };
            capture.run(&open);
        })
        .expect("spawning the capture thread")
}

struct Capture<'a> {
    frames: &'a HandOff<Frame>,
    control: &'a PlaybackControl,
    stats: &'a CaptureStats,
    events: &'a Sender<CaptureEvent>,
    options: &'a CaptureOptions,
}

/// Ties presentation times to the wall clock from one frame on.
struct Clock {
    wall: Instant,
    pts: f64,
}

impl Capture<'_> {
    fn report(&self, event: CaptureEvent) {
        let _ = self.events.send(event);
        (self.options.notify)();
    }

    fn run(&self, open: &dyn Fn() -> Result<Box<dyn FrameSource>, SourceError>) {
        loop {
            let mut source = match open() {
                Ok(source) => source,
                Err(err) => {
                    self.report(CaptureEvent::Failed(err.to_string()));
                    return;
                }
            };
            let live = source.is_live();
            self.report(CaptureEvent::Opened {
                frame_rate: source.frame_rate(),
                duration: source.duration(),
                live,
            });
            loop {
                match self.play(source.as_mut()) {
                    Ok(()) => return,
                    Err(err) => self.report(CaptureEvent::Failed(err.to_string())),
                }
                // A damaged file keeps what it had: the app can still seek back into it.
                if live || !self.options.hold_at_end || !self.idle_until_seek() {
                    break;
                }
            }
            drop(source);
            if !live || !self.wait_for_retry(open) {
                return;
            }
        }
    }

    /// After a live source failed: wait until it opens again (true) or a stop (false).
    fn wait_for_retry(&self, open: &dyn Fn() -> Result<Box<dyn FrameSource>, SourceError>) -> bool {
        loop {
            let deadline = Instant::now() + RETRY_INTERVAL;
            while Instant::now() < deadline {
                if self.control.stopped() {
                    return false;
                }
                std::thread::sleep(WAIT_TICK);
            }
            // Probe without keeping the handle: `run` reopens it for real.
            if open().is_ok() {
                return true;
            }
        }
    }

    /// Read frames until the source ends, fails, or the owner stops the thread.
    fn play(&self, source: &mut dyn FrameSource) -> Result<(), SourceError> {
        let mut clock: Option<Clock> = None;
        // A frame read but not yet due when playback paused: it is the next one shown.
        let mut pending: Option<Frame> = None;
        loop {
            if self.control.stopped() {
                return Ok(());
            }
            if let Some(seconds) = self.control.take_seek() {
                source.seek(seconds)?;
                clock = None;
                pending = None;
            }
            let stepping = self.control.is_paused();
            if stepping && !self.control.take_step() {
                clock = None;
                std::thread::sleep(WAIT_TICK);
                continue;
            }
            let frame = match pending.take() {
                Some(frame) => frame,
                None => {
                    let started = Instant::now();
                    let Some(frame) = source.next_frame()? else {
                        self.report(CaptureEvent::Ended);
                        if !self.options.hold_at_end || !self.idle_until_seek() {
                            return Ok(());
                        }
                        continue;
                    };
                    self.stats
                        .last_read_us
                        .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    frame
                }
            };
            let paced = self.options.real_time && !stepping && !source.is_live();
            if paced && !self.wait_until_due(&mut clock, frame.pts) {
                if !self.seek_pending() {
                    pending = Some(frame);
                }
                continue;
            }
            self.stats.captured.fetch_add(1, Ordering::Relaxed);
            if !self.frames.put(frame) {
                return Ok(());
            }
        }
    }

    /// At the end of a file: wait for a seek (true) or a stop (false).
    fn idle_until_seek(&self) -> bool {
        loop {
            if self.control.stopped() || self.frames.is_closed() {
                return false;
            }
            if self.seek_pending() {
                return true;
            }
            std::thread::sleep(WAIT_TICK);
        }
    }

    /// Sleep until the frame at `pts` is due. False when a seek, pause or stop came first:
    /// the frame is then skipped.
    fn wait_until_due(&self, clock: &mut Option<Clock>, pts: f64) -> bool {
        let anchor = clock.get_or_insert_with(|| Clock {
            wall: Instant::now(),
            pts,
        });
        let due = anchor.wall + Duration::from_secs_f64((pts - anchor.pts).max(0.0));
        loop {
            let now = Instant::now();
            if now >= due {
                return true;
            }
            if self.control.stopped() || self.control.is_paused() || self.seek_pending() {
                return false;
            }
            std::thread::sleep((due - now).min(WAIT_TICK));
        }
    }

    fn seek_pending(&self) -> bool {
        self.control
            .seek_to
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}
