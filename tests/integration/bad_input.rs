//! Broken weights and images end in clear errors, never a panic.

use std::collections::BTreeMap;
use std::io::Write;

use focalyolo::compute::device::ComputeDevice;
use focalyolo::inference::detector::{Detector, InputSize};
use focalyolo::inference::postprocess::NmsOptions;
use focalyolo::model::Yolo;
use focalyolo::source::load_rgb;
use focalyolo::weights::{WeightTensor, Weights, WeightsError};

use crate::common::require_shared;

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Deterministic pseudo-random bytes.
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A torch.save-style zip whose pickle calls `os.system`.
fn hostile_checkpoint() -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        zip.start_file("evil/data.pkl", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"\x80\x02}q\x00X\x05\x00\x00\x00modelq\x01cos\nsystem\nq\x02X\x02\x00\x00\x00idq\x03\x85q\x04Rq\x05s.").unwrap();
        zip.start_file("evil/version", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"3\n").unwrap();
        zip.finish().unwrap();
    }
    buffer.into_inner()
}

#[test]
fn garbage_weight_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("empty.pt", Vec::new()),
        ("noise.pt", noise(4096, 1)),
        ("noise.safetensors", noise(4096, 2)),
        ("zip-prefix.pt", b"PK\x03\x04 and then nothing".to_vec()),
        (
            "header-only.safetensors",
            b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}      ".to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let err = Weights::load(write(&dir, name, &bytes)).unwrap_err();
        assert!(matches!(err, WeightsError::Format { .. }), "{name}: {err}");
    }
    let err = Weights::load(dir.path().join("missing.pt")).unwrap_err();
    assert!(matches!(err, WeightsError::Io { .. }), "{err}");
}

#[test]
fn hostile_pickle_globals_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = Weights::load(write(&dir, "evil.pt", &hostile_checkpoint())).unwrap_err();
    assert!(matches!(err, WeightsError::Pickle { .. }), "{err}");
    assert!(err.to_string().contains("os.system"), "{err}");
}

#[test]
fn truncated_real_weights_are_clear_errors() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    for file in ["yolo11n.pt", "yolo11n.safetensors"] {
        let bytes = std::fs::read(shared.join("weights").join(file)).unwrap();
        for fraction in [0.01, 0.5, 0.99] {
            let cut = (bytes.len() as f64 * fraction) as usize;
            let path = write(&dir, file, &bytes[..cut]);
            let result = Weights::load(&path).and_then(|w| {
                // A truncation that leaves a readable header must still fail when building the model.
                Yolo::load(&w, &ComputeDevice::cpu().device)
                    .map(|_| ())
                    .map_err(|e| WeightsError::Missing(e.to_string()))
            });
            assert!(result.is_err(), "{file} cut at {cut} bytes loaded");
        }
    }
}

/// Why the model refuses `weights` once `edit` has changed their tensors.
fn load_error(weights: &Weights, edit: impl FnOnce(&mut BTreeMap<String, WeightTensor>)) -> String {
    let mut tensors = weights.tensors().clone();
    edit(&mut tensors);
    Yolo::load(
        &Weights::from_tensors(tensors, weights.class_names.clone()),
        &ComputeDevice::cpu().device,
    )
    .map(|_| ())
    .expect_err("the edited weights must be refused")
    .to_string()
}

#[test]
fn wrong_shapes_and_missing_tensors_are_clear_errors() {
    let shared = require_shared!();
    let weights = Weights::load(shared.join("weights/yolo11n.safetensors")).unwrap();
    let edit = |name: &str, replacement: Option<WeightTensor>| {
        load_error(&weights, |tensors| {
            match replacement {
                Some(t) => tensors.insert(name.to_string(), t),
                None => tensors.remove(name),
            };
        })
    };
    let message = edit("model.6.m.0.cv3.conv.weight", None);
    assert!(message.contains("model.6.m.0.cv3"), "{message}");
    let message = edit("model.23.dfl.conv.weight", None);
    assert!(message.contains("model.23.dfl.conv.weight"), "{message}");
    let message = edit(
        "model.0.bn.running_var",
        Some(WeightTensor {
            shape: vec![7],
            values: vec![1.0; 7],
        }),
    );
    assert!(message.contains("model.0.bn.running_var"), "{message}");
    let message = edit(
        "model.23.cv3.0.0.0.conv.weight",
        Some(WeightTensor {
            shape: vec![64, 2, 3, 3],
            values: vec![0.0; 1152],
        }),
    );
    assert!(
        message.contains("model.23.cv3.0.0.0.conv.weight"),
        "{message}"
    );
    let message = edit(
        "model.9.cv1.conv.weight",
        Some(WeightTensor {
            shape: vec![128, 256],
            values: vec![0.0; 128 * 256],
        }),
    );
    assert!(message.contains("model.9.cv1.conv.weight"), "{message}");
}

