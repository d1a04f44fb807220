//! The JSON records `detect --json` (one per image) and `run --json` (one per video frame)
//! write, one object per line.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::count::{CountEvent, CountFrame, Direction, InOut};
use crate::inference::postprocess::{Detection, Shape, class_name};
use crate::track::TrackedObject;

/// One detection as written to JSON: the box in source pixels, confidence, class id and
/// name, with tracking on the ID of its track, and what a task model adds: a mask's
/// outlines (one per part), keypoints (x, y, visibility), or an oriented box (`xywhr`, its
/// `corners`; `xyxy` is then their bounding box).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionRecord {
    pub xyxy: [f32; 4],
    pub conf: f32,
    pub class: usize,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<Vec<Vec<[f32; 2]>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keypoints: Option<Vec<[f32; 3]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xywhr: Option<[f32; 5]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corners: Option<[[f32; 2]; 4]>,
}

/// All detections of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub source: String,
    pub width: u32,
    pub height: u32,
    pub detections: Vec<DetectionRecord>,
}

/// All detections of one video frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameRecord {
    pub frame: u64,
    /// Presentation time in seconds.
    pub pts: f64,
    pub width: u32,
    pub height: u32,
    pub detections: Vec<DetectionRecord>,
    /// The second model's, when `run --compare` runs two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detections_b: Option<Vec<DetectionRecord>>,
    /// With counting regions: each region's counts so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Vec<CountRecord>>,
    /// With counting regions: the tracks counted on this frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossings: Option<Vec<CrossingRecord>>,
}

/// One region's counts so far, in total and per class name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountRecord {
    pub region: String,
    #[serde(rename = "in")]
    pub inward: u64,
    #[serde(rename = "out")]
    pub outward: u64,
    pub classes: BTreeMap<String, InOut>,
}

/// A track counted in a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossingRecord {
    pub region: String,
    pub track_id: u64,
    pub class: usize,
    pub name: String,
    pub direction: Direction,
}

/// A frame's counts and crossings as records, classes named through `names`.
pub fn count_records(
    counted: &CountFrame,
    names: &[String],
) -> (Vec<CountRecord>, Vec<CrossingRecord>) {
    let counts = counted
        .counts
        .iter()
        .map(|count| CountRecord {
            region: count.region.clone(),
            inward: count.total.inward,
            outward: count.total.outward,
            classes: count
                .classes
                .iter()
                .map(|(&class, &in_out)| (class_name(names, class), in_out))
                .collect(),
        })
        .collect();
    let crossings = counted
        .crossings
        .iter()
        .map(|event| &event.crossing)
        .map(|crossing| CrossingRecord {
            region: crossing.region.clone(),
            track_id: crossing.track_id,
            class: crossing.class,
            name: class_name(names, crossing.class),
            direction: crossing.direction,
        })
        .collect();
    (counts, crossings)
}

impl DetectionRecord {
    pub fn new(detection: &Detection, names: &[String]) -> Self {
        let (mut mask, mut keypoints, mut xywhr) = (None, None, None);
        match &detection.shape {
            Shape::Box => {}
            Shape::Mask { outlines, .. } => mask = Some(outlines.to_vec()),
            Shape::Keypoints(points) => keypoints = Some(points.to_vec()),
            Shape::Oriented(oriented) => xywhr = Some(*oriented),
        }
        Self {
            xyxy: detection.xyxy,
            conf: detection.conf,
            class: detection.class,
            name: class_name(names, detection.class),
            track_id: None,
            mask,
            keypoints,
            xywhr,
            corners: detection.shape.corners(),
        }
    }
}

/// Every tracked object as a record with its track ID, named through `names`.
pub fn tracked_records(objects: &[TrackedObject], names: &[String]) -> Vec<DetectionRecord> {
    objects
        .iter()
        .map(|o| DetectionRecord {
            track_id: Some(o.id),
            ..DetectionRecord::new(&o.detection, names)
        })
        .collect()
}

/// Every detection as a record, named through `names`.
pub fn records(detections: &[Detection], names: &[String]) -> Vec<DetectionRecord> {
    detections
        .iter()
        .map(|d| DetectionRecord::new(d, names))
        .collect()
}

/// The counts' CSV: one row per crossing (`run --counts-csv`, the app's Export CSV).
pub struct CountsCsv<W: Write> {
    writer: csv::Writer<W>,
}

impl CountsCsv<File> {
    pub fn create(path: &Path) -> Result<Self, csv::Error> {
        Self::new(File::create(path)?)
    }
}

impl<W: Write> CountsCsv<W> {
    /// A CSV on `out`, its header written.
    pub fn new(out: W) -> Result<Self, csv::Error> {
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record([
            "frame",
            "time",
            "region",
            "track_id",
            "class",
            "name",
            "direction",
        ])?;
        Ok(Self { writer })
    }

    /// A row per event, classes named through `names`; flushed, so that a run stopped
    /// later keeps every row written so far.
    pub fn write(&mut self, events: &[CountEvent], names: &[String]) -> Result<(), csv::Error> {
        for event in events {
            let crossing = &event.crossing;
            self.writer.write_record([
                event.frame.to_string(),
                format!("{:.3}", event.time),
                crossing.region.clone(),
                crossing.track_id.to_string(),
                crossing.class.to_string(),
                class_name(names, crossing.class),
                crossing.direction.as_str().to_string(),
            ])?;
        }
        self.writer.flush()?;
        Ok(())
    }
}
