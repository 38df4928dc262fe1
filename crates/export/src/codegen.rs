//! C for a quantized model: `model_weights.c` (every weight, table and layer parameter as
//! `const`, so it stays in flash), `model.c` (the static arena and the layer calls with their
//! arena offsets), `model.h` (the interface), and a copy of the runtime in `runtime/`.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::ExportError;
use crate::int8_sim::Tables;
use crate::plan::{Plan, Plans};
use crate::quantize::{
    OutputStage, QAdd, QCell, QConv, QGraph, QInvertedResidual, QOp, QPointwise16, QRnnPool, Rescale,
};

/// The runtime sources, embedded so that an export is self-contained.
pub const RUNTIME: &[(&str, &str)] = &[
    ("include/rp_nn.h", include_str!("../../../c/include/rp_nn.h")),
    ("include/rp_fixed_point.h", include_str!("../../../c/include/rp_fixed_point.h")),
    ("include/rp_dsp.h", include_str!("../../../c/include/rp_dsp.h")),
    ("src/rp_convolve_s8.c", include_str!("../../../c/src/rp_convolve_s8.c")),
    ("src/rp_row_stage_s8.c", include_str!("../../../c/src/rp_row_stage_s8.c")),
    ("src/rp_depthwise_conv_s8.c", include_str!("../../../c/src/rp_depthwise_conv_s8.c")),
    ("src/rp_pointwise_conv_s8.c", include_str!("../../../c/src/rp_pointwise_conv_s8.c")),
    ("src/rp_add_s8.c", include_str!("../../../c/src/rp_add_s8.c")),
    ("src/rp_inverted_residual_s8.c", include_str!("../../../c/src/rp_inverted_residual_s8.c")),
    ("src/rp_fastgrnn_q12.c", include_str!("../../../c/src/rp_fastgrnn_q12.c")),
    ("src/rp_rnnpool_s8.c", include_str!("../../../c/src/rp_rnnpool_s8.c")),
    ("src/rp_rnnpool_inverted_residual_s8.c", include_str!("../../../c/src/rp_rnnpool_inverted_residual_s8.c")),
    ("src/rp_pointwise_conv_s16_s8.c", include_str!("../../../c/src/rp_pointwise_conv_s16_s8.c")),
    ("src/rp_l2norm_s8.c", include_str!("../../../c/src/rp_l2norm_s8.c")),
    ("src/rp_maxout_s8.c", include_str!("../../../c/src/rp_maxout_s8.c")),
    ("src/rp_avgpool_s8.c", include_str!("../../../c/src/rp_avgpool_s8.c")),
    ("src/rp_concat_s8.c", include_str!("../../../c/src/rp_concat_s8.c")),
    ("examples/run_model.c", include_str!("../../../c/examples/run_model.c")),
    ("mcu/startup_cortex_m4.c", include_str!("../../../c/mcu/startup_cortex_m4.c")),
    ("mcu/cortex_m4_256k.ld", include_str!("../../../c/mcu/cortex_m4_256k.ld")),
    ("mcu/mps2_an386_4m.ld", include_str!("../../../c/mcu/mps2_an386_4m.ld")),
    ("mcu/cortex_m4_sections.ld", include_str!("../../../c/mcu/cortex_m4_sections.ld")),
    ("Makefile", include_str!("../../../c/Makefile")),
];

/// The files of an export, by path relative to the output folder.
pub struct Sources {
    /// `(path relative to the output folder, text)`.
    pub files: Vec<(String, String)>,
}

fn array<T: std::fmt::Display>(out: &mut String, ty: &str, name: &str, values: &[T]) {
    let _ = write!(out, "static const {ty} {name}[{}] = {{", values.len().max(1));
    if values.is_empty() {
        out.push('0');
    }
    for (i, v) in values.iter().enumerate() {
        if i % 24 == 0 {
            out.push_str("\n ");
        }
        let _ = write!(out, " {v},");
    }
    out.push_str("\n};\n");
}

/// A C identifier for layer `i`.
fn ident(i: usize, name: &str) -> String {
    let clean: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("l{i}_{clean}")
}

