//! Post-training quantization of a [`Graph`] into the integer model the C runtime runs.
//!
//! - Weights: symmetric int8 per output channel (`scale = max|w| / 127`), biases int32 at
//!   `input_scale * weight_scale`; BatchNorm is already folded in.
//! - Activations: asymmetric int8 per tensor from the min/max seen on the calibration images
//!   (the range always holds 0 so that zero padding is exact; ReLU6 outputs clip at 6).
//!   Min/max rather than a percentile: a detector's rare strong responses are what it is for.
//! - Requantisation: TFLite's fixed-point multiplier and shift per output channel.
//! - RNNPool: int8 input read in place, int16 weights with power-of-two scales, hidden states
//!   in Q12 int16 (range +-8, resolution 1/4096), sigmoid and tanh as 513-entry Q15 tables with
//!   linear interpolation (see [`crate::fixed`]), the 4 h2 outputs requantised to int8.

use crate::error::ExportError;
use crate::fixed::{Q12_ONE, quantize_multiplier, requantize, sat32};
use crate::float_sim::Ranges;
use crate::graph::{Activation, CellWeights, ConvWeights, Graph, Op, OutputKind, Shape, TensorId};

/// `real = scale * (q - zero)`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct QParams {
    /// Real value of one step.
    pub scale: f32,
    /// The int8 value of real 0.
    pub zero: i32,
}

impl QParams {
    /// Covers `[lo, hi]` (widened to hold 0) with the 256 int8 levels.
    pub fn from_range([lo, hi]: [f32; 2]) -> Self {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        // A map that was always zero in calibration (dead channels, an untrained model) gets
        // a unit range rather than a scale that would overflow the next layer's biases.
        let scale = if hi - lo > 1e-6 { (hi - lo) / 255.0 } else { 1.0 / 255.0 };
        let zero = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32;
        Self { scale, zero }
    }

    /// The nearest int8 of `x`, saturated.
    pub fn quantize(&self, x: f32) -> i8 {
        ((x / self.scale).round() + self.zero as f32).clamp(-128.0, 127.0) as i8
    }

    /// The real value of `q`.
    pub fn dequantize(&self, q: i8) -> f32 {
        self.scale * (q as i32 - self.zero) as f32
    }
}

/// An int8 convolution (dense, depthwise or 1x1) with its output stage.
#[derive(Clone, Debug)]
pub struct QConv {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Square kernel side.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
    /// One filter per channel (`cin == cout`).
    pub depthwise: bool,
    /// Added to each input value: minus the input zero point.
    pub in_offset: i32,
    /// `[cout][kh][kw][cin]`, or `[c][kh][kw]` when depthwise.
    pub weight: Vec<i8>,
    /// Bias and requantisation.
    pub out: OutputStage,
}

impl QConv {
    /// The output shape for an input of `[h, w, _]`.
    pub fn out_shape(&self, [h, w, _]: Shape) -> Shape {
        let n = |d: usize| (d + 2 * self.pad - self.kernel) / self.stride + 1;
        [n(h), n(w), self.cout]
    }
}

/// From a channel's int32 sum to its int8 output, as TFLite and CMSIS-NN do:
/// `clamp(requantize(sum + bias, mult, shift) + out_offset, act_min, act_max)`.
#[derive(Clone, Debug)]
pub struct OutputStage {
    /// Per channel, at the sum's scale.
    pub bias: Vec<i32>,
    /// Per channel: the fixed-point multiplier of `sum_scale / out_scale`.
    pub mult: Vec<i32>,
    /// Per channel: its shift.
    pub shift: Vec<i32>,
    /// The output zero point.
    pub out_offset: i32,
    /// The lowest output (ReLU: the zero point).
    pub act_min: i32,
    /// The highest output (ReLU6: the level of 6).
    pub act_max: i32,
}

