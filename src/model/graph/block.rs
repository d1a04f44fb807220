//! The blocks a graph is built of, with the options their YAML rows resolve to.

/// One block of the graph, with the options its YAML row resolves to. `out` is the output
/// channel count the YAML asks for (after the scale's width), when a YAML says so.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Conv {
        out: Option<usize>,
        kernel: usize,
        stride: usize,
    },
    /// YOLOv8's C2f: Bottleneck stages, residual only where `shortcut`.
    C2f {
        out: Option<usize>,
        shortcut: bool,
    },
    /// YOLO11's and YOLO26's C3k2: Bottleneck, C3k, or Bottleneck + PSABlock (`attn`) stages.
    C3k2 {
        out: Option<usize>,
        c3k: bool,
        attn: bool,
        shortcut: bool,
    },
    /// `n` chained max-pools of `kernel`; plus the input when `shortcut` (YOLO26).
    Sppf {
        out: Option<usize>,
        kernel: usize,
        n: usize,
        shortcut: bool,
    },
    FocalModulation,
    C2Psa {
        out: Option<usize>,
    },
    Upsample,
    Concat,
    /// The head: Detect, or one of the task heads built on it.
    Detect {
        nc: Option<usize>,
        task: Task,
    },
}

/// What the head predicts beside each anchor's box and class scores (Ultralytics' task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Detect,
    /// `masks` mask coefficients per anchor, and prototypes from `proto` (Segment); YOLO26's
    /// Segment26 fuses P4 and P5 into the prototypes too.
    Segment {
        masks: usize,
        yolo26: bool,
    },
    /// `keypoints` × `dims` (2: x, y; 3: x, y, visibility) per anchor (Pose); YOLO26's
    /// Pose26 splits the last conv off (`cv4_kpts`) and decodes without Pose's ×2 − 0.5.
    Pose {
        keypoints: usize,
        dims: usize,
        yolo26: bool,
    },
    /// A rotation angle per anchor (OBB); YOLO26's OBB26 gives it without the sigmoid.
    Obb {
        yolo26: bool,
    },
}

impl Task {
    /// The head's module name as Ultralytics' YAML writes it.
    pub fn head_name(&self) -> &'static str {
        match self {
            Task::Detect => "Detect",
            Task::Segment { yolo26: false, .. } => "Segment",
            Task::Segment { yolo26: true, .. } => "Segment26",
            Task::Pose { yolo26: false, .. } => "Pose",
            Task::Pose { yolo26: true, .. } => "Pose26",
            Task::Obb { yolo26: false } => "OBB",
            Task::Obb { yolo26: true } => "OBB26",
        }
    }

    /// The task as Ultralytics names it (`detect`, `segment`, `pose`, `obb`).
    pub fn name(&self) -> &'static str {
        match self {
            Task::Detect => "detect",
            Task::Segment { .. } => "segment",
            Task::Pose { .. } => "pose",
            Task::Obb { .. } => "obb",
        }
    }

    /// The rows each anchor's predictions carry after its box and class scores.
    pub fn extra_rows(&self) -> usize {
        match self {
            Task::Detect => 0,
            Task::Segment { masks, .. } => *masks,
            Task::Pose {
                keypoints, dims, ..
            } => keypoints * dims,
            Task::Obb { .. } => 1,
        }
    }
}

impl Block {
    /// The module's name as Ultralytics' YAML writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Block::Conv { .. } => "Conv",
            Block::C2f { .. } => "C2f",
            Block::C3k2 { .. } => "C3k2",
            Block::Sppf { .. } => "SPPF",
            Block::FocalModulation => "FocalModulation",
            Block::C2Psa { .. } => "C2PSA",
            Block::Upsample => "Upsample",
            Block::Concat => "Concat",
            Block::Detect { task, .. } => task.head_name(),
        }
    }
}
