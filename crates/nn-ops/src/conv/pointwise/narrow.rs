//! 1x1 convolution products for maps of few pixels (MobileNetV2's 14x14 to 3x3 maps): per image
//! `out (j x p) = A (j x k) · in (k x p)` with `p` far too short a row for a matrix-product
//! kernel that runs its vectors along it. Here the vectors run along `j` (output channels
//! going forward, input channels going backward) and a tile keeps `32 x up to 12` sums (AVX-512;
//! `16 x up to 6` on AVX2) in registers while it walks `k`, broadcasting one input value at a
//! time. Every output is one chain of fused multiply-adds over `k` in order, so the results are
//! the same bits for any thread count and either vector width.

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

/// `A` as the tiles read it: per block of `rows` output rows, `k` runs of `rows` values (zero
/// past `j`), the blocks in parallel and each read along `A`'s memory.
fn pack(m: Matrix<'_>, j: usize, k: usize, rows: usize) -> Vec<f32> {
    let mut packed = vec![0.0f32; j.div_ceil(rows) * k * rows];
    let (rs, cs) = m.strides;
    packed.par_chunks_mut(k * rows).enumerate().for_each(|(b, block)| {
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
    });
    packed
}

/// `out[n] = A · input[n]` for every image, `A` `j x k`, `input[n]` `k x p`, `out[n]` `j x p`; `false` (nothing written) when the CPU has neither AVX-512 nor
/// AVX2 with FMA.
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

fn products_with(
    isa: Isa,
    out: &mut [MaybeUninit<f32>],
    a: Matrix<'_>,
    input: &[f32],
    (j, k, p): (usize, usize, usize),
) {
    assert!(out.len().is_multiple_of(j * p) && input.len() / (k * p) == out.len() / (j * p), "narrow: sizes differ");
    let rows = isa.rows();
    let packed = pack(a, j, k, rows);
    // Tiles of equal width, as few as the widest tile allows.
    let tile = p.div_ceil(p.div_ceil(isa.pixels()));
    out.par_chunks_mut(j * p).zip(input.par_chunks(k * p)).for_each(|(o, x)| {
        o.par_chunks_mut(rows * p).zip(packed.par_chunks(k * rows)).for_each(|(o, a)| {
            for q in (0..p).step_by(tile) {
                block(isa, o, a, x, (k, p), q, tile.min(p - q));
            }
        })
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

/// One tile: rows `o.len() / p` of `o`, pixels `q .. q + width`.
fn block(isa: Isa, o: &mut [MaybeUninit<f32>], a: &[f32], x: &[f32], (k, p): (usize, usize), q: usize, width: usize) {
    let mut sums = [[0.0f32; 32]; 12];
    assert!(a.len() >= k * isa.rows() && x.len() >= k.saturating_sub(1) * p + q + width && width <= isa.pixels());
    // SAFETY: the CPU has `isa` (detected), `a` holds k runs of `rows` values and `x` the k rows
    // of p pixels from which the tile reads `width` from `q` (checked above).
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => by_width!(width, tile512, a, &x[q..], k, p, &mut sums),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => by_width!(width, tile256, a, &x[q..], k, p, &mut sums),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("no tiles off x86-64"),
        }
    }
    for (r, row) in o.chunks_mut(p).enumerate() {
        for (t, s) in sums.iter().take(width).enumerate() {
            row[q + t].write(s[r]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `sums[t][r] = Σ_kk a[kk * 32 + r] · x[kk * p + t]`, 32 rows and `W` pixels.
    ///
    /// # Safety
    /// AVX-512F; `a` holds `32 k` values, `x` at least `(k - 1) p + W`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile512<const W: usize>(a: &[f32], x: &[f32], k: usize, p: usize, sums: &mut [[f32; 32]; 12]) {
        let (mut lo, mut hi) = ([_mm512_setzero_ps(); W], [_mm512_setzero_ps(); W]);
        let (a, x) = (a.as_ptr(), x.as_ptr());
        for kk in 0..k {
            // SAFETY: inside `a` and `x` (the caller's promise).
            let (w0, w1, xr) =
                unsafe { (_mm512_loadu_ps(a.add(kk * 32)), _mm512_loadu_ps(a.add(kk * 32 + 16)), x.add(kk * p)) };
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

    /// `sums[t][r] = Σ_kk a[kk * 16 + r] · x[kk * p + t]`, 16 rows and `W` pixels (`W <= 6`
    /// keeps the sums in registers).
    ///
    /// # Safety
    /// AVX2 and FMA; `a` holds `16 k` values, `x` at least `(k - 1) p + W`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile256<const W: usize>(a: &[f32], x: &[f32], k: usize, p: usize, sums: &mut [[f32; 32]; 12]) {
        let (mut lo, mut hi) = ([_mm256_setzero_ps(); W], [_mm256_setzero_ps(); W]);
        let (a, x) = (a.as_ptr(), x.as_ptr());
        for kk in 0..k {
            // SAFETY: inside `a` and `x` (the caller's promise).
            let (w0, w1, xr) =
                unsafe { (_mm256_loadu_ps(a.add(kk * 16)), _mm256_loadu_ps(a.add(kk * 16 + 8)), x.add(kk * p)) };
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

    /// Every ISA this CPU has against a plain f64 product, on ragged rows, pixels and sums;
    /// AVX-512 and AVX2 to the same bits.
    #[test]
    fn tiles_match_a_plain_product_and_each_other() {
        let (batch, j, k, p) = (3, 37, 70, 29);
        let a: Vec<f32> = (0..j * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let input: Vec<f32> = (0..batch * k * p).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut results = Vec::new();
        #[cfg(target_arch = "x86_64")]
        for isa in [Isa::Avx512, Isa::Avx2] {
            let has = match isa {
                Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            };
            if has {
                // SAFETY: every element is written by the products.
                let out = unsafe {
                    crate::buffer::written(batch * j * p, |o| {
                        products_with(isa, o, Matrix { a: &a, strides: (k, 1) }, &input, (j, k, p))
                    })
                };
                results.push((isa, out));
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
        if let [(_, a), (_, b)] = &results[..] {
            assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "AVX-512 and AVX2 differ");
        }
    }
}
