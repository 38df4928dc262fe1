//! FastGRNN over a group of equal-length sequences run in lockstep, forward and backward
//! through time, on plain slices. Running the sequences of a group together makes every
//! elementwise step one long loop over `sequences * hidden` values instead of many loops of
//! `hidden`, which is what lets it vectorise at hidden sizes of 8 or 16.
//!
//! Inputs arrive already projected (`x·W`, one row of `hidden` values per position) because
//! RNNPool feeds every pixel to RNN1 twice (its row sweep and its column sweep) and every RNN1
//! summary to RNN2 twice (forward and reverse): projecting once halves the input matmuls.

use super::real::Real;
use super::small::{atb_acc, matmul_acc};

/// Read-only view of a FastGRNN cell's parameters, laid out as EdgeML stores them.
#[derive(Clone, Copy, Debug)]
pub struct CellView<'a, T> {
    /// `[input, hidden]`, used as `x·W`.
    pub w: &'a [T],
    /// `[hidden, hidden]`, used as `h·U`.
    pub u: &'a [T],
    pub bias_gate: &'a [T],
    pub bias_update: &'a [T],
    /// Raw (pre-sigmoid) zeta and nu.
    pub zeta: T,
    pub nu: T,
    pub input: usize,
    pub hidden: usize,
}

/// Gradient accumulators for one cell; `zeta`/`nu` hold d/d(sigmoid(.)) until [`Self::finish`].
#[derive(Clone, Debug)]
pub struct CellGrads<T> {
    pub w: Vec<T>,
    pub u: Vec<T>,
    pub bias_gate: Vec<T>,
    pub bias_update: Vec<T>,
    pub zeta: T,
    pub nu: T,
}

impl<T: Real> CellGrads<T> {
    pub fn zeros(input: usize, hidden: usize) -> Self {
        Self {
            w: vec![T::ZERO; input * hidden],
            u: vec![T::ZERO; hidden * hidden],
            bias_gate: vec![T::ZERO; hidden],
            bias_update: vec![T::ZERO; hidden],
            zeta: T::ZERO,
            nu: T::ZERO,
        }
    }

    pub fn add(&mut self, other: &Self) {
        add_into(&mut self.w, &other.w);
        add_into(&mut self.u, &other.u);
        add_into(&mut self.bias_gate, &other.bias_gate);
        add_into(&mut self.bias_update, &other.bias_update);
        self.zeta += other.zeta;
        self.nu += other.nu;
    }

    /// Turns the accumulated d/d(sigmoid(zeta)) into d/d(zeta) (same for nu).
    pub fn finish(mut self, cell: &Cells<T>) -> Self {
        self.zeta = self.zeta * cell.sig_zeta * (T::ONE - cell.sig_zeta);
        self.nu = self.nu * cell.sig_nu * (T::ONE - cell.sig_nu);
        self
    }
}

/// A cell ready to run: its view plus the values derived once per call.
#[derive(Clone, Debug)]
pub struct Cells<'a, T> {
    pub view: CellView<'a, T>,
    pub sig_zeta: T,
    pub sig_nu: T,
    /// `U` transposed, so that `dh·Uᵀ` is a blocked product over contiguous rows.
    pub u_t: Vec<T>,
    /// `W` transposed, for `d(x·W)·Wᵀ`.
    pub w_t: Vec<T>,
}

impl<'a, T: Real> Cells<'a, T> {
    pub fn new(view: CellView<'a, T>) -> Self {
        let sig = |v: T| T::from_f64(1.0 / (1.0 + (-v.to_f64()).exp()));
        Self {
            sig_zeta: sig(view.zeta),
            sig_nu: sig(view.nu),
            u_t: transpose(view.u, view.hidden, view.hidden),
            w_t: transpose(view.w, view.input, view.hidden),
            view,
        }
    }
}

/// Which row of the projected-input buffer feeds sequence `s` at step `t`.
#[derive(Clone, Copy, Debug)]
pub enum Sweep {
    /// RNN1 over a map laid out row-major, one row of the buffer per pixel: sequence `s` step
    /// `t` reads row `base + s * seq_stride + t * step_stride` (along a map row: step stride 1;
    /// down a column: step stride the map's width).
    Strided { base: usize, seq_stride: usize, step_stride: usize },
    /// RNN2 over summaries `[0, len)` starting at `offset`: sequence 0 forwards, 1 backwards.
    Bidir { offset: usize, len: usize },
    /// RNN2 over row summaries `[0, len)` and column summaries `[len, 2 len)` of a square patch:
    /// row-forward, row-backward, column-forward, column-backward.
    BidirRowsCols { len: usize },
}

