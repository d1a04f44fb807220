//! `run --count-line/--count-zone` against Ultralytics 8.4's `solutions.ObjectCounter`
//! (yolo11n.pt, ByteTrack, conf 0.25, imgsz 640) on the shared clips: the same final
//! per-class IN/OUT, and the same cumulative IN/OUT after at least 98% of the frames.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use focalyolo::count::InOut;
use focalyolo::output::report::{CountRecord, FrameRecord};
use focalyolo::source::{FrameSource, VideoSource};
use serde::Deserialize;

use crate::common::{frame_records, require_shared, run_yolo11n, succeeded};

/// One `videos/ref/*_count_*.json`.
#[derive(Deserialize)]
struct Reference {
    region: Vec<[f32; 2]>,
    #[serde(rename = "in")]
    inward: u64,
    #[serde(rename = "out")]
    outward: u64,
    /// Per class name, `{"IN": n, "OUT": n}`.
    classwise: BTreeMap<String, BTreeMap<String, u64>>,
    /// The cumulative `[in, out]` after each frame.
    per_frame: Vec<[u64; 2]>,
}

impl Reference {
    fn load(shared: &Path, name: &str) -> Self {
        let text = std::fs::read_to_string(shared.join("videos/ref").join(name)).unwrap();
        serde_json::from_str(&text).expect("a counting reference")
    }

    /// `X1,Y1,X2,Y2,…` as the CLI takes the region.
    fn argument(&self) -> String {
        let numbers: Vec<String> = self
            .region
            .iter()
            .flatten()
            .map(|v| v.to_string())
            .collect();
        numbers.join(",")
    }

    /// The final per-class counts; classes never counted left out, as ours leaves them.
    fn classes(&self) -> BTreeMap<String, InOut> {
        self.classwise
            .iter()
            .map(|(name, c)| {
                let inward = c.get("IN").copied().unwrap_or(0);
                let outward = c.get("OUT").copied().unwrap_or(0);
                (name.clone(), InOut { inward, outward })
            })
            .filter(|(_, c)| c.inward + c.outward > 0)
            .collect()
    }
}

/// `run --stock --track --conf 0.25 --imgsz 640` on the CPU, as the references were made,
/// plus `regions`.
fn count(shared: &Path, clip: &str, dir: &Path, regions: &[&str]) -> (Output, Vec<FrameRecord>) {
    let json = dir.join("counts.jsonl");
    let csv = dir.join("counts.csv");
    let reference_settings = ["--stock", "--track", "--conf", "0.25", "--imgsz", "640"];
    let csv_args = ["--counts-csv", csv.to_str().unwrap()];
    let args = [&reference_settings[..], regions, &csv_args].concat();
    let output = run_yolo11n(shared, &shared.join("videos").join(clip), &args, &json);
    succeeded(&output);
    (output, frame_records(&json))
}

/// Region `name`'s counts on every frame.
fn region_counts<'a>(frames: &'a [FrameRecord], name: &str) -> Vec<&'a CountRecord> {
    frames
        .iter()
        .map(|frame| {
            let counts = frame
                .counts
                .as_ref()
                .expect("every frame carries the counts");
            counts
                .iter()
                .find(|c| c.region == name)
                .expect("the region")
        })
        .collect()
}

fn agrees_with_ultralytics(frames: &[FrameRecord], region: &str, reference: &Reference) {
    let ours = region_counts(frames, region);
    assert_eq!(
        ours.len(),
        reference.per_frame.len(),
        "one JSON line per frame"
    );
    let last = ours.last().expect("frames");
    println!(
        "{region}: ours IN {} OUT {} {:?}; Ultralytics IN {} OUT {} {:?}",
        last.inward,
        last.outward,
        last.classes,
        reference.inward,
        reference.outward,
        reference.classes()
    );
    assert_eq!(
        (last.inward, last.outward),
        (reference.inward, reference.outward)
    );
    assert_eq!(last.classes, reference.classes());
    let differing: Vec<usize> = ours
        .iter()
        .zip(&reference.per_frame)
        .enumerate()
        .filter(|(_, (c, r))| [c.inward, c.outward] != **r)
        .map(|(i, _)| i)
        .collect();
    println!(
        "{region}: cumulative counts differ on {} of {} frames {differing:?}",
        differing.len(),
        ours.len()
    );
    assert!(
        differing.is_empty(),
        "{region}: frames {differing:?} differ"
    );
}

/// Every crossing of the JSON lines, as its CSV row would read.
fn crossings_as_rows(frames: &[FrameRecord]) -> Vec<String> {
    frames
        .iter()
        .flat_map(|frame| {
            frame.crossings.iter().flatten().map(move |c| {
                format!(
                    "{},{:.3},{},{},{},{},{}",
                    frame.frame,
                    frame.pts,
                    c.region,
                    c.track_id,
                    c.class,
                    c.name,
                    match c.direction {
                        focalyolo::count::Direction::In => "in",
                        focalyolo::count::Direction::Out => "out",
                    }
                )
            })
        })
        .collect()
}

