//! Output buffers that are written before they are read, without zeroing them first: a training
//! step allocates hundreds of megabytes of activations and gradients, and zeroing memory that
//! the next loop overwrites anyway cost about a twentieth of a MobileNetV2 step.

use std::mem::MaybeUninit;
use std::ops::Range;

/// A vector of `len` values, every one written by `fill`.
///
/// # Safety
/// `fill` must write every element of the slice it is given (or panic).
pub(crate) unsafe fn written(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: `fill` wrote all `len` elements (the caller's promise); had it panicked, `v`
    // would have been dropped with length 0, never reading them.
    unsafe { v.set_len(len) };
    v
}

/// Writes `src` into `dst` (equal lengths).
#[inline(always)]
pub(crate) fn write_all(dst: &mut [MaybeUninit<f32>], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, &s)| {
        d.write(s);
    });
}

/// Each block's run of every image in `buf`, `runs[block][image]`: `buf` holds images of
/// `Σ sizes` values each, and block `b` is the `sizes[b]` values after those of the blocks
/// before it.
pub(crate) fn block_runs<'a, T>(buf: &'a mut [T], sizes: &[usize]) -> Vec<Vec<&'a mut [T]>> {
    let per_image: usize = sizes.iter().sum();
    let mut runs: Vec<Vec<&'a mut [T]>> = sizes.iter().map(|_| Vec::new()).collect();
    for mut image in buf.chunks_mut(per_image.max(1)) {
        for (b, &size) in sizes.iter().enumerate() {
            let (run, rest) = image.split_at_mut(size);
            runs[b].push(run);
            image = rest;
        }
    }
    runs
}

/// The values of channels `c` of image `n` in `v`: maps of `channels` channels of `pixels`
/// values each, one image after another.
pub(crate) fn channel_run<'a>(v: &'a [f32], n: usize, channels: usize, c: &Range<usize>, pixels: usize) -> &'a [f32] {
    &v[(n * channels + c.start) * pixels..(n * channels + c.end) * pixels]
}
