//! `focalyolo bench`: the model's forward time on this machine's devices.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::{Tensor, TensorData};
use clap::Args;
use focalyolo::device::{ComputeDevice, DeviceChoice};
use focalyolo::model::Yolo;
use focalyolo::weights::Weights;

#[derive(Args)]
pub struct BenchArgs {
    /// Weights to time (.pt or .safetensors).
    #[arg(long)]
    weights: std::path::PathBuf,
    /// Square input sizes to time.
    #[arg(long, value_delimiter = ',', default_values_t = [320, 640])]
    imgsz: Vec<usize>,
    /// Devices: auto times the CPU backend and the GPU when one is present.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Timed forward passes per size (after two warm-up passes).
    #[arg(long, default_value_t = 10)]
    iterations: usize,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let weights = Weights::load(&args.weights)
        .with_context(|| format!("cannot load {}", args.weights.display()))?;
    let devices = match args.device {
        DeviceChoice::Auto => {
            let mut devices = vec![ComputeDevice::cpu()];
            match ComputeDevice::select(DeviceChoice::Gpu) {
                Ok(gpu) => devices.push(gpu),
                Err(err) => eprintln!("no GPU timing: {err}"),
            }
            devices
        }
        choice => vec![ComputeDevice::select(choice)?],
    };
    println!(
        "{:<48} {:>6} {:>10} {:>10}",
        "device", "imgsz", "median ms", "mean ms"
    );
    for device in devices {
        let (model, _) = Yolo::load(&weights, &device.device)?;
        for &imgsz in &args.imgsz {
            let data = TensorData::new(vec![0.5f32; 3 * imgsz * imgsz], [1, 3, imgsz, imgsz]);
            let input = Tensor::<4>::from_data(data, &device.device);
            let mut times = Vec::with_capacity(args.iterations);
            for pass in 0..args.iterations + 2 {
                let start = Instant::now();
                let output = model.forward(input.clone());
                output.into_data();
                if pass >= 2 {
                    times.push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
            times.sort_by(f64::total_cmp);
            let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
            let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
            println!(
                "{:<48} {imgsz:>6} {median:>10.1} {mean:>10.1}",
                device.description
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
