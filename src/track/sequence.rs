//! Feeding a source's frames to ByteTrack: where the frames stop following each other (a
//! seek, a loop, a reopened camera) the tracker starts over; frames the pipeline dropped
//! are predicted across; a frame processed again (new settings while paused) is re-run
//! from the state before it, so pausing and stepping never disturb the tracks.

use std::collections::BTreeMap;

use super::{ByteTracker, TrackError, TrackedObject, TrackerConfig};
use crate::inference::postprocess::{Detection, box_iou};
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
    /// How this frame follows the last one the tracker saw.
    pub continuity: Continuity,
}

/// How a tracked frame follows the one tracked before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Continuity {
    /// The tracker started over here: the first frame, or after a seek or loop.
    #[default]
    Restarted,
    /// It follows the last frame (frames may have been skipped between them).
    Continued,
    /// The last frame again, tracked from the state before it.
    Redone,
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

    /// The ID of the track that follows each detection, one to one: pairs of the same
    /// class overlapping at IoU 0.5 or more, the closest first (the tracker reports its
    /// filtered box, not the detection's).
    pub fn ids_of(&self, detections: &[Detection]) -> Vec<Option<u64>> {
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (d, detection) in detections.iter().enumerate() {
            for (t, object) in self.objects.iter().enumerate() {
                let iou = box_iou(&object.detection.xyxy, &detection.xyxy);
                if object.detection.class == detection.class && iou >= 0.5 {
                    pairs.push((iou, d, t));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut ids = vec![None; detections.len()];
        let mut taken = vec![false; self.objects.len()];
        for (_, d, t) in pairs {
            if ids[d].is_none() && !taken[t] {
                ids[d] = Some(self.objects[t].id);
                taken[t] = true;
            }
        }
        ids
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
        let (elapsed, continuity) = match (self.last, self.before_last.take()) {
            (Some(last), Some((tracker, totals, elapsed))) if last == position => {
                self.tracker = tracker;
                self.totals = totals;
                (elapsed, Continuity::Redone)
            }
            (Some(last), _) if last.segment == position.segment && position.index > last.index => {
                (position.index - last.index, Continuity::Continued)
            }
            _ => {
                *self = Self::new(self.tracker.config());
                (1, Continuity::Restarted)
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
            continuity,
        })
    }
}
