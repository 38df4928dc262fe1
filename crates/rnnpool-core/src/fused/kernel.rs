//! The fused RNNPool layer on the CPU: every patch of a channels-last feature map summarised by
//! two FastGRNN cells, forward and backward, without materialising the patch tensor.
//!
//! Overlapping patches (the paper's models all use a stride of half the patch) share their RNN1
//! sweeps: the sweep along input row `y` from column `x0` is the same for every patch whose
//! rows include `y` and whose columns start at `x0`, and the sweep down column `x` from row
//! `y0` the same for every patch of that patch row. So the work is cut into blocks of
//! consecutive patch rows of one image: a block projects each of its input pixels once, runs
//! each row sweep once for all the patch rows of the block that read it and each column sweep
//! once per patch row, then RNN2 per patch. In the backward pass a shared sweep is
//! back-propagated once, from the sum of its patches' summary gradients, after the last patch
//! that reads it; the block's input gradient is projected back once per pixel. A worker keeps
//! only its block's input rows with their projections (and gradients) and the traces of the
//! sweeps still in use (a ring of `patch rows` row sweeps and one patch row of column sweeps),
//! so training memory stays the size of the input and output maps.
//!
//! Blocks are fixed by the problem size, and their parameter gradients are added in block
//! order, so results are bit-identical whatever the thread count.

use rayon::prelude::*;

use super::denormals::FlushDenormals;
use super::real::Real;
use super::scan::{self, CellGrads, CellView, Cells, StepScratch, Sweep, Trace};
use super::small::{atb_acc, matmul_acc};

/// Geometry of a layer call: a `[batch, height, width, channels]` map cut into
/// `patch[0] x patch[1]` patches at `stride`, without padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchGrid {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub patch: [usize; 2],
    pub stride: [usize; 2],
}

impl PatchGrid {
    /// Output rows: `floor((height - patch) / stride) + 1`.
    pub fn out_h(&self) -> usize {
        (self.height - self.patch[0]) / self.stride[0] + 1
    }

    pub fn out_w(&self) -> usize {
        (self.width - self.patch[1]) / self.stride[1] + 1
    }

    /// Patches over the whole batch.
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))] // the GPU kernels' launch sizes
    pub fn patches(&self) -> usize {
        self.batch * self.out_h() * self.out_w()
    }

    /// RNN1 sweeps per patch: one per row and one per column.
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))] // the GPU kernels' launch sizes
    pub fn lines(&self) -> usize {
        self.patch[0] + self.patch[1]
    }

    /// Steps of the longest sweep.
    pub fn longest(&self) -> usize {
        self.patch[0].max(self.patch[1])
    }

    /// Input columns some patch reads: `[0, used_cols)`.
    fn used_cols(&self) -> usize {
        (self.out_w() - 1) * self.stride[1] + self.patch[1]
    }

    /// Patch rows per block: as many as keep 24 blocks over the batch, up to 8 (the input rows
    /// two blocks both read are swept by each, so longer blocks share more). Fixed by the
    /// problem size alone, so the summation order never depends on the thread count. 24 rather
    /// than more: one 224x224 image under RNNPool-Face-C has 55 patch rows; 64 blocks would make
    /// them blocks of one row, each input row swept twice (measured on 2 threads: 51-53 ms
    /// forward + backward that way, 44 with blocks of two rows; batch 4 at 320x320 alike).
    fn block_rows(&self) -> usize {
        (self.batch * self.out_h() / 24).clamp(1, 8)
    }

    /// Every block, image by image, top to bottom.
    fn blocks(&self) -> Vec<Block> {
        let (ho, per) = (self.out_h(), self.block_rows());
        (0..self.batch)
            .flat_map(|b| (0..ho).step_by(per).map(move |first| Block { b, first, count: per.min(ho - first) }))
            .collect()
    }
}

/// Patch rows `first..first + count` of image `b`: the unit of work.
#[derive(Clone, Copy, Debug)]
struct Block {
    b: usize,
    first: usize,
    count: usize,
}