/// `static const {ty} {id} = { .field = value, ... };` with designated initialisers, so that the
/// C compiler checks every field name against `rp_nn.h`.
fn def(out: &mut String, ty: &str, id: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
    let _ = writeln!(out, "static const {ty} {id} = {{");
    for (name, value) in fields {
        let _ = writeln!(out, "  .{name} = {value},");
    }
    out.push_str("};\n\n");
}

/// `&{id}_{name}` when present, else `NULL`.
fn optional(id: &str, name: &str, present: bool) -> String {
    if present { format!("&{id}_{name}") } else { "NULL".into() }
}

/// `{id}_b`, `{id}_m`, `{id}_s`: biases, multipliers, shifts.
fn output_stage(out: &mut String, id: &str, s: &OutputStage) {
    array(out, "int32_t", &format!("{id}_b"), &s.bias);
    array(out, "int32_t", &format!("{id}_m"), &s.mult);
    array(out, "int32_t", &format!("{id}_s"), &s.shift);
}

fn conv(out: &mut String, id: &str, c: &QConv, is: [usize; 3], os: [usize; 3]) {
    if c.depthwise {
        // The C reads depthwise weights as [k][k][c], four channels of a tap at a time.
        let taps = c.kernel * c.kernel;
        let hwc: Vec<i8> = (0..taps * c.cout).map(|i| c.weight[(i % c.cout) * taps + i / c.cout]).collect();
        array(out, "int8_t", &format!("{id}_w"), &hwc);
    } else {
        array(out, "int8_t", &format!("{id}_w"), &c.weight);
    }
    output_stage(out, id, &c.out);
    let (w, b, m, s) = (format!("{id}_w"), format!("{id}_b"), format!("{id}_m"), format!("{id}_s"));
    def(
        out,
        "rp_conv_s8_params",
        id,
        &[
            ("in_h", &is[0]),
            ("in_w", &is[1]),
            ("in_c", &is[2]),
            ("out_h", &os[0]),
            ("out_w", &os[1]),
            ("out_c", &os[2]),
            ("kernel", &c.kernel),
            ("stride", &c.stride),
            ("pad", &c.pad),
            ("in_offset", &c.in_offset),
            ("out_offset", &c.out.out_offset),
            ("act_min", &c.out.act_min),
            ("act_max", &c.out.act_max),
            ("weight", &w),
            ("bias", &b),
            ("mult", &m),
            ("shift", &s),
        ],
    );
}

fn add(out: &mut String, id: &str, a: &QAdd) {
    def(
        out,
        "rp_add_s8_params",
        id,
        &[
            ("in1_offset", &a.in1_offset),
            ("in2_offset", &a.in2_offset),
            ("in1_mult", &a.in1_mult),
            ("in1_shift", &a.in1_shift),
            ("in2_mult", &a.in2_mult),
            ("in2_shift", &a.in2_shift),
            ("out_mult", &a.out_mult),
            ("out_shift", &a.out_shift),
            ("out_offset", &a.out_offset),
        ],
    );
}

fn cell(out: &mut String, id: &str, c: &QCell) {
    array(out, "int16_t", &format!("{id}_w"), &c.w);
    array(out, "int16_t", &format!("{id}_u"), &c.u);
    array(out, "int32_t", &format!("{id}_bg"), &c.bias_gate);
    array(out, "int32_t", &format!("{id}_bh"), &c.bias_update);
    let (w, u, bg, bh) = (format!("{id}_w"), format!("{id}_u"), format!("{id}_bg"), format!("{id}_bh"));
    def(
        out,
        "rp_fastgrnn_q12_params",
        id,
        &[
            ("input", &c.input),
            ("hidden", &c.hidden),
            ("w", &w),
            ("u", &u),
            ("w_exp", &c.w_exp),
            ("u_exp", &c.u_exp),
            ("x_pre_shift", &c.x_pre_shift),
            ("x_mult", &c.x_mult),
            ("x_shift", &c.x_shift),
            ("bias_gate", &bg),
            ("bias_update", &bh),
            ("zeta", &c.zeta),
            ("nu", &c.nu),
        ],
    );
}

fn no_scratch(layer: &str) -> ExportError {
    ExportError::Quantization { layer: layer.into(), why: "no scratch planned".into() }
}

