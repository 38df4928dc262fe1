//! Depthwise convolutions with one output channel per input channel on small maps (MobileNetV2's
//! 12x12 to 3x3 at small input sizes): there a plane's taps are runs of a few dozen values and
//! the parent module's per-plane loops pay their set-up per plane. Here a task takes a block of
//! 32 channels of a group of images and lays each image's block out channels-last, zero-padded,
//! so that every (output pixel, tap) pair is one multiply-add 32 channels wide, whatever the
//! kernel, stride and padding; the layout changes in and out are 8x8 vector transposes
//! ([`crate::transpose`]: one value at a time they took half of the forward pass). Every output
//! and gradient value is summed in a fixed order (taps, then output pixels, then images in
//! order; weight gradients in f32 per image and f64 across images), so results do not depend
//! on the thread count or the vector width.

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use super::super::ConvGeometry;
use crate::buffer::{block_runs, channel_run, written};
use crate::simd::{Kernel, dispatch};
use crate::transpose::{transpose, transpose_into};

/// Channels a block holds: the vector lanes of one multiply-add.
const BLOCK: usize = 32;

/// Whether `g` goes through channel blocks: one output channel per input channel, input maps
/// of 12x12 or fewer pixels. Measured on 2 threads (`cargo bench -p nn-ops --bench ops`): on
/// 14x14 to 28x28 maps channel blocks are faster at batch 16 and 32 (0.75-0.9 of the per-plane
/// loops' time) but up to three times slower at batch 1 to 8 (a few blocks make a few tasks),
/// so larger maps stay per plane.
pub(super) fn suits(g: &ConvGeometry) -> bool {
    g.cout == g.cin && g.in_pixels() <= 144
}

/// How the work is cut: channel blocks and image groups, fixed by the shapes alone.
struct Plan {
    blocks: Vec<Range<usize>>,
    /// Images a task takes.
    group: usize,
    /// Padded input rows and columns.
    hp: usize,
    wp: usize,
}

impl Plan {
    fn new(g: &ConvGeometry) -> Self {
        let blocks: Vec<Range<usize>> = (0..g.cin).step_by(BLOCK).map(|c| c..(c + BLOCK).min(g.cin)).collect();
        // At least 16 tasks where the batch allows, so that any thread count is kept busy.
        let groups = 16usize.div_ceil(blocks.len()).clamp(1, g.batch.max(1));
        let group = g.batch.div_ceil(groups).max(1);
        Self { blocks, group, hp: g.height + 2 * g.padding[0], wp: g.width + 2 * g.padding[1] }
    }

    /// Each block's channels' kernels, tap-major: `[tap][BLOCK]`, zero past the block.
    fn weights(&self, g: &ConvGeometry, w: &[f32]) -> Vec<Vec<f32>> {
        let area = g.kernel[0] * g.kernel[1];
        let pack = |c: &Range<usize>| {
            let mut wt = vec![0.0f32; area * BLOCK];
            for (l, ch) in c.clone().enumerate() {
                for t in 0..area {
                    wt[t * BLOCK + l] = w[ch * area + t];
                }
            }
            wt
        };
        self.blocks.iter().map(pack).collect()
    }

    /// `(block, first image, that block's runs of the group's images)` for every task, blocks
    /// in order and each block's groups in order; `buf` holds `pixels` values per channel.
    fn tasks<'a, T>(&self, buf: &'a mut [T], pixels: usize) -> Vec<(usize, usize, Vec<&'a mut [T]>)> {
        let sizes: Vec<usize> = self.blocks.iter().map(|c| c.len() * pixels).collect();
        let mut tasks = Vec::new();
        for (b, runs) in block_runs(buf, &sizes).into_iter().enumerate() {
            let mut runs = runs.into_iter();
            for n0 in (0..).step_by(self.group) {
                let group: Vec<&mut [T]> = runs.by_ref().take(self.group).collect();
                if group.is_empty() {
                    break;
                }
                tasks.push((b, n0, group));
            }
        }
        tasks
    }
}

/// Lanes `s .. s + BLOCK` of `v`.
#[inline(always)]
fn lanes(v: &[f32], s: usize) -> &[f32; BLOCK] {
    v[s..].first_chunk::<BLOCK>().expect("a block's lanes lie inside its buffer")
}

/// Lanes `s .. s + BLOCK` of `v`, to write.
#[inline(always)]
fn lanes_mut(v: &mut [f32], s: usize) -> &mut [f32; BLOCK] {
    v[s..].first_chunk_mut::<BLOCK>().expect("a block's lanes lie inside its buffer")
}

