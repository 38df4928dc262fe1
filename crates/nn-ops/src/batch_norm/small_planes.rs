//! BatchNorm + activation on planes of few pixels in a batch of many images (MobileNetV2's
//! maps below 16x16): there the parent module's per-plane loops run one or two vectors long and
//! pay a call per plane. Here a task takes a block of consecutive channels, which is one
//! contiguous run of every image, and works element by element across the images, with each
//! channel's constants spread over its pixels, so that every loop is as long as the block. Sums
//! run over the images in order for each element, then over a channel's pixels in order, so
//! results do not depend on the thread count or on the block size.

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use super::{Activation, Channel, Layout, Mask, Norm};
use crate::buffer::{block_runs, channel_run, written};
use crate::simd::{Kernel, dispatch};

/// Values (over the whole batch) a task takes at most, unless one channel has more: its block
/// stays in the core's L2 cache between the two passes.
const TASK_VALUES: usize = 1 << 15;

/// Blocks of consecutive channels, at least four per thread so that the threads finish
/// together. Results do not depend on the blocks.
fn blocks(l: &Layout) -> Vec<Range<usize>> {
    let tasks = (l.batch * l.channels * l.pixels).div_ceil(TASK_VALUES).max(4 * rayon::current_num_threads());
    let per = l.channels.div_ceil(tasks).max(1);
    (0..l.channels).step_by(per).map(|c| c..(c + per).min(l.channels)).collect()
}

/// The values of each block in an image.
fn sizes(l: &Layout, blocks: &[Range<usize>]) -> Vec<usize> {
    blocks.iter().map(|r| r.len() * l.pixels).collect()
}

/// Block `r`'s run of image `n` in `v`.
fn run<'a>(l: &Layout, v: &'a [f32], n: usize, r: &Range<usize>) -> &'a [f32] {
    channel_run(v, n, l.channels, r, l.pixels)
}

/// `f(c)` of each channel of `r`, repeated over the channel's pixels.
fn spread(l: &Layout, r: &Range<usize>, f: impl Fn(usize) -> f32) -> Vec<f32> {
    r.clone().flat_map(|c| std::iter::repeat_n(f(c), l.pixels)).collect()
}

/// Per channel of `r`, the sums of `a` and `b` over its pixels, in order.
fn channel_sums(l: &Layout, r: &Range<usize>, a: &[f64], b: &[f64]) -> Vec<(f64, f64)> {
    (0..r.len())
        .map(|i| {
            let span = i * l.pixels..(i + 1) * l.pixels;
            (a[span.clone()].iter().sum(), b[span].iter().sum())
        })
        .collect()
}

/// Per element of a block, `Σ_n (x - shift)` and `Σ_n (x - shift)²` over the images.
struct Moments<'a> {
    l: &'a Layout,
    x: &'a [f32],
    r: &'a Range<usize>,
    shift: &'a [f32],
}

impl Kernel for Moments<'_> {
    type Output = (Vec<f64>, Vec<f64>);

    #[inline(always)]
    fn run(self) -> (Vec<f64>, Vec<f64>) {
        let Moments { l, x, r, shift } = self;
        let (mut s, mut s2) = (vec![0.0f64; shift.len()], vec![0.0f64; shift.len()]);
        for n in 0..l.batch {
            let xs = run(l, x, n, r);
            for (((s, s2), &v), &sh) in s.iter_mut().zip(s2.iter_mut()).zip(xs).zip(shift) {
                let d = (v - sh) as f64;
                *s += d;
                *s2 += d * d;
            }
        }
        (s, s2)
    }
}

/// One block's batch `(mean, biased variance)` per channel, shifted by each channel's first
/// value as the parent module's statistics are.
fn block_statistics(l: &Layout, x: &[f32], r: &Range<usize>) -> Vec<(f32, f32)> {
    let first = |c: usize| x[c * l.pixels];
    let shift = spread(l, r, first);
    let (s, s2) = dispatch(Moments { l, x, r, shift: &shift });
    let count = l.count();
    r.clone()
        .zip(channel_sums(l, r, &s, &s2))
        .map(|(c, (s, s2))| {
            let m = s / count;
            ((first(c) as f64 + m) as f32, (s2 / count - m * m).max(0.0) as f32)
        })
        .collect()
}

