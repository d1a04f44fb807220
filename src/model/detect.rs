//! The Detect head: per level, a box branch (`cv2`: distributions over `reg_max` bins per
//! side, decoded with DFL, or YOLO26's distances directly) and a class branch (`cv3`:
//! YOLOv8's two 3×3 Convs, or YOLO11's and YOLO26's DWConv stages), against anchor points at
//! strides 8, 16 and 32; YOLO26 adds a one-to-one head of the same shape (`one2one_cv2`,
//! `one2one_cv3`), whose top-k needs no NMS. The task heads add a third branch per level
//! (`cv4`: mask coefficients, keypoints or a rotation angle) and, for segmentation, the
//! mask prototypes (`proto`).

use burn::module::Module;
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Tensor, TensorData};

use super::ModelError;
use super::conv::{Conv, Conv2dLayer, upload};
use super::graph::Task;
use super::proto::Proto;
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
    /// What the head predicts beside boxes and classes.
    pub task: Task,
}

/// One head's box (`cv2`), class (`cv3`) and task (`cv4`, then Pose26's `cv4_kpts`)
/// branches, a branch per level.
pub struct Branches<'a> {
    pub cv2: &'a [Branch],
    pub cv3: &'a [Branch],
    pub cv4: Option<&'a [Branch]>,
    pub cv4_kpts: Option<&'a [Conv2dLayer]>,
}

/// What the head hands on: the decoded predictions `(B, 4 + nc + extra, anchors)` and, for
/// segmentation, the mask prototypes `(B, nm, H/4, W/4)`.
#[derive(Clone, Debug)]
pub struct HeadOutput {
    pub predictions: Tensor<3>,
    pub protos: Option<Tensor<4>>,
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
    /// The task branch of each head (none for detection); for Pose26 the Convs before
    /// `cv4_kpts`.
    pub cv4: Option<Vec<Branch>>,
    pub one2one_cv4: Option<Vec<Branch>>,
    pub cv4_kpts: Option<Vec<Conv2dLayer>>,
    pub one2one_cv4_kpts: Option<Vec<Conv2dLayer>>,
    pub proto: Option<Proto>,
    #[module(skip)]
    pub task: Task,
}

/// A head's task branches, and Pose26's last convs apart from them.
type TaskBranches = (Option<Vec<Branch>>, Option<Vec<Conv2dLayer>>);

