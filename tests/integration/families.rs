//! YOLOv8 and YOLO26 checkpoints beside YOLO11: each checkpoint of Ultralytics' task
//! references (`../shared/weights/tasks`, or the folder `FOCALYOLO_TASKS` names, such as
//! one `make_task_checkpoints.py` filled with other scales and class counts) built from its
//! own YAML: a detection model's raw outputs against Ultralytics' (`NAME.io.safetensors`)
//! and its boxes against Ultralytics' `predict` (`NAME.predict.jsonl`, and
//! `predict(nms=False)` for YOLO26's one-to-one head); any other task's model refused by its
//! head's name; and the refusals of YAMLs and tensors that do not fit.

use std::path::{Path, PathBuf};
use std::process::Command;

use focalyolo::compute::device::ComputeDevice;
use focalyolo::inference::postprocess::box_iou;
use focalyolo::inference::rotated;
use focalyolo::model::conv::upload;
use focalyolo::model::{Activations, Head, ModelError, ModelInfo, Task, Yolo};
use focalyolo::weights::Weights;

use crate::common::{nan_max, require_shared, test_devices, to_vec};

/// A checkpoint of the task references, and the task its predictions are for.
struct Checkpoint {
    name: String,
    folder: PathBuf,
    task: String,
}

impl Checkpoint {
    fn file(&self, suffix: &str) -> PathBuf {
        self.folder.join(format!("{}{suffix}", self.name))
    }
}

/// Every `NAME.pt` of the task references that has its `NAME.predict.jsonl`.
fn checkpoints(shared: &Path) -> Vec<Checkpoint> {
    let folder = std::env::var_os("FOCALYOLO_TASKS")
        .map_or_else(|| shared.join("weights/tasks"), PathBuf::from);
    let mut found: Vec<Checkpoint> = std::fs::read_dir(&folder)
        .unwrap()
        .filter_map(|entry| {
            let name = entry
                .ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".pt")?
                .to_string();
            let predictions = std::fs::read_to_string(folder.join(format!("{name}.predict.jsonl")));
            let first: serde_json::Value =
                serde_json::from_str(predictions.ok()?.lines().next()?).ok()?;
            Some(Checkpoint {
                task: first["task"].as_str()?.to_string(),
                name,
                folder: folder.clone(),
            })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        found.iter().any(|c| c.task == "detect"),
        "no detection checkpoint in {}",
        folder.display()
    );
    found
}

/// `ours` against `expected` as the YOLO11 goldens allow: 1e-4 plus the rounding of the
/// magnitude itself (2e-7·|x|); the worst ratio to that tolerance.
fn worst_ratio(ours: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(ours.len(), expected.len(), "output sizes");
    ours.iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs() / (1e-4 + 2e-7 * b.abs()))
        .fold(0.0, nan_max)
}

/// [`worst_ratio`] for decoded predictions `(1, rows, anchors)` of a 256×256 input, the
/// rows in pixels (boxes, keypoints' x and y) taken in cells of their anchor's level: a box
/// side is DFL's expected bin times the stride, so the last bits of the logits (BatchNorm
/// folded, sums in another order) move it by up to 32× more pixels at P5 than a class
/// score. On random inputs the bins spread and this shows: up to 7e-4 px at 190 px (4e-5
/// cells) on an OBB head.
fn worst_prediction_ratio(ours: &[f32], expected: &[f32], info: &ModelInfo) -> f32 {
    let in_pixels = |row: usize| match info.task {
        _ if row < 4 => true,
        Task::Pose { dims, .. } if row >= 4 + info.num_classes => {
            (row - 4 - info.num_classes) % dims < 2
        }
        _ => false,
    };
    let anchors = [8, 16, 32].map(|stride| (256 / stride) * (256 / stride));
    let count: usize = anchors.iter().sum();
    let stride = |anchor: usize| match anchor {
        a if a < anchors[0] => 8.0,
        a if a < anchors[0] + anchors[1] => 16.0,
        _ => 32.0,
    };
    let in_cells = |values: &[f32]| -> Vec<f32> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if in_pixels(i / count) {
                    v / stride(i % count)
                } else {
                    *v
                }
            })
            .collect()
    };
    worst_ratio(&in_cells(ours), &in_cells(expected))
}

