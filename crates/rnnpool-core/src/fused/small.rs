//! Small dense products for hidden sizes of 4 to ~100, blocked 8 columns at a time so that the
//! running sums stay in vector registers instead of going through memory on every term.
//! Each output element is summed in ascending index order, whatever the blocking, so the
//! results do not depend on the block size or on the vector width.

use super::real::Real;

const BLOCK: usize = 8;

/// `y[n] += sum_m x[m] * w[m * width + n]` for `n < width` (`w` is `[x.len(), width]`).
#[inline(always)]
pub fn matvec_acc<T: Real>(y: &mut [T], x: &[T], w: &[T], width: usize) {
    // The hidden sizes of the paper's models get a copy with the width known at compile time:
    // fully unrolled, no bounds checks, the sums in registers.
    match width {
        8 => matvec_fixed::<T, 8>(y, x, w),
        16 => matvec_fixed::<T, 16>(y, x, w),
        32 => matvec_fixed::<T, 32>(y, x, w),
        48 => matvec_fixed::<T, 48>(y, x, w),
        64 => matvec_fixed::<T, 64>(y, x, w),
        _ => matvec_any(y, x, w, width),
    }
}

#[inline(always)]
fn matvec_fixed<T: Real, const W: usize>(y: &mut [T], x: &[T], w: &[T]) {
    let mut acc = [T::ZERO; W];
    acc.copy_from_slice(&y[..W]);
    for (&xm, row) in x.iter().zip(w.chunks_exact(W)) {
        for l in 0..W {
            acc[l] += xm * row[l];
        }
    }
    y[..W].copy_from_slice(&acc);
}

/// `c[i] += a[i] · w` for every row `i` of `c` `[rows, width]` and `a` `[rows, a_dim]`.
#[inline(always)]
pub fn matmul_acc<T: Real>(c: &mut [T], a: &[T], a_dim: usize, w: &[T], width: usize) {
    match width {
        8 => matmul_fixed::<T, 8>(c, a, a_dim, w),
        16 => matmul_fixed::<T, 16>(c, a, a_dim, w),
        _ => {
            for (ci, ai) in c.chunks_exact_mut(width).zip(a.chunks_exact(a_dim)) {
                matvec_acc(ci, ai, w, width);
            }
        }
    }
}

/// Rows of [`matmul_fixed`] computed together: four independent running sums hide the add
/// latency and share each load of `w` (eight vector registers of sums at width 16).
const ROWS: usize = 4;

#[inline(always)]
fn matmul_fixed<T: Real, const W: usize>(c: &mut [T], a: &[T], a_dim: usize, w: &[T]) {
    let mut c_rows = c.chunks_exact_mut(W * ROWS);
    let mut a_rows = a.chunks_exact(a_dim * ROWS);
    for (cb, ab) in (&mut c_rows).zip(&mut a_rows) {
        let mut acc = [[T::ZERO; W]; ROWS];
        for (acc_i, ci) in acc.iter_mut().zip(cb.chunks_exact(W)) {
            acc_i.copy_from_slice(ci);
        }
        for (m, row) in w.chunks_exact(W).take(a_dim).enumerate() {
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let am = ab[i * a_dim + m];
                for l in 0..W {
                    acc_i[l] += am * row[l];
                }
            }
        }
        for (acc_i, ci) in acc.iter().zip(cb.chunks_exact_mut(W)) {
            ci.copy_from_slice(acc_i);
        }
    }
    for (ci, ai) in c_rows.into_remainder().chunks_exact_mut(W).zip(a_rows.remainder().chunks_exact(a_dim)) {
        matvec_fixed::<T, W>(ci, ai, w);
    }
}

#[inline(always)]
fn matvec_any<T: Real>(y: &mut [T], x: &[T], w: &[T], width: usize) {
    let y = &mut y[..width];
    let mut n0 = 0;
    while n0 + BLOCK <= width {
        let mut acc = [T::ZERO; BLOCK];
        acc.copy_from_slice(&y[n0..n0 + BLOCK]);
        for (m, &xm) in x.iter().enumerate() {
            let row = &w[m * width + n0..m * width + n0 + BLOCK];
            for l in 0..BLOCK {
                acc[l] += xm * row[l];
            }
        }
        y[n0..n0 + BLOCK].copy_from_slice(&acc);
        n0 += BLOCK;
    }
    for n in n0..width {
        let mut acc = y[n];
        for (m, &xm) in x.iter().enumerate() {
            acc += xm * w[m * width + n];
        }
        y[n] = acc;
    }
}

/// `c[m * b_dim + n] += sum_row a[row * a_dim + m] * b[row * b_dim + n]`: `c += aᵀ·b` for
/// row-major `a` `[rows, a_dim]` and `b` `[rows, b_dim]`.
#[inline(always)]
pub fn atb_acc<T: Real>(c: &mut [T], a: &[T], a_dim: usize, b: &[T], b_dim: usize) {
    match b_dim {
        8 if a_dim == 8 => atb_square8(c, a, b),
        8 => atb_fixed::<T, 8, 4>(c, a, a_dim, b),
        16 => atb_fixed::<T, 16, 2>(c, a, a_dim, b),
        32 => atb_fixed::<T, 32, 2>(c, a, a_dim, b),
        48 => atb_fixed::<T, 48, 2>(c, a, a_dim, b),
        64 => atb_fixed::<T, 64, 1>(c, a, a_dim, b),
        _ => atb_any(c, a, a_dim, b, b_dim),
    }
}