/// `out = act(a x + b)` element by element over every image's run of a block.
struct NormalizeBlock<'a> {
    outs: Vec<&'a mut [MaybeUninit<f32>]>,
    l: &'a Layout,
    x: &'a [f32],
    r: &'a Range<usize>,
    a: &'a [f32],
    b: &'a [f32],
    act: Activation,
}

impl Kernel for NormalizeBlock<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let NormalizeBlock { outs, l, x, r, a, b, act } = self;
        for (n, out) in outs.into_iter().enumerate() {
            let values = out.iter_mut().zip(run(l, x, n, r)).zip(a.iter().zip(b));
            match act {
                Activation::Identity => values.for_each(|((o, &v), (&a, &b))| {
                    o.write(a * v + b);
                }),
                Activation::Relu => values.for_each(|((o, &v), (&a, &b))| {
                    o.write((a * v + b).max(0.0));
                }),
                Activation::Relu6 => values.for_each(|((o, &v), (&a, &b))| {
                    o.write((a * v + b).clamp(0.0, 6.0));
                }),
            }
        }
    }
}

/// `act(gamma (x - mean) / sqrt(var + eps) + beta)` with the statistics of `n`.
pub(super) fn normalize(l: &Layout, x: &[f32], n: &Norm<'_>) -> Vec<f32> {
    let ab = n.affine();
    let blocks = blocks(l);
    let fill = |y: &mut [MaybeUninit<f32>]| {
        block_runs(y, &sizes(l, &blocks)).into_par_iter().zip(&blocks).for_each(|(outs, r)| {
            let (a, b) = (spread(l, r, |c| ab[c].0), spread(l, r, |c| ab[c].1));
            dispatch(NormalizeBlock { outs, l, x, r, a: &a, b: &b, act: n.act });
        })
    };
    // SAFETY: the blocks' runs cover `y` and every element of each is written.
    unsafe { written(x.len(), fill) }
}

/// The training forward: `(y, mean, biased variance)`, each block's statistics and then its
/// output, so that the second pass reads the block from cache.
pub(super) fn train_forward(
    l: &Layout,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    act: Activation,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let blocks = blocks(l);
    let mut stats = Vec::new();
    let fill = |y: &mut [MaybeUninit<f32>]| {
        stats = block_runs(y, &sizes(l, &blocks))
            .into_par_iter()
            .zip(&blocks)
            .map(|(outs, r)| {
                let (mean, var): (Vec<f32>, Vec<f32>) = block_statistics(l, x, r).into_iter().unzip();
                let (gamma, beta) = (&gamma[r.clone()], &beta[r.clone()]);
                let ab = Norm { gamma, beta, mean: &mean, var: &var, eps, act }.affine();
                let start = r.start;
                let (a, b) = (spread(l, r, |c| ab[c - start].0), spread(l, r, |c| ab[c - start].1));
                dispatch(NormalizeBlock { outs, l, x, r, a: &a, b: &b, act });
                (mean, var)
            })
            .collect();
    };
    // SAFETY: the blocks' runs cover `y` and every element of each is written.
    let y = unsafe { written(x.len(), fill) };
    let (mean, var): (Vec<Vec<f32>>, Vec<Vec<f32>>) = stats.into_iter().unzip();
    (y, mean.concat(), var.concat())
}

/// A block's channel constants, spread over its pixels.
struct Spread {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Spread {
    fn of(l: &Layout, r: &Range<usize>, n: &Norm<'_>) -> Self {
        let ch = |c| Channel::of(n, c);
        Self {
            mean: spread(l, r, |c| ch(c).mean),
            inv_std: spread(l, r, |c| ch(c).inv_std),
            gamma: spread(l, r, |c| ch(c).gamma),
            beta: spread(l, r, |c| ch(c).beta),
        }
    }

