//! The JSON records `detect --json` (one per image) and `run --json` (one per video frame)
//! write, one object per line.

use serde::{Deserialize, Serialize};

use crate::inference::postprocess::{Detection, class_name};
use crate::track::TrackedObject;

/// One detection as written to JSON: the box in source pixels, confidence, class id and
/// name, and with tracking on, the ID of its track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionRecord {
    pub xyxy: [f32; 4],
    pub conf: f32,
    pub class: usize,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u64>,
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
}

impl DetectionRecord {
    pub fn new(detection: &Detection, names: &[String]) -> Self {
        Self {
            xyxy: detection.xyxy,
            conf: detection.conf,
            class: detection.class,
            name: class_name(names, detection.class),
            track_id: None,
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
