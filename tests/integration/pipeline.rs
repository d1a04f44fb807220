//! The live pipeline with a source far faster than the model: the queue between them never
//! holds more than one frame, every frame not processed is counted as dropped, and the
//! frame being processed is always one of the newest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use focalyolo::pipeline::{
    CaptureEvent, CaptureOptions, CaptureStats, Delivery, HandOff, PlaybackControl, spawn_capture,
    spawn_worker,
};
use focalyolo::source::{Frame, FrameSource, SourceError};
use image::RgbImage;
use std::sync::atomic::AtomicU32;

use crate::common::{HangGuard, load_scaled};

/// Frames the slow model processes before the run stops: enough that a queue in place of
/// latest-frame-wins would have aged the last by 40 × 20 ms, 0.8 s.
const PROCESSED: u64 = 40;

/// A camera at 1000 fps whose frames carry the time they were captured as their pts.
struct Synthetic {
    next: u64,
    clock: Instant,
}

impl FrameSource for Synthetic {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        std::thread::sleep(Duration::from_millis(1));
        let index = self.next;
        self.next += 1;
        Ok(Some(Frame {
            index,
            pts: self.clock.elapsed().as_secs_f64(),
            segment: 0,
            image: RgbImage::new(64, 48),
        }))
    }

    fn frame_rate(&self) -> Option<f64> {
        Some(1000.0)
    }

    fn is_live(&self) -> bool {
        true
    }

    fn seek(&mut self, _seconds: f64) -> Result<(), SourceError> {
        Ok(())
    }
}

#[test]
fn a_slow_model_sees_only_the_newest_frame_and_drops_are_counted() {
    let frames = Arc::new(HandOff::new(Delivery::LatestWins));
    let results = Arc::new(HandOff::new(Delivery::LatestWins));
    let control = Arc::new(PlaybackControl::default());
    let stats = Arc::new(CaptureStats::default());
    let inferred = Arc::new(AtomicU64::new(0));
    let (events, _events) = channel();
    let clock = Instant::now();
    let capture = spawn_capture(
        move |_| Ok(Box::new(Synthetic { next: 0, clock }) as Box<dyn FrameSource>),
        frames.clone(),
        control.clone(),
        stats.clone(),
        events,
        CaptureOptions {
            real_time: true,
            hold_at_end: false,
            reconnect_timeout: None,
            live_latest_wins: true,
            notify: Box::new(|_| {}),
        },
    );
    // A stand-in for a model that takes 20 ms a frame; it records how old each frame was
    // when it got it.
    let ages = Arc::new(Mutex::new(Vec::new()));
    let worker_ages = ages.clone();
    let worker = spawn_worker(
        frames.clone(),
        results.clone(),
        inferred.clone(),
        move |frame: Frame| {
            let age = clock.elapsed().as_secs_f64() - frame.pts;
            worker_ages.lock().unwrap().push(age);
            std::thread::sleep(Duration::from_millis(20));
            frame.index
        },
        || {},
    );
    // Until the model has processed [`PROCESSED`] frames (about 0.8 s on an idle machine):
    // a guard against a hang, not a speed check.
    let mut shown = Vec::new();
    let mut guard = HangGuard::new(Duration::from_secs(60));
    let waiting_for = format!("{PROCESSED} frames processed");
    while inferred.load(Ordering::SeqCst) < PROCESSED {
        if let Some(index) = results.try_take() {
            shown.push(index);
        }
        guard.check(&waiting_for);
        std::thread::sleep(Duration::from_millis(2));
    }
    control.stop();
    frames.close();
    results.close();
    capture.join().unwrap();
    worker.join().unwrap();

    let captured = stats.captured.load(Ordering::SeqCst);
    let processed = inferred.load(Ordering::SeqCst);
    assert_eq!(frames.peak_len(), 1, "the queue held more than one frame");
    // The premise: a source far faster than the model (1 ms a frame against 20), so that
    // frames are dropped. Twice as fast still holds with every wake-up late by 15 ms.
    assert!(
        frames.dropped() > 0 && captured > 2 * processed,
        "the source was not faster: {captured} captured, {processed} processed, {} dropped",
        frames.dropped()
    );
    // Every captured frame was processed, dropped, or is the one left in the slot.
    let unaccounted = captured - processed - frames.dropped();
    assert!(
        unaccounted <= 1,
        "{unaccounted} frames neither processed nor dropped"
    );
    // Latency does not build up: a frame is picked up about as soon as the model is free,
    // at most the source's 1 ms interval and a thread's wake-up old (a queue would make the
    // ages grow by ~20 ms a frame, to 0.8 s by the last). The bounds hold on an idle
    // machine and stretch with its load, as a `HangGuard` does; even at a tenth of a core
    // per task they stay below what a queue gives.
    let mut ages = ages.lock().unwrap().clone();
    ages.sort_by(f64::total_cmp);
    let (median, worst) = (ages[ages.len() / 2], ages[ages.len() - 1]);
    let median_limit = load_scaled(Duration::from_millis(5));
    let worst_limit = load_scaled(Duration::from_millis(50));
    assert!(
        median < median_limit.as_secs_f64(),
        "median frame age at pickup {median:.4} s, over {median_limit:.3?} at this load"
    );
    assert!(
        worst < worst_limit.as_secs_f64(),
        "oldest frame at pickup {worst:.4} s, over {worst_limit:.3?} at this load"
    );
    assert!(shown.windows(2).all(|w| w[1] > w[0]), "shown out of order");
}

