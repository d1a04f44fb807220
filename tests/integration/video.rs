//! Video sources on the real clips of `../shared/videos`: every frame decoded once, in
//! order, at the right size, with the timestamps ffprobe reports; damaged files end with
//! a clear error.

use std::path::Path;
use std::process::Command;

use focalyolo::source::{FrameSource, SourceError, SourceSpec, VideoSource};

use crate::common::require_shared;

/// (file, width, height, frames) as `../shared/README.md` lists them.
const CLIPS: [(&str, u32, u32, usize); 6] = [
    ("assembly_walking.mp4", 1280, 720, 144),
    ("huutrinh_people_movement.mp4", 1280, 720, 182),
    ("fiyud_dance.mp4", 720, 1280, 267),
    ("ckd_traffic.webm", 640, 360, 59),
    ("vamsi_pedestrians.avi", 480, 360, 795),
    ("mjpeg_beach_640x360.mjpeg", 640, 360, 400),
];

fn ffprobe(path: &Path, entries: &str) -> Vec<f64> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            entries,
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs (it comes with ffmpeg)");
    // A frame ffprobe has no time for (N/A: the last frames of the H.264 avi) is NaN.
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap_or(f64::NAN))
        .collect()
}

/// Each frame's presentation time as ffprobe reports it, from the start of the file (a
/// video stream may start after it: fiyud_dance.mp4 at 1/30 s, the avi at 0.2 s).
fn ffprobe_times(path: &Path) -> Vec<f64> {
    let start = ffprobe(path, "format=start_time")
        .first()
        .copied()
        .filter(|t| t.is_finite())
        .unwrap_or(0.0);
    ffprobe(path, "frame=best_effort_timestamp_time")
        .iter()
        .map(|t| t - start)
        .collect()
}

#[test]
fn every_clip_decodes_each_frame_once_in_order_with_its_timestamp() {
    let shared = require_shared!();
    for (name, width, height, count) in CLIPS {
        let path = shared.join("videos").join(name);
        let mut source = VideoSource::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut times = Vec::new();
        while let Some(frame) = source
            .next_frame()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
        {
            assert_eq!(frame.index as usize, times.len(), "{name}: frame order");
            assert_eq!(frame.image.dimensions(), (width, height), "{name}: size");
            times.push(frame.pts);
        }
        assert_eq!(times.len(), count, "{name}: frame count");
        // The raw MJPEG stream has no timestamps: ffprobe and we both assume 25 fps.
        let reference = ffprobe_times(&path);
        assert_eq!(reference.len(), count, "{name}: ffprobe's frame count");
        let timed = reference.iter().filter(|t| t.is_finite()).count();
        assert!(
            timed + 2 >= count,
            "{name}: ffprobe timed only {timed} frames"
        );
        for (i, (ours, theirs)) in times.iter().zip(&reference).enumerate() {
            if theirs.is_nan() {
                continue;
            }
            assert!(
                (ours - theirs).abs() < 1e-3,
                "{name}: frame {i} at {ours} s, ffprobe says {theirs} s"
            );
        }
        assert!(
            source.frame_rate().is_some_and(|fps| fps > 1.0),
            "{name}: frame rate"
        );
    }
}

#[test]
fn seeking_continues_from_the_requested_time() {
    let shared = require_shared!();
    let path = shared.join("videos/vamsi_pedestrians.avi");
    let mut source = VideoSource::open(&path).unwrap();
    source.seek(30.0).unwrap();
    let frame = source.next_frame().unwrap().expect("a frame after 30 s");
    // 10 fps: the frame at 30.0 s is frame 300.
    assert!((frame.pts - 30.0).abs() < 0.051, "pts {}", frame.pts);
    assert_eq!(frame.index, 300);
    let next = source.next_frame().unwrap().unwrap();
    assert!((next.pts - frame.pts - 0.1).abs() < 1e-3);
}

/// The first `fraction` of a clip's bytes, as a file in `dir`.
fn truncated(source: &Path, fraction: f64, dir: &Path) -> std::path::PathBuf {
    let bytes = std::fs::read(source).unwrap();
    let target = dir.join(source.file_name().unwrap());
    std::fs::write(&target, &bytes[..(bytes.len() as f64 * fraction) as usize]).unwrap();
    target
}

#[test]
fn damaged_videos_end_with_a_clear_error() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "assembly_walking.mp4",
        "ckd_traffic.webm",
        "vamsi_pedestrians.avi",
        "mjpeg_beach_640x360.mjpeg",
    ] {
        let path = truncated(&shared.join("videos").join(name), 0.5, dir.path());
        let outcome = VideoSource::open(&path).and_then(|mut source| {
            let mut frames = 0;
            while source.next_frame()?.is_some() {
                frames += 1;
            }
            Ok(frames)
        });
        match outcome {
            Err(SourceError::Video { path: p, reason }) => {
                assert_eq!(p, path);
                assert!(!reason.is_empty(), "{name}: an empty reason");
            }
            other => panic!("{name} cut in half: expected a video error, got {other:?}"),
        }
    }
    let noise = dir.path().join("noise.mp4");
    std::fs::write(
        &noise,
        (0..100_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let error = VideoSource::open(&noise)
        .err()
        .expect("noise is not a video");
    assert!(
        error.to_string().contains("noise.mp4"),
        "the error names the file: {error}"
    );
}

#[test]
fn a_missing_camera_is_a_clear_error() {
    // No machine this runs on has 200 cameras.
    let error = SourceSpec::Camera(199)
        .open(&Default::default(), None)
        .err()
        .expect("camera 199 does not exist");
    assert!(
        matches!(error, SourceError::Camera { index: 199, .. }),
        "{error}"
    );
    assert!(error.to_string().starts_with("camera 199: "), "{error}");
}