impl Block {
    /// The first input row the block reads.
    fn top(&self, g: &PatchGrid) -> usize {
        self.first * g.stride[0]
    }

    /// Input rows the block reads, from [`Self::top`].
    fn rows(&self, g: &PatchGrid) -> usize {
        (self.count - 1) * g.stride[0] + g.patch[0]
    }
}

/// Buffers owned by one worker, sized for the largest block. Rows are counted from the
/// block's top input row; `ring` slot `y % patch rows` holds the row sweeps of input row `y`.
struct Scratch<T> {
    /// The block's input, `[rows, used_cols, channels]`.
    px: Vec<T>,
    /// Its RNN1 projections, one row of `hidden1` per pixel.
    xw1: Vec<T>,
    /// The row sweeps of one input row, `out_w` sequences (one per patch column) of `patch[1]`
    /// steps, for the rows in use.
    ring: Vec<Trace<T>>,
    /// The column sweeps of the current patch row: `used_cols` sequences of `patch[0]` steps.
    cols: Trace<T>,
    step1: StepScratch<T>,
    /// One patch's RNN1 summaries: rows then columns, `[rows + cols, hidden1]`.
    p: Vec<T>,
    xw2: Vec<T>,
    /// RNN2 traces whose last states, in order, are row-forward, row-backward,
    /// column-forward, column-backward: one group of four for square patches, else two of two.
    tr2: Vec<Trace<T>>,
    sweeps2: Vec<Sweep>,
    step2: StepScratch<T>,
    /// Backward only (empty in the forward pass): d(x·W1) of the block, like `xw1`;
    dxw1: Vec<T>,
    /// the summed summary gradients of each ring slot's row sweeps, `[out_w, hidden1]`;
    d_rows: Vec<Vec<T>>,
    /// of the current patch row's column sweeps, `[used_cols, hidden1]`;
    d_cols: Vec<T>,
    /// one patch's d(p·W2) and d(p);
    dxw2: Vec<T>,
    dp: Vec<T>,
    /// the block's input gradient, like `px`.
    dpx: Vec<T>,
}

impl<T: Real> Scratch<T> {
    fn new(g: &PatchGrid, h1: usize, h2: usize, backward: bool) -> Self {
        let [r, c] = g.patch;
        let (wo, cols) = (g.out_w(), g.used_cols());
        let band = ((g.block_rows() - 1) * g.stride[0] + r) * cols;
        let zeros = |n| vec![T::ZERO; n];
        let grad = |n| if backward { zeros(n) } else { Vec::new() };
        let (tr2, sweeps2) = if r == c {
            (vec![Trace::new(4, r, h2)], vec![Sweep::BidirRowsCols { len: r }])
        } else {
            (
                vec![Trace::new(2, r, h2), Trace::new(2, c, h2)],
                vec![Sweep::Bidir { offset: 0, len: r }, Sweep::Bidir { offset: r, len: c }],
            )
        };
        let long = g.longest();
        Self {
            px: zeros(band * g.channels),
            xw1: zeros(band * h1),
            ring: (0..r).map(|_| Trace::new(wo, c, h1)).collect(),
            cols: Trace::new(cols, r, h1),
            step1: StepScratch::new(h1, wo.max(cols), long),
            p: zeros((r + c) * h1),
            xw2: zeros((r + c) * h2),
            tr2,
            sweeps2,
            step2: StepScratch::new(h2, 4, long),
            dxw1: grad(band * h1),
            d_rows: (0..if backward { r } else { 0 }).map(|_| zeros(wo * h1)).collect(),
            d_cols: grad(cols * h1),
            dxw2: grad((r + c) * h2),
            dp: grad((r + c) * h1),
            dpx: grad(band * g.channels),
        }
    }