impl OutputStage {
    /// Per channel, from the sum's real scale `acc_scale[o]`; the bias must fit 30 bits.
    fn new(name: &str, bias: &[f32], acc_scale: &[f64], act: Activation, qout: QParams) -> Result<Self, ExportError> {
        let mut s = Self {
            bias: Vec::new(),
            mult: Vec::new(),
            shift: Vec::new(),
            out_offset: qout.zero,
            act_min: -128,
            act_max: 127,
        };
        for (o, (&b, &scale)) in bias.iter().zip(acc_scale).enumerate() {
            let q = (b as f64 / scale).round();
            if q.abs() >= (1u64 << 30) as f64 {
                return Err(ExportError::Quantization {
                    layer: name.into(),
                    why: format!("bias of channel {o} ({b}) does not fit int32 at scale {scale:e}"),
                });
            }
            s.bias.push(q as i32);
            let (m, sh) = quantize_multiplier(scale / qout.scale as f64);
            s.mult.push(m);
            s.shift.push(sh);
        }
        // ReLU clamps at the level of 0, ReLU6 also at that of 6.
        if act != Activation::None {
            s.act_min = qout.zero.max(-128);
        }
        if act == Activation::Relu6 {
            s.act_max = (qout.zero + (6.0 / qout.scale).round() as i32).min(127);
        }
        Ok(s)
    }

    /// Channel `o`'s output for the sum `acc` (without the bias).
    pub fn apply(&self, o: usize, acc: i64) -> i8 {
        let v = sat32(acc + self.bias[o] as i64);
        (requantize(v, self.mult[o], self.shift[o]) + self.out_offset).clamp(self.act_min, self.act_max) as i8
    }
}

/// A 1x1 convolution from Q12 int16 inputs with int16 weights (per output channel
/// `scale = max|w| / 32767`): `acc = sum x w` in 64 bits, shifted right by `pre_shift`, plus
/// the bias, requantised per channel.
#[derive(Clone, Debug)]
pub struct QPointwise16 {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Right shift of the 64-bit sum before the bias.
    pub pre_shift: i32,
    /// `[cout][cin]`.
    pub weight: Vec<i16>,
    /// Bias and requantisation.
    pub out: OutputStage,
}

/// TFLite's int8 addition of two tensors with their own scales.
#[derive(Clone, Debug)]
pub struct QAdd {
    /// Minus the first input's zero point.
    pub in1_offset: i32,
    /// Minus the second input's zero point.
    pub in2_offset: i32,
    /// The first input's multiplier to the common scale.
    pub in1_mult: i32,
    /// Its shift.
    pub in1_shift: i32,
    /// The second input's multiplier to the common scale.
    pub in2_mult: i32,
    /// Its shift.
    pub in2_shift: i32,
    /// From the common scale to the output's.
    pub out_mult: i32,
    /// Its shift.
    pub out_shift: i32,
    /// The output zero point.
    pub out_offset: i32,
}

/// Inputs are shifted left by this before scaling, as TFLite does.
pub const ADD_LEFT_SHIFT: i32 = 20;

/// A FastGRNN cell in integers: int16 weights with power-of-two scales, Q12 states.
#[derive(Clone, Debug)]
pub struct QCell {
    /// Input size.
    pub input: usize,
    /// Hidden size.
    pub hidden: usize,
    /// `[hidden][input]`, real `w = w_q * 2^-w_exp`.
    pub w: Vec<i16>,
    /// Exponent of `w`'s scale.
    pub w_exp: i32,
    /// For an int8 input: the accumulator is shifted right by `x_pre_shift`, then requantised
    /// by `x_mult`, `x_shift` into Q12. Unused when the input is a Q12 state.
    pub x_pre_shift: i32,
    /// Multiplier into Q12 (int8 input only).
    pub x_mult: i32,
    /// Its shift.
    pub x_shift: i32,
    /// `[hidden][hidden]`, real `u = u_q * 2^-u_exp`.
    pub u: Vec<i16>,
    /// Exponent of `u`'s scale.
    pub u_exp: i32,
    /// Q12.
    pub bias_gate: Vec<i32>,
    /// Q12.
    pub bias_update: Vec<i32>,
    /// `sigmoid(zeta)`, `sigmoid(nu)` in Q15.
    pub zeta: i32,
    /// `sigmoid(nu)` in Q15.
    pub nu: i32,
}

/// MobileNetV2's block; `add` is the residual connection, when there is one.
#[derive(Clone, Debug)]
pub struct QInvertedResidual {
    /// The 1x1 expansion (none at ratio 1).
    pub expand: Option<QConv>,
    /// The 3x3 depthwise convolution.
    pub depthwise: QConv,
    /// The 1x1 projection.
    pub project: QConv,
    /// The residual addition.
    pub add: Option<QAdd>,
}

