//! The whole export of a trained model, step by step: the model a config and checkpoint give,
//! its float graph at the chosen input size, calibration, quantization, the arena plan, the C
//! sources, the example input and output, and the report with the int8-vs-float comparison.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::Serialize;
use zoo::config::{Config, DataKind};
use zoo::registry;

use crate::compare::{ClassComparison, FaceComparison, LayerError, compare_classes, compare_faces, layer_errors};
use crate::error::ExportError;
use crate::graph::{Graph, Shape};
use crate::inputs::{Preprocess, calibration_inputs, fashion_mnist, image_paths, photo_input};
use crate::quantize::QGraph;
use crate::report::{McuFigures, Report};
use crate::{codegen, int8_sim, lower, mcu, plan, quantize, report};

/// What to export and how.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// The model's training config (its `[model]` and `[data]` sections are used).
    pub config: PathBuf,
    /// A checkpoint written by `train`; without it, `model.init` (or a seeded random model).
    pub checkpoint: Option<PathBuf>,
    /// Calibration images: a folder, a file listing image paths, or a Fashion-MNIST folder.
    pub calibration: PathBuf,
    /// At most this many calibration images.
    pub calibration_limit: usize,
    /// The output folder.
    pub out: PathBuf,
    /// `[height, width]` of the input; `None`: the model's default.
    pub input_size: Option<[usize; 2]>,
    /// Compare int8 with float (faces: AP on the config's validation split; Fashion-MNIST:
    /// top-1 on its test split; photos: top-1 agreement on the calibration set).
    pub compare: bool,
    /// At most this many images in the comparison.
    pub compare_limit: usize,
    /// Build the C for a Cortex-M4 and count its instructions on QEMU (needs
    /// gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm).
    pub qemu: bool,
}

/// How faithful the int8 model is.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Comparison {
    /// A face detector's.
    Faces(FaceComparison),
    /// A classifier's.
    Classes(ClassComparison),
}

/// What an export wrote and measured.
pub struct Exported {
    /// The float graph.
    pub graph: Graph,
    /// The int8 graph the C computes.
    pub quantized: QGraph,
    /// Per layer and in total: arena, flash, MACs.
    pub report: Report,
    /// The int8-vs-float comparison, when asked for.
    pub comparison: Option<Comparison>,
    /// The preprocessed calibration inputs (HWC).
    pub calibration: Vec<Vec<f32>>,
}

impl Exported {
    /// Each layer's largest int8-vs-float error on the first calibration image.
    pub fn layer_errors(&self) -> Vec<LayerError> {
        self.calibration.first().map(|x| layer_errors(&self.graph, &self.quantized, x)).unwrap_or_default()
    }
}

/// Runs the whole export; `progress` is told each calibration image as it is run.
pub fn export(opts: &ExportOptions, progress: &mut dyn FnMut(usize, usize)) -> Result<Exported, ExportError> {
    let cfg = Config::load(&opts.config).map_err(zoo::ZooError::from)?;
    codegen::remove_leftovers(&opts.out)?;
    let graph = lowered_model(&cfg, opts)?;
    let pre = preprocess(&cfg);
    let shape = graph.input_shape();
    let images = calibration_inputs(&opts.calibration, shape, pre, opts.calibration_limit)?;
    let mut seen = 0;
    let ranges = crate::calibrate(
        &graph,
        images.iter().map(|x| {
            seen += 1;
            progress(seen, images.len());
            x.as_slice()
        }),
    )?;
    tracing::info!(images = images.len(), "calibrated");
    let quantized = quantize::quantize(&graph, &ranges)?;
    let arena = plan::Plans::new(&quantized);
    let sources = codegen::generate(&quantized, &arena)?;
    sources.write(&opts.out)?;
    let example = write_example(&opts.out, &quantized, &images[0])?;
    let mut report = report::report(&quantized, &arena);
    if opts.qemu {
        report.mcu = Some(measure_on_qemu(&sources, &example, report.macs)?);
    }
    let comparison = if opts.compare { Some(compare(opts, &cfg, &graph, &quantized, pre)?) } else { None };
    write_report(&opts.out, &report, comparison.as_ref())?;
    tracing::info!(dir = %opts.out.display(), arena = report.arena_bytes, flash = report.weight_flash_bytes, "exported");
    Ok(Exported { graph, quantized, report, comparison, calibration: images })
}

/// The config's model with the checkpoint's weights, lowered at the input size.
fn lowered_model(cfg: &Config, opts: &ExportOptions) -> Result<Graph, ExportError> {
    let device = Device::flex();
    let net = match &opts.checkpoint {
        Some(path) => registry::load_model(cfg, path, &device)?,
        None => {
            if cfg.model.init.is_none() {
                tracing::warn!("no checkpoint and no model.init: exporting a randomly initialised model");
            }
            registry::build_model(cfg, &device)?
        }
    };
    lower::lower(cfg.model.name.name(), &net, input_shape(cfg, opts.input_size)?)
}

/// How a photo becomes this model's input.
pub fn preprocess(cfg: &Config) -> Preprocess {
    match (cfg.model.name.is_face(), cfg.model.name.is_qvga(), cfg.data.kind) {
        (true, true, _) => Preprocess::FaceGray,
        (true, false, _) => Preprocess::FaceRgb,
        (false, _, DataKind::FashionMnist) => Preprocess::FashionMnist,
        (false, _, _) => Preprocess::Photo,
    }
}

/// The largest input side accepted: far above any microcontroller's frame, small enough that
/// the float simulator's buffers stay a few GB at most.
pub const MAX_INPUT_SIDE: usize = 4096;

