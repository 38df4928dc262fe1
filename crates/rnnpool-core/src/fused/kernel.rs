//! The fused RNNPool layer on the CPU: every patch of a channels-last feature map summarised by
//! two FastGRNN cells, forward and backward, without materialising the patch tensor.
//!
//! Work is split by patch rows `(image, output row)`; each patch is computed start to finish in
//! small per-thread buffers that stay in L1/L2, which is where the speed over a batched
//! tensor-op scan (one pass over memory per op per time step) comes from. The backward pass
//! recomputes each patch's forward trace instead of storing it, so training memory is the
//! size of the input and output maps only.
//!
//! Parameter gradients are summed per fixed group of patch rows and the groups are then added in
//! order, so results are bit-identical whatever the thread count.

use rayon::prelude::*;

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

    fn pixels(&self) -> usize {
        self.patch[0] * self.patch[1]
    }
}

/// Patch-sized buffers owned by one worker.
struct Scratch<T> {
    /// The patch, `[rows * cols, channels]`.
    px: Vec<T>,
    /// RNN1 input projections, one row per pixel.
    xw1: Vec<T>,
    /// RNN1 traces: all row sweeps, then all column sweeps.
    tr1: [Trace<T>; 2],
    sweeps1: [Sweep; 2],
    /// RNN1 summaries: row summaries then column summaries, `[rows + cols, hidden1]`.
    p: Vec<T>,
    xw2: Vec<T>,
    /// RNN2 traces whose last states, in order, are row-forward, row-backward,
    /// column-forward, column-backward: one group of four for square patches, else two of two.
    tr2: Vec<Trace<T>>,
    sweeps2: Vec<Sweep>,
    step1: StepScratch<T>,
    step2: StepScratch<T>,
    dxw1: Vec<T>,
    dxw2: Vec<T>,
    dp: Vec<T>,
    /// d(patch), same layout as `px`.
    dpx: Vec<T>,
}

impl<T: Real> Scratch<T> {
    fn new(g: &PatchGrid, h1: usize, h2: usize) -> Self {
        let [r, c] = g.patch;
        let px = g.pixels();
        let zeros = |n| vec![T::ZERO; n];
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
            px: zeros(px * g.channels),
            xw1: zeros(px * h1),
            tr1: [Trace::new(r, c, h1), Trace::new(c, r, h1)],
            sweeps1: [Sweep::Rows { cols: c }, Sweep::Cols { cols: c }],
            p: zeros((r + c) * h1),
            xw2: zeros((r + c) * h2),
            tr2,
            sweeps2,
            step1: StepScratch::new(h1, long, long),
            step2: StepScratch::new(h2, 4, long),
            dxw1: zeros(px * h1),
            dxw2: zeros((r + c) * h2),
            dp: zeros((r + c) * h1),
            dpx: zeros(px * g.channels),
        }
    }

    #[inline(always)]
    /// Copies the patch whose top-left pixel is `(y0, x0)` of image `b`.
    fn gather(&mut self, g: &PatchGrid, x: &[T], b: usize, y0: usize, x0: usize) {
        let [r, c] = g.patch;
        let k = g.channels;
        for i in 0..r {
            let src = ((b * g.height + y0 + i) * g.width + x0) * k;
            self.px[i * c * k..(i + 1) * c * k].copy_from_slice(&x[src..src + c * k]);
        }
    }

    #[inline(always)]
    /// Runs both cells over the gathered patch, leaving all traces in place.
    fn run(&mut self, g: &PatchGrid, rnn1: &Cells<T>, rnn2: &Cells<T>) {
        let (k, h1, h2) = (g.channels, rnn1.view.hidden, rnn2.view.hidden);
        project(&self.px, k, rnn1.view.w, h1, &mut self.xw1);
        let mut at = 0;
        for (tr, &sweep) in self.tr1.iter_mut().zip(&self.sweeps1) {
            scan::forward(rnn1, &self.xw1, sweep, tr, &mut self.step1);
            let last = tr.last();
            self.p[at..at + last.len()].copy_from_slice(last);
            at += last.len();
        }
        project(&self.p, h1, rnn2.view.w, h2, &mut self.xw2);
        for (tr, &sweep) in self.tr2.iter_mut().zip(&self.sweeps2) {
            scan::forward(rnn2, &self.xw2, sweep, tr, &mut self.step2);
        }
    }

    /// The patch's output, `[4 * hidden2]`, after [`Self::run`].
    fn write_output(&self, y: &mut [T]) {
        let mut at = 0;
        for tr in &self.tr2 {
            let last = tr.last();
            y[at..at + last.len()].copy_from_slice(last);
            at += last.len();
        }
    }

    #[inline(always)]
    /// Back-propagates `dout` (`[4 * hidden2]`, this patch's output gradient) through the traces
    /// of the last [`Self::run`], adding parameter gradients and leaving d(patch) in `dpx`.
    fn backprop(
        &mut self,
        g: &PatchGrid,
        rnn1: &Cells<T>,
        rnn2: &Cells<T>,
        dout: &[T],
        g1: &mut CellGrads<T>,
        g2: &mut CellGrads<T>,
    ) {
        let (k, h1) = (g.channels, rnn1.view.hidden);
        self.dxw2.fill(T::ZERO);
        let mut at = 0;
        for (tr, &sweep) in self.tr2.iter().zip(&self.sweeps2) {
            let n = tr.last().len();
            scan::backward(rnn2, sweep, tr, &dout[at..at + n], &mut self.dxw2, g2, &mut self.step2);
            at += n;
        }
        project_backward(&self.p, h1, rnn2, &self.dxw2, &mut self.dp, &mut g2.w);
        self.dxw1.fill(T::ZERO);
        let mut at = 0;
        for (tr, &sweep) in self.tr1.iter().zip(&self.sweeps1) {
            let n = tr.last().len();
            scan::backward(rnn1, sweep, tr, &self.dp[at..at + n], &mut self.dxw1, g1, &mut self.step1);
            at += n;
        }
        project_backward(&self.px, k, rnn1, &self.dxw1, &mut self.dpx, &mut g1.w);
    }
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
    let (ho, wo) = (g.out_h(), g.out_w());
    let feat = 4 * h2;
    let mut out = vec![T::ZERO; g.batch * ho * wo * feat];
    out.par_chunks_mut(wo * feat).enumerate().for_each_init(
        || Scratch::new(g, h1, h2),
        |s, (task, out_row)| {
            let row = PatchRow { b: task / ho, oi: task % ho };
            simd_dispatch!(forward_row(s, g, x, row, out_row, &rnn1, &rnn2))
        },
    );
    out
}

