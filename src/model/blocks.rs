//! The CSP blocks of YOLO11's backbone and neck: Bottleneck, C3k, C3k2 and SPPF.

use burn::module::Module;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};

use super::ModelError;
use super::conv::Conv;
use crate::compute::kernels::{Activation, cpu};
use crate::weights::WeightsView;

fn silu_conv(view: &WeightsView, device: &Device) -> Result<Conv, ModelError> {
    Conv::load(view, 1, false, Activation::Silu, device)
}

/// `cv2(cv1(x))`, plus `x` when the shapes allow (YOLO11 builds every Bottleneck with shortcut).
#[derive(Module, Debug)]
pub struct Bottleneck {
    pub cv1: Conv,
    pub cv2: Conv,
}

impl Bottleneck {
    pub fn load(view: &WeightsView, device: &Device) -> Result<Self, ModelError> {
        Ok(Self {
            cv1: silu_conv(&view.pp("cv1"), device)?,
            cv2: silu_conv(&view.pp("cv2"), device)?,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.cv2.forward(self.cv1.forward(x.clone()));
        if y.dims() == x.dims() { x + y } else { y }
    }
}

fn load_children<M>(
    view: &WeightsView,
    load: impl Fn(&WeightsView) -> Result<M, ModelError>,
) -> Result<Vec<M>, ModelError> {
    let count = view.count_children();
    if count == 0 {
        return Err(ModelError::Architecture(format!(
            "`{}` has no sub-blocks",
            view.prefix()
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
    pub fn load(view: &WeightsView, device: &Device) -> Result<Self, ModelError> {
        Ok(Self {
            cv1: silu_conv(&view.pp("cv1"), device)?,
            cv2: silu_conv(&view.pp("cv2"), device)?,
            cv3: silu_conv(&view.pp("cv3"), device)?,
            m: load_children(&view.pp("m"), |v| Bottleneck::load(v, device))?,
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

/// A C3k2 stage: a Bottleneck, or a C3k where the model (or its scale) asks for it.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum C3k2Stage {
    Bottleneck(Bottleneck),
    C3k(C3k),
}

impl C3k2Stage {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            C3k2Stage::Bottleneck(b) => b.forward(x),
            C3k2Stage::C3k(c) => c.forward(x),
        }
    }
}

/// C2f with C3k or Bottleneck stages: split `cv1(x)` in two, chain the stages off the second
/// half, and `cv2` the concatenation of everything.
#[derive(Module, Debug)]
pub struct C3k2 {
    pub cv1: Conv,
    pub cv2: Conv,
    pub m: Vec<C3k2Stage>,
}

impl C3k2 {
    pub fn load(view: &WeightsView, device: &Device) -> Result<Self, ModelError> {
        let m = load_children(&view.pp("m"), |v| {
            // The stage type is in the weights: only a C3k has a `cv3`.
            Ok(if v.pp("cv3").exists() {
                C3k2Stage::C3k(C3k::load(v, device)?)
            } else {
                C3k2Stage::Bottleneck(Bottleneck::load(v, device)?)
            })
        })?;
        Ok(Self {
            cv1: silu_conv(&view.pp("cv1"), device)?,
            cv2: silu_conv(&view.pp("cv2"), device)?,
            m,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut ys = self.cv1.forward(x).chunk(2, 1);
        for stage in &self.m {
            let last = ys.last().expect("chunk gives two halves").clone();
            ys.push(stage.forward(last));
        }
        self.cv2.forward_concat(ys)
    }

    /// Whether the stages are C3k blocks (m/l/x scales and the deeper layers of n/s).
    pub fn uses_c3k(&self) -> bool {
        matches!(self.m.first(), Some(C3k2Stage::C3k(_)))
    }
}

/// Spatial Pyramid Pooling - Fast: three chained 5×5 max-pools, concatenated.
#[derive(Module, Debug)]
pub struct Sppf {
    pub cv1: Conv,
    pub cv2: Conv,
}

/// SPPF's pooling window (Ultralytics' `k=5`).
const SPPF_POOL: usize = 5;

impl Sppf {
    pub fn load(view: &WeightsView, device: &Device) -> Result<Self, ModelError> {
        Ok(Self {
            cv1: silu_conv(&view.pp("cv1"), device)?,
            cv2: silu_conv(&view.pp("cv2"), device)?,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let options = MaxPoolOptions::new([SPPF_POOL; 2])
            .with_stride([1, 1])
            .with_padding([SPPF_POOL / 2; 2]);
        let mut ys = vec![self.cv1.forward(x)];
        for _ in 0..3 {
            let last = ys.last().expect("non-empty").clone();
            let pooled = if cpu::on_flex(&last) {
                cpu::max_pool2d(last, SPPF_POOL)
            } else {
                max_pool2d(last, options.clone())
            };
            ys.push(pooled);
        }
        self.cv2.forward_concat(ys)
    }
}
