//! Multi-object tracking: ByteTrack as Ultralytics implements it (`byte_tracker.py`,
//! `bytetrack.yaml`), so the IDs match what its users know. Each track carries a Kalman
//! filter ([`kalman`]); each frame associates tracks with confident detections first, then
//! the tracks left over with faint ones, both by IoU through a linear assignment
//! ([`matching`]). [`SequenceTracker`] feeds it a source's frames: it resets at a seek or a
//! loop and predicts across frames the pipeline dropped.

mod kalman;
mod matching;
mod sequence;

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::inference::postprocess::{Detection, Shape};
use kalman::KalmanState;
use matching::{CostMatrix, linear_assignment};
pub use sequence::{Continuity, SequenceTracker, TrackedFrame};

/// The confidence Ultralytics' `track` lowers detection to unless `conf` is given, so the
/// tracker's second, low-score association has detections to work with.
pub const TRACKING_CONF: f32 = 0.1;

#[derive(Debug, Error)]
pub enum TrackError {
    #[error("track association failed: {0}")]
    Assignment(String),
    #[error("tracker setting {name} = {value}: {why}")]
    Setting {
        name: &'static str,
        value: f32,
        why: &'static str,
    },
}

/// ByteTrack's settings; the defaults are Ultralytics' `bytetrack.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackerConfig {
    /// Detections at or above this score are associated with tracks first.
    pub high_thresh: f32,
    /// Detections above this score (and below `high_thresh`) are offered to the tracks the
    /// first round left over; fainter ones are ignored.
    pub low_thresh: f32,
    /// A confident detection that matches no track starts one at or above this score.
    pub new_track_thresh: f32,
    /// Frames a lost track is kept to be found again.
    pub buffer: u32,
    /// Largest association cost (1 − IoU, times the score when fused) that still matches.
    pub match_thresh: f32,
    /// Weigh IoU by the detection's score when associating.
    pub fuse_score: bool,
    /// Centres kept per track for its trail.
    pub trail: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            high_thresh: 0.25,
            low_thresh: 0.1,
            new_track_thresh: 0.25,
            buffer: 30,
            match_thresh: 0.8,
            fuse_score: true,
            trail: 30,
        }
    }
}

impl TrackerConfig {
    /// Refuse settings the tracker cannot work with.
    pub fn validate(&self) -> Result<(), TrackError> {
        let fraction = [
            ("high threshold", self.high_thresh),
            ("low threshold", self.low_thresh),
            ("new-track threshold", self.new_track_thresh),
            ("match threshold", self.match_thresh),
        ];
        for (name, value) in fraction {
            if !(0.0..=1.0).contains(&value) {
                return Err(TrackError::Setting {
                    name,
                    value,
                    why: "must be between 0 and 1",
                });
            }
        }
        if self.low_thresh > self.high_thresh {
            return Err(TrackError::Setting {
                name: "low threshold",
                value: self.low_thresh,
                why: "must not exceed the high threshold",
            });
        }
        Ok(())
    }
}

/// A confirmed track in the current frame: the tracker's box with the score and class of
/// the detection it matched, and where its centre was on its recent frames, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedObject {
    pub id: u64,
    pub detection: Detection,
    pub trail: Vec<[f32; 2]>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TrackState {
    Tracked,
    Lost,
    Removed,
}

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    kalman: KalmanState,
    state: TrackState,
    /// Reported: matched on two frames in a row, or born on the first frame.
    confirmed: bool,
    /// Counted in the per-class totals.
    counted: bool,
    score: f32,
    class: usize,
    start_frame: u64,
    last_frame: u64,
    trail: VecDeque<[f32; 2]>,
    /// The mask, keypoints or oriented box of the detection last matched, which ride along
    /// with the track as Ultralytics' `track` keeps them.
    shape: Shape,
}

/// Centre x, centre y, aspect w/h and height of an `xyxy` box.
fn xyah(xyxy: &[f32; 4]) -> [f64; 4] {
    let [x1, y1, x2, y2] = xyxy.map(f64::from);
    let (w, h) = (x2 - x1, y2 - y1);
    [x1 + w / 2.0, y1 + h / 2.0, w / h, h]
}

/// A box the filter can follow: finite, with positive width and height.
fn trackable(detection: &Detection) -> bool {
    let [x1, y1, x2, y2] = detection.xyxy;
    detection.xyxy.iter().all(|v| v.is_finite()) && x2 > x1 && y2 > y1
}

impl Track {
    fn xyxy(&self) -> [f32; 4] {
        let [x, y, a, h] = self.kalman.xyah();
        let w = a * h;
        [x - w / 2.0, y - h / 2.0, x + w / 2.0, y + h / 2.0].map(|v| v as f32)
    }

    /// Advance `steps` frames without a measurement. A track that is not being seen keeps
    /// its position's velocity but not its growth (Ultralytics zeroes vh before predicting).
    fn predict(&mut self, steps: u64) {
        for _ in 0..steps {
            if self.state != TrackState::Tracked {
                self.kalman.mean[7] = 0.0;
            }
            self.kalman.predict();
        }
    }

