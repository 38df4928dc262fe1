//! The quantized model run in Rust with exactly the integer operations of the C runtime
//! (`c/src/*.c`): the generated C must reproduce these outputs bit for bit.

use crate::fixed::{
    TABLE_LEN, div_round, isqrt, lookup_q15, requantize, rshift_round, sat16, sat32, sigmoid_f64, table_q15, tanh_f64,
};
use crate::float_sim::{concat_channels, replicate_last_row_and_column};
use crate::graph::{Shape, taps};
use crate::quantize::{
    ADD_LEFT_SHIFT, QAdd, QCell, QConv, QGraph, QInvertedResidual, QOp, QPointwise16, QRnnPool, Rescale,
};

fn clamp8(v: i32, lo: i32, hi: i32) -> i8 {
    v.clamp(lo, hi) as i8
}

/// An int8 convolution of the HWC map `x`, as the C computes it.
pub fn conv_s8(c: &QConv, x: &[i8], [h, w, cin]: Shape) -> (Vec<i8>, Shape) {
    let [oh, ow, _] = c.out_shape([h, w, cin]);
    let k = c.kernel;
    let mut y = vec![0i8; oh * ow * c.cout];
    for oy in 0..oh {
        for ox in 0..ow {
            for o in 0..c.cout {
                let mut acc = 0i32;
                for (t, pixel) in taps(k, c.stride, c.pad, [h, w], (oy, ox)) {
                    let xi = pixel * cin;
                    if c.depthwise {
                        acc += (x[xi + o] as i32 + c.in_offset) * c.weight[o * k * k + t] as i32;
                    } else {
                        let wi = (o * k * k + t) * cin;
                        for i in 0..cin {
                            acc += (x[xi + i] as i32 + c.in_offset) * c.weight[wi + i] as i32;
                        }
                    }
                }
                y[(oy * ow + ox) * c.cout + o] = c.out.apply(o, acc as i64);
            }
        }
    }
    (y, [oh, ow, c.cout])
}

/// TFLite's int8 addition of one pair, as the C computes it.
pub fn add_s8(p: &QAdd, a: i8, b: i8) -> i8 {
    let x1 = requantize((a as i32 + p.in1_offset) << ADD_LEFT_SHIFT, p.in1_mult, p.in1_shift);
    let x2 = requantize((b as i32 + p.in2_offset) << ADD_LEFT_SHIFT, p.in2_mult, p.in2_shift);
    clamp8(requantize(x1 + x2, p.out_mult, p.out_shift) + p.out_offset, -128, 127)
}

/// The sigmoid and tanh tables every model uses.
pub struct Tables {
    /// sigmoid over [-8, 8], 513 Q15 entries.
    pub sigmoid: Vec<i16>,
    /// tanh over [-8, 8], 513 Q15 entries.
    pub tanh: Vec<i16>,
}

impl Default for Tables {
    fn default() -> Self {
        let t = Self { sigmoid: table_q15(sigmoid_f64), tanh: table_q15(tanh_f64) };
        debug_assert_eq!(t.sigmoid.len(), TABLE_LEN);
        t
    }
}

