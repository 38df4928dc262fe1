//! The fused RNNPool layer on burn's CubeCL backend (the `wgpu` feature; the kernels are
//! runtime-neutral CubeCL, so CUDA would take them as they are).
//!
//! A GPU gets its parallelism from the many sequences, not from the tiny hidden size: one thread
//! runs one whole FastGRNN sequence, its state in registers, so each RNN costs one launch instead
//! of a handful of tensor ops per time step. The input projections `x·W` stay burn matmuls (one
//! over all pixels, shared by a pixel's row and column sweeps and by overlapping patches). The
//! backward pass writes every step's state and d(pre); gather kernels fold d(pre) back onto the
//! inputs (no atomics), and the parameter gradients are sums of small per-block products reduced
//! in stages: burn's matmul and sum over one axis of millions of rows run that axis serially,
//! which cost seconds per step on an H200 in the first version.
//!
//! Sequences, numbered `seq = patch * per_patch + s`:
//! - RNN1 (`per_patch = r + c`): `s < r` walks row `s` of the patch left to right (`c` steps),
//!   `s = r + j` walks column `j` top to bottom (`r` steps). Its last states are the patch's
//!   `r + c` summaries, rows first, as the CPU kernel lays them out.
//! - RNN2 (`per_patch = 4`): forwards and backwards over the row summaries, then forwards and
//!   backwards over the column summaries; its last states are the `4 * h2` output features.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Shape, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{CubeBackend, CubeDevice};
use std::time::Instant;

use super::backend::{CellTensors, RnnPoolBackend, RnnPoolGrads, grid_of};
use super::kernel::PatchGrid;

type Ops = CubeBackend;

/// Threads per cube for the one-thread-per-sequence kernels: small, because each thread holds
/// several hidden-size arrays.
const SCAN_CUBE: u32 = 64;
/// Threads per cube for the element-wise gather kernels.
const FOLD_CUBE: u32 = 256;

/// Which RNN of the layer a scan runs: decides how a sequence finds its inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Rnn1,
    Rnn2,
}

impl Stage {
    fn per_patch(self, g: &PatchGrid) -> usize {
        match self {
            Self::Rnn1 => g.lines(),
            Self::Rnn2 => 4,
        }
    }
}

// ---- kernels ----

#[cube]
fn sigmoid<F: Float>(v: F) -> F {
    F::new(1.0) / (F::new(1.0) + (-v).exp())
}

/// Number of steps of sequence `s` of a patch.
#[cube]
fn steps(s: usize, r: usize, c: usize, #[comptime] rnn1: bool) -> usize {
    let mut len = c;
    if rnn1 {
        if s >= r {
            len = r;
        }
    } else if s < 2 {
        len = r;
    }
    len
}

/// Row of the projected-input matrix that sequence `s` of patch `n` reads at step `t`.
#[cube]
fn input_row(n: usize, s: usize, t: usize, dims: &Sequence<u32>, #[comptime] rnn1: bool) -> usize {
    if rnn1 { pixel_row(n, s, t, dims) } else { summary_row(n, s, t, dims) }
}

/// RNN1: the pixel of patch `n` that row/column sweep `s` reads at step `t`.
#[cube]
fn pixel_row(n: usize, s: usize, t: usize, dims: &Sequence<u32>) -> usize {
    let (height, width) = (dims[0] as usize, dims[1] as usize);
    let (out_h, out_w) = (dims[2] as usize, dims[3] as usize);
    let r = dims[4] as usize;
    let (sr, sc) = (dims[6] as usize, dims[7] as usize);
    let per_image = out_h * out_w;
    let b = n / per_image;
    let oi = (n % per_image) / out_w;
    let oj = n % out_w;
    let mut y = oi * sr + s;
    let mut x = oj * sc + t;
    if s >= r {
        y = oi * sr + t;
        x = oj * sc + (s - r);
    }
    (b * height + y) * width + x
}

/// RNN2: the summary of patch `n` that sweep `s` (rows forwards, rows backwards, columns
/// forwards, columns backwards) reads at step `t`.
#[cube]
fn summary_row(n: usize, s: usize, t: usize, dims: &Sequence<u32>) -> usize {
    let (r, c) = (dims[4] as usize, dims[5] as usize);
    let base = n * (r + c);
    let mut row = base + r + c - 1 - t;
    if s == 0 {
        row = base + t;
    } else if s == 1 {
        row = base + r - 1 - t;
    } else if s == 2 {
        row = base + r + t;
    }
    row
}

/// The cell a scan reads at every step: its `U`, gate bias and update bias, from the kernel's
/// tensors or, when `shared` (the host decides: [`cell_fits_shared`]), from a copy in shared
/// memory made once per cube (`U` at 0, gate bias at `h * h`, update bias at `h * h + h`): every
/// thread reads all of them at every step, and a shared read that all threads make at one address
/// is a broadcast, where a read from a storage buffer is a bounds-checked global load.
#[derive(CubeType)]
struct Cell<'a, F: Float> {
    u: &'a Tensor<F>,
    bias_gate: &'a Tensor<F>,
    bias_update: &'a Tensor<F>,
    copy: Shared<[F]>,
    #[cube(comptime)]
    h: usize,
    #[cube(comptime)]
    shared: bool,
}