/// A 50-frame clip at 100 fps.
struct Clip {
    next: u64,
}

impl FrameSource for Clip {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.next == 50 {
            return Ok(None);
        }
        let index = self.next;
        self.next += 1;
        Ok(Some(Frame {
            index,
            pts: index as f64 / 100.0,
            segment: 0,
            image: RgbImage::new(8, 8),
        }))
    }

    fn frame_rate(&self) -> Option<f64> {
        Some(100.0)
    }

    fn seek(&mut self, seconds: f64) -> Result<(), SourceError> {
        self.next = (seconds * 100.0).round() as u64;
        Ok(())
    }
}

#[test]
fn pause_step_and_seek_lose_no_frame() {
    let frames = Arc::new(HandOff::new(Delivery::LatestWins));
    let control = Arc::new(PlaybackControl::default());
    let (events, events_rx) = channel();
    let capture = spawn_capture(
        |_| Ok(Box::new(Clip { next: 0 }) as Box<dyn FrameSource>),
        frames.clone(),
        control.clone(),
        Arc::new(CaptureStats::default()),
        events,
        CaptureOptions {
            real_time: true,
            hold_at_end: true,
            reconnect_timeout: None,
            live_latest_wins: true,
            notify: Box::new(|_| {}),
        },
    );
    let take = || frames.take().expect("a frame").index;
    let mut seen: Vec<u64> = (0..5).map(|_| take()).collect();
    control.set_paused(true);
    // Time for the capture thread to see the pause: 100 ms on an idle machine, more on a
    // busy one.
    let settle = load_scaled(Duration::from_millis(100));
    std::thread::sleep(settle);
    // A frame already on its way when Pause was pressed may still arrive; then, nothing
    // comes but what Step lets through, one frame per press.
    seen.extend(frames.try_take().map(|f| f.index));
    std::thread::sleep(settle);
    assert!(
        frames.try_take().is_none(),
        "a frame arrived while paused (waited {settle:?} for the pause)"
    );
    for _ in 0..3 {
        control.step();
        seen.push(take());
    }
    control.set_paused(false);
    while seen.last() != Some(&49) {
        seen.push(take());
    }
    assert_eq!(
        seen,
        (0..50).collect::<Vec<_>>(),
        "frames skipped or repeated"
    );
    assert_eq!(frames.dropped(), 0);

    // At the end the thread says so and waits; a seek plays again from there.
    let mut guard = HangGuard::new(Duration::from_secs(30));
    loop {
        match events_rx.recv_timeout(Duration::from_millis(10)) {
            Ok(CaptureEvent::Ended) => break,
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => guard.check("the capture to report the end"),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the capture thread ended without reporting the end")
            }
        }
    }
    control.seek(0.3);
    assert_eq!(take(), 30);
    control.stop();
    capture.join().unwrap();
}