/// One image's channel block, channels-first `planes` (`len / pixels` channels), channels-last
/// into `dst` at padded position `(y + pad_y, x + pad_x)` of rows `cols` wide, through `tmp`
/// (`h * w * BLOCK` values) where there is padding. `dst`'s lanes past the block keep their
/// values without padding and take `tmp`'s with it; all of them stay zero, as the zero weights
/// past the block need: only the zeroed allocations and `scatter` (whose gradient lanes past the
/// block are `0 * 0`) write them.
#[inline(always)]
fn gather(
    planes: &[f32],
    [h, w]: [usize; 2],
    [pad_y, pad_x]: [usize; 2],
    cols: usize,
    dst: &mut [f32],
    tmp: &mut [f32],
) {
    let (pixels, channels) = (h * w, planes.len() / (h * w));
    if [pad_y, pad_x] == [0, 0] && cols == w {
        return transpose(planes, pixels, [channels, pixels], dst, BLOCK);
    }
    transpose(planes, pixels, [channels, pixels], tmp, BLOCK);
    for (y, row) in tmp.chunks_exact(w * BLOCK).enumerate() {
        let start = ((y + pad_y) * cols + pad_x) * BLOCK;
        dst[start..start + w * BLOCK].copy_from_slice(row);
    }
}

/// The outputs of one task.
struct ForwardTask<'a> {
    g: &'a ConvGeometry,
    plan: &'a Plan,
    x: &'a [f32],
    wt: &'a [f32],
    c: &'a Range<usize>,
    n0: usize,
    outs: Vec<&'a mut [MaybeUninit<f32>]>,
}

impl Kernel for ForwardTask<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let ForwardTask { g, plan, x, wt, c, n0, outs } = self;
        let ([kh, kw], [sy, sx], (oh, ow)) = (g.kernel, g.stride, (g.out_h(), g.out_w()));
        let po = oh * ow;
        let mut xp = vec![0.0f32; plan.hp * plan.wp * BLOCK];
        let mut tmp = vec![0.0f32; g.in_pixels() * BLOCK];
        let mut yt = vec![0.0f32; po * BLOCK];
        for (i, out) in outs.into_iter().enumerate() {
            let xs = channel_run(x, n0 + i, g.cin, c, g.in_pixels());
            gather(xs, [g.height, g.width], g.padding, plan.wp, &mut xp, &mut tmp);
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = [0.0f32; BLOCK];
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let s = ((oy * sy + ky) * plan.wp + ox * sx + kx) * BLOCK;
                            let (wv, xv) = (lanes(wt, (ky * kw + kx) * BLOCK), lanes(&xp, s));
                            for l in 0..BLOCK {
                                acc[l] += wv[l] * xv[l];
                            }
                        }
                    }
                    *lanes_mut(&mut yt, (oy * ow + ox) * BLOCK) = acc;
                }
            }
            transpose_into(&yt, BLOCK, [po, c.len()], out, po);
        }
    }
}

/// `y[n, c] = x[n, c] ⋆ w[c]`.
pub(super) fn forward(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let plan = Plan::new(g);
    let wts = plan.weights(g, w);
    let fill = |y: &mut [MaybeUninit<f32>]| {
        plan.tasks(y, g.out_pixels()).into_par_iter().for_each(|(b, n0, outs)| {
            let c = &plan.blocks[b];
            dispatch(ForwardTask { g, plan: &plan, x, wt: &wts[b], c, n0, outs });
        })
    };
    // SAFETY: the tasks' runs cover `y` and every output pixel of every channel is written.
    unsafe { written(g.batch * g.cout * g.out_pixels(), fill) }
}

/// The gradients of one task: its images' input gradients (into `dxs`, when asked for) and
/// its block's weight gradients summed over its images (returned, `[tap][BLOCK]`, f64).
struct BackwardTask<'a> {
    g: &'a ConvGeometry,
    plan: &'a Plan,
    x: &'a [f32],
    dy: &'a [f32],
    wt: &'a [f32],
    c: &'a Range<usize>,
    n0: usize,
    images: usize,
    dxs: Option<Vec<&'a mut [MaybeUninit<f32>]>>,
}