#[cube]
impl<'a, F: Float> Cell<'a, F> {
    /// Ends with a barrier when `shared`, so every thread of the cube must call it.
    fn new(
        u: &'a Tensor<F>,
        bias_gate: &'a Tensor<F>,
        bias_update: &'a Tensor<F>,
        #[comptime] h: usize,
        #[comptime] shared: bool,
    ) -> Cell<'a, F> {
        let mut copy = Shared::<[F]>::new_slice(comptime!(if shared { h * h + 2 * h } else { 1 }));
        if shared {
            let mut i = UNIT_POS as usize;
            while i < comptime!(h * h) {
                copy[i] = u[i];
                i += CUBE_DIM as usize;
            }
            let mut j = UNIT_POS as usize;
            while j < h {
                copy[comptime!(h * h) + j] = bias_gate[j];
                copy[comptime!(h * h + h) + j] = bias_update[j];
                j += CUBE_DIM as usize;
            }
            sync_cube();
        }
        Cell::<'a, F> { u, bias_gate, bias_update, copy, h, shared }
    }

    /// `U[i][j]`.
    fn u_at(&self, i: usize, j: usize) -> F {
        if self.shared { self.copy[i * self.h + j] } else { self.u[i * self.h + j] }
    }

    fn gate_bias(&self, j: usize) -> F {
        if self.shared { self.copy[self.h * self.h + j] } else { self.bias_gate[j] }
    }

    fn update_bias(&self, j: usize) -> F {
        if self.shared { self.copy[self.h * self.h + self.h + j] } else { self.bias_update[j] }
    }
}

/// `pre = xw[row] + state·U`.
#[cube]
fn preactivation<F: Float>(
    xw: &Tensor<F>,
    row: usize,
    cell: &Cell<F>,
    state: &Array<F>,
    pre: &mut Array<F>,
    #[comptime] h: usize,
) {
    #[unroll]
    for j in 0..h {
        pre[j] = xw[row * h + j];
    }
    #[unroll]
    for i in 0..h {
        let si = state[i];
        #[unroll]
        for j in 0..h {
            pre[j] += si * cell.u_at(i, j);
        }
    }
}

/// Sequences per block of the backward trace (a warp on NVIDIA and most other GPUs).
const LANES: usize = 32;

/// Where value `j` of step `t` of sequence `seq` lies in a backward trace, laid out
/// `[seq / LANES, h, steps, LANES]`: the threads of a warp run consecutive sequences, so each of
/// their stores fills one contiguous line, and a block is a `[h, steps * LANES]` matrix, ready
/// for the products that form dU.
#[cube]
fn trace_at(seq: usize, t: usize, j: usize, steps_max: usize, #[comptime] h: usize) -> usize {
    ((seq / LANES * h + j) * steps_max + t) * LANES + seq % LANES
}

/// One FastGRNN step from `pre`: `state = z ⊙ state + (ζ (1 - z) + ν) ⊙ tanh(pre + b_u)`.
#[cube]
fn advance<F: Float>(pre: &Array<F>, cell: &Cell<F>, sz: F, sn: F, state: &mut Array<F>, #[comptime] h: usize) {
    #[unroll]
    for j in 0..h {
        let z = sigmoid::<F>(pre[j] + cell.gate_bias(j));
        let cand = (pre[j] + cell.update_bias(j)).tanh();
        state[j] = z * state[j] + (sz * (F::new(1.0) - z) + sn) * cand;
    }
}

/// Runs every sequence of one RNN and writes its last state `[sequences, h]`; `traced`, also the
/// state every step started from (`prev`, layout [`trace_at`], zero past a sequence's end), which
/// the backward scan reads instead of running the sequence again. Launched for `padded` (a
/// multiple of [`LANES`]) threads; the padding lanes run no steps, so they only write zeros.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn fastgrnn_scan_forward<F: Float>(
    xw: &Tensor<F>,
    u: &Tensor<F>,
    bias_gate: &Tensor<F>,
    bias_update: &Tensor<F>,
    zeta: &Tensor<F>,
    nu: &Tensor<F>,
    last: &mut Tensor<F>,
    prev: &mut Tensor<F>,
    dims: Sequence<u32>,
    sequences: u32,
    padded: u32,
    per_patch: u32,
    longest: u32,
    #[comptime] h: usize,
    #[comptime] rnn1: bool,
    #[comptime] traced: bool,
    #[comptime] shared: bool,
    #[define(F)] _dtype: ElemType,
) {
    let cell = Cell::<F>::new(u, bias_gate, bias_update, h, shared);
    let seq = ABSOLUTE_POS;
    if seq >= padded as usize {
        terminate!();
    }
    let steps_max = longest as usize;
    let real = seq < sequences as usize;
    let n = seq / per_patch as usize;
    let s = seq % per_patch as usize;
    let mut len = 0;
    if real {
        len = steps(s, dims[4] as usize, dims[5] as usize, rnn1);
    }
    let sz = sigmoid::<F>(zeta[0]);
    let sn = sigmoid::<F>(nu[0]);
    let mut state = Array::<F>::new(h);
    let mut pre = Array::<F>::new(h);
    #[unroll]
    for j in 0..h {
        state[j] = F::new(0.0);
    }
    for t in 0..len {
        if traced {
            #[unroll]
            for j in 0..h {
                prev[trace_at(seq, t, j, steps_max, h)] = state[j];
            }
        }
        let row = input_row(n, s, t, &dims, rnn1);
        preactivation::<F>(xw, row, &cell, &state, &mut pre, h);
        advance::<F>(&pre, &cell, sz, sn, &mut state, h);
    }
    if traced {
        for t in len..steps_max {
            #[unroll]
            for j in 0..h {
                prev[trace_at(seq, t, j, steps_max, h)] = F::new(0.0);
            }
        }
    }
    if real {
        #[unroll]
        for j in 0..h {
            last[seq * h + j] = state[j];
        }
    }
}

