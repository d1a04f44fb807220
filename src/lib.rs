//! focalyolo: real-time YOLO11 object detection with a FocalModulation layer 9, on burn
//! (wgpu or CPU), and a view of what FocalModulation attends to.
//!
//! Data flows one way: [`source`] → [`preprocess`] → [`model`] (weights from [`weights`],
//! on a [`device`]) → [`postprocess`] → [`annotate`] or JSON. [`detector`] ties one image's
//! trip together.

pub mod annotate;
pub mod attention_maps;
pub mod dataset;
pub mod default_model;
pub mod detector;
pub mod device;
pub mod distill;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod postprocess;
pub mod preprocess;
pub mod report;
pub mod source;
pub mod weights;