impl Kernel for BackwardTask<'_> {
    type Output = Vec<f64>;

    #[inline(always)]
    fn run(self) -> Vec<f64> {
        let BackwardTask { g, plan, x, dy, wt, c, n0, images, mut dxs } = self;
        let ([kh, kw], [sy, sx], (oh, ow)) = (g.kernel, g.stride, (g.out_h(), g.out_w()));
        let (padded, area) = (plan.hp * plan.wp * BLOCK, kh * kw);
        let (mut xp, mut dxp) = (vec![0.0f32; padded], vec![0.0f32; padded]);
        let mut dyt = vec![0.0f32; oh * ow * BLOCK];
        let mut tmp = vec![0.0f32; g.in_pixels() * BLOCK];
        let (mut dw_image, mut dw) = (vec![0.0f32; area * BLOCK], vec![0.0f64; area * BLOCK]);
        for i in 0..images {
            let n = n0 + i;
            let xs = channel_run(x, n, g.cin, c, g.in_pixels());
            gather(xs, [g.height, g.width], g.padding, plan.wp, &mut xp, &mut tmp);
            gather(channel_run(dy, n, g.cout, c, oh * ow), [oh, ow], [0, 0], ow, &mut dyt, &mut tmp);
            // Tap by tap: a tap's weight gradient (summed in pixel order either way) and its
            // weights stay in registers over the pixels.
            dxp.fill(0.0);
            for ky in 0..kh {
                for kx in 0..kw {
                    let t = (ky * kw + kx) * BLOCK;
                    let wv = *lanes(wt, t);
                    let mut acc = [0.0f32; BLOCK];
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let s = ((oy * sy + ky) * plan.wp + ox * sx + kx) * BLOCK;
                            // Copies in and out: the loops vectorise on values, not on
                            // references into the buffers.
                            let d = *lanes(&dyt, (oy * ow + ox) * BLOCK);
                            let (xv, mut dxv) = (*lanes(&xp, s), *lanes(&dxp, s));
                            for l in 0..BLOCK {
                                acc[l] += d[l] * xv[l];
                                dxv[l] += wv[l] * d[l];
                            }
                            *lanes_mut(&mut dxp, s) = dxv;
                        }
                    }
                    *lanes_mut(&mut dw_image, t) = acc;
                }
            }
            dw.iter_mut().zip(&dw_image).for_each(|(a, &v)| *a += v as f64);
            if let Some(dxs) = dxs.as_mut() {
                scatter(g, plan, &dxp, c.len(), dxs[i], &mut tmp);
            }
        }
        dw
    }
}

/// The unpadded pixels of the channels-last `src` back into `cb` channels-first planes, through
/// `tmp` (`in_pixels * BLOCK` values).
#[inline(always)]
fn scatter(g: &ConvGeometry, plan: &Plan, src: &[f32], cb: usize, dst: &mut [MaybeUninit<f32>], tmp: &mut [f32]) {
    let ([py, px], w) = (g.padding, g.width);
    for (y, row) in tmp.chunks_exact_mut(w * BLOCK).enumerate() {
        let start = ((y + py) * plan.wp + px) * BLOCK;
        row.copy_from_slice(&src[start..start + w * BLOCK]);
    }
    transpose_into(tmp, BLOCK, [g.in_pixels(), cb], dst, g.in_pixels());
}

/// `(dx, dw)`: `dx` when `need_dx`. Each block's weight gradients add their image groups in
/// order.
pub(super) fn backward(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    need_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>) {
    let plan = Plan::new(g);
    let wts = plan.weights(g, w);
    let run = |b: usize, n0: usize, dxs: Option<Vec<&mut [MaybeUninit<f32>]>>| {
        let images = plan.group.min(g.batch - n0);
        dispatch(BackwardTask { g, plan: &plan, x, dy, wt: &wts[b], c: &plan.blocks[b], n0, images, dxs })
    };
    let mut parts: Vec<(usize, Vec<f64>)> = Vec::new();
    let dx = if need_dx {
        let fill = |dx: &mut [MaybeUninit<f32>]| {
            let tasks = plan.tasks(dx, g.in_pixels());
            parts = tasks.into_par_iter().map(|(b, n0, dxs)| (b, run(b, n0, Some(dxs)))).collect();
        };
        // SAFETY: the tasks' runs cover `dx` and every input pixel of every channel is written.
        Some(unsafe { written(g.batch * g.cin * g.in_pixels(), fill) })
    } else {
        let tasks: Vec<(usize, usize)> =
            (0..plan.blocks.len()).flat_map(|b| (0..g.batch).step_by(plan.group).map(move |n0| (b, n0))).collect();
        parts = tasks.into_par_iter().map(|(b, n0)| (b, run(b, n0, None))).collect();
        None
    };
    let area = g.kernel[0] * g.kernel[1];
    let mut dw = vec![0.0f64; g.cout * area];
    for (b, part) in &parts {
        for (l, ch) in plan.blocks[*b].clone().enumerate() {
            for t in 0..area {
                dw[ch * area + t] += part[t * BLOCK + l];
            }
        }
    }
    (dx, dw.into_iter().map(|v| v as f32).collect())
}