/// An int8 RNNPool layer.
#[derive(Clone, Debug)]
pub struct QRnnPool {
    /// Square patch side.
    pub patch: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Minus the input zero point.
    pub in_offset: i32,
    /// The cell over rows and columns of a patch.
    pub rnn1: QCell,
    /// The bidirectional cell over their summaries.
    pub rnn2: QCell,
    /// From the Q12 outputs to the int8 output map.
    pub out_mult: i32,
    /// Its shift.
    pub out_shift: i32,
    /// The output zero point.
    pub out_offset: i32,
    /// The original's replicated last row and column.
    pub replicate: bool,
}

impl QRnnPool {
    /// The output shape for an input of `[h, w, _]`.
    pub fn out_shape(&self, [h, w, _]: Shape) -> Shape {
        let n = |d: usize| (d - self.patch) / self.stride + 1 + usize::from(self.replicate);
        [n(h), n(w), 4 * self.rnn2.hidden]
    }
}

// One per layer: the size difference between variants costs nothing.
/// What a quantized layer computes.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum QOp {
    /// A convolution.
    Conv(QConv),
    /// MobileNetV2's block.
    InvertedResidual(QInvertedResidual),
    /// An RNNPool layer.
    RnnPool(QRnnPool),
    /// An RNNPool layer and the inverted residual that reads it, run together row by row: the
    /// block's expansion reads the RNNPool's Q12 outputs (12 bits instead of 8: the BatchNorm
    /// after the expansion amplifies the small-variance RNNPool outputs, so 8 bits there cost
    /// the int8 model most of its error), and the RNNPool map is never stored whole. The
    /// residual, when present, adds the int8 RNNPool output as the unfused layer would.
    RnnPoolInvertedResidual {
        /// Dense convolutions before the RNNPool, each read only by the next, streamed: their
        /// rows are computed when the RNNPool first needs them and kept in rings just deep
        /// enough for the windows that read them, so their maps are never whole in RAM.
        stem: Vec<QConv>,
        /// The RNNPool.
        pool: QRnnPool,
        /// The block's expansion, reading Q12.
        expand: QPointwise16,
        /// The rest of the block (its `expand` is `None`).
        block: QInvertedResidual,
    },
    /// S3FD's L2 normalisation with a per-channel scale.
    L2Norm {
        /// Minus the input zero point.
        in_offset: i32,
        /// The output zero point.
        out_offset: i32,
        /** `gamma_c / out_scale` in Q16 */
        gain: Vec<i32>,
    },
    /// S3FD's max-out of the first head's three background logits.
    MaxOut,
    /// Average pooling.
    AvgPool {
        /// Window `[h, w]`.
        kernel: [usize; 2],
        /// Stride `[h, w]`.
        stride: [usize; 2],
        /// Minus the input zero point.
        in_offset: i32,
        /// Multiplier of `in_scale / (window * out_scale)`.
        mult: i32,
        /// Its shift.
        shift: i32,
        /// The output zero point.
        out_offset: i32,
    },
    /// The input's channels then `other`'s, each rescaled to the output's scale.
    Concat {
        /// The second input.
        other: TensorId,
        /// The input's rescaling.
        first: Rescale,
        /// `other`'s rescaling.
        second: Rescale,
        /// The output zero point.
        out_offset: i32,
    },
}

/// An int8 map moved to another scale: `requantize(q + in_offset, mult, shift)` (then plus
/// the new zero point).
#[derive(Clone, Copy, Debug)]
pub struct Rescale {
    /// Minus the source zero point.
    pub in_offset: i32,
    /// Multiplier of `from_scale / to_scale`.
    pub mult: i32,
    /// Its shift.
    pub shift: i32,
}

impl Rescale {
    fn new(from: QParams, to: QParams) -> Self {
        let (mult, shift) = quantize_multiplier(from.scale as f64 / to.scale as f64);
        Self { in_offset: -from.zero, mult, shift }
    }
}

/// One layer of the int8 model.
#[derive(Clone, Debug)]
pub struct QLayer {
    /// The module path it came from.
    pub name: String,
    /// Its input tensor.
    pub input: TensorId,
    /// Its output tensor.
    pub output: TensorId,
    /// What it computes.
    pub op: QOp,
    /// Multiply-accumulates per image.
    pub macs: u64,
}

