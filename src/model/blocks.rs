//! The CSP blocks of the backbones and necks: Bottleneck, C3k, C2f (YOLOv8) and its subclass
//! C3k2 (YOLO11, YOLO26), and SPPF.

use burn::module::Module;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};

use super::ModelError;
use super::attention::PsaBlock;
use super::conv::Conv;
use crate::compute::kernels::{Activation, cpu};
use crate::weights::WeightsView;

fn silu_conv(view: &WeightsView, device: &Device) -> Result<Conv, ModelError> {
    Conv::load(view, 1, false, Activation::Silu, device)
}

/// `cv2(cv1(x))`, plus `x` where the block has a shortcut and the shapes allow (YOLO11's and
/// YOLO26's Bottlenecks have one; YOLOv8's head C2f stages do not).
#[derive(Module, Debug)]
pub struct Bottleneck {
    pub cv1: Conv,
    pub cv2: Conv,
    pub shortcut: bool,
}

impl Bottleneck {
    pub fn load(view: &WeightsView, shortcut: bool, device: &Device) -> Result<Self, ModelError> {
        Ok(Self {
            cv1: silu_conv(&view.pp("cv1"), device)?,
            cv2: silu_conv(&view.pp("cv2"), device)?,
            shortcut,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.cv2.forward(self.cv1.forward(x.clone()));
        if self.shortcut && y.dims() == x.dims() {
            x + y
        } else {
            y
        }
    }
}

/// The `count` numbered sub-blocks of `view` (`m.0`, `m.1`, …), each loaded by `load`; when
/// the model's YAML gives the count, the tensors must have exactly that many.
pub(super) fn load_children<M>(
    view: &WeightsView,
    expected: Option<usize>,
    load: impl Fn(&WeightsView) -> Result<M, ModelError>,
) -> Result<Vec<M>, ModelError> {
    let count = view.count_children();
    if count == 0 || expected.is_some_and(|e| e != count) {
        return Err(ModelError::Architecture(format!(
            "`{}` has {count} sub-blocks where the model's YAML has {}",
            view.prefix(),
            expected.map_or("some".to_string(), |e| e.to_string())
        )));
    }
    (0..count).map(|i| load(&view.pp(i))).collect()
}

/// C3 with a chain of 3×3 Bottlenecks: `cv3(cat(m(cv1(x)), cv2(x)))`.
#[derive(Module, Debug)]
pub struct C3k {
    pub cv1: Conv,
    pub cv2: Conv,
    pub cv3: Conv,
    pub m: Vec<Bottleneck>,
}

impl C3k {
    pub fn load(view: &WeightsView, shortcut: bool, device: &Device) -> Result<Self, ModelError> {
        Ok(Self {
            cv1: silu_conv(&view.pp("cv1"), device)?,
            cv2: silu_conv(&view.pp("cv2"), device)?,
            cv3: silu_conv(&view.pp("cv3"), device)?,
            m: load_children(&view.pp("m"), None, |v| {
                Bottleneck::load(v, shortcut, device)
            })?,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let a = self
            .m
            .iter()
            .fold(self.cv1.forward(x.clone()), |y, b| b.forward(y));
        self.cv3.forward_concat(vec![a, self.cv2.forward(x)])
    }
}

/// A stage of a C2f or C3k2: a Bottleneck, a C3k, or (YOLO26's `attn`) a Bottleneck then a
/// PSABlock (Ultralytics' `nn.Sequential`, so its parts are `m.N.0` and `m.N.1`).
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum CspStage {
    Bottleneck(Bottleneck),
    C3k(C3k),
    Attention(Vec<AttentionPart>),
}

/// The two parts of an attention stage.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum AttentionPart {
    Bottleneck(Bottleneck),
    Psa(PsaBlock),
}

impl CspStage {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            CspStage::Bottleneck(b) => b.forward(x),
            CspStage::C3k(c) => c.forward(x),
            CspStage::Attention(parts) => parts.iter().fold(x, |y, part| match part {
                AttentionPart::Bottleneck(b) => b.forward(y),
                AttentionPart::Psa(p) => p.forward(y),
            }),
        }
    }
}

/// What a C2f's stages are, as the model's YAML row says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CspOptions {
    pub stage: StageKind,
    pub shortcut: bool,
    /// The number of stages, when the YAML gives it.
    pub repeats: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind {
    Bottleneck,
    C3k,
    Attention,
}

/// C2f (YOLOv8) and its subclass C3k2 (YOLO11, YOLO26): split `cv1(x)` in two, chain the
/// stages off the second half, and `cv2` the concatenation of everything.
#[derive(Module, Debug)]
pub struct C2f {
    pub cv1: Conv,
    pub cv2: Conv,
    pub m: Vec<CspStage>,
}

impl C2f {
    pub fn load(
        view: &WeightsView,
        options: CspOptions,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let cv1 = silu_conv(&view.pp("cv1"), device)?;
        let hidden = cv1.out_channels() / 2;
        let shortcut = options.shortcut;
        let m = load_children(&view.pp("m"), options.repeats, |v| {
            Ok(match options.stage {
                StageKind::Bottleneck => {
                    CspStage::Bottleneck(Bottleneck::load(v, shortcut, device)?)
                }
                StageKind::C3k => CspStage::C3k(C3k::load(v, shortcut, device)?),
                StageKind::Attention => CspStage::Attention(vec![
                    AttentionPart::Bottleneck(Bottleneck::load(&v.pp(0), shortcut, device)?),
                    AttentionPart::Psa(PsaBlock::load(&v.pp(1), hidden, device)?),
                ]),
            })
        })?;
        Ok(Self {
            cv1,
            cv2: silu_conv(&view.pp("cv2"), device)?,
            m,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.stages(self.cv1.forward(x))
    }

    /// `forward(cat(parts, 1))`, the concatenation not written out on the CPU backend
    /// ([`Conv::forward_concat`]): the necks' C2f each read a Concat.
    pub fn forward_concat(&self, parts: Vec<Tensor<4>>) -> Tensor<4> {
        self.stages(self.cv1.forward_concat(parts))
    }

    /// `cv2` of `cv1`'s two halves and every stage's output.
    fn stages(&self, first: Tensor<4>) -> Tensor<4> {
        let mut ys = first.chunk(2, 1);
        for stage in &self.m {
            let last = ys.last().expect("chunk gives two halves").clone();
            ys.push(stage.forward(last));
        }
        self.cv2.forward_concat(ys)
    }

    /// How many stages the block has (Ultralytics' `n` after the scale's depth).
    pub fn depth(&self) -> usize {
        self.m.len()
    }
}

/// Spatial Pyramid Pooling - Fast: `n` chained max-pools, concatenated with their input;
/// plus the block's input where it has a shortcut (YOLO26).
#[derive(Module, Debug)]
pub struct Sppf {
    pub cv1: Conv,
    pub cv2: Conv,
    pub kernel: usize,
    pub pools: usize,
    pub shortcut: bool,
}

impl Sppf {
    pub fn load(
        view: &WeightsView,
        kernel: usize,
        pools: usize,
        shortcut: bool,
        device: &Device,
    ) -> Result<Self, ModelError> {
        if kernel % 2 == 0 || pools == 0 {
            return Err(ModelError::Architecture(format!(
                "`{}` pools {pools} times with a {kernel}×{kernel} window: the window must be odd and the pools at least one",
                view.prefix()
            )));
        }
        Ok(Self {
            cv1: silu_conv(&view.pp("cv1"), device)?,
            cv2: silu_conv(&view.pp("cv2"), device)?,
            kernel,
            pools,
            shortcut,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let options = MaxPoolOptions::new([self.kernel; 2])
            .with_stride([1, 1])
            .with_padding([self.kernel / 2; 2]);
        let mut ys = vec![self.cv1.forward(x.clone())];
        for _ in 0..self.pools {
            let last = ys.last().expect("non-empty").clone();
            let pooled = if cpu::on_flex(&last) {
                cpu::max_pool2d(last, self.kernel)
            } else {
                max_pool2d(last, options.clone())
            };
            ys.push(pooled);
        }
        let y = self.cv2.forward_concat(ys);
        if self.shortcut && y.dims() == x.dims() {
            y + x
        } else {
            y
        }
    }
}
