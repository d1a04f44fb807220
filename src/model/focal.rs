//! FocalModulation (FocalNets, NeurIPS 2022) as the Ultralytics-style block that replaces
//! SPPF at layer 9: a 1×1 `f_linear` to `2C + L + 1` channels split into the query, the
//! context and `L + 1` gates; `L` cascaded depthwise convolutions with GELU build the focal
//! levels; the global level is GELU of the last level's spatial mean; the gated sum of the
//! levels goes through `h` to give the modulator, and `proj(q · modulator)` is the output.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor};
use rand::Rng;

use super::ModelError;
use super::conv::Conv2dLayer;
use crate::compute::kernels::Activation;
use crate::weights::{FocalAttributes, WeightsView};

/// A FocalModulation block's settings, as Ultralytics' `FocalModulation(dim, focal_window,
/// focal_level, focal_factor, normalize_modulator)` takes them; the width comes from
/// where the block sits (layer 8's channels). [`init`](Self::init) builds a fresh block
/// (what `distill` trains); a checkpoint's block is read back with
/// [`FocalModulation::load`], whose [`config`](FocalModulation::config) is this type too;
/// [`record`](Self::record) is what a weights file stores of it.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub struct FocalModulationConfig {
    /// Focal levels: cascaded depthwise convolutions.
    #[config(default = 2)]
    pub focal_level: usize,
    /// The first level's kernel size.
    #[config(default = 3)]
    pub focal_window: usize,
    /// How much each level's kernel grows over the previous one's.
    #[config(default = 2)]
    pub focal_factor: usize,
    /// Divide the gated sum by the number of levels (L + 1).
    #[config(default = false)]
    pub normalize_modulator: bool,
}

impl FocalModulationConfig {
    /// Kernel size of focal level `level`, as Ultralytics computes it.
    pub fn kernel_size(&self, level: usize) -> usize {
        self.focal_factor * level + self.focal_window
    }

    /// A fresh block of width `dim`, initialised as PyTorch initialises `nn.Conv2d`
    /// (U(±1/√fan_in)), drawn from `rng` so that a seed gives the same block.
    pub fn init(&self, dim: usize, rng: &mut impl Rng, device: &Device) -> FocalModulation {
        let plain = |out: usize, rng: &mut _| {
            Conv2dLayer::init_uniform([out, dim, 1, 1], 1, true, Activation::Identity, rng, device)
        };
        FocalModulation {
            f_linear: plain(2 * dim + self.focal_level + 1, rng),
            focal_layers: (0..self.focal_level)
                .map(|level| {
                    let k = self.kernel_size(level);
                    Conv2dLayer::init_uniform(
                        [dim, 1, k, k],
                        dim,
                        false,
                        Activation::Gelu,
                        rng,
                        device,
                    )
                })
                .collect(),
            h: plain(dim, rng),
            proj: plain(dim, rng),
            normalize_modulator: self.normalize_modulator,
        }
    }

