//! Where the model's arithmetic runs: choosing and opening a device (wgpu on a GPU or
//! lavapipe, or burn's CPU backend), and our own kernels for what burn does slowly there:
//! WGSL compute shaders (sources in `shaders/`) on wgpu, vectorised loops on the CPU.
//! Nothing here knows about YOLO; the model and the pre-processing call in. `random` draws
//! tensors from a seed of their own, for tests that must draw the same values again.

pub mod device;
pub mod kernels;
pub mod random;
