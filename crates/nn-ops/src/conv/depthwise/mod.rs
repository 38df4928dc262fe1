//! Depthwise convolutions (`groups == cin`, `cout = m * cin`) by direct loops over channel
//! planes, laid out so that every kernel tap is one long contiguous multiply-add.
//!
//! Each input plane is copied, zero-padded, into `s_y x s_x` phase planes: phase `(qy, qx)` holds
//! the padded pixels `(qy + s_y r, qx + s_x c)`, each phase `cols` wide (at least the output
//! width plus the kernel's reach). Tap `(ky, kx)` of output `(oy, ox)` then reads phase
//! `(ky % s_y, kx % s_x)` at `(oy + ky / s_y, ox + kx / s_x)`, so over a whole output plane,
//! computed `cols` wide (the extra columns are discarded, or hold zeros in gradients), the tap
//! is one multiply-add of `out_h * cols` contiguous values: vectorised loops of hundreds of
//! elements even for 7x7 maps, for any kernel, stride and padding. Small maps with one output
//! channel per input channel go through `channel_blocks.rs` instead.

mod channel_blocks;

use rayon::prelude::*;

use std::mem::MaybeUninit;

use super::ConvGeometry;
use crate::buffer::{write_all, written};
use crate::simd::{Kernel, dispatch};

/// The zero-padded phase planes of one input plane.
struct Phases {
    data: Vec<f32>,
    /// Rows of each phase (with a spare row, so the last tap's run stays inside).
    rows: usize,
    /// Columns of each phase.
    cols: usize,
    stride: [usize; 2],
    padding: [usize; 2],
}

impl Phases {
    fn new(g: &ConvGeometry) -> Self {
        let ([sy, sx], [kh, kw]) = (g.stride, g.kernel);
        let cols = (g.width + 2 * g.padding[1]).div_ceil(sx).max(g.out_w() + (kw - 1) / sx);
        let rows = (g.height + 2 * g.padding[0]).div_ceil(sy).max(g.out_h() + (kh - 1) / sy) + 1;
        Self { data: vec![0.0; sy * sx * rows * cols], rows, cols, stride: g.stride, padding: g.padding }
    }

    /// The start of the run that tap `(ky, kx)` reads (or writes) for output `(0, 0)`.
    #[inline(always)]
    fn tap_start(&self, ky: usize, kx: usize) -> usize {
        let ([sy, sx], cols) = (self.stride, self.cols);
        ((ky % sy * sx + kx % sx) * self.rows + ky / sy) * cols + kx / sx
    }

    /// Where padded pixel `(y, x)` lives.
    #[inline(always)]
    fn index(&self, y: usize, x: usize) -> usize {
        let [sy, sx] = self.stride;
        ((y % sy * sx + x % sx) * self.rows + y / sy) * self.cols + x / sx
    }

    /// Fills with `plane` (`height x width`), zero padding around it.
    #[inline(always)]
    fn fill(&mut self, g: &ConvGeometry, plane: &[f32]) {
        self.data.fill(0.0);
        let ([py, px], sx) = (self.padding, self.stride[1]);
        for (y, src) in plane.chunks(g.width).enumerate() {
            // Input column x sits at padded column x + px: one contiguous run per column phase.
            for x0 in 0..sx.min(g.width) {
                let at = self.index(y + py, x0 + px);
                if sx == 1 {
                    self.data[at..at + g.width].copy_from_slice(src);
                } else {
                    let values = src[x0..].iter().step_by(sx);
                    self.data[at..].iter_mut().zip(values).for_each(|(d, &v)| *d = v);
                }
            }
        }
    }

    /// Writes the unpadded pixels into `plane`.
    #[inline(always)]
    fn write_to(&self, g: &ConvGeometry, plane: &mut [MaybeUninit<f32>]) {
        let ([py, px], sx) = (self.padding, self.stride[1]);
        for (y, dst) in plane.chunks_mut(g.width).enumerate() {
            for x0 in 0..sx.min(g.width) {
                let at = self.index(y + py, x0 + px);
                if sx == 1 {
                    write_all(dst, &self.data[at..at + g.width]);
                } else {
                    dst[x0..].iter_mut().step_by(sx).zip(&self.data[at..]).for_each(|(d, &v)| {
                        d.write(v);
                    });
                }
            }
        }
    }
}

/// `y += w x` over two equally long runs.
#[inline(always)]
fn axpy(y: &mut [f32], w: f32, x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(y, &x)| *y += w * x);
}

/// `Σ a b` over two equally long runs, in 8 lanes.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The output planes of one input plane: its phases `p` (filled here from `xi`) and, per
/// output plane, the kernel and the output; `wide` (`out_h x cols`) is scratch.
struct Forward<'a> {
    g: &'a ConvGeometry,
    p: &'a mut Phases,
    wide: &'a mut [f32],
    xi: &'a [f32],
    ws: &'a [f32],
    outs: &'a mut [MaybeUninit<f32>],
}

impl Kernel for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Forward { g, p, wide, xi, ws, outs } = self;
        let (area, ow, kw, n) = (g.kernel[0] * g.kernel[1], g.out_w(), g.kernel[1], wide.len());
        p.fill(g, xi);
        for (out, w) in outs.chunks_mut(g.out_pixels()).zip(ws.chunks(area)) {
            wide.fill(0.0);
            for ky in 0..g.kernel[0] {
                for kx in 0..kw {
                    let start = p.tap_start(ky, kx);
                    axpy(wide, w[ky * kw + kx], &p.data[start..start + n]);
                }
            }
            for (row, src) in out.chunks_mut(ow).zip(wide.chunks(p.cols)) {
                write_all(row, &src[..ow]);
            }
        }
    }
}