/// The int8 model the C runtime runs: layers in execution order over HWC int8 tensors.
#[derive(Clone, Debug)]
pub struct QGraph {
    /// The model's name.
    pub model: String,
    /// Every tensor's shape `[h, w, c]`.
    pub tensors: Vec<Shape>,
    /// Every tensor's quantization.
    pub params: Vec<QParams>,
    /// The input tensor.
    pub input: TensorId,
    /// The layers.
    pub layers: Vec<QLayer>,
    /// The output tensors, with what each holds.
    pub outputs: Vec<(TensorId, OutputKind)>,
}

impl QGraph {
    /// The input's `[h, w, c]`.
    pub fn input_shape(&self) -> Shape {
        self.tensors[self.input]
    }
}

/// The largest kernel side and RNNPool patch side the C runtime takes (`RP_MAX_KERNEL`,
/// `RP_MAX_PATCH` in `rp_nn.h`): their row pointers live on the stack.
pub const MAX_KERNEL: usize = 16;
/// See [`MAX_KERNEL`].
pub const MAX_PATCH: usize = 32;

fn check_limit(layer: &str, what: &str, value: usize, max: usize) -> Result<(), ExportError> {
    if value > max {
        let why = format!("{what} {value} is larger than the C runtime's {max}");
        return Err(ExportError::Unsupported { layer: layer.into(), why });
    }
    Ok(())
}

fn quantize_conv(name: &str, c: &ConvWeights, qin: QParams, qout: QParams) -> Result<QConv, ExportError> {
    check_limit(name, "kernel", c.kernel, MAX_KERNEL)?;
    let per_out = c.weight.len() / c.cout;
    let mut weight = Vec::with_capacity(c.weight.len());
    let mut acc_scale = Vec::with_capacity(c.cout);
    for w in c.weight.chunks(per_out) {
        let max = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let ws = if max > 0.0 { max / 127.0 } else { 1.0 };
        weight.extend(w.iter().map(|v| (v / ws).round().clamp(-127.0, 127.0) as i8));
        acc_scale.push(qin.scale as f64 * ws as f64);
    }
    Ok(QConv {
        cin: c.cin,
        cout: c.cout,
        kernel: c.kernel,
        stride: c.stride,
        pad: c.pad,
        depthwise: c.depthwise(),
        in_offset: -qin.zero,
        weight,
        out: OutputStage::new(name, &c.bias, &acc_scale, c.act, qout)?,
    })
}

fn quantize_pointwise16(name: &str, c: &ConvWeights, qout: QParams) -> Result<QPointwise16, ExportError> {
    let scales: Vec<f64> = c
        .weight
        .chunks(c.cin)
        .map(|w| w.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64 / 32767.0)
        .map(|s| if s > 0.0 { s } else { 1.0 })
        .collect();
    let weight: Vec<i16> = c
        .weight
        .chunks(c.cin)
        .zip(&scales)
        .flat_map(|(w, s)| w.iter().map(move |v| (*v as f64 / s).round() as i16))
        .collect();
    // |x| <= 32767 (Q12 states saturate at +-8): the sum must fit 31 bits after the shift.
    let bound =
        weight.chunks(c.cin).map(|w| w.iter().map(|v| v.unsigned_abs() as u64).sum::<u64>() * 32767).max().unwrap_or(0);
    let mut pre_shift = 0;
    while (bound >> pre_shift) >= 1u64 << 30 {
        pre_shift += 1;
    }
    let acc_scale: Vec<f64> = scales.iter().map(|s| s * 2f64.powi(pre_shift) / Q12_ONE as f64).collect();
    Ok(QPointwise16 {
        cin: c.cin,
        cout: c.cout,
        pre_shift,
        weight,
        out: OutputStage::new(name, &c.bias, &acc_scale, c.act, qout)?,
    })
}

fn quantize_add(a: QParams, b: QParams, out: QParams) -> QAdd {
    let twice_max = 2.0 * a.scale.max(b.scale) as f64;
    let (m1, s1) = quantize_multiplier(a.scale as f64 / twice_max);
    let (m2, s2) = quantize_multiplier(b.scale as f64 / twice_max);
    let (mo, so) = quantize_multiplier(twice_max / ((1i64 << ADD_LEFT_SHIFT) as f64 * out.scale as f64));
    QAdd {
        in1_offset: -a.zero,
        in2_offset: -b.zero,
        in1_mult: m1,
        in1_shift: s1,
        in2_mult: m2,
        in2_shift: s2,
        out_mult: mo,
        out_shift: so,
        out_offset: out.zero,
    }
}