/// A stream that gives three frames (numbered from 0 on each connection, as ffmpeg numbers
/// them) and then drops.
struct Dropping {
    next: u64,
}

impl FrameSource for Dropping {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.next == 3 {
            return Err(stream_error("the stream ended"));
        }
        let index = self.next;
        self.next += 1;
        Ok(Some(Frame {
            index,
            pts: index as f64 / 10.0,
            segment: 0,
            image: RgbImage::new(8, 8),
        }))
    }

    fn frame_rate(&self) -> Option<f64> {
        Some(10.0)
    }

    fn is_live(&self) -> bool {
        true
    }

    fn seek(&mut self, _seconds: f64) -> Result<(), SourceError> {
        Ok(())
    }
}

fn stream_error(reason: &str) -> SourceError {
    SourceError::Stream {
        url: "tcp://127.0.0.1:9".into(),
        reason: reason.into(),
    }
}

#[test]
fn a_dropped_stream_is_reconnected_with_backoff_and_its_frames_numbered_on() {
    let frames = Arc::new(HandOff::new(Delivery::EveryFrame { capacity: 64 }));
    let control = Arc::new(PlaybackControl::default());
    let (events, events_rx) = channel();
    // Connections 1 and 4 succeed; 2 and 3 are refused; after 4 the server is gone.
    let attempts = Arc::new(AtomicU32::new(0));
    let counted = attempts.clone();
    let started = Instant::now();
    let capture = spawn_capture(
        move |_| match counted.fetch_add(1, Ordering::SeqCst) {
            0 | 3 => Ok(Box::new(Dropping { next: 0 }) as Box<dyn FrameSource>),
            _ => Err(stream_error("Connection refused")),
        },
        frames.clone(),
        control.clone(),
        Arc::new(CaptureStats::default()),
        events,
        CaptureOptions {
            real_time: false,
            hold_at_end: false,
            reconnect_timeout: Some(Duration::from_secs(4)),
            live_latest_wins: false,
            notify: Box::new(|_| {}),
        },
    );
    capture.join().unwrap();
    let took = started.elapsed();
    let frames: Vec<Frame> = std::iter::from_fn(|| frames.try_take()).collect();
    let numbered: Vec<(u64, u64)> = frames.iter().map(|f| (f.index, f.segment)).collect();
    assert_eq!(
        numbered,
        [(0, 0), (1, 0), (2, 0), (3, 1), (4, 1), (5, 1)],
        "the second connection's frames follow the first's, in a new segment"
    );
    assert!(frames.windows(2).all(|w| w[1].pts > w[0].pts));
    // The outage (0.5 + 1 + 2 s of waits, at least 3.5 s) is on the timeline.
    assert!(frames[3].pts - frames[2].pts >= 3.4, "{}", frames[3].pts);
    let events: Vec<CaptureEvent> = events_rx.try_iter().collect();
    let waits: Vec<(u32, Duration)> = events
        .iter()
        .filter_map(|e| match e {
            CaptureEvent::Reconnecting {
                attempt, retry_in, ..
            } => Some((*attempt, *retry_in)),
            _ => None,
        })
        .collect();
    let ms = Duration::from_millis;
    assert_eq!(
        waits[..3],
        [(1, ms(500)), (2, ms(1000)), (3, ms(2000))],
        "each failed attempt doubles the wait"
    );
    assert!(
        matches!(events.last(), Some(CaptureEvent::GaveUp { reason, gone_for })
            if reason.contains("Connection refused") && *gone_for >= ms(4000)),
        "{events:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, CaptureEvent::Opened { live: true, .. }))
            .count(),
        2
    );
    // 3.5 s to come back, then 4 s away before the capture gives up: under 15 s on an idle
    // machine, more on a busy one.
    let limit = load_scaled(Duration::from_secs(15));
    assert!(took < limit, "{took:?}, over {limit:?} at this load");
}
