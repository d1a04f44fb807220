//! The Detect head: per level, a box branch (`cv2`: distributions over `reg_max` bins per
//! side, decoded with DFL, or YOLO26's distances directly) and a class branch (`cv3`:
//! YOLOv8's two 3×3 Convs, or YOLO11's and YOLO26's DWConv stages), against anchor points at
//! strides 8, 16 and 32; YOLO26 adds a one-to-one head of the same shape (`one2one_cv2`,
//! `one2one_cv3`), whose top-k needs no NMS.

use burn::module::Module;
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Tensor, TensorData};

use super::ModelError;
use super::conv::{Conv, Conv2dLayer, upload};
use crate::compute::kernels::Activation;
use crate::compute::kernels::cpu;
use crate::weights::WeightsView;

/// Strides of the P3, P4 and P5 outputs.
pub const STRIDES: [usize; 3] = [8, 16, 32];

/// One entry of a branch's `nn.Sequential`, so the module paths are Ultralytics' own
/// (`cv2.0.1.conv`, `cv3.0.1.0.conv`, `cv3.0.2`): a `Conv`, a nested Sequential of them
/// (YOLO11's class-branch stages, DWConv then Conv), or the final plain 1×1 `nn.Conv2d`.
#[derive(Module, Debug)]
pub enum BranchPart {
    Conv(Conv),
    Stage(Vec<Conv>),
    Out(Conv2dLayer),
}

impl BranchPart {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Conv(conv) => conv.forward(x),
            Self::Stage(convs) => convs.iter().fold(x, |y, conv| conv.forward(y)),
            Self::Out(conv) => conv.forward(x),
        }
    }
}

/// One level's box (`cv2`) or class (`cv3`) branch.
pub type Branch = Vec<BranchPart>;

fn run_branch(branch: &Branch, x: Tensor<4>) -> Tensor<4> {
    branch.iter().fold(x, |y, part| part.forward(y))
}

fn branch_outputs(branch: &Branch) -> usize {
    match branch.last() {
        Some(BranchPart::Out(conv)) => conv.out_channels(),
        _ => unreachable!("every branch ends in its nn.Conv2d"),
    }
}

/// Which of the head's branches to run: the one-to-many head, whose boxes NMS thins out
/// (every family), or YOLO26's one-to-one head, whose top-k needs no NMS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Head {
    #[default]
    OneToMany,
    OneToOne,
}

/// How the head is built, from the model's YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectOptions {
    /// YOLOv8's class branch (3×3 Conv, 3×3 Conv) rather than YOLO11's DWConv stages.
    pub legacy: bool,
    /// DFL bins per side; 1 means the box branch gives the distances directly.
    pub reg_max: usize,
    /// Whether a one-to-one head (`one2one_cv2`, `one2one_cv3`) sits beside the other.
    pub end2end: bool,
    /// The class count the YAML gives, when it does.
    pub num_classes: Option<usize>,
}

/// One head's box (`cv2`) and class (`cv3`) branches, a branch per level.
pub struct Branches<'a> {
    pub cv2: &'a [Branch],
    pub cv3: &'a [Branch],
}

/// The head; its fields are named as Ultralytics' modules are, so that the trained
/// tensors of a distilled head come out under Ultralytics' names.
#[derive(Module, Debug)]
pub struct Detect {
    /// The one-to-many head.
    pub cv2: Vec<Branch>,
    pub cv3: Vec<Branch>,
    /// YOLO26's one-to-one head.
    pub one2one_cv2: Option<Vec<Branch>>,
    pub one2one_cv3: Option<Vec<Branch>>,
    /// DFL's fixed projection `0..reg_max`, as stored in the checkpoint; none where
    /// `reg_max` is 1 (the distances come out directly).
    pub dfl: Option<Tensor<1>>,
    pub num_classes: usize,
    pub reg_max: usize,
}

