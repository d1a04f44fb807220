//! `focalyolo bench`: the model's forward time on this machine's devices (`--profile`: per
//! layer), and the WGSL depthwise kernel against burn's conv2d.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::{Device, ExecutionError, Tensor, TensorData};
use clap::Args;
use focalyolo::compute::device::{ComputeDevice, DeviceChoice};
use focalyolo::compute::kernels::benchmark::{time_depthwise, yolo11n_depthwise_shapes};
use focalyolo::compute::kernels::cpu::{self, FmaPeak};
use focalyolo::compute::kernels::{KernelSettings, configure, runs_wgsl, settings};
use focalyolo::model::flops::FlopCount;
use focalyolo::model::{Activations, Observer, Yolo};

use super::Layer9Args;

#[derive(Args)]
pub struct BenchArgs {
    /// Weights to time (.pt or .safetensors).
    #[arg(long, required_unless_present = "kernels")]
    weights: Option<std::path::PathBuf>,
    #[command(flatten)]
    layer9: Layer9Args,
    /// Time the WGSL depthwise kernel against burn's conv2d, per YOLO11n layer shape.
    #[arg(long)]
    kernels: bool,
    /// Square input sizes to time.
    #[arg(long, value_delimiter = ',', default_values_t = [320, 640])]
    imgsz: Vec<usize>,
    /// Devices: auto times the CPU backend and the GPU when one is present.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Timed samples per measurement (after warm-up).
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// Time every layer of the forward pass (the device synchronised after each).
    #[arg(long)]
    profile: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.kernels {
        return bench_kernels(&args);
    }
    let path = args
        .weights
        .as_ref()
        .expect("clap requires --weights without --kernels");
    let weights = args
        .layer9
        .load(path)
        .with_context(|| format!("cannot load {}", path.display()))?;
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
        "{:<72} {:>6} {:>10} {:>10}",
        "device", "imgsz", "median ms", "mean ms"
    );
    // The roofline's ceiling: measured on the CPU, for the CPU's layers.
    let cpu_peak = if args.profile { cpu::fma_peak() } else { None };
    for device in devices {
        let peak = cpu_peak.as_ref().filter(|_| !device.is_gpu);
        // Opening a wgpu device checked the kernels: where they failed they stay off, and
        // the device's description says why. Where they passed, time the model with them
        // and with burn's own operations.
        let chosen = settings(&device.device);
        let variants: &[bool] = if device.is_gpu && chosen.wgsl {
            &[true, false]
        } else {
            &[false]
        };
        for &wgsl in variants {
            configure(&device.device, KernelSettings { wgsl, ..chosen });
            let label = match (device.is_gpu, wgsl) {
                (true, true) => format!("{} + WGSL kernels", device.description),
                (true, false) => format!("{} + burn conv2d", device.description),
                _ => device.description.clone(),
            };
            let (model, _) = Yolo::load(&weights, &device.device)?;
            if args.profile {
                for &imgsz in &args.imgsz {
                    profile_layers(&model, &device, imgsz, args.iterations, &label, peak)?;
                }
                continue;
            }
            for &imgsz in &args.imgsz {
                let (median, mean) = time_forward(&model, &device, imgsz, args.iterations)
                    .with_context(|| format!("forward pass on {label}"))?;
                println!("{label:<72} {imgsz:>6} {median:>10.1} {mean:>10.1}");
            }
        }
        configure(&device.device, chosen);
    }
    Ok(ExitCode::SUCCESS)
}