/// Back-propagation through time for every sequence of one RNN, from the gradient of its last
/// states and the forward trace `prev` ([`fastgrnn_scan_forward`], traced). Writes, per sequence
/// and step (zero past the sequence's end; layout [`trace_at`]), d(pre) (`dpre`, the gradient of
/// the projected input); per sequence: the sums of d(gate pre-activation) and d(update
/// pre-activation) over its steps (the bias gradients) and its share of the gradients of raw
/// zeta and nu. Launched for `padded` (a multiple of [`LANES`]) threads.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn fastgrnn_scan_backward<F: Float>(
    xw: &Tensor<F>,
    u: &Tensor<F>,
    bias_gate: &Tensor<F>,
    bias_update: &Tensor<F>,
    zeta: &Tensor<F>,
    nu: &Tensor<F>,
    dlast: &Tensor<F>,
    prev: &Tensor<F>,
    dpre: &mut Tensor<F>,
    gate_sum: &mut Tensor<F>,
    update_sum: &mut Tensor<F>,
    zeta_sum: &mut Tensor<F>,
    nu_sum: &mut Tensor<F>,
    dims: Sequence<u32>,
    sequences: u32,
    padded: u32,
    per_patch: u32,
    longest: u32,
    #[comptime] h: usize,
    #[comptime] rnn1: bool,
    #[comptime] shared: bool,
    #[define(F)] _dtype: ElemType,
) {
    let cell = Cell::<F>::new(u, bias_gate, bias_update, h, shared);
    let seq = ABSOLUTE_POS;
    let steps_max = longest as usize;
    if seq >= padded as usize {
        terminate!();
    }
    // A lane that only pads the last block runs no steps: it writes zeros, so that the block
    // sums stay exact.
    let real = seq < sequences as usize;
    let n = seq / per_patch as usize;
    let s = seq % per_patch as usize;
    let mut len = 0;
    if real {
        len = steps(s, dims[4] as usize, dims[5] as usize, rnn1);
    }
    let one = F::new(1.0);
    let sz = sigmoid::<F>(zeta[0]);
    let sn = sigmoid::<F>(nu[0]);
    let mut state = Array::<F>::new(h);
    let mut pre = Array::<F>::new(h);
    for t in len..steps_max {
        #[unroll]
        for j in 0..h {
            dpre[trace_at(seq, t, j, steps_max, h)] = F::new(0.0);
        }
    }

    let mut dh = Array::<F>::new(h);
    let mut dh_prev = Array::<F>::new(h);
    let mut dp = Array::<F>::new(h);
    let mut gates = Array::<F>::new(h);
    let mut updates = Array::<F>::new(h);
    #[unroll]
    for j in 0..h {
        dh[j] = F::new(0.0);
        if real {
            dh[j] = dlast[seq * h + j];
        }
        gates[j] = F::new(0.0);
        updates[j] = F::new(0.0);
    }
    let mut acc_zeta = F::new(0.0);
    let mut acc_nu = F::new(0.0);
    for back in 0..len {
        let t = len - 1 - back;
        #[unroll]
        for j in 0..h {
            state[j] = prev[trace_at(seq, t, j, steps_max, h)];
        }
        let row = input_row(n, s, t, &dims, rnn1);
        preactivation::<F>(xw, row, &cell, &state, &mut pre, h);
        #[unroll]
        for j in 0..h {
            let z = sigmoid::<F>(pre[j] + cell.gate_bias(j));
            let cand = (pre[j] + cell.update_bias(j)).tanh();
            let one_m_z = one - z;
            let dz = dh[j] * (state[j] - sz * cand);
            let dc = dh[j] * (sz * one_m_z + sn);
            acc_zeta += dh[j] * one_m_z * cand;
            acc_nu += dh[j] * cand;
            let da = dz * z * one_m_z;
            let db = dc * (one - cand * cand);
            gates[j] += da;
            updates[j] += db;
            dp[j] = da + db;
            dpre[trace_at(seq, t, j, steps_max, h)] = da + db;
            dh_prev[j] = dh[j] * z;
        }
        // dh_prev += dp·Uᵀ
        #[unroll]
        for i in 0..h {
            let mut sum = dh_prev[i];
            #[unroll]
            for j in 0..h {
                sum += dp[j] * cell.u_at(i, j);
            }
            dh[i] = sum;
        }
    }
    #[unroll]
    for j in 0..h {
        gate_sum[seq * h + j] = gates[j];
        update_sum[seq * h + j] = updates[j];
    }
    zeta_sum[seq] = acc_zeta * sz * (one - sz);
    nu_sum[seq] = acc_nu * sn * (one - sn);
}

