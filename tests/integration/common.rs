//! Helpers shared by the integration tests.

use std::path::PathBuf;

use burn::tensor::Tensor;
use focalyolo::compute::device::{ComputeDevice, DeviceChoice};

/// `../shared` beside the checkout (or `$FOCALYOLO_SHARED`), when it is there.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FOCALYOLO_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    dir.join("README.md").is_file().then_some(dir)
}

/// The reference material, or an early return with the reason printed; a failure instead
/// where `FOCALYOLO_REQUIRE_SHARED` is set (CI), so that a run without it cannot pass.
macro_rules! require_shared {
    () => {
        match $crate::common::shared_dir() {
            Some(dir) => dir,
            None if std::env::var_os("FOCALYOLO_REQUIRE_SHARED").is_some() => {
                panic!("FOCALYOLO_REQUIRE_SHARED is set and the reference material (../shared) is not here")
            }
            None => {
                println!("skipped: the reference material (../shared) is not here");
                return;
            }
        }
    };
}
pub(crate) use require_shared;

/// The CPU backend, and the wgpu device when an adapter exists (lavapipe in CI, where
/// `FOCALYOLO_REQUIRE_GPU=1` makes a missing adapter a failure rather than a skip).
pub fn test_devices() -> Vec<ComputeDevice> {
    let mut devices = vec![ComputeDevice::cpu()];
    match ComputeDevice::select(DeviceChoice::Gpu) {
        Ok(gpu) => devices.push(gpu),
        Err(err) if std::env::var_os("FOCALYOLO_REQUIRE_GPU").is_some() => {
            panic!("no wgpu adapter: {err}")
        }
        Err(err) => println!("wgpu device skipped: {err}"),
    }
    devices
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("f32 tensor")
}

/// Largest |a - b|, after checking the shapes agree.
pub fn max_abs_diff<const D: usize>(
    ours: Tensor<D>,
    reference: &focalyolo::weights::WeightTensor,
) -> f32 {
    assert_eq!(ours.dims().to_vec(), reference.shape, "shape");
    to_vec(ours)
        .iter()
        .zip(&reference.values)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, nan_max)
}

/// The larger of two differences, NaN if either is: a fold with `f32::max` would skip a NaN,
/// and a kernel or model writing NaN would pass.
pub fn nan_max(worst: f32, difference: f32) -> f32 {
    if difference.is_nan() || difference > worst {
        difference
    } else {
        worst
    }
}