/// An inverted residual's parameters; `is`, `os` its input and output shapes.
fn block(out: &mut String, id: &str, b: &QInvertedResidual, is: [usize; 3], os: [usize; 3]) {
    let es = b.expand.as_ref().map_or(is, |e| [is[0], is[1], e.cout]);
    if let Some(e) = &b.expand {
        conv(out, &format!("{id}_expand"), e, is, es);
    }
    let ds = [os[0], os[1], b.depthwise.cout];
    conv(out, &format!("{id}_dw"), &b.depthwise, es, ds);
    conv(out, &format!("{id}_project"), &b.project, ds, os);
    if let Some(a) = &b.add {
        add(out, &format!("{id}_add"), a);
    }
    let (expand, add_) = (optional(id, "expand", b.expand.is_some()), optional(id, "add", b.add.is_some()));
    let (dw, project) = (format!("&{id}_dw"), format!("&{id}_project"));
    def(
        out,
        "rp_inverted_residual_s8_params",
        id,
        &[("expand", &expand), ("depthwise", &dw), ("project", &project), ("add", &add_)],
    );
}

fn pool(out: &mut String, id: &str, p: &QRnnPool, is: [usize; 3], os: [usize; 3]) {
    cell(out, &format!("{id}_rnn1"), &p.rnn1);
    cell(out, &format!("{id}_rnn2"), &p.rnn2);
    let (rnn1, rnn2) = (format!("&{id}_rnn1"), format!("&{id}_rnn2"));
    def(
        out,
        "rp_rnnpool_s8_params",
        id,
        &[
            ("in_h", &is[0]),
            ("in_w", &is[1]),
            ("in_c", &is[2]),
            ("out_h", &os[0]),
            ("out_w", &os[1]),
            ("patch", &p.patch),
            ("stride", &p.stride),
            ("replicate", &u8::from(p.replicate)),
            ("in_offset", &p.in_offset),
            ("out_mult", &p.out_mult),
            ("out_shift", &p.out_shift),
            ("out_offset", &p.out_offset),
            ("rnn1", &rnn1),
            ("rnn2", &rnn2),
            ("sigmoid_table", &"sigmoid_table_q15"),
            ("tanh_table", &"tanh_table_q15"),
        ],
    );
}

/// The fused RNNPool + inverted residual block: the pool, the int16 expansion that reads its
/// Q12 outputs, and the block.
fn rnnpool_block(
    out: &mut String,
    id: &str,
    p: &QRnnPool,
    e: &QPointwise16,
    b: &QInvertedResidual,
    shapes: [[usize; 3]; 2],
) {
    let [is, os] = shapes;
    let ps = p.out_shape(is);
    pool(out, &format!("{id}_pool"), p, is, ps);
    let eid = format!("{id}_expand16");
    array(out, "int16_t", &format!("{eid}_w"), &e.weight);
    output_stage(out, &eid, &e.out);
    let (w, bias, m, s) = (format!("{eid}_w"), format!("{eid}_b"), format!("{eid}_m"), format!("{eid}_s"));
    def(
        out,
        "rp_pointwise_s16_params",
        &eid,
        &[
            ("in_c", &e.cin),
            ("out_c", &e.cout),
            ("pre_shift", &e.pre_shift),
            ("out_offset", &e.out.out_offset),
            ("act_min", &e.out.act_min),
            ("act_max", &e.out.act_max),
            ("weight", &w),
            ("bias", &bias),
            ("mult", &m),
            ("shift", &s),
        ],
    );
    block(out, &format!("{id}_block"), b, [ps[0], ps[1], e.cout], os);
    let (pool_ref, expand_ref, block_ref) = (format!("&{id}_pool"), format!("&{eid}"), format!("&{id}_block"));
    def(
        out,
        "rp_rnnpool_inverted_residual_s8_params",
        id,
        &[("pool", &pool_ref), ("expand", &expand_ref), ("block", &block_ref)],
    );
}

