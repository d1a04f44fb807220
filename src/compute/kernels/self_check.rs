//! A check, when a wgpu device opens, that the WGSL kernels compile and compute there: a
//! driver that rejects or miscompiles one would otherwise fail every frame. On failure the
//! kernels are switched off and burn's own operations take their place.

use burn::tensor::{Distribution, Tensor, TensorReadError};
use thiserror::Error;

use super::{
    Activation, ResizePlan, Tap, burn_depthwise_conv2d, depthwise_conv2d, resize_pad_on_device,
};

#[derive(Debug, Error)]
pub enum KernelCheckError {
    #[error("the {kernel} kernel failed to run: {source}")]
    Failed {
        kernel: &'static str,
        source: TensorReadError,
    },
    #[error("a kernel differs from its reference by {difference} ({case})")]
    Mismatch { case: String, difference: f32 },
}

/// Run each kernel variant family once on small inputs: the depthwise kernel with both
/// row readers, both workgroup layouts the device uses, both strides and every activation
/// against burn's `conv2d` on the same device, and the letterbox kernel.
pub fn check_kernels(device: &burn::tensor::Device) -> Result<(), KernelCheckError> {
    let read = |tensor: Tensor<4>, kernel| {
        tensor
            .try_into_vec_as::<f32>()
            .map_err(|source| KernelCheckError::Failed { kernel, source })
    };
    // 12 wide: the vec4 row reader at stride 1; 10 wide: the scalar one. Both have few
    // blocks per row (channels along x on a software adapter); 64 wide has eight (a row's
    // blocks along x everywhere).
    let cases = [
        (12, 3, 1, Activation::Silu),
        (64, 3, 1, Activation::Silu),
        (10, 5, 1, Activation::Gelu),
        (10, 3, 2, Activation::Identity),
    ];
    for (size, kernel, stride, activation) in cases {
        let x = Tensor::<4>::random([1, 16, size, size], Distribution::Normal(0.0, 1.0), device);
        let weight = Tensor::<4>::random(
            [16, 1, kernel, kernel],
            Distribution::Normal(0.0, 0.3),
            device,
        );
        let bias = Tensor::<1>::random([16], Distribution::Normal(0.0, 0.1), device);
        // burn's result stays on the device until ours is read: freed first, its buffer
        // could become our output's and hand a kernel that skips outputs the right answer.
        let expected =
            burn_depthwise_conv2d(x.clone(), weight.clone(), bias.clone(), stride, activation);
        let ours = read(
            depthwise_conv2d(x, weight, bias, stride, activation),
            "depthwise convolution",
        )?;
        let expected = read(expected, "depthwise convolution")?;
        let difference = ours
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        // `f32::max` skips NaN: a kernel writing NaN must fail as well.
        let nan = ours.iter().any(|value| value.is_nan());
        if ours.len() != expected.len() || nan || difference > 1e-3 {
            return Err(KernelCheckError::Mismatch {
                case: format!("{size}×{size}, k {kernel}, stride {stride}, {activation:?}"),
                difference,
            });
        }
    }
    // A 5×3 frame kept at its size (each tap its own pixel) in the middle of a 32 square.
    let pixels = [10u8, 20, 30].repeat(5 * 3);
    let identity = |n: usize| -> Vec<Tap> { (0..n).map(|i| (i, i, 2048, 0)).collect() };
    let (x_taps, y_taps) = (identity(5), identity(3));
    let plan = ResizePlan {
        source: (5, 3),
        resized: (5, 3),
        canvas: (32, 32),
        pad: (13, 14),
        x_taps: &x_taps,
        y_taps: &y_taps,
    };
    let input = read(resize_pad_on_device(&pixels, 3, &plan, device), "letterbox")?;
    // The frame's first pixel at the pad offset, grey around it.
    let at = |channel: usize, y: usize, x: usize| input[channel * 32 * 32 + y * 32 + x];
    let expected = [
        (at(0, 14, 13), 10.0),
        (at(2, 14, 13), 30.0),
        (at(1, 0, 0), 114.0),
    ];
    if let Some(&(got, want)) = expected
        .iter()
        .find(|(got, want)| (got * 255.0 - want).abs() > 0.5)
    {
        return Err(KernelCheckError::Mismatch {
            case: "letterbox of a 5×3 frame".into(),
            difference: (got * 255.0 - want).abs(),
        });
    }
    Ok(())
}
