//! The recipes: what the student is trained to reproduce, and how deep its loss reaches.

use crate::model::LAYER9;

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
    /// As `layer9-and10`, plus the teacher's outputs: the KL divergence of the class
    /// scores from the teacher's at every anchor, and of the box-side distributions
    /// weighted by the teacher's top class score; both divided by the sum of the teacher's
    /// top scores, so the loss is 0 exactly at the teacher.
    Outputs,
}

impl Recipe {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Recipe::Layer9 => "layer-9 feature MSE against the teacher's SPPF",
            Recipe::Layer9And10 => "layer-9 plus layer-10 feature MSE",
            Recipe::Neck => "layer-9 plus layer-10 plus P3/P4/P5 feature MSE",
            Recipe::Outputs => {
                "layer-9 plus layer-10 feature MSE, plus the KL divergence from the teacher's class scores (every anchor) and box distributions (weighted by its top score)"
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
    /// `detect_layer` is the teacher's last layer.
    pub(super) fn deepest_layer(self, detect_layer: usize) -> usize {
        match self {
            Recipe::Layer9 => LAYER9,
            Recipe::Layer9And10 => LAYER9 + 1,
            Recipe::Neck => detect_layer - 1,
            Recipe::Outputs => detect_layer,
        }
    }
}
