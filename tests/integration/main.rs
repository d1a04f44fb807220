//! focalyolo's integration tests, in one binary (each test binary links all of burn).
//!
//! Tests that need the reference material in `../shared` (real weights, COCO images,
//! PyTorch goldens) print why they skip when it is absent, as in a user's clone.

mod bad_input;
mod coco128;
mod common;
mod distill;
mod golden;
mod kernels;
mod weights_formats;