/// d(xw) of every input row `[rows, h]`, gathered from the per-step d(pre) of the sequences that
/// read it (no scatter, so no atomics): the pixels for RNN1, the summaries for RNN2.
#[cube(launch)]
fn fold_trace<F: Float>(
    dpre: &Tensor<F>,
    dxw: &mut Tensor<F>,
    dims: Sequence<u32>,
    total: u32,
    longest: u32,
    #[comptime] h: usize,
    #[comptime] rnn1: bool,
    #[define(F)] _dtype: ElemType,
) {
    let id = ABSOLUTE_POS;
    if id >= total as usize {
        terminate!();
    }
    let (row, j) = (id / h, id % h);
    if rnn1 {
        dxw[id] = pixel_gradient::<F>(dpre, row, j, &dims, longest as usize, h);
    } else {
        dxw[id] = summary_gradient::<F>(dpre, row, j, &dims, longest as usize, h);
    }
}

/// RNN1: the sum of d(pre) over the row and column sweeps of every patch that covers `pixel`.
#[cube]
fn pixel_gradient<F: Float>(
    dpre: &Tensor<F>,
    pixel: usize,
    j: usize,
    dims: &Sequence<u32>,
    steps_max: usize,
    #[comptime] h: usize,
) -> F {
    let (height, width) = (dims[0] as usize, dims[1] as usize);
    let (out_h, out_w) = (dims[2] as usize, dims[3] as usize);
    let (r, c) = (dims[4] as usize, dims[5] as usize);
    let (sr, sc) = (dims[6] as usize, dims[7] as usize);
    let x = pixel % width;
    let y = (pixel / width) % height;
    let b = pixel / (width * height);
    // Patches oi with oi * sr <= y < oi * sr + r (and the same across).
    let mut oi_lo = 0;
    if y + 1 > r {
        oi_lo = (y + 1 - r + sr - 1) / sr;
    }
    let mut oi_hi = y / sr + 1;
    if oi_hi > out_h {
        oi_hi = out_h;
    }
    let mut oj_lo = 0;
    if x + 1 > c {
        oj_lo = (x + 1 - c + sc - 1) / sc;
    }
    let mut oj_hi = x / sc + 1;
    if oj_hi > out_w {
        oj_hi = out_w;
    }
    let mut sum = F::new(0.0);
    for oi in oi_lo..oi_hi {
        for oj in oj_lo..oj_hi {
            let n = (b * out_h + oi) * out_w + oj;
            let dy = y - oi * sr;
            let dx = x - oj * sc;
            sum += dpre[trace_at(n * (r + c) + dy, dx, j, steps_max, h)];
            sum += dpre[trace_at(n * (r + c) + r + dx, dy, j, steps_max, h)];
        }
    }
    sum
}

/// RNN2: the sum of d(pre) of the forward and the backward sweep that read `summary`.
#[cube]
fn summary_gradient<F: Float>(
    dpre: &Tensor<F>,
    summary: usize,
    j: usize,
    dims: &Sequence<u32>,
    steps_max: usize,
    #[comptime] h: usize,
) -> F {
    let (r, c) = (dims[4] as usize, dims[5] as usize);
    let row = summary % (r + c);
    let n = summary / (r + c);
    let mut fwd = n * 4;
    let mut t = row;
    let mut len = r;
    if row >= r {
        fwd = n * 4 + 2;
        t = row - r;
        len = c;
    }
    dpre[trace_at(fwd, t, j, steps_max, h)] + dpre[trace_at(fwd + 1, len - 1 - t, j, steps_max, h)]
}

/// Side of the square output tile one [`block_products`] thread computes: each step then loads
/// `2 * TILE` values for `TILE²` products.
const TILE: usize = 4;

/// `out[b][i][j] = Σ_k a(b, k, i) · c(b, k, j)` for every block `b`, with each operand addressed
/// by its strides (block, row `i`/`j`, step `k`) and block `b` running `depth` steps or up to
/// step `steps` overall (a shorter last block), one thread per `TILE x TILE` tile of a block's
/// output: dW and dU over blocks of a few hundred steps. burn's batched matmul on the same
/// 16x16 products was 2-7x slower on lavapipe (dU 246 vs 105 ms, dW 31 vs 4 ms at batch 1), and
/// one thread per output element (loading two values per product) was 4x slower than the tiles
/// there (Face-M4's RNN1 dU at batch 2: 217 vs 46 ms).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn block_products<F: Float>(
    a: &Tensor<F>,
    c: &Tensor<F>,
    out: &mut Tensor<F>,
    a_strides: Sequence<u32>,
    c_strides: Sequence<u32>,
    depth: u32,
    steps: u32,
    tiles: u32,
    #[comptime] m: usize,
    #[comptime] n: usize,
    #[define(F)] _dtype: ElemType,
) {
    let id = ABSOLUTE_POS;
    if id >= tiles as usize {
        terminate!();
    }
    let tiles_n = comptime!(n.div_ceil(TILE));
    let tiles_m = comptime!(m.div_ceil(TILE));
    let j0 = (id % tiles_n) * TILE;
    let i0 = ((id / tiles_n) % tiles_m) * TILE;
    let b = id / (tiles_m * tiles_n);
    let first = b * depth as usize;
    let mut len = depth as usize;
    if first + len > steps as usize {
        len = steps as usize - first;
    }
    // Rows and columns past the edge read the last one (a valid address) and are not written.
    let mut a_at = Array::<usize>::new(TILE);
    let mut c_at = Array::<usize>::new(TILE);
    #[unroll]
    for d in 0..TILE {
        a_at[d] = b * a_strides[0] as usize + min(i0 + d, m - 1) * a_strides[1] as usize;
        c_at[d] = b * c_strides[0] as usize + min(j0 + d, n - 1) * c_strides[1] as usize;
    }
    let (a_step, c_step) = (a_strides[2] as usize, c_strides[2] as usize);
    let mut av = Array::<F>::new(TILE);
    let mut cv = Array::<F>::new(TILE);
    let mut acc = Array::<F>::new(TILE * TILE);
    #[unroll]
    for e in 0..TILE * TILE {
        acc[e] = F::new(0.0);
    }
    for k in 0..len {
        #[unroll]
        for d in 0..TILE {
            av[d] = a[a_at[d] + k * a_step];
            cv[d] = c[c_at[d] + k * c_step];
        }
        #[unroll]
        for di in 0..TILE {
            #[unroll]
            for dj in 0..TILE {
                acc[di * TILE + dj] += av[di] * cv[dj];
            }
        }
    }
    #[unroll]
    for di in 0..TILE {
        #[unroll]
        for dj in 0..TILE {
            if i0 + di < m && j0 + dj < n {
                out[(b * m + i0 + di) * n + j0 + dj] = acc[di * TILE + dj];
            }
        }
    }
}

