//! BatchNorm followed by an activation, in one pass over the map each way, for NCHW f32 maps.
//!
//! Training forward: per channel, the batch mean and biased variance (sums in f64, shifted by
//! the channel's first value so that a large mean costs no precision), then
//! `y = act(gamma (x - mean) / sqrt(var + eps) + beta)`. Backward, from the input and the
//! statistics alone (the normalised values and the activation's mask are recomputed, nothing
//! else is kept): with `g = dy · act'(z)`, `dbeta = Σ g`, `dgamma = Σ g x̂`,
//! `dx = gamma / sqrt(var + eps) (g − dbeta / M − x̂ dgamma / M)`. Channels run in parallel and
//! each sums its images in order, so results do not depend on the thread count.

mod small_planes;

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::buffer::written;
use crate::simd::{Kernel, dispatch};

/// The activation after the normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// None.
    Identity,
    /// `max(z, 0)`.
    Relu,
    /// `min(max(z, 0), 6)`.
    Relu6,
}

impl Activation {
    /// A code for the backend extension's scalar argument.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The activation of a [`Activation::code`].
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Relu,
            2 => Self::Relu6,
            _ => Self::Identity,
        }
    }
}

/// `[batch, channels, pixels]` of a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Images.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Pixels per channel.
    pub pixels: usize,
}

impl Layout {
    /// The planes of channel `c`, one per image.
    fn planes<'a>(&self, x: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (channels, pixels) = (self.channels, self.pixels);
        (0..self.batch).map(move |n| &x[(n * channels + c) * pixels..][..pixels])
    }

    fn count(&self) -> f64 {
        (self.batch * self.pixels) as f64
    }
}

/// Whether `l` goes through [`small_planes`]: planes shorter than 16x16 in a batch of at least
/// 8 images. Measured (`cargo bench -p nn-ops --bench ops`, 2 threads): 3x3 to 12x12 planes at
/// batch 32 take half the time or less there; with 2 or 4 images the per-plane loops are as
/// fast going forward and faster going backward.
fn small_planes(l: &Layout) -> bool {
    l.pixels < 256 && l.batch >= 8
}

/// Sums of `f(i)` over `0..n` in 8 lanes (so that the loop vectorizes), added at the end.
#[inline(always)]
fn lane_sums(n: usize, f: impl Fn(usize) -> (f32, f32)) -> (f32, f32) {
    let (mut a, mut b) = ([0.0f32; 8], [0.0f32; 8]);
    let whole = n - n % 8;
    for base in (0..whole).step_by(8) {
        for k in 0..8 {
            let (x, y) = f(base + k);
            a[k] += x;
            b[k] += y;
        }
    }
    for i in whole..n {
        let (x, y) = f(i);
        a[0] += x;
        b[0] += y;
    }
    (a.iter().sum(), b.iter().sum())
}

/// One channel's `(mean, biased variance)`.
struct ChannelStats<'a> {
    l: &'a Layout,
    x: &'a [f32],
    c: usize,
}

impl Kernel for ChannelStats<'_> {
    type Output = (f32, f32);

    #[inline(always)]
    fn run(self) -> (f32, f32) {
        let ChannelStats { l, x, c } = self;
        let shift = x[c * l.pixels];
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        for plane in l.planes(x, c) {
            let (a, a2) = lane_sums(plane.len(), |i| {
                let d = plane[i] - shift;
                (d, d * d)
            });
            s += a as f64;
            s2 += a2 as f64;
        }
        let m = s / l.count();
        ((shift as f64 + m) as f32, (s2 / l.count() - m * m).max(0.0) as f32)
    }
}

/// Per channel `(mean, biased variance)` of `x`: per image plane, sums of `x - shift` and its
/// square in f32 lanes (the shift, the channel's first value, keeps a large mean from costing
/// precision); across planes in f64.
pub fn statistics(l: &Layout, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    (0..l.channels).into_par_iter().map(|c| dispatch(ChannelStats { l, x, c })).unzip()
}

/// The normalisation: parameters, statistics (batch or running), epsilon and activation.
#[derive(Clone, Copy, Debug)]
pub struct Norm<'a> {
    /// Per-channel scale.
    pub gamma: &'a [f32],
    /// Per-channel shift.
    pub beta: &'a [f32],
    /// Per-channel mean.
    pub mean: &'a [f32],
    /// Per-channel (biased) variance.
    pub var: &'a [f32],
    /// Added to the variance.
    pub eps: f64,
    /// The activation after it.
    pub act: Activation,
}

impl Norm<'_> {
    /// `1 / sqrt(var + eps)` of channel `c`.
    fn inv_std(&self, c: usize) -> f64 {
        1.0 / (self.var[c] as f64 + self.eps).sqrt()
    }

    /// Per channel `(scale, shift)` of `z = scale x + shift`.
    fn affine(&self) -> Vec<(f32, f32)> {
        (0..self.gamma.len())
            .map(|c| {
                let scale = self.gamma[c] as f64 * self.inv_std(c);
                (scale as f32, (self.beta[c] as f64 - self.mean[c] as f64 * scale) as f32)
            })
            .collect()
    }
}

