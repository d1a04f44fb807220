//! Frame pre-processing on the device: the frame crosses to the GPU once, as bytes, and
//! `shaders/letterbox.wgsl` resizes and pads it into the model input, as the plan the
//! caller computed (`inference::preprocess` decides the letterbox) says.

use burn::backend::fusion::custom::TensorSpec;
use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn::backend::{Backend, Dispatch, backend_extension, tensor::FloatTensor, tensor::IntTensor};
use burn::cubecl::prelude::KernelId;
use burn::cubecl::server::KernelArguments;
use burn::tensor::{DType, Device, Int, Shape, Tensor, TensorData};

use super::grid;

fn letterbox_meta(
    _pixels: &TensorSpec,
    _layout: &TensorSpec,
    width: &usize,
    height: &usize,
) -> TensorSpec {
    TensorSpec::new(Shape::new([1, 3, *height, *width]), DType::F32)
}

#[backend_extension(Cube, Fusion)]
pub trait LetterboxBackend: Backend {
    #[fusion(meta = letterbox_meta)]
    fn letterbox(
        pixels: IntTensor<Self>,
        layout: IntTensor<Self>,
        width: usize,
        height: usize,
    ) -> FloatTensor<Self>;
}

struct LetterboxKernel;

impl KernelSource for LetterboxKernel {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(include_str!("../../../shaders/letterbox.wgsl"))
    }
    fn id(&self) -> KernelId {
        KernelId::new::<Self>()
    }
    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

impl LetterboxBackend for CubeBackend {
    fn letterbox(
        pixels: CubeTensor,
        layout: CubeTensor,
        width: usize,
        height: usize,
    ) -> CubeTensor {
        let (pixels, layout) = (into_contiguous(pixels), into_contiguous(layout));
        let total = 3 * width * height;
        let client = pixels.client.clone();
        let output = CubeTensor::new_contiguous(
            client.clone(),
            pixels.device.clone(),
            Shape::new([1, 3, height, width]),
            client.empty(total * 4),
            DType::F32,
        );
        let (count, dim) = grid(total);
        client.launch(
            Box::new(SourceKernel::new(LetterboxKernel, dim)),
            count,
            KernelArguments::new().with_buffers(vec![
                pixels.handle.clone().binding(),
                layout.handle.clone().binding(),
                output.handle.clone().binding(),
            ]),
        );
        output
    }
}

/// One bilinear tap along an axis: the two source indices and their fixed-point weights.
pub type Tap = (usize, usize, i32, i32);

/// How a frame becomes the model input: resized by `x_taps`/`y_taps` (one per resized
/// column/row) to `resized`, placed at `pad` (left, top) on a grey `canvas`. The caller
/// decides the geometry and the resampling; the kernel only carries it out.
pub struct ResizePlan<'a> {
    pub source: (usize, usize),
    pub resized: (usize, usize),
    pub canvas: (usize, usize),
    pub pad: (usize, usize),
    pub x_taps: &'a [Tap],
    pub y_taps: &'a [Tap],
}

/// The model input `(1, 3, canvas height, canvas width)` made by the WGSL kernel from a
/// packed 8-bit frame with `bytes_per_pixel` 3 (RGB) or 4 (RGBA), rows `plan.source.0`
/// pixels long. Only for a device that [runs our WGSL](super::runs_wgsl).
pub fn resize_pad_on_device(
    bytes: &[u8],
    bytes_per_pixel: usize,
    plan: &ResizePlan,
    device: &Device,
) -> Tensor<4> {
    let (width, height) = plan.source;
    assert!(matches!(bytes_per_pixel, 3 | 4), "frames are RGB or RGBA");
    assert_eq!(bytes.len(), width * height * bytes_per_pixel, "frame size");
    let (canvas_width, canvas_height) = plan.canvas;
    let words: Vec<i32> = bytes
        .chunks(4)
        .map(|chunk| {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            i32::from_le_bytes(word)
        })
        .collect();
    let mut layout: Vec<usize> = vec![
        bytes_per_pixel,
        width * bytes_per_pixel,
        plan.resized.0,
        plan.resized.1,
        canvas_width,
        canvas_height,
        plan.pad.0,
        plan.pad.1,
        3 * canvas_width * canvas_height,
    ];
    for &(a, b, wa, wb) in plan.x_taps.iter().chain(plan.y_taps) {
        layout.extend([a, b, wa as usize, wb as usize]);
    }
    let layout: Vec<i32> = layout
        .into_iter()
        .map(|v| i32::try_from(v).expect("frame sizes fit in i32"))
        .collect();
    let word_count = words.len();
    let layout_len = layout.len();
    let pixels = Tensor::<1, Int>::from_data(TensorData::new(words, [word_count]), device);
    let layout = Tensor::<1, Int>::from_data(TensorData::new(layout, [layout_len]), device);
    Tensor::from_dispatch(<Dispatch as LetterboxBackend>::letterbox(
        pixels.into_dispatch(),
        layout.into_dispatch(),
        canvas_width,
        canvas_height,
    ))
}
