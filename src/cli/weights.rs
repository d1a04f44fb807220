//! `focalyolo info` and `focalyolo convert`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use focalyolo::compute::device::ComputeDevice;
use focalyolo::model::{ModelInfo, Yolo};
use focalyolo::weights::Weights;
use focalyolo::weights::bundled::Layer9Origin;

#[derive(Args)]
pub struct InfoArgs {
    /// The weights file (.pt or .safetensors).
    weights: PathBuf,
}

#[derive(Args)]
pub struct ConvertArgs {
    /// The checkpoint to convert.
    input: PathBuf,
    /// Where to write the safetensors file.
    #[arg(short, long)]
    output: PathBuf,
}

/// Load and check a weights file by building the model from it on the CPU.
fn load_checked(path: &PathBuf) -> anyhow::Result<(Weights, ModelInfo)> {
    let weights = Weights::load(path)?;
    let (_, info) = Yolo::load(&weights, &ComputeDevice::cpu().device)
        .with_context(|| format!("{} is not a model this build runs", path.display()))?;
    Ok((weights, info))
}

pub fn info(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let (weights, info) = load_checked(&args.weights)?;
    println!("weights     {}", args.weights.display());
    println!("model       {}", info.name());
    println!("scale       {}", info.scale);
    println!("task        {}", info.task.name());
    println!("classes     {}", info.num_classes);
    println!("layer 9     {}", info.layer9);
    if let Some(scores) = &weights.scores {
        println!("measured    {scores}");
    }
    let (bundled, origin) = focalyolo::weights::bundled::with_bundled_layer(weights)?;
    match origin {
        Layer9Origin::Bundled => {
            let measured = bundled
                .scores
                .map(|scores| format!(" ({scores})"))
                .unwrap_or_default();
            println!(
                "runs with   the bundled FocalModulation layer 9{measured}, unless --stock keeps SPPF"
            );
        }
        Layer9Origin::NoLayerFits => println!(
            "runs with   SPPF: no bundled FocalModulation fits these weights; make a layer with \
             `focalyolo distill --teacher {} --images PHOTOS`, then pass it with --focal",
            args.weights.display()
        ),
        Layer9Origin::Own | Layer9Origin::Distilled(_) => {}
    }
    if info.has_one_to_one {
        println!(
            "heads       {} by default; {} with --no-nms",
            info.head(false),
            info.head(true)
        );
    }
    println!("parameters  {}", info.parameters);
    println!(
        "names       {}",
        info.class_names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{i}:{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

pub fn convert(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let (weights, info) = load_checked(&args.input)?;
    weights.save_safetensors(&args.output)?;
    println!(
        "wrote {} ({} tensors, {} with {})",
        args.output.display(),
        weights.tensors().len(),
        info.name(),
        info.classes()
    );
    Ok(ExitCode::SUCCESS)
}
