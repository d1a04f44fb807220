//! Feeding a source's frames to ByteTrack: where the frames stop following each other (a
//! seek, a loop, a reopened camera) the tracker starts over; frames the pipeline dropped
//! are predicted across; a frame processed again (new settings while paused) is re-run
//! from the state before it, so pausing and stepping never disturb the tracks.

use std::collections::BTreeMap;

use super::{ByteTracker, TrackError, TrackedObject, TrackerConfig};
use crate::inference::postprocess::Detection;
use crate::source::Frame;

/// One frame's tracks and what the panel says about them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackedFrame {
    pub objects: Vec<TrackedObject>,
    /// Confirmed tracks reported since the tracker (re)started, per class.
    pub since_start: BTreeMap<usize, u64>,
    /// Source frames between this one and the last tracked one that the tracker never saw.
    pub frames_skipped: u64,
    /// All such frames since the tracker (re)started, and the frames it did see.
    pub skipped_total: u64,
    pub seen_total: u64,
}

impl TrackedFrame {
    /// Confirmed tracks in this frame, per class.
    pub fn now(&self) -> BTreeMap<usize, u64> {
        let mut counts = BTreeMap::new();
        for object in &self.objects {
            *counts.entry(object.detection.class).or_default() += 1;
        }
        counts
    }
}

/// Where the last tracked frame sat in its source.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Position {
    segment: u64,
    index: u64,
}

#[derive(Debug, Clone)]
struct Totals {
    skipped: u64,
    seen: u64,
}

/// ByteTrack over a source's frames, in the order they are processed.
pub struct SequenceTracker {
    tracker: ByteTracker,
    totals: Totals,
    last: Option<Position>,
    /// The tracker and totals before the last frame, and its gap: to redo that frame.
    before_last: Option<(ByteTracker, Totals, u64)>,
}

impl SequenceTracker {
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            tracker: ByteTracker::new(config),
            totals: Totals {
                skipped: 0,
                seen: 0,
            },
            last: None,
            before_last: None,
        }
    }

    /// New settings from the next frame on; the tracks are kept.
    pub fn set_config(&mut self, config: TrackerConfig) {
        if self.tracker.config() != config {
            self.tracker.set_config(config);
            if let Some((tracker, _, _)) = &mut self.before_last {
                tracker.set_config(config);
            }
        }
    }

    /// Track `detections`, found on `frame`.
    pub fn track(
        &mut self,
        frame: &Frame,
        detections: &[Detection],
    ) -> Result<TrackedFrame, TrackError> {
        let position = Position {
            segment: frame.segment,
            index: frame.index,
        };
        let elapsed = match (self.last, self.before_last.take()) {
            (Some(last), Some((tracker, totals, elapsed))) if last == position => {
                self.tracker = tracker;
                self.totals = totals;
                elapsed
            }
            (Some(last), _) if last.segment == position.segment && position.index > last.index => {
                position.index - last.index
            }
            _ => {
                *self = Self::new(self.tracker.config());
                1
            }
        };
        self.before_last = Some((self.tracker.clone(), self.totals.clone(), elapsed));
        self.last = Some(position);
        let size = (frame.image.width(), frame.image.height());
        let objects = self.tracker.update(detections, elapsed, size)?;
        self.totals.seen += 1;
        self.totals.skipped += elapsed - 1;
        Ok(TrackedFrame {
            objects,
            since_start: self.tracker.since_start().clone(),
            frames_skipped: elapsed - 1,
            skipped_total: self.totals.skipped,
            seen_total: self.totals.seen,
        })
    }
}