/// `y[n, co] = x[n, co / m] ⋆ w[co]`.
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    if channel_blocks::suits(g) {
        return channel_blocks::forward(g, x, w);
    }
    let (pi, po, m, area) = (g.in_pixels(), g.out_pixels(), g.cout / g.cin, g.kernel[0] * g.kernel[1]);
    // One input plane's phases serve its m output planes.
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(m * po).enumerate().for_each_init(
            || {
                let p = Phases::new(g);
                let wide = vec![0.0f32; g.out_h() * p.cols];
                (p, wide)
            },
            |(p, wide), (i, outs)| {
                let (n, ci) = (i / g.cin, i % g.cin);
                let (xi, ws) = (&x[(n * g.cin + ci) * pi..][..pi], &w[ci * m * area..(ci + 1) * m * area]);
                dispatch(Forward { g, p, wide, xi, ws, outs });
            },
        )
    };
    // SAFETY: the chunks cover the output and every output plane's rows are written.
    unsafe { written(g.batch * g.cout * po, fill) }
}

/// Scratch of one backward task: the input's phases, the input gradient's, and an output
/// gradient plane widened to `cols` with zeros.
struct BackwardScratch {
    input: Phases,
    grad: Phases,
    wide: Vec<f32>,
}

/// One input plane's gradient (into `dxi`, when asked for) and the weight gradients of its `m`
/// output planes (into `dws`, f64, `[m][area]`), from the input plane `xi`, its output
/// gradients `dys` and kernels `ws`.
struct Backward<'a> {
    g: &'a ConvGeometry,
    s: &'a mut BackwardScratch,
    xi: &'a [f32],
    dys: &'a [f32],
    ws: &'a [f32],
    dxi: Option<&'a mut [MaybeUninit<f32>]>,
    dws: &'a mut [f64],
}

impl Kernel for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Backward { g, s, xi, dys, ws, dxi, dws } = self;
        let (area, ow, kw, n) = (g.kernel[0] * g.kernel[1], g.out_w(), g.kernel[1], s.wide.len());
        s.input.fill(g, xi);
        s.grad.data.fill(0.0);
        for (j, (dyo, w)) in dys.chunks(g.out_pixels()).zip(ws.chunks(area)).enumerate() {
            for (dst, src) in s.wide.chunks_mut(s.input.cols).zip(dyo.chunks(ow)) {
                dst[..ow].copy_from_slice(src);
            }
            for ky in 0..g.kernel[0] {
                for kx in 0..kw {
                    let (t, start) = (ky * kw + kx, s.input.tap_start(ky, kx));
                    if dxi.is_some() {
                        axpy(&mut s.grad.data[start..start + n], w[t], &s.wide);
                    }
                    dws[j * area + t] += dot(&s.wide, &s.input.data[start..start + n]) as f64;
                }
            }
        }
        if let Some(dxi) = dxi {
            s.grad.write_to(g, dxi);
        }
    }
}

/// Per (image, input channel) plane: its gradient into `dxs[i]` (where given) and its output
/// channels' weight gradients (returned).
fn plane_grads(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dxs: Vec<Option<&mut [MaybeUninit<f32>]>>,
) -> Vec<Vec<f64>> {
    let (pi, po, m, area) = (g.in_pixels(), g.out_pixels(), g.cout / g.cin, g.kernel[0] * g.kernel[1]);
    dxs.into_par_iter()
        .enumerate()
        .map_init(
            || {
                let (input, grad) = (Phases::new(g), Phases::new(g));
                let wide = vec![0.0f32; g.out_h() * input.cols];
                BackwardScratch { input, grad, wide }
            },
            |s, (i, dxi)| {
                let (n, ci) = (i / g.cin, i % g.cin);
                let xi = &x[(n * g.cin + ci) * pi..][..pi];
                let dys = &dy[(n * g.cout + ci * m) * po..][..m * po];
                let ws = &w[ci * m * area..(ci + 1) * m * area];
                let mut dws = vec![0.0f64; m * area];
                dispatch(Backward { g, s, xi, dys, ws, dxi, dws: &mut dws });
                dws
            },
        )
        .collect()
}

/// `(dx, dw)`: `dx` when `need_dx`. Every input plane gathers its `m` output planes' gradients
/// and their weight gradients; each output channel sums its images in order.
pub fn backward(g: &ConvGeometry, x: &[f32], w: &[f32], dy: &[f32], need_dx: bool) -> (Option<Vec<f32>>, Vec<f32>) {
    if channel_blocks::suits(g) {
        return channel_blocks::backward(g, x, w, dy, need_dx);
    }
    let (planes, pi, m, area) = (g.batch * g.cin, g.in_pixels(), g.cout / g.cin, g.kernel[0] * g.kernel[1]);
    let mut parts = Vec::new();
    let dx = if need_dx {
        let fill =
            |dx: &mut [MaybeUninit<f32>]| parts = plane_grads(g, x, w, dy, dx.chunks_mut(pi).map(Some).collect());
        // SAFETY: the planes cover dx and every plane's pixels are written (write_to).
        Some(unsafe { written(planes * pi, fill) })
    } else {
        parts = plane_grads(g, x, w, dy, (0..planes).map(|_| None).collect());
        None
    };
    let mut dw = vec![0.0f64; g.cout * area];
    for (i, part) in parts.iter().enumerate() {
        let ci = i % g.cin;
        for (t, v) in dw[ci * m * area..(ci + 1) * m * area].iter_mut().zip(part) {
            *t += v;
        }
    }
    (dx, dw.into_iter().map(|v| v as f32).collect())
}