    /// Each element's constants, in order.
    #[inline(always)]
    fn channels(&self) -> impl Iterator<Item = Channel> + '_ {
        let k = self.mean.iter().zip(&self.inv_std).zip(self.gamma.iter().zip(&self.beta));
        k.map(|((&mean, &inv_std), (&gamma, &beta))| Channel { mean, inv_std, gamma, beta })
    }
}

/// Per element of a block, `Σ_n g` and `Σ_n g x̂` over the images.
struct GradMoments<'a, M> {
    l: &'a Layout,
    x: &'a [f32],
    dy: &'a [f32],
    r: &'a Range<usize>,
    k: &'a Spread,
    _mask: M,
}

impl<M: Mask> Kernel for GradMoments<'_, M> {
    type Output = (Vec<f64>, Vec<f64>);

    #[inline(always)]
    fn run(self) -> (Vec<f64>, Vec<f64>) {
        let GradMoments { l, x, dy, r, k, .. } = self;
        let len = k.mean.len();
        let (mut sg, mut sgx) = (vec![0.0f64; len], vec![0.0f64; len]);
        for n in 0..l.batch {
            let values = run(l, x, n, r).iter().zip(run(l, dy, n, r)).zip(k.channels());
            for (((&v, &d), ch), (sg, sgx)) in values.zip(sg.iter_mut().zip(sgx.iter_mut())) {
                let (xh, g) = ch.grad::<M>(v, d);
                *sg += g as f64;
                *sgx += (g * xh) as f64;
            }
        }
        (sg, sgx)
    }
}

/// `dx = gamma / sqrt(var + eps) (g − Σg / M − x̂ Σgx̂ / M)` over every image's run of a block.
struct InputGradBlock<'a, M> {
    outs: Vec<&'a mut [MaybeUninit<f32>]>,
    l: &'a Layout,
    x: &'a [f32],
    dy: &'a [f32],
    r: &'a Range<usize>,
    k: &'a Spread,
    /// `Σg / M` and `Σgx̂ / M`, spread.
    means: (&'a [f32], &'a [f32]),
    _mask: M,
}

impl<M: Mask> Kernel for InputGradBlock<'_, M> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let InputGradBlock { outs, l, x, dy, r, k, means: (mg, mgx), .. } = self;
        for (n, out) in outs.into_iter().enumerate() {
            let values = run(l, x, n, r).iter().zip(run(l, dy, n, r)).zip(k.channels());
            for ((o, ((&v, &d), ch)), (&mg, &mgx)) in out.iter_mut().zip(values).zip(mg.iter().zip(mgx)) {
                let (xh, g) = ch.grad::<M>(v, d);
                o.write(ch.gamma * ch.inv_std * (g - mg - xh * mgx));
            }
        }
    }
}

/// `(dx, dgamma, dbeta)` of the training forward: per block, its gradient sums and then its
/// input gradient (from cache).
pub(super) fn backward_with<M: Mask>(
    l: &Layout,
    x: &[f32],
    dy: &[f32],
    n: &Norm<'_>,
    mask: M,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let blocks = blocks(l);
    let mut sums: Vec<Vec<(f64, f64)>> = Vec::new();
    let fill = |dx: &mut [MaybeUninit<f32>]| {
        sums = block_runs(dx, &sizes(l, &blocks))
            .into_par_iter()
            .zip(&blocks)
            .map(|(outs, r)| {
                let k = Spread::of(l, r, n);
                let (sg, sgx) = dispatch(GradMoments { l, x, dy, r, k: &k, _mask: mask });
                let per_channel = channel_sums(l, r, &sg, &sgx);
                let count = l.count();
                let mg = spread(l, r, |c| (per_channel[c - r.start].0 / count) as f32);
                let mgx = spread(l, r, |c| (per_channel[c - r.start].1 / count) as f32);
                dispatch(InputGradBlock { outs, l, x, dy, r, k: &k, means: (&mg, &mgx), _mask: mask });
                per_channel
            })
            .collect();
    };
    // SAFETY: the blocks' runs cover `dx` and every element of each is written.
    let dx = unsafe { written(x.len(), fill) };
    let sums = sums.concat();
    (dx, sums.iter().map(|s| s.1 as f32).collect(), sums.iter().map(|s| s.0 as f32).collect())
}