#[test]
fn a_line_and_a_zone_count_as_ultralytics_counts_on_pedestrians() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let line = Reference::load(&shared, "vamsi_pedestrians_count_line.json");
    let zone = Reference::load(&shared, "vamsi_pedestrians_count_zone.json");
    // Regions are independent: both in one run.
    let (output, frames) = count(
        &shared,
        "vamsi_pedestrians.avi",
        dir.path(),
        &[
            "--count-line",
            &line.argument(),
            "--count-zone",
            &zone.argument(),
        ],
    );
    agrees_with_ultralytics(&frames, "line 1", &line);
    agrees_with_ultralytics(&frames, "zone 1", &zone);
    // The CSV has a row per crossing in the JSON, and the final counts reach stderr.
    let csv = std::fs::read_to_string(dir.path().join("counts.csv")).unwrap();
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("frame,time,region,track_id,class,name,direction")
    );
    let rows: Vec<String> = rows.map(str::to_string).collect();
    assert_eq!(rows, crossings_as_rows(&frames));
    assert_eq!(
        rows.len() as u64,
        line.inward + line.outward + zone.inward + zone.outward
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("line 1: IN {}, OUT {}", line.inward, line.outward)),
        "{stderr}"
    );
}

#[test]
fn a_line_counts_as_ultralytics_counts_on_people_walking() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let line = Reference::load(&shared, "assembly_walking_count_line.json");
    let video = dir.path().join("counted.mp4");
    let (_, frames) = count(
        &shared,
        "assembly_walking.mp4",
        dir.path(),
        &[
            "--count-line",
            &line.argument(),
            "--save",
            video.to_str().unwrap(),
        ],
    );
    agrees_with_ultralytics(&frames, "line 1", &line);
    // The saved video shows the line (magenta, from (640, 200) to (640, 700)) on every
    // frame, over the people crossing it.
    let mut saved = VideoSource::open(&video).unwrap();
    let mut decoded = 0;
    while let Some(frame) = saved.next_frame().unwrap() {
        let [r, g, b] = frame.image.get_pixel(640, 450).0;
        assert!(
            r > 180 && g < 90 && b > 180,
            "frame {}: {r},{g},{b}",
            frame.index
        );
        decoded += 1;
    }
    assert_eq!(decoded, frames.len());
}

/// `run --stock` at 320 on the pedestrians clip with `args`, its JSON lines to `json`.
fn run_on_pedestrians(shared: &Path, args: &[&str], json: &Path) -> Output {
    let clip = shared.join("videos/vamsi_pedestrians.avi");
    let args = [&["--stock", "--imgsz", "320"], args].concat();
    run_yolo11n(shared, &clip, &args, json)
}

/// `run` with `args`, expected to fail before any frame is written; its stderr.
fn refused(shared: &Path, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = run_on_pedestrians(shared, args, &dir.path().join("out.jsonl"));
    assert!(!output.status.success(), "{args:?} should be refused");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn regions_outside_the_frame_or_without_length_are_refused() {
    let shared = require_shared!();
    // The clip is 480×360.
    let outside = refused(&shared, &["--count-line", "240,150,240,400"]);
    assert!(
        outside.contains("line 1: point (240, 400) is outside the 480×360 frame"),
        "{outside}"
    );
    let flat = refused(&shared, &["--count-zone", "0,0,100,100,200,200"]);
    assert!(
        flat.contains("zone 1: the zone's points are all on one line"),
        "{flat}"
    );
    let odd = refused(&shared, &["--count-line", "1,2,3"]);
    assert!(odd.contains("line 1: 3 coordinates"), "{odd}");
    let csv_alone = refused(&shared, &["--counts-csv", "c.csv"]);
    assert!(
        csv_alone.contains("--counts-csv needs a region"),
        "{csv_alone}"
    );
}

#[test]
fn counting_turns_tracking_on_and_says_so() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.jsonl");
    let output = run_on_pedestrians(
        &shared,
        &["--count-line", "240,150,240,360", "--max-frames", "3"],
        &json,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("--track is on"), "{stderr}");
    let first: FrameRecord = serde_json::from_str(
        std::fs::read_to_string(&json)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    // Ultralytics' reference tracks five objects in the clip's first frame, at 0.69 to 0.84.
    assert!(
        !first.detections.is_empty(),
        "expected the pedestrians in the clip's first frame to be detected and tracked"
    );
    assert!(
        first.detections.iter().all(|d| d.track_id.is_some()),
        "a detection without a track ID: {:?}",
        first.detections
    );
    assert_eq!(first.counts.as_ref().map(Vec::len), Some(1));
}
