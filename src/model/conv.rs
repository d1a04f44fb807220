//! Convolutions as Ultralytics builds them: `nn.Conv2d`, and `Conv` (conv + BatchNorm +
//! SiLU) with the BatchNorm folded into the convolution when the weights are loaded.

use burn::module::{Module, Param};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;

use super::{ModelError, flops};
use crate::compute::kernels::{Activation, cpu, depthwise_conv2d};
use crate::weights::{WeightTensor, WeightsView};

/// BatchNorm epsilon of every Ultralytics `Conv`.
const BN_EPS: f32 = 1e-3;

/// A 2-D convolution with bias and activation, stride 1 or 2, "same" padding (k/2).
#[derive(Module, Debug)]
pub struct Conv2dLayer {
    pub weight: Param<Tensor<4>>,
    pub bias: Option<Param<Tensor<1>>>,
    pub stride: usize,
    pub groups: usize,
    #[module(skip)]
    pub activation: Activation,
    /// The weights as the CPU convolution reads them, packed on first use.
    #[module(skip)]
    pub packed: cpu::PackCache,
}

/// Upload a loaded tensor of rank `D`.
pub fn upload<const D: usize>(tensor: &WeightTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(
        TensorData::new(tensor.values.clone(), tensor.shape.clone()),
        device,
    )
}

impl Conv2dLayer {
    /// `nn.Conv2d` at `view` (`view.weight`, optional `view.bias`). `depthwise` convolutions
    /// have one input channel per group.
    pub fn load(
        view: &WeightsView,
        stride: usize,
        depthwise: bool,
        activation: Activation,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let weight = view.get_rank("weight", 4)?;
        let bias = if view.has("bias") {
            Some(view.get_rank("bias", 1)?.clone())
        } else {
            None
        };
        Self::from_parts(
            view.path("weight"),
            weight.clone(),
            bias,
            stride,
            depthwise,
            activation,
            device,
        )
    }

    fn from_parts(
        name: String,
        weight: WeightTensor,
        bias: Option<WeightTensor>,
        stride: usize,
        depthwise: bool,
        activation: Activation,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let [out_channels, in_per_group, kh, kw] = weight.shape[..] else {
            unreachable!("rank checked")
        };
        if kh != kw || kh % 2 == 0 || (depthwise && in_per_group != 1) {
            return Err(ModelError::Architecture(format!(
                "`{name}` has shape {:?}: expected an odd square kernel{}",
                weight.shape,
                if depthwise {
                    " with one input channel per group"
                } else {
                    ""
                }
            )));
        }
        if let Some(bias) = &bias
            && bias.shape != [out_channels]
        {
            return Err(ModelError::Architecture(format!(
                "the bias of `{name}` does not match its {out_channels} outputs"
            )));
        }
        Ok(Self {
            weight: Param::from_tensor(upload(&weight, device)),
            bias: bias.map(|b| Param::from_tensor(upload(&b, device))),
            stride,
            groups: if depthwise { out_channels } else { 1 },
            activation,
            packed: cpu::PackCache::default(),
        })
    }

