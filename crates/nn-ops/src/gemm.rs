//! Matrix products on slices, through the `gemm` crate (what burn-flex's matmul uses), with the
//! bounds checked here so that the unsafe call cannot read or write outside its slices.

/// A matrix view into a slice: element `(i, j)` is `data[offset + i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major `rows x cols` matrix at the start of `data`.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// A `rows x cols` matrix with explicit strides, starting at `data[0]`.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Self {
        Self { data, rows, cols, row_stride, col_stride }
    }

    /// The transpose of a row-major `cols x rows` matrix at the start of `data`.
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, row_stride: 1, col_stride: rows }
    }

    /// The number of rows.
    pub fn row_count(&self) -> usize {
        self.rows
    }

    /// Rows `first..first + rows` of this view.
    pub fn row_block(&self, first: usize, rows: usize) -> Self {
        assert!(first + rows <= self.rows, "matmul: row block out of the view");
        let data = if rows == 0 { &self.data[..0] } else { &self.data[first * self.row_stride..] };
        Self { data, rows, ..*self }
    }

    /// The largest index the view reads, plus one (0 when empty).
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
        }
    }
}

/// `dst (m x n, row-major) = lhs (m x k) · rhs (k x n)` into memory not yet written.
pub fn matmul_into(dst: &mut [std::mem::MaybeUninit<f32>], lhs: View<'_>, rhs: View<'_>, threads: bool) {
    let (m, n) = (lhs.rows, rhs.cols);
    assert!(dst.len() >= m * n, "matmul: destination too small");
    if lhs.cols == 0 {
        dst[..m * n].iter_mut().for_each(|d| {
            d.write(0.0);
        });
        return;
    }
    // SAFETY: with `accumulate = false` gemm only writes the destination, all m x n elements
    // of it (checked above to fit); MaybeUninit<f32> has f32's layout.
    unsafe { product(dst.as_mut_ptr().cast::<f32>(), lhs, rhs, false, threads) }
}

/// `dst (m x n, row-major) = [dst +] lhs (m x k) · rhs (k x n)`; `threads`: let gemm split the
/// output over the rayon pool (it never splits the `k` sum, so results do not depend on it).
pub fn matmul(dst: &mut [f32], lhs: View<'_>, rhs: View<'_>, accumulate: bool, threads: bool) {
    assert!(dst.len() >= lhs.rows * rhs.cols, "matmul: destination too small");
    if lhs.rows == 0 || rhs.cols == 0 {
        return;
    }
    if lhs.cols == 0 {
        if !accumulate {
            dst[..lhs.rows * rhs.cols].fill(0.0);
        }
        return;
    }
    // SAFETY: dst holds m x n initialised elements (checked above).
    unsafe { product(dst.as_mut_ptr(), lhs, rhs, accumulate, threads) }
}

/// The product through gemm.
///
/// # Safety
/// `dst` points to `lhs.rows * rhs.cols` writable f32s, initialised when `accumulate`.
unsafe fn product(dst: *mut f32, lhs: View<'_>, rhs: View<'_>, accumulate: bool, threads: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "matmul: inner dimensions differ");
    assert!(lhs.extent() <= lhs.data.len() && rhs.extent() <= rhs.data.len(), "matmul: view out of bounds");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let parallelism = if threads { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: lhs and rhs read at most `extent()` elements each, inside their slices (checked
    // above); dst is the caller's m x n row-major buffer.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_and_transposes_match_naive_code() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let mut c = vec![0.0; m * n];
        matmul(&mut c, View::rows(&a, m, k), View::rows(&b, k, n), false, false);
        assert!(c.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-5));
        // a^T^T: a stored transposed.
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        matmul(&mut c, View::transposed(&at, m, k), View::rows(&b, k, n), true, true);
        assert!(c.iter().zip(&want).all(|(x, y)| (x - 2.0 * y).abs() < 1e-5));
    }
}
