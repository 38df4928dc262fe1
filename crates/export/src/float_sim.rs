//! The graph run in f32 on one HWC image: the reference the int8 model is measured against,
//! and the calibration pass that records each activation's range.

use crate::graph::{CellWeights, ConvWeights, Graph, Op, Shape, taps};

/// `min`, `max` of every tensor seen, including those inside an inverted residual (the
/// expanded map and the depthwise output), which the C code never stores whole.
#[derive(Clone, Debug)]
pub struct Ranges {
    /// Per tensor: `[min, max]` seen.
    pub tensors: Vec<[f32; 2]>,
    /// Per layer: `[expanded, depthwise, projected]` for inverted residuals (the projection
    /// before the residual add), unused otherwise.
    pub inner: Vec<[[f32; 2]; 3]>,
}

impl Ranges {
    /// Empty ranges for every tensor of `g`.
    pub fn new(g: &Graph) -> Self {
        let empty = [f32::INFINITY, f32::NEG_INFINITY];
        Self { tensors: vec![empty; g.tensors.len()], inner: vec![[empty; 3]; g.layers.len()] }
    }
}

fn widen(r: &mut [f32; 2], v: &[f32]) {
    for &x in v {
        r[0] = r[0].min(x);
        r[1] = r[1].max(x);
    }
}