    /// A fresh convolution of `shape` (`[out, in / groups, k, k]`), initialised as PyTorch
    /// initialises `nn.Conv2d`: U(±1/√fan_in).
    pub fn init_uniform(
        shape: [usize; 4],
        groups: usize,
        bias: bool,
        activation: Activation,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Self {
        let [out_channels, in_per_group, kh, kw] = shape;
        let bound = 1.0 / ((in_per_group * kh * kw) as f32).sqrt();
        let mut uniform = |shape: &[usize]| {
            let values: Vec<f32> = (0..shape.iter().product())
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            TensorData::new(values, shape.to_vec())
        };
        let weight = uniform(&shape);
        let bias = bias.then(|| uniform(&[out_channels]));
        Self {
            weight: Param::from_tensor(Tensor::from_data(weight, device)),
            bias: bias.map(|b| Param::from_tensor(Tensor::from_data(b, device))),
            stride: 1,
            groups,
            activation,
            packed: cpu::PackCache::default(),
        }
    }

    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn in_channels(&self) -> usize {
        self.weight.dims()[1] * self.groups
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out_channels = self.out_channels();
        if self.groups == out_channels && out_channels > 1 {
            let bias = match &self.bias {
                Some(b) => b.val(),
                None => Tensor::zeros([out_channels], &x.device()),
            };
            let y = depthwise_conv2d(x, self.weight.val(), bias, self.stride, self.activation);
            return self.counted(y);
        }
        // The weights are autodiff tensors while a layer trains, even on plain inputs.
        if self.groups == 1 && cpu::on_flex(&x) && cpu::on_flex(&self.weight.val()) {
            return self.forward_concat(vec![x]);
        }
        self.burn_forward(x)
    }

    /// `forward(cat(parts, 1))`, the concatenation not written out on the CPU backend.
    pub fn forward_concat(&self, parts: Vec<Tensor<4>>) -> Tensor<4> {
        let weight = self.weight.val();
        if self.groups == 1 && parts.iter().all(cpu::on_flex) && cpu::on_flex(&weight) {
            let layer = cpu::ConvLayer {
                weight,
                bias: self.bias.as_ref().map(|b| b.val()),
                stride: self.stride,
                activation: self.activation,
                packed: &self.packed,
            };
            return self.counted(cpu::conv2d(parts, layer));
        }
        self.forward(Tensor::cat(parts, 1))
    }

    /// The convolution through burn's operations (autodiff while training, wgpu).
    fn burn_forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, k, _] = self.weight.dims();
        let weight = self.weight.val();
        let pad = k / 2;
        let options = ConvOptions::new([self.stride; 2], [pad; 2], [1, 1], self.groups);
        let y = conv2d(x, weight, self.bias.as_ref().map(|b| b.val()), options);
        self.counted(self.activation.apply(y))
    }

    /// `y`, this convolution's output, its multiply-adds counted for the roofline.
    fn counted(&self, y: Tensor<4>) -> Tensor<4> {
        let [batch, out_channels, height, width] = y.dims();
        let [_, in_per_group, kh, kw] = self.weight.dims();
        flops::add(batch * out_channels * height * width * in_per_group * kh * kw);
        y
    }
}

/// Ultralytics `Conv`: `conv` (no bias) + `bn` + activation, or `conv` with bias once fused.
#[derive(Module, Debug)]
pub struct Conv {
    pub conv: Conv2dLayer,
}

impl Conv {
    pub fn load(
        view: &WeightsView,
        stride: usize,
        depthwise: bool,
        activation: Activation,
        device: &Device,
    ) -> Result<Self, ModelError> {
        // The checkpoint says which Convs were built without an activation (`act=False`).
        let activation = if view.is_plain_conv() {
            Activation::Identity
        } else {
            activation
        };
        let conv_view = view.pp("conv");
        if !view.pp("bn").exists() {
            return Ok(Self {
                conv: Conv2dLayer::load(&conv_view, stride, depthwise, activation, device)?,
            });
        }
        let weight = conv_view.get_rank("weight", 4)?;
        let out_channels = weight.shape[0];
        let bn = view.pp("bn");
        let stat = |name: &str| -> Result<&WeightTensor, ModelError> {
            let t = bn.get_rank(name, 1)?;
            if t.values.len() != out_channels {
                return Err(ModelError::Architecture(format!(
                    "`{}` has {} entries for a conv of {out_channels} outputs",
                    bn.path(name),
                    t.values.len()
                )));
            }
            Ok(t)
        };
        let (gamma, beta, mean, var) = (
            stat("weight")?,
            stat("bias")?,
            stat("running_mean")?,
            stat("running_var")?,
        );
        let per_output = weight.values.len() / out_channels;
        let mut folded = weight.clone();
        let mut bias = WeightTensor {
            shape: vec![out_channels],
            values: vec![0.0; out_channels],
        };
        for o in 0..out_channels {
            let scale = gamma.values[o] / (var.values[o] + BN_EPS).sqrt();
            folded.values[o * per_output..(o + 1) * per_output]
                .iter_mut()
                .for_each(|w| *w *= scale);
            bias.values[o] = beta.values[o] - mean.values[o] * scale;
        }
        let conv = Conv2dLayer::from_parts(
            conv_view.path("weight"),
            folded,
            Some(bias),
            stride,
            depthwise,
            activation,
            device,
        )?;
        Ok(Self { conv })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv.forward(x)
    }

    /// `forward(cat(parts, 1))`; see [`Conv2dLayer::forward_concat`].
    pub fn forward_concat(&self, parts: Vec<Tensor<4>>) -> Tensor<4> {
        self.conv.forward_concat(parts)
    }

    pub fn out_channels(&self) -> usize {
        self.conv.out_channels()
    }
}