    /// Copies the block's input rows and projects every pixel once.
    #[inline(always)]
    fn load(&mut self, g: &PatchGrid, x: &[T], blk: Block, rnn1: &Cells<T>) {
        let (k, cols, rows) = (g.channels, g.used_cols(), blk.rows(g));
        for y in 0..rows {
            let src = ((blk.b * g.height + blk.top(g) + y) * g.width) * k;
            self.px[y * cols * k..(y + 1) * cols * k].copy_from_slice(&x[src..src + cols * k]);
        }
        let h1 = rnn1.view.hidden;
        let n = rows * cols;
        project(&self.px[..n * k], k, rnn1.view.w, h1, &mut self.xw1[..n * h1]);
    }

    /// The RNN1 sweeps block patch row `k` reads: the row sweeps of its input rows that the
    /// previous patch row did not read (each into its ring slot), then its column sweeps.
    #[inline(always)]
    fn sweep_patch_row(&mut self, g: &PatchGrid, k: usize, rnn1: &Cells<T>) {
        let ([r, _], top) = (g.patch, k * g.stride[0]);
        let swept = if k == 0 { 0 } else { top - g.stride[0] + r };
        for y in swept.max(top)..top + r {
            scan::forward(rnn1, &self.xw1, rows_sweep(g, y), &mut self.ring[y % r], &mut self.step1);
        }
        scan::forward(rnn1, &self.xw1, cols_sweep(g, k), &mut self.cols, &mut self.step1);
    }

    /// RNN2 over the summaries of the patch in block patch row `k`, column `oj`.
    #[inline(always)]
    fn run_patch(&mut self, g: &PatchGrid, k: usize, oj: usize, rnn2: &Cells<T>) {
        let ([r, c], h1, h2) = (g.patch, rnn2.view.input, rnn2.view.hidden);
        for i in 0..r {
            let last = self.ring[(k * g.stride[0] + i) % r].last();
            self.p[i * h1..(i + 1) * h1].copy_from_slice(&last[oj * h1..(oj + 1) * h1]);
        }
        let cols = self.cols.last();
        let x0 = oj * g.stride[1];
        self.p[r * h1..(r + c) * h1].copy_from_slice(&cols[x0 * h1..(x0 + c) * h1]);
        project(&self.p, h1, rnn2.view.w, h2, &mut self.xw2);
        for (tr, &sweep) in self.tr2.iter_mut().zip(&self.sweeps2) {
            scan::forward(rnn2, &self.xw2, sweep, tr, &mut self.step2);
        }
    }

    /// The patch's output, `[4 * hidden2]`, after [`Self::run_patch`].
    fn write_output(&self, y: &mut [T]) {
        let mut at = 0;
        for tr in &self.tr2 {
            let last = tr.last();
            y[at..at + last.len()].copy_from_slice(last);
            at += last.len();
        }
    }

    /// Back-propagates `dout` (`[4 * hidden2]`) through the last [`Self::run_patch`] (patch row
    /// `k`, column `oj`), adding RNN2's gradients into `g2` and the summaries' gradients into
    /// `d_rows` and `d_cols`.
    #[inline(always)]
    fn backprop_patch(
        &mut self,
        g: &PatchGrid,
        k: usize,
        oj: usize,
        rnn2: &Cells<T>,
        dout: &[T],
        g2: &mut CellGrads<T>,
    ) {
        let ([r, c], h1) = (g.patch, rnn2.view.input);
        self.dxw2.fill(T::ZERO);
        let mut at = 0;
        for (tr, &sweep) in self.tr2.iter().zip(&self.sweeps2) {
            let n = tr.last().len();
            scan::backward(rnn2, sweep, tr, &dout[at..at + n], &mut self.dxw2, g2, &mut self.step2);
            at += n;
        }
        project_backward(&self.p, h1, rnn2, &self.dxw2, &mut self.dp, &mut g2.w);
        for i in 0..r {
            let d = &mut self.d_rows[(k * g.stride[0] + i) % r][oj * h1..(oj + 1) * h1];
            scan::add_into(d, &self.dp[i * h1..(i + 1) * h1]);
        }
        let x0 = oj * g.stride[1];
        scan::add_into(&mut self.d_cols[x0 * h1..(x0 + c) * h1], &self.dp[r * h1..(r + c) * h1]);
    }