    /// Follow `detection`, matched on `frame`.
    fn update(&mut self, detection: &Detection, frame: u64) {
        self.kalman.update(xyah(&detection.xyxy));
        self.state = TrackState::Tracked;
        self.confirmed = true;
        self.score = detection.conf;
        self.class = detection.class;
        self.shape = detection.shape.clone();
        self.last_frame = frame;
    }
}

/// ByteTrack over one continuous sequence of frames.
#[derive(Debug, Clone)]
pub struct ByteTracker {
    config: TrackerConfig,
    /// Tracks seen on the last update (confirmed or not), in Ultralytics' list order.
    tracked: Vec<Track>,
    /// Tracks not seen lately, kept `config.buffer` frames to be found again.
    lost: Vec<Track>,
    frame: u64,
    last_id: u64,
    /// Tracks reported since the start, by the class they had when first reported.
    since_start: BTreeMap<usize, u64>,
}

impl ByteTracker {
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            tracked: Vec::new(),
            lost: Vec::new(),
            frame: 0,
            last_id: 0,
            since_start: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> TrackerConfig {
        self.config
    }

    /// New settings from the next update on; the tracks are kept.
    pub fn set_config(&mut self, config: TrackerConfig) {
        self.config = config;
    }

    /// Confirmed tracks reported since the start, per class.
    pub fn since_start(&self) -> &BTreeMap<usize, u64> {
        &self.since_start
    }

    /// Take in one frame's detections, `frames_elapsed` frames after the last update (1
    /// for consecutive frames; more where frames were skipped: the tracks are predicted
    /// across the gap, and a lost track's age counts the skipped frames). Returns the
    /// confirmed tracks, boxes clipped to a `width`×`height` frame.
    pub fn update(
        &mut self,
        detections: &[Detection],
        frames_elapsed: u64,
        (width, height): (u32, u32),
    ) -> Result<Vec<TrackedObject>, TrackError> {
        let steps = frames_elapsed.max(1);
        self.frame += steps;
        let frame = self.frame;
        // Ultralytics confirms the tracks born on a tracker's first frame at once.
        let first_update = frame == steps;
        let config = self.config;
        let usable = detections.iter().filter(|d| trackable(d));
        let high: Vec<&Detection> = usable
            .clone()
            .filter(|d| d.conf >= config.high_thresh)
            .collect();
        let faint: Vec<&Detection> = usable
            .filter(|d| d.conf > config.low_thresh && d.conf < config.high_thresh)
            .collect();

        // One arena for this update: the tracked list, then the lost list.
        let mut tracks: Vec<Track> = std::mem::take(&mut self.tracked);
        let tracked_len = tracks.len();
        tracks.append(&mut self.lost);
        let lost_len = tracks.len();
        let unconfirmed: Vec<usize> = (0..tracked_len).filter(|&i| !tracks[i].confirmed).collect();
        let pool: Vec<usize> = (0..tracked_len)
            .filter(|&i| tracks[i].confirmed)
            .chain(tracked_len..lost_len)
            .collect();
        for &i in &pool {
            tracks[i].predict(steps);
        }

        // First association: every confirmed or lost track against the confident detections.
        let first = linear_assignment(
            &association_costs(&tracks, &pool, &high, config.fuse_score),
            f64::from(config.match_thresh),
        )?;
        let mut refound = Vec::new();
        for &(p, d) in &first.matches {
            let track = &mut tracks[pool[p]];
            if track.state != TrackState::Tracked {
                refound.push(pool[p]);
            }
            track.update(high[d], frame);
        }

        // Second: the tracks still seen last frame that found nothing, against faint detections.
        let left: Vec<usize> = first
            .unmatched_rows
            .iter()
            .map(|&p| pool[p])
            .filter(|&i| tracks[i].state == TrackState::Tracked)
            .collect();
        let second = linear_assignment(&association_costs(&tracks, &left, &faint, false), 0.5)?;
        for &(l, d) in &second.matches {
            tracks[left[l]].update(faint[d], frame);
        }
        let mut newly_lost = Vec::new();
        for &l in &second.unmatched_rows {
            tracks[left[l]].state = TrackState::Lost;
            newly_lost.push(left[l]);
        }

        // Third: tracks born last frame against the confident detections left; a track
        // born and not seen again is dropped.
        let rest: Vec<&Detection> = first.unmatched_cols.iter().map(|&d| high[d]).collect();
        let third = linear_assignment(
            &association_costs(&tracks, &unconfirmed, &rest, config.fuse_score),
            0.7,
        )?;
        for &(u, d) in &third.matches {
            tracks[unconfirmed[u]].update(rest[d], frame);
        }
        for &u in &third.unmatched_rows {
            tracks[unconfirmed[u]].state = TrackState::Removed;
        }

        // New tracks from the confident detections nothing claimed.
        let born_from = tracks.len();
        for &d in &third.unmatched_cols {
            let detection = rest[d];
            if detection.conf < config.new_track_thresh {
                continue;
            }
            self.last_id += 1;
            tracks.push(Track {
                id: self.last_id,
                kalman: KalmanState::initiate(xyah(&detection.xyxy)),
                state: TrackState::Tracked,
                confirmed: first_update,
                counted: false,
                score: detection.conf,
                class: detection.class,
                start_frame: frame,
                last_frame: frame,
                trail: VecDeque::new(),
                shape: detection.shape.clone(),
            });
        }
        for track in &mut tracks[tracked_len..lost_len] {
            if track.state == TrackState::Lost
                && frame - track.last_frame > u64::from(config.buffer)
            {
                track.state = TrackState::Removed;
            }
        }

        let tracked_order: Vec<usize> = (0..tracked_len)
            .filter(|&i| tracks[i].state == TrackState::Tracked)
            .chain(born_from..tracks.len())
            .chain(refound)
            .collect();
        let lost_order: Vec<usize> = (tracked_len..lost_len)
            .filter(|&i| tracks[i].state == TrackState::Lost)
            .chain(newly_lost)
            .collect();
        let (tracked_order, lost_order) = remove_duplicates(&tracks, tracked_order, lost_order);
        let mut slots: Vec<Option<Track>> = tracks.into_iter().map(Some).collect();
        let mut take = |i: usize| slots[i].take().expect("each track is listed once");
        self.tracked = tracked_order.into_iter().map(&mut take).collect();
        self.lost = lost_order.into_iter().map(&mut take).collect();
        Ok(self.report(width, height))
    }

