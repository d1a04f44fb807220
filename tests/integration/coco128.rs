//! `focalyolo detect --json` against Ultralytics' own predictions on the 128 coco128 images.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use focalyolo::output::report::{DetectionRecord, ImageRecord};

use crate::common::require_shared;

fn read_jsonl(path: &Path) -> HashMap<String, ImageRecord> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let record: ImageRecord = serde_json::from_str(line).unwrap();
            let name = Path::new(&record.source)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, record)
        })
        .collect()
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: &[f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    w * h / (area(a) + area(b) - w * h)
}

/// Boxes of `ours` that match one of `reference` (same class, IoU ≥ 0.95, |Δconf| ≤ 0.01), one to one.
fn matches(ours: &[DetectionRecord], reference: &[DetectionRecord]) -> usize {
    let mut taken = vec![false; ours.len()];
    reference
        .iter()
        .filter(|r| {
            let best = ours
                .iter()
                .enumerate()
                .filter(|(i, o)| {
                    !taken[*i] && o.class == r.class && (o.conf - r.conf).abs() <= 0.01
                })
                .map(|(i, o)| (i, iou(&o.xyxy, &r.xyxy)))
                .filter(|(_, v)| *v >= 0.95)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            best.map(|(i, _)| taken[i] = true).is_some()
        })
        .count()
}

fn compare_with_ultralytics(canvas_flag: Option<&str>, reference_file: &str) {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("detections.jsonl");
    let mut command = Command::new(env!("CARGO_BIN_EXE_focalyolo"));
    command
        .args(["detect", "--stock", "--device", "cpu", "--weights"])
        .arg(shared.join("weights/yolo11n.pt"))
        .arg("--source")
        .arg(shared.join("coco128/images"))
        .arg("--json")
        .arg(&out)
        .args(canvas_flag);
    let status = command.status().unwrap();
    assert!(status.success(), "detect failed: {status}");

    let ours = read_jsonl(&out);
    let reference = read_jsonl(&shared.join("weights").join(reference_file));
    assert_eq!(ours.len(), 128);
    let (mut matched, mut reference_total, mut our_total) = (0, 0, 0);
    for (name, expected) in &reference {
        let got = &ours[name];
        assert_eq!(
            (got.width, got.height),
            (expected.width, expected.height),
            "{name}: image size"
        );
        matched += matches(&got.detections, &expected.detections);
        reference_total += expected.detections.len();
        our_total += got.detections.len();
    }
    let recall = matched as f64 / reference_total as f64;
    let precision = matched as f64 / our_total as f64;
    println!(
        "{reference_file}: {matched} of {reference_total} reference boxes matched; we found {our_total}"
    );
    assert!(
        recall >= 0.99 && precision >= 0.99,
        "recall {recall:.4}, precision {precision:.4}"
    );
}

#[test]
fn detections_match_ultralytics_with_the_minimal_letterbox() {
    compare_with_ultralytics(None, "yolo11n_ref_coco128_rect.jsonl");
}

#[test]
fn detections_match_ultralytics_with_the_square_letterbox() {
    compare_with_ultralytics(Some("--square"), "yolo11n_ref_coco128_square.jsonl");
}

#[test]
fn val_matches_ultralytics_map_on_coco128() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("val.json");
    let status = Command::new(env!("CARGO_BIN_EXE_focalyolo"))
        .args(["val", "--stock", "--device", "cpu", "--weights"])
        .arg(shared.join("weights/yolo11n.pt"))
        .arg("--data")
        .arg(shared.join("coco128"))
        .arg("--json")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "val failed: {status}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let (map50_95, map50) = (
        report["map50_95"].as_f64().unwrap(),
        report["map50"].as_f64().unwrap(),
    );
    println!(
        "coco128: mAP50-95 {map50_95:.4} (Ultralytics 0.516), mAP50 {map50:.4} (Ultralytics 0.686)"
    );
    assert!((map50_95 - 0.516).abs() <= 0.005, "mAP50-95 {map50_95}");
    assert!((map50 - 0.686).abs() <= 0.005, "mAP50 {map50}");
    assert_eq!(report["images"], 128);
}

/// `detect --classes --max-det --agnostic` through the binary, on the reference's images:
/// only the asked classes, at most `--max-det` a picture, and every box kept one of those
/// Ultralytics finds for that class.
#[test]
fn class_filter_max_det_and_agnostic_nms_narrow_the_boxes() {
    let shared = require_shared!();
    let images = tempfile::tempdir().unwrap();
    let reference = read_jsonl(&shared.join("weights/yolo11n_ref_coco128_rect.jsonl"));
    let mut names: Vec<&String> = reference.keys().collect();
    names.sort();
    for name in names.iter().take(16) {
        std::fs::copy(
            shared.join("coco128/images").join(name),
            images.path().join(name),
        )
        .unwrap();
    }
    let out = images.path().join("people.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_focalyolo"))
        .args([
            "detect",
            "--stock",
            "--device",
            "cpu",
            "--classes",
            "0,2",
            "--max-det",
            "2",
        ])
        .arg("--agnostic")
        .arg("--weights")
        .arg(shared.join("weights/yolo11n.pt"))
        .arg("--source")
        .arg(images.path())
        .arg("--json")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "detect failed: {status}");
    let ours = read_jsonl(&out);
    assert_eq!(ours.len(), 16);
    let mut kept = 0;
    for (name, got) in &ours {
        assert!(
            got.detections.len() <= 2,
            "{name}: {} boxes",
            got.detections.len()
        );
        for detection in &got.detections {
            assert!(
                [0, 2].contains(&detection.class),
                "{name}: class {}",
                detection.class
            );
        }
        let wanted: Vec<DetectionRecord> = reference[name]
            .detections
            .iter()
            .filter(|d| [0, 2].contains(&d.class))
            .cloned()
            .collect();
        assert_eq!(
            matches(&got.detections, &wanted),
            got.detections.len(),
            "{name}: a kept box Ultralytics does not find"
        );
        kept += got.detections.len();
    }
    assert!(
        kept >= 8,
        "only {kept} boxes of people and cars in 16 pictures"
    );
}
