//! What a task model adds to a box, in numbers: the mask's area and parts, each keypoint by
//! name, the oriented box's size and rotation ("Why this box?", `detect --explain`), and the
//! few words a list row gives it.

use serde::Serialize;

use super::shapes::VISIBLE;
use crate::inference::masks::InstanceMask;
use crate::inference::postprocess::Shape;
use crate::inference::preprocess::Letterbox;

/// COCO's keypoint names, in the order a COCO pose model gives its 17 keypoints.
const COCO_KEYPOINTS: [&str; 17] = [
    "nose",
    "left eye",
    "right eye",
    "left ear",
    "right ear",
    "left shoulder",
    "right shoulder",
    "left elbow",
    "right elbow",
    "left wrist",
    "right wrist",
    "left hip",
    "right hip",
    "left knee",
    "right knee",
    "left ankle",
    "right ankle",
];

/// A keypoint's place (source pixels) and visibility, named where the layout is COCO's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedKeypoint {
    pub name: String,
    pub xy: [f32; 2],
    pub visibility: f32,
}

impl NamedKeypoint {
    /// Whether the keypoint is drawn.
    pub fn visible(&self) -> bool {
        self.visibility >= VISIBLE
    }
}

/// What a task model adds to the box, in numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShapeFacts {
    /// The mask's area in source pixels (its canvas area scaled to the frame), and its
    /// connected parts.
    Mask { area_px: usize, parts: usize },
    /// Every keypoint; those under 0.5 visibility are not drawn.
    Keypoints(Vec<NamedKeypoint>),
    /// The oriented box's size and its rotation in degrees.
    Oriented {
        width: f32,
        height: f32,
        degrees: f32,
    },
}

impl ShapeFacts {
    pub fn of(shape: &Shape) -> Option<Self> {
        Some(match shape {
            Shape::Box => return None,
            Shape::Mask {
                mask,
                outlines,
                letterbox,
            } => ShapeFacts::Mask {
                area_px: area_px(mask, letterbox),
                parts: outlines.len(),
            },
            Shape::Keypoints(points) => {
                let coco = points.len() == COCO_KEYPOINTS.len();
                ShapeFacts::Keypoints(
                    points
                        .iter()
                        .enumerate()
                        .map(|(k, &[x, y, visibility])| NamedKeypoint {
                            name: match coco {
                                true => COCO_KEYPOINTS[k].to_string(),
                                false => format!("keypoint {k}"),
                            },
                            xy: [x, y],
                            visibility,
                        })
                        .collect(),
                )
            }
            &Shape::Oriented([_, _, width, height, radians]) => ShapeFacts::Oriented {
                width,
                height,
                degrees: radians.to_degrees(),
            },
        })
    }
}

/// A few words for a list row, redrawn every frame: "mask 1234 px", "15/17 keypoints",
/// "rotated 23°"; none for a plain box.
pub fn summary(shape: &Shape) -> Option<String> {
    Some(match shape {
        Shape::Box => return None,
        Shape::Mask {
            mask, letterbox, ..
        } => format!("mask {} px", area_px(mask, letterbox)),
        Shape::Keypoints(points) => format!(
            "{}/{} keypoints",
            points.iter().filter(|p| p[2] >= VISIBLE).count(),
            points.len()
        ),
        Shape::Oriented(xywhr) => format!("rotated {:.0}°", xywhr[4].to_degrees()),
    })
}

/// The mask's area in source pixels: its canvas pixels, each standing for the source
/// pixels the letterbox shrank into it.
fn area_px(mask: &InstanceMask, letterbox: &Letterbox) -> usize {
    let per_canvas_pixel = (letterbox.source_width * letterbox.source_height) as f32
        / (letterbox.resized_width * letterbox.resized_height).max(1) as f32;
    (mask.area() as f32 * per_canvas_pixel).round() as usize
}
