//! FocalModulation (FocalNets, NeurIPS 2022) as the Ultralytics-style block that replaces
//! SPPF at layer 9: a 1×1 `f_linear` to `2C + L + 1` channels split into the query, the
//! context and `L + 1` gates; `L` cascaded depthwise convolutions with GELU build the focal
//! levels; the global level is GELU of the last level's spatial mean; the gated sum of the
//! levels goes through `h` to give the modulator, and `proj(q · modulator)` is the output.

use burn::module::Module;
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor};

use super::ModelError;
use super::conv::Conv2dLayer;
use crate::compute::kernels::Activation;
use crate::weights::{FocalAttributes, WeightsView};

/// Hyper-parameters of a FocalModulation block (defaults: level 2, window 3, factor 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FocalSettings {
    pub dim: usize,
    pub focal_level: usize,
    pub focal_window: usize,
    pub focal_factor: usize,
    pub normalize_modulator: bool,
}

/// What FocalModulation computed for one input, for the attention view.
#[derive(Debug, Clone)]
pub struct FocalTaps {
    /// `(1, L + 1, H, W)`: one gate map per focal level, then the global level's.
    pub gates: Tensor<4>,
    /// Each focal level's context, `(1, C, H, W)`.
    pub level_contexts: Vec<Tensor<4>>,
    /// The global context, `(1, C, 1, 1)`.
    pub global_context: Tensor<4>,
    /// The gated sum of all levels, `(1, C, H, W)`, before `h`.
    pub context_sum: Tensor<4>,
    /// `h(ctx_all)`, `(1, C, H, W)`.
    pub modulator: Tensor<4>,
}

#[derive(Module, Debug)]
pub struct FocalModulation {
    pub f_linear: Conv2dLayer,
    pub focal_layers: Vec<Conv2dLayer>,
    pub h: Conv2dLayer,
    pub proj: Conv2dLayer,
    pub normalize_modulator: bool,
}

impl FocalModulation {
    /// Load from `view`; the focal level, window and factor follow from the tensor shapes,
    /// `normalize_modulator` from the file's attributes (default false).
    pub fn load(
        view: &WeightsView,
        attributes: &FocalAttributes,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let plain =
            |name: &str| Conv2dLayer::load(&view.pp(name), 1, false, Activation::Identity, device);
        let f_linear = plain("f_linear")?;
        let dim = f_linear.in_channels();
        let focal_level = f_linear
            .out_channels()
            .checked_sub(2 * dim + 1)
            .filter(|&l| l > 0)
            .ok_or_else(|| {
                ModelError::Architecture(format!(
                    "`{}` has {} outputs for {dim} inputs: a FocalModulation needs 2C + L + 1",
                    view.path("f_linear"),
                    f_linear.out_channels()
                ))
            })?;
        let levels = view.pp("focal_layers");
        let focal_layers = (0..focal_level)
            .map(|l| Conv2dLayer::load(&levels.pp(l).pp(0), 1, true, Activation::Gelu, device))
            .collect::<Result<Vec<_>, _>>()?;
        let module = Self {
            f_linear,
            focal_layers,
            h: plain("h")?,
            proj: plain("proj")?,
            normalize_modulator: attributes.normalize_modulator.unwrap_or(false),
        };
        for layer in &module.focal_layers {
            if layer.out_channels() != dim {
                return Err(ModelError::Architecture(format!(
                    "a focal level of `{}` has {} channels, expected {dim}",
                    view.prefix(),
                    layer.out_channels()
                )));
            }
        }
        Ok(module)
    }

    pub fn settings(&self) -> FocalSettings {
        let kernel = |l: usize| self.focal_layers[l].weight.dims()[2];
        FocalSettings {
            dim: self.f_linear.in_channels(),
            focal_level: self.focal_layers.len(),
            focal_window: kernel(0),
            focal_factor: if self.focal_layers.len() > 1 {
                kernel(1) - kernel(0)
            } else {
                2
            },
            normalize_modulator: self.normalize_modulator,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with_taps(x).0
    }

    /// The block's output and what it attended to, from the one forward pass.
    pub fn forward_with_taps(&self, x: Tensor<4>) -> (Tensor<4>, FocalTaps) {
        let channels = x.dims()[1];
        let levels = self.focal_layers.len();
        let mut parts = self
            .f_linear
            .forward(x)
            .split_with_sizes(vec![channels, channels, levels + 1], 1)
            .into_iter();
        let (q, mut ctx, gates) = (
            parts.next().expect("q"),
            parts.next().expect("ctx"),
            parts.next().expect("gates"),
        );

        let mut level_contexts = Vec::with_capacity(levels);
        let mut ctx_all: Option<Tensor<4>> = None;
        for (level, layer) in self.focal_layers.iter().enumerate() {
            ctx = layer.forward(ctx);
            let gated = ctx.clone() * gates.clone().narrow(1, level, 1);
            ctx_all = Some(match ctx_all {
                Some(sum) => sum + gated,
                None => gated,
            });
            level_contexts.push(ctx.clone());
        }
        let global_context = gelu(ctx.mean_dim(2).mean_dim(3));
        let mut ctx_all = ctx_all.expect("at least one focal level")
            + global_context.clone() * gates.clone().narrow(1, levels, 1);
        if self.normalize_modulator {
            ctx_all = ctx_all.div_scalar((levels + 1) as f64);
        }
        let modulator = self.h.forward(ctx_all.clone());
        let out = self.proj.forward(q * modulator.clone());
        (
            out,
            FocalTaps {
                gates,
                level_contexts,
                global_context,
                context_sum: ctx_all,
                modulator,
            },
        )
    }
}