/// The task branches `{prefix}cv4` (and Pose26's `{prefix}cv4_kpts`) of the head at `view`,
/// each level giving `task.extra_rows()` values per anchor.
fn load_task_branches(
    view: &WeightsView,
    prefix: &str,
    task: Task,
    device: &Device,
) -> Result<TaskBranches, ModelError> {
    if task == Task::Detect {
        return Ok((None, None));
    }
    let split_last = matches!(task, Task::Pose { yolo26: true, .. });
    let branch_view = view.pp(format!("{prefix}cv4"));
    let kpts_view = view.pp(format!("{prefix}cv4_kpts"));
    let conv = |v: &WeightsView| Conv::load(v, 1, false, Activation::Silu, device);
    let plain = |v: &WeightsView| Conv2dLayer::load(v, 1, false, Activation::Identity, device);
    let (mut branches, mut last_convs) = (Vec::new(), Vec::new());
    for level in 0..STRIDES.len() {
        let b = branch_view.pp(level);
        let mut branch = vec![
            BranchPart::Conv(conv(&b.pp(0))?),
            BranchPart::Conv(conv(&b.pp(1))?),
        ];
        let (out, path) = if split_last {
            let last = plain(&kpts_view.pp(level))?;
            let out = last.out_channels();
            last_convs.push(last);
            (out, kpts_view.pp(level).path("weight"))
        } else {
            branch.push(BranchPart::Out(plain(&b.pp(2))?));
            (branch_outputs(&branch), b.pp(2).path("weight"))
        };
        if out != task.extra_rows() {
            return Err(ModelError::Architecture(format!(
                "`{path}` gives {out} values per anchor where the {} head needs {}",
                task.head_name(),
                task.extra_rows()
            )));
        }
        branches.push(branch);
    }
    Ok((Some(branches), split_last.then_some(last_convs)))
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
        let (cv4, cv4_kpts) = load_task_branches(view, "", options.task, device)?;
        let (one2one_cv2, one2one_cv3, one2one_cv4, one2one_cv4_kpts) = if options.end2end {
            let (boxes, classes) = load_branches(view, "one2one_", &options, device)?;
            let (task, kpts) = load_task_branches(view, "one2one_", options.task, device)?;
            (Some(boxes), Some(classes), task, kpts)
        } else {
            (None, None, None, None)
        };
        // The class count is the tensors': a checkpoint's YAML can keep the `nc` of the file
        // it was started from (Ultralytics' own yolo11n-pose.pt says 80 over a 1-class head),
        // and Ultralytics runs the pickled modules, not the YAML.
        let num_classes = branch_outputs(&cv3[0]);
        if let Some(one_to_one) = one2one_cv3.as_ref().map(|b| branch_outputs(&b[0]))
            && one_to_one != num_classes
        {
            return Err(ModelError::Architecture(format!(
                "`{}` gives {one_to_one} class scores where the one-to-many head gives {num_classes}",
                view.pp("one2one_cv3").pp(0).pp(2).path("weight"),
            )));
        }
        let proto = match options.task {
            Task::Segment { masks, yolo26 } => {
                let proto = Proto::load(&view.pp("proto"), yolo26, device)?;
                if proto.masks() != masks {
                    return Err(ModelError::Architecture(format!(
                        "`{}` makes {} prototypes for {masks} mask coefficients",
                        view.pp("proto").pp("cv3").pp("conv").path("weight"),
                        proto.masks()
                    )));
                }
                Some(proto)
            }
            _ => None,
        };
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
            cv4,
            one2one_cv4,
            cv4_kpts,
            one2one_cv4_kpts,
            proto,
            task: options.task,
        })
    }

    /// The branches of `head`; the one-to-many head where the model has no other.
    pub fn branches(&self, head: Head) -> Branches<'_> {
        match (head, &self.one2one_cv2, &self.one2one_cv3) {
            (Head::OneToOne, Some(cv2), Some(cv3)) => Branches {
                cv2,
                cv3,
                cv4: self.one2one_cv4.as_deref(),
                cv4_kpts: self.one2one_cv4_kpts.as_deref(),
            },
            _ => Branches {
                cv2: &self.cv2,
                cv3: &self.cv3,
                cv4: self.cv4.as_deref(),
                cv4_kpts: self.cv4_kpts.as_deref(),
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

    /// The task branch's raw outputs `(B, extra, anchors)` (mask coefficients, keypoint
    /// logits or angle logits), none for detection.
    pub fn forward_task_raw(&self, features: &[Tensor<4>; 3], head: Head) -> Option<Tensor<3>> {
        let branches = self.branches(head);
        let cv4 = branches.cv4?;
        let batch = features[0].dims()[0];
        let rows = self.task.extra_rows();
        let levels = features
            .iter()
            .enumerate()
            .map(|(level, x)| {
                let [_, _, h, w] = x.dims();
                let y = run_branch(&cv4[level], x.clone());
                let y = match branches.cv4_kpts {
                    Some(last) => last[level].forward(y),
                    None => y,
                };
                y.reshape([batch, rows, h * w])
            })
            .collect();
        Some(Tensor::cat(levels, 2))
    }

    /// Decoded predictions `(B, 4 + nc + extra, anchors)`: box centre and size in input
    /// pixels (an oriented box's, for OBB), class probabilities, then the task's rows (mask
    /// coefficients; keypoints as x, y in input pixels and a visibility probability; the
    /// angle in radians); anchors in P3, P4, P5 order, row-major within each level. With
    /// the mask prototypes, for segmentation.
    pub fn forward(&self, features: [Tensor<4>; 3], head: Head) -> HeadOutput {
        let (centres, strides) = anchor_grid(&features);
        let grid = cpu::AnchorGrid {
            centres: &centres,
            strides: &strides,
        };
        let protos = self.proto.as_ref().map(|proto| proto.forward(&features));
        let task_raw = self.forward_task_raw(&features, head);
        let (boxes, scores) = self.forward_raw(features, head);
        let predictions = match (self.task, task_raw) {
            (Task::Obb { yolo26 }, Some(raw)) => {
                // OBB's angle lies in [-π/4, 3π/4); OBB26's is the raw output.
                let angle = if yolo26 {
                    raw
                } else {
                    (sigmoid(raw) - 0.25) * std::f32::consts::PI
                };
                let rotated = self.decode_rotated(boxes, scores, angle.clone(), &grid);
                Tensor::cat(vec![rotated, angle], 1)
            }
            (task, task_raw) => {
                let decoded = if cpu::on_flex(&boxes) && cpu::on_flex(&scores) {
                    cpu::decode(boxes, scores, &grid, self.dfl.clone())
                } else {
                    self.decode_with_burn(boxes, scores, &grid)
                };
                match (task, task_raw) {
                    (Task::Pose { dims, yolo26, .. }, Some(raw)) => {
                        let keypoints = decode_keypoints(raw, dims, yolo26, &grid);
                        Tensor::cat(vec![decoded, keypoints], 1)
                    }
                    (_, Some(coefficients)) => Tensor::cat(vec![decoded, coefficients], 1),
                    (_, None) => decoded,
                }
            }
        };
        HeadOutput {
            predictions,
            protos,
        }
    }

    /// Each side's distance from the anchor, in cells: DFL's expected value over
    /// `0..reg_max`, or the box branch itself where reg_max is 1.
    fn distances(&self, boxes: Tensor<3>) -> Tensor<3> {
        let [batch, _, count] = boxes.dims();
        match &self.dfl {
            Some(dfl) if cpu::on_flex(&boxes) => cpu::dfl_distances(boxes, dfl.clone()),
            Some(dfl) => {
                let bins = softmax(boxes.reshape([batch, 4, self.reg_max, count]), 2);
                let projection = dfl.clone().reshape([1, 1, self.reg_max, 1]);
                (bins * projection).sum_dim(2).reshape([batch, 4, count])
            }
            None => boxes,
        }
    }

    /// [`cpu::decode`] in burn's operations, for every other device.
    fn decode_with_burn(
        &self,
        boxes: Tensor<3>,
        scores: Tensor<3>,
        grid: &cpu::AnchorGrid,
    ) -> Tensor<3> {
        let (anchor_points, stride_tensor) = grid_tensors(grid, &boxes.device());
        let distances = self.distances(boxes);
        // Same operation order as Ultralytics' dist2bbox, so rounding matches too.
        let top_left = anchor_points.clone() - distances.clone().narrow(1, 0, 2);
        let bottom_right = anchor_points + distances.narrow(1, 2, 2);
        let centre =
            (top_left.clone() + bottom_right.clone()).div_scalar(2.0) * stride_tensor.clone();
        let size = (bottom_right - top_left) * stride_tensor;
        Tensor::cat(vec![centre, size, sigmoid(scores)], 1)
    }

    /// Oriented boxes (centre, size, in input pixels) and class probabilities, as
    /// Ultralytics' `dist2rbox`: the distances rotate by `angle` about the anchor.
    fn decode_rotated(
        &self,
        boxes: Tensor<3>,
        scores: Tensor<3>,
        angle: Tensor<3>,
        grid: &cpu::AnchorGrid,
    ) -> Tensor<3> {
        let (anchor_points, stride_tensor) = grid_tensors(grid, &boxes.device());
        let distances = self.distances(boxes);
        let (top_left, bottom_right) =
            (distances.clone().narrow(1, 0, 2), distances.narrow(1, 2, 2));
        let half = (bottom_right.clone() - top_left.clone()).div_scalar(2.0);
        let (xf, yf) = (half.clone().narrow(1, 0, 1), half.narrow(1, 1, 1));
        let (cos, sin) = (angle.clone().cos(), angle.sin());
        let x = xf.clone() * cos.clone() - yf.clone() * sin.clone();
        let y = xf * sin + yf * cos;
        let centre = (Tensor::cat(vec![x, y], 1) + anchor_points) * stride_tensor.clone();
        let size = (top_left + bottom_right) * stride_tensor;
        Tensor::cat(vec![centre, size, sigmoid(scores)], 1)
    }
}

/// The anchor grid as tensors: centres `(1, 2, anchors)` in cells and strides
/// `(1, 1, anchors)`.
fn grid_tensors(grid: &cpu::AnchorGrid, device: &Device) -> (Tensor<3>, Tensor<3>) {
    let count = grid.strides.len();
    (
        Tensor::from_data(
            TensorData::new(grid.centres.to_vec(), [1, 2, count]),
            device,
        ),
        Tensor::from_data(
            TensorData::new(grid.strides.to_vec(), [1, 1, count]),
            device,
        ),
    )
}

/// Keypoints from the pose branch's raw outputs `(B, K·dims, anchors)`, as Ultralytics'
/// `kpts_decode`: x and y in input pixels (Pose: `(raw·2 + cell) · stride`; Pose26:
/// `(raw + centre) · stride`), the visibility through a sigmoid.
fn decode_keypoints(
    raw: Tensor<3>,
    dims: usize,
    yolo26: bool,
    grid: &cpu::AnchorGrid,
) -> Tensor<3> {
    let [batch, rows, count] = raw.dims();
    let (centres, strides) = grid_tensors(grid, &raw.device());
    let raw = raw.reshape([batch, rows / dims, dims, count]);
    let centres = centres.reshape([1, 1, 2, count]);
    let strides = strides.reshape([1, 1, 1, count]);
    let xy = raw.clone().narrow(2, 0, 2);
    let xy = if yolo26 {
        (xy + centres) * strides
    } else {
        (xy * 2.0 + (centres - 0.5)) * strides
    };
    let parts = if dims == 3 {
        vec![xy, sigmoid(raw.narrow(2, 2, 1))]
    } else {
        vec![xy]
    };
    Tensor::cat(parts, 2).reshape([batch, rows, count])
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
            cv4: None,
            one2one_cv4: None,
            cv4_kpts: None,
            one2one_cv4_kpts: None,
            proto: None,
            task: Task::Detect,
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