#[test]
fn raw_outputs_equal_ultralytics_for_every_checkpoint() {
    let shared = require_shared!();
    for checkpoint in checkpoints(&shared) {
        let name = &checkpoint.name;
        let weights = Weights::load(checkpoint.file(".pt")).unwrap();
        let io = Weights::load(checkpoint.file(".io.safetensors")).unwrap();
        let one_to_one = io.contains("output.1.one2one.boxes");
        // A segmentation model's output is (predictions, prototypes).
        let segment = io.contains("output.0.1");
        let (predictions_key, protos_key) = if segment {
            ("output.0.0", Some("output.0.1"))
        } else {
            ("output.0", None)
        };
        for device in test_devices() {
            let (model, info) = Yolo::load(&weights, &device.device).unwrap();
            assert_eq!(info.has_one_to_one, one_to_one, "{name}");
            assert_eq!(info.task.name(), checkpoint.task, "{name}");
            let input = upload::<4>(io.get("input").unwrap(), &device.device);
            let output = model.forward_outputs(input.clone(), Head::OneToMany);
            let mut compared = vec![(to_vec(output.predictions), predictions_key)];
            if let Some(key) = protos_key {
                let protos = output.protos.expect("a segmentation head gives prototypes");
                compared.push((to_vec(protos), key));
            }
            if one_to_one {
                let neck = model.run(Activations::input(input), model.last_layer() - 1, &mut ());
                let features = model.detect_inputs(&neck).unwrap();
                let task = model.detect().forward_task_raw(&features, Head::OneToOne);
                let (boxes, scores) = model.detect().forward_raw(features, Head::OneToOne);
                compared.push((to_vec(boxes), "output.1.one2one.boxes"));
                compared.push((to_vec(scores), "output.1.one2one.scores"));
                if segment {
                    compared.push((to_vec(task.unwrap()), "output.1.one2one.mask_coefficient"));
                }
            }
            for (ours, key) in compared {
                let expected = &io.get(key).unwrap().values;
                let worst = if key == predictions_key {
                    worst_prediction_ratio(&ours, expected, &info)
                } else {
                    worst_ratio(&ours, expected)
                };
                println!(
                    "{name} ({} {}) {key} on {}: worst |Δ| / tolerance {worst:.3}",
                    info.name(),
                    info.task.name(),
                    device.description
                );
                assert!(
                    worst <= 1.0,
                    "{name} {key} on {}: {worst}×",
                    device.description
                );
            }
        }
    }
}

#[test]
fn the_shared_families_are_named_for_what_they_are() {
    let shared = require_shared!();
    let cpu = ComputeDevice::cpu();
    for (file, family, one_to_one) in [
        ("yolo26n-random.pt", "YOLO26n", true),
        ("yolov8n-fm-random.pt", "YOLOv8n", false),
    ] {
        let weights = Weights::load(shared.join("weights/tasks").join(file)).unwrap();
        let (_, info) = Yolo::load(&weights, &cpu.device).unwrap();
        assert_eq!(
            (info.name().as_str(), info.has_one_to_one),
            (family, one_to_one)
        );
    }
}

/// One image of a `predict.jsonl` (Ultralytics') or of `detect --json` (ours), each
/// detection with what its task adds.
struct ImageRecord {
    source: String,
    width: usize,
    height: usize,
    detections: Vec<DetectionRecord>,
}

#[derive(Default)]
struct DetectionRecord {
    xyxy: [f32; 4],
    conf: f32,
    class: usize,
    keypoints: Option<Vec<[f32; 3]>>,
    /// The mask's outlines in image pixels, and (Ultralytics') its area on the input canvas.
    outlines: Option<Vec<Vec<[f32; 2]>>>,
    area: Option<usize>,
    xywhr: Option<[f32; 5]>,
}

fn parse<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> T {
    serde_json::from_value(value.clone()).unwrap()
}

