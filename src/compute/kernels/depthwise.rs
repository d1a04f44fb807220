//! Depthwise convolution (`groups = channels`) with bias and fused activation:
//! `shaders/depthwise_conv.wgsl` on wgpu, [`cpu::depthwise_conv2d`] on the CPU backend,
//! burn's `conv2d` elsewhere (autodiff while training).

use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn::backend::{Backend, Dispatch, backend_extension, tensor::FloatTensor};
use burn::cubecl::prelude::{CubeCount, CubeDim, KernelId};
use burn::cubecl::server::KernelArguments;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, Tensor};

use super::{Activation, cpu};
use super::{BackendDevice, WORKGROUP, runs_wgsl, settings_by_id};

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

/// Channels per workgroup: every YOLO11 depthwise layer's channel count divides 16.
const TILE_CHANNELS: u32 = 16;
/// Blocks per workgroup along a row at most: 8 beat 4 and 16 by 10–30% on lavapipe.
const MAX_TILE_BLOCKS: u32 = 8;
/// The largest kernel the shader takes: a block's inputs along a row must fit its 16-input
/// window. Larger kernels use burn's `conv2d`.
const MAX_KERNEL: usize = 9;

/// Adjacent outputs along x computed by one invocation: 8 on rows at least 20 wide (1.3×
/// faster than 4 on lavapipe's 40- and 80-wide planes); 4 on narrower rows, where 8 would
/// leave most of the last block idle (10×10: 1.3–2× slower), and at stride 2, where 8
/// outputs would read more than 16 inputs.
fn block_for(out_width: usize, stride: usize) -> usize {
    if out_width >= 20 && stride == 1 { 8 } else { 4 }
}

/// What runs along a workgroup's x axis. GPUs form SIMD groups from the flattened
/// workgroup, so blocks along x keep neighbouring invocations on neighbouring memory;
/// llvmpipe spreads only the x axis over its SIMD lanes (8 with AVX2) and loops over y and
/// z, so the few blocks of a small plane's row (3 on 10- and 20-wide rows) would leave
/// most lanes idle, where 16 channels fill them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LaneAxis {
    Blocks,
    Channels,
}

/// One compiled variant per shape, kernel size, stride, activation and lane axis: with
/// every size a constant, the loops have constant bounds and no parameter buffer is
/// uploaded per launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DepthwiseConvKernel {
    /// `(N, C, H, W)` of the input.
    input: [usize; 4],
    out_height: usize,
    out_width: usize,
    kernel: usize,
    stride: usize,
    activation: u32,
    lanes: LaneAxis,
}

impl DepthwiseConvKernel {
    /// The variant for an `input` (N, C, H, W) giving `out` (H, W) outputs per plane. Lanes
    /// run along channels on a software adapter where a row has fewer blocks than a
    /// workgroup's row holds (`MAX_TILE_BLOCKS`, llvmpipe's 8 lanes with AVX2), along blocks
    /// otherwise: on lavapipe, channels make the 10- and 20-wide planes' layers 1.2–1.6×
    /// faster, and the 80-wide P3 plane, whose 10 blocks fill the lanes already, 5–10%
    /// slower.
    fn new(
        input: [usize; 4],
        [out_height, out_width]: [usize; 2],
        kernel: usize,
        stride: usize,
        activation: u32,
        channel_lanes: bool,
    ) -> Self {
        let mut variant = Self {
            input,
            out_height,
            out_width,
            kernel,
            stride,
            activation,
            lanes: LaneAxis::Blocks,
        };
        if channel_lanes && variant.blocks() < MAX_TILE_BLOCKS as usize {
            variant.lanes = LaneAxis::Channels;
        }
        variant
    }

    fn block(&self) -> usize {
        block_for(self.out_width, self.stride)
    }

    /// Blocks along an output row.
    fn blocks(&self) -> usize {
        self.out_width.div_ceil(self.block())
    }

    /// Pairs of output rows: each invocation computes two.
    fn row_pairs(&self) -> usize {
        self.out_height.div_ceil(2)
    }

    fn channel_groups(&self) -> usize {
        self.input[1].div_ceil(TILE_CHANNELS as usize)
    }

    /// Rows are read as aligned vec4s: stride 1 and a width that is a multiple of 4.
    fn vec4_rows(&self) -> bool {
        self.stride == 1 && self.input[3].is_multiple_of(4)
    }

    /// Invocations per workgroup along blocks, pairs of output rows and channels, fitted to
    /// the plane so that small planes (P5 is 10×10 at 320) leave few invocations idle:
    /// about 1.4× faster there than a fixed 4×4×16.
    fn tile(&self) -> [u32; 3] {
        let blocks = u32::try_from(self.blocks()).unwrap_or(u32::MAX);
        let pairs = u32::try_from(self.row_pairs()).unwrap_or(u32::MAX);
        let x = blocks.min(MAX_TILE_BLOCKS);
        let y = pairs.min(WORKGROUP / (x * TILE_CHANNELS));
        [x, y, TILE_CHANNELS]
    }