/// The power-of-two exponent that puts `max|v|` just under 32767.
fn pow2_exp(name: &str, v: &[f32]) -> Result<i32, ExportError> {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return Ok(0);
    }
    let e = (32767.0 / max as f64).log2().floor() as i32;
    if !(0..=30).contains(&e) {
        return Err(ExportError::Quantization {
            layer: name.into(),
            why: format!("weights up to {max} do not fit int16"),
        });
    }
    Ok(e)
}

fn q16(v: &[f32], exp: i32) -> Vec<i16> {
    v.iter().map(|x| (*x as f64 * 2f64.powi(exp)).round().clamp(-32767.0, 32767.0) as i16).collect()
}

/// `RP_FASTGRNN_BIAS_LIMIT` in `rp_nn.h`: FastGRNN biases in Q12 stay below it.
const BIAS_LIMIT: f64 = (1u64 << 29) as f64;

fn quantize_cell(name: &str, c: &CellWeights, int8_input: Option<QParams>) -> Result<QCell, ExportError> {
    let w_exp = pow2_exp(name, &c.w)?;
    let w = q16(&c.w, w_exp);
    let (mut x_pre_shift, mut x_mult, mut x_shift) = (0, 0, 0);
    if let Some(q) = int8_input {
        // Worst-case |sum_k (x_k - zero) w_jk| must fit int32 after the pre-shift.
        let bound = (0..c.hidden)
            .map(|j| w[j * c.input..(j + 1) * c.input].iter().map(|v| v.unsigned_abs() as u64).sum::<u64>() * 255)
            .max()
            .unwrap_or(0);
        while (bound >> x_pre_shift) > i32::MAX as u64 {
            x_pre_shift += 1;
        }
        let real = q.scale as f64 * 2f64.powi(x_pre_shift - w_exp) * Q12_ONE as f64;
        (x_mult, x_shift) = quantize_multiplier(real);
    }
    let u_exp = pow2_exp(name, &c.u)?;
    // The C clamps pre-activations to +-2^30 before adding the biases (rp_fastgrnn_q12.c).
    if let Some(b) = c.bias_gate.iter().chain(&c.bias_update).find(|b| b.abs() as f64 * Q12_ONE as f64 >= BIAS_LIMIT) {
        let why = format!("a FastGRNN bias of {b} is beyond the C runtime's +-{}", BIAS_LIMIT / Q12_ONE as f64);
        return Err(ExportError::Quantization { layer: name.into(), why });
    }
    let q12 = |v: &[f32]| v.iter().map(|x| (*x as f64 * Q12_ONE as f64).round() as i32).collect();
    let q15 = |x: f32| (x as f64 * 32768.0).round() as i32;
    Ok(QCell {
        input: c.input,
        hidden: c.hidden,
        w,
        w_exp,
        x_pre_shift,
        x_mult,
        x_shift,
        u: q16(&c.u, u_exp),
        u_exp,
        bias_gate: q12(&c.bias_gate),
        bias_update: q12(&c.bias_update),
        zeta: q15(c.zeta),
        nu: q15(c.nu),
    })
}

/// How many layers (and graph outputs) read each tensor.
fn readers(g: &Graph) -> Vec<usize> {
    let mut readers = vec![0usize; g.tensors.len()];
    for l in &g.layers {
        readers[l.input] += 1;
    }
    for (t, _) in &g.outputs {
        readers[*t] += 1;
    }
    readers
}

/// Quantizes `g` with activation ranges from calibration.
pub fn quantize(g: &Graph, ranges: &Ranges) -> Result<QGraph, ExportError> {
    let mut params: Vec<QParams> = ranges.tensors.iter().map(|r| QParams::from_range(*r)).collect();
    let readers = readers(g);
    let mut layers: Vec<QLayer> = Vec::new();
    for (i, l) in g.layers.iter().enumerate() {
        // An expansion reading an RNNPool that nothing else reads runs fused with it, from the
        // RNNPool's Q12 values with int16 weights (see QOp::RnnPoolInvertedResidual).
        let after_pool = matches!(layers.last(), Some(QLayer { op: QOp::RnnPool(_), output, .. })
            if *output == l.input && readers[l.input] == 1);
        let (op, macs) = match &l.op {
            Op::InvertedResidual { .. } => {
                let (block, fused, macs) = inverted_residual(g, ranges, &params, i, after_pool)?;
                if let Some(expand) = fused
                    && let Some(QLayer { op: QOp::RnnPool(pool), input, name, macs: pool_macs, .. }) = layers.pop()
                {
                    let stem = take_stem(&mut layers, &readers, input);
                    let op = QOp::RnnPoolInvertedResidual { stem: stem.convs, pool, expand, block };
                    let name = format!("{}{name}+{}", stem.names, l.name);
                    let macs = stem.macs + pool_macs + macs;
                    layers.push(QLayer { name, input: stem.input, output: l.output, op, macs });
                    continue;
                }
                (QOp::InvertedResidual(block), macs)
            }
            _ => simple_layer(g, &mut params, i)?,
        };
        layers.push(QLayer { name: l.name.clone(), input: l.input, output: l.output, op, macs });
    }
    Ok(QGraph {
        model: g.model.clone(),
        tensors: g.tensors.clone(),
        params,
        input: g.input,
        layers,
        outputs: g.outputs.clone(),
    })
}