/// A line of ours (`detections` with `keypoints`, `mask`, `xywhr` inside) or of
/// Ultralytics' (`keypoints`, `masks_xy`, `mask_area_px` beside `detections`, or `obb`).
fn image_record(line: &str) -> ImageRecord {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let beside = |key: &str, i: usize| v.get(key).and_then(|list| list.get(i));
    let detections = match v.get("obb") {
        Some(boxes) => boxes
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let xywhr: [f32; 5] = parse(&b["xywhr"]);
                DetectionRecord {
                    xyxy: rotated::bounding_box(&rotated::corners(&xywhr)),
                    conf: parse(&b["conf"]),
                    class: parse(&b["class"]),
                    xywhr: Some(xywhr),
                    ..DetectionRecord::default()
                }
            })
            .collect(),
        None => v["detections"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, d)| DetectionRecord {
                xyxy: parse(&d["xyxy"]),
                conf: parse(&d["conf"]),
                class: parse(&d["class"]),
                keypoints: d.get("keypoints").or(beside("keypoints", i)).map(parse),
                outlines: d
                    .get("mask")
                    .map(parse)
                    .or_else(|| beside("masks_xy", i).map(|outline| vec![parse(outline)])),
                area: beside("mask_area_px", i).map(parse),
                xywhr: d.get("xywhr").map(parse),
            })
            .collect(),
    };
    ImageRecord {
        source: parse(&v["source"]),
        width: parse(&v["width"]),
        height: parse(&v["height"]),
        detections,
    }
}

fn read_jsonl(path: &Path) -> Vec<ImageRecord> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(image_record)
        .collect()
}

/// The pixels of a `width × height` image whose centres lie inside `outlines` (even-odd,
/// so a hole's outline and Ultralytics' segments joined by doubled lines cancel out).
fn fill(outlines: &[Vec<[f32; 2]>], width: usize, height: usize) -> Vec<bool> {
    let mut inside = vec![false; width * height];
    for y in 0..height {
        let cy = y as f32 + 0.5;
        let mut crossings: Vec<f32> = Vec::new();
        for outline in outlines {
            for (i, a) in outline.iter().enumerate() {
                let b = outline[(i + 1) % outline.len()];
                if (a[1] <= cy) != (b[1] <= cy) {
                    crossings.push(a[0] + (cy - a[1]) / (b[1] - a[1]) * (b[0] - a[0]));
                }
            }
        }
        crossings.sort_by(f32::total_cmp);
        for pair in crossings.chunks_exact(2) {
            let from = (pair[0] - 0.5).ceil().max(0.0) as usize;
            let to = ((pair[1] - 0.5).ceil().max(0.0) as usize).min(width);
            for x in from..to {
                inside[y * width + x] ^= true;
            }
        }
    }
    inside
}

fn mask_iou(a: &[bool], b: &[bool]) -> f64 {
    let both = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let either = a.iter().zip(b).filter(|(x, y)| **x || **y).count();
    if either == 0 {
        1.0
    } else {
        both as f64 / either as f64
    }
}

/// Confidences closer than this are ties whose NMS order is numerical noise: random weights
/// give the anchors of the letterbox's uniform border near-equal scores, and which of two
/// overlapping near-equal boxes NMS keeps depends on digits past the goldens' tolerance.
const TIE: f32 = 1e-4;

/// Whether `boxes[i]` overlaps another box of its class whose confidence ties with its own.
fn in_tie(boxes: &[DetectionRecord], i: usize) -> bool {
    let a = &boxes[i];
    boxes.iter().enumerate().any(|(j, b)| {
        j != i
            && b.class == a.class
            && (b.conf - a.conf).abs() <= TIE
            && box_iou(&a.xyxy, &b.xyxy) > 0.0
    })
}

/// Whether NMS's verdict on `from[i]` hung on a near-tie: it is in one, or a box of `to` that
/// could have suppressed it (its class, no less confident, IoU above predict's 0.7) is.
fn hangs_on_a_tie(from: &[DetectionRecord], to: &[DetectionRecord], i: usize) -> bool {
    let a = &from[i];
    in_tie(from, i)
        || to.iter().enumerate().any(|(j, b)| {
            b.class == a.class
                && b.conf >= a.conf
                && box_iou(&a.xyxy, &b.xyxy) > 0.7
                && in_tie(to, j)
        })
}