/// Sums of `rows` rows of `t` `[rows, cols]` in groups of `group`: `out[g][col]`, one thread per
/// output element (consecutive threads read consecutive columns).
#[cube(launch)]
fn sum_row_groups<F: Float>(
    t: &Tensor<F>,
    out: &mut Tensor<F>,
    rows: u32,
    cols: u32,
    group: u32,
    total: u32,
    #[define(F)] _dtype: ElemType,
) {
    let id = ABSOLUTE_POS;
    if id >= total as usize {
        terminate!();
    }
    let cols = cols as usize;
    let col = id % cols;
    let first = (id / cols) * group as usize;
    let mut end = first + group as usize;
    if end > rows as usize {
        end = rows as usize;
    }
    let mut sum = F::new(0.0);
    for row in first..end {
        sum += t[row * cols + col];
    }
    out[id] = sum;
}

// ---- host side ----

fn dims_arg(g: &PatchGrid) -> SequenceArg<u32> {
    let mut dims = SequenceArg::new();
    for v in [g.height, g.width, g.out_h(), g.out_w(), g.patch[0], g.patch[1], g.stride[0], g.stride[1]] {
        dims.push(v as u32);
    }
    dims
}

fn empty_like(t: &CubeTensor, shape: Vec<usize>) -> CubeTensor {
    empty_device_contiguous_dtype(t.client.clone(), t.device.clone(), Shape::from(shape), t.dtype)
}

/// Enough cubes of `per_cube` threads for `threads`, spread over the grid's axes where one axis
/// would exceed the device's limit (65535 cubes on some Vulkan devices).
fn launch_shape(client: &cubecl::client::Client, threads: usize, per_cube: u32) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new_1d(per_cube);
    (cubecl::calculate_cube_count_elemwise(client, threads, dim), dim)
}

/// Whether the scans keep the cell of hidden size `h` (values like `t`'s) in shared memory
/// ([`Cell`]): it must fit the device's shared memory per cube (Vulkan guarantees 16 KiB, h <= 63
/// in f32), and `RNNPOOL_GLOBAL_CELL` turns it off (the tests use it to run the other path).
fn cell_fits_shared(t: &CubeTensor, h: usize) -> bool {
    let bytes = (h * h + 2 * h) * t.dtype.size();
    bytes <= t.client.properties().hardware.max_shared_memory_size && std::env::var_os("RNNPOOL_GLOBAL_CELL").is_none()
}

fn hidden_of(cell: &CellTensors<Ops>) -> usize {
    cell.w.shape()[1]
}

/// The cell's tensors as kernel arguments, in kernel order (U, biases, zeta, nu).
fn cell_args(cell: &CellTensors<Ops>) -> [TensorArg; 5] {
    [&cell.u, &cell.bias_gate, &cell.bias_update, &cell.zeta, &cell.nu]
        .map(|t| into_contiguous((*t).clone()).into_tensor_arg())
}

/// Last states `[patches * per_patch, h]` of one RNN over projected inputs `xw`.
fn scan_forward(xw: CubeTensor, cell: &CellTensors<Ops>, g: &PatchGrid, stage: Stage) -> CubeTensor {
    launch_scan_forward(xw, cell, g, stage, false).0
}

/// [`scan_forward`] and the trace the backward scan reads: the state every step started from
/// (`[padded / LANES, h, longest * LANES]`, [`trace_at`]).
fn scan_forward_traced(
    xw: CubeTensor,
    cell: &CellTensors<Ops>,
    g: &PatchGrid,
    stage: Stage,
) -> (CubeTensor, CubeTensor) {
    launch_scan_forward(xw, cell, g, stage, true)
}