/// A chain of dense convolutions taken off the end of the layer list.
struct Stem {
    convs: Vec<QConv>,
    /// The first one's input (the fused layer's input when there is none).
    input: TensorId,
    /// `"a+b+"`: their names, for the fused layer's.
    names: String,
    macs: u64,
}

/// The dense convolutions at the end of `layers` whose outputs only feed the next, the last
/// one producing `input`; taken off `layers`, in execution order.
fn take_stem(layers: &mut Vec<QLayer>, readers: &[usize], input: TensorId) -> Stem {
    let mut stem = Stem { convs: Vec::new(), input, names: String::new(), macs: 0 };
    while let Some(last) = layers.last()
        && last.output == stem.input
        && readers[last.output] == 1
        && matches!(&last.op, QOp::Conv(c) if !c.depthwise)
        && let Some(QLayer { op: QOp::Conv(c), input, name, macs, .. }) = layers.pop()
    {
        stem.convs.insert(0, c);
        stem.input = input;
        stem.names = format!("{name}+{}", stem.names);
        stem.macs += macs;
    }
    stem
}

/// Layer `i`, an inverted residual, and its MACs; with `fuse`, its expansion quantized for the
/// fused RNNPool block (int16 weights on the RNNPool's Q12 outputs) instead of as int8.
fn inverted_residual(
    g: &Graph,
    ranges: &Ranges,
    params: &[QParams],
    i: usize,
    fuse: bool,
) -> Result<(QInvertedResidual, Option<QPointwise16>, u64), ExportError> {
    let l = &g.layers[i];
    let Op::InvertedResidual { expand, depthwise, project, residual } = &l.op else {
        return Err(ExportError::Quantization { layer: l.name.clone(), why: "not an inverted residual".into() });
    };
    let (qin, qout, in_shape) = (params[l.input], params[l.output], g.tensors[l.input]);
    let inner = ranges.inner[i].map(QParams::from_range);
    let e_params = if expand.is_some() { inner[0] } else { qin };
    let es = expand.as_ref().map_or(in_shape, |c| c.out_shape(in_shape));
    let ds = depthwise.out_shape(es);
    let macs = expand.as_ref().map_or(0, |c| c.macs(es)) + depthwise.macs(ds) + project.macs(project.out_shape(ds));
    let projected = if *residual { inner[2] } else { qout };
    let expand_name = format!("{}.expand", l.name);
    let fused = match expand {
        Some(e) if fuse => Some(quantize_pointwise16(&expand_name, e, inner[0])?),
        _ => None,
    };
    let int8_expand = match (&fused, expand) {
        (None, Some(c)) => Some(quantize_conv(&expand_name, c, qin, inner[0])?),
        _ => None,
    };
    let block = QInvertedResidual {
        expand: int8_expand,
        depthwise: quantize_conv(&format!("{}.depthwise", l.name), depthwise, e_params, inner[1])?,
        project: quantize_conv(&format!("{}.project", l.name), project, inner[1], projected)?,
        add: residual.then(|| quantize_add(qin, projected, qout)),
    };
    Ok((block, fused, macs))
}

