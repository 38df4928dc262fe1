//! 1x1 convolutions (stride 1, no padding, one group): per image, `y = W · x` with `x` a
//! `cin x pixels` matrix; the forward pass on maps of few pixels, and the input gradient, through
//! the tiles of `narrow.rs`, the rest through gemm.

mod narrow;

use narrow::Matrix;

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{ConvGeometry, images_in_parallel, pixel_chunks, sum_in_order};
use crate::buffer::written;
use crate::gemm::{View, matmul, matmul_into};

/// Output rows of one product in a task when the images alone do not fill the threads: gemm's
/// own threads split products of a few hundred pixels badly (measured at batch 1, 2 threads:
/// slower than one thread), so blocks of rows run in parallel instead.
const ROW_BLOCK: usize = 64;

/// `(first row, rows)` of the blocks of `rows` rows: as even as whole 16-row tiles allow.
fn row_blocks(rows: usize) -> Vec<(usize, usize)> {
    let len = rows.div_ceil(rows.div_ceil(ROW_BLOCK).max(1)).next_multiple_of(16);
    (0..rows).step_by(len.max(1)).map(|r| (r, len.min(rows - r))).collect()
}

/// An image's output rows, its right-hand matrix, and the rows `(first, count)` they are.
type RowTask<'a> = (&'a mut [MaybeUninit<f32>], &'a [f32], (usize, usize));

/// `out[n] = a · b[n]` for every image: each image's product in a task of its own, or, with
/// fewer images than threads, blocks of its rows. gemm sums each output the same way in either
/// (it never splits a sum, nor chooses its blocks of the sum by the rows).
fn per_image(out: &mut [MaybeUninit<f32>], b: &[f32], a: View<'_>, out_len: usize, b_rows: usize, b_cols: usize) {
    let rows = a.row_count();
    let blocks = if images_in_parallel(out.len() / out_len) { vec![(0, rows)] } else { row_blocks(rows) };
    let mut tasks: Vec<RowTask<'_>> = Vec::new();
    for (o, bn) in out.chunks_mut(out_len).zip(b.chunks(b_rows * b_cols)) {
        let mut rest = o;
        for &(r0, rows) in &blocks {
            let (block, tail) = rest.split_at_mut(rows * b_cols);
            tasks.push((block, bn, (r0, rows)));
            rest = tail;
        }
    }
    tasks
        .into_par_iter()
        .for_each(|(o, bn, (r0, rows))| matmul_into(o, a.row_block(r0, rows), View::rows(bn, b_rows, b_cols), false));
}

/// Whether the forward products (sums `k` long over maps of `p` pixels) go through [`narrow`]
/// (where the CPU has its tiles): maps below 16x16 with enough pixels in the batch that
/// transposing the weights for the tiles pays, and sums long enough that writing the tiles out
/// does. Measured on 2 threads: 3x3 to 12x12 maps at batch 8 to 64 take 0.55 to 0.85 of gemm's
/// time there, 14x14 at batch 1 0.5 to 1.0; 7x7 at batch 1, or 4x4 at batch 4, take longer.
fn narrow_forward(batch: usize, k: usize, p: usize) -> bool {
    p < 256 && batch * p >= 128 && k >= 64
}

/// Whether the input gradient's products go through [`narrow`]: they read `Wᵀ` in place, so at
/// any batch and map size with sums of 32 or more. Measured on 2 threads against gemm: 0.3 to
/// 0.9 of its time from 3x3 to 40x40 maps, batch 1 to 32, sums of 64 to 1280 (sums of 24 take
/// 1.3 times as long).
fn narrow_input_grad(k: usize) -> bool {
    k >= 32
}

