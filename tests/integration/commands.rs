//! `bench` (with `--profile` and `--kernels`), `distill`, and `detect` with a distilled
//! layer (`--focal`), `--save`, `--save-attention` and `--device auto`, run through the
//! binary on `../shared` material, their output and files checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use focalyolo::compute::device::{ComputeDevice, DeviceChoice};
use focalyolo::output::report::ImageRecord;

use crate::common::{require_shared, succeeded, test_devices};

/// The binary with `args`, run to its end.
fn focalyolo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_focalyolo"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// The numbers at the end of `line`, after its words.
fn trailing_numbers(line: &str) -> Vec<f64> {
    line.split_whitespace()
        .rev()
        .map_while(|field| field.trim_end_matches(['%', '×']).parse().ok())
        .collect::<Vec<f64>>()
        .into_iter()
        .rev()
        .collect()
}

#[test]
fn bench_times_the_model_and_profiles_every_layer() {
    let shared = require_shared!();
    let weights = shared.join("weights/yolo11n.pt");
    let common = [
        "bench",
        "--weights",
        path_str(&weights),
        "--device",
        "cpu",
        "--imgsz",
        "320",
        "--iterations",
        "3",
    ];
    let output = focalyolo(&common);
    succeeded(&output);
    let stdout = text(&output.stdout);
    let row = stdout
        .lines()
        .find(|line| line.starts_with("CPU (burn flex backend)"))
        .unwrap_or_else(|| panic!("a CPU row: {stdout}"));
    let numbers = trailing_numbers(row);
    assert_eq!(numbers.len(), 3, "imgsz, median, mean: {row}");
    assert_eq!(numbers[0], 320.0);
    assert!(numbers[1] > 0.0 && numbers[2] > 0.0, "{row}");
    assert!(
        text(&output.stderr).contains("layer 9: the bundled FocalModulation"),
        "{}",
        text(&output.stderr)
    );

    // --profile --stock: a row per layer of YOLO11n's graph, SPPF at 9, shares adding up,
    // each layer's FLOPs those Ultralytics counts for it, the rates those FLOPs over the
    // times and over the measured peak.
    let output = focalyolo(&[&common[..], &["--profile", "--stock"]].concat());
    succeeded(&output);
    let stdout = text(&output.stdout);
    let peak_line = stdout
        .lines()
        .find(|line| line.starts_with("peak: "))
        .unwrap_or_else(|| panic!("a peak line: {stdout}"));
    let peak: f64 = peak_line
        .split(" GFLOP/s")
        .next()
        .and_then(|head| head.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("a peak rate: {peak_line}"));
    let layers: Vec<LayerRow> = stdout.lines().filter_map(LayerRow::parse).collect();
    let modules: Vec<&str> = layers.iter().map(|l| l.module.as_str()).collect();
    assert_eq!(layers.len(), 24, "{stdout}");
    assert!(
        layers.iter().enumerate().all(|(i, l)| l.index == i),
        "{stdout}"
    );
    assert_eq!(
        [
            modules[0],
            modules[9],
            modules[10],
            modules[11],
            modules[23]
        ],
        ["Conv", "SPPF", "C2PSA", "Upsample", "Detect"]
    );
    let shares: f64 = layers.iter().map(|l| l.share).sum();
    assert!((shares - 100.0).abs() < 0.5, "shares add up to {shares}%");
    // The neck's Concats are read in place by the C2f after them, not written out.
    for &concat in &[12, 15, 18, 21] {
        assert_eq!(layers[concat].ms, 0.0, "{stdout}");
    }
    for layer in layers.iter().filter(|l| l.ms > 0.0) {
        let rate = layer.gflop / layer.ms * 1e3;
        assert!(
            (layer.rate - rate).abs() <= 0.05 + 0.01 * rate,
            "layer {}: {} GFLOP/s is not {} GFLOP over {} ms",
            layer.index,
            layer.rate,
            layer.gflop,
            layer.ms
        );
        assert!(
            (layer.of_peak - 100.0 * layer.rate / peak).abs() <= 0.5 + 0.01 * layer.of_peak,
            "layer {}: {}% of {peak}",
            layer.index,
            layer.of_peak
        );
    }
    for (layer, gflop) in ULTRALYTICS_GFLOP_AT_320 {
        assert!(
            (layers[layer].gflop - gflop).abs() <= 0.0005,
            "layer {layer}: {} GFLOP, Ultralytics counts {gflop}",
            layers[layer].gflop
        );
    }
    let sum_line = stdout
        .lines()
        .find(|line| line.trim_start().starts_with("sum"))
        .expect("a sum row");
    let total: f64 = layers.iter().map(|l| l.ms).sum();
    let printed = trailing_numbers(sum_line)[0];
    assert!(
        (printed - total).abs() < 0.05 * total,
        "{printed} vs {total}"
    );
}