/// A cell's input: int8 map values with their offset, or a Q12 state.
enum CellInput<'a> {
    S8(&'a [i8], i32),
    Q12(&'a [i16]),
}

fn cell_step(c: &QCell, t: &Tables, x: CellInput, h: &mut [i16]) {
    let mut next = vec![0i16; c.hidden];
    for j in 0..c.hidden {
        let wrow = &c.w[j * c.input..(j + 1) * c.input];
        let wx = match x {
            CellInput::S8(x, off) => {
                let acc: i64 = x.iter().zip(wrow).map(|(&v, &w)| (v as i64 + off as i64) * w as i64).sum();
                requantize(sat32(rshift_round(acc, c.x_pre_shift)), c.x_mult, c.x_shift) as i64
            }
            CellInput::Q12(x) => rshift_round(x.iter().zip(wrow).map(|(&v, &w)| v as i64 * w as i64).sum(), c.w_exp),
        };
        let urow = &c.u[j * c.hidden..(j + 1) * c.hidden];
        let uh = rshift_round(h.iter().zip(urow).map(|(&v, &u)| v as i64 * u as i64).sum(), c.u_exp);
        let pre = wx + uh;
        let z = lookup_q15(&t.sigmoid, sat32(pre + c.bias_gate[j] as i64)) as i64;
        let cand = lookup_q15(&t.tanh, sat32(pre + c.bias_update[j] as i64)) as i64;
        let zh = (z * h[j] as i64 + (1 << 14)) >> 15;
        let coef = ((c.zeta as i64 * (32768 - z) + (1 << 14)) >> 15) + c.nu as i64;
        let cc = (coef * cand + (1 << 17)) >> 18;
        next[j] = sat16(zh + cc);
    }
    h.copy_from_slice(&next);
}

/// The RNNPool outputs in Q12 (`[oh, ow, 4 h2]`, last row and column replicated when asked).
fn rnnpool_q12(p: &QRnnPool, x: &[i8], [_, w, ch]: Shape, out_shape: Shape, t: &Tables) -> Vec<i16> {
    let [oh, ow, oc] = out_shape;
    let (h1, h2, patch) = (p.rnn1.hidden, p.rnn2.hidden, p.patch);
    let mut y = vec![0i16; oh * ow * oc];
    let (ph, pw) = if p.replicate { (oh - 1, ow - 1) } else { (oh, ow) };
    let mut summaries = vec![0i16; patch * h1];
    let mut state = vec![0i16; h2];
    for py in 0..ph {
        for px in 0..pw {
            let (y0, x0) = (py * p.stride, px * p.stride);
            let o = (py * ow + px) * oc;
            for (pass, rows) in [true, false].into_iter().enumerate() {
                for a in 0..patch {
                    let h = &mut summaries[a * h1..(a + 1) * h1];
                    h.fill(0);
                    for b in 0..patch {
                        let (r, c) = if rows { (a, b) } else { (b, a) };
                        let i = ((y0 + r) * w + x0 + c) * ch;
                        cell_step(&p.rnn1, t, CellInput::S8(&x[i..i + ch], p.in_offset), h);
                    }
                }
                for backward in [false, true] {
                    state.fill(0);
                    for s in 0..patch {
                        let step = if backward { patch - 1 - s } else { s };
                        cell_step(&p.rnn2, t, CellInput::Q12(&summaries[step * h1..(step + 1) * h1]), &mut state);
                    }
                    let at = o + (2 * pass + usize::from(backward)) * h2;
                    y[at..at + h2].copy_from_slice(&state);
                }
            }
        }
    }
    if p.replicate {
        replicate_last_row_and_column(&mut y, out_shape);
    }
    y
}

/// The RNNPool's int8 output from its Q12 values.
fn rnnpool_s8(p: &QRnnPool, q12: &[i16]) -> Vec<i8> {
    q12.iter().map(|&v| clamp8(requantize(v as i32, p.out_mult, p.out_shift) + p.out_offset, -128, 127)).collect()
}

/// A 1x1 convolution of Q12 int16 inputs (the fused RNNPool's outputs) with int16 weights.
fn pointwise_s16(c: &QPointwise16, x: &[i16]) -> Vec<i8> {
    let cin = c.cin;
    x.chunks(cin)
        .flat_map(|px| {
            (0..c.cout).map(move |o| {
                let w = &c.weight[o * cin..(o + 1) * cin];
                let acc: i64 = px.iter().zip(w).map(|(&v, &w)| v as i64 * w as i64).sum();
                c.out.apply(o, rshift_round(acc, c.pre_shift))
            })
        })
        .collect()
}

/// An inverted residual whose expansion (or, without one, depthwise input) is `expanded`;
/// `skip` is the block's int8 input for the residual add.
fn inverted_residual(b: &QInvertedResidual, expanded: &[i8], es: Shape, skip: &[i8]) -> Vec<i8> {
    let (d, ds) = conv_s8(&b.depthwise, expanded, es);
    let (mut y, _) = conv_s8(&b.project, &d, ds);
    if let Some(p) = &b.add {
        y.iter_mut().zip(skip).for_each(|(o, &i)| *o = add_s8(p, i, *o));
    }
    y
}

/// Runs `q` on a quantized input; returns every tensor.
pub fn run(q: &QGraph, input: &[i8]) -> Vec<Vec<i8>> {
    let tables = Tables::default();
    let mut t: Vec<Vec<i8>> = vec![Vec::new(); q.tensors.len()];
    t[q.input] = input.to_vec();
    for l in &q.layers {
        let x = &t[l.input];
        let shape = q.tensors[l.input];
        let [_, _, ch] = shape;
        let y = match &l.op {
            QOp::Conv(c) => conv_s8(c, x, shape).0,
            QOp::InvertedResidual(b) => {
                let (e, es) = match &b.expand {
                    Some(c) => conv_s8(c, x, shape),
                    None => (x.clone(), shape),
                };
                inverted_residual(b, &e, es, x)
            }
            QOp::RnnPool(p) => rnnpool_s8(p, &rnnpool_q12(p, x, shape, q.tensors[l.output], &tables)),
            QOp::RnnPoolInvertedResidual { stem, pool, expand, block } => {
                // the input itself, or the last map of the stem before the RNNPool
                let (mut x, mut shape) = (std::borrow::Cow::Borrowed(x.as_slice()), shape);
                for c in stem {
                    let (y, s) = conv_s8(c, &x, shape);
                    (x, shape) = (std::borrow::Cow::Owned(y), s);
                }
                let ps = pool.out_shape(shape);
                let q12 = rnnpool_q12(pool, &x, shape, ps, &tables);
                let e = pointwise_s16(expand, &q12);
                inverted_residual(block, &e, [ps[0], ps[1], expand.cout], &rnnpool_s8(pool, &q12))
            }
            QOp::L2Norm { in_offset, out_offset, gain } => {
                let mut y = vec![0i8; x.len()];
                for (p, o) in x.chunks(ch).zip(y.chunks_mut(ch)) {
                    let sum: i64 = p.iter().map(|&v| (v as i64 + *in_offset as i64).pow(2)).sum();
                    if sum == 0 {
                        o.fill(*out_offset as i8);
                        continue;
                    }
                    let n = isqrt((sum as u64) << 32) as i64;
                    for ((dst, &v), &g) in o.iter_mut().zip(p).zip(gain) {
                        let r = div_round((v as i64 + *in_offset as i64) * g as i64, n);
                        *dst = (r + *out_offset as i64).clamp(-128, 127) as i8;
                    }
                }
                y
            }
            QOp::MaxOut => x.chunks(ch).flat_map(|p| [p[0].max(p[1]).max(p[2]), p[3]]).collect(),
            QOp::Concat { other, first, second, out_offset } => {
                let rescale = |r: &Rescale, v: &[i8]| -> Vec<i8> {
                    v.iter()
                        .map(|&q| clamp8(requantize(q as i32 + r.in_offset, r.mult, r.shift) + out_offset, -128, 127))
                        .collect()
                };
                concat_channels(&rescale(first, x), ch, &rescale(second, &t[*other]), q.tensors[*other][2])
            }
            QOp::AvgPool { kernel, stride, in_offset, mult, shift, out_offset } => {
                let [oh, ow, _] = q.tensors[l.output];
                let w = shape[1];
                let mut y = vec![0i8; oh * ow * ch];
                for oy in 0..oh {
                    for ox in 0..ow {
                        for c in 0..ch {
                            let mut acc = 0i32;
                            for ky in 0..kernel[0] {
                                for kx in 0..kernel[1] {
                                    acc += x[((oy * stride[0] + ky) * w + ox * stride[1] + kx) * ch + c] as i32
                                        + in_offset;
                                }
                            }
                            y[(oy * ow + ox) * ch + c] = clamp8(requantize(acc, *mult, *shift) + out_offset, -128, 127);
                        }
                    }
                }
                y
            }
        };
        t[l.output] = y;
    }
    t
}
