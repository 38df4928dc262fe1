//! 1x1 convolution products by register tiles: per image `out (j x p) = A (j x k) · in (k x p)`
//! with the vectors along `j` (output channels going forward, input channels going backward)
//! rather than along `p`, which on MobileNetV2's 14x14 to 3x3 maps is far too short a row for a
//! matrix-product kernel. A tile keeps `32 x up to 12` sums (AVX-512; `16 x up to 6` on AVX2) in
//! registers while it walks `k`, broadcasting one input value at a time; every tile is a task of
//! its own, so that one image with a few blocks of rows still fills the threads. Going backward
//! `A` is `Wᵀ`, whose runs along `j` are `W`'s rows: read in place, without a copy, which makes
//! the tiles the faster way for the input gradient on maps of any size. Every output is one
//! chain of fused multiply-adds over `k` in order, so the results are the same bits for any
//! thread count, either vector width and either layout of `A`.

use std::mem::MaybeUninit;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use x86::{tile256, tile512};

/// The vector units the tiles are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Isa {
    /// 2 x 16 floats wide, 12 pixels a tile.
    Avx512,
    /// 2 x 8 floats wide, 6 pixels a tile.
    Avx2,
}

impl Isa {
    fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Some(Self::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Some(Self::Avx2);
            }
        }
        None
    }

    /// Output rows (`j`) a tile covers.
    fn rows(self) -> usize {
        match self {
            Self::Avx512 => 32,
            Self::Avx2 => 16,
        }
    }

    /// The most pixels a tile covers.
    fn pixels(self) -> usize {
        match self {
            Self::Avx512 => 12,
            Self::Avx2 => 6,
        }
    }
}

/// `A` (`j x k`), element `(row, col)` at `a[row * strides.0 + col * strides.1]`.
#[derive(Clone, Copy)]
pub(super) struct Matrix<'a> {
    pub a: &'a [f32],
    pub strides: (usize, usize),
}

/// `A`'s blocks of `rows` output rows as the tiles read them: `k` runs of `rows` values,
/// `stride` apart. Where `A`'s rows run along its memory (the input gradient's `Wᵀ`) the whole
/// blocks are read in place; the others (all of them going forward, where `A` is `W` and each
/// run a column of it) are packed, zero past `j`.
struct Blocks<'a> {
    a: &'a [f32],
    stride: usize,
    /// Blocks read in place, the first ones.
    in_place: usize,
    /// The others, `k * rows` values each.
    packed: Vec<f32>,
    rows: usize,
    k: usize,
}

impl<'a> Blocks<'a> {
    fn new(m: Matrix<'a>, j: usize, k: usize, rows: usize) -> Self {
        let in_place = if m.strides.0 == 1 { j / rows } else { 0 };
        let mut packed = vec![0.0f32; (j.div_ceil(rows) - in_place) * k * rows];
        packed.par_chunks_mut(k * rows).enumerate().for_each(|(b, block)| pack(m, block, (j, k, rows), in_place + b));
        Self { a: m.a, stride: m.strides.1, in_place, packed, rows, k }
    }

    /// Block `b`'s values and the distance between its runs.
    fn get(&self, b: usize) -> (&[f32], usize) {
        if b < self.in_place {
            (&self.a[b * self.rows..], self.stride)
        } else {
            (&self.packed[(b - self.in_place) * self.k * self.rows..][..self.k * self.rows], self.rows)
        }
    }
}

/// Block `b` of `A` into `block`, read along `A`'s memory.
fn pack(m: Matrix<'_>, block: &mut [f32], (j, k, rows): (usize, usize, usize), b: usize) {
    let (rs, cs) = m.strides;
    let used = rows.min(j - b * rows);
    let at = |r: usize, kk: usize| m.a[(b * rows + r) * rs + kk * cs];
    if cs == 1 {
        // A transpose, 16 columns at a time so that the lines written stay in L1.
        for k0 in (0..k).step_by(16) {
            for r in 0..used {
                for kk in k0..(k0 + 16).min(k) {
                    block[kk * rows + r] = at(r, kk);
                }
            }
        }
    } else {
        for (kk, run) in block.chunks_mut(rows).enumerate() {
            for (r, v) in run.iter_mut().enumerate().take(used) {
                *v = at(r, kk);
            }
        }
    }
}

/// `out[n] = A · input[n]` for every image, `A` `j x k`, `input[n]` `k x p`, `out[n]` `j x p`;
/// `false` (nothing written) when the CPU has neither AVX-512 nor AVX2 with FMA.
pub(super) fn products(
    out: &mut [MaybeUninit<f32>],
    a: Matrix<'_>,
    input: &[f32],
    (j, k, p): (usize, usize, usize),
) -> bool {
    let Some(isa) = Isa::detect().filter(|_| j * k * p > 0) else { return false };
    products_with(isa, out, a, input, (j, k, p));
    true
}

/// The output as the tiles share it: each writes its own rectangle of rows and pixels.
#[derive(Clone, Copy)]
struct Shared(*mut MaybeUninit<f32>);