/// One row of patches: image `b`, output row `oi`.
#[derive(Clone, Copy)]
struct PatchRow {
    b: usize,
    oi: usize,
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

/// AVX2 instantiations of the row functions.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::*;

    #[target_feature(enable = "avx2")]
    pub(super) fn forward_row<T: Real>(
        s: &mut Scratch<T>,
        g: &PatchGrid,
        x: &[T],
        row: PatchRow,
        out_row: &mut [T],
        rnn1: &Cells<T>,
        rnn2: &Cells<T>,
    ) {
        super::forward_row(s, g, x, row, out_row, rnn1, rnn2)
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2")]
    pub(super) fn backward_row<T: Real>(
        s: &mut Scratch<T>,
        g: &PatchGrid,
        x: &[T],
        row: PatchRow,
        grad_out: &[T],
        band: &mut [T],
        rnn1: &Cells<T>,
        rnn2: &Cells<T>,
        acc: (&mut CellGrads<T>, &mut CellGrads<T>),
    ) {
        super::backward_row(s, g, x, row, grad_out, band, rnn1, rnn2, acc)
    }
}

/// AVX-512 instantiations of the row functions.
#[cfg(target_arch = "x86_64")]
mod simd512 {
    use super::*;

    #[target_feature(enable = "avx512f,avx512vl,avx2")]
    pub(super) fn forward_row<T: Real>(
        s: &mut Scratch<T>,
        g: &PatchGrid,
        x: &[T],
        row: PatchRow,
        out_row: &mut [T],
        rnn1: &Cells<T>,
        rnn2: &Cells<T>,
    ) {
        super::forward_row(s, g, x, row, out_row, rnn1, rnn2)
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512vl,avx2")]
    pub(super) fn backward_row<T: Real>(
        s: &mut Scratch<T>,
        g: &PatchGrid,
        x: &[T],
        row: PatchRow,
        grad_out: &[T],
        band: &mut [T],
        rnn1: &Cells<T>,
        rnn2: &Cells<T>,
        acc: (&mut CellGrads<T>, &mut CellGrads<T>),
    ) {
        super::backward_row(s, g, x, row, grad_out, band, rnn1, rnn2, acc)
    }
}

/// Forward of one row of patches into `out_row` (`[out_w, 4 * hidden2]`).
#[inline(always)]
fn forward_row<T: Real>(
    s: &mut Scratch<T>,
    g: &PatchGrid,
    x: &[T],
    row: PatchRow,
    out_row: &mut [T],
    rnn1: &Cells<T>,
    rnn2: &Cells<T>,
) {
    let h2 = rnn2.view.hidden;
    for (oj, y) in out_row.chunks_exact_mut(4 * h2).enumerate() {
        s.gather(g, x, row.b, row.oi * g.stride[0], oj * g.stride[1]);
        s.run(g, rnn1, rnn2);
        s.write_output(y);
    }
}

/// Backward of one row of patches: parameter gradients into `acc`, input gradients into
/// `band` (the input rows from this patch row's first row on).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_row<T: Real>(
    s: &mut Scratch<T>,
    g: &PatchGrid,
    x: &[T],
    row: PatchRow,
    grad_out: &[T],
    band: &mut [T],
    rnn1: &Cells<T>,
    rnn2: &Cells<T>,
    acc: (&mut CellGrads<T>, &mut CellGrads<T>),
) {
    let (a1, a2) = acc;
    let [r, c] = g.patch;
    let k = g.channels;
    let (ho, wo, feat) = (g.out_h(), g.out_w(), 4 * rnn2.view.hidden);
    for oj in 0..wo {
        let (y0, x0) = (row.oi * g.stride[0], oj * g.stride[1]);
        s.gather(g, x, row.b, y0, x0);
        s.run(g, rnn1, rnn2);
        let at = ((row.b * ho + row.oi) * wo + oj) * feat;
        s.backprop(g, rnn1, rnn2, &grad_out[at..at + feat], a1, a2);
        for i in 0..r {
            let dst = (i * g.width + x0) * k;
            scan::add_into(&mut band[dst..dst + c * k], &s.dpx[i * c * k..(i + 1) * c * k]);
        }
    }
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
    let (k, h1, h2) = (g.channels, rnn1.view.hidden, rnn2.view.hidden);
    let ho = g.out_h();
    let (r, sr) = (g.patch[0], g.stride[0]);
    let mut dx = vec![T::ZERO; x.len()];
    let mut g1 = CellGrads::zeros(rnn1.view.input, h1);
    let mut g2 = CellGrads::zeros(rnn2.view.input, h2);

    // Patch rows `oi` and `oi + phases` never overlap, so within one phase every patch row can
    // own the band of `phases * stride` input rows starting at its first row.
    let phases = r.div_ceil(sr);
    let band = phases * sr * g.width * k;
    let image = g.height * g.width * k;
    let total_rows = g.batch * ho;
    // Fixed by the problem size alone, so the summation order never depends on the scheduler.
    let rows_per_group = total_rows.div_ceil(256).max(1);
    for phase in 0..phases {
        let mut tasks: Vec<(usize, usize, &mut [T])> = Vec::new();
        for (b, img) in dx.chunks_mut(image).enumerate() {
            let start = (phase * sr * g.width * k).min(img.len());
            for (n, chunk) in img[start..].chunks_mut(band).enumerate() {
                let oi = phase + n * phases;
                if oi < ho {
                    tasks.push((b, oi, chunk));
                }
            }
        }
        let partial: Vec<(CellGrads<T>, CellGrads<T>)> = tasks
            .par_chunks_mut(rows_per_group)
            .map(|group| {
                let mut s = Scratch::new(g, h1, h2);
                let mut a1 = CellGrads::zeros(rnn1.view.input, h1);
                let mut a2 = CellGrads::zeros(rnn2.view.input, h2);
                for (b, oi, band) in group.iter_mut() {
                    let row = PatchRow { b: *b, oi: *oi };
                    let acc = (&mut a1, &mut a2);
                    simd_dispatch!(backward_row(&mut s, g, x, row, grad_out, band, &rnn1, &rnn2, acc));
                }
                (a1, a2)
            })
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
                let y = forward(&c.grid, &c.x, r1, r2);
                let g = backward(&c.grid, &c.x, r1, r2, &y);
                (bits(&y), bits(&g.x), bits(&g.rnn1.u), bits(&g.rnn2.w), g.rnn1.zeta.to_bits())
            })
        };
        assert_eq!(run(1), run(3));
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
        let width = g.out_w() * 4 * 16;
        let mut s = Scratch::new(g, 8, 16);
        let row = PatchRow { b: 1, oi: 2 };
        let (mut plain, mut avx) = (vec![0.0f32; width], vec![0.0f32; width]);
        forward_row(&mut s, g, &c.x, row, &mut plain, &rnn1, &rnn2);
        // SAFETY: AVX2 support was checked above.
        unsafe { simd::forward_row(&mut s, g, &c.x, row, &mut avx, &rnn1, &rnn2) };
        assert_eq!(bits(&plain), bits(&avx));
        if wide {
            // SAFETY: AVX-512F support was checked above.
            unsafe { simd512::forward_row(&mut s, g, &c.x, row, &mut avx, &rnn1, &rnn2) };
            assert_eq!(bits(&plain), bits(&avx));
        }

        let grad_out = values(g.batch * g.out_h() * width, 3.0);
        let band_len = g.patch[0].div_ceil(g.stride[0]) * g.stride[0] * g.width * g.channels;
        let mut grads = |level: u8| {
            let mut band = vec![0.0f32; band_len];
            let mut a1 = CellGrads::zeros(5, 8);
            let mut a2 = CellGrads::zeros(8, 16);
            let acc = (&mut a1, &mut a2);
            match level {
                // SAFETY: AVX-512F support was checked before asking for level 2.
                2 => unsafe { simd512::backward_row(&mut s, g, &c.x, row, &grad_out, &mut band, &rnn1, &rnn2, acc) },
                // SAFETY: AVX2 support was checked above.
                1 => unsafe { simd::backward_row(&mut s, g, &c.x, row, &grad_out, &mut band, &rnn1, &rnn2, acc) },
                _ => backward_row(&mut s, g, &c.x, row, &grad_out, &mut band, &rnn1, &rnn2, acc),
            }
            (bits(&band), bits(&a1.w), bits(&a1.u), bits(&a2.bias_gate), a2.nu.to_bits())
        };
        assert_eq!(grads(0), grads(1));
        if wide {
            assert_eq!(grads(0), grads(2));
        }
    }
}