/// Of the boxes of `from`: the partners they have in `to` (same class, IoU ≥ 0.9,
/// confidence within 0.01, each partner taken once), and how many without one had their
/// NMS verdict hang on a near-tie.
fn matched(from: &[DetectionRecord], to: &[DetectionRecord]) -> (Vec<(usize, usize)>, usize) {
    let mut taken = vec![false; to.len()];
    let (mut found, mut tied) = (Vec::new(), 0);
    for (i, a) in from.iter().enumerate() {
        let partner = to
            .iter()
            .enumerate()
            .filter(|(j, b)| {
                !taken[*j]
                    && b.class == a.class
                    && (b.conf - a.conf).abs() <= 0.01
                    && box_iou(&a.xyxy, &b.xyxy) >= 0.9
            })
            .max_by(|x, y| box_iou(&a.xyxy, &x.1.xyxy).total_cmp(&box_iou(&a.xyxy, &y.1.xyxy)));
        match partner {
            Some((j, _)) => {
                taken[j] = true;
                found.push((i, j));
            }
            None if hangs_on_a_tie(from, to, i) => tied += 1,
            None => {}
        }
    }
    (found, tied)
}

/// What a task adds, compared on the boxes matched: keypoints within 1.5 px and 0.01
/// visibility, masks (of 100 pixels or more) at IoU ≥ 0.95 with their outlines filled at
/// the image's size, oriented boxes at ProbIoU ≥ 0.95; each `[compared, within]`.
#[derive(Default)]
struct TaskAgreement {
    keypoints: [usize; 2],
    masks: [usize; 2],
    oriented: [usize; 2],
}

impl TaskAgreement {
    fn add(&mut self, ours: &DetectionRecord, theirs: &DetectionRecord, image: &ImageRecord) {
        if let (Some(a), Some(b)) = (&ours.keypoints, &theirs.keypoints) {
            assert_eq!(a.len(), b.len(), "keypoint counts");
            for (p, q) in a.iter().zip(b) {
                self.keypoints[0] += 1;
                let near = (p[0] - q[0]).abs() <= 1.5 && (p[1] - q[1]).abs() <= 1.5;
                self.keypoints[1] += usize::from(near && (p[2] - q[2]).abs() <= 0.01);
            }
        }
        if let (Some(a), Some(b), Some(area)) = (&ours.outlines, &theirs.outlines, theirs.area)
            && area >= 100
        {
            let (w, h) = (image.width, image.height);
            self.masks[0] += 1;
            let iou = mask_iou(&fill(a, w, h), &fill(b, w, h));
            self.masks[1] += usize::from(iou >= 0.95);
        }
        if let (Some(a), Some(b)) = (&ours.xywhr, &theirs.xywhr) {
            self.oriented[0] += 1;
            self.oriented[1] += usize::from(rotated::probiou(a, b) >= 0.95);
        }
    }
}