fn concat(out: &mut String, id: &str, pixels: usize, channels: [usize; 2], rescale: [&Rescale; 2], out_offset: i32) {
    let r = |x: &Rescale| format!("{{ .in_offset = {}, .mult = {}, .shift = {} }}", x.in_offset, x.mult, x.shift);
    let (first, second) = (r(rescale[0]), r(rescale[1]));
    def(
        out,
        "rp_concat_s8_params",
        id,
        &[
            ("pixels", &pixels),
            ("channels1", &channels[0]),
            ("channels2", &channels[1]),
            ("first", &first),
            ("second", &second),
            ("out_offset", &out_offset),
        ],
    );
}

/// The C expression for the arena byte at `offset`.
fn at(offset: usize) -> String {
    format!("A + {offset}")
}

/// Layer `i`'s parameters, as `static const` structs and arrays.
fn layer_params(weights: &mut String, q: &QGraph, i: usize) {
    let l = &q.layers[i];
    let id = ident(i, &l.name);
    let (is, os) = (q.tensors[l.input], q.tensors[l.output]);
    let _ = writeln!(weights, "/* {}: {:?} -> {:?} */", l.name, is, os);
    match &l.op {
        QOp::Conv(c) => conv(weights, &id, c, is, os),
        QOp::InvertedResidual(b) => block(weights, &id, b, is, os),
        QOp::RnnPool(p) => pool(weights, &id, p, is, os),
        QOp::RnnPoolInvertedResidual { stem, pool: p, expand: e, block: b } => {
            let shapes = crate::plan::stage_shapes(q, i);
            for (j, c) in stem.iter().enumerate() {
                conv(weights, &format!("{id}_stem{j}"), c, shapes[j], shapes[j + 1]);
            }
            rnnpool_block(weights, &id, p, e, b, [shapes[stem.len()], os]);
        }
        QOp::L2Norm { in_offset, out_offset, gain } => {
            array(weights, "int32_t", &format!("{id}_gain"), gain);
            let (pixels, gain) = (is[0] * is[1], format!("{id}_gain"));
            let fields: [(&str, &dyn std::fmt::Display); 5] = [
                ("pixels", &pixels),
                ("channels", &is[2]),
                ("in_offset", in_offset),
                ("out_offset", out_offset),
                ("gain", &gain),
            ];
            def(weights, "rp_l2norm_s8_params", &id, &fields);
        }
        QOp::MaxOut => {}
        QOp::Concat { other, first, second, out_offset } => {
            concat(weights, &id, is[0] * is[1], [is[2], q.tensors[*other][2]], [first, second], *out_offset);
        }
        QOp::AvgPool { kernel, stride, in_offset, mult, shift, out_offset } => {
            let fields: [(&str, &dyn std::fmt::Display); 13] = [
                ("in_h", &is[0]),
                ("in_w", &is[1]),
                ("channels", &is[2]),
                ("out_h", &os[0]),
                ("out_w", &os[1]),
                ("kernel_h", &kernel[0]),
                ("kernel_w", &kernel[1]),
                ("stride_h", &stride[0]),
                ("stride_w", &stride[1]),
                ("in_offset", in_offset),
                ("mult", mult),
                ("shift", shift),
                ("out_offset", out_offset),
            ];
            def(weights, "rp_avgpool_s8_params", &id, &fields);
        }
    }
}

/// The stage array of a streamed layer (see `rp_row_stage_s8.c`), named `s`: stage 0 reads
/// the frame at `input`, or the caller's `read_row` into its ring; later stages are the stem
/// convolutions `{id}_stem{j}`. Returns the C and the bytes its rings take of the scratch.
fn stages(q: &QGraph, plan: &Plan, i: usize, id: &str, scratch: usize) -> (String, usize) {
    let rings = crate::plan::rings(q, i, plan.entry);
    let mut c = format!("rp_row_stage_s8 s[{}] = {{\n", rings.len());
    let mut at_ring = scratch;
    for (j, r) in rings.iter().enumerate() {
        let source = if j > 0 {
            format!(".conv = &{id}_stem{}, .ring = {}, .depth = {}", j - 1, at(at_ring), r.depth)
        } else if r.depth == 0 {
            format!(".frame = {}", at(plan.tensor_offset(q.layers[i].input)))
        } else {
            format!(".read = read_row, .ctx = ctx, .ring = {}, .depth = {}", at(at_ring), r.depth)
        };
        let _ = writeln!(c, "      {{{source}, .row_bytes = {}}},", r.row_bytes);
        at_ring += crate::plan::rings_bytes(&[*r]);
    }
    c.push_str("    };\n");
    (c, crate::plan::rings_bytes(&rings))
}

