//! `export`: a trained model -> int8 C for a microcontroller.
//!
//! `cargo run --release -p export -- --config <toml> --checkpoint <ckpt> --calibration <images> --out <dir>`

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::Parser;
use export::compare::{ClassComparison, FaceComparison, compare_classes, compare_faces};
use export::graph::Shape;
use export::inputs::{Preprocess, calibration_inputs, fashion_mnist, photo_input};
use export::{codegen, lower, plan, quantize, report};
use indicatif::{ProgressBar, ProgressStyle};
use train::net::ModelKind;
use train::trainer::{build_model, load_checkpoint};

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
}

fn parse_size(s: &str) -> Result<[usize; 2]> {
    let (h, w) =
        s.split_once('x').with_context(|| format!("--input-size `{s}`: expected HEIGHTxWIDTH, e.g. 240x320"))?;
    let p = |v: &str| v.trim().parse::<usize>().with_context(|| format!("--input-size `{s}`: `{v}` is not a number"));
    Ok([p(h)?, p(w)?])
}

fn preprocess(kind: ModelKind, data_kind: &str) -> Preprocess {
    match kind {
        ModelKind::Face(_) if kind.is_qvga() => Preprocess::FaceGray,
        ModelKind::Face(_) => Preprocess::FaceRgb,
        _ if data_kind == "fashion_mnist" => Preprocess::FashionMnist,
        _ => Preprocess::Photo,
    }
}

fn input_shape(kind: ModelKind, cfg: &train::Config, size: Option<[usize; 2]>) -> Result<Shape> {
    let (_, channels) = train::class_task::classes_and_channels(&cfg.data)?;
    Ok(match kind {
        ModelKind::Face(_) if kind.is_qvga() => {
            let [h, w] = size.unwrap_or([240, 320]);
            [h, w, 1]
        }
        ModelKind::Face(_) => {
            let [h, w] = size.unwrap_or([480, 640]);
            [h, w, 3]
        }
        _ => {
            let default =
                if cfg.data.kind == "fashion_mnist" { 28 } else { cfg.data.image_size.unwrap_or(224) as usize };
            let [h, w] = size.unwrap_or([default, default]);
            [h, w, channels]
        }
    })
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum Comparison {
    Faces(FaceComparison),
    Classes(ClassComparison),
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let cfg = train::Config::load(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    let device = Device::flex();
    let (kind, mut net) = build_model(&cfg, &device).with_context(|| format!("building model `{}`", cfg.model.name))?;
    match &args.checkpoint {
        Some(path) => {
            net = load_checkpoint(path, &cfg, net, None).with_context(|| format!("loading {}", path.display()))?.1;
        }
        None if cfg.model.init.is_none() => {
            tracing::warn!("no --checkpoint and no model.init: exporting a randomly initialised model");
        }
        None => {}
    }
    let size = args.input_size.as_deref().map(parse_size).transpose()?;
    let shape = input_shape(kind, &cfg, size)?;
    let graph = lower::lower(&cfg.model.name, &net, shape).with_context(|| format!("lowering `{}`", cfg.model.name))?;
    let pre = preprocess(kind, &cfg.data.kind);

    let images = calibration_inputs(&args.calibration, shape, pre, args.calibration_limit)
        .with_context(|| format!("calibration data {}", args.calibration.display()))?;
    if images.is_empty() {
        bail!(
            "no calibration images in {} (--calibration-limit {})",
            args.calibration.display(),
            args.calibration_limit
        );
    }
    let pb = bar(images.len(), "calibrating");
    let mut ranges = export::float_sim::Ranges::new(&graph);
    for x in &images {
        export::float_sim::run(&graph, x, Some(&mut ranges));
        pb.inc(1);
    }
    pb.finish_and_clear();
    tracing::info!(images = images.len(), "calibrated");
    let q = quantize::quantize(&graph, &ranges).context("quantizing")?;
    let p = plan::plan(&q);
    codegen::generate(&q, &p)?.write(&args.out).with_context(|| format!("writing C into {}", args.out.display()))?;
    if args.layer_errors {
        for e in export::compare::layer_errors(&graph, &q, &images[0]) {
            println!(
                "{:<16} largest error {:>10.4} (largest value {:>10.4}, int8 step {:.4})",
                e.layer, e.max_error, e.max_value, e.scale
            );
        }
    }
    // The first calibration image and what the C must output for it, to check a build.
    let example: Vec<i8> = images[0].iter().map(|v| q.params[q.input].quantize(*v)).collect();
    let outputs = export::int8_sim::run(&q, &example);
    let expected: Vec<u8> = q.outputs.iter().flat_map(|(t, _)| outputs[*t].iter().map(|v| *v as u8)).collect();
    codegen::write_atomic(&args.out.join("example_input.bin"), &example.iter().map(|v| *v as u8).collect::<Vec<_>>())?;
    codegen::write_atomic(&args.out.join("example_output.bin"), &expected)?;
    let rep = report::report(&q, &p);
    print!("{}", rep.table());

    let comparison = if args.no_compare { None } else { Some(compare(&args, &cfg, kind, &graph, &q, pre)?) };
    if let Some(c) = &comparison {
        println!("{}", serde_json::to_string_pretty(c)?);
    }
    let mut json = serde_json::to_value(&rep)?;
    if let (Some(c), Some(obj)) = (&comparison, json.as_object_mut()) {
        obj.insert("comparison".into(), serde_json::to_value(c)?);
    }
    let path = args.out.join("report.json");
    codegen::write_atomic(&path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    tracing::info!(dir = %args.out.display(), arena = rep.arena_bytes, flash = rep.weight_flash_bytes, "exported");
    Ok(())
}

fn compare(
    args: &Args,
    cfg: &train::Config,
    kind: ModelKind,
    graph: &export::Graph,
    q: &export::QGraph,
    pre: Preprocess,
) -> Result<Comparison> {
    if kind.is_face() {
        let mut list = train::face_task::face_list(&cfg.data, &cfg.data.val_split)
            .with_context(|| format!("face list `{}` of {}", cfg.data.val_split, cfg.data.root.display()))?;
        list.images.truncate(args.compare_limit);
        tracing::info!(images = list.images.len(), split = %cfg.data.val_split, "comparing int8 with float detections");
        return Ok(Comparison::Faces(compare_faces(graph, q, &list, pre, kind.is_qvga())?));
    }
    let samples: Vec<(Vec<f32>, Option<usize>)> = if cfg.data.kind == "fashion_mnist" {
        fashion_mnist(&cfg.data.root, "t10k", args.compare_limit)?.into_iter().map(|(x, l)| (x, Some(l))).collect()
    } else {
        let paths = export::inputs::image_paths(&args.calibration)?;
        let shape = graph.input_shape();
        paths
            .iter()
            .take(args.compare_limit)
            .map(|p| Ok((photo_input(&data::image_io::load_rgb(p)?, shape, pre), None)))
            .collect::<Result<_>>()?
    };
    if samples.is_empty() {
        bail!("no images to compare in {}", Path::new(&cfg.data.root).display());
    }
    tracing::info!(images = samples.len(), "comparing int8 with float logits");
    Ok(Comparison::Classes(compare_classes(graph, q, &samples)))
}
