//! C for a quantized model: `model_weights.c` (every weight, table and layer parameter as
//! `const`, so it stays in flash), `model.c` (the static arena and the layer calls with their
//! arena offsets), `model.h` (the interface), and a copy of the runtime in `runtime/`.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::ExportError;
use crate::int8_sim::Tables;
use crate::plan::Plan;
use crate::quantize::{
    OutputStage, QAdd, QCell, QConv, QGraph, QInvertedResidual, QOp, QPointwise16, QRnnPool, Rescale,
};

/// The runtime sources, embedded so that an export is self-contained.
pub const RUNTIME: &[(&str, &str)] = &[
    ("include/rp_nn.h", include_str!("../../../c/include/rp_nn.h")),
    ("include/rp_fixed_point.h", include_str!("../../../c/include/rp_fixed_point.h")),
    ("src/rp_convolve_s8.c", include_str!("../../../c/src/rp_convolve_s8.c")),
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
    array(out, "int8_t", &format!("{id}_w"), &c.weight);
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

/// One layer: its parameters into `weights`, its call into `calls`.
fn layer(weights: &mut String, calls: &mut String, q: &QGraph, plan: &Plan, i: usize) -> Result<(), ExportError> {
    let l = &q.layers[i];
    let id = ident(i, &l.name);
    let (is, os) = (q.tensors[l.input], q.tensors[l.output]);
    let (inp, outp) = (at(plan.tensor_offset(l.input)), at(plan.tensor_offset(l.output)));
    let scratch = || plan.scratch_offset(i).map(at).ok_or_else(|| no_scratch(&l.name));
    let _ = writeln!(weights, "/* {}: {:?} -> {:?} */", l.name, is, os);
    let call = match &l.op {
        QOp::Conv(c) => {
            conv(weights, &id, c, is, os);
            if c.depthwise {
                format!("rp_depthwise_conv_s8(&{id}, {inp}, {outp});")
            } else if c.kernel == 1 && c.stride == 1 && c.pad == 0 {
                format!("rp_pointwise_conv_s8(&{id}, {inp}, {}, {outp});", is[0] * is[1])
            } else {
                format!("rp_convolve_s8(&{id}, {inp}, {outp});")
            }
        }
        QOp::InvertedResidual(b) => {
            block(weights, &id, b, is, os);
            format!("rp_inverted_residual_s8(&{id}, {inp}, {outp}, {});", scratch()?)
        }
        QOp::RnnPool(p) => {
            pool(weights, &id, p, is, os);
            format!("rp_rnnpool_s8(&{id}, {inp}, {outp}, (int16_t *)(void *)({}));", scratch()?)
        }
        QOp::RnnPoolInvertedResidual { pool: p, expand: e, block: b } => {
            rnnpool_block(weights, &id, p, e, b, [is, os]);
            format!("rp_rnnpool_inverted_residual_s8(&{id}, {inp}, {outp}, {});", scratch()?)
        }
        QOp::L2Norm { in_offset, out_offset, gain } => {
            array(weights, "int32_t", &format!("{id}_gain"), gain);
            let (pixels, gain) = (is[0] * is[1], format!("{id}_gain"));
            def(
                weights,
                "rp_l2norm_s8_params",
                &id,
                &[
                    ("pixels", &pixels),
                    ("channels", &is[2]),
                    ("in_offset", in_offset),
                    ("out_offset", out_offset),
                    ("gain", &gain),
                ],
            );
            format!("rp_l2norm_s8(&{id}, {inp}, {outp});")
        }
        QOp::MaxOut => format!("rp_maxout_s8({inp}, {}, {outp});", is[0] * is[1]),
        QOp::Concat { other, first, second, out_offset } => {
            concat(weights, &id, is[0] * is[1], [is[2], q.tensors[*other][2]], [first, second], *out_offset);
            format!("rp_concat_s8(&{id}, {inp}, {}, {outp});", at(plan.tensor_offset(*other)))
        }
        QOp::AvgPool { kernel, stride, in_offset, mult, shift, out_offset } => {
            def(
                weights,
                "rp_avgpool_s8_params",
                &id,
                &[
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
                ],
            );
            format!("rp_avgpool_s8(&{id}, {inp}, {outp});")
        }
    };
    let _ = writeln!(calls, "  {call} /* {} */", l.name);
    Ok(())
}

/// The arena, the input and output accessors and `model_run()` with its calls. It lives in the
/// weights file so that the parameter structs can stay static.
fn run_section(q: &QGraph, plan: &Plan, calls: &str) -> String {
    let mut run = String::new();
    let _ = writeln!(
        run,
        "/* The static arena: {} bytes, every buffer placed by the exporter (see report.json). */",
        plan.arena_bytes
    );
    let _ = writeln!(run, "static union {{\n  int16_t h[(MODEL_ARENA_BYTES + 1) / 2];\n  int32_t align;\n}} arena;\n");
    run.push_str("#define A ((int8_t *)arena.h)\n\n");
    let _ = writeln!(run, "int8_t *model_input(void) {{ return {}; }}\n", at(plan.tensor_offset(q.input)));
    let offsets: Vec<usize> = q.outputs.iter().map(|(t, _)| plan.tensor_offset(*t)).collect();
    let sizes: Vec<usize> = q.outputs.iter().map(|(t, _)| q.tensors[*t].iter().product()).collect();
    array(&mut run, "uint32_t", "output_offsets", &offsets);
    let _ = writeln!(run, "const uint32_t model_output_bytes[MODEL_NUM_OUTPUTS] = {{{}}};", join(&sizes));
    let scales: Vec<String> = q.outputs.iter().map(|(t, _)| format!("{:e}f", q.params[*t].scale)).collect();
    let zeros: Vec<i32> = q.outputs.iter().map(|(t, _)| q.params[*t].zero).collect();
    let _ = writeln!(run, "const float model_output_scale[MODEL_NUM_OUTPUTS] = {{{}}};", scales.join(", "));
    let _ = writeln!(run, "const int32_t model_output_zero_point[MODEL_NUM_OUTPUTS] = {{{}}};\n", join(&zeros));
    run.push_str("const int8_t *model_output(int32_t i) { return A + output_offsets[i]; }\n\n");
    run.push_str("void model_run(void) {\n");
    run.push_str(calls);
    run.push_str("}\n");
    run
}

/// `model.h`: sizes, quantization of the input and outputs, and the interface.
fn header(q: &QGraph, plan: &Plan) -> String {
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
    let _ = writeln!(header, "#define MODEL_ARENA_BYTES {}", plan.arena_bytes);
    let _ = writeln!(header, "#define MODEL_INPUT_H {h}\n#define MODEL_INPUT_W {w}\n#define MODEL_INPUT_C {c}");
    let _ = writeln!(header, "#define MODEL_INPUT_BYTES {}", h * w * c);
    let _ = writeln!(
        header,
        "/* input int8 = round(x / MODEL_INPUT_SCALE) + MODEL_INPUT_ZERO_POINT, x normalised as in training */"
    );
    let _ = writeln!(header, "#define MODEL_INPUT_SCALE {:e}f\n#define MODEL_INPUT_ZERO_POINT {}", inq.scale, inq.zero);
    let _ = writeln!(header, "#define MODEL_NUM_OUTPUTS {}", q.outputs.len());
    let _ = writeln!(header, "#define MODEL_OUTPUT_BYTES {output_bytes}\n");
    header.push_str("/* Where to write the quantized HWC input before model_run(). */\nint8_t *model_input(void);\n");
    header.push_str("void model_run(void);\n/* Output i (HWC int8; real = scale * (q - zero point)), valid until the next model_run(). */\n");
    header.push_str(
        "const int8_t *model_output(int32_t i);\nextern const uint32_t model_output_bytes[MODEL_NUM_OUTPUTS];\n",
    );
    header.push_str("extern const float model_output_scale[MODEL_NUM_OUTPUTS];\nextern const int32_t model_output_zero_point[MODEL_NUM_OUTPUTS];\n\n#endif\n");
    header
}

/// The C of `q` placed by `plan`: `model.h`, `model_weights.c` and a copy of the runtime.
pub fn generate(q: &QGraph, plan: &Plan) -> Result<Sources, ExportError> {
    let mut weights = String::new();
    let mut calls = String::new();
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
        layer(&mut weights, &mut calls, q, plan, i)?;
    }
    weights.push_str(&run_section(q, plan, &calls));
    let mut files = vec![("model.h".to_string(), header(q, plan)), ("model_weights.c".to_string(), weights)];
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
