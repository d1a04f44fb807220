//! Mutation fuzzing of the parsers that read untrusted files: `.pt` checkpoints (zip and
//! pickle), safetensors (header and data), and images through our decoding path. Each case
//! mutates a real file from `../shared` (bit flips, truncation, a section spliced in from
//! elsewhere in the file, a huge length written over four or eight bytes, bytes inserted
//! or cut) and loads it; the load may fail, with an error, but must not panic, and a case
//! that runs past [`CASE_LIMIT`] of a fair share of the machine fails this test, naming the
//! case (the other tests run on).
//!
//! CI runs a few thousand cases; `.ci/fuzz` runs it for ten minutes under a memory limit
//! (`FOCALYOLO_FUZZ_SECONDS=600`). A failure prints the target and seed that reproduce it.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use focalyolo::compute::device::ComputeDevice;
use focalyolo::model::Yolo;
use focalyolo::source::{load_rgb, upright_size};
use focalyolo::weights::Weights;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::{HangGuard, require_shared};

/// Cases per target when no duration is asked for.
const CI_CASES: u64 = 3_000;
/// The longest one case may take before the run counts it as a hang: time at a fair share
/// of the machine ([`HangGuard`]), so a busy machine stretches it rather than failing.
const CASE_LIMIT: Duration = Duration::from_secs(30);
/// How often the test looks at the case's [`HangGuard`] while the worker loads.
const POLL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
enum Target {
    Checkpoint,
    Safetensors,
    Image,
}

/// One mutation of `original`, drawn from `rng`, and what it did.
fn mutate(original: &[u8], rng: &mut ChaCha8Rng) -> (Vec<u8>, String) {
    let mut bytes = original.to_vec();
    let len = bytes.len().max(1);
    // Half the edits land in the first or last 64 KiB, where headers, the pickle and the
    // zip directory live; the rest anywhere.
    let position = |rng: &mut ChaCha8Rng| -> usize {
        let edge = 65_536.min(len);
        match rng.random_range(0..4) {
            0 => rng.random_range(0..edge),
            1 => len - 1 - rng.random_range(0..edge),
            _ => rng.random_range(0..len),
        }
    };
    let what = match rng.random_range(0..6) {
        0 => {
            let flips = rng.random_range(1..=8);
            for _ in 0..flips {
                let at = position(rng).min(bytes.len() - 1);
                bytes[at] ^= 1 << rng.random_range(0..8);
            }
            format!("{flips} bit flips")
        }
        1 => {
            let keep = rng.random_range(0..bytes.len());
            bytes.truncate(keep);
            format!("truncated to {keep}")
        }
        2 => {
            let (from, to) = (position(rng), position(rng));
            let span = rng.random_range(1..=4096).min(len - from).min(len - to);
            let section = original[from..from + span].to_vec();
            bytes[to..to + span].copy_from_slice(&section);
            format!("{span} bytes from {from} spliced at {to}")
        }
        3 => {
            let huge: &[&[u8]] = &[
                &u32::MAX.to_le_bytes(),
                &0x7FFF_FFFFu32.to_le_bytes(),
                &u32::MAX.to_be_bytes(),
                &u64::MAX.to_le_bytes(),
                &(1u64 << 40).to_le_bytes(),
            ];
            let value = *huge.choose(rng).expect("non-empty");
            let at = position(rng).min(bytes.len().saturating_sub(value.len()));
            bytes[at..at + value.len()].copy_from_slice(value);
            format!("huge length {value:02x?} at {at}")
        }
        4 => {
            let at = position(rng);
            let count = rng.random_range(1..=64);
            let inserted: Vec<u8> = (0..count).map(|_| rng.random()).collect();
            bytes.splice(at..at, inserted);
            format!("{count} random bytes inserted at {at}")
        }
        _ => {
            let at = position(rng);
            let count = rng.random_range(1..=64).min(len - at);
            bytes.drain(at..at + count);
            format!("{count} bytes cut at {at}")
        }
    };
    (bytes, what)
}

