//! The segmentation head's mask prototypes (`proto`): from P3 (Segment), or from P3 with P4
//! and P5 folded in (YOLO26's Segment26), a 3×3 Conv, a ×2 transposed convolution, a 3×3
//! Conv and a 1×1 Conv to `nm` prototype masks at a quarter of the input's size.

use burn::module::Module;
use burn::tensor::module::{conv_transpose2d, interpolate};
use burn::tensor::ops::{ConvTransposeOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

use super::conv::{Conv, upload};
use super::{ModelError, flops};
use crate::compute::kernels::Activation;
use crate::weights::WeightsView;

/// `nn.ConvTranspose2d(c, c, 2, 2, 0, bias=True)`: each input cell becomes a 2×2 block.
#[derive(Module, Debug)]
pub struct Upsample2x {
    /// `(in, out, 2, 2)`, as PyTorch stores a transposed convolution's weight.
    pub weight: Tensor<4>,
    pub bias: Tensor<1>,
}

impl Upsample2x {
    fn load(view: &WeightsView, device: &Device) -> Result<Self, ModelError> {
        let weight = view.get_rank("weight", 4)?;
        if weight.shape[2..] != [2, 2] {
            return Err(ModelError::Architecture(format!(
                "`{}` is {:?}, not a 2×2 transposed convolution",
                view.path("weight"),
                weight.shape
            )));
        }
        let bias = view.get_rank("bias", 1)?;
        if bias.values.len() != weight.shape[1] {
            return Err(ModelError::Architecture(format!(
                "`{}` has {} values for {} output channels",
                view.path("bias"),
                bias.values.len(),
                weight.shape[1]
            )));
        }
        Ok(Self {
            weight: upload(weight, device),
            bias: upload(bias, device),
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = conv_transpose2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1),
        );
        // Each output value sums one input value per input channel.
        flops::add(y.shape().num_elements() * self.weight.dims()[0]);
        y
    }
}

/// The prototype branch, named as Ultralytics' `Proto` and `Proto26` name theirs.
#[derive(Module, Debug)]
pub struct Proto {
    pub cv1: Conv,
    pub upsample: Upsample2x,
    pub cv2: Conv,
    pub cv3: Conv,
    /// Segment26: a 1×1 Conv per coarser level to P3's channels, added to P3 upsampled.
    pub feat_refine: Vec<Conv>,
    /// Segment26: the 3×3 Conv from the fused P3 to the prototypes' width.
    pub feat_fuse: Option<Conv>,
}

impl Proto {
    /// The prototypes at `view` (`model.23.proto`); `fused` for Segment26's.
    pub fn load(view: &WeightsView, fused: bool, device: &Device) -> Result<Self, ModelError> {
        let conv = |v: WeightsView| Conv::load(&v, 1, false, Activation::Silu, device);
        let (feat_refine, feat_fuse) = if fused {
            let refine = view.pp("feat_refine");
            (
                (0..2)
                    .map(|i| conv(refine.pp(i)))
                    .collect::<Result<Vec<_>, _>>()?,
                Some(conv(view.pp("feat_fuse"))?),
            )
        } else {
            (Vec::new(), None)
        };
        Ok(Self {
            cv1: conv(view.pp("cv1"))?,
            upsample: Upsample2x::load(&view.pp("upsample"), device)?,
            cv2: conv(view.pp("cv2"))?,
            cv3: conv(view.pp("cv3"))?,
            feat_refine,
            feat_fuse,
        })
    }

    /// The number of prototype masks.
    pub fn masks(&self) -> usize {
        self.cv3.out_channels()
    }

    /// Prototypes `(B, nm, H/4, W/4)` from Detect's inputs (P3, P4, P5).
    pub fn forward(&self, features: &[Tensor<4>; 3]) -> Tensor<4> {
        let mut p3 = features[0].clone();
        for (refine, coarser) in self.feat_refine.iter().zip(&features[1..]) {
            let [_, _, h, w] = p3.dims();
            p3 = p3
                + interpolate(
                    refine.forward(coarser.clone()),
                    InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([h, w]),
                );
        }
        let x = match &self.feat_fuse {
            Some(fuse) => fuse.forward(p3),
            None => p3,
        };
        self.cv3
            .forward(self.cv2.forward(self.upsample.forward(self.cv1.forward(x))))
    }
}
