//! The layers `distill` trains, as Ultralytics-named tensors, to write and to start from.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{FocalModulation, LAYER9, Yolo};
use crate::weights::{WeightTensor, Weights};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A module's parameters named by its field path under `prefix` (`model.10.cv1.conv.weight`):
/// the module tree mirrors Ultralytics', so these are Ultralytics' names. Enum variants
/// (`Layer::C2Psa`) are not part of the path.
pub fn module_tensors<M: Module>(module: &M, prefix: &str) -> BTreeMap<String, WeightTensor> {
    struct Collect {
        path: Vec<Option<String>>,
        tensors: BTreeMap<String, WeightTensor>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            let is_variant = container_type.starts_with("Enum:");
            self.path.push((!is_variant).then(|| name.to_string()));
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let tensor = param.val();
            let shape = tensor.dims().to_vec();
            let values = tensor
                .into_data()
                .convert::<f32>()
                .try_to_vec()
                .expect("f32 parameters");
            let name: Vec<&str> = self.path.iter().flatten().map(String::as_str).collect();
            self.tensors
                .insert(name.join("."), WeightTensor { shape, values });
        }
    }
    let mut collect = Collect {
        path: vec![Some(prefix.to_string())],
        tensors: BTreeMap::new(),
    };
    module.visit(&mut collect);
    collect.tensors
}

/// The trained layer's parameters as `model.9.*` tensors. Each focal level is an
/// `nn.Sequential(conv, GELU)` in Ultralytics, so its conv is `focal_layers.N.0`.
pub fn focal_tensors(focal: &FocalModulation) -> BTreeMap<String, WeightTensor> {
    let levels = format!("model.{LAYER9}.focal_layers.");
    module_tensors(focal, &format!("model.{LAYER9}"))
        .into_iter()
        .map(|(name, tensor)| match name.strip_prefix(&levels) {
            Some(rest) => {
                let (level, param) = rest.split_once('.').expect("focal_layers.N.param");
                (format!("{levels}{level}.0.{param}"), tensor)
            }
            None => (name, tensor),
        })
        .collect()
}

/// The trained layers of `student` as Ultralytics-named tensors: layer 9 as FocalModulation
/// names it (a control's SPPF as the other layers), later layers' convolutions in fused
/// form (BatchNorm folded in), and, with Detect, DFL's fixed projection (not a parameter)
/// from the teacher.
pub(super) fn trained_tensors(
    student: &Yolo,
    trained: &BTreeSet<usize>,
    teacher: &Weights,
) -> BTreeMap<String, WeightTensor> {
    let mut tensors = BTreeMap::new();
    for &index in trained {
        if let (LAYER9, Some(focal)) = (index, student.focal()) {
            tensors.extend(focal_tensors(focal));
            continue;
        }
        tensors.extend(module_tensors(
            &student.model[index],
            &format!("model.{index}"),
        ));
        if index == student.last_layer() {
            let dfl = format!("model.{index}.dfl.conv.weight");
            if let Ok(projection) = teacher.get(&dfl) {
                tensors.insert(dfl, projection.clone());
            }
        }
    }
    tensors
}

/// The teacher's layer 9 (SPPF) re-initialised as PyTorch initialises a fresh module
/// (convolution weights uniform within ±1/√fan-in, BatchNorm the identity): where the
/// control run starts.
pub(super) fn fresh_sppf(teacher: &Weights, seed: u64) -> Weights {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let prefix = format!("model.{LAYER9}.");
    let tensors = teacher
        .tensors()
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(name, tensor)| {
            let fan_in: usize = tensor.shape.iter().skip(1).product();
            let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
            let count = tensor.values.len();
            let values = if name.ends_with("conv.weight") {
                (0..count)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect()
            } else if name.ends_with("bn.weight") || name.ends_with("running_var") {
                vec![1.0; count]
            } else {
                vec![0.0; count]
            };
            let shape = tensor.shape.clone();
            (name.clone(), WeightTensor { shape, values })
        })
        .collect();
    Weights::from_tensors(tensors, Vec::new())
}
