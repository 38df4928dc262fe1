//! What an export costs: per layer shapes, MACs and arena offsets; totals of arena (peak RAM),
//! flash for the weights and MACs. Written as `report.json` and printed as a table.

use std::fmt::Write as _;

use serde::Serialize;

use crate::graph::{OutputKind, Shape};
use crate::int8_sim::Tables;
use crate::plan::{Buffer, Entry, Plans};
use crate::quantize::{QCell, QConv, QGraph, QInvertedResidual, QOp, QParams, QRnnPool};

/// One layer of the report.
#[derive(Debug, Serialize)]
pub struct LayerRow {
    /// The layer's name.
    pub name: String,
    /// Its op.
    pub op: &'static str,
    /// Its input shape.
    pub input: Shape,
    /// Its output shape.
    pub output: Shape,
    /// Its multiply-accumulates.
    pub macs: u64,
    /// Arena offset of its input.
    pub input_offset: usize,
    /// Arena offset of its output.
    pub output_offset: usize,
    /// `(offset, bytes)` of the layer's scratch in the arena.
    pub scratch: Option<(usize, usize)>,
    /// Its weights and parameters in flash.
    pub weight_bytes: usize,
}

/// One output of the model.
#[derive(Debug, Serialize)]
pub struct OutputRow {
    /// What it holds.
    pub kind: OutputKind,
    /// Its shape.
    pub shape: Shape,
    /// Its arena offset.
    pub offset: usize,
    /// Its quantization.
    pub quant: QParams,
}

/// What `report.json` holds: per layer and in total, RAM, flash and MACs.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The model's name.
    pub model: String,
    /// The input's `[h, w, c]`.
    pub input: Shape,
    /// The input's quantization.
    pub input_quant: QParams,
    /// Every layer.
    pub layers: Vec<LayerRow>,
    /// Every output.
    pub outputs: Vec<OutputRow>,
    /// Every buffer of the arena, for `model_run()`.
    pub buffers: Vec<Buffer>,
    /// Every buffer of the arena, for `model_run_rows()`.
    pub rows_buffers: Vec<Buffer>,
    /// Peak RAM of the activations with `model_run()`: the static arena, frame included.
    pub arena_bytes: usize,
    /// Peak RAM with `model_run_rows()` alone (`MODEL_ROWS_ONLY`): the frame is never stored
    /// when the first layer takes rows.
    pub arena_rows_bytes: usize,
    /// Flash for weights, biases, requantisation constants, tables and layer parameters
    /// (code not included: see the sizes `arm-none-eabi-size` prints).
    pub weight_flash_bytes: usize,
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// Measured on QEMU's Cortex-M4 (`export --qemu`), else `null`.
    pub mcu: Option<McuFigures>,
}

/// The exported C run on QEMU's mps2-an386 (a Cortex-M4, `-icount shift=0`) on the example
/// input, with the DSP kernels.
#[derive(Clone, Debug, Serialize)]
pub struct McuFigures {
    /// Instructions for one image with `model_run()`.
    pub instructions_per_image: u64,
    /// The same with `model_run_rows()` (row reads included).
    pub instructions_per_image_rows: u64,
    /// `instructions_per_image` / MACs.
    pub instructions_per_mac: f64,
    /// Flash of the example program (text + data, unused code left out by the linker).
    pub flash_bytes: u64,
}

fn conv_bytes(c: &QConv) -> usize {
    c.weight.len() + 12 * c.out.bias.len() + 40
}

fn cell_bytes(c: &QCell) -> usize {
    2 * (c.w.len() + c.u.len()) + 4 * (c.bias_gate.len() + c.bias_update.len()) + 48
}

fn block_bytes(b: &QInvertedResidual) -> usize {
    b.expand.as_ref().map_or(0, conv_bytes)
        + conv_bytes(&b.depthwise)
        + conv_bytes(&b.project)
        + b.add.as_ref().map_or(0, |_| 36)
        + 16
}

fn pool_bytes(p: &QRnnPool) -> usize {
    cell_bytes(&p.rnn1) + cell_bytes(&p.rnn2) + 48
}

fn op_name(op: &QOp) -> &'static str {
    match op {
        QOp::Conv(c) if c.depthwise => "depthwise_conv",
        QOp::Conv(c) if c.kernel == 1 => "pointwise_conv",
        QOp::Conv(_) => "conv",
        QOp::InvertedResidual(_) => "inverted_residual",
        QOp::RnnPool(_) => "rnnpool",
        QOp::RnnPoolInvertedResidual { stem, .. } if !stem.is_empty() => "stem+rnnpool+inv_residual",
        QOp::RnnPoolInvertedResidual { .. } => "rnnpool+inv_residual",
        QOp::L2Norm { .. } => "l2norm",
        QOp::MaxOut => "maxout",
        QOp::AvgPool { .. } => "avgpool",
        QOp::Concat { .. } => "concat",
    }
}