/// `out = act(a x + b)` over one plane.
struct NormalizePlane<'a> {
    out: &'a mut [MaybeUninit<f32>],
    x: &'a [f32],
    ab: (f32, f32),
    act: Activation,
}

impl Kernel for NormalizePlane<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let NormalizePlane { out, x, ab: (a, b), act } = self;
        let pairs = out.iter_mut().zip(x);
        match act {
            Activation::Identity => pairs.for_each(|(o, &v)| {
                o.write(a * v + b);
            }),
            Activation::Relu => pairs.for_each(|(o, &v)| {
                o.write((a * v + b).max(0.0));
            }),
            Activation::Relu6 => pairs.for_each(|(o, &v)| {
                o.write((a * v + b).clamp(0.0, 6.0));
            }),
        }
    }
}

/// `act(gamma (x - mean) / sqrt(var + eps) + beta)`: the training forward (batch statistics)
/// and the inference forward (running statistics) alike.
pub fn normalize(l: &Layout, x: &[f32], n: &Norm<'_>) -> Vec<f32> {
    if small_planes(l) {
        return small_planes::normalize(l, x, n);
    }
    let ab = n.affine();
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(l.pixels)
            .zip(x.par_chunks(l.pixels))
            .enumerate()
            .for_each(|(i, (out, x))| dispatch(NormalizePlane { out, x, ab: ab[i % l.channels], act: n.act }))
    };
    // SAFETY: the planes cover `y` and every element of each is written.
    unsafe { written(x.len(), fill) }
}

/// The planes of `buf` in channel order, each channel's in image order: chunks of `batch` of it
/// are the channels (one allocation, not one per channel).
fn channel_planes<'a>(l: &Layout, buf: &'a mut [MaybeUninit<f32>]) -> Vec<&'a mut [MaybeUninit<f32>]> {
    let mut slots: Vec<Option<&mut [MaybeUninit<f32>]>> = (0..l.channels * l.batch).map(|_| None).collect();
    for (i, plane) in buf.chunks_mut(l.pixels).enumerate() {
        slots[i % l.channels * l.batch + i / l.channels] = Some(plane);
    }
    slots.into_iter().flatten().collect()
}

/// The training forward: `(y, mean, biased variance)`. Each channel's statistics and then its
/// output planes, one channel at a time per thread, so that the second pass reads the channel
/// from cache.
pub fn train_forward(
    l: &Layout,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    act: Activation,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    if small_planes(l) {
        return small_planes::train_forward(l, x, gamma, beta, eps, act);
    }
    let mut stats = Vec::new();
    let fill = |y: &mut [MaybeUninit<f32>]| {
        stats = channel_planes(l, y)
            .par_chunks_mut(l.batch)
            .enumerate()
            .map(|(c, outs)| {
                let (mean, var) = dispatch(ChannelStats { l, x, c });
                let n = Norm { gamma: &gamma[c..=c], beta: &beta[c..=c], mean: &[mean], var: &[var], eps, act };
                let ab = n.affine()[0];
                for (out, xp) in outs.iter_mut().zip(l.planes(x, c)) {
                    dispatch(NormalizePlane { out, x: xp, ab, act });
                }
                (mean, var)
            })
            .collect();
    };
    // SAFETY: the channels' planes cover `y` and every element of each is written.
    let y = unsafe { written(x.len(), fill) };
    let (mean, var) = stats.into_iter().unzip();
    (y, mean, var)
}

/// An activation's derivative mask, known at compile time so that the loops vectorize.
trait Mask: Copy + Send + Sync {
    fn passes(z: f32) -> bool;
}

#[derive(Clone, Copy)]
struct Identity;
#[derive(Clone, Copy)]
struct Relu;
#[derive(Clone, Copy)]
struct Relu6;

impl Mask for Identity {
    #[inline(always)]
    fn passes(_: f32) -> bool {
        true
    }
}

impl Mask for Relu {
    #[inline(always)]
    fn passes(z: f32) -> bool {
        z > 0.0
    }
}

impl Mask for Relu6 {
    #[inline(always)]
    fn passes(z: f32) -> bool {
        z > 0.0 && z < 6.0
    }
}

/// One channel's normalisation constants for the backward pass.
#[derive(Clone, Copy)]
struct Channel {
    mean: f32,
    inv_std: f32,
    gamma: f32,
    beta: f32,
}

impl Channel {
    #[inline(always)]
    fn of(n: &Norm<'_>, c: usize) -> Self {
        Self { mean: n.mean[c], inv_std: n.inv_std(c) as f32, gamma: n.gamma[c], beta: n.beta[c] }
    }