/// Load `path` as `target` does in the program. Weights that load also build the model
/// (the whole-graph check), as opening them in the app would.
fn load(target: Target, path: &Path) {
    match target {
        Target::Checkpoint | Target::Safetensors => {
            if let Ok(weights) = Weights::load(path) {
                let _ = Yolo::load(&weights, &ComputeDevice::cpu().device);
            }
        }
        Target::Image => {
            let _ = upright_size(path);
            let _ = load_rgb(path);
        }
    }
}

#[test]
fn mutated_weights_and_images_give_errors_never_panics_or_hangs() {
    let shared = require_shared!();
    let seconds: Option<u64> = std::env::var("FOCALYOLO_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    let mut images: Vec<PathBuf> = std::fs::read_dir(shared.join("coco128/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    images.sort();
    let corpus: Vec<(Target, Vec<u8>)> = [
        (Target::Checkpoint, shared.join("weights/yolo11n.pt")),
        (
            Target::Checkpoint,
            shared.join("weights/yolo11n-fm-random.pt"),
        ),
        (
            Target::Safetensors,
            shared.join("weights/yolo11n.safetensors"),
        ),
        (Target::Image, images[0].clone()),
        (Target::Image, images[1].clone()),
    ]
    .into_iter()
    .chain(std::iter::once((
        Target::Image,
        // A PNG too: the first of coco128's images re-encoded.
        {
            let png = std::env::temp_dir().join("focalyolo-fuzz-seed.png");
            load_rgb(&images[2]).unwrap().save(&png).unwrap();
            png
        },
    )))
    .map(|(target, path)| (target, std::fs::read(&path).unwrap()))
    .collect();

    // Cases load on a worker thread, one at a time, while this thread waits for each with a
    // guard: a case that runs past the limit fails this test, naming itself, and leaves the
    // worker behind, stuck, instead of ending every test in the binary. The worker ends when
    // this test drops its end of `cases_in`.
    let (cases_in, cases_out) = mpsc::channel::<(Target, PathBuf)>();
    let (results_in, results_out) = mpsc::channel::<Result<(), String>>();
    std::thread::spawn(move || {
        for (target, path) in cases_out {
            let result = focalyolo::pipeline::catch_panic(|| load(target, &path));
            if results_in.send(result).is_err() {
                break;
            }
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let mut failures = Vec::new();
    let mut cases = 0u64;
    'run: for round in 0.. {
        for (index, (target, original)) in corpus.iter().enumerate() {
            let done = match deadline {
                Some(deadline) => Instant::now() >= deadline,
                None => round >= CI_CASES / corpus.len() as u64,
            };
            if done {
                break 'run;
            }
            let seed = round * corpus.len() as u64 + index as u64;
            let (bytes, what) = mutate(original, &mut ChaCha8Rng::seed_from_u64(seed));
            let case = format!("{target:?} #{index}, seed {seed}: {what}");
            let extension = match target {
                Target::Checkpoint => "pt",
                Target::Safetensors => "safetensors",
                Target::Image if original.starts_with(b"\x89PNG") => "png",
                Target::Image => "jpg",
            };
            let path = dir.path().join(format!("case.{extension}"));
            std::fs::write(&path, &bytes).unwrap();
            cases_in
                .send((*target, path))
                .expect("the fuzz worker takes cases");
            let mut guard = HangGuard::new(CASE_LIMIT);
            let result = loop {
                match results_out.recv_timeout(POLL) {
                    Ok(result) => break result,
                    Err(RecvTimeoutError::Timeout) => guard.check(&format!("fuzz case {case}")),
                    Err(RecvTimeoutError::Disconnected) => {
                        panic!("the fuzz worker died on {case}")
                    }
                }
            };
            if let Err(panic) = result {
                failures.push(format!("{case}: panicked: {panic}"));
            }
            cases += 1;
        }
    }
    println!("fuzz: {cases} cases, {} panics", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
