//! focalyolo's integration tests, in one binary (each test binary links all of burn).
//!
//! Tests that need the reference material in `../shared` (real weights, COCO images,
//! PyTorch goldens, video clips) print why they skip when it is absent, as in a user's
//! clone.

mod app;
mod bad_input;
mod coco128;
mod commands;
mod common;
mod counting;
mod distill;
mod explain_and_compare;
mod families;
mod fuzz;
mod golden;
mod kernels;
mod pipeline;
mod run_command;
mod streams;
mod tracking;
mod video;
mod weights_formats;