/// `[height, width, channels]` of the exported input: `size` or the model's default (240x320
/// QVGA faces, 480x640 VGA faces, the data's image size for classifiers).
pub fn input_shape(cfg: &Config, size: Option<[usize; 2]>) -> Result<Shape, ExportError> {
    if let Some([h, w]) = size
        && (h == 0 || w == 0 || h > MAX_INPUT_SIDE || w > MAX_INPUT_SIDE)
    {
        return Err(ExportError::InputSize { size: [h, w], max: MAX_INPUT_SIDE });
    }
    let [channels, h, w] = registry::deployed_input(cfg)?;
    let [h, w] = size.unwrap_or([h, w]);
    Ok([h, w, channels])
}

/// The first calibration image quantized, and what the C must output for it, to check a build;
/// returns the pair.
fn write_example(out: &Path, q: &QGraph, first: &[f32]) -> Result<Example, ExportError> {
    let input: Vec<i8> = first.iter().map(|v| q.params[q.input].quantize(*v)).collect();
    let outputs = int8_sim::run(q, &input);
    let expected: Vec<u8> = q.outputs.iter().flat_map(|(t, _)| outputs[*t].iter().map(|v| *v as u8)).collect();
    codegen::write_atomic(&out.join("example_input.bin"), &input.iter().map(|v| *v as u8).collect::<Vec<_>>())?;
    codegen::write_atomic(&out.join("example_output.bin"), &expected)?;
    Ok(Example { input, expected })
}

/// A quantized input and the outputs the C must give for it.
struct Example {
    input: Vec<i8>,
    expected: Vec<u8>,
}

/// Builds `sources` for QEMU's Cortex-M4 board in a temporary folder, measures them there
/// ([`qemu_figures`]) and removes the folder.
fn measure_on_qemu(sources: &codegen::Sources, example: &Example, macs: u64) -> Result<McuFigures, ExportError> {
    let dir = std::env::temp_dir().join(format!("rnnpool-export-qemu-{}", std::process::id()));
    sources.write(&dir)?;
    let result = qemu_figures(&dir, example, macs);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Runs both entry points of the export in `dir` on the example, checks their outputs, and
/// returns the figures.
fn qemu_figures(dir: &Path, example: &Example, macs: u64) -> Result<McuFigures, ExportError> {
    let inputs = [example.input.clone()];
    let run = |rows| mcu::run(dir, mcu::Build { target: mcu::Target::Mps2Board, rows, plain: false }, &inputs);
    let (frame, rows) = (run(false)?, run(true)?);
    if frame.outputs != example.expected || rows.outputs != example.expected {
        let detail = "the Cortex-M4's outputs differ from the simulator's".to_string();
        return Err(ExportError::Build { what: "running on QEMU".into(), dir: dir.to_path_buf(), detail });
    }
    let n = |r: &mcu::Run| r.instructions.first().copied().unwrap_or(0);
    let [text, data, _] = frame.sizes.unwrap_or_default();
    tracing::info!(instructions = n(&frame), "measured on QEMU");
    Ok(McuFigures {
        instructions_per_image: n(&frame),
        instructions_per_image_rows: n(&rows),
        instructions_per_mac: n(&frame) as f64 / macs.max(1) as f64,
        flash_bytes: text + data,
    })
}

/// `report.json`: the report with the comparison under `comparison`.
fn write_report(out: &Path, rep: &Report, comparison: Option<&Comparison>) -> Result<(), ExportError> {
    let json_err = |e: serde_json::Error| ExportError::Io { path: out.join("report.json"), source: e.into() };
    let mut json = serde_json::to_value(rep).map_err(json_err)?;
    if let (Some(c), Some(obj)) = (comparison, json.as_object_mut()) {
        obj.insert("comparison".into(), serde_json::to_value(c).map_err(json_err)?);
    }
    let text = serde_json::to_string_pretty(&json).map_err(json_err)?;
    codegen::write_atomic(&out.join("report.json"), text.as_bytes())
}

/// The int8 model against the float one on the config's validation faces, Fashion-MNIST's
/// test split, or the calibration photos.
fn compare(
    opts: &ExportOptions,
    cfg: &Config,
    g: &Graph,
    q: &QGraph,
    pre: Preprocess,
) -> Result<Comparison, ExportError> {
    if cfg.model.name.is_face() {
        let mut list = zoo::s3fd::inference::face_list(&cfg.data, &cfg.data.val_split)?;
        list.images.truncate(opts.compare_limit);
        tracing::info!(images = list.images.len(), split = %cfg.data.val_split, "comparing int8 with float detections");
        return Ok(Comparison::Faces(compare_faces(g, q, &list, pre, cfg.model.name.is_qvga())?));
    }
    let samples: Vec<(Vec<f32>, Option<usize>)> = if cfg.data.kind == DataKind::FashionMnist {
        fashion_mnist(&cfg.data.root, "t10k", opts.compare_limit)?.into_iter().map(|(x, l)| (x, Some(l))).collect()
    } else {
        let shape = g.input_shape();
        image_paths(&opts.calibration)?
            .iter()
            .take(opts.compare_limit)
            .map(|p| Ok((photo_input(&data::image_io::load_rgb(p)?, shape, pre), None)))
            .collect::<Result<_, ExportError>>()?
    };
    if samples.is_empty() {
        return Err(ExportError::NoImages { path: opts.calibration.clone() });
    }
    tracing::info!(images = samples.len(), "comparing int8 with float logits");
    Ok(Comparison::Classes(compare_classes(g, q, &samples)))
}
