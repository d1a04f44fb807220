//! What detections become outside the window: boxes and labels drawn on frames
//! ([`annotate`]), FocalModulation's maps as images and overlays ([`attention_maps`]), the
//! per-frame JSON records ([`report`]), the annotated video ([`video_writer`]), and what
//! one box's maps and provenance say ([`explain`]).

pub mod annotate;
pub mod attention_maps;
pub mod explain;
pub mod report;
pub mod shape_facts;
pub mod shapes;
pub mod video_writer;
