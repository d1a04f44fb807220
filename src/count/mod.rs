//! Counting tracked objects across lines and into zones, as Ultralytics' `ObjectCounter`
//! (`solutions/object_counter.py`) counts, so its users get the same numbers:
//! - a track's point is its box centre; its move is the segment from the centre it had
//!   when last reported to the one it has now (across frames the model skipped, too);
//! - a line counts a track whose move touches it; a zone counts a track whose centre is
//!   now inside it (a track needs a previous centre to be counted);
//! - IN or OUT comes from the move along one axis: horizontal for a line more vertical
//!   than horizontal or a zone taller than wide (right is IN), vertical otherwise (down is
//!   IN); see [`Region::axis`];
//! - each region counts a track once, per class (the class the track has when counted)
//!   and in total; regions are independent.
//!
//! [`SequenceCounter`] follows a [`SequenceTracker`](crate::track::SequenceTracker)'s
//! frames: it starts over where the tracker does (a seek, a loop) and redoes a frame the
//! tracker redoes.

mod region;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

pub use region::{Axis, Region, RegionError, polygon_contains, segments_intersect};

use crate::source::Frame;
use crate::track::{Continuity, TrackedFrame, TrackedObject};

/// Which way a counted track went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

/// Tracks counted IN and OUT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InOut {
    #[serde(rename = "in")]
    pub inward: u64,
    #[serde(rename = "out")]
    pub outward: u64,
}

impl InOut {
    fn add(&mut self, direction: Direction) {
        match direction {
            Direction::In => self.inward += 1,
            Direction::Out => self.outward += 1,
        }
    }
}

/// One region's counts since counting (re)started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionCount {
    pub region: String,
    pub total: InOut,
    /// Per class id.
    pub classes: BTreeMap<usize, InOut>,
}

/// A track counted on this frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Crossing {
    pub region: String,
    pub track_id: u64,
    pub class: usize,
    pub direction: Direction,
}

/// A crossing and the frame it happened on, as the counts' CSV lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct CountEvent {
    pub frame: u64,
    /// The frame's presentation time, seconds.
    pub time: f64,
    pub crossing: Crossing,
}

/// What counting made of one frame: every region's counts so far, and this frame's events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CountFrame {
    pub counts: Vec<RegionCount>,
    pub crossings: Vec<CountEvent>,
}

/// Where a track was last reported.
#[derive(Debug, Clone, Copy)]
struct Seen {
    centre: [f32; 2],
    /// The counter's frame number then.
    frame: u64,
}

#[derive(Debug, Clone)]
struct RegionState {
    region: Region,
    counted: HashSet<u64>,
    count: RegionCount,
}

impl RegionState {
    fn new(region: Region) -> Self {
        Self {
            count: RegionCount {
                region: region.name.clone(),
                ..RegionCount::default()
            },
            region,
            counted: HashSet::new(),
        }
    }
}

/// Counts over one continuous sequence of tracked frames.
#[derive(Debug, Clone)]
pub struct Counter {
    regions: Vec<RegionState>,
    last_seen: HashMap<u64, Seen>,
    frame: u64,
    /// Frames after which an unseen track is forgotten: the tracker's buffer, past which
    /// it removes a lost track for good (its ID never comes back).
    forget_after: u64,
}

/// A box's centre, as Ultralytics takes it.
fn centre(xyxy: [f32; 4]) -> [f32; 2] {
    [(xyxy[0] + xyxy[2]) / 2.0, (xyxy[1] + xyxy[3]) / 2.0]
}

