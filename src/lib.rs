//! focalyolo: real-time YOLO11 object detection with a FocalModulation layer 9, on burn
//! (wgpu or CPU), and a view of what FocalModulation attends to.
//!
//! Data flows one way: [`source`] (images, video, camera) → [`pipeline`] (threads, latest
//! frame wins) → [`preprocess`] → [`model`] (weights from [`weights`], on a [`device`]) →
//! [`postprocess`] → [`track`] (IDs across frames, when asked) → [`app`] (the window) or
//! [`annotate`], [`video_writer`] and JSON.
//! [`detector`] ties one image's trip together.

pub mod annotate;
pub mod app;
pub mod attention_maps;
pub mod default_model;
pub mod detector;
pub mod device;
pub mod distill;
pub mod eval;
pub mod kernels;
pub mod model;
pub mod pipeline;
pub mod postprocess;
pub mod preprocess;
pub mod report;
pub mod source;
pub mod track;
pub mod video_writer;
pub mod weights;

/// mimalloc for the program, its tests and benchmarks alike: the CPU backend allocates
/// every activation afresh, and glibc handed each large block back to the kernel, so a
/// 640 forward pass spent a fifth of its time faulting in zeroed pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