    /// Back-propagates the column sweeps of patch row `k` from `d_cols`, then clears it.
    #[inline(always)]
    fn backprop_cols(&mut self, g: &PatchGrid, k: usize, rnn1: &Cells<T>, g1: &mut CellGrads<T>) {
        scan::backward(rnn1, cols_sweep(g, k), &self.cols, &self.d_cols, &mut self.dxw1, g1, &mut self.step1);
        self.d_cols.fill(T::ZERO);
    }

    /// Back-propagates the row sweeps of block row `y` from their slot of `d_rows`, then
    /// clears it.
    #[inline(always)]
    fn backprop_row(&mut self, g: &PatchGrid, y: usize, rnn1: &Cells<T>, g1: &mut CellGrads<T>) {
        let slot = y % g.patch[0];
        let (tr, d) = (&self.ring[slot], &self.d_rows[slot]);
        scan::backward(rnn1, rows_sweep(g, y), tr, d, &mut self.dxw1, g1, &mut self.step1);
        self.d_rows[slot].fill(T::ZERO);
    }

    /// W1's gradient and the block's input gradient from `dxw1`, added into `band` (the input
    /// rows from the block's top on).
    #[inline(always)]
    fn backprop_pixels(&mut self, g: &PatchGrid, blk: Block, rnn1: &Cells<T>, band: &mut [T], g1: &mut CellGrads<T>) {
        let (k, cols, h1) = (g.channels, g.used_cols(), rnn1.view.hidden);
        let n = blk.rows(g) * cols;
        let (px, dxw1) = (&self.px[..n * k], &self.dxw1[..n * h1]);
        project_backward(px, k, rnn1, dxw1, &mut self.dpx[..n * k], &mut g1.w);
        for y in 0..blk.rows(g) {
            let dst = y * g.width * k;
            scan::add_into(&mut band[dst..dst + cols * k], &self.dpx[y * cols * k..(y + 1) * cols * k]);
        }
    }
}

/// The row sweeps along block row `y` (one per patch column) in a block's `xw1`.
fn rows_sweep(g: &PatchGrid, y: usize) -> Sweep {
    Sweep::Strided { base: y * g.used_cols(), seq_stride: g.stride[1], step_stride: 1 }
}

/// The column sweeps of block patch row `k` in a block's `xw1`.
fn cols_sweep(g: &PatchGrid, k: usize) -> Sweep {
    let cols = g.used_cols();
    Sweep::Strided { base: k * g.stride[0] * cols, seq_stride: 1, step_stride: cols }
}

#[inline(always)]
/// `out[row] = inp[row] · W` for every row, `W` being `[inp_dim, out_dim]`.
fn project<T: Real>(inp: &[T], inp_dim: usize, w: &[T], out_dim: usize, out: &mut [T]) {
    out.fill(T::ZERO);
    matmul_acc(out, inp, inp_dim, w, out_dim);
}

#[inline(always)]
/// Backward of [`project`]: `dW += inpᵀ · dout` and `dinp = dout · Wᵀ`.
fn project_backward<T: Real>(inp: &[T], inp_dim: usize, cell: &Cells<T>, dout: &[T], dinp: &mut [T], dw: &mut [T]) {
    let out_dim = cell.view.hidden;
    atb_acc(dw, inp, inp_dim, dout, out_dim);
    dinp.fill(T::ZERO);
    matmul_acc(dinp, dout, out_dim, &cell.w_t, inp_dim);
}