/// Layer `i`'s call under `plan`.
fn layer_call(q: &QGraph, plan: &Plan, i: usize) -> Result<String, ExportError> {
    let l = &q.layers[i];
    let id = ident(i, &l.name);
    let is = q.tensors[l.input];
    let (inp, outp) = (at(plan.tensor_offset(l.input)), at(plan.tensor_offset(l.output)));
    let scratch_at = plan.scratch_offset(i).ok_or_else(|| no_scratch(&l.name));
    let scratch = || scratch_at.as_ref().map(|o| at(*o)).map_err(|_| no_scratch(&l.name));
    Ok(match &l.op {
        QOp::Conv(_) if !plan.stores(l.input) => {
            let (s, _) = stages(q, plan, i, &id, scratch_at?);
            format!("{{\n    {s}    rp_convolve_rows_s8(&{id}, s, {outp});\n  }}")
        }
        QOp::Conv(c) if c.depthwise => format!("rp_depthwise_conv_s8(&{id}, {inp}, {outp});"),
        QOp::Conv(c) if c.kernel == 1 && c.stride == 1 && c.pad == 0 => {
            format!("rp_pointwise_conv_s8(&{id}, {inp}, {}, {outp});", is[0] * is[1])
        }
        QOp::Conv(_) => format!("rp_convolve_s8(&{id}, {inp}, {outp});"),
        QOp::InvertedResidual(_) => format!("rp_inverted_residual_s8(&{id}, {inp}, {outp}, {});", scratch()?),
        QOp::RnnPool(_) => format!("rp_rnnpool_s8(&{id}, {inp}, {outp}, (int16_t *)(void *)({}));", scratch()?),
        QOp::RnnPoolInvertedResidual { stem, .. } => {
            let start = scratch_at?;
            let (s, rings) = stages(q, plan, i, &id, start);
            let call =
                format!("rp_rnnpool_inverted_residual_s8(&{id}, s, {}, {outp}, {});", stem.len(), at(start + rings));
            format!("{{\n    {s}    {call}\n  }}")
        }
        QOp::L2Norm { .. } => format!("rp_l2norm_s8(&{id}, {inp}, {outp});"),
        QOp::MaxOut => format!("rp_maxout_s8({inp}, {}, {outp});", is[0] * is[1]),
        QOp::Concat { other, .. } => format!("rp_concat_s8(&{id}, {inp}, {}, {outp});", at(plan.tensor_offset(*other))),
        QOp::AvgPool { .. } => format!("rp_avgpool_s8(&{id}, {inp}, {outp});"),
    })
}

/// Every layer's call under `plan`, one per line.
fn calls(q: &QGraph, plan: &Plan) -> Result<String, ExportError> {
    let mut calls = String::new();
    for i in 0..q.layers.len() {
        let _ = writeln!(calls, "  {} /* {} */", layer_call(q, plan, i)?, q.layers[i].name);
    }
    Ok(calls)
}

