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
    Detect {
        nc: Option<usize>,
    },
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
            Block::Detect { .. } => "Detect",
        }
    }
}