fn launch_scan_forward(
    xw: CubeTensor,
    cell: &CellTensors<Ops>,
    g: &PatchGrid,
    stage: Stage,
    traced: bool,
) -> (CubeTensor, CubeTensor) {
    let shape = ScanShape::of(cell, g, stage);
    let ScanShape { h, per_patch, sequences, padded, longest } = shape;
    let last = empty_like(&xw, vec![sequences, h]);
    // An untraced scan writes no trace; the kernel still takes a tensor there.
    let prev = empty_like(&xw, if traced { shape.trace() } else { vec![1] });
    let [u, bg, bu, zeta, nu] = cell_args(cell);
    let dtype = dtype_to_storage_type(xw.dtype);
    let (count, dim) = launch_shape(&xw.client, padded, SCAN_CUBE);
    fastgrnn_scan_forward::launch(
        &xw.client,
        count,
        dim,
        into_contiguous(xw.clone()).into_tensor_arg(),
        u,
        bg,
        bu,
        zeta,
        nu,
        last.clone().into_tensor_arg(),
        prev.clone().into_tensor_arg(),
        dims_arg(g),
        sequences as u32,
        padded as u32,
        per_patch as u32,
        longest as u32,
        h,
        stage == Stage::Rnn1,
        traced,
        cell_fits_shared(&xw, h),
        dtype,
    );
    (last, prev)
}

/// The sizes of one RNN's scan over a patch grid.
#[derive(Clone, Copy)]
struct ScanShape {
    h: usize,
    per_patch: usize,
    sequences: usize,
    /// `sequences` rounded up to whole blocks of [`LANES`]: the threads a scan launches.
    padded: usize,
    /// Steps of the longest sequence.
    longest: usize,
}

impl ScanShape {
    fn of(cell: &CellTensors<Ops>, g: &PatchGrid, stage: Stage) -> Self {
        let per_patch = stage.per_patch(g);
        let sequences = g.patches() * per_patch;
        let padded = sequences.next_multiple_of(LANES);
        Self { h: hidden_of(cell), per_patch, sequences, padded, longest: g.longest() }
    }

    /// `[blocks, h, steps * LANES]`: a trace of every step of every sequence ([`trace_at`]).
    fn trace(&self) -> Vec<usize> {
        vec![self.padded / LANES, self.h, self.longest * LANES]
    }
}

/// What one RNN's backward scan leaves for the parameter gradients.
struct ScanGrads {
    /// `[blocks, h, longest * LANES]` ([`trace_at`]): the state each step started from.
    prev: CubeTensor,
    /// Same layout: d(pre) of each step.
    dpre: CubeTensor,
    /// `[padded, h]`: per sequence, summed over its steps.
    gate_sum: CubeTensor,
    update_sum: CubeTensor,
    /// `[padded, 1]` each.
    zeta_sum: CubeTensor,
    nu_sum: CubeTensor,
}

/// Back-propagation through one RNN from the gradient of its last states, given its projected
/// inputs and its forward trace `prev`.
fn scan_backward(
    xw: CubeTensor,
    prev: CubeTensor,
    cell: &CellTensors<Ops>,
    dlast: CubeTensor,
    g: &PatchGrid,
    stage: Stage,
) -> ScanGrads {
    let shape = ScanShape::of(cell, g, stage);
    let ScanShape { h, per_patch, sequences, padded, longest } = shape;
    let out = ScanGrads {
        dpre: empty_like(&xw, shape.trace()),
        prev,
        gate_sum: empty_like(&xw, vec![padded, h]),
        update_sum: empty_like(&xw, vec![padded, h]),
        zeta_sum: empty_like(&xw, vec![padded, 1]),
        nu_sum: empty_like(&xw, vec![padded, 1]),
    };
    let [u, bg, bu, zeta, nu] = cell_args(cell);
    let dtype = dtype_to_storage_type(xw.dtype);
    let (count, dim) = launch_shape(&xw.client, padded, SCAN_CUBE);
    fastgrnn_scan_backward::launch(
        &xw.client,
        count,
        dim,
        into_contiguous(xw.clone()).into_tensor_arg(),
        u,
        bg,
        bu,
        zeta,
        nu,
        into_contiguous(dlast).into_tensor_arg(),
        out.prev.clone().into_tensor_arg(),
        out.dpre.clone().into_tensor_arg(),
        out.gate_sum.clone().into_tensor_arg(),
        out.update_sum.clone().into_tensor_arg(),
        out.zeta_sum.clone().into_tensor_arg(),
        out.nu_sum.clone().into_tensor_arg(),
        dims_arg(g),
        sequences as u32,
        padded as u32,
        per_patch as u32,
        longest as u32,
        h,
        stage == Stage::Rnn1,
        cell_fits_shared(&xw, h),
        dtype,
    );
    out
}

/// d(xw) per input row, gathered from the per-step d(pre) of the sequences that read it.
fn fold(dpre: &CubeTensor, rows: usize, h: usize, g: &PatchGrid, stage: Stage) -> CubeTensor {
    let dxw = empty_like(dpre, vec![rows, h]);
    let total = rows * h;
    let (count, dim) = launch_shape(&dpre.client, total, FOLD_CUBE);
    fold_trace::launch(
        &dpre.client,
        count,
        dim,
        dpre.clone().into_tensor_arg(),
        dxw.clone().into_tensor_arg(),
        dims_arg(g),
        total as u32,
        g.longest() as u32,
        h,
        stage == Stage::Rnn1,
        dtype_to_storage_type(dpre.dtype),
    );
    dxw
}

