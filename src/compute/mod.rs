//! Where the model's arithmetic runs: choosing and opening a device (wgpu on a GPU or
//! lavapipe, or burn's CPU backend), and our own kernels for what burn does slowly there:
//! WGSL compute shaders (sources in `shaders/`) on wgpu, vectorised loops on the CPU.
//! Nothing here knows about YOLO; the model and the pre-processing call in.

pub mod device;
pub mod kernels;
