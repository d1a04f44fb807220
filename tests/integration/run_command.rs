//! `focalyolo run` end to end on real clips: one JSON line per decoded frame, an annotated
//! video with as many frames, overlays, looping, and clear errors.

use std::path::Path;
use std::process::{Command, Output};

use focalyolo::source::{FrameSource, VideoSource};

use crate::common::{frame_records, require_shared, succeeded};

/// `focalyolo run` on `source` with YOLO11n on the CPU at 320, plus `args`.
fn run(shared: &Path, source: &Path, args: &[&str]) -> Output {
    let weights = shared.join("weights/yolo11n.pt");
    Command::new(env!("CARGO_BIN_EXE_focalyolo"))
        .arg("run")
        .args(["--device", "cpu", "--imgsz", "320", "--weights"])
        .arg(&weights)
        .arg("--source")
        .arg(source)
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Every frame of a video, as (width, height).
fn decoded_sizes(path: &Path) -> Vec<(u32, u32)> {
    let mut video = VideoSource::open(path).unwrap();
    std::iter::from_fn(|| video.next_frame().unwrap())
        .map(|f| f.image.dimensions())
        .collect()
}

#[test]
fn every_frame_gets_one_json_line_and_one_video_frame() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let (json, video) = (dir.path().join("out.jsonl"), dir.path().join("out.mp4"));
    let clip = shared.join("videos/ckd_traffic.webm");
    let output = run(
        &shared,
        &clip,
        &[
            "--json",
            json.to_str().unwrap(),
            "--save",
            video.to_str().unwrap(),
        ],
    );
    succeeded(&output);
    let lines = frame_records(&json);
    assert_eq!(lines.len(), 59);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line.frame, i as u64);
        assert_eq!((line.width, line.height), (640, 360));
    }
    assert!(lines.windows(2).all(|w| w[1].pts > w[0].pts));
    // ffprobe puts the last frame at 2.336 s: the clip skips frames, so it is not 58/29.97.
    assert!((lines[58].pts - 2.336).abs() < 1e-3, "{}", lines[58].pts);
    let cars = lines
        .iter()
        .filter(|l| l.detections.iter().any(|d| d.name == "car"))
        .count();
    assert!(
        cars > 50,
        "cars seen in only {cars} of 59 frames of road traffic"
    );
    assert_eq!(decoded_sizes(&video), vec![(640, 360); 59]);
}

#[test]
fn overlays_lay_each_map_over_its_own_copy() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("maps.mkv");
    let clip = shared.join("videos/mjpeg_beach_640x360.mjpeg");
    let output = run(
        &shared,
        &clip,
        &[
            "--max-frames",
            "3",
            "--overlay",
            "gates,modulator",
            "--save",
            video.to_str().unwrap(),
        ],
    );
    succeeded(&output);
    // Gate level 0, level 1, global and the modulator: two rows of two 640×360 tiles.
    assert_eq!(decoded_sizes(&video), vec![(1280, 720); 3]);

    let unknown = run(
        &shared,
        &clip,
        &[
            "--max-frames",
            "1",
            "--overlay",
            "gate-level-7",
            "--save",
            video.to_str().unwrap(),
        ],
    );
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("gate-level-0"), "lists the maps: {stderr}");
}

#[test]
fn looping_keeps_counting_frames_and_time() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("loop.jsonl");
    let clip = shared.join("videos/ckd_traffic.webm");
    let output = run(
        &shared,
        &clip,
        &[
            "--loop",
            "--max-frames",
            "130",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    succeeded(&output);
    let lines = frame_records(&json);
    assert_eq!(lines.len(), 130);
    assert!(lines.iter().enumerate().all(|(i, l)| l.frame == i as u64));
    assert!(lines.windows(2).all(|w| w[1].pts > w[0].pts));
    // The third pass repeats the first: same boxes on the same picture.
    assert_eq!(lines[5].detections, lines[5 + 2 * 59].detections);
}

#[test]
fn portrait_video_keeps_its_shape() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("portrait.jsonl");
    let clip = shared.join("videos/fiyud_dance.mp4");
    let output = run(
        &shared,
        &clip,
        &["--max-frames", "4", "--json", json.to_str().unwrap()],
    );
    succeeded(&output);
    let lines = frame_records(&json);
    assert_eq!(lines.len(), 4);
    assert!(lines.iter().all(|l| (l.width, l.height) == (720, 1280)));
    assert!(
        lines[0]
            .detections
            .iter()
            .filter(|d| d.name == "person")
            .count()
            >= 2,
        "three dancers: {:?}",
        lines[0].detections
    );
}

#[test]
fn a_truncated_video_keeps_its_frames_and_ends_with_an_error() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(shared.join("videos/ckd_traffic.webm")).unwrap();
    let clip = dir.path().join("cut.webm");
    std::fs::write(&clip, &bytes[..bytes.len() / 2]).unwrap();
    let json = dir.path().join("cut.jsonl");
    let output = run(&shared, &clip, &["--json", json.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot read video"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines = frame_records(&json);
    assert!(
        !lines.is_empty() && lines.len() < 59,
        "{} frames kept",
        lines.len()
    );
}

#[test]
fn a_missing_ffmpeg_is_a_clear_message() {
    let shared = require_shared!();
    let weights = shared.join("weights/yolo11n.pt");
    let clip = shared.join("videos/ckd_traffic.webm");
    let output = Command::new(env!("CARGO_BIN_EXE_focalyolo"))
        .env("PATH", "/nonexistent")
        .args(["run", "--device", "cpu", "--weights"])
        .arg(&weights)
        .arg("--source")
        .arg(&clip)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`ffmpeg` program is needed"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
