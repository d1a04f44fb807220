//! "Why this box?" and two models side by side, from the command line: `detect --explain`
//! writes each box's maps and numbers, `run --compare` runs a second model on the same
//! frames.

use std::path::Path;
use std::process::Command;

use focalyolo::output::report::{FrameRecord, ImageRecord};
use focalyolo::source::{FrameSource, VideoSource};

use crate::common::require_shared;

/// `focalyolo <args>` with YOLO11n on the CPU at 320; panics with its stderr on failure.
fn focalyolo(shared: &Path, args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_focalyolo"))
        .args(args)
        .args(["--device", "cpu", "--imgsz", "320", "--weights"])
        .arg(shared.join("weights/yolo11n.pt"))
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn json_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn explain_writes_each_boxs_maps_and_numbers() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let image = shared.join("coco_val_dev/images/000000017627.jpg");
    let (json, explain) = (dir.path().join("boxes.jsonl"), dir.path().join("explain"));
    focalyolo(
        &shared,
        &[
            "detect",
            "--source",
            image.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            "--explain",
            explain.to_str().unwrap(),
        ],
    );
    let [record]: [ImageRecord; 1] = json_lines(&json).try_into().unwrap();
    assert!(record.detections.len() >= 3, "{record:?}");
    for (index, detection) in record.detections.iter().enumerate() {
        let png = image::open(explain.join(format!("000000017627.box{index}.png"))).unwrap();
        // The crop, both focal levels, the global gate and the modulator, side by side.
        assert!(
            png.width() > 4 * png.height(),
            "{}×{}",
            png.width(),
            png.height()
        );
        let file = explain.join(format!("000000017627.box{index}.json"));
        let numbers: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(numbers["name"], detection.name);
        assert_eq!(numbers["top_classes"][0]["name"], detection.name);
        let top: Vec<f64> = numbers["top_classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["score"].as_f64().unwrap())
            .collect();
        assert_eq!(top.len(), 3);
        assert!(top.windows(2).all(|w| w[0] >= w[1]), "{top:?}");
        assert!((top[0] - f64::from(detection.conf)).abs() < 1e-6);
        let stride = numbers["stride"].as_u64().unwrap();
        assert_eq!(
            numbers["level"].as_str().unwrap(),
            format!("P{}", stride.trailing_zeros())
        );
        let energy = &numbers["modulator_energy"];
        let (inside, area) = (
            energy["inside"].as_f64().unwrap(),
            energy["area"].as_f64().unwrap(),
        );
        assert!((0.0..=1.0).contains(&inside) && inside > 0.0, "{energy}");
        let [x1, y1, x2, y2] = detection.xyxy.map(f64::from);
        let frame = f64::from(record.width * record.height);
        assert!(
            (area - (x2 - x1) * (y2 - y1) / frame).abs() < 1e-4,
            "{energy}"
        );
        assert_eq!(numbers["maps_inside"].as_array().unwrap().len(), 4);
    }
}

#[test]
fn the_same_weights_twice_give_identical_halves() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let (json, video) = (dir.path().join("both.jsonl"), dir.path().join("both.mp4"));
    let weights = shared.join("weights/yolo11n.pt");
    let clip = shared.join("videos/ckd_traffic.webm");
    focalyolo(
        &shared,
        &[
            "run",
            "--source",
            clip.to_str().unwrap(),
            "--max-frames",
            "4",
            "--compare",
            weights.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            "--save",
            video.to_str().unwrap(),
        ],
    );
    let frames: Vec<FrameRecord> = json_lines(&json);
    assert_eq!(frames.len(), 4);
    assert!(frames.iter().any(|f| !f.detections.is_empty()));
    for frame in &frames {
        assert_eq!(Some(&frame.detections), frame.detections_b.as_ref());
    }
    let mut saved = VideoSource::open(&video).unwrap();
    let first = saved.next_frame().unwrap().unwrap().image;
    assert_eq!(first.dimensions(), (1280, 360), "two 640×360 halves");
    let half = |x0: u32| image::imageops::crop_imm(&first, x0, 0, 640, 360).to_image();
    let (left, right) = (half(0), half(640));
    let difference = left
        .as_raw()
        .iter()
        .zip(right.as_raw())
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / left.as_raw().len() as f64;
    // The halves are one picture twice; only the video codec tells them apart.
    assert!(difference < 2.0, "mean |left - right| {difference}");
}

#[test]
fn the_stock_half_finds_what_detect_stock_finds() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let image = shared.join("coco_val_dev/images/000000017627.jpg");
    let weights = shared.join("weights/yolo11n.pt");
    let (both, stock) = (
        dir.path().join("both.jsonl"),
        dir.path().join("stock.jsonl"),
    );
    focalyolo(
        &shared,
        &[
            "run",
            "--source",
            image.to_str().unwrap(),
            "--compare",
            weights.to_str().unwrap(),
            "--compare-stock",
            "--json",
            both.to_str().unwrap(),
        ],
    );
    focalyolo(
        &shared,
        &[
            "detect",
            "--stock",
            "--source",
            image.to_str().unwrap(),
            "--json",
            stock.to_str().unwrap(),
        ],
    );
    let [frame]: [FrameRecord; 1] = json_lines(&both).try_into().unwrap();
    let [alone]: [ImageRecord; 1] = json_lines(&stock).try_into().unwrap();
    assert!(!alone.detections.is_empty());
    assert_eq!(frame.detections_b.as_ref(), Some(&alone.detections));
    assert_ne!(
        frame.detections, alone.detections,
        "the first half runs the bundled FocalModulation"
    );
}