impl Shared {
    /// Writes `v` at `at`.
    ///
    /// # Safety
    /// `at` lies inside the output, and no other thread reads or writes it meanwhile.
    unsafe fn write(self, at: usize, v: f32) {
        // SAFETY: the caller's promise.
        unsafe { (*self.0.add(at)).write(v) };
    }
}

// SAFETY: the tiles write disjoint elements (see `products_with`).
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

fn products_with(
    isa: Isa,
    out: &mut [MaybeUninit<f32>],
    a: Matrix<'_>,
    input: &[f32],
    (j, k, p): (usize, usize, usize),
) {
    assert!(out.len().is_multiple_of(j * p) && input.len() / (k * p) == out.len() / (j * p), "narrow: sizes differ");
    let rows = isa.rows();
    let blocks = Blocks::new(a, j, k, rows);
    // Tiles of equal width, as few as the widest tile allows.
    let width = p.div_ceil(p.div_ceil(isa.pixels()));
    let (images, tiles, row_blocks) = (out.len() / (j * p), p.div_ceil(width), j.div_ceil(rows));
    let shared = Shared(out.as_mut_ptr());
    // Every tile a task, block by block (each block's runs then serve all its tiles in a row):
    // a batch of one with a few blocks of rows still fills the threads.
    (0..row_blocks * images * tiles).into_par_iter().for_each(|t| {
        let (b, n, q) = (t / (images * tiles), t / tiles % images, t % tiles * width);
        let (a, stride) = blocks.get(b);
        let sums = tile(isa, a, stride, &input[n * k * p..][..k * p], (k, p), q, width.min(p - q));
        for r in 0..rows.min(j - b * rows) {
            for (i, s) in sums.iter().take(width.min(p - q)).enumerate() {
                let at = (n * j + b * rows + r) * p + q + i;
                // SAFETY: `at` < out.len() (image n < images, row < j, pixel < p); task t alone
                // writes the rows of block b at pixels q.. of image n, so no two tasks write one
                // element, and nothing reads `out` meanwhile.
                unsafe { shared.write(at, s[r]) };
            }
        }
    });
}

/// `f::<W>(args)` for the run-time `width` (1 to 12).
macro_rules! by_width {
    ($width:expr, $f:ident, $($arg:expr),*) => {
        match $width {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            6 => $f::<6>($($arg),*),
            7 => $f::<7>($($arg),*),
            8 => $f::<8>($($arg),*),
            9 => $f::<9>($($arg),*),
            10 => $f::<10>($($arg),*),
            11 => $f::<11>($($arg),*),
            _ => $f::<12>($($arg),*),
        }
    };
}

/// One tile's sums, `[pixel][row]`: pixels `q .. q + width` of `x` (`k x p`) against the
/// `k` runs of `a`, `stride` apart.
fn tile(
    isa: Isa,
    a: &[f32],
    stride: usize,
    x: &[f32],
    (k, p): (usize, usize),
    q: usize,
    width: usize,
) -> [[f32; 32]; 12] {
    let mut sums = [[0.0f32; 32]; 12];
    assert!(a.len() >= (k - 1) * stride + isa.rows() && x.len() >= (k - 1) * p + q + width && width <= isa.pixels());
    // SAFETY: the CPU has `isa` (detected), `a` holds k runs of `rows` values `stride` apart
    // and `x` the k rows of p pixels from which the tile reads `width` from `q` (checked above).
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => by_width!(width, tile512, a, stride, &x[q..], k, p, &mut sums),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => by_width!(width, tile256, a, stride, &x[q..], k, p, &mut sums),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("no tiles off x86-64"),
        }
    }
    sums
}