/// The `{prefix}cv2` and `{prefix}cv3` branches of the head at `view`.
fn load_branches(
    view: &WeightsView,
    prefix: &str,
    options: &DetectOptions,
    device: &Device,
) -> Result<(Vec<Branch>, Vec<Branch>), ModelError> {
    let (box_view, class_view) = (
        view.pp(format!("{prefix}cv2")),
        view.pp(format!("{prefix}cv3")),
    );
    let levels = box_view.count_children();
    if levels != STRIDES.len() || class_view.count_children() != levels {
        return Err(ModelError::Architecture(format!(
            "the Detect head `{}` has {levels} levels, expected {}",
            box_view.prefix(),
            STRIDES.len()
        )));
    }
    let conv = |v: &WeightsView, depthwise| Conv::load(v, 1, depthwise, Activation::Silu, device);
    let plain = |v: &WeightsView| Conv2dLayer::load(v, 1, false, Activation::Identity, device);
    let mut cv2 = Vec::with_capacity(levels);
    let mut cv3 = Vec::with_capacity(levels);
    for level in 0..levels {
        let b = box_view.pp(level);
        cv2.push(vec![
            BranchPart::Conv(conv(&b.pp(0), false)?),
            BranchPart::Conv(conv(&b.pp(1), false)?),
            BranchPart::Out(plain(&b.pp(2))?),
        ]);
        let c = class_view.pp(level);
        cv3.push(if options.legacy {
            vec![
                BranchPart::Conv(conv(&c.pp(0), false)?),
                BranchPart::Conv(conv(&c.pp(1), false)?),
                BranchPart::Out(plain(&c.pp(2))?),
            ]
        } else {
            // YOLO11's and YOLO26's class branch: (DWConv 3×3, Conv 1×1) twice.
            let stage = |s: WeightsView| -> Result<BranchPart, ModelError> {
                Ok(BranchPart::Stage(vec![
                    conv(&s.pp(0), true)?,
                    conv(&s.pp(1), false)?,
                ]))
            };
            vec![
                stage(c.pp(0))?,
                stage(c.pp(1))?,
                BranchPart::Out(plain(&c.pp(2))?),
            ]
        });
    }
    let box_channels = branch_outputs(&cv2[0]);
    if box_channels != 4 * options.reg_max {
        return Err(ModelError::Architecture(format!(
            "`{}` has {box_channels} outputs where reg_max {} needs {}",
            box_view.pp(0).pp(2).path("weight"),
            options.reg_max,
            4 * options.reg_max
        )));
    }
    let num_classes = branch_outputs(&cv3[0]);
    let consistent = cv2.iter().all(|b| branch_outputs(b) == box_channels)
        && cv3.iter().all(|b| branch_outputs(b) == num_classes);
    if !consistent {
        return Err(ModelError::Architecture(format!(
            "the levels of `{}` disagree on their outputs",
            view.prefix()
        )));
    }
    Ok((cv2, cv3))
}

impl Detect {
    pub fn load(
        view: &WeightsView,
        options: DetectOptions,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let (cv2, cv3) = load_branches(view, "", &options, device)?;
        let (one2one_cv2, one2one_cv3) = if options.end2end {
            let (boxes, classes) = load_branches(view, "one2one_", &options, device)?;
            (Some(boxes), Some(classes))
        } else {
            (None, None)
        };
        let num_classes = branch_outputs(&cv3[0]);
        let disagrees = one2one_cv3
            .as_ref()
            .is_some_and(|b| branch_outputs(&b[0]) != num_classes)
            || options.num_classes.is_some_and(|n| n != num_classes);
        if disagrees {
            return Err(ModelError::Architecture(format!(
                "`{}` gives {num_classes} class scores where the model's YAML or its one-to-one head has {}",
                view.pp("cv3").pp(0).pp(2).path("weight"),
                options.num_classes.unwrap_or(num_classes)
            )));
        }
        let reg_max = options.reg_max;
        let dfl = if reg_max > 1 {
            let dfl_weight = view.pp("dfl").pp("conv").get_rank("weight", 4)?;
            if dfl_weight.values.len() != reg_max {
                return Err(ModelError::Architecture(format!(
                    "`{}` has {} bins where reg_max is {reg_max}",
                    view.pp("dfl").pp("conv").path("weight"),
                    dfl_weight.values.len()
                )));
            }
            Some(upload::<4>(dfl_weight, device).reshape([reg_max]))
        } else {
            None
        };
        Ok(Self {
            cv2,
            cv3,
            one2one_cv2,
            one2one_cv3,
            dfl,
            num_classes,
            reg_max,
        })
    }

