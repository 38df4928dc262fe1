//! Convolutions that are neither 1x1 nor depthwise (the stems, the detector heads, DenseNet's
//! 3x3 and 7x7 layers, grouped convolutions): per image and group, the input patches laid out as
//! a `taps x pixels` matrix (im2col) and one matrix product with the weights. The backward pass
//! rebuilds that matrix instead of keeping it, so training memory stays the size of the maps.

use rayon::prelude::*;

use super::{ConvGeometry, columns, images_in_parallel, input_row, sum_in_order};
use crate::gemm::{View, matmul};
use crate::simd::{Kernel, dispatch};

/// im2col of the `cin / groups` channels of group `gi` of one image `x` (`[cin, h, w]`):
/// row `(c * kh + ky) * kw + kx`, column `oy * out_w + ox`.
struct Im2col<'a> {
    g: &'a ConvGeometry,
    x: &'a [f32],
    gi: usize,
    cols: &'a mut [f32],
}

impl Kernel for Im2col<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Im2col { g, x, gi, cols } = self;
        im2col_body(g, x, gi, cols);
    }
}

fn im2col(g: &ConvGeometry, x: &[f32], gi: usize, cols: &mut [f32]) {
    dispatch(Im2col { g, x, gi, cols });
}

#[inline(always)]
fn im2col_body(g: &ConvGeometry, x: &[f32], gi: usize, cols: &mut [f32]) {
    let (kh, kw, oh, ow) = (g.kernel[0], g.kernel[1], g.out_h(), g.out_w());
    let ([sy, sx], [py, px]) = (g.stride, g.padding);
    let pixels = oh * ow;
    for (r, row) in cols.chunks_mut(pixels).enumerate() {
        let (c, ky, kx) = (r / (kh * kw), r / kw % kh, r % kw);
        let plane = &x[(gi * g.cin_per_group() + c) * g.in_pixels()..][..g.in_pixels()];
        let (a, b) = columns(kx, sx, px, g.width, ow);
        for (oy, out) in row.chunks_mut(ow).enumerate() {
            match input_row(oy, ky, sy, py, g.height) {
                None => out.fill(0.0),
                Some(iy) => {
                    let src = &plane[iy * g.width..(iy + 1) * g.width];
                    out[..a].fill(0.0);
                    out[b..].fill(0.0);
                    if sx == 1 {
                        out[a..b].copy_from_slice(&src[a + kx - px..b + kx - px]);
                    } else if a < b {
                        let taps = src[a * sx + kx - px..].iter().step_by(sx);
                        out[a..b].iter_mut().zip(taps).for_each(|(o, &v)| *o = v);
                    }
                }
            }
        }
    }
}

/// Adds the columns `cols` back onto group `gi` of one image gradient `dx` (col2im).
fn col2im(g: &ConvGeometry, cols: &[f32], gi: usize, dx: &mut [f32]) {
    let (kh, kw, oh, ow) = (g.kernel[0], g.kernel[1], g.out_h(), g.out_w());
    let ([sy, sx], [py, px]) = (g.stride, g.padding);
    for (r, row) in cols.chunks(oh * ow).enumerate() {
        let (c, ky, kx) = (r / (kh * kw), r / kw % kh, r % kw);
        let plane = &mut dx[(gi * g.cin_per_group() + c) * g.in_pixels()..][..g.in_pixels()];
        let (a, b) = columns(kx, sx, px, g.width, ow);
        for (oy, src) in row.chunks(ow).enumerate() {
            let Some(iy) = input_row(oy, ky, sy, py, g.height) else { continue };
            let dst = &mut plane[iy * g.width..(iy + 1) * g.width];
            for ox in a..b {
                dst[ox * sx + kx - px] += src[ox];
            }
        }
    }
}

/// At stride 1 the input gradient is the output gradient convolved with the flipped kernel,
/// padded by `kernel - 1 - padding`: that convolution, where it reads fewer taps than col2im
/// would write (fewer output than input channels, e.g. a detector head's 64 -> 4).
fn transposed(g: &ConvGeometry) -> Option<ConvGeometry> {
    let [kh, kw] = g.kernel;
    let fits = g.stride == [1, 1] && g.groups == 1 && g.cout < g.cin && g.padding[0] < kh && g.padding[1] < kw;
    fits.then(|| ConvGeometry {
        batch: g.batch,
        cin: g.cout,
        height: g.out_h(),
        width: g.out_w(),
        cout: g.cin,
        kernel: g.kernel,
        stride: [1, 1],
        padding: [kh - 1 - g.padding[0], kw - 1 - g.padding[1]],
        groups: 1,
    })
}

