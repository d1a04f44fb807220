//! The capture thread: reads a source, paces file frames to their timestamps, obeys
//! play/pause/step/seek, and reconnects a live source that failed (with backoff, for as
//! long as its owner allows), numbering frames on across connections.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::handoff::{CloseOnDrop, Delivery, HandOff};
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
    /// A live source failed or could not be reached: attempt `attempt` to reach it again
    /// starts in `retry_in`.
    Reconnecting {
        attempt: u32,
        retry_in: Duration,
        reason: String,
    },
    /// The source failed for good.
    Failed(String),
    /// A live source stayed away longer than [`CaptureOptions::reconnect_timeout`]; the
    /// capture has ended.
    GaveUp { reason: String, gone_for: Duration },
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

/// The wait before the first attempt to reach a lost source again; each failed attempt
/// doubles it, up to the longest.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(5);
/// The least time an attempt to open a stream gets for its first frame.
const SHORTEST_ATTEMPT: Duration = Duration::from_secs(1);
/// How finely waits notice a stop.
const WAIT_TICK: Duration = Duration::from_millis(10);

/// The wait before attempt `attempt` (1, 2, …) to reach a lost source again.
fn retry_delay(attempt: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(LONGEST_RETRY)
}

/// Opens the source: `first_frame_within` bounds how long a stream may take to give its
/// first frame (its own stall timeout when `None`).
pub type Opener = dyn Fn(Option<Duration>) -> Result<Box<dyn FrameSource>, SourceError>;

/// Options of a capture thread.
pub struct CaptureOptions {
    /// Show file frames at their presentation times (the app), or as fast as they decode.
    pub real_time: bool,
    /// At the end of a file, or after it failed part-way, wait for a seek (the app's
    /// replay and loop) instead of ending.
    pub hold_at_end: bool,
    /// A live source gone longer than this (no frame since) ends the capture with
    /// [`CaptureEvent::GaveUp`]; `None` keeps trying for as long as the owner waits.
    pub reconnect_timeout: Option<Duration>,
    /// Hand a live source's frames on newest-wins, whatever the hand-off was made with: a
    /// live source is never made to wait for the model, which would build up latency.
    pub live_latest_wins: bool,
    /// Called with each [`CaptureEvent`] after it is sent (the app asks for a repaint
    /// there, `run` prints reconnections).
    pub notify: Box<dyn Fn(&CaptureEvent) + Send>,
}

/// Start a capture thread. `open` runs on that thread (a camera handle may not move
/// between threads), and again to reconnect a live source that failed.
pub fn spawn_capture<F>(
    open: F,
    frames: Arc<HandOff<Frame>>,
    control: Arc<PlaybackControl>,
    stats: Arc<CaptureStats>,
    events: Sender<CaptureEvent>,
    options: CaptureOptions,
) -> JoinHandle<()>
where
    F: Fn(Option<Duration>) -> Result<Box<dyn FrameSource>, SourceError> + Send + 'static,
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
                last_frame: Cell::new(Instant::now()),
                renumber: Cell::new(Renumber::default()),
                last_out: Cell::new(None),
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
    /// When the last frame was read (or the capture started): a lost source is gone since.
    last_frame: Cell<Instant>,
    /// Added to each frame of the current connection.
    renumber: Cell<Renumber>,
    /// Position and wall time of the last frame handed on.
    last_out: Cell<Option<(Position, Instant)>>,
}

/// Where a frame stands in the sequence handed on.
#[derive(Debug, Clone, Copy, Default)]
struct Position {
    index: u64,
    pts: f64,
    segment: u64,
}

/// What makes a new connection's frames follow the last one's: indices and times count
/// on (the time across the outage included), and a new segment starts, so a tracker
/// starts over.
#[derive(Debug, Clone, Copy, Default)]
struct Renumber(Position);

/// Ties presentation times to the wall clock from one frame on.
struct Clock {
    wall: Instant,
    pts: f64,
}