    /// The branches of `head`; the one-to-many head where the model has no other.
    pub fn branches(&self, head: Head) -> Branches<'_> {
        match (head, &self.one2one_cv2, &self.one2one_cv3) {
            (Head::OneToOne, Some(cv2), Some(cv3)) => Branches { cv2, cv3 },
            _ => Branches {
                cv2: &self.cv2,
                cv3: &self.cv3,
            },
        }
    }

    /// Whether the head has YOLO26's one-to-one branch.
    pub fn has_one_to_one(&self) -> bool {
        self.one2one_cv2.is_some()
    }

    /// The head's raw outputs: box-side logits `(B, 4·reg_max, anchors)` (a distribution
    /// over reg_max bins per side) and class logits `(B, nc, anchors)`; anchors in P3, P4,
    /// P5 order, row-major within each level.
    pub fn forward_raw(&self, features: [Tensor<4>; 3], head: Head) -> (Tensor<3>, Tensor<3>) {
        let branches = self.branches(head);
        let batch = features[0].dims()[0];
        let (boxes, scores): (Vec<_>, Vec<_>) = features
            .into_iter()
            .enumerate()
            .map(|(level, x)| {
                let [_, _, h, w] = x.dims();
                (
                    run_branch(&branches.cv2[level], x.clone()).reshape([
                        batch,
                        4 * self.reg_max,
                        h * w,
                    ]),
                    run_branch(&branches.cv3[level], x).reshape([batch, self.num_classes, h * w]),
                )
            })
            .unzip();
        (Tensor::cat(boxes, 2), Tensor::cat(scores, 2))
    }

    /// Decoded predictions `(B, 4 + nc, anchors)`: box centre and size in input pixels, then
    /// class probabilities; anchors in P3, P4, P5 order, row-major within each level.
    pub fn forward(&self, features: [Tensor<4>; 3], head: Head) -> Tensor<3> {
        let (centres, strides) = anchor_grid(&features);
        let grid = cpu::AnchorGrid {
            centres: &centres,
            strides: &strides,
        };
        let (boxes, scores) = self.forward_raw(features, head);
        if cpu::on_flex(&boxes) && cpu::on_flex(&scores) {
            cpu::decode(boxes, scores, &grid, self.dfl.clone())
        } else {
            self.decode_with_burn(boxes, scores, &grid)
        }
    }

    /// [`cpu::decode`] in burn's operations, for every other device.
    fn decode_with_burn(
        &self,
        boxes: Tensor<3>,
        scores: Tensor<3>,
        grid: &cpu::AnchorGrid,
    ) -> Tensor<3> {
        let device = boxes.device();
        let [batch, _, count] = boxes.dims();
        let scores = sigmoid(scores);

        // DFL: expected value of each side's distribution over 0..reg_max.
        let distances: Tensor<3> = match &self.dfl {
            Some(dfl) => {
                let bins = softmax(boxes.reshape([batch, 4, self.reg_max, count]), 2);
                let projection = dfl.clone().reshape([1, 1, self.reg_max, 1]);
                (bins * projection).sum_dim(2).reshape([batch, 4, count])
            }
            None => boxes,
        };

        let anchor_points = Tensor::<3>::from_data(
            TensorData::new(grid.centres.to_vec(), [1, 2, count]),
            &device,
        );
        let stride_tensor = Tensor::<3>::from_data(
            TensorData::new(grid.strides.to_vec(), [1, 1, count]),
            &device,
        );
        // Same operation order as Ultralytics' dist2bbox, so rounding matches too.
        let top_left = anchor_points.clone() - distances.clone().narrow(1, 0, 2);
        let bottom_right = anchor_points + distances.narrow(1, 2, 2);
        let centre =
            (top_left.clone() + bottom_right.clone()).div_scalar(2.0) * stride_tensor.clone();
        let size = (bottom_right - top_left) * stride_tensor;
        Tensor::cat(vec![centre, size, scores], 1)
    }
}

/// Every anchor's centre in cells of its level (all x, then all y) and its stride.
fn anchor_grid(features: &[Tensor<4>; 3]) -> (Vec<f32>, Vec<f32>) {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut strides = Vec::new();
    for (level, x) in features.iter().enumerate() {
        let [_, _, h, w] = x.dims();
        for y in 0..h {
            for x in 0..w {
                xs.push(x as f32 + 0.5);
                ys.push(y as f32 + 0.5);
                strides.push(STRIDES[level] as f32);
            }
        }
    }
    xs.append(&mut ys);
    (xs, strides)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::device::ComputeDevice;
    use crate::compute::random::seeded_random;
    use burn::tensor::Distribution;

    #[test]
    fn cpu_decode_matches_burns_operations() {
        let device = ComputeDevice::cpu().device;
        let features = [80, 40, 20].map(|s| Tensor::<4>::zeros([2, 1, s / 4, s / 4], &device));
        let (centres, strides) = anchor_grid(&features);
        let grid = cpu::AnchorGrid {
            centres: &centres,
            strides: &strides,
        };
        let anchors = strides.len();
        let reg_max = 16;
        let detect = Detect {
            cv2: Vec::new(),
            cv3: Vec::new(),
            one2one_cv2: None,
            one2one_cv3: None,
            dfl: Some(Tensor::from_data(
                TensorData::new((0..reg_max).map(|i| i as f32).collect(), [reg_max]),
                &device,
            )),
            num_classes: 5,
            reg_max,
        };
        let logits = Distribution::Uniform(-8.0, 8.0);
        let seed = 0;
        let boxes = seeded_random([2, 4 * reg_max, anchors], logits, seed, &device);
        let scores = seeded_random([2, 5, anchors], logits, seed + 1, &device);
        let ours = cpu::decode(boxes.clone(), scores.clone(), &grid, detect.dfl.clone());
        let burn = detect.decode_with_burn(boxes, scores, &grid);
        assert_eq!(ours.dims(), [2, 9, anchors], "seed {seed}");
        let (ours, burn) = (
            ours.into_data().try_into_vec::<f32>().unwrap(),
            burn.into_data().try_into_vec::<f32>().unwrap(),
        );
        // Pixel coordinates up to ~300 here, where an f32 ulp is 3e-5: as the goldens allow.
        for (i, (a, b)) in ours.iter().zip(&burn).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 + 2e-7 * b.abs(),
                "seed {seed}: value {i}: {a} against {b}"
            );
        }
    }
}