#[test]
fn layers_that_do_not_fit_together_are_refused_at_load_by_tensor_path() {
    let shared = require_shared!();
    let weights = Weights::load(shared.join("weights/yolo11n.safetensors")).unwrap();
    // Each tensor well-formed (outputs and BatchNorm unchanged), its input channels wrong.
    let with_inputs = |name: &str, inputs: usize| {
        load_error(&weights, |tensors| {
            let old = &tensors[name];
            let shape = vec![old.shape[0], inputs, old.shape[2], old.shape[3]];
            let values = vec![0.01; shape.iter().product()];
            tensors.insert(name.to_string(), WeightTensor { shape, values });
        })
    };
    for (name, inputs, given) in [
        ("model.1.conv.weight", 24, 16),             // between layers
        ("model.2.m.0.cv2.conv.weight", 16, 8),      // inside a C3k2
        ("model.13.cv1.conv.weight", 256, 384),      // after a concat
        ("model.10.m.0.ffn.0.conv.weight", 64, 128), // inside C2PSA
        ("model.23.cv2.1.0.conv.weight", 64, 128),   // the Detect head's P4 input
    ] {
        let message = with_inputs(name, inputs);
        assert!(
            message.contains(name)
                && message.contains(&format!("takes {inputs} input channels"))
                && message.contains(&format!("has {given}")),
            "{name}: {message}"
        );
    }
}

#[test]
fn files_that_are_not_images_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("text.jpg", b"hello, not a jpeg".to_vec()),
        ("noise.png", noise(999, 3)),
        ("empty.jpg", Vec::new()),
    ] {
        let err = load_rgb(&write(&dir, name, &bytes)).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
}

/// Headers that claim 60000×60000 pixels (10.8 GB as RGB): a real COCO JPEG with its frame
/// size rewritten, and a PNG of a few hundred bytes. Refused from the header, before any
/// pixel buffer exists; the JPEG decoder would otherwise allocate it all.
#[test]
fn decompression_bomb_headers_are_refused_before_decoding() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let mut jpeg = std::fs::read(shared.join("coco128/images/000000000009.jpg")).unwrap();
    let mut at = 2;
    loop {
        let (marker, length) = (
            jpeg[at + 1],
            u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]),
        );
        if matches!(marker, 0xC0 | 0xC2) {
            jpeg[at + 5..at + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
            break;
        }
        at += 2 + usize::from(length);
    }
    let png_chunk = |kind: &[u8], data: &[u8]| {
        let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(data);
        let crc = crc32(&chunk[4..]);
        chunk.extend_from_slice(&crc.to_be_bytes());
        chunk
    };
    let mut header = 60000u32.to_be_bytes().repeat(2);
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &header));
    // The decoder reads up to the first image data: one zlib-stored zero byte.
    png.extend(png_chunk(
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x01, 0x00, 0xFE, 0xFF, 0x00, 0x00, 0x01, 0x00, 0x01,
        ],
    ));
    png.extend(png_chunk(b"IEND", &[]));
    for (name, bytes) in [("bomb.jpg", jpeg), ("bomb.png", png)] {
        // Only the header check words it so: a decoder's own failure would read otherwise.
        let err = load_rgb(&write(&dir, name, &bytes))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("60000×60000") && err.contains("decompression bomb"),
            "{name}: {err}"
        );
    }
}

/// PNG's CRC-32 (ISO-HDLC), for hand-made chunks.
fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &byte| {
        (0..8).fold(crc ^ u32::from(byte), |crc, _| {
            (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg())
        })
    })
}

#[test]
fn degenerate_image_sizes_are_detected_on() {
    let shared = require_shared!();
    let detector = Detector::load(
        &shared.join("weights/yolo11n.pt"),
        ComputeDevice::cpu().device,
        InputSize::default(),
    )
    .unwrap();
    // Ultralytics' validation threshold: the model's faint boxes too, many at the edges, so
    // that whatever these synthetic images hold there are boxes to check against the frame.
    let options = NmsOptions {
        conf: 0.001,
        ..NmsOptions::default()
    };
    let mut boxes_per_size = Vec::new();
    for (w, h) in [(1, 1), (4000, 17), (17, 4000), (33, 7)] {
        let image = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 255) as u8, (y % 255) as u8, 90])
        });
        let detections = detector.detect(&image, &options).unwrap();
        boxes_per_size.push(((w, h), detections.len()));
        for d in detections {
            assert!(
                d.xyxy[0] >= 0.0
                    && d.xyxy[2] <= w as f32
                    && d.xyxy[1] >= 0.0
                    && d.xyxy[3] <= h as f32,
                "{w}×{h}: {d:?}"
            );
        }
    }
    println!("boxes per size at conf 0.001: {boxes_per_size:?}");
    // A flat or tiny image may give no box at all; all four giving none would leave the
    // bounds above unchecked.
    assert!(
        boxes_per_size.iter().any(|&(_, boxes)| boxes > 0),
        "expected boxes at conf 0.001 on at least one of the sizes, to check against the frame: {boxes_per_size:?}"
    );
}
