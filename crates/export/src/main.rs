//! `export`: a trained model -> int8 C for a microcontroller.
//!
//! `cargo run --release -p export -- --config <toml> --checkpoint <ckpt> --calibration <images> --out <dir>`

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use export::pipeline::{ExportOptions, export};
use indicatif::{ProgressBar, ProgressStyle};

/// See the workspace Cargo.toml: it keeps freed activation buffers for the next step.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Quantize a trained RNNPool model to int8 and write it as C for a microcontroller")]
struct Args {
    /// The training config of the model (its [model] and [data] sections are used).
    #[arg(long)]
    config: PathBuf,
    /// A checkpoint written by `train`; without it, the config's `model.init` weights (or a
    /// seeded random initialisation) are exported.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Calibration images: a folder (searched recursively), a file listing image paths, or a
    /// Fashion-MNIST folder.
    #[arg(long)]
    calibration: PathBuf,
    /// At most this many calibration images.
    #[arg(long, default_value_t = 64)]
    calibration_limit: usize,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Input `HEIGHTxWIDTH` (default: 240x320 for the QVGA face models, 480x640 for the VGA ones,
    /// the data's image size for classifiers).
    #[arg(long)]
    input_size: Option<String>,
    /// Skip the int8-vs-float comparison (faces: AP on the config's validation split;
    /// Fashion-MNIST: top-1 on the test split; photos: top-1 agreement on the calibration set).
    #[arg(long)]
    no_compare: bool,
    /// Print each layer's largest int8-vs-float error on the first calibration image.
    #[arg(long)]
    layer_errors: bool,
    /// At most this many images in the comparison.
    #[arg(long, default_value_t = 1000)]
    compare_limit: usize,
    /// Also build the C for a Cortex-M4, run it on QEMU's mps2-an386 on the example input and
    /// record instructions per image and flash in report.json (needs gcc-arm-none-eabi,
    /// libnewlib-arm-none-eabi and qemu-system-arm).
    #[arg(long)]
    qemu: bool,
}

fn parse_size(s: &str) -> Result<[usize; 2]> {
    let (h, w) =
        s.split_once('x').with_context(|| format!("--input-size `{s}`: expected HEIGHTxWIDTH, e.g. 240x320"))?;
    let p = |v: &str| v.trim().parse::<usize>().with_context(|| format!("--input-size `{s}`: `{v}` is not a number"));
    Ok([p(h)?, p(w)?])
}

fn progress_bar() -> ProgressBar {
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message("calibrating");
    pb
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let opts = ExportOptions {
        config: args.config.clone(),
        checkpoint: args.checkpoint.clone(),
        calibration: args.calibration.clone(),
        calibration_limit: args.calibration_limit,
        out: args.out.clone(),
        input_size: args.input_size.as_deref().map(parse_size).transpose()?,
        compare: !args.no_compare,
        compare_limit: args.compare_limit,
        qemu: args.qemu,
    };
    let pb = progress_bar();
    let exported = export(&opts, &mut |done, total| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    })
    .with_context(|| format!("exporting {} into {}", args.config.display(), args.out.display()))?;
    pb.finish_and_clear();
    print!("{}", exported.report.table());
    if args.layer_errors {
        for e in exported.layer_errors() {
            println!(
                "{:<16} largest error {:>10.4} (largest value {:>10.4}, int8 step {:.4})",
                e.layer, e.max_error, e.max_value, e.scale
            );
        }
    }
    if let Some(c) = &exported.comparison {
        println!("{}", serde_json::to_string_pretty(c)?);
    }
    Ok(())
}