/// The arena, the input and output accessors, `model_run()` and `model_run_rows()` with their
/// calls. It lives in the weights file so that the parameter structs can stay static.
fn run_section(q: &QGraph, plans: &Plans) -> Result<String, ExportError> {
    let mut run = String::new();
    let (frame, rows) = (&plans.frame, &plans.rows);
    let _ = writeln!(
        run,
        "/* The static arena, every buffer placed by the exporter (see report.json): {} bytes for\n   model_run(), {} bytes for model_run_rows() alone (MODEL_ROWS_ONLY). */",
        frame.arena_bytes, rows.arena_bytes
    );
    let _ = writeln!(run, "static union {{\n  int16_t h[(MODEL_ARENA_BYTES + 1) / 2];\n  int32_t align;\n}} arena;\n");
    run.push_str("#define A ((int8_t *)arena.h)\n\n");
    let offsets = |p: &Plan| -> Vec<usize> { q.outputs.iter().map(|(t, _)| p.tensor_offset(*t)).collect() };
    array(&mut run, "uint32_t", "rows_output_offsets", &offsets(rows));
    run.push_str("static const uint32_t *output_offsets = rows_output_offsets;\n");
    let sizes: Vec<usize> = q.outputs.iter().map(|(t, _)| q.tensors[*t].iter().product()).collect();
    let _ = writeln!(run, "const uint32_t model_output_bytes[MODEL_NUM_OUTPUTS] = {{{}}};", join(&sizes));
    let scales: Vec<String> = q.outputs.iter().map(|(t, _)| format!("{:e}f", q.params[*t].scale)).collect();
    let zeros: Vec<i32> = q.outputs.iter().map(|(t, _)| q.params[*t].zero).collect();
    let _ = writeln!(run, "const float model_output_scale[MODEL_NUM_OUTPUTS] = {{{}}};", scales.join(", "));
    let _ = writeln!(run, "const int32_t model_output_zero_point[MODEL_NUM_OUTPUTS] = {{{}}};\n", join(&zeros));
    run.push_str("const int8_t *model_output(int32_t i) { return A + output_offsets[i]; }\n\n");
    run.push_str("void model_run_rows(void (*read_row)(void *ctx, int32_t y, int8_t *row), void *ctx) {\n");
    if rows.stores(q.input) {
        let [_, w, c] = q.input_shape();
        let _ = writeln!(
            run,
            "  /* The first layer needs the whole frame. */\n  for (int32_t y = 0; y < MODEL_INPUT_H; y++) read_row(ctx, y, {} + y * {});",
            at(rows.tensor_offset(q.input)),
            w * c
        );
    }
    run.push_str(&calls(q, rows)?);
    run.push_str("  output_offsets = rows_output_offsets;\n}\n\n#ifndef MODEL_ROWS_ONLY\n");
    array(&mut run, "uint32_t", "frame_output_offsets", &offsets(frame));
    let _ = writeln!(run, "\nint8_t *model_input(void) {{ return {}; }}\n", at(frame.tensor_offset(q.input)));
    run.push_str("void model_run(void) {\n");
    run.push_str(&calls(q, frame)?);
    run.push_str("  output_offsets = frame_output_offsets;\n}\n#endif\n");
    Ok(run)
}

/// `model.h`: sizes, quantization of the input and outputs, and the interface.
fn header(q: &QGraph, plans: &Plans) -> String {
    let [h, w, c] = q.input_shape();
    let inq = q.params[q.input];
    let output_bytes: usize = q.outputs.iter().map(|(t, _)| q.tensors[*t].iter().product::<usize>()).sum();
    let mut header = String::new();
    let guard = "RNNPOOL_MODEL_H";
    let _ = writeln!(
        header,
        "/* Generated by rnnpool-rs export for `{}`. */\n#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n",
        q.model
    );
    let (frame, rows) = (plans.frame.arena_bytes, plans.rows.arena_bytes);
    let _ = writeln!(header, "/* Peak RAM of model_run() (the frame in the arena) and of model_run_rows() alone. */");
    let _ = writeln!(header, "#define MODEL_ARENA_FRAME_BYTES {frame}\n#define MODEL_ARENA_ROWS_BYTES {rows}");
    let _ = writeln!(
        header,
        "#ifdef MODEL_ROWS_ONLY\n#define MODEL_ARENA_BYTES MODEL_ARENA_ROWS_BYTES\n#else\n#define MODEL_ARENA_BYTES {}\n#endif",
        if frame >= rows { "MODEL_ARENA_FRAME_BYTES" } else { "MODEL_ARENA_ROWS_BYTES" }
    );
    let _ = writeln!(header, "#define MODEL_INPUT_H {h}\n#define MODEL_INPUT_W {w}\n#define MODEL_INPUT_C {c}");
    let _ = writeln!(header, "#define MODEL_INPUT_BYTES {}", h * w * c);
    let _ = writeln!(
        header,
        "/* input int8 = round(x / MODEL_INPUT_SCALE) + MODEL_INPUT_ZERO_POINT, x normalised as in training */"
    );
    let _ = writeln!(header, "#define MODEL_INPUT_SCALE {:e}f\n#define MODEL_INPUT_ZERO_POINT {}", inq.scale, inq.zero);
    let _ = writeln!(header, "#define MODEL_NUM_OUTPUTS {}", q.outputs.len());
    let _ = writeln!(header, "#define MODEL_OUTPUT_BYTES {output_bytes}\n");
    header.push_str("#ifndef MODEL_ROWS_ONLY\n/* Where to write the quantized HWC input before model_run(), which overwrites it. */\nint8_t *model_input(void);\nvoid model_run(void);\n#endif\n");
    header.push_str("/* Runs the model on rows that read_row(ctx, y, row) writes (MODEL_INPUT_W * MODEL_INPUT_C\n   quantized bytes), asked for once each, y increasing: a camera's rows need no frame buffer. */\n");
    header.push_str("void model_run_rows(void (*read_row)(void *ctx, int32_t y, int8_t *row), void *ctx);\n");
    header.push_str("/* Output i (HWC int8; real = scale * (q - zero point)), valid until the next run. */\n");
    header.push_str(
        "const int8_t *model_output(int32_t i);\nextern const uint32_t model_output_bytes[MODEL_NUM_OUTPUTS];\n",
    );
    header.push_str("extern const float model_output_scale[MODEL_NUM_OUTPUTS];\nextern const int32_t model_output_zero_point[MODEL_NUM_OUTPUTS];\n\n#endif\n");
    header
}

