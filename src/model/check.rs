//! The whole graph checked on channel counts when the model loads, before any tensor flows:
//! every convolution's input channels against what feeds it, through every block and the
//! Detect head, with the first mismatch named by its tensor path. Each tensor can be
//! well-formed while the layers do not fit together (layer 1 expecting 24 channels where
//! layer 0 gives 16); burn's conv2d would panic on that at the first frame.

use super::attention::C2Psa;
use super::attention::PsaBlock;
use super::blocks::{AttentionPart, Bottleneck, C2f, C3k, CspStage, Sppf};
use super::conv::{Conv, Conv2dLayer};
use super::detect::{BranchPart, Detect};
use super::focal::FocalModulation;
use super::graph::Block;
use super::{Layer, ModelError, Yolo};

/// The models' input: RGB.
const INPUT_CHANNELS: usize = 3;

/// `conv` (whose weight is `path`) fed `given` channels: its output channels.
fn feed(conv: &Conv2dLayer, given: usize, path: &str) -> Result<usize, ModelError> {
    if conv.in_channels() != given {
        return Err(ModelError::Architecture(format!(
            "`{path}` takes {} input channels, but what feeds it has {given}",
            conv.in_channels()
        )));
    }
    Ok(conv.out_channels())
}

/// An Ultralytics `Conv` at `prefix` (weight `prefix.conv.weight`).
fn feed_conv(conv: &Conv, given: usize, prefix: &str) -> Result<usize, ModelError> {
    feed(&conv.conv, given, &format!("{prefix}.conv.weight"))
}

/// Channels that a block splits into two equal halves.
fn halves(channels: usize, prefix: &str) -> Result<usize, ModelError> {
    if !channels.is_multiple_of(2) {
        return Err(ModelError::Architecture(format!(
            "`{prefix}.cv1` gives {channels} channels, which do not split into two halves"
        )));
    }
    Ok(channels / 2)
}

/// `output` channels at `path` must be `expected`, for `purpose`.
fn expect(output: usize, expected: usize, path: &str, purpose: &str) -> Result<(), ModelError> {
    if output != expected {
        return Err(ModelError::Architecture(format!(
            "`{path}` gives {output} channels where {purpose} needs {expected}"
        )));
    }
    Ok(())
}

fn bottleneck(b: &Bottleneck, given: usize, prefix: &str) -> Result<usize, ModelError> {
    let hidden = feed_conv(&b.cv1, given, &format!("{prefix}.cv1"))?;
    feed_conv(&b.cv2, hidden, &format!("{prefix}.cv2"))
}

fn c3k(block: &C3k, given: usize, prefix: &str) -> Result<usize, ModelError> {
    let mut a = feed_conv(&block.cv1, given, &format!("{prefix}.cv1"))?;
    for (i, b) in block.m.iter().enumerate() {
        a = bottleneck(b, a, &format!("{prefix}.m.{i}"))?;
    }
    let b = feed_conv(&block.cv2, given, &format!("{prefix}.cv2"))?;
    feed_conv(&block.cv3, a + b, &format!("{prefix}.cv3"))
}

fn c2f(block: &C2f, given: usize, prefix: &str) -> Result<usize, ModelError> {
    let split = feed_conv(&block.cv1, given, &format!("{prefix}.cv1"))?;
    let mut current = halves(split, prefix)?;
    let mut total = split;
    for (i, stage) in block.m.iter().enumerate() {
        let stage_prefix = format!("{prefix}.m.{i}");
        current = match stage {
            CspStage::Bottleneck(b) => bottleneck(b, current, &stage_prefix)?,
            CspStage::C3k(c) => c3k(c, current, &stage_prefix)?,
            CspStage::Attention(parts) => {
                let mut c = current;
                for (j, part) in parts.iter().enumerate() {
                    let at = format!("{stage_prefix}.{j}");
                    c = match part {
                        AttentionPart::Bottleneck(b) => bottleneck(b, c, &at)?,
                        AttentionPart::Psa(p) => psa(p, c, &at)?,
                    };
                }
                c
            }
        };
        total += current;
    }
    feed_conv(&block.cv2, total, &format!("{prefix}.cv2"))
}

fn sppf(block: &Sppf, given: usize, prefix: &str) -> Result<usize, ModelError> {
    let pooled = feed_conv(&block.cv1, given, &format!("{prefix}.cv1"))?;
    // cv1's output and its max-pools, concatenated.
    feed_conv(
        &block.cv2,
        (block.pools + 1) * pooled,
        &format!("{prefix}.cv2"),
    )
}

fn focal(block: &FocalModulation, given: usize, prefix: &str) -> Result<usize, ModelError> {
    // Loading checked f_linear's 2C + L + 1 outputs and the levels' C channels.
    feed(&block.f_linear, given, &format!("{prefix}.f_linear.weight"))?;
    let dim = block.f_linear.in_channels();
    let h = format!("{prefix}.h.weight");
    let modulator = feed(&block.h, dim, &h)?;
    expect(modulator, dim, &h, "the product with the queries")?;
    feed(&block.proj, dim, &format!("{prefix}.proj.weight"))
}