/// Median and mean milliseconds of a forward pass with the result read back.
fn time_forward(
    model: &Yolo,
    device: &ComputeDevice,
    imgsz: usize,
    iterations: usize,
) -> Result<(f64, f64), ExecutionError> {
    let input = gray_input(imgsz, &device.device);
    let mut times = Vec::with_capacity(iterations);
    for pass in 0..iterations.max(1) + 2 {
        let start = Instant::now();
        model.forward(input.clone()).try_into_data()?;
        if pass >= 2 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    Ok((median(&mut times), mean))
}

/// Median milliseconds of each layer, the device synchronised after every layer, and the
/// FLOPs each layer performed.
struct LayerTimer {
    device: Device,
    last: Instant,
    samples: Vec<Vec<f64>>,
    shapes: Vec<Vec<usize>>,
    count: FlopCount,
    flops: Vec<u64>,
}

impl LayerTimer {
    fn mark(&mut self, index: usize, shape: Vec<usize>) {
        // A failed sync shows in the readback that ends the pass.
        let _ = self.device.sync();
        let now = Instant::now();
        self.samples[index].push((now - self.last).as_secs_f64() * 1e3);
        self.shapes[index] = shape;
        self.flops[index] = self.count.take();
        self.last = now;
    }
}

impl Observer for LayerTimer {
    fn layer_done(&mut self, index: usize, output: &Tensor<4>) {
        self.mark(index, output.dims().to_vec());
    }

    fn detect_done(&mut self, predictions: &Tensor<3>) {
        self.mark(self.samples.len() - 1, predictions.dims().to_vec());
    }
}

/// Each layer's median time, its FLOPs, the GFLOP/s they ran at and, on the CPU, that rate
/// as a share of the measured `peak`: the roofline of `docs/cpu-performance.md`.
fn profile_layers(
    model: &Yolo,
    device: &ComputeDevice,
    imgsz: usize,
    iterations: usize,
    label: &str,
    peak: Option<&FmaPeak>,
) -> anyhow::Result<()> {
    let input = gray_input(imgsz, &device.device);
    let layers = model.last_layer() + 1;
    let mut timer = LayerTimer {
        device: device.device.clone(),
        last: Instant::now(),
        samples: vec![Vec::new(); layers],
        shapes: vec![Vec::new(); layers],
        count: FlopCount::start().context("another FLOP count is open in this process")?,
        flops: vec![0; layers],
    };
    for pass in 0..iterations.max(1) + 2 {
        if pass == 2 {
            timer.samples.iter_mut().for_each(Vec::clear);
        }
        timer.last = Instant::now();
        model
            .run(
                Activations::input(input.clone()),
                model.last_layer(),
                &mut timer,
            )
            .into_predictions()
            .expect("the pass ran Detect")
            .try_into_data()
            .with_context(|| format!("forward pass on {label}"))?;
    }
    // A Concat handed to the next layer as its parts is never timed on its own (0 ms): its
    // cost, if any, is the next layer's.
    let medians: Vec<f64> = timer
        .samples
        .iter_mut()
        .map(|s| if s.is_empty() { 0.0 } else { median(s) })
        .collect();
    let total_ms: f64 = medians.iter().sum();
    let total_flops: u64 = timer.flops.iter().sum();
    println!("{label}, imgsz {imgsz}: median ms per layer over {iterations} passes");
    if let Some(peak) = peak {
        println!(
            "peak: {} FMA loop, {:.1} GFLOP/s on {} threads ({:.1} on one)",
            peak.instructions, peak.all_threads, peak.threads, peak.one_thread
        );
    }
    println!(
        "{:>5} {:<16} {:>18} {:>9} {:>7} {:>8} {:>8} {:>6}",
        "layer", "module", "output", "ms", "share", "GFLOP", "GFLOP/s", "peak"
    );
    let rate = |flops: u64, ms: f64| {
        let gflops_per_s = if ms > 0.0 {
            flops as f64 / ms / 1e6
        } else {
            0.0
        };
        let of_peak = peak.map_or("-".to_owned(), |p| {
            format!("{:.0}%", 100.0 * gflops_per_s / p.all_threads)
        });
        format!(
            "{:>8.4} {gflops_per_s:>8.1} {of_peak:>6}",
            flops as f64 / 1e9
        )
    };
    for (index, ms) in medians.iter().enumerate() {
        let shape = match timer.shapes[index].as_slice() {
            [] => "not written out".to_string(),
            dims => dims
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("×"),
        };
        println!(
            "{index:>5} {:<16} {shape:>18} {ms:>9.2} {:>6.1}% {}",
            model.layer_name(index),
            100.0 * ms / total_ms,
            rate(timer.flops[index], *ms)
        );
    }
    println!(
        "{:>5} {:<16} {:>18} {total_ms:>9.2} {:>7} {}",
        "",
        "sum",
        "",
        "",
        rate(total_flops, total_ms)
    );
    Ok(())
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// A mid-grey letterboxed image, as the model's input.
fn gray_input(imgsz: usize, device: &Device) -> Tensor<4> {
    let data = TensorData::new(vec![0.5f32; 3 * imgsz * imgsz], [1, 3, imgsz, imgsz]);
    Tensor::<4>::from_data(data, device)
}

fn bench_kernels(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let gpu = ComputeDevice::select(DeviceChoice::Gpu)?;
    if !runs_wgsl(&gpu.device) {
        // The description says why the kernel check switched them off.
        anyhow::bail!("the WGSL kernels cannot be timed on {}", gpu.description);
    }
    println!("depthwise kernels on {}", gpu.description);
    println!(
        "{:<18} {:>16} {:>3} {:>10} {:>14} {:>8}",
        "layer", "shape", "k", "WGSL ms", "burn conv ms", "ratio"
    );
    for &imgsz in &args.imgsz {
        for shape in yolo11n_depthwise_shapes(imgsz) {
            let (wgsl, burn) = time_depthwise(&shape, &gpu.device, args.iterations)
                .with_context(|| format!("timing {} on {}", shape.label, gpu.description))?;
            let dims = format!("1×{}×{}×{}", shape.channels, shape.size, shape.size);
            println!(
                "{:<18} {dims:>16} {:>3} {wgsl:>10.3} {burn:>14.3} {:>7.1}×",
                shape.label,
                shape.kernel,
                burn / wgsl
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