    /// `(x̂, g)`: the normalised value and the gradient through the activation.
    #[inline(always)]
    fn grad<M: Mask>(&self, v: f32, d: f32) -> (f32, f32) {
        let xh = (v - self.mean) * self.inv_std;
        (xh, if M::passes(self.gamma * xh + self.beta) { d } else { 0.0 })
    }
}

/// One channel's `(Σ g, Σ g x̂)`, planes in image order.
struct GradSums<'a, M> {
    l: &'a Layout,
    x: &'a [f32],
    dy: &'a [f32],
    ch: Channel,
    c: usize,
    _mask: M,
}

impl<M: Mask> Kernel for GradSums<'_, M> {
    type Output = (f64, f64);

    #[inline(always)]
    fn run(self) -> (f64, f64) {
        let GradSums { l, x, dy, ch, c, .. } = self;
        let (mut sg, mut sgx) = (0.0f64, 0.0f64);
        for (xp, dp) in l.planes(x, c).zip(l.planes(dy, c)) {
            let (a, b) = lane_sums(xp.len(), |i| {
                let (xh, g) = ch.grad::<M>(xp[i], dp[i]);
                (g, g * xh)
            });
            sg += a as f64;
            sgx += b as f64;
        }
        (sg, sgx)
    }
}

/// One plane of `dx = gamma / sqrt(var + eps) (g − Σg / M − x̂ Σgx̂ / M)`.
struct InputGradPlane<'a, M> {
    out: &'a mut [MaybeUninit<f32>],
    x: &'a [f32],
    dy: &'a [f32],
    ch: Channel,
    /// `(Σg / M, Σgx̂ / M)`.
    means: (f32, f32),
    _mask: M,
}

impl<M: Mask> Kernel for InputGradPlane<'_, M> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let InputGradPlane { out, x, dy, ch, means: (mg, mgx), .. } = self;
        let k = ch.gamma * ch.inv_std;
        for ((o, &v), &d) in out.iter_mut().zip(x).zip(dy) {
            let (xh, g) = ch.grad::<M>(v, d);
            o.write(k * (g - mg - xh * mgx));
        }
    }
}

/// Per channel: `(Σ g, Σ g x̂)`, then that channel's input gradient planes (from cache).
fn backward_with<M: Mask>(l: &Layout, x: &[f32], dy: &[f32], n: &Norm<'_>, mask: M) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    if small_planes(l) {
        return small_planes::backward_with(l, x, dy, n, mask);
    }
    let mut sums: Vec<(f64, f64)> = Vec::new();
    let fill = |dx: &mut [MaybeUninit<f32>]| {
        sums = channel_planes(l, dx)
            .par_chunks_mut(l.batch)
            .enumerate()
            .map(|(c, outs)| {
                let ch = Channel::of(n, c);
                let (sg, sgx) = dispatch(GradSums { l, x, dy, ch, c, _mask: mask });
                let means = ((sg / l.count()) as f32, (sgx / l.count()) as f32);
                for ((out, xp), dp) in outs.iter_mut().zip(l.planes(x, c)).zip(l.planes(dy, c)) {
                    dispatch(InputGradPlane { out, x: xp, dy: dp, ch, means, _mask: mask });
                }
                (sg, sgx)
            })
            .collect();
    };
    // SAFETY: the channels' planes cover `dx` and every element of each is written.
    let dx = unsafe { written(x.len(), fill) };
    let dgamma = sums.iter().map(|s| s.1 as f32).collect();
    let dbeta = sums.iter().map(|s| s.0 as f32).collect();
    (dx, dgamma, dbeta)
}

/// `(dx, dgamma, dbeta)` of the training forward, from its input `x`, its batch statistics
/// (in `n`) and `dy`.
pub fn backward(l: &Layout, x: &[f32], dy: &[f32], n: &Norm<'_>) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    match n.act {
        Activation::Identity => backward_with(l, x, dy, n, Identity),
        Activation::Relu => backward_with(l, x, dy, n, Relu),
        Activation::Relu6 => backward_with(l, x, dy, n, Relu6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_survive_a_large_mean() {
        let l = Layout { batch: 2, channels: 1, pixels: 4 };
        let x = [1e4 + 1.0, 1e4 - 1.0, 1e4 + 1.0, 1e4 - 1.0, 1e4 + 1.0, 1e4 - 1.0, 1e4 + 1.0, 1e4 - 1.0];
        let (m, v) = statistics(&l, &x);
        assert_eq!((m[0], v[0]), (1e4, 1.0));
    }

    #[test]
    fn activation_codes_round_trip() {
        for a in [Activation::Identity, Activation::Relu, Activation::Relu6] {
            assert_eq!(Activation::from_code(a.code()), a);
        }
        assert!(!Relu6::passes(7.0) && Relu6::passes(5.0) && !Relu::passes(0.0) && Identity::passes(-1.0));
    }
}