/// Forward: `x` is `[batch, height, width, channels]`, the result
/// `[batch, out_h, out_w, 4 * hidden2]` in the order row-forward, row-backward,
/// column-forward, column-backward.
pub fn forward<T: Real>(g: &PatchGrid, x: &[T], rnn1: CellView<T>, rnn2: CellView<T>) -> Vec<T> {
    let (rnn1, rnn2) = (Cells::new(rnn1), Cells::new(rnn2));
    let (h1, h2) = (rnn1.view.hidden, rnn2.view.hidden);
    let row_len = g.out_w() * 4 * h2;
    let mut out = vec![T::ZERO; g.batch * g.out_h() * row_len];
    let mut tasks: Vec<(Block, &mut [T])> = Vec::new();
    let mut rest = out.as_mut_slice();
    for blk in g.blocks() {
        let (mine, tail) = rest.split_at_mut(blk.count * row_len);
        tasks.push((blk, mine));
        rest = tail;
    }
    tasks.into_par_iter().for_each_init(
        || Scratch::new(g, h1, h2, false),
        |s, (blk, out)| {
            let _flush = FlushDenormals::new();
            simd_dispatch!(forward_block(s, g, x, blk, out, &rnn1, &rnn2))
        },
    );
    out
}

/// Calls `$f` (an `#[inline(always)]` function of this module) through a copy compiled for
/// AVX-512 or AVX2 when the CPU has it, so that the hidden-size loops it inlines run 16 or 8
/// floats wide. Only the vector width changes: no operation is reordered or fused, so results
/// are bit-identical on every CPU.
macro_rules! simd_dispatch {
    ($f:ident($($arg:expr),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F (and AVX2), checked just above.
                unsafe { simd512::$f($($arg),*) }
            } else if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                unsafe { simd::$f($($arg),*) }
            } else {
                $f($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $f($($arg),*)
        }
    }};
}
use simd_dispatch;

/// Copies of the block functions compiled for one instruction set.
macro_rules! simd_copies {
    ($name:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        mod $name {
            use super::*;

            #[target_feature(enable = $features)]
            pub(super) fn forward_block<T: Real>(
                s: &mut Scratch<T>,
                g: &PatchGrid,
                x: &[T],
                blk: Block,
                out: &mut [T],
                rnn1: &Cells<T>,
                rnn2: &Cells<T>,
            ) {
                super::forward_block(s, g, x, blk, out, rnn1, rnn2)
            }

            #[allow(clippy::too_many_arguments)]
            #[target_feature(enable = $features)]
            pub(super) fn backward_block<T: Real>(
                s: &mut Scratch<T>,
                g: &PatchGrid,
                x: &[T],
                blk: Block,
                grad_out: &[T],
                band: &mut [T],
                rnn1: &Cells<T>,
                rnn2: &Cells<T>,
                acc: (&mut CellGrads<T>, &mut CellGrads<T>),
            ) {
                super::backward_block(s, g, x, blk, grad_out, band, rnn1, rnn2, acc)
            }
        }
    };
}

simd_copies!(simd, "avx2");
simd_copies!(simd512, "avx512f,avx512vl,avx2");

/// Forward of one block into `out` (its patch rows of the output).
#[inline(always)]
fn forward_block<T: Real>(
    s: &mut Scratch<T>,
    g: &PatchGrid,
    x: &[T],
    blk: Block,
    out: &mut [T],
    rnn1: &Cells<T>,
    rnn2: &Cells<T>,
) {
    let feat = 4 * rnn2.view.hidden;
    s.load(g, x, blk, rnn1);
    for (k, out_row) in out.chunks_exact_mut(g.out_w() * feat).enumerate() {
        s.sweep_patch_row(g, k, rnn1);
        for (oj, y) in out_row.chunks_exact_mut(feat).enumerate() {
            s.run_patch(g, k, oj, rnn2);
            s.write_output(y);
        }
    }
}

