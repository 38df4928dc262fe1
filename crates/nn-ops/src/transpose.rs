//! Matrix transposes by 8x8 blocks in AVX registers, for the kernels that lay channels out
//! last and back. One value at a time, a transpose is a load and a store per value, and the
//! stores of one row land a whole stride apart; by blocks it is eight loads, 24 shuffles and
//! eight stores per 64 values. Values are moved, never computed: results are the same bits on
//! every path.

use std::mem::MaybeUninit;

/// `dst[c * dst_stride + r] = src[r * src_stride + c]` for `r < rows`, `c < cols`.
pub(crate) fn transpose(src: &[f32], src_stride: usize, [rows, cols]: [usize; 2], dst: &mut [f32], dst_stride: usize) {
    // SAFETY: f32 is a valid MaybeUninit<f32>, and only f32 values are written through it.
    let dst = unsafe { &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]) };
    transpose_into(src, src_stride, [rows, cols], dst, dst_stride);
}

/// [`transpose`] into a buffer not yet written.
pub(crate) fn transpose_into(
    src: &[f32],
    src_stride: usize,
    [rows, cols]: [usize; 2],
    dst: &mut [MaybeUninit<f32>],
    dst_stride: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(src.len() >= (rows - 1) * src_stride + cols, "transpose: source too short");
    assert!(dst.len() >= (cols - 1) * dst_stride + rows, "transpose: destination too short");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        let (full_rows, full_cols) = (rows / 8 * 8, cols / 8 * 8);
        for r in (0..full_rows).step_by(8) {
            for c in (0..full_cols).step_by(8) {
                // SAFETY: AVX is present (checked above), and the block's rows r..r+8 and
                // columns c..c+8 lie inside both slices (asserted above).
                unsafe {
                    x86::block8(
                        src.as_ptr().add(r * src_stride + c),
                        src_stride,
                        dst.as_mut_ptr().add(c * dst_stride + r),
                        dst_stride,
                    )
                };
            }
        }
        edges(src, src_stride, [rows, cols], dst, dst_stride, [full_rows, full_cols]);
        return;
    }
    edges(src, src_stride, [rows, cols], dst, dst_stride, [0, 0]);
}

/// The values outside the first `done[0]` rows x `done[1]` columns, one at a time.
fn edges(
    src: &[f32],
    src_stride: usize,
    [rows, cols]: [usize; 2],
    dst: &mut [MaybeUninit<f32>],
    dst_stride: usize,
    [done_rows, done_cols]: [usize; 2],
) {
    for r in 0..rows {
        let first = if r < done_rows { done_cols } else { 0 };
        for c in first..cols {
            dst[c * dst_stride + r].write(src[r * src_stride + c]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// One 8x8 block: rows `src + i * src_stride`, columns of `dst + j * dst_stride`.
    ///
    /// # Safety
    /// The CPU has AVX; all 8 rows of 8 values at `src` and at `dst` are inside their buffers.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn block8(src: *const f32, src_stride: usize, dst: *mut MaybeUninit<f32>, dst_stride: usize) {
        // SAFETY: the caller's promise: every pointer below is inside its buffer.
        unsafe {
            let r = |i: usize| _mm256_loadu_ps(src.add(i * src_stride));
            let (r0, r1, r2, r3, r4, r5, r6, r7) = (r(0), r(1), r(2), r(3), r(4), r(5), r(6), r(7));
            // Pairs of rows interleaved, then pairs of pairs: each 128-bit half holds a 4x4
            // block transposed; the halves are then swapped across the registers.
            let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
            let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
            let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
            let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
            let (u0, u1) = (_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2));
            let (u2, u3) = (_mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3));
            let (u4, u5) = (_mm256_shuffle_ps::<0x44>(t4, t6), _mm256_shuffle_ps::<0xEE>(t4, t6));
            let (u6, u7) = (_mm256_shuffle_ps::<0x44>(t5, t7), _mm256_shuffle_ps::<0xEE>(t5, t7));
            let out = [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ];
            for (j, v) in out.into_iter().enumerate() {
                _mm256_storeu_ps(dst.add(j * dst_stride) as *mut f32, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shape around the block size, with strides wider than the rows: the naive
    /// transpose's values, and nothing written outside them.
    #[test]
    fn blocks_and_edges_match_a_plain_transpose() {
        for rows in [1, 7, 8, 9, 16, 23] {
            for cols in [1, 5, 8, 12, 17, 32] {
                let (ss, ds) = (cols + 3, rows + 2);
                let src: Vec<f32> = (0..rows * ss).map(|i| i as f32 * 0.5 - 3.0).collect();
                let mut dst = vec![f32::NAN; cols * ds];
                transpose(&src, ss, [rows, cols], &mut dst, ds);
                for c in 0..cols {
                    for r in 0..ds {
                        let want = if r < rows { src[r * ss + c] } else { f32::NAN };
                        assert_eq!(dst[c * ds + r].to_bits(), want.to_bits(), "{rows}x{cols} at ({r}, {c})");
                    }
                }
            }
        }
    }
}
