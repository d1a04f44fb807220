//! The Detect head of YOLO11: per level, a box branch (`cv2`, distributions over 16 bins
//! per side) and a class branch (`cv3`, with the DWConv stages of YOLO11), decoded with DFL
//! against anchor points at strides 8, 16 and 32.

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

#[derive(Module, Debug)]
pub struct Detect {
    pub cv2: Vec<Branch>,
    pub cv3: Vec<Branch>,
    /// DFL's fixed projection `0..reg_max`, as stored in the checkpoint.
    pub dfl: Tensor<1>,
    pub num_classes: usize,
    pub reg_max: usize,
}

impl Detect {
    pub fn load(view: &WeightsView, device: &Device) -> Result<Self, ModelError> {
        let levels = view.pp("cv2").count_children();
        if levels != STRIDES.len() || view.pp("cv3").count_children() != levels {
            return Err(ModelError::Architecture(format!(
                "the Detect head `{}` has {levels} levels, expected {}",
                view.prefix(),
                STRIDES.len()
            )));
        }
        let conv =
            |v: &WeightsView, depthwise| Conv::load(v, 1, depthwise, Activation::Silu, device);
        let plain = |v: &WeightsView| Conv2dLayer::load(v, 1, false, Activation::Identity, device);
        let mut cv2 = Vec::with_capacity(levels);
        let mut cv3 = Vec::with_capacity(levels);
        for level in 0..levels {
            let b = view.pp("cv2").pp(level);
            cv2.push(vec![
                BranchPart::Conv(conv(&b.pp(0), false)?),
                BranchPart::Conv(conv(&b.pp(1), false)?),
                BranchPart::Out(plain(&b.pp(2))?),
            ]);
            let c = view.pp("cv3").pp(level);
            // YOLO11's class branch: (DWConv 3×3, Conv 1×1) twice.
            let stage = |s: WeightsView| -> Result<BranchPart, ModelError> {
                Ok(BranchPart::Stage(vec![
                    conv(&s.pp(0), true)?,
                    conv(&s.pp(1), false)?,
                ]))
            };
            cv3.push(vec![
                stage(c.pp(0))?,
                stage(c.pp(1))?,
                BranchPart::Out(plain(&c.pp(2))?),
            ]);
        }
        let dfl_weight = view.pp("dfl").pp("conv").get_rank("weight", 4)?;
        let reg_max = dfl_weight.values.len();
        let box_channels = branch_outputs(&cv2[0]);
        if box_channels != 4 * reg_max {
            return Err(ModelError::Architecture(format!(
                "the box branch has {box_channels} outputs, expected 4 × {reg_max} DFL bins"
            )));
        }
        let num_classes = branch_outputs(&cv3[0]);
        let consistent = cv2.iter().all(|b| branch_outputs(b) == box_channels)
            && cv3.iter().all(|b| branch_outputs(b) == num_classes);
        if !consistent {
            return Err(ModelError::Architecture(
                "the Detect levels disagree on their outputs".into(),
            ));
        }
        let dfl = upload::<4>(dfl_weight, device).reshape([reg_max]);
        Ok(Self {
            cv2,
            cv3,
            dfl,
            num_classes,
            reg_max,
        })
    }

    /// The head's raw outputs: box-side logits `(B, 4·reg_max, anchors)` (a distribution
    /// over reg_max bins per side) and class logits `(B, nc, anchors)`; anchors in P3, P4,
    /// P5 order, row-major within each level.
    pub fn forward_raw(&self, features: [Tensor<4>; 3]) -> (Tensor<3>, Tensor<3>) {
        let batch = features[0].dims()[0];
        let (boxes, scores): (Vec<_>, Vec<_>) = features
            .into_iter()
            .enumerate()
            .map(|(level, x)| {
                let [_, _, h, w] = x.dims();
                (
                    run_branch(&self.cv2[level], x.clone()).reshape([
                        batch,
                        4 * self.reg_max,
                        h * w,
                    ]),
                    run_branch(&self.cv3[level], x).reshape([batch, self.num_classes, h * w]),
                )
            })
            .unzip();
        (Tensor::cat(boxes, 2), Tensor::cat(scores, 2))
    }

    /// Decoded predictions `(B, 4 + nc, anchors)`: box centre and size in input pixels, then
    /// class probabilities; anchors in P3, P4, P5 order, row-major within each level.
    pub fn forward(&self, features: [Tensor<4>; 3]) -> Tensor<3> {
        let (centres, strides) = anchor_grid(&features);
        let grid = cpu::AnchorGrid {
            centres: &centres,
            strides: &strides,
        };
        let (boxes, scores) = self.forward_raw(features);
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
        let bins = softmax(boxes.reshape([batch, 4, self.reg_max, count]), 2);
        let projection = self.dfl.clone().reshape([1, 1, self.reg_max, 1]);
        let distances: Tensor<3> = (bins * projection).sum_dim(2).reshape([batch, 4, count]);

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
            dfl: Tensor::from_data(
                TensorData::new((0..reg_max).map(|i| i as f32).collect(), [reg_max]),
                &device,
            ),
            num_classes: 5,
            reg_max,
        };
        let logits = Distribution::Uniform(-8.0, 8.0);
        let boxes = Tensor::<3>::random([2, 4 * reg_max, anchors], logits, &device);
        let scores = Tensor::<3>::random([2, 5, anchors], logits, &device);
        let ours = cpu::decode(boxes.clone(), scores.clone(), &grid, detect.dfl.clone());
        let burn = detect.decode_with_burn(boxes, scores, &grid);
        assert_eq!(ours.dims(), [2, 9, anchors]);
        let (ours, burn) = (
            ours.into_data().try_into_vec::<f32>().unwrap(),
            burn.into_data().try_into_vec::<f32>().unwrap(),
        );
        // Pixel coordinates up to ~300 here, where an f32 ulp is 3e-5: as the goldens allow.
        for (i, (a, b)) in ours.iter().zip(&burn).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 + 2e-7 * b.abs(),
                "value {i}: {a} against {b}"
            );
        }
    }
}