/// How many rows of `A` and of the input ahead of its sums a tile asks for in cache: a training
/// step leaves both cold, the input's rows lie `p` values apart and `A`'s `stride` (where read in
/// place), which the hardware's prefetchers follow badly (measured at batch 1, 224x224: the
/// input gradient of MobileNetV2's 1x1 convolutions 0.93 of the time; 16 and 32 rows alike).
const PREFETCH_ROWS: usize = 24;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Asks for the line at `v` in cache (past a slice's end it asks for nothing useful, but
    /// reads nothing either).
    #[inline(always)]
    fn prefetch(v: *const f32) {
        // SAFETY: a prefetch does not fault, wherever it points; SSE is part of x86-64.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(v.cast()) }
    }

    /// `sums[t][r] = Σ_kk a[kk * stride + r] · x[kk * p + t]`, 32 rows and `W` pixels.
    ///
    /// # Safety
    /// AVX-512F; `a` holds at least `(k - 1) stride + 32` values, `x` at least `(k - 1) p + W`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile512<const W: usize>(
        a: &[f32],
        stride: usize,
        x: &[f32],
        k: usize,
        p: usize,
        sums: &mut [[f32; 32]; 12],
    ) {
        let (mut lo, mut hi) = ([_mm512_setzero_ps(); W], [_mm512_setzero_ps(); W]);
        let (a, x) = (a.as_ptr(), x.as_ptr());
        for kk in 0..k {
            let ahead = kk + super::PREFETCH_ROWS;
            prefetch(a.wrapping_add(ahead * stride));
            prefetch(a.wrapping_add(ahead * stride + 16));
            prefetch(x.wrapping_add(ahead * p));
            // SAFETY: inside `a` and `x` (the caller's promise).
            let (w0, w1, xr) = unsafe {
                (_mm512_loadu_ps(a.add(kk * stride)), _mm512_loadu_ps(a.add(kk * stride + 16)), x.add(kk * p))
            };
            for t in 0..W {
                // SAFETY: pixel t < W of row kk.
                let b = _mm512_set1_ps(unsafe { *xr.add(t) });
                lo[t] = _mm512_fmadd_ps(w0, b, lo[t]);
                hi[t] = _mm512_fmadd_ps(w1, b, hi[t]);
            }
        }
        for t in 0..W {
            // SAFETY: each row of `sums` holds 32 floats.
            unsafe {
                _mm512_storeu_ps(sums[t].as_mut_ptr(), lo[t]);
                _mm512_storeu_ps(sums[t].as_mut_ptr().add(16), hi[t]);
            }
        }
    }

    /// `sums[t][r] = Σ_kk a[kk * stride + r] · x[kk * p + t]`, 16 rows and `W` pixels (`W <= 6`
    /// keeps the sums in registers).
    ///
    /// # Safety
    /// AVX2 and FMA; `a` holds at least `(k - 1) stride + 16` values, `x` at least
    /// `(k - 1) p + W`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile256<const W: usize>(
        a: &[f32],
        stride: usize,
        x: &[f32],
        k: usize,
        p: usize,
        sums: &mut [[f32; 32]; 12],
    ) {
        let (mut lo, mut hi) = ([_mm256_setzero_ps(); W], [_mm256_setzero_ps(); W]);
        let (a, x) = (a.as_ptr(), x.as_ptr());
        for kk in 0..k {
            let ahead = kk + super::PREFETCH_ROWS;
            prefetch(a.wrapping_add(ahead * stride));
            prefetch(a.wrapping_add(ahead * stride + 8));
            prefetch(x.wrapping_add(ahead * p));
            // SAFETY: inside `a` and `x` (the caller's promise).
            let (w0, w1, xr) = unsafe {
                (_mm256_loadu_ps(a.add(kk * stride)), _mm256_loadu_ps(a.add(kk * stride + 8)), x.add(kk * p))
            };
            for t in 0..W {
                // SAFETY: pixel t < W of row kk.
                let b = _mm256_set1_ps(unsafe { *xr.add(t) });
                lo[t] = _mm256_fmadd_ps(w0, b, lo[t]);
                hi[t] = _mm256_fmadd_ps(w1, b, hi[t]);
            }
        }
        for t in 0..W {
            // SAFETY: each row of `sums` holds 32 floats.
            unsafe {
                _mm256_storeu_ps(sums[t].as_mut_ptr(), lo[t]);
                _mm256_storeu_ps(sums[t].as_mut_ptr().add(8), hi[t]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ISA this CPU has against a plain f64 product, on ragged rows, pixels and sums, with
    /// `A` packed (stored by rows) and read in place (stored by columns, a ragged last block);
    /// AVX-512 and AVX2 to the same bits.
    #[test]
    fn tiles_match_a_plain_product_and_each_other() {
        let (batch, j, k, p) = (3, 37, 70, 29);
        let a: Vec<f32> = (0..j * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let at: Vec<f32> = (0..k * j).map(|i| a[(i % j) * k + i / j]).collect();
        let input: Vec<f32> = (0..batch * k * p).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut results = Vec::new();
        #[cfg(target_arch = "x86_64")]
        for isa in [Isa::Avx512, Isa::Avx2] {
            let has = match isa {
                Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            };
            for m in [Matrix { a: &a, strides: (k, 1) }, Matrix { a: &at, strides: (1, j) }] {
                if has {
                    // SAFETY: every element is written by the products.
                    let out = unsafe {
                        crate::buffer::written(batch * j * p, |o| products_with(isa, o, m, &input, (j, k, p)))
                    };
                    results.push((isa, out));
                }
            }
        }
        for (isa, out) in &results {
            for n in 0..batch {
                for r in 0..j {
                    for q in 0..p {
                        let want: f64 = (0..k).map(|c| a[r * k + c] as f64 * input[(n * k + c) * p + q] as f64).sum();
                        let got = out[(n * j + r) * p + q] as f64;
                        assert!((got - want).abs() < 1e-4, "{isa:?} ({n}, {r}, {q}): {got} vs {want}");
                    }
                }
            }
        }
        for (_, out) in &results[1..] {
            assert!(out.iter().zip(&results[0].1).all(|(x, y)| x.to_bits() == y.to_bits()), "layouts or ISAs differ");
        }
    }
}