/// `y[n] = W · x[n]`.
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (p, cin, cout) = (g.in_pixels(), g.cin, g.cout);
    let fill = |y: &mut [MaybeUninit<f32>]| {
        if !narrow_forward(g.batch, cin, p)
            || !narrow::products(y, Matrix { a: w, strides: (cin, 1) }, x, (cout, cin, p))
        {
            per_image(y, x, View::rows(w, cout, cin), cout * p, cin, p)
        }
    };
    // SAFETY: every image's product writes its whole `cout x p` output.
    unsafe { written(g.batch * cout * p, fill) }
}

/// `(dx, dw)`: `dx[n] = Wᵀ · dy[n]` (when `need_dx`), `dw = Σ dy[n] · x[n]ᵀ` over pixel chunks in
/// order.
pub fn backward(g: &ConvGeometry, x: &[f32], w: &[f32], dy: &[f32], need_dx: bool) -> (Option<Vec<f32>>, Vec<f32>) {
    let (p, cin, cout) = (g.in_pixels(), g.cin, g.cout);
    let dx = need_dx.then(|| {
        let fill = |dx: &mut [MaybeUninit<f32>]| {
            if !narrow_input_grad(cout) || !narrow::products(dx, Matrix { a: w, strides: (1, cin) }, dy, (cin, cout, p))
            {
                per_image(dx, dy, View::transposed(w, cin, cout), cin * p, cout, p)
            }
        };
        // SAFETY: every image's product writes its whole `cin x p` gradient.
        unsafe { written(g.batch * cin * p, fill) }
    });
    (dx, weight_grad(g, x, dy))
}

/// Maps with fewer pixels than this (7x7, 10x10) have their weight gradient as one product over
/// all images: per image it would be a product of a thin `k` (measured: twice as slow at 7x7,
/// slower from 14x14 on, where the per-image products parallelise better).
const SMALL_MAP: usize = 128;

/// `dw = Σ_n dy[n] · x[n]ᵀ`. Small maps are laid side by side into one
/// `channels x (images · pixels)` matrix each for a single product; larger ones are summed over
/// per-image pixel chunks in order.
fn weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (p, cin, cout) = (g.in_pixels(), g.cin, g.cout);
    if p < SMALL_MAP {
        let np = g.batch * p;
        let (dy_all, x_all) = (side_by_side(dy, g.batch, cout, p), side_by_side(x, g.batch, cin, p));
        let mut dw = vec![0.0f32; cout * cin];
        matmul(&mut dw, View::rows(&dy_all, cout, np), View::strided(&x_all, np, cin, 1, np), false, true);
        return dw;
    }
    let chunks = pixel_chunks(g.batch, p);
    let part = |(n, p0, len): (usize, usize, usize), (r0, rows): (usize, usize)| {
        let mut part = vec![0.0f32; rows * cin];
        let dyv = View::strided(&dy[n * cout * p + p0..], cout, len, p, 1).row_block(r0, rows);
        let xt = View::strided(&x[n * cin * p + p0..], len, cin, 1, p);
        matmul(&mut part, dyv, xt, false, false);
        part
    };
    if images_in_parallel(chunks.len()) {
        let parts: Vec<Vec<f32>> = chunks.into_par_iter().map(|c| part(c, (0, cout))).collect();
        return sum_in_order(parts, cout * cin);
    }
    // Fewer chunks than threads: blocks of rows, each summing every chunk's part in order (the
    // same sums as above, element by element).
    let blocks: Vec<Vec<f32>> = row_blocks(cout)
        .into_par_iter()
        .map(|block| sum_in_order(chunks.iter().map(|&c| part(c, block)).collect(), block.1 * cin))
        .collect();
    blocks.concat()
}

/// `[batch][channels][pixels]` as `[channels][batch * pixels]`.
fn side_by_side(v: &[f32], batch: usize, channels: usize, pixels: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; v.len()];
    for (c, row) in out.chunks_mut(batch * pixels).enumerate() {
        for (n, dst) in row.chunks_mut(pixels).enumerate() {
            dst.copy_from_slice(&v[(n * channels + c) * pixels..][..pixels]);
        }
    }
    out
}