/// A float convolution of the HWC map `x`.
pub fn conv(c: &ConvWeights, x: &[f32], [h, w, cin]: Shape) -> (Vec<f32>, Shape) {
    let out @ [oh, ow, cout] = c.out_shape([h, w, cin]);
    let cg = cin / c.groups;
    let per_group = cout / c.groups;
    let k = c.kernel;
    let mut y = vec![0.0f32; oh * ow * cout];
    for oy in 0..oh {
        for ox in 0..ow {
            for o in 0..cout {
                let g0 = (o / per_group) * cg;
                let mut acc = c.bias[o];
                for (t, pixel) in taps(k, c.stride, c.pad, [h, w], (oy, ox)) {
                    let (xi, wi) = (pixel * cin + g0, (o * k * k + t) * cg);
                    acc += x[xi..xi + cg].iter().zip(&c.weight[wi..wi + cg]).map(|(a, b)| a * b).sum::<f32>();
                }
                y[(oy * ow + ox) * cout + o] = c.act.apply(acc);
            }
        }
    }
    (y, out)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn cell_step(c: &CellWeights, x: &[f32], h: &mut [f32]) {
    let old = h.to_vec();
    for j in 0..c.hidden {
        let wx: f32 = c.w[j * c.input..(j + 1) * c.input].iter().zip(x).map(|(w, v)| w * v).sum();
        let uh: f32 = c.u[j * c.hidden..(j + 1) * c.hidden].iter().zip(&old).map(|(u, v)| u * v).sum();
        let pre = wx + uh;
        let z = sigmoid(pre + c.bias_gate[j]);
        let cand = (pre + c.bias_update[j]).tanh();
        h[j] = z * old[j] + (c.zeta * (1.0 - z) + c.nu) * cand;
    }
}

/// RNN2 over `seq` (`len` vectors of `rnn2.input`), forwards into `out[..h2]` and backwards
/// into `out[h2..2 h2]`.
fn bidirectional(c: &CellWeights, seq: &[f32], len: usize, out: &mut [f32]) {
    let (d, h2) = (c.input, c.hidden);
    let mut h = vec![0.0; h2];
    for t in 0..len {
        cell_step(c, &seq[t * d..(t + 1) * d], &mut h);
    }
    out[..h2].copy_from_slice(&h);
    h.fill(0.0);
    for t in (0..len).rev() {
        cell_step(c, &seq[t * d..(t + 1) * d], &mut h);
    }
    out[h2..2 * h2].copy_from_slice(&h);
}

/// One patch at `(y0, x0)` of `x` `[.., w, ch]` -> `4 h2` values.
fn rnnpool_patch(
    (rnn1, rnn2): (&CellWeights, &CellWeights),
    patch: usize,
    x: &[f32],
    [w, ch]: [usize; 2],
    (y0, x0): (usize, usize),
    out: &mut [f32],
) {
    let h1 = rnn1.hidden;
    let mut summaries = vec![0.0; patch * h1];
    for rows in [true, false] {
        for a in 0..patch {
            let mut h = vec![0.0; h1];
            for b in 0..patch {
                let (py, px) = if rows { (a, b) } else { (b, a) };
                let i = ((y0 + py) * w + x0 + px) * ch;
                cell_step(rnn1, &x[i..i + ch], &mut h);
            }
            summaries[a * h1..(a + 1) * h1].copy_from_slice(&h);
        }
        let at = if rows { 0 } else { 2 * rnn2.hidden };
        bidirectional(rnn2, &summaries, patch, &mut out[at..at + 2 * rnn2.hidden]);
    }
}

/// Copies row `oh - 2` into row `oh - 1` and column `ow - 2` into `ow - 1` of `[oh, ow, c]`.
pub fn replicate_last_row_and_column<T: Copy>(y: &mut [T], [oh, ow, c]: Shape) {
    for r in 0..oh - 1 {
        let (src, dst) = ((r * ow + ow - 2) * c, (r * ow + ow - 1) * c);
        y.copy_within(src..src + c, dst);
    }
    let row = ow * c;
    y.copy_within((oh - 2) * row..(oh - 1) * row, (oh - 1) * row);
}

/// Per pixel, `a`'s channels then `b`'s.
pub fn concat_channels<T: Copy>(a: &[T], ca: usize, b: &[T], cb: usize) -> Vec<T> {
    a.chunks(ca).zip(b.chunks(cb)).flat_map(|(p, q)| p.iter().chain(q).copied()).collect()
}

fn run_layer(op: &Op, x: &[f32], shape: Shape, out_shape: Shape, inner: &mut [[f32; 2]; 3]) -> Vec<f32> {
    let [_, w, ch] = shape;
    match op {
        Op::Conv { conv: c } => conv(c, x, shape).0,
        Op::InvertedResidual { expand, depthwise, project, residual } => {
            let (e, es) = match expand {
                Some(c) => conv(c, x, shape),
                None => (x.to_vec(), shape),
            };
            widen(&mut inner[0], &e);
            let (d, ds) = conv(depthwise, &e, es);
            widen(&mut inner[1], &d);
            let (mut y, _) = conv(project, &d, ds);
            widen(&mut inner[2], &y);
            if *residual {
                y.iter_mut().zip(x).for_each(|(a, b)| *a += b);
            }
            y
        }
        Op::RnnPool { patch, stride, rnn1, rnn2, replicate } => {
            let [oh, ow, oc] = out_shape;
            let mut y = vec![0.0; oh * ow * oc];
            let (ph, pw) = if *replicate { (oh - 1, ow - 1) } else { (oh, ow) };
            for py in 0..ph {
                for px in 0..pw {
                    let o = (py * ow + px) * oc;
                    rnnpool_patch((rnn1, rnn2), *patch, x, [w, ch], (py * stride, px * stride), &mut y[o..o + oc]);
                }
            }
            if *replicate {
                replicate_last_row_and_column(&mut y, out_shape);
            }
            y
        }
        Op::L2Norm { weight } => {
            let mut y = x.to_vec();
            for p in y.chunks_mut(ch) {
                let norm = p.iter().map(|v| v * v).sum::<f32>().sqrt() + 1e-10;
                p.iter_mut().zip(weight).for_each(|(v, g)| *v = *v / norm * g);
            }
            y
        }
        Op::MaxOut => x.chunks(ch).flat_map(|p| [p[0].max(p[1]).max(p[2]), p[3]]).collect(),
        Op::Concat { .. } => unreachable!("run() handles two-input layers"),
        Op::AvgPool { kernel, stride } => {
            let [oh, ow, _] = out_shape;
            let mut y = vec![0.0; oh * ow * ch];
            let n = (kernel[0] * kernel[1]) as f32;
            for oy in 0..oh {
                for ox in 0..ow {
                    for ky in 0..kernel[0] {
                        for kx in 0..kernel[1] {
                            let i = ((oy * stride[0] + ky) * w + ox * stride[1] + kx) * ch;
                            for c in 0..ch {
                                y[(oy * ow + ox) * ch + c] += x[i + c];
                            }
                        }
                    }
                }
            }
            y.iter_mut().for_each(|v| *v /= n);
            y
        }
    }
}

/// Runs the graph on `input` (HWC); returns every tensor, and widens `ranges` when given.
pub fn run(g: &Graph, input: &[f32], mut ranges: Option<&mut Ranges>) -> Vec<Vec<f32>> {
    let mut t: Vec<Vec<f32>> = vec![Vec::new(); g.tensors.len()];
    t[g.input] = input.to_vec();
    let mut scratch = [[0.0; 2]; 3];
    for (i, l) in g.layers.iter().enumerate() {
        let inner = match ranges.as_deref_mut() {
            Some(r) => &mut r.inner[i],
            None => &mut scratch,
        };
        t[l.output] = match l.op {
            Op::Concat { other } => concat_channels(&t[l.input], g.tensors[l.input][2], &t[other], g.tensors[other][2]),
            _ => run_layer(&l.op, &t[l.input], g.tensors[l.input], g.tensors[l.output], inner),
        };
    }
    if let Some(r) = ranges {
        for (range, v) in r.tensors.iter_mut().zip(&t) {
            widen(range, v);
        }
    }
    t
}