fn psa(psa: &PsaBlock, given: usize, at: &str) -> Result<usize, ModelError> {
    let attn = &psa.attn;
    let qkv = format!("{at}.attn.qkv");
    feed_conv(&attn.qkv, given, &qkv)?;
    expect(
        attn.num_heads * attn.head_dim,
        given,
        &qkv,
        "splitting into heads",
    )?;
    // The values, reshaped back to the block's width, go through the positional conv.
    feed_conv(
        &attn.pe,
        attn.num_heads * attn.head_dim,
        &format!("{at}.attn.pe"),
    )?;
    let proj = format!("{at}.attn.proj");
    let attended = feed_conv(&attn.proj, given, &proj)?;
    expect(attended, given, &proj, "the residual sum")?;
    let [ffn0, ffn1] = &psa.ffn[..] else {
        unreachable!("PsaBlock::load builds two ffn convs")
    };
    let hidden = feed_conv(ffn0, given, &format!("{at}.ffn.0"))?;
    let ffn = format!("{at}.ffn.1");
    let out = feed_conv(ffn1, hidden, &ffn)?;
    expect(out, given, &ffn, "the residual sum")?;
    Ok(out)
}

fn c2psa(block: &C2Psa, given: usize, prefix: &str) -> Result<usize, ModelError> {
    let split = feed_conv(&block.cv1, given, &format!("{prefix}.cv1"))?;
    let half = halves(split, prefix)?;
    for (i, block) in block.m.iter().enumerate() {
        psa(block, half, &format!("{prefix}.m.{i}"))?;
    }
    feed_conv(&block.cv2, split, &format!("{prefix}.cv2"))
}

fn detect(head: &Detect, levels: [usize; 3], prefix: &str) -> Result<(), ModelError> {
    let heads = [
        ("cv2", Some(&head.cv2)),
        ("cv3", Some(&head.cv3)),
        ("one2one_cv2", head.one2one_cv2.as_ref()),
        ("one2one_cv3", head.one2one_cv3.as_ref()),
    ];
    for (name, branches) in heads.into_iter().filter_map(|(n, b)| Some((n, b?))) {
        for (level, (branch, &given)) in branches.iter().zip(&levels).enumerate() {
            let mut channels = given;
            for (i, part) in branch.iter().enumerate() {
                let at = format!("{prefix}.{name}.{level}.{i}");
                channels = match part {
                    BranchPart::Conv(conv) => feed_conv(conv, channels, &at)?,
                    BranchPart::Stage(convs) => {
                        let mut c = channels;
                        for (j, conv) in convs.iter().enumerate() {
                            c = feed_conv(conv, c, &format!("{at}.{j}"))?;
                        }
                        c
                    }
                    BranchPart::Out(conv) => feed(conv, channels, &format!("{at}.weight"))?,
                };
            }
        }
    }
    Ok(())
}

/// The channels the model's YAML asks of a block, when it says.
fn yaml_channels(block: &Block) -> Option<usize> {
    match block {
        Block::Conv { out, .. }
        | Block::C2f { out, .. }
        | Block::C3k2 { out, .. }
        | Block::Sppf { out, .. }
        | Block::C2Psa { out } => *out,
        _ => None,
    }
}

impl Yolo {
    /// Every layer's input channels against what feeds it, in graph order; the first
    /// mismatch by tensor path.
    pub(super) fn check_channels(&self) -> Result<(), ModelError> {
        let mut outputs: Vec<usize> = Vec::with_capacity(self.model.len());
        for (index, (layer, node)) in self.model.iter().zip(&self.graph.nodes).enumerate() {
            let from = &node.from;
            let input = |f: isize| {
                if f < 0 {
                    outputs.last().copied().unwrap_or(INPUT_CHANNELS)
                } else {
                    outputs[f as usize]
                }
            };
            let given = input(from[0]);
            let prefix = format!("model.{index}");
            let channels = match layer {
                Layer::Conv(conv) => feed_conv(conv, given, &prefix)?,
                Layer::C2f(block) => c2f(block, given, &prefix)?,
                Layer::Sppf(block) => sppf(block, given, &prefix)?,
                Layer::FocalModulation(block) => focal(block, given, &prefix)?,
                Layer::C2Psa(block) => c2psa(block, given, &prefix)?,
                Layer::Upsample(_) => given,
                Layer::Concat(_) => from.iter().map(|&f| input(f)).sum(),
                Layer::Detect(head) => {
                    let levels = [input(from[0]), input(from[1]), input(from[2])];
                    detect(head, levels, &prefix)?;
                    0
                }
            };
            // A distilled layer 9 keeps its input's width whatever the YAML's block was.
            if let Some(wanted) = yaml_channels(&node.block)
                && !matches!(layer, Layer::FocalModulation(_))
                && channels != wanted
            {
                return Err(ModelError::Architecture(format!(
                    "`{prefix}` gives {channels} channels where the model's YAML asks for {wanted}"
                )));
            }
            outputs.push(channels);
        }
        Ok(())
    }
}