/// [`atb_acc`] for `b_dim == W`, `M` rows of `c` at a time: they share each load of a `b` row,
/// which is what bounds this loop (`M * W` sums stay in vector registers).
#[inline(always)]
fn atb_fixed<T: Real, const W: usize, const M: usize>(c: &mut [T], a: &[T], a_dim: usize, b: &[T]) {
    let full = a_dim / M * M;
    for m0 in (0..full).step_by(M) {
        let mut acc = [[T::ZERO; W]; M];
        for (i, acc_i) in acc.iter_mut().enumerate() {
            acc_i.copy_from_slice(&c[(m0 + i) * W..(m0 + i + 1) * W]);
        }
        for (a_row, b_row) in a.chunks_exact(a_dim).zip(b.chunks_exact(W)) {
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let am = a_row[m0 + i];
                for l in 0..W {
                    acc_i[l] += am * b_row[l];
                }
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            c[(m0 + i) * W..(m0 + i + 1) * W].copy_from_slice(acc_i);
        }
    }
    for m in full..a_dim {
        let c_row = &mut c[m * W..(m + 1) * W];
        let mut acc = [T::ZERO; W];
        acc.copy_from_slice(c_row);
        for (a_row, b_row) in a.chunks_exact(a_dim).zip(b.chunks_exact(W)) {
            let am = a_row[m];
            for l in 0..W {
                acc[l] += am * b_row[l];
            }
        }
        c_row.copy_from_slice(&acc);
    }
}

/// [`atb_acc`] for 8x8 results: all 64 sums stay in registers while the rows stream past once.
#[inline(always)]
fn atb_square8<T: Real>(c: &mut [T], a: &[T], b: &[T]) {
    let mut acc = [[T::ZERO; 8]; 8];
    for (acc_m, c_m) in acc.iter_mut().zip(c.chunks_exact(8)) {
        acc_m.copy_from_slice(c_m);
    }
    for (a_row, b_row) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for (acc_m, &am) in acc.iter_mut().zip(a_row) {
            for l in 0..8 {
                acc_m[l] += am * b_row[l];
            }
        }
    }
    for (acc_m, c_m) in acc.iter().zip(c.chunks_exact_mut(8)) {
        c_m.copy_from_slice(acc_m);
    }
}

#[inline(always)]
fn atb_any<T: Real>(c: &mut [T], a: &[T], a_dim: usize, b: &[T], b_dim: usize) {
    let rows = a.len() / a_dim;
    debug_assert_eq!(b.len(), rows * b_dim);
    for m in 0..a_dim {
        let c_row = &mut c[m * b_dim..(m + 1) * b_dim];
        let mut n0 = 0;
        while n0 + BLOCK <= b_dim {
            let mut acc = [T::ZERO; BLOCK];
            acc.copy_from_slice(&c_row[n0..n0 + BLOCK]);
            for r in 0..rows {
                let am = a[r * a_dim + m];
                let row = &b[r * b_dim + n0..r * b_dim + n0 + BLOCK];
                for l in 0..BLOCK {
                    acc[l] += am * row[l];
                }
            }
            c_row[n0..n0 + BLOCK].copy_from_slice(&acc);
            n0 += BLOCK;
        }
        for n in n0..b_dim {
            let mut acc = c_row[n];
            for r in 0..rows {
                acc += a[r * a_dim + m] * b[r * b_dim + n];
            }
            c_row[n] = acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_matvec(y: &mut [f64], x: &[f64], w: &[f64], width: usize) {
        for n in 0..width {
            for (m, &xm) in x.iter().enumerate() {
                y[n] += xm * w[m * width + n];
            }
        }
    }

    #[test]
    fn blocked_products_equal_the_naive_loops_for_odd_sizes() {
        for (rows, a_dim, b_dim) in [
            (3, 5, 13),
            (1, 1, 1),
            (4, 16, 16),
            (2, 9, 8),
            (5, 3, 20),
            (3, 7, 32),
            (2, 16, 33),
            (9, 5, 8),
            (6, 16, 16),
            (4, 3, 16),
            (7, 8, 8),
            (3, 5, 48),
            (4, 6, 48),
        ] {
            let a: Vec<f64> = (0..rows * a_dim).map(|i| (i as f64 * 0.37).sin()).collect();
            let b: Vec<f64> = (0..rows * b_dim).map(|i| (i as f64 * 0.11).cos()).collect();
            let mut c = vec![0.5; a_dim * b_dim];
            let mut want = c.clone();
            atb_acc(&mut c, &a, a_dim, &b, b_dim);
            for r in 0..rows {
                for m in 0..a_dim {
                    for n in 0..b_dim {
                        want[m * b_dim + n] += a[r * a_dim + m] * b[r * b_dim + n];
                    }
                }
            }
            assert!(c.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-12), "atb {rows}x{a_dim}x{b_dim}");

            let w: Vec<f64> = (0..a_dim * b_dim).map(|i| (i as f64 * 0.7).sin()).collect();
            let mut c = vec![0.125; rows * b_dim];
            let mut want = c.clone();
            matmul_acc(&mut c, &a, a_dim, &w, b_dim);
            for i in 0..rows {
                naive_matvec(&mut want[i * b_dim..(i + 1) * b_dim], &a[i * a_dim..(i + 1) * a_dim], &w, b_dim);
            }
            assert_eq!(c, want, "matmul {rows}x{a_dim}x{b_dim}: same order of additions");
            let x = &a[..a_dim];
            let mut y = vec![0.25; b_dim];
            let mut want = y.clone();
            matvec_acc(&mut y, x, &w, b_dim);
            naive_matvec(&mut want, x, &w, b_dim);
            assert_eq!(y, want, "matvec {a_dim}x{b_dim}: same order of additions");
        }
    }
}