/// `focalyolo detect --json` on the images `reference` names, against it: ≥ 99% of the
/// boxes matched both ways; on the matched boxes, ≥ 99% of keypoints and oriented boxes
/// and ≥ 98% of masks agree ([`TaskAgreement`]).
fn compare_with_predict(shared: &Path, checkpoint: &Checkpoint, reference: &str, flags: &[&str]) {
    let label = format!("{}{reference}", checkpoint.name);
    let expected = read_jsonl(&checkpoint.file(reference));
    let images = tempfile::tempdir().unwrap();
    for record in &expected {
        let name = Path::new(&record.source).file_name().unwrap();
        std::fs::copy(
            shared.join("coco128/images").join(name),
            images.path().join(name),
        )
        .unwrap();
    }
    let json = images.path().join("ours.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_focalyolo"))
        // The checkpoint as Ultralytics runs it: its own layer 9, even where the bundled
        // FocalModulation fits (the transplants' detector is YOLO11n's).
        .args(["detect", "--device", "cpu", "--stock", "--weights"])
        .arg(checkpoint.file(".pt"))
        .arg("--source")
        .arg(images.path())
        .arg("--json")
        .arg(&json)
        .args(flags)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "detect failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ours = read_jsonl(&json);
    // [boxes, matched, unmatched in a near-tie], ours then theirs.
    let mut counts = [[0usize; 3]; 2];
    let mut agreement = TaskAgreement::default();
    for theirs in &expected {
        let name = Path::new(&theirs.source).file_name().unwrap();
        let Some(mine) = ours
            .iter()
            .find(|r| Path::new(&r.source).file_name() == Some(name))
        else {
            panic!("{label}: no output for {name:?}")
        };
        for (count, (from, to)) in counts.iter_mut().zip([
            (&mine.detections, &theirs.detections),
            (&theirs.detections, &mine.detections),
        ]) {
            let (found, tied) = matched(from, to);
            *count = [
                count[0] + from.len(),
                count[1] + found.len(),
                count[2] + tied,
            ];
        }
        for (i, j) in matched(&mine.detections, &theirs.detections).0 {
            agreement.add(&mine.detections[i], &theirs.detections[j], theirs);
        }
    }
    for (what, [compared, within], share) in [
        ("keypoints", agreement.keypoints, 0.99),
        ("masks", agreement.masks, 0.98),
        ("oriented boxes", agreement.oriented, 0.99),
    ] {
        if compared > 0 {
            println!("{label}: {within} of {compared} {what} agree");
            assert!(
                within as f64 >= share * compared as f64,
                "{label}: {within} of {compared} {what} agree"
            );
        }
    }
    let expected_extra = match checkpoint.task.as_str() {
        "pose" => agreement.keypoints[0],
        "segment" => agreement.masks[0],
        "obb" => agreement.oriented[0],
        _ => 1,
    };
    assert!(
        expected_extra > 0,
        "{label}: no {} output compared",
        checkpoint.task
    );
    for (whose, [boxes, found, tied]) in ["our", "Ultralytics'"].into_iter().zip(counts) {
        println!(
            "{label}: {found} of {whose} {boxes} boxes matched; {tied} more whose NMS verdict hung on a near-tie (|Δconf| ≤ {TIE})"
        );
        assert!(boxes >= 15, "{label}: too few boxes to judge");
        // Near-ties may go either way, but never as most of what is compared. (Random weights
        // saturate whole rows of the letterbox's border at one score: up to 27% of a
        // YOLOv8m's 51 boxes hung on such ties here.)
        assert!(
            3 * tied <= boxes,
            "{label}: {tied} of {boxes} {whose} boxes in near-ties"
        );
        assert!(
            found as f64 >= 0.99 * (boxes - tied) as f64,
            "{label}: {found} of {whose} {} boxes outside near-ties matched",
            boxes - tied
        );
    }
}

/// Every checkpoint's boxes (and masks, keypoints, oriented boxes) against `predict`, and a
/// one-to-one head's against `predict(nms=False)` with `--no-nms`.
#[test]
fn predictions_equal_ultralytics_predict_with_and_without_nms() {
    let shared = require_shared!();
    for checkpoint in &checkpoints(&shared) {
        compare_with_predict(&shared, checkpoint, ".predict.jsonl", &[]);
        if checkpoint.file(".predict-nms-false.jsonl").is_file() {
            compare_with_predict(
                &shared,
                checkpoint,
                ".predict-nms-false.jsonl",
                &["--no-nms"],
            );
        }
    }
}