impl Counter {
    /// Counting in `regions`, forgetting tracks unseen for more than `forget_after`
    /// frames.
    pub fn new(regions: Vec<Region>, forget_after: u64) -> Self {
        Self {
            regions: regions.into_iter().map(RegionState::new).collect(),
            last_seen: HashMap::new(),
            frame: 0,
            forget_after,
        }
    }

    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter().map(|state| &state.region)
    }

    /// Count in these regions from now on. A region whose name was there before keeps its
    /// counts (moving a line's end does not start it over); a new one starts at zero.
    pub fn set_regions(&mut self, regions: &[Region]) {
        if self.regions.iter().map(|s| &s.region).eq(regions.iter()) {
            return;
        }
        let mut old: HashMap<String, RegionState> = self
            .regions
            .drain(..)
            .map(|state| (state.region.name.clone(), state))
            .collect();
        self.regions = regions
            .iter()
            .map(|region| match old.remove(&region.name) {
                Some(state) => RegionState {
                    region: region.clone(),
                    ..state
                },
                None => RegionState::new(region.clone()),
            })
            .collect();
    }

    pub fn set_forget_after(&mut self, frames: u64) {
        self.forget_after = frames;
    }

    /// Every count to zero and every track forgotten; the regions stay.
    pub fn reset(&mut self) {
        let regions = self.regions.drain(..).map(|s| s.region).collect();
        *self = Self::new(regions, self.forget_after);
    }

    /// Take in one frame's tracks, `frames_elapsed` source frames after the last update.
    /// Returns the tracks counted on this frame.
    pub fn update(&mut self, objects: &[TrackedObject], frames_elapsed: u64) -> Vec<Crossing> {
        self.frame += frames_elapsed.max(1);
        let mut crossings = Vec::new();
        for object in objects {
            let now = centre(object.detection.xyxy);
            let seen = Seen {
                centre: now,
                frame: self.frame,
            };
            let Some(before) = self.last_seen.insert(object.id, seen) else {
                continue;
            };
            for state in &mut self.regions {
                if state.counted.contains(&object.id) || !state.region.reached(before.centre, now) {
                    continue;
                }
                let forward = match state.region.axis() {
                    Axis::Horizontal => now[0] > before.centre[0],
                    Axis::Vertical => now[1] > before.centre[1],
                };
                let direction = if forward {
                    Direction::In
                } else {
                    Direction::Out
                };
                state.counted.insert(object.id);
                state.count.total.add(direction);
                state
                    .count
                    .classes
                    .entry(object.detection.class)
                    .or_default()
                    .add(direction);
                crossings.push(Crossing {
                    region: state.region.name.clone(),
                    track_id: object.id,
                    class: object.detection.class,
                    direction,
                });
            }
        }
        let (frame, forget_after) = (self.frame, self.forget_after);
        self.last_seen
            .retain(|_, seen| frame - seen.frame <= forget_after);
        for state in &mut self.regions {
            state.counted.retain(|id| self.last_seen.contains_key(id));
        }
        crossings
    }

    /// Every region's counts so far.
    pub fn counts(&self) -> Vec<RegionCount> {
        self.regions.iter().map(|s| s.count.clone()).collect()
    }
}

/// A [`Counter`] fed a tracker's frames in the order they are tracked, with the log of
/// every crossing since counting (re)started.
#[derive(Debug, Clone)]
pub struct SequenceCounter {
    counter: Counter,
    /// The counter before the last frame, and the log's length then: to redo that frame.
    before_last: Option<(Counter, usize)>,
    log: Vec<CountEvent>,
}

impl SequenceCounter {
    pub fn new(regions: Vec<Region>, forget_after: u64) -> Self {
        Self {
            counter: Counter::new(regions, forget_after),
            before_last: None,
            log: Vec::new(),
        }
    }

    /// Every crossing since counting (re)started, oldest first.
    pub fn log(&self) -> &[CountEvent] {
        &self.log
    }

    /// Every region's counts so far.
    pub fn counts(&self) -> Vec<RegionCount> {
        self.counter.counts()
    }

    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.counter.regions()
    }

    /// See [`Counter::set_regions`].
    pub fn set_regions(&mut self, regions: &[Region], forget_after: u64) {
        let before_last = self.before_last.as_mut().map(|(counter, _)| counter);
        for counter in std::iter::once(&mut self.counter).chain(before_last) {
            counter.set_regions(regions);
            counter.set_forget_after(forget_after);
        }
    }

    /// Every count to zero, from the next frame on.
    pub fn reset(&mut self) {
        self.counter.reset();
        self.before_last = None;
        self.log.clear();
    }

    /// Count `tracked`, the tracker's output for `frame`.
    pub fn count(&mut self, frame: &Frame, tracked: &TrackedFrame) -> CountFrame {
        match tracked.continuity {
            Continuity::Restarted => {
                self.counter.reset();
                self.log.clear();
            }
            Continuity::Redone => {
                if let Some((before, logged)) = self.before_last.take() {
                    self.counter = before;
                    self.log.truncate(logged);
                }
            }
            Continuity::Continued => {}
        }
        self.before_last = Some((self.counter.clone(), self.log.len()));
        let crossings: Vec<CountEvent> = self
            .counter
            .update(&tracked.objects, tracked.frames_skipped + 1)
            .into_iter()
            .map(|crossing| CountEvent {
                frame: frame.index,
                time: frame.pts,
                crossing,
            })
            .collect();
        self.log.extend_from_slice(&crossings);
        CountFrame {
            counts: self.counter.counts(),
            crossings,
        }
    }
}

#[cfg(test)]
mod tests;
