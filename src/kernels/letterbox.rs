//! Frame pre-processing on the device: the frame crosses to the GPU once, as bytes, and
//! `shaders/letterbox.wgsl` turns it into the model input. Elsewhere the CPU letterbox runs.

use burn::backend::fusion::custom::TensorSpec;
use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn::backend::{Backend, Dispatch, backend_extension, tensor::FloatTensor, tensor::IntTensor};
use burn::cubecl::prelude::KernelId;
use burn::cubecl::server::KernelArguments;
use burn::tensor::{DType, Device, Int, Shape, Tensor, TensorData};

use super::{grid, runs_wgsl};
use crate::preprocess::{Letterbox, RgbFrame, axis_taps};

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
        SourceTemplate::new(include_str!("../../shaders/letterbox.wgsl"))
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

/// The model input `(1, 3, canvas_height, canvas_width)` for a packed 8-bit frame with
/// `bytes_per_pixel` 3 (RGB) or 4 (RGBA), rows `letterbox.source_width` pixels long.
pub fn letterbox_on_device(
    bytes: &[u8],
    bytes_per_pixel: usize,
    letterbox: &Letterbox,
    device: &Device,
) -> Tensor<4> {
    let (width, height) = (
        letterbox.source_width as usize,
        letterbox.source_height as usize,
    );
    assert!(matches!(bytes_per_pixel, 3 | 4), "frames are RGB or RGBA");
    assert_eq!(bytes.len(), width * height * bytes_per_pixel, "frame size");
    let shape = [1, 3, letterbox.canvas_height, letterbox.canvas_width];
    if !runs_wgsl(device) {
        let packed;
        let rgb_bytes: &[u8] = if bytes_per_pixel == 3 {
            bytes
        } else {
            packed = bytes
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect::<Vec<u8>>();
            &packed
        };
        let rgb =
            RgbFrame::from_raw(width as u32, height as u32, rgb_bytes).expect("size checked above");
        return Tensor::from_data(TensorData::new(letterbox.apply(&rgb), shape), device);
    }

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
        letterbox.resized_width,
        letterbox.resized_height,
        letterbox.canvas_width,
        letterbox.canvas_height,
        letterbox.pad_left,
        letterbox.pad_top,
        3 * letterbox.canvas_width * letterbox.canvas_height,
    ];
    for (a, b, wa, wb) in axis_taps(width, letterbox.resized_width)
        .into_iter()
        .chain(axis_taps(height, letterbox.resized_height))
    {
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
        letterbox.canvas_width,
        letterbox.canvas_height,
    ))
}