fn reshape(t: CubeTensor, shape: Vec<usize>) -> CubeTensor {
    Ops::float_reshape(into_contiguous(t), Shape::from(shape))
}

/// `x` `[n, c, h, w]` as channels-last rows `[n * h * w, c]`.
fn pixel_rows(x: CubeTensor) -> CubeTensor {
    let [n, c, h, w] = x.shape().dims::<4>();
    reshape(Ops::float_permute(x, &[0, 2, 3, 1]), vec![n * h * w, c])
}

fn matmul(a: CubeTensor, b: CubeTensor) -> CubeTensor {
    into_contiguous(Ops::float_matmul(a, b))
}

fn transpose(t: CubeTensor) -> CubeTensor {
    Ops::float_transpose(t)
}

/// Rows one [`sum_row_groups`] thread adds per pass.
const ROW_GROUP: usize = 256;

/// Sum over the rows of `[rows, cols]` -> `[1, cols]`, [`ROW_GROUP`] rows per thread and pass:
/// burn's reduction and matmul run a single very long axis (millions of steps here) serially on
/// the GPU, which measured seconds per training step on an H200.
fn sum_rows(mut t: CubeTensor) -> CubeTensor {
    loop {
        let [rows, cols] = t.shape().dims::<2>();
        if rows == 1 {
            return t;
        }
        let t_in = into_contiguous(t);
        let groups = rows.div_ceil(ROW_GROUP);
        let out = empty_like(&t_in, vec![groups, cols]);
        let total = groups * cols;
        let (count, dim) = launch_shape(&t_in.client, total, FOLD_CUBE);
        sum_row_groups::launch(
            &t_in.client,
            count,
            dim,
            t_in.clone().into_tensor_arg(),
            out.clone().into_tensor_arg(),
            rows as u32,
            cols as u32,
            ROW_GROUP as u32,
            total as u32,
            dtype_to_storage_type(t_in.dtype),
        );
        t = out;
    }
}

/// Strides of a block operand of [`block_products`]: (block, row, step).
type BlockStrides = [usize; 3];

/// `Σ_b Σ_k a(b, k, ·)ᵀ · c(b, k, ·)` -> `[m, n]` over `steps` steps in blocks of `depth`:
/// [`block_products`] then [`sum_rows`].
fn sum_of_block_products(
    a: (CubeTensor, BlockStrides),
    c: (CubeTensor, BlockStrides),
    steps: usize,
    depth: usize,
    [m, n]: [usize; 2],
) -> CubeTensor {
    let blocks = steps.div_ceil(depth);
    let (a, a_strides) = (into_contiguous(a.0), a.1);
    let (c, c_strides) = (into_contiguous(c.0), c.1);
    let out = empty_like(&a, vec![blocks, m * n]);
    let tiles = blocks * m.div_ceil(TILE) * n.div_ceil(TILE);
    let strides = |s: BlockStrides| {
        let mut arg = SequenceArg::new();
        for v in s {
            arg.push(v as u32);
        }
        arg
    };
    let (count, dim) = launch_shape(&a.client, tiles, FOLD_CUBE);
    block_products::launch(
        &a.client,
        count,
        dim,
        a.clone().into_tensor_arg(),
        c.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        strides(a_strides),
        strides(c_strides),
        depth as u32,
        steps as u32,
        tiles as u32,
        m,
        n,
        dtype_to_storage_type(a.dtype),
    );
    reshape(sum_rows(out), vec![m, n])
}

/// Steps per block of [`at_b`].
const AT_B_DEPTH: usize = 1024;

/// `aᵀ·c` for `a` `[rows, m]`, `c` `[rows, n]` with millions of rows (dW).
fn at_b(a: CubeTensor, c: CubeTensor) -> CubeTensor {
    let [rows, m] = a.shape().dims::<2>();
    let n = c.shape()[1];
    let a_strides = [AT_B_DEPTH * m, 1, m];
    let c_strides = [AT_B_DEPTH * n, 1, n];
    sum_of_block_products((a, a_strides), (c, c_strides), rows, AT_B_DEPTH, [m, n])
}

/// `Σ prevᵀ·dpre` over every step of a backward trace (dU); both `[blocks, h, steps * LANES]`.
fn trace_product(prev: CubeTensor, dpre: CubeTensor) -> CubeTensor {
    let [blocks, h, depth] = prev.shape().dims::<3>();
    let strides = [h * depth, depth, 1];
    sum_of_block_products((prev, strides), (dpre, strides), blocks * depth, depth, [h, h])
}

/// Column sums of `[rows, cols]`, reshaped to `shape`.
fn column_sums(t: CubeTensor, shape: Shape) -> CubeTensor {
    Ops::float_reshape(sum_rows(t), shape)
}