/// The C of `q` placed by `plan`: `model.h`, `model_weights.c` and a copy of the runtime.
pub fn generate(q: &QGraph, plans: &Plans) -> Result<Sources, ExportError> {
    let mut weights = String::new();
    weights.push_str("/* Generated by rnnpool-rs export: int8 weights and layer parameters (all const: flash). */\n");
    weights.push_str("#include <stddef.h>\n#include <stdint.h>\n\n#include \"model.h\"\n#include \"rp_nn.h\"\n\n");
    let uses_rnnpool = q.layers.iter().any(|l| matches!(l.op, QOp::RnnPool(_) | QOp::RnnPoolInvertedResidual { .. }));
    if uses_rnnpool {
        let tables = Tables::default();
        array(&mut weights, "int16_t", "sigmoid_table_q15", &tables.sigmoid);
        array(&mut weights, "int16_t", "tanh_table_q15", &tables.tanh);
        weights.push('\n');
    }
    for i in 0..q.layers.len() {
        layer_params(&mut weights, q, i);
    }
    weights.push_str(&run_section(q, plans)?);
    let mut files = vec![("model.h".to_string(), header(q, plans)), ("model_weights.c".to_string(), weights)];
    files.extend(RUNTIME.iter().map(|(p, s)| (format!("runtime/{p}"), s.to_string())));
    Ok(Sources { files })
}

fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

impl Sources {
    /// Writes every file under `dir`, each through a temporary file and a rename.
    pub fn write(&self, dir: &Path) -> Result<(), ExportError> {
        for (rel, text) in &self.files {
            write_atomic(&dir.join(rel), text.as_bytes())?;
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` through `<path>.tmp` and a rename, creating the folder; a failed
/// write (a full disk) removes the temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(ExportError::io(parent))?;
    }
    let tmp = zoo::checkpoint::tmp_path(path);
    if let Err(e) = std::fs::write(&tmp, bytes) {
        std::fs::remove_file(&tmp).ok();
        return Err(ExportError::io(&tmp)(e));
    }
    std::fs::rename(&tmp, path).map_err(ExportError::io(path))
}

/// Removes the `.tmp` files a killed export left under `dir`, saying which.
pub fn remove_leftovers(dir: &Path) -> Result<(), ExportError> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            remove_leftovers(&p)?;
        } else if p.extension().is_some_and(|e| e == "tmp") {
            std::fs::remove_file(&p).map_err(ExportError::io(&p))?;
            tracing::warn!(path = %p.display(), "removed a temporary file left by a killed export");
        }
    }
    Ok(())
}