/// The kernel of [`transposed`]: `wt[ci][co][ky][kx] = w[co][ci][kh - 1 - ky][kw - 1 - kx]`.
fn flipped(g: &ConvGeometry, w: &[f32]) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let mut wt = vec![0.0f32; w.len()];
    for co in 0..g.cout {
        for ci in 0..g.cin {
            for ky in 0..kh {
                for kx in 0..kw {
                    wt[((ci * g.cout + co) * kh + kh - 1 - ky) * kw + kw - 1 - kx] =
                        w[((co * g.cin + ci) * kh + ky) * kw + kx];
                }
            }
        }
    }
    wt
}

/// One image: `y[gi] = W[gi] · im2col(x, gi)` for every group.
fn image_forward(g: &ConvGeometry, x: &[f32], w: &[f32], y: &mut [f32], threads: bool) {
    let (taps, pixels, cog) = (g.taps(), g.out_pixels(), g.cout_per_group());
    let mut cols = vec![0.0f32; taps * pixels];
    for gi in 0..g.groups {
        im2col(g, x, gi, &mut cols);
        let wg = &w[gi * cog * taps..(gi + 1) * cog * taps];
        let yg = &mut y[gi * cog * pixels..(gi + 1) * cog * pixels];
        matmul(yg, View::rows(wg, cog, taps), View::rows(&cols, taps, pixels), false, threads);
    }
}

/// The output `[batch, cout, out_h, out_w]`.
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (xi, yi) = (g.cin * g.in_pixels(), g.cout * g.out_pixels());
    let mut y = vec![0.0f32; g.batch * yi];
    if images_in_parallel(g.batch) {
        y.par_chunks_mut(yi).zip(x.par_chunks(xi)).for_each(|(yn, xn)| image_forward(g, xn, w, yn, false));
    } else {
        y.chunks_mut(yi).zip(x.chunks(xi)).for_each(|(yn, xn)| image_forward(g, xn, w, yn, true));
    }
    y
}

/// One image's input gradient (into `dx`, when given) and weight gradient (returned,
/// `[cout, taps]`).
fn image_backward(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    threads: bool,
) -> Vec<f32> {
    let (taps, pixels, cog) = (g.taps(), g.out_pixels(), g.cout_per_group());
    let mut cols = vec![0.0f32; taps * pixels];
    let mut dcols = if dx.is_some() { vec![0.0f32; taps * pixels] } else { Vec::new() };
    let mut dx = dx;
    let mut dw = vec![0.0f32; g.cout * taps];
    for gi in 0..g.groups {
        let wg = &w[gi * cog * taps..(gi + 1) * cog * taps];
        let dyg = &dy[gi * cog * pixels..(gi + 1) * cog * pixels];
        if let Some(dx) = dx.as_deref_mut() {
            matmul(&mut dcols, View::transposed(wg, taps, cog), View::rows(dyg, cog, pixels), false, threads);
            col2im(g, &dcols, gi, dx);
        }
        im2col(g, x, gi, &mut cols);
        let dwg = &mut dw[gi * cog * taps..(gi + 1) * cog * taps];
        matmul(dwg, View::rows(dyg, cog, pixels), View::transposed(&cols, pixels, taps), false, threads);
    }
    dw
}

/// `(dx, dw)`: every image's gradients (`dx` when `need_dx`), the weight gradients added in
/// image order.
pub fn backward(g: &ConvGeometry, x: &[f32], w: &[f32], dy: &[f32], need_dx: bool) -> (Option<Vec<f32>>, Vec<f32>) {
    if need_dx && let Some(t) = transposed(g) {
        // The input gradient as a convolution of its own, and the weight gradient alone.
        let dx = forward(&t, dy, &flipped(g, w));
        return (Some(dx), backward(g, x, w, dy, false).1);
    }
    let (xi, yi) = (g.cin * g.in_pixels(), g.cout * g.out_pixels());
    // col2im adds several taps into a pixel: the gradient starts at zero.
    let mut dx = need_dx.then(|| vec![0.0f32; g.batch * xi]);
    let dxs: Vec<Option<&mut [f32]>> = match dx.as_mut() {
        Some(dx) => dx.chunks_mut(xi).map(Some).collect(),
        None => (0..g.batch).map(|_| None).collect(),
    };
    let items: Vec<_> = dxs.into_iter().zip(x.chunks(xi)).zip(dy.chunks(yi)).collect();
    let parts: Vec<Vec<f32>> = if images_in_parallel(g.batch) {
        items.into_par_iter().map(|((dxn, xn), dyn_)| image_backward(g, xn, w, dyn_, dxn, false)).collect()
    } else {
        items.into_iter().map(|((dxn, xn), dyn_)| image_backward(g, xn, w, dyn_, dxn, true)).collect()
    };
    (dx, sum_in_order(parts, g.cout * g.taps()))
}