/// The cell's parameter gradients from its backward scan, given the rows it projected
/// (`inputs`, `[rows, in]`) and d(xw) of those rows.
fn cell_grads(
    cell: &CellTensors<Ops>,
    inputs: CubeTensor,
    dxw: CubeTensor,
    s: ScanGrads,
    timer: &mut StageTimer,
) -> CellTensors<Ops> {
    let bias_gate = column_sums(s.gate_sum, cell.bias_gate.shape());
    let bias_update = column_sums(s.update_sum, cell.bias_update.shape());
    let zeta = column_sums(s.zeta_sum, cell.zeta.shape());
    let nu = column_sums(s.nu_sum, cell.nu.shape());
    timer.stage("bias, zeta and nu sums");
    let w = Ops::float_reshape(at_b(inputs, dxw), cell.w.shape());
    timer.stage("dW");
    let u = Ops::float_reshape(trace_product(s.prev, s.dpre), cell.u.shape());
    timer.stage("dU");
    CellTensors { w, u, bias_gate, bias_update, zeta, nu }
}

/// With `RNNPOOL_PROFILE` set, syncs the device after each stage of the backward pass and logs
/// the stage's time (`tracing`, info). Off by default, because the syncs serialise the GPU; it
/// is how a GPU run finds its slow stage.
struct StageTimer(Option<(Instant, CubeDevice)>);

impl StageTimer {
    fn start(device: &CubeDevice) -> Self {
        Self(std::env::var_os("RNNPOOL_PROFILE").map(|_| {
            let _ = CubeBackend::sync(device);
            (Instant::now(), device.clone())
        }))
    }

    fn stage(&mut self, name: &str) {
        if let Some((since, device)) = &mut self.0 {
            // A failed sync resurfaces on the next read of a result; timing is all this wants.
            let _ = CubeBackend::sync(device);
            let ms = since.elapsed().as_secs_f64() * 1e3;
            tracing::info!(stage = name, ms = format!("{ms:.3}"), "rnnpool wgpu backward");
            *since = Instant::now();
        }
    }
}

impl RnnPoolBackend for CubeBackend {
    fn rnnpool_fastgrnn(
        x: FloatTensor<Self>,
        rnn1: CellTensors<Self>,
        rnn2: CellTensors<Self>,
        patch: [usize; 2],
        stride: [usize; 2],
    ) -> FloatTensor<Self> {
        let g = grid_of(&x.shape().to_vec(), patch, stride);
        let h2 = hidden_of(&rnn2);
        let xw1 = matmul(pixel_rows(x), rnn1.w.clone());
        let summaries = scan_forward(xw1, &rnn1, &g, Stage::Rnn1);
        let xw2 = matmul(summaries, rnn2.w.clone());
        let last = scan_forward(xw2, &rnn2, &g, Stage::Rnn2);
        let nhwc = reshape(last, vec![g.batch, g.out_h(), g.out_w(), 4 * h2]);
        Ops::float_permute(nhwc, &[0, 3, 1, 2])
    }

    fn rnnpool_fastgrnn_backward(
        x: FloatTensor<Self>,
        rnn1: CellTensors<Self>,
        rnn2: CellTensors<Self>,
        grad_out: FloatTensor<Self>,
        patch: [usize; 2],
        stride: [usize; 2],
    ) -> RnnPoolGrads<Self> {
        let x_shape = x.shape().to_vec();
        let mut timer = StageTimer::start(&x.device);
        let g = grid_of(&x_shape, patch, stride);
        let (h1, h2) = (hidden_of(&rnn1), hidden_of(&rnn2));
        let pixels = pixel_rows(x);
        let xw1 = matmul(pixels.clone(), rnn1.w.clone());
        timer.stage("pixels+xw1");
        let (summaries, prev1) = scan_forward_traced(xw1.clone(), &rnn1, &g, Stage::Rnn1);
        timer.stage("scan1 fwd");
        let xw2 = matmul(summaries.clone(), rnn2.w.clone());
        let (_, prev2) = scan_forward_traced(xw2.clone(), &rnn2, &g, Stage::Rnn2);
        timer.stage("scan2 fwd");

        let dlast2 = pixel_rows(grad_out);
        let dlast2 = reshape(dlast2, vec![g.patches() * 4, h2]);
        timer.stage("xw2+dlast2");
        let s2 = scan_backward(xw2, prev2, &rnn2, dlast2, &g, Stage::Rnn2);
        timer.stage("scan2 bwd");
        let dxw2 = fold(&s2.dpre, g.patches() * g.lines(), h2, &g, Stage::Rnn2);
        timer.stage("fold2");
        let dsummaries = matmul(dxw2.clone(), transpose(rnn2.w.clone()));
        timer.stage("dsummaries");
        let grads2 = cell_grads(&rnn2, summaries, dxw2, s2, &mut timer);

        let s1 = scan_backward(xw1, prev1, &rnn1, dsummaries, &g, Stage::Rnn1);
        timer.stage("scan1 bwd");
        let dxw1 = fold(&s1.dpre, g.batch * g.height * g.width, h1, &g, Stage::Rnn1);
        timer.stage("fold1");
        let dpixels = matmul(dxw1.clone(), transpose(rnn1.w.clone()));
        timer.stage("dpixels");
        let grads1 = cell_grads(&rnn1, pixels, dxw1, s1, &mut timer);
        let [n, c, h, w] = [x_shape[0], x_shape[1], x_shape[2], x_shape[3]];
        let dx = into_contiguous(Ops::float_permute(reshape(dpixels, vec![n, h, w, c]), &[0, 3, 1, 2]));
        RnnPoolGrads { x: dx, rnn1: grads1, rnn2: grads2 }
    }
}