impl Capture<'_> {
    fn report(&self, event: CaptureEvent) {
        (self.options.notify)(&event);
        let _ = self.events.send(event);
    }

    fn run(&self, open: &Opener) {
        // Attempts to reach the source again since it was lost; `None` while it is there.
        let mut attempts: Option<u32> = None;
        loop {
            if self.control.stopped() {
                return;
            }
            // The source has been away since its last frame (or the start); the last attempt
            // still gets long enough to say why it fails.
            let left = self.options.reconnect_timeout.map(|timeout| {
                timeout
                    .saturating_sub(self.last_frame.get().elapsed())
                    .max(SHORTEST_ATTEMPT)
            });
            let mut source = match open(left) {
                Ok(source) => source,
                Err(err) if attempts.is_some() || err.is_transient() => {
                    if !self.wait_to_retry(attempts.get_or_insert(0), err.to_string()) {
                        return;
                    }
                    continue;
                }
                Err(err) => {
                    self.report(CaptureEvent::Failed(err.to_string()));
                    return;
                }
            };
            let live = source.is_live();
            if attempts.take().is_some() {
                self.follow_on();
            }
            if live && self.options.live_latest_wins {
                self.frames.set_delivery(Delivery::LatestWins);
            }
            self.report(CaptureEvent::Opened {
                frame_rate: source.frame_rate(),
                duration: source.duration(),
                live,
            });
            loop {
                match self.play(source.as_mut()) {
                    Ok(()) => return,
                    Err(err) if live => {
                        drop(source);
                        if !self.wait_to_retry(attempts.insert(0), err.to_string()) {
                            return;
                        }
                        break;
                    }
                    Err(err) => self.report(CaptureEvent::Failed(err.to_string())),
                }
                // A damaged file keeps what it had: the app can still seek back into it.
                if !self.options.hold_at_end || !self.idle_until_seek() {
                    return;
                }
            }
        }
    }

    /// After a live source failed with `reason` (`attempts` made since it was lost): report
    /// the next attempt and wait for it (true), or give up when the source has been away too
    /// long, since its last frame, or the owner stopped (false).
    fn wait_to_retry(&self, attempts: &mut u32, reason: String) -> bool {
        let gone_for = self.last_frame.get().elapsed();
        let left = self
            .options
            .reconnect_timeout
            .map(|timeout| timeout.saturating_sub(gone_for));
        if left == Some(Duration::ZERO) {
            self.report(CaptureEvent::GaveUp { reason, gone_for });
            return false;
        }
        *attempts += 1;
        let retry_in = retry_delay(*attempts).min(left.unwrap_or(Duration::MAX));
        self.report(CaptureEvent::Reconnecting {
            attempt: *attempts,
            retry_in,
            reason,
        });
        let deadline = Instant::now() + retry_in;
        while Instant::now() < deadline {
            if self.control.stopped() || self.frames.is_closed() {
                return false;
            }
            std::thread::sleep(WAIT_TICK);
        }
        true
    }

    /// A new connection: its frames follow the last one handed on.
    fn follow_on(&self) {
        if let Some((last, at)) = self.last_out.get() {
            self.renumber.set(Renumber(Position {
                index: last.index + 1,
                pts: last.pts + at.elapsed().as_secs_f64(),
                segment: last.segment + 1,
            }));
        }
    }

    /// Hand `frame` on, numbered after the frames of earlier connections. False when the
    /// consumer has gone.
    fn hand_on(&self, mut frame: Frame) -> bool {
        let Renumber(offset) = self.renumber.get();
        frame.index += offset.index;
        frame.pts += offset.pts;
        frame.segment += offset.segment;
        let position = Position {
            index: frame.index,
            pts: frame.pts,
            segment: frame.segment,
        };
        self.last_out.set(Some((position, Instant::now())));
        self.stats.captured.fetch_add(1, Ordering::Relaxed);
        self.frames.put(frame)
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
                if source.is_live() {
                    // A live source is read on while paused and its frames let go: what
                    // it sent meanwhile must not wait in a pipe and come late on Play.
                    source.next_frame()?;
                    self.last_frame.set(Instant::now());
                } else {
                    std::thread::sleep(WAIT_TICK);
                }
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
                    self.last_frame.set(Instant::now());
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
            if !self.hand_on(frame) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failed_attempt_doubles_the_wait_up_to_five_seconds() {
        let waits: Vec<Duration> = (1..=8).map(retry_delay).collect();
        let ms = Duration::from_millis;
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 5000, 5000, 5000, 5000].map(ms)
        );
        // A camera gone for days retries every 5 s, the attempt count never overflowing.
        assert_eq!(retry_delay(u32::MAX), LONGEST_RETRY);
    }
}