/// Backward of one block: parameter gradients into `acc`, input gradients into `band` (the
/// input rows from the block's top on). A row sweep is back-propagated after the last patch row
/// of the block that reads it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_block<T: Real>(
    s: &mut Scratch<T>,
    g: &PatchGrid,
    x: &[T],
    blk: Block,
    grad_out: &[T],
    band: &mut [T],
    rnn1: &Cells<T>,
    rnn2: &Cells<T>,
    acc: (&mut CellGrads<T>, &mut CellGrads<T>),
) {
    let (g1, g2) = acc;
    let ([r, _], sr) = (g.patch, g.stride[0]);
    let (ho, wo, feat) = (g.out_h(), g.out_w(), 4 * rnn2.view.hidden);
    s.load(g, x, blk, rnn1);
    s.dxw1.fill(T::ZERO);
    for k in 0..blk.count {
        s.sweep_patch_row(g, k, rnn1);
        for oj in 0..wo {
            s.run_patch(g, k, oj, rnn2);
            let at = ((blk.b * ho + blk.first + k) * wo + oj) * feat;
            s.backprop_patch(g, k, oj, rnn2, &grad_out[at..at + feat], g2);
        }
        s.backprop_cols(g, k, rnn1, g1);
        // Rows the block's next patch row reads stay for it.
        let top = k * sr;
        let done = if k + 1 == blk.count { top + r } else { (top + sr).min(top + r) };
        for y in top..done {
            s.backprop_row(g, y, rnn1, g1);
        }
    }
    s.backprop_pixels(g, blk, rnn1, band, g1);
}

/// Gradients of `sum(forward(x) * grad_out)`.
#[derive(Clone, Debug)]
pub struct Grads<T> {
    /// `[batch, height, width, channels]`, like `x`.
    pub x: Vec<T>,
    pub rnn1: CellGrads<T>,
    pub rnn2: CellGrads<T>,
}