/// Each layer's GFLOPs in YOLO11n (BatchNorm fused) at 320 as Ultralytics
/// counts them (`thop`, as `model.info()` and `profile=True` do: two FLOPs a multiply-add,
/// convolutions and attention's products), printed layer by layer by a local script; its
/// Detect adds DFL's fixed 1×1 convolution (0.0003), which we fold into the decoding.
const ULTRALYTICS_GFLOP_AT_320: [(usize, f64); 24] = [
    (0, 0.0221),
    (1, 0.0590),
    (2, 0.0819),
    (3, 0.1180),
    (4, 0.0819),
    (5, 0.1180),
    (6, 0.0688),
    (7, 0.0590),
    (8, 0.0688),
    (9, 0.0328),
    (10, 0.0532),
    (11, 0.0000),
    (12, 0.0000),
    (13, 0.0885),
    (14, 0.0000),
    (15, 0.0000),
    (16, 0.1016),
    (17, 0.0295),
    (18, 0.0000),
    (19, 0.0688),
    (20, 0.0295),
    (21, 0.0000),
    (22, 0.0754),
    (23, 0.4674),
];

/// A row of `bench --profile`'s table.
struct LayerRow {
    index: usize,
    module: String,
    ms: f64,
    share: f64,
    gflop: f64,
    rate: f64,
    of_peak: f64,
}

impl LayerRow {
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let index = fields.first()?.parse().ok()?;
        let [ms, share, gflop, rate, of_peak] = trailing_numbers(line)[..] else {
            return None;
        };
        Some(Self {
            index,
            module: fields[1].to_string(),
            ms,
            share,
            gflop,
            rate,
            of_peak,
        })
    }
}

#[test]
fn bench_kernels_times_each_wgsl_depthwise_kernel_against_burn() {
    let shared = require_shared!();
    if test_devices().len() < 2 {
        return;
    }
    let weights = shared.join("weights/yolo11n.pt");
    let output = focalyolo(&[
        "bench",
        "--weights",
        path_str(&weights),
        "--kernels",
        "--imgsz",
        "320",
        "--iterations",
        "1",
    ]);
    succeeded(&output);
    let stdout = text(&output.stdout);
    let rows: Vec<(&str, Vec<f64>)> = [
        "focal level 0",
        "focal level 1",
        "Detect DWConv P3",
        "Detect DWConv P4",
        "Detect DWConv P5",
        "C2PSA pe",
    ]
    .into_iter()
    .map(|name| {
        let line = stdout
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}: {stdout}"));
        (name, trailing_numbers(line))
    })
    .collect();
    for (name, numbers) in rows {
        // …, kernel size, WGSL ms, burn ms, ratio.
        let [kernel, wgsl, burn, ratio] = numbers[numbers.len() - 4..] else {
            unreachable!()
        };
        let wanted_kernel = if name == "focal level 1" { 5.0 } else { 3.0 };
        assert_eq!(kernel, wanted_kernel, "{name}");
        assert!(wgsl > 0.0 && burn > 0.0, "{name}: {numbers:?}");
        assert!(
            (ratio - burn / wgsl).abs() <= 0.06 + 0.01 * ratio,
            "{name}: the ratio {ratio} is not {burn} / {wgsl}"
        );
    }
}

/// The first `count` coco128 images, copied into `dir`.
fn some_images(shared: &Path, dir: &Path, count: usize) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(shared.join("coco128/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .into_iter()
        .take(count)
        .map(|source| {
            let copy = dir.join(source.file_name().unwrap());
            std::fs::copy(&source, &copy).unwrap();
            copy
        })
        .collect()
}

fn image_records(json: &Path) -> Vec<ImageRecord> {
    std::fs::read_to_string(json)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("an image record"))
        .collect()
}

/// `detect` with `weights` and `args` on `images`, the annotated images and the maps saved
/// into `saved`, the boxes written to `json`.
fn detect_saving_maps(
    weights: &Path,
    args: &[&str],
    images: &Path,
    saved: &Path,
    json: &Path,
) -> Output {
    let paths = [weights, images, saved, json].map(path_str);
    let common = [
        "detect",
        "--weights",
        paths[0],
        "--source",
        paths[1],
        "--save",
        paths[2],
        "--save-attention",
        "--json",
        paths[3],
    ];
    focalyolo(&[&common[..], args].concat())
}

