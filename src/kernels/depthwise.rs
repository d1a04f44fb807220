//! Depthwise convolution (`groups = channels`) with bias and fused activation:
//! `shaders/depthwise_conv.wgsl` on wgpu, burn's `conv2d` elsewhere.

use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn::backend::{Backend, Dispatch, backend_extension, tensor::FloatTensor};
use burn::cubecl::prelude::{CubeCount, CubeDim, KernelId};
use burn::cubecl::server::KernelArguments;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, Tensor};

use super::{runs_wgsl, upload_words};
use crate::model::conv::Activation;

fn output_shape(input: &Shape, weight: &Shape, stride: &usize) -> Shape {
    let out = |size: usize| (size + 2 * (weight[2] / 2) - weight[2]) / stride + 1;
    Shape::new([input[0], input[1], out(input[2]), out(input[3])])
}

#[backend_extension(Cube, Fusion)]
pub trait DepthwiseConvBackend: Backend {
    #[fusion(dtype = input, shape = output_shape(input, weight, stride))]
    fn depthwise_conv2d(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
        activation: u32,
    ) -> FloatTensor<Self>;
}

/// Outputs per workgroup along x, y and planes (`n·C + c`): small planes (P5 is 20×20 at
/// 640, 10×10 at 320) waste few invocations, and every layer's channel count divides 16.
const TILE: [u32; 3] = [4, 4, 16];
/// Adjacent outputs along x computed by one invocation: 8 on rows at least 20 wide, where
/// it saves a quarter of the time over 4 on lavapipe (20×20 and 80×80 planes); 4 on
/// narrower rows, where 8 would leave most of the last block idle (10×10: 1.5× slower).
fn block_for(out_width: usize) -> usize {
    if out_width >= 20 { 8 } else { 4 }
}

/// One compiled variant per kernel size, stride, activation and block.
struct DepthwiseConvKernel {
    kernel: usize,
    stride: usize,
    activation: u32,
    block: usize,
}

impl KernelSource for DepthwiseConvKernel {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(include_str!("../../shaders/depthwise_conv.wgsl"))
            .register("kernel", self.kernel.to_string())
            .register("stride", self.stride.to_string())
            .register("activation", self.activation.to_string())
            .register("block", self.block.to_string())
            .register(
                "span",
                ((self.block - 1) * self.stride + self.kernel).to_string(),
            )
            .register("tile_x", TILE[0].to_string())
            .register("tile_y", TILE[1].to_string())
            .register("tile_z", TILE[2].to_string())
    }
    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.kernel, self.stride, self.activation, self.block))
    }
    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

impl DepthwiseConvBackend for CubeBackend {
    fn depthwise_conv2d(
        input: CubeTensor,
        weight: CubeTensor,
        bias: CubeTensor,
        stride: usize,
        activation: u32,
    ) -> CubeTensor {
        let (input, weight, bias) = (
            into_contiguous(input),
            into_contiguous(weight),
            into_contiguous(bias),
        );
        let in_shape = input.meta.shape().clone();
        let w_shape = weight.meta.shape().clone();
        let shape = output_shape(&in_shape, &w_shape, &stride);
        let total = shape.num_elements();
        let client = input.client.clone();
        let output = CubeTensor::new_contiguous(
            client.clone(),
            input.device.clone(),
            shape.clone(),
            client.empty(total * 4),
            DType::F32,
        );
        let params = upload_words(
            &input,
            &[in_shape[1], in_shape[2], in_shape[3], shape[2], shape[3]]
                .map(|v| u32::try_from(v).expect("depthwise conv sizes fit in u32")),
        );
        let planes = u32::try_from(shape[0] * shape[1]).expect("fewer than 2^32 planes");
        let block = block_for(shape[3]);
        let kernel = DepthwiseConvKernel {
            kernel: w_shape[2],
            stride,
            activation,
            block,
        };
        client.launch(
            Box::new(SourceKernel::new(
                kernel,
                CubeDim::new_3d(TILE[0], TILE[1], TILE[2]),
            )),
            CubeCount::Static(
                (shape[3].div_ceil(block) as u32).div_ceil(TILE[0]),
                (shape[2] as u32).div_ceil(TILE[1]),
                planes.div_ceil(TILE[2]),
            ),
            KernelArguments::new().with_buffers(vec![
                input.handle.clone().binding(),
                weight.handle.clone().binding(),
                bias.handle.clone().binding(),
                output.handle.clone().binding(),
                params.binding(),
            ]),
        );
        output
    }
}

fn activation_code(activation: Activation) -> u32 {
    match activation {
        Activation::Identity => 0,
        Activation::Silu => 1,
        Activation::Gelu => 2,
    }
}

/// `activation(conv2d(x, weight, bias, stride, padding k/2, groups = channels))` for an
/// odd square kernel `weight` of shape `(C, 1, k, k)`.
pub fn depthwise_conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    activation: Activation,
) -> Tensor<4> {
    if runs_wgsl(&x.device()) && x.dtype() == DType::F32 {
        return Tensor::from_dispatch(<Dispatch as DepthwiseConvBackend>::depthwise_conv2d(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            stride,
            activation_code(activation),
        ));
    }
    burn_depthwise_conv2d(x, weight, bias, stride, activation)
}

/// The same layer through burn's generic `conv2d`: the CPU path, and the baseline the
/// kernel is tested and benchmarked against.
pub fn burn_depthwise_conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    activation: Activation,
) -> Tensor<4> {
    let [channels, _, k, _] = weight.dims();
    let options = ConvOptions::new([stride; 2], [k / 2; 2], [1, 1], channels);
    activation.apply(conv2d(x, weight, Some(bias), options))
}
