//! C2PSA: the position-sensitive attention block YOLO11 and YOLO26 put after layer 9, and
//! the PSABlock that YOLO26's attention C3k2 stages end in.

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

use super::blocks::load_children;
use super::conv::Conv;
use super::{ModelError, flops};
use crate::compute::kernels::{Activation, cpu};
use crate::weights::WeightsView;

/// Channels per attention head (`num_heads = max(c // 64, 1)`).
const CHANNELS_PER_HEAD: usize = 64;

/// Multi-head self-attention over positions, plus a depthwise positional encoding of `v`.
#[derive(Module, Debug)]
pub struct Attention {
    pub qkv: Conv,
    pub proj: Conv,
    pub pe: Conv,
    pub num_heads: usize,
    pub key_dim: usize,
    pub head_dim: usize,
}

impl Attention {
    pub fn load(view: &WeightsView, dim: usize, device: &Device) -> Result<Self, ModelError> {
        let num_heads = (dim / CHANNELS_PER_HEAD).max(1);
        let qkv = Conv::load(&view.pp("qkv"), 1, false, Activation::Identity, device)?;
        let qk_channels = qkv
            .out_channels()
            .checked_sub(dim)
            .filter(|c| num_heads > 0 && c % (2 * num_heads) == 0);
        let Some(qk_channels) = qk_channels else {
            return Err(ModelError::Architecture(format!(
                "`{}` has {} outputs, which do not split into heads for {dim} channels",
                view.path("qkv"),
                qkv.out_channels()
            )));
        };
        Ok(Self {
            qkv,
            proj: Conv::load(&view.pp("proj"), 1, false, Activation::Identity, device)?,
            pe: Conv::load(&view.pp("pe"), 1, true, Activation::Identity, device)?,
            num_heads,
            key_dim: qk_channels / (2 * num_heads),
            head_dim: dim / num_heads,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let n = h * w;
        let qkv =
            self.qkv
                .forward(x)
                .reshape([b, self.num_heads, 2 * self.key_dim + self.head_dim, n]);
        let mut parts = qkv
            .split_with_sizes(vec![self.key_dim, self.key_dim, self.head_dim], 2)
            .into_iter();
        let (q, k, v) = (
            parts.next().expect("q"),
            parts.next().expect("k"),
            parts.next().expect("v"),
        );
        let scale = (self.key_dim as f64).powf(-0.5);
        let scores = q.swap_dims(2, 3).matmul(k);
        let attn = if cpu::on_flex(&scores) {
            cpu::softmax_last_axis(scores, scale as f32)
        } else {
            softmax(scores.mul_scalar(scale), 3)
        };
        let out = v.clone().matmul(attn.swap_dims(2, 3)).reshape([b, c, h, w]);
        flops::add(b * self.num_heads * n * n * (self.key_dim + self.head_dim));
        let pe = self.pe.forward(v.reshape([b, c, h, w]));
        self.proj.forward(out + pe)
    }
}

/// `x + attn(x)`, then `x + ffn(x)`.
#[derive(Module, Debug)]
pub struct PsaBlock {
    pub attn: Attention,
    pub ffn: Vec<Conv>,
}

impl PsaBlock {
    pub fn load(view: &WeightsView, dim: usize, device: &Device) -> Result<Self, ModelError> {
        let ffn = view.pp("ffn");
        Ok(Self {
            attn: Attention::load(&view.pp("attn"), dim, device)?,
            ffn: vec![
                Conv::load(&ffn.pp(0), 1, false, Activation::Silu, device)?,
                Conv::load(&ffn.pp(1), 1, false, Activation::Identity, device)?,
            ],
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = x.clone() + self.attn.forward(x);
        let y = self.ffn.iter().fold(x.clone(), |y, conv| conv.forward(y));
        x + y
    }
}

/// Split `cv1(x)` in two halves, run the PSA blocks on the second, `cv2` the concatenation.
#[derive(Module, Debug)]
pub struct C2Psa {
    pub cv1: Conv,
    pub cv2: Conv,
    pub m: Vec<PsaBlock>,
}

impl C2Psa {
    /// `repeats`: the PSA blocks the model's YAML gives, when it does.
    pub fn load(
        view: &WeightsView,
        repeats: Option<usize>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let cv1 = Conv::load(&view.pp("cv1"), 1, false, Activation::Silu, device)?;
        let hidden = cv1.out_channels() / 2;
        Ok(Self {
            cv1,
            cv2: Conv::load(&view.pp("cv2"), 1, false, Activation::Silu, device)?,
            m: load_children(&view.pp("m"), repeats, |v| {
                PsaBlock::load(v, hidden, device)
            })?,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut halves = self.cv1.forward(x).chunk(2, 1).into_iter();
        let (a, b) = (
            halves.next().expect("first half"),
            halves.next().expect("second half"),
        );
        let b = self.m.iter().fold(b, |y, block| block.forward(y));
        self.cv2.forward_concat(vec![a, b])
    }
}