/// The YOLO26 checkpoint converted to safetensors, its YAML and plain convs in the
/// metadata, then reloaded with `edit` applied to its YAML.
fn converted_yolo26(shared: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> Weights {
    let weights = Weights::load(shared.join("weights/tasks/yolo26n-random.pt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("yolo26n.safetensors");
    weights.save_safetensors(&path).unwrap();
    let mut reloaded = Weights::load(&path).unwrap();
    assert_eq!(
        reloaded.yaml, weights.yaml,
        "the YAML travels in the metadata"
    );
    assert_eq!(reloaded.plain_convs, weights.plain_convs);
    assert!(
        reloaded.plain_convs.contains("model.9.cv1"),
        "YOLO26's SPPF cv1 has no activation"
    );
    edit(reloaded.yaml.as_mut().unwrap());
    reloaded
}

fn load_error(weights: &Weights) -> String {
    let cpu = ComputeDevice::cpu();
    match Yolo::load(weights, &cpu.device) {
        Ok(_) => panic!("the model loaded"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn a_converted_yolo26_keeps_its_architecture_and_bad_yamls_are_named() {
    let shared = require_shared!();
    let cpu = ComputeDevice::cpu();
    let same = converted_yolo26(&shared, |_| {});
    let (_, info) = Yolo::load(&same, &cpu.device).unwrap();
    assert_eq!(
        (info.name().as_str(), info.has_one_to_one),
        ("YOLO26n", true)
    );

    let unknown = converted_yolo26(&shared, |yaml| {
        yaml["backbone"][6] = serde_json::json!([-1, 2, "A2C2f", [512, true, 4]]);
    });
    let message = load_error(&unknown);
    assert!(message.contains("layer 6 is `A2C2f`"), "{message}");

    // A YAML's `nc` can be stale (Ultralytics' own yolo11n-pose.pt says 80 over a 1-class
    // head): the class count is the head's, as Ultralytics runs the pickled modules.
    let classes = converted_yolo26(&shared, |yaml| yaml["nc"] = serde_json::json!(3));
    let (_, info) = Yolo::load(&classes, &cpu.device).unwrap();
    assert_eq!(info.num_classes, 80);

    let repeats = converted_yolo26(&shared, |yaml| {
        yaml["backbone"][8][1] = serde_json::json!(4);
    });
    let message = load_error(&repeats);
    assert!(
        message.contains("`model.8.m` has 1 sub-blocks where the model's YAML has 2"),
        "{message}"
    );

    let missing = {
        let weights = converted_yolo26(&shared, |_| {});
        let tensors = weights
            .tensors()
            .iter()
            .filter(|(k, _)| !k.starts_with("model.23.one2one_cv3.1.2."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut missing = Weights::from_tensors(tensors, Vec::new());
        missing.yaml = weights.yaml.clone();
        missing.plain_convs = weights.plain_convs.clone();
        missing
    };
    let message = load_error(&missing);
    assert!(
        message.contains("model.23.one2one_cv3.1.2.weight"),
        "{message}"
    );
    assert!(matches!(
        Yolo::load(&missing, &cpu.device),
        Err(ModelError::Weights(_))
    ));
}

/// `focalyolo info` and `convert` through the binary: the family, scale and heads, the same
/// after conversion; a truncated checkpoint named once, with a failing exit code.
#[test]
fn info_and_convert_say_what_a_yolo26_is() {
    let shared = require_shared!();
    let run = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_focalyolo"))
            .args(args)
            .output()
            .unwrap()
    };
    let checkpoint = shared.join("weights/tasks/yolo26n-random.pt");
    let dir = tempfile::tempdir().unwrap();
    let converted = dir.path().join("yolo26n.safetensors");
    let output = run(&[
        "convert".as_ref(),
        checkpoint.as_os_str(),
        "-o".as_ref(),
        converted.as_os_str(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("YOLO26n with 80 classes"));
    for weights in [&checkpoint, &converted] {
        let output = run(&["info".as_ref(), weights.as_os_str()]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        for line in [
            "model       YOLO26n",
            "classes     80",
            "layer 9     SPPF",
            "heads       one-to-many head + NMS by default; one-to-one head, no NMS with --no-nms",
            "runs with   SPPF: no bundled FocalModulation fits these weights",
        ] {
            assert!(
                text.contains(line),
                "{}: no `{line}` in\n{text}",
                weights.display()
            );
        }
    }
    let bytes = std::fs::read(&checkpoint).unwrap();
    let truncated = dir.path().join("truncated.pt");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let output = run(&["info".as_ref(), truncated.as_os_str()]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(message.matches("truncated.pt").count(), 1, "{message}");
    assert!(message.contains("the file is truncated"), "{message}");
}