/// Backward of [`forward`]; `grad_out` has the forward output's layout.
pub fn backward<T: Real>(g: &PatchGrid, x: &[T], rnn1: CellView<T>, rnn2: CellView<T>, grad_out: &[T]) -> Grads<T> {
    let (rnn1, rnn2) = (Cells::new(rnn1), Cells::new(rnn2));
    let (h1, h2) = (rnn1.view.hidden, rnn2.view.hidden);
    let mut dx = vec![T::ZERO; x.len()];
    let mut g1 = CellGrads::zeros(rnn1.view.input, h1);
    let mut g2 = CellGrads::zeros(rnn2.view.input, h2);

    // Blocks `n` and `n + phases` of an image never read the same input rows, so within one
    // phase every block can own the band of `phases * span` input rows from its top.
    let row = g.width * g.channels;
    let span = g.block_rows() * g.stride[0];
    let reach = (g.block_rows() - 1) * g.stride[0] + g.patch[0];
    let phases = reach.div_ceil(span);
    let blocks = g.blocks();
    let per_image = g.out_h().div_ceil(g.block_rows());
    for phase in 0..phases {
        let mut tasks: Vec<(Block, &mut [T])> = Vec::new();
        for (b, img) in dx.chunks_mut(g.height * row).enumerate() {
            let start = (phase * span * row).min(img.len());
            for (n, chunk) in img[start..].chunks_mut(phases * span * row).enumerate() {
                let i = phase + n * phases;
                if i < per_image {
                    tasks.push((blocks[b * per_image + i], chunk));
                }
            }
        }
        let partial: Vec<(CellGrads<T>, CellGrads<T>)> = tasks
            .into_par_iter()
            .map_init(
                || Scratch::new(g, h1, h2, true),
                |s, (blk, band)| {
                    let mut a1 = CellGrads::zeros(rnn1.view.input, h1);
                    let mut a2 = CellGrads::zeros(rnn2.view.input, h2);
                    let acc = (&mut a1, &mut a2);
                    let _flush = FlushDenormals::new();
                    simd_dispatch!(backward_block(s, g, x, blk, grad_out, band, &rnn1, &rnn2, acc));
                    (a1, a2)
                },
            )
            .collect();
        for (a1, a2) in &partial {
            g1.add(a1);
            g2.add(a2);
        }
    }
    Grads { x: dx, rnn1: g1.finish(&rnn1), rnn2: g2.finish(&rnn2) }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        grid: PatchGrid,
        x: Vec<f32>,
        params: Vec<Vec<f32>>,
    }

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.618 + seed).sin() * 0.7).collect()
    }

    fn case() -> Case {
        let grid = PatchGrid { batch: 3, channels: 5, height: 17, width: 14, patch: [6, 5], stride: [2, 3] };
        let (k, h1, h2) = (5, 8, 16);
        let shapes = [k * h1, h1 * h1, h1, h1, h1 * h2, h2 * h2, h2, h2];
        let params = shapes.iter().enumerate().map(|(i, &n)| values(n, i as f32)).collect();
        Case { grid, x: values(3 * 17 * 14 * 5, 9.0), params }
    }

    fn views(c: &Case) -> (CellView<'_, f32>, CellView<'_, f32>) {
        let p = &c.params;
        let view = |o: usize, input, hidden| CellView {
            w: &p[o],
            u: &p[o + 1],
            bias_gate: &p[o + 2],
            bias_update: &p[o + 3],
            zeta: 0.4,
            nu: -0.3,
            input,
            hidden,
        };
        (view(0, 5, 8), view(4, 8, 16))
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let c = case();
        let (r1, r2) = views(&c);
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                #[cfg(target_arch = "x86_64")]
                let mode = super::super::denormals::mode();
                let y = forward(&c.grid, &c.x, r1, r2);
                let g = backward(&c.grid, &c.x, r1, r2, &y);
                // This worker ran blocks too; each must hand its floating-point mode back.
                #[cfg(target_arch = "x86_64")]
                assert_eq!(super::super::denormals::mode(), mode);
                (bits(&y), bits(&g.x), bits(&g.rnn1.u), bits(&g.rnn2.w), g.rnn1.zeta.to_bits())
            })
        };
        assert_eq!(run(1), run(3));
    }

    /// f64 views of a case's parameters.
    fn views64(p: &[Vec<f64>], k: usize) -> (CellView<'_, f64>, CellView<'_, f64>) {
        let view = |o: usize, input, hidden| CellView {
            w: &p[o],
            u: &p[o + 1],
            bias_gate: &p[o + 2],
            bias_update: &p[o + 3],
            zeta: 0.4,
            nu: -0.3,
            input,
            hidden,
        };
        (view(0, k, 8), view(4, 8, 16))
    }

    /// The blocked kernel (shared sweeps, blocks of several patch rows) against the same
    /// kernel run on every patch cut out alone (a grid of one patch, nothing shared), forward
    /// and backward in f64: overlapping rows (three patch rows read each input row), a stride
    /// larger than the patch, unused columns, and a partial last block.
    #[test]
    fn shared_sweeps_give_the_per_patch_results() {
        let grids = [
            PatchGrid { batch: 10, channels: 3, height: 58, width: 15, patch: [6, 5], stride: [2, 3] },
            PatchGrid { batch: 16, channels: 2, height: 35, width: 9, patch: [3, 4], stride: [4, 2] },
        ];
        for g in grids {
            assert!(g.block_rows() > 1 && g.out_h() % g.block_rows() != 0, "{g:?} tests no block");
            let k = g.channels;
            let shapes = [k * 8, 64, 8, 8, 8 * 16, 256, 16, 16];
            let params: Vec<Vec<f64>> = shapes
                .iter()
                .enumerate()
                .map(|(i, &n)| values(n, i as f32).iter().map(|&v| v as f64).collect())
                .collect();
            let (v1, v2) = views64(&params, k);
            let x: Vec<f64> = values(g.batch * g.height * g.width * k, 9.0).iter().map(|&v| v as f64).collect();
            let feat = 64;
            let y = forward(&g, &x, v1, v2);
            let go: Vec<f64> = values(y.len(), 3.0).iter().map(|&v| v as f64).collect();
            let grads = backward(&g, &x, v1, v2, &go);

            let one = PatchGrid { batch: 1, height: g.patch[0], width: g.patch[1], stride: [1, 1], ..g };
            let mut dx = vec![0.0f64; x.len()];
            let (mut w1, mut u2) = (vec![0.0f64; k * 8], vec![0.0f64; 256]);
            for (i, (y_patch, go_patch)) in y.chunks(feat).zip(go.chunks(feat)).enumerate() {
                let (b, oi, oj) = (i / (g.out_h() * g.out_w()), i / g.out_w() % g.out_h(), i % g.out_w());
                let (y0, x0) = (oi * g.stride[0], oj * g.stride[1]);
                let at = |r: usize| ((b * g.height + y0 + r) * g.width + x0) * k;
                let patch: Vec<f64> = (0..g.patch[0]).flat_map(|r| x[at(r)..at(r) + g.patch[1] * k].to_vec()).collect();
                let want = forward(&one, &patch, v1, v2);
                assert!(want.iter().zip(y_patch).all(|(a, b)| (a - b).abs() < 1e-12), "{g:?} patch {i}");
                let pg = backward(&one, &patch, v1, v2, go_patch);
                for r in 0..g.patch[0] {
                    let row = &pg.x[r * g.patch[1] * k..(r + 1) * g.patch[1] * k];
                    scan::add_into(&mut dx[at(r)..at(r) + g.patch[1] * k], row);
                }
                scan::add_into(&mut w1, &pg.rnn1.w);
                scan::add_into(&mut u2, &pg.rnn2.u);
            }
            let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-9);
            assert!(close(&grads.x, &dx), "{g:?}: input gradient");
            assert!(close(&grads.rnn1.w, &w1) && close(&grads.rnn2.u, &u2), "{g:?}: parameter gradients");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_and_avx512_copies_compute_the_same_bits() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let wide = std::arch::is_x86_feature_detected!("avx512f");
        let c = case();
        let (v1, v2) = views(&c);
        let (rnn1, rnn2) = (Cells::new(v1), Cells::new(v2));
        let g = &c.grid;
        let blk = g.blocks()[1];
        let len = blk.count * g.out_w() * 4 * 16;
        let mut s = Scratch::new(g, 8, 16, true);
        let (mut plain, mut avx) = (vec![0.0f32; len], vec![0.0f32; len]);
        forward_block(&mut s, g, &c.x, blk, &mut plain, &rnn1, &rnn2);
        // SAFETY: AVX2 support was checked above.
        unsafe { simd::forward_block(&mut s, g, &c.x, blk, &mut avx, &rnn1, &rnn2) };
        assert_eq!(bits(&plain), bits(&avx));
        if wide {
            // SAFETY: AVX-512F support was checked above.
            unsafe { simd512::forward_block(&mut s, g, &c.x, blk, &mut avx, &rnn1, &rnn2) };
            assert_eq!(bits(&plain), bits(&avx));
        }

        let grad_out = values(g.batch * g.out_h() * g.out_w() * 4 * 16, 3.0);
        let band_len = blk.rows(g) * g.width * g.channels;
        let mut grads = |level: u8| {
            let mut band = vec![0.0f32; band_len];
            let mut a1 = CellGrads::zeros(5, 8);
            let mut a2 = CellGrads::zeros(8, 16);
            let acc = (&mut a1, &mut a2);
            let (x, go) = (&c.x, &grad_out);
            match level {
                // SAFETY: AVX-512F support was checked before asking for level 2.
                2 => unsafe { simd512::backward_block(&mut s, g, x, blk, go, &mut band, &rnn1, &rnn2, acc) },
                // SAFETY: AVX2 support was checked above.
                1 => unsafe { simd::backward_block(&mut s, g, x, blk, go, &mut band, &rnn1, &rnn2, acc) },
                _ => backward_block(&mut s, g, x, blk, go, &mut band, &rnn1, &rnn2, acc),
            }
            (bits(&band), bits(&a1.w), bits(&a1.u), bits(&a2.bias_gate), a2.nu.to_bits())
        };
        assert_eq!(grads(0), grads(1));
        if wide {
            assert_eq!(grads(0), grads(2));
        }
    }
}
