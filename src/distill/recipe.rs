//! The recipes: what the student is trained to reproduce, and how deep its loss reaches.

use crate::model::{LAST_LAYER, LAYER9};

/// What the student is trained to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Recipe {
    /// SPPF's output (layer 9).
    Layer9,
    /// SPPF's output, and what C2PSA (layer 10) makes of it: the student is judged by what
    /// the rest of the network sees.
    #[default]
    Layer9And10,
    /// As `layer9-and10`, plus the P3/P4/P5 features the teacher's neck hands Detect: with
    /// the neck training too, it learns to make up for what layer 9 cannot match, while
    /// the frozen head keeps seeing what it was trained on.
    Neck,
    /// As `layer9-and10`, plus the teacher's outputs: its class scores (binary
    /// cross-entropy against its probabilities, on anchors where either model sees an
    /// object) and its box-side distributions (KL divergence from its softmax, weighted by
    /// the anchor's top class score).
    Outputs,
}

impl Recipe {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Recipe::Layer9 => "layer-9 feature MSE against the teacher's SPPF",
            Recipe::Layer9And10 => "layer-9 plus layer-10 feature MSE",
            Recipe::Neck => "layer-9 plus layer-10 plus P3/P4/P5 feature MSE",
            Recipe::Outputs => {
                "layer-9 plus layer-10 feature MSE, plus the teacher's class scores (BCE, weighted by the anchors' top score) and box distributions (KL)"
            }
        }
    }

    /// The name `--recipe` takes.
    pub fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map_or_else(String::new, |value| value.get_name().to_string())
    }

    /// The last layer whose output the loss reaches: layers after it would get no gradient.
    pub(super) fn deepest_layer(self) -> usize {
        match self {
            Recipe::Layer9 => LAYER9,
            Recipe::Layer9And10 => LAYER9 + 1,
            Recipe::Neck => LAST_LAYER - 1,
            Recipe::Outputs => LAST_LAYER,
        }
    }
}