impl Sweep {
    #[inline(always)]
    fn row(self, t: usize, s: usize) -> usize {
        match self {
            Self::Strided { base, seq_stride, step_stride } => base + s * seq_stride + t * step_stride,
            Self::Bidir { offset, len } => offset + if s == 0 { t } else { len - 1 - t },
            Self::BidirRowsCols { len } => {
                let base = if s < 2 { 0 } else { len };
                base + if s.is_multiple_of(2) { t } else { len - 1 - t }
            }
        }
    }
}

/// What the backward pass needs from one forward run of a group, step-major:
/// `states` `[len + 1, seqs, hidden]` (step 0 is the zero state), `gates` and `candidates`
/// `[len, seqs, hidden]`.
#[derive(Clone, Debug, Default)]
pub struct Trace<T> {
    pub seqs: usize,
    pub len: usize,
    pub states: Vec<T>,
    pub gates: Vec<T>,
    pub candidates: Vec<T>,
}

impl<T: Real> Trace<T> {
    pub fn new(seqs: usize, len: usize, hidden: usize) -> Self {
        Self {
            seqs,
            len,
            states: vec![T::ZERO; (len + 1) * seqs * hidden],
            gates: vec![T::ZERO; len * seqs * hidden],
            candidates: vec![T::ZERO; len * seqs * hidden],
        }
    }

    /// The last states, `[seqs, hidden]`.
    pub fn last(&self) -> &[T] {
        let block = self.states.len() / (self.len + 1);
        &self.states[self.len * block..]
    }
}

/// Per-thread buffers for groups of up to `seqs` sequences of up to `len` steps.
#[derive(Clone, Debug)]
pub struct StepScratch<T> {
    pre: Vec<T>,
    arg: Vec<T>,
    dh: Vec<T>,
    dh_prev: Vec<T>,
    /// d(pre) of every step, `[len, seqs, hidden]`, for dU and the biases at the end.
    dpre: Vec<T>,
    /// Element-wise partial sums (reduced at the end of the group, so that the step loop has
    /// no cross-lane reduction and vectorises).
    acc_zeta: Vec<T>,
    acc_nu: Vec<T>,
    acc_gate: Vec<T>,
    acc_update: Vec<T>,
}

impl<T: Real> StepScratch<T> {
    pub fn new(hidden: usize, seqs: usize, len: usize) -> Self {
        let z = vec![T::ZERO; hidden * seqs];
        Self {
            pre: z.clone(),
            arg: z.clone(),
            dh: z.clone(),
            dh_prev: z.clone(),
            acc_zeta: z.clone(),
            acc_nu: z.clone(),
            acc_gate: z.clone(),
            acc_update: z,
            dpre: vec![T::ZERO; hidden * seqs * len],
        }
    }
}

/// Runs the cell from zero states over the `trace.seqs` sequences of `sweep`, each
/// `trace.len` steps long, reading projected inputs from `xw`, recording into `trace`.
#[inline(always)]
pub fn forward<T: Real>(cell: &Cells<T>, xw: &[T], sweep: Sweep, trace: &mut Trace<T>, s: &mut StepScratch<T>) {
    let h = cell.view.hidden;
    let (seqs, len) = (trace.seqs, trace.len);
    let block = seqs * h;
    let (u, bg, bu) = (cell.view.u, cell.view.bias_gate, cell.view.bias_update);
    let (sz, sn) = (cell.sig_zeta, cell.sig_nu);
    trace.states[..block].fill(T::ZERO);
    for t in 0..len {
        let pre = &mut s.pre[..block];
        let (done, next) = trace.states.split_at_mut((t + 1) * block);
        let prev = &done[t * block..];
        for q in 0..seqs {
            let row = sweep.row(t, q);
            pre[q * h..(q + 1) * h].copy_from_slice(&xw[row * h..(row + 1) * h]);
        }
        matmul_acc(pre, prev, h, u, h);
        let arg = &mut s.arg[..block];
        add_bias(arg, pre, bg);
        let z = &mut trace.gates[t * block..(t + 1) * block];
        T::sigmoid_into(arg, z);
        add_bias(arg, pre, bu);
        let c = &mut trace.candidates[t * block..(t + 1) * block];
        T::tanh_into(arg, c);
        let out = &mut next[..block];
        for n in 0..block {
            out[n] = z[n] * prev[n] + (sz * (T::ONE - z[n]) + sn) * c[n];
        }
    }
}