/// Layer `i` (any op but an inverted residual) and its MACs; a max-out's output takes its
/// input's parameters (the max of values on one scale is exact on that scale).
fn simple_layer(g: &Graph, params: &mut [QParams], i: usize) -> Result<(QOp, u64), ExportError> {
    let l = &g.layers[i];
    let (qin, qout) = (params[l.input], params[l.output]);
    Ok(match &l.op {
        Op::Conv { conv } => (QOp::Conv(quantize_conv(&l.name, conv, qin, qout)?), conv.macs(g.tensors[l.output])),
        Op::RnnPool { patch, stride, rnn1, rnn2, replicate } => {
            check_limit(&l.name, "patch", *patch, MAX_PATCH)?;
            let [oh, ow, _] = g.tensors[l.output];
            let patches = (oh - usize::from(*replicate)) * (ow - usize::from(*replicate));
            let (k, h1, h2, r) = (rnn1.input as u64, rnn1.hidden as u64, rnn2.hidden as u64, *patch as u64);
            let macs = patches as u64 * (2 * r * r * (k + h1) * h1 + 4 * r * (h1 + h2) * h2);
            let (out_mult, out_shift) = quantize_multiplier(1.0 / (Q12_ONE as f64 * qout.scale as f64));
            let pool = QRnnPool {
                patch: *patch,
                stride: *stride,
                in_offset: -qin.zero,
                rnn1: quantize_cell(&format!("{}.rnn1", l.name), rnn1, Some(qin))?,
                rnn2: quantize_cell(&format!("{}.rnn2", l.name), rnn2, None)?,
                out_mult,
                out_shift,
                out_offset: qout.zero,
                replicate: *replicate,
            };
            (QOp::RnnPool(pool), macs)
        }
        Op::L2Norm { weight } => (quantize_l2norm(&l.name, weight, qin, qout)?, 0),
        Op::MaxOut => {
            params[l.output] = qin;
            (QOp::MaxOut, 0)
        }
        Op::Concat { other } => {
            let (first, second) = (Rescale::new(qin, qout), Rescale::new(params[*other], qout));
            (QOp::Concat { other: *other, first, second, out_offset: qout.zero }, 0)
        }
        Op::AvgPool { kernel, stride } => {
            let n = (kernel[0] * kernel[1]) as f64;
            let (mult, shift) = quantize_multiplier(qin.scale as f64 / (n * qout.scale as f64));
            let op = QOp::AvgPool {
                kernel: *kernel,
                stride: *stride,
                in_offset: -qin.zero,
                mult,
                shift,
                out_offset: qout.zero,
            };
            (op, 0)
        }
        Op::InvertedResidual { .. } => {
            return Err(ExportError::Quantization { layer: l.name.clone(), why: "an inverted residual".into() });
        }
    })
}

/// L2Norm with its per-channel gain `gamma / out_scale` in Q16.
fn quantize_l2norm(name: &str, weight: &[f32], qin: QParams, qout: QParams) -> Result<QOp, ExportError> {
    let gain: Vec<i64> = weight.iter().map(|g| (*g as f64 / qout.scale as f64 * 65536.0).round() as i64).collect();
    if gain.iter().any(|g| g.abs() > i32::MAX as i64) {
        return Err(ExportError::Quantization {
            layer: name.into(),
            why: "L2Norm scale too large for its output range".into(),
        });
    }
    Ok(QOp::L2Norm { in_offset: -qin.zero, out_offset: qout.zero, gain: gain.into_iter().map(|g| g as i32).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_ranges_hold_zero_exactly() {
        for range in [[-1.3, 4.2], [0.0, 6.0], [0.5, 2.0], [-3.0, -1.0], [0.0, 0.0]] {
            let q = QParams::from_range(range);
            assert_eq!(q.dequantize(q.quantize(0.0)), 0.0, "{range:?}");
            let [lo, hi] = range;
            for x in [lo, hi, (lo + hi) / 2.0] {
                assert!((q.dequantize(q.quantize(x)) - x).abs() <= q.scale / 2.0 + 1e-6, "{range:?} {x}");
            }
        }
        assert_eq!(QParams::from_range([0.0, 0.0]).scale, 1.0 / 255.0);
    }

    #[test]
    fn output_stage_clamps_relu6_to_its_levels() {
        let qout = QParams::from_range([0.0, 8.0]);
        let s = OutputStage::new("t", &[0.0], &[0.01], Activation::Relu6, qout).unwrap();
        // 1000 * 0.01 = 10 > 6: clamped at the level of 6.
        assert!((qout.dequantize(s.apply(0, 1000)) - 6.0).abs() <= qout.scale);
        assert_eq!(qout.dequantize(s.apply(0, -1000)), 0.0);
        assert!(OutputStage::new("conv", &[1e6], &[1e-6], Activation::None, qout).is_err());
    }
}