    /// What a weights file records of these settings.
    pub fn record(&self) -> FocalAttributes {
        FocalAttributes {
            normalize_modulator: Some(self.normalize_modulator),
            focal_level: Some(self.focal_level),
            focal_window: Some(self.focal_window),
            focal_factor: Some(self.focal_factor),
        }
    }
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
    /// Load from `view`. The focal level, window and factor follow from the tensor shapes;
    /// what the file records of them (`recorded`) must agree, and `normalize_modulator`
    /// comes from there (default false).
    pub fn load(
        view: &WeightsView,
        recorded: &FocalAttributes,
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
            normalize_modulator: recorded.normalize_modulator.unwrap_or(false),
        };
        let config = module.config_with_factor(recorded.focal_factor);
        for (level, layer) in module.focal_layers.iter().enumerate() {
            let [channels, _, k, _] = layer.weight.dims();
            if channels != dim || k != config.kernel_size(level) {
                return Err(ModelError::Architecture(format!(
                    "`{}` is {channels} channels of {k}×{k}: focal level {level} of a \
                     FocalModulation of width {dim} and window {}, factor {} needs {dim} of {}×{}",
                    levels.pp(level).pp(0).path("weight"),
                    config.focal_window,
                    config.focal_factor,
                    config.kernel_size(level),
                    config.kernel_size(level),
                )));
            }
        }
        let recorded_disagrees = [
            ("focal_level", recorded.focal_level, config.focal_level),
            ("focal_window", recorded.focal_window, config.focal_window),
            ("focal_factor", recorded.focal_factor, config.focal_factor),
        ]
        .into_iter()
        .find(|(_, recorded, actual)| recorded.is_some_and(|r| r != *actual));
        if let Some((name, recorded, actual)) = recorded_disagrees {
            return Err(ModelError::Architecture(format!(
                "`{}` records {name} {} but its tensors have {actual}",
                view.prefix(),
                recorded.unwrap_or_default()
            )));
        }
        Ok(module)
    }

    /// The block's width (its input and output channels).
    pub fn dim(&self) -> usize {
        self.f_linear.in_channels()
    }

    /// The settings this block was built with, as its tensors show them.
    pub fn config(&self) -> FocalModulationConfig {
        self.config_with_factor(None)
    }

    /// The settings, with the factor `recorded` when one level cannot show it.
    fn config_with_factor(&self, recorded: Option<usize>) -> FocalModulationConfig {
        let kernels: Vec<usize> = self
            .focal_layers
            .iter()
            .map(|layer| layer.weight.dims()[2])
            .collect();
        let default = FocalModulationConfig::new();
        FocalModulationConfig {
            focal_level: kernels.len(),
            focal_window: kernels.first().copied().unwrap_or(default.focal_window),
            focal_factor: match kernels[..] {
                [first, second, ..] => second.saturating_sub(first),
                _ => recorded.unwrap_or(default.focal_factor),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use burn::tensor::Distribution;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::compute::device::ComputeDevice;
    use crate::compute::random::seeded_random;
    use crate::model::conv::Conv2dLayer;
    use crate::weights::{WeightTensor, Weights};

    /// `block`'s parameters under Ultralytics' names (`model.9.focal_layers.N.0.weight`).
    fn as_weights(block: &FocalModulation, recorded: FocalAttributes) -> Weights {
        let mut tensors = BTreeMap::new();
        let mut add = |name: String, layer: &Conv2dLayer| {
            let mut put = |suffix: &str, tensor: burn::tensor::TensorData| {
                tensors.insert(
                    format!("model.9.{name}.{suffix}"),
                    WeightTensor {
                        shape: tensor.shape().to_vec(),
                        values: tensor.try_to_vec().unwrap(),
                    },
                );
            };
            put("weight", layer.weight.val().into_data());
            if let Some(bias) = &layer.bias {
                put("bias", bias.val().into_data());
            }
        };
        add("f_linear".into(), &block.f_linear);
        add("h".into(), &block.h);
        add("proj".into(), &block.proj);
        for (level, layer) in block.focal_layers.iter().enumerate() {
            add(format!("focal_layers.{level}.0"), layer);
        }
        let mut weights = Weights::from_tensors(tensors, Vec::new());
        weights.focal = recorded;
        weights
    }

    #[test]
    fn a_fresh_block_loads_back_with_its_settings_and_outputs() {
        let device = ComputeDevice::cpu().device;
        let config = FocalModulationConfig::new()
            .with_focal_level(3)
            .with_focal_window(5)
            .with_focal_factor(4)
            .with_normalize_modulator(true);
        let block = config.init(8, &mut ChaCha8Rng::seed_from_u64(1), &device);
        assert_eq!((block.dim(), block.config()), (8, config));
        let kernels: Vec<usize> = block
            .focal_layers
            .iter()
            .map(|l| l.weight.dims()[2])
            .collect();
        assert_eq!(kernels, [5, 9, 13]);

        let weights = as_weights(&block, config.record());
        let loaded = FocalModulation::load(&weights.root().pp(9), &weights.focal, &device).unwrap();
        assert_eq!(loaded.config(), config);
        let seed = 1;
        let x = seeded_random([1, 8, 6, 7], Distribution::Normal(0.0, 1.0), seed, &device);
        let difference = (block.forward(x.clone()) - loaded.forward(x))
            .abs()
            .max()
            .into_scalar::<f32>();
        assert_eq!(
            difference, 0.0,
            "seed {seed}: the loaded block's output differs"
        );
    }

    #[test]
    fn a_recorded_setting_the_tensors_contradict_is_refused_by_path() {
        let device = ComputeDevice::cpu().device;
        let config = FocalModulationConfig::new().with_focal_window(5);
        let block = config.init(4, &mut ChaCha8Rng::seed_from_u64(2), &device);
        let recorded = FocalModulationConfig::new().record();
        let weights = as_weights(&block, recorded);
        let error = FocalModulation::load(&weights.root().pp(9), &weights.focal, &device)
            .expect_err("window 3 recorded, 5×5 kernels stored");
        let message = error.to_string();
        assert!(
            message.contains("`model.9` records focal_window 3 but its tensors have 5"),
            "{message}"
        );
    }

    #[test]
    fn focal_levels_that_do_not_grow_evenly_are_refused_by_path() {
        let device = ComputeDevice::cpu().device;
        let mut block = FocalModulationConfig::new().with_focal_level(3).init(
            4,
            &mut ChaCha8Rng::seed_from_u64(3),
            &device,
        );
        // Kernels 3, 5, 9: no window and factor give them.
        block.focal_layers[2] = Conv2dLayer::init_uniform(
            [4, 1, 9, 9],
            4,
            false,
            Activation::Gelu,
            &mut ChaCha8Rng::seed_from_u64(4),
            &device,
        );
        let weights = as_weights(&block, FocalAttributes::default());
        let error = FocalModulation::load(&weights.root().pp(9), &weights.focal, &device)
            .expect_err("uneven kernels");
        let message = error.to_string();
        assert!(
            message.contains("`model.9.focal_layers.2.0.weight` is 4 channels of 9×9"),
            "{message}"
        );
    }
}
