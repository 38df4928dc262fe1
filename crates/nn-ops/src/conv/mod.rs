//! 2-D convolution on the CPU, forward and backward, for NCHW f32 maps: 1x1 convolutions as
//! matrix products, depthwise convolutions (one input channel per group, any multiplier) by
//! direct loops, everything else by im2col and matrix products.
//!
//! Work is split over images (and, for the weight gradient, fixed chunks of pixels) and the
//! partial weight gradients are added in a fixed order, so results are the same for any thread
//! count.

pub mod dense;
pub mod depthwise;
pub mod pointwise;

/// The shape of one convolution: input `[batch, cin, height, width]`, weight
/// `[cout, cin / groups, kernel[0], kernel[1]]`, symmetric zero padding, no dilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images.
    pub batch: usize,
    /// Input channels.
    pub cin: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel `[rows, columns]`.
    pub kernel: [usize; 2],
    /// Stride `[rows, columns]`.
    pub stride: [usize; 2],
    /// Zero padding on both sides `[rows, columns]`.
    pub padding: [usize; 2],
    /// Channel groups (`cin` and `cout` are multiples of it).
    pub groups: usize,
}

/// How a convolution is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConvKind {
    /// 1x1, stride 1, no padding, one group: a matrix product per image.
    Pointwise,
    /// One input channel per group (`groups == cin`): direct loops per channel plane.
    Depthwise,
    /// Anything else: im2col and a matrix product per image and group.
    Dense,
}

impl ConvGeometry {
    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.height + 2 * self.padding[0] - self.kernel[0]) / self.stride[0] + 1
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.width + 2 * self.padding[1] - self.kernel[1]) / self.stride[1] + 1
    }

    /// Input pixels per channel.
    pub fn in_pixels(&self) -> usize {
        self.height * self.width
    }

    /// Output pixels per channel.
    pub fn out_pixels(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Input channels per group.
    pub fn cin_per_group(&self) -> usize {
        self.cin / self.groups
    }

    /// Output channels per group.
    pub fn cout_per_group(&self) -> usize {
        self.cout / self.groups
    }

    /// Weights per output channel: `cin / groups * kernel area`.
    pub fn taps(&self) -> usize {
        self.cin_per_group() * self.kernel[0] * self.kernel[1]
    }

    /// Which kernel computes it.
    pub fn kind(&self) -> ConvKind {
        if self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0] && self.groups == 1 {
            ConvKind::Pointwise
        } else if self.groups == self.cin && self.groups > 1 {
            ConvKind::Depthwise
        } else {
            ConvKind::Dense
        }
    }

    /// Whether the shapes make a convolution: sizes at least 1, channels divisible by the
    /// groups, the padded input at least one kernel.
    pub fn is_valid(&self) -> bool {
        let sizes =
            [self.batch, self.cin, self.height, self.width, self.cout, self.groups, self.kernel[0], self.kernel[1]];
        sizes.iter().all(|&s| s > 0)
            && self.stride.iter().all(|&s| s > 0)
            && self.cin.is_multiple_of(self.groups)
            && self.cout.is_multiple_of(self.groups)
            && self.height + 2 * self.padding[0] >= self.kernel[0]
            && self.width + 2 * self.padding[1] >= self.kernel[1]
    }
}

/// The output columns `ox` whose tap `kx` reads inside a row of `width` (at `stride`, with
/// `pad` zeros on the left): `lo..hi`, empty when none does.
pub(crate) fn columns(kx: usize, stride: usize, pad: usize, width: usize, out_w: usize) -> (usize, usize) {
    // ix = ox * stride + kx - pad must lie in [0, width).
    let lo = pad.saturating_sub(kx).div_ceil(stride);
    let hi = if width + pad > kx { ((width + pad - kx - 1) / stride + 1).min(out_w) } else { 0 };
    (lo.min(hi), hi)
}

/// The input row that output row `oy` reads with kernel row `ky`, if inside the map.
pub(crate) fn input_row(oy: usize, ky: usize, stride: usize, pad: usize, height: usize) -> Option<usize> {
    (oy * stride + ky).checked_sub(pad).filter(|&iy| iy < height)
}

/// Pixels of one weight-gradient work item: the sum over an image's pixels is cut into chunks of
/// this many (a constant, so the cut does not depend on the thread count).
pub const PIXEL_CHUNK: usize = 4096;

/// `(image, first pixel, pixels)` of every weight-gradient work item, in summation order.
pub fn pixel_chunks(batch: usize, pixels: usize) -> Vec<(usize, usize, usize)> {
    (0..batch)
        .flat_map(|n| (0..pixels).step_by(PIXEL_CHUNK).map(move |p| (n, p, PIXEL_CHUNK.min(pixels - p))))
        .collect()
}

/// Adds the partial sums `parts` (each `len` long) in their order into a new vector.
pub fn sum_in_order(parts: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut total = vec![0.0f32; len];
    for p in parts {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}

/// Whether to run images in parallel (each product on one thread) rather than one image at a
/// time with the products themselves parallel.
pub fn images_in_parallel(batch: usize) -> bool {
    batch >= rayon::current_num_threads()
}

/// The output `[batch, cout, out_h, out_w]` of `x` and `w` (and `bias`, `[cout]`).
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let mut y = match g.kind() {
        ConvKind::Pointwise => pointwise::forward(g, x, w),
        ConvKind::Depthwise => depthwise::forward(g, x, w),
        ConvKind::Dense => dense::forward(g, x, w),
    };
    if let Some(b) = bias {
        add_bias(g, &mut y, b);
    }
    y
}

/// The gradients of `sum(y * dy)`: `(dx, dw, db)`, `dx` when `need_dx` (not for a model's
/// first layer, whose input is data), `db` when `with_bias`.
pub struct Grads {
    /// `[batch, cin, height, width]`.
    pub dx: Option<Vec<f32>>,
    /// `[cout, cin / groups, kh, kw]`.
    pub dw: Vec<f32>,
    /// `[cout]`.
    pub db: Option<Vec<f32>>,
}

/// The gradients of `sum(y * dy)`.
pub fn backward(g: &ConvGeometry, x: &[f32], w: &[f32], dy: &[f32], with_bias: bool, need_dx: bool) -> Grads {
    let (dx, dw) = match g.kind() {
        ConvKind::Pointwise => pointwise::backward(g, x, w, dy, need_dx),
        ConvKind::Depthwise => depthwise::backward(g, x, w, dy, need_dx),
        ConvKind::Dense => dense::backward(g, x, w, dy, need_dx),
    };
    let db = with_bias.then(|| bias_grad(g, dy));
    Grads { dx, dw, db }
}

fn add_bias(g: &ConvGeometry, y: &mut [f32], b: &[f32]) {
    use rayon::prelude::*;
    let p = g.out_pixels();
    y.par_chunks_mut(p).enumerate().for_each(|(i, plane)| {
        let v = b[i % g.cout];
        plane.iter_mut().for_each(|y| *y += v);
    });
}

/// `Σ v` in 8 f32 lanes.
fn lane_sum(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for k in 0..8 {
            lanes[k] += c[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `db[c] = sum over images and pixels of dy`: per plane in f32 lanes, over images in f64 in
/// image order, channels in parallel.
fn bias_grad(g: &ConvGeometry, dy: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    let p = g.out_pixels();
    (0..g.cout)
        .into_par_iter()
        .map(|c| (0..g.batch).map(|n| lane_sum(&dy[(n * g.cout + c) * p..][..p]) as f64).sum::<f64>() as f32)
        .collect()
}