#[test]
fn a_layer_distill_writes_runs_in_detect_with_its_maps_saved() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let pictures = some_images(&shared, &images, 4);
    let teacher = shared.join("weights/yolo11n.pt");
    let layer = dir.path().join("layer9.safetensors");
    let output = focalyolo(&[
        "distill",
        "--teacher",
        path_str(&teacher),
        "--images",
        path_str(&images),
        "--imgsz",
        "320",
        "--epochs",
        "2",
        "--batch",
        "2",
        "--out",
        path_str(&layer),
    ]);
    succeeded(&output);
    let log = text(&output.stderr) + &text(&output.stdout);
    assert!(log.contains("on 4 images"), "{log}");
    assert!(log.contains("epoch   2: mean loss"), "{log}");
    assert!(log.contains(&format!("wrote {}", layer.display())), "{log}");

    // detect with that layer, on the device `auto` picks, saving boxes and maps.
    let saved = dir.path().join("saved");
    let json = dir.path().join("focal.jsonl");
    let focal = ["--focal", path_str(&layer), "--device", "auto"];
    let output = detect_saving_maps(&teacher, &focal, &images, &saved, &json);
    succeeded(&output);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "layer 9: FocalModulation from {}",
            layer.display()
        )),
        "{stderr}"
    );
    let auto = ComputeDevice::select(DeviceChoice::Auto).unwrap();
    assert!(
        stderr.contains(&format!("on {}", auto.description)),
        "auto picks {}: {stderr}",
        auto.description
    );
    let focal = image_records(&json);
    assert_eq!(focal.len(), 4);
    for picture in &pictures {
        let stem = picture.file_stem().unwrap().to_string_lossy();
        let size = image::image_dimensions(picture).unwrap();
        let annotated = saved.join(picture.file_name().unwrap());
        assert_eq!(image::image_dimensions(&annotated).unwrap(), size);
        for map in ["gate-level-0", "gate-level-1", "gate-global", "modulator"] {
            let png = saved.join(format!("{stem}.{map}.png"));
            assert_eq!(
                image::image_dimensions(&png).unwrap_or_else(|e| panic!("{png:?}: {e}")),
                size
            );
        }
    }

    // The stock model on the same images: its own boxes, and no maps to save, said so.
    let stock_saved = dir.path().join("stock");
    let stock_json = dir.path().join("stock.jsonl");
    let stock = ["--stock", "--device", "cpu"];
    let output = detect_saving_maps(&teacher, &stock, &images, &stock_saved, &stock_json);
    succeeded(&output);
    assert!(
        text(&output.stderr).contains("no FocalModulation in this model"),
        "{}",
        text(&output.stderr)
    );
    let mut written: Vec<String> = std::fs::read_dir(&stock_saved)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let mut wanted: Vec<String> = pictures
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    wanted.sort();
    assert_eq!(written, wanted, "the annotated images alone");
    let stock = image_records(&stock_json);
    let confidences = |records: &[ImageRecord]| -> Vec<f32> {
        records
            .iter()
            .flat_map(|r| r.detections.iter().map(|d| d.conf))
            .collect()
    };
    assert!(!confidences(&stock).is_empty());
    assert_ne!(
        confidences(&focal),
        confidences(&stock),
        "the distilled layer changes what the model sees"
    );
}

#[test]
fn weights_no_bundled_layer_fits_get_a_note_on_how_to_make_one() {
    let shared = require_shared!();
    let official = shared.join("weights/yolo11n-official.pt");
    let image = shared.join("coco128/images/000000000009.jpg");
    let detect = |extra: &[&str]| {
        let output = focalyolo(
            &[
                &[
                    "detect",
                    "--weights",
                    path_str(&official),
                    "--device",
                    "cpu",
                    "--source",
                    path_str(&image),
                ][..],
                extra,
            ]
            .concat(),
        );
        succeeded(&output);
        text(&output.stderr)
    };
    let stderr = detect(&[]);
    assert!(
        stderr.contains("layer 9: SPPF, as no bundled FocalModulation fits")
            && stderr.contains(&format!(
                "focalyolo distill --teacher {}",
                official.display()
            )),
        "{stderr}"
    );
    assert!(
        !detect(&["--stock"]).contains("layer 9:"),
        "--stock silences it"
    );
}

#[test]
fn val_scores_a_layer_against_its_teachers_boxes_beside_the_teacher_itself() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("photos");
    std::fs::create_dir(&images).unwrap();
    let mut photos: Vec<PathBuf> =
        std::fs::read_dir(shared.join("distill_images/pedestrian_scenes"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .collect();
    photos.sort();
    for photo in photos.iter().take(8) {
        std::fs::copy(photo, images.join(photo.file_name().unwrap())).unwrap();
    }
    let teacher = shared.join("weights/yolo11n.pt");
    let json = dir.path().join("agreement.json");
    // The bundled layer against its teacher's boxes, and the teacher (its own SPPF) too.
    let output = focalyolo(&[
        "val",
        "--device",
        "cpu",
        "--weights",
        path_str(&teacher),
        "--teacher",
        path_str(&teacher),
        "--data",
        path_str(&images),
        "--compare",
        path_str(&teacher),
        "--compare-stock",
        "--json",
        path_str(&json),
    ]);
    succeeded(&output);
    let stdout = text(&output.stdout);
    println!("{stdout}");
    assert!(
        text(&output.stderr).contains("(confidence ≥ 0.25) on 8 images"),
        "{}",
        text(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let student = report["map50_95"].as_f64().unwrap();
    let itself = report["compared"]["map50_95"].as_f64().unwrap();
    assert_eq!(report["images"], 8);
    assert!(report["instances"].as_u64().unwrap() >= 8, "{report}");
    // The teacher finds its own boxes (its extra low-confidence ones, of other classes
    // too, rank below them); the student follows it less closely.
    assert!(itself > 0.95, "{report}");
    assert!(student < itself && student > 0.3, "{report}");
    let difference = report["compared"]["map50_95_difference"]["value"]
        .as_f64()
        .unwrap();
    assert!((difference - (itself - student)).abs() < 1e-12);
}
