//! focalyolo: real-time YOLO11 object detection with a FocalModulation layer 9, on burn
//! (wgpu or CPU), and a view of what FocalModulation attends to.
//!
//! Data flows one way, a folder per stage:
//! [`source`] (images, video, camera) → [`pipeline`] (threads, latest frame wins) →
//! [`inference`] (pre-processing, the [`model`] with [`weights`] on a [`compute`] device,
//! post-processing) → [`track`] (IDs across frames, when asked) → [`count`] (lines and
//! zones crossed, when asked) → [`app`] (the window) or
//! [`output`] (annotated frames, maps, JSON, video). Beside the flow: [`eval`] measures
//! mAP on labelled images, [`distill`] trains a FocalModulation layer 9 for a stock
//! checkpoint.

pub mod app;
pub mod compute;
pub mod count;
pub mod distill;
pub mod eval;
pub mod inference;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod source;
pub mod track;
pub mod weights;

pub use compute::device::{ComputeDevice, DeviceChoice};
pub use inference::detector::{Detector, InputSize};
pub use inference::postprocess::{Detection, NmsOptions};
pub use weights::Weights;

/// mimalloc for the program, its tests and benchmarks alike: the CPU backend allocates
/// every activation afresh, and glibc handed each large block back to the kernel, so a
/// 640 forward pass spent a fifth of its time faulting in zeroed pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