    /// The confirmed tracks, their trails extended by this frame's centre.
    fn report(&mut self, width: u32, height: u32) -> Vec<TrackedObject> {
        let (w, h) = (width as f32, height as f32);
        let mut objects = Vec::new();
        for track in &mut self.tracked {
            let [x1, y1, x2, y2] = track.xyxy();
            let xyxy = [
                x1.clamp(0.0, w),
                y1.clamp(0.0, h),
                x2.clamp(0.0, w),
                y2.clamp(0.0, h),
            ];
            if track.trail.len() >= self.config.trail.max(1) {
                track.trail.pop_front();
            }
            track
                .trail
                .push_back([(xyxy[0] + xyxy[2]) / 2.0, (xyxy[1] + xyxy[3]) / 2.0]);
            if !track.confirmed {
                continue;
            }
            if !track.counted {
                track.counted = true;
                *self.since_start.entry(track.class).or_default() += 1;
            }
            objects.push(TrackedObject {
                id: track.id,
                detection: Detection {
                    xyxy,
                    conf: track.score,
                    class: track.class,
                    shape: track.shape.clone(),
                    ..Detection::default()
                },
                trail: track.trail.iter().copied().collect(),
            });
        }
        objects
    }
}

/// Association costs of `tracks[rows]` against `detections`.
fn association_costs(
    tracks: &[Track],
    rows: &[usize],
    detections: &[&Detection],
    fuse_score: bool,
) -> CostMatrix {
    let track_boxes: Vec<[f32; 4]> = rows.iter().map(|&i| tracks[i].xyxy()).collect();
    let boxes: Vec<[f32; 4]> = detections.iter().map(|d| d.xyxy).collect();
    let costs = CostMatrix::iou_distance(&track_boxes, &boxes);
    if fuse_score {
        let scores: Vec<f32> = detections.iter().map(|d| d.conf).collect();
        costs.fuse_scores(&scores)
    } else {
        costs
    }
}

/// Where a tracked and a lost track cover the same object (1 − IoU < 0.15), keep the one
/// followed longer.
fn remove_duplicates(
    tracks: &[Track],
    tracked: Vec<usize>,
    lost: Vec<usize>,
) -> (Vec<usize>, Vec<usize>) {
    let boxes =
        |list: &[usize]| -> Vec<[f32; 4]> { list.iter().map(|&i| tracks[i].xyxy()).collect() };
    let distance = CostMatrix::iou_distance(&boxes(&tracked), &boxes(&lost));
    let age = |i: usize| tracks[i].last_frame - tracks[i].start_frame;
    let (mut drop_tracked, mut drop_lost) = (vec![false; tracked.len()], vec![false; lost.len()]);
    for (p, &t) in tracked.iter().enumerate() {
        for (q, &l) in lost.iter().enumerate() {
            if distance.get(p, q) < 0.15 {
                if age(t) > age(l) {
                    drop_lost[q] = true;
                } else {
                    drop_tracked[p] = true;
                }
            }
        }
    }
    let keep = |list: Vec<usize>, dropped: Vec<bool>| -> Vec<usize> {
        list.into_iter()
            .zip(dropped)
            .filter_map(|(i, d)| (!d).then_some(i))
            .collect()
    };
    (keep(tracked, drop_tracked), keep(lost, drop_lost))
}

#[cfg(test)]
mod tests;