    /// The grid axis (0 = x, 1 = y, 2 = z) that blocks, pairs of rows and channels take.
    fn axes(&self) -> [usize; 3] {
        match self.lanes {
            LaneAxis::Blocks => [0, 1, 2],
            LaneAxis::Channels => [1, 2, 0],
        }
    }

    /// Blocks, pairs of rows and channels per workgroup, in grid-axis order.
    fn workgroup_size(&self) -> [u32; 3] {
        self.on_axes(self.tile())
    }

    /// Workgroups along blocks, pairs of rows and images × channel groups, in grid-axis order.
    fn workgroups(&self) -> CubeCount {
        let tile = self.tile();
        let count = |n: usize, per_group: u32| {
            u32::try_from(n.div_ceil(per_group as usize)).expect("fewer than 2^32 workgroups")
        };
        let [x, y, z] = self.on_axes([
            count(self.blocks(), tile[0]),
            count(self.row_pairs(), tile[1]),
            count(self.input[0] * self.channel_groups(), 1),
        ]);
        CubeCount::Static(x, y, z)
    }

    /// Per-dimension values (blocks, pairs, channels) placed on their grid axes.
    fn on_axes(&self, values: [u32; 3]) -> [u32; 3] {
        let mut placed = [0; 3];
        for (value, axis) in values.into_iter().zip(self.axes()) {
            placed[axis] = value;
        }
        placed
    }
}

impl KernelSource for DepthwiseConvKernel {
    fn source(&self) -> SourceTemplate {
        let rows = if self.vec4_rows() {
            include_str!("../../../shaders/depthwise_rows_vec4.wgsl")
        } else {
            include_str!("../../../shaders/depthwise_rows.wgsl")
        };
        let [_, channels, height, width] = self.input;
        let size = self.workgroup_size();
        let axis = self.axes().map(|axis| ["x", "y", "z"][axis]);
        SourceTemplate::new(include_str!("../../../shaders/depthwise_conv.wgsl").to_string() + rows)
            .register("channels", channels.to_string())
            .register("channel_groups", self.channel_groups().to_string())
            .register("height", height.to_string())
            .register("width", width.to_string())
            .register("out_height", self.out_height.to_string())
            .register("out_width", self.out_width.to_string())
            .register("kernel", self.kernel.to_string())
            .register("stride", self.stride.to_string())
            .register("activation", self.activation.to_string())
            .register("block", self.block().to_string())
            .register("tile_channels", TILE_CHANNELS.to_string())
            .register("tile_x", size[0].to_string())
            .register("tile_y", size[1].to_string())
            .register("tile_z", size[2].to_string())
            .register("block_axis", axis[0])
            .register("pair_axis", axis[1])
            .register("channel_axis", axis[2])
    }
    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info(*self)
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
        let shape = output_shape(&in_shape, weight.meta.shape(), &stride);
        let client = input.client.clone();
        let output = CubeTensor::new_contiguous(
            client.clone(),
            input.device.clone(),
            shape.clone(),
            client.empty(shape.num_elements() * 4),
            DType::F32,
        );
        let kernel = DepthwiseConvKernel::new(
            [in_shape[0], in_shape[1], in_shape[2], in_shape[3]],
            [shape[2], shape[3]],
            weight.meta.shape()[2],
            stride,
            activation,
            settings_by_id(BackendDevice::to_id(&input.device)).channel_lanes,
        );
        let [x, y, z] = kernel.workgroup_size();
        client.launch(
            Box::new(SourceKernel::new(kernel, CubeDim::new_3d(x, y, z))),
            kernel.workgroups(),
            KernelArguments::new().with_buffers(vec![
                input.handle.clone().binding(),
                weight.handle.clone().binding(),
                bias.handle.clone().binding(),
                output.handle.clone().binding(),
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
/// odd square kernel `weight` of shape `(C, 1, k, k)`; the WGSL kernel on wgpu for k ≤ 9,
/// our loops on the CPU.
pub fn depthwise_conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    activation: Activation,
) -> Tensor<4> {
    let kernel = weight.dims()[2];
    if runs_wgsl(&x.device()) && x.dtype() == DType::F32 && kernel <= MAX_KERNEL {
        return Tensor::from_dispatch(<Dispatch as DepthwiseConvBackend>::depthwise_conv2d(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            stride,
            activation_code(activation),
        ));
    }
    if cpu::on_flex(&x) && cpu::on_flex(&weight) && cpu::on_flex(&bias) {
        return cpu::depthwise_conv2d(x, weight, bias, stride, activation);
    }
    burn_depthwise_conv2d(x, weight, bias, stride, activation)
}

/// The same layer through burn's generic `conv2d`: the baseline the kernels are tested and
/// benchmarked against.
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