fn weight_bytes(op: &QOp) -> usize {
    match op {
        QOp::Conv(c) => conv_bytes(c),
        QOp::InvertedResidual(b) => block_bytes(b),
        QOp::RnnPool(p) => pool_bytes(p),
        QOp::RnnPoolInvertedResidual { stem, pool, expand: e, block } => {
            stem.iter().map(conv_bytes).sum::<usize>()
                + pool_bytes(pool)
                + 2 * e.weight.len()
                + 12 * e.cout
                + 40
                + block_bytes(block)
                + 8
        }
        QOp::L2Norm { gain, .. } => 4 * gain.len() + 16,
        QOp::MaxOut => 0,
        QOp::AvgPool { .. } => 36,
        QOp::Concat { .. } => 40,
    }
}

/// The report of `q` placed by `plans` (per layer: `model_run()`'s placement).
pub fn report(q: &QGraph, plans: &Plans) -> Report {
    let plan = &plans.frame;
    let layers: Vec<LayerRow> = q
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| LayerRow {
            name: l.name.clone(),
            op: op_name(&l.op),
            input: q.tensors[l.input],
            output: q.tensors[l.output],
            macs: l.macs,
            input_offset: plan.tensor_offset(l.input),
            output_offset: plan.tensor_offset(l.output),
            scratch: plan.scratch_offset(i).map(|o| (o, crate::plan::scratch_bytes(q, i, Entry::Frame))),
            weight_bytes: weight_bytes(&l.op),
        })
        .collect();
    let tables = if q.layers.iter().any(|l| matches!(l.op, QOp::RnnPool(_) | QOp::RnnPoolInvertedResidual { .. })) {
        let t = Tables::default();
        2 * (t.sigmoid.len() + t.tanh.len())
    } else {
        0
    };
    Report {
        model: q.model.clone(),
        input: q.input_shape(),
        input_quant: q.params[q.input],
        weight_flash_bytes: layers.iter().map(|l| l.weight_bytes).sum::<usize>() + tables,
        macs: layers.iter().map(|l| l.macs).sum(),
        layers,
        outputs: q
            .outputs
            .iter()
            .map(|(t, kind)| OutputRow {
                kind: *kind,
                shape: q.tensors[*t],
                offset: plan.tensor_offset(*t),
                quant: q.params[*t],
            })
            .collect(),
        buffers: plan.buffers.clone(),
        rows_buffers: plans.rows.buffers.clone(),
        arena_bytes: plan.arena_bytes,
        arena_rows_bytes: plans.rows.arena_bytes,
        mcu: None,
    }
}

fn shape(s: Shape) -> String {
    format!("{}x{}x{}", s[0], s[1], s[2])
}

impl Report {
    /// The report as a table for the terminal.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{:<22} {:<26} {:>12} {:>12} {:>12} {:>8} {:>8} {:>15} {:>8}",
            "layer", "op", "input", "output", "MACs", "in@", "out@", "scratch@+bytes", "flash"
        );
        for l in &self.layers {
            let scratch = l.scratch.map_or("-".to_string(), |(o, b)| format!("{o}+{b}"));
            let _ = writeln!(
                t,
                "{:<22} {:<26} {:>12} {:>12} {:>12} {:>8} {:>8} {:>15} {:>8}",
                l.name,
                l.op,
                shape(l.input),
                shape(l.output),
                l.macs,
                l.input_offset,
                l.output_offset,
                scratch,
                l.weight_bytes
            );
        }
        let _ = writeln!(
            t,
            "total: arena (peak RAM) {} B with model_run(), {} B with model_run_rows(); weights in flash {} B, {} MACs",
            self.arena_bytes, self.arena_rows_bytes, self.weight_flash_bytes, self.macs
        );
        if let Some(m) = &self.mcu {
            let _ = writeln!(
                t,
                "on QEMU's Cortex-M4 (DSP kernels): {} instructions per image ({} with model_run_rows()), {:.2} per MAC; flash {} B",
                m.instructions_per_image, m.instructions_per_image_rows, m.instructions_per_mac, m.flash_bytes
            );
        }
        t
    }
}
