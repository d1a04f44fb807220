//! One image's trip to boxes: [`preprocess`] fits it to the model's canvas (the letterbox,
//! on the device when it can), [`detector`] runs the model on it, [`postprocess`] decodes
//! the boxes, suppresses duplicates and maps them back onto the image.

pub mod detector;
pub mod masks;
pub mod nms;
pub mod postprocess;
pub mod preprocess;
pub mod rotated;
pub mod task_shapes;