/// Back-propagates `dh_last` (`[seqs, hidden]`, the gradient of the last states) through the
/// group recorded in `trace`, adding d(x·W) into the rows of `dxw` that `sweep` read and the
/// parameter gradients (except W's, which the caller forms from `dxw`) into `grads`.
#[inline(always)]
pub fn backward<T: Real>(
    cell: &Cells<T>,
    sweep: Sweep,
    trace: &Trace<T>,
    dh_last: &[T],
    dxw: &mut [T],
    grads: &mut CellGrads<T>,
    s: &mut StepScratch<T>,
) {
    let h = cell.view.hidden;
    let (seqs, len) = (trace.seqs, trace.len);
    let block = seqs * h;
    let (sz, sn) = (cell.sig_zeta, cell.sig_nu);
    for acc in [&mut s.acc_zeta, &mut s.acc_nu, &mut s.acc_gate, &mut s.acc_update] {
        acc[..block].fill(T::ZERO);
    }
    s.dh[..block].copy_from_slice(dh_last);
    for t in (0..len).rev() {
        let prev = &trace.states[t * block..(t + 1) * block];
        let z = &trace.gates[t * block..(t + 1) * block];
        let c = &trace.candidates[t * block..(t + 1) * block];
        let dh = &s.dh[..block];
        let dpre = &mut s.dpre[t * block..(t + 1) * block];
        let dh_prev = &mut s.dh_prev[..block];
        let (acc_z, acc_n) = (&mut s.acc_zeta[..block], &mut s.acc_nu[..block]);
        let (acc_g, acc_u) = (&mut s.acc_gate[..block], &mut s.acc_update[..block]);
        for n in 0..block {
            let one_m_z = T::ONE - z[n];
            let dz = dh[n] * (prev[n] - sz * c[n]);
            let dc = dh[n] * (sz * one_m_z + sn);
            acc_z[n] += dh[n] * one_m_z * c[n];
            acc_n[n] += dh[n] * c[n];
            let da = dz * z[n] * one_m_z;
            let db = dc * (T::ONE - c[n] * c[n]);
            acc_g[n] += da;
            acc_u[n] += db;
            dpre[n] = da + db;
            dh_prev[n] = dh[n] * z[n];
        }
        for q in 0..seqs {
            let row = sweep.row(t, q);
            add_into(&mut dxw[row * h..(row + 1) * h], &dpre[q * h..(q + 1) * h]);
        }
        matmul_acc(dh_prev, dpre, h, &cell.u_t, h);
        core::mem::swap(&mut s.dh, &mut s.dh_prev);
    }
    // dU = sum over steps and sequences of h_prevᵀ·dpre, as one product.
    let rows = len * block;
    atb_acc(&mut grads.u, &trace.states[..rows], h, &s.dpre[..rows], h);
    for q in 0..seqs {
        for n in 0..h {
            let i = q * h + n;
            grads.bias_gate[n] += s.acc_gate[i];
            grads.bias_update[n] += s.acc_update[i];
            grads.zeta += s.acc_zeta[i];
            grads.nu += s.acc_nu[i];
        }
    }
}

/// `out[q][n] = pre[q][n] + bias[n]` for every sequence `q`.
#[inline(always)]
fn add_bias<T: Real>(out: &mut [T], pre: &[T], bias: &[T]) {
    let h = bias.len();
    for (o, p) in out.chunks_exact_mut(h).zip(pre.chunks_exact(h)) {
        for n in 0..h {
            o[n] = p[n] + bias[n];
        }
    }
}

#[inline(always)]
pub fn add_into<T: Real>(y: &mut [T], x: &[T]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += xi;
    }
}

fn transpose<T: Real>(a: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut t = vec![T::ZERO; a.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
    t
}
