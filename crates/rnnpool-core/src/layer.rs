//! The RNNPool layer: the operator slid over a feature map like a pooling layer.

use burn::prelude::*;

use crate::RnnPoolError;
use crate::cell::RnnCellKind;
use crate::rnnpool::{RnnPool, RnnPoolConfig, RnnPoolImpl};
use crate::state_dict::StateDict;

/// Configuration of an [`RnnPoolLayer`].
#[derive(Config, Debug)]
pub struct RnnPoolLayerConfig {
    /// Channels of the input map.
    pub in_channels: usize,
    /// Patch size `[rows, cols]`.
    pub patch_size: [usize; 2],
    /// Stride `[rows, cols]` between patches.
    pub stride: [usize; 2],
    /// Hidden size of RNN1.
    pub hidden1: usize,
    /// Hidden size of RNN2; the layer outputs `4 * hidden2` channels.
    pub hidden2: usize,
    /// The cell of both RNNs.
    #[config(default = "RnnCellKind::FastGrnn")]
    pub cell: RnnCellKind,
    /// Fused kernel or composed ops.
    #[config(default = "RnnPoolImpl::Auto")]
    pub implementation: RnnPoolImpl,
}

impl RnnPoolLayerConfig {
    /// A square patch and stride, as in every model of the paper.
    pub fn square(in_channels: usize, patch: usize, stride: usize, hidden1: usize, hidden2: usize) -> Self {
        Self::new(in_channels, [patch, patch], [stride, stride], hidden1, hidden2)
    }

    /// The layer, or an error naming the bad size.
    pub fn init(&self, device: &Device) -> Result<RnnPoolLayer, RnnPoolError> {
        if self.patch_size.contains(&0) {
            return Err(RnnPoolError::ZeroPatch { patch: self.patch_size });
        }
        if self.stride.contains(&0) {
            return Err(RnnPoolError::ZeroStride { stride: self.stride });
        }
        let pool = RnnPoolConfig::new(self.in_channels, self.hidden1, self.hidden2)
            .with_cell(self.cell)
            .with_implementation(self.implementation)
            .init(device)?;
        Ok(RnnPoolLayer { pool, patch_size: self.patch_size, stride: self.stride })
    }
}

/// Cuts `[batch, in_channels, H, W]` into patches without padding
/// (`Ho = floor((H - rows) / stride) + 1`, likewise `Wo`), pools each with [`RnnPool`], and
/// appends one copy of the last row and of the last column, as the original models do:
/// `[batch, 4 * hidden2, Ho + 1, Wo + 1]`.
#[derive(Module, Debug)]
pub struct RnnPoolLayer {
    /// The operator over one patch.
    pub pool: RnnPool,
    /// `[rows, columns]` of a patch.
    #[module(skip)]
    pub patch_size: [usize; 2],
    /// `[rows, columns]` between patches.
    #[module(skip)]
    pub stride: [usize; 2],
}

impl RnnPoolLayer {
    /// Output `[channels, height, width]` for an input map of `height x width`.
    pub fn output_dims(&self, height: usize, width: usize) -> Result<[usize; 3], RnnPoolError> {
        let [r, c] = self.patch_size;
        if r > height || c > width {
            return Err(RnnPoolError::PatchLargerThanMap { patch_h: r, patch_w: c, height, width });
        }
        let ho = (height - r) / self.stride[0] + 1;
        let wo = (width - c) / self.stride[1] + 1;
        Ok([self.pool.out_channels(), ho + 1, wo + 1])
    }

    /// # Panics
    /// On bad input dimensions; see [`Self::try_forward`].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.try_forward(x).unwrap_or_else(|e| panic!("RnnPoolLayer: {e}"))
    }

    /// [`RnnPoolLayer::forward`] with bad shapes as an error instead of a panic.
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>, RnnPoolError> {
        let y = self.pool.pool_map(x, self.patch_size, self.stride)?;
        Ok(replicate_last_row_and_column(y))
    }

    /// Loads EdgeML weights (`{prefix}cell_rnn.cell.*`, `{prefix}cell_bidirrnn.cell.*`).
    pub fn load_edgeml(self, state: &StateDict, prefix: &str) -> Result<Self, RnnPoolError> {
        Ok(Self { pool: self.pool.load_edgeml(state, prefix)?, ..self })
    }
}

/// `F.pad(x, (0, 1, 0, 1), mode="replicate")`.
fn replicate_last_row_and_column(y: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = y.dims();
    let y = Tensor::cat(vec![y.clone(), y.narrow(2, h - 1, 1)], 2);
    Tensor::cat(vec![y.clone(), y.narrow(3, w - 1, 1)], 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::RnnCell;
    use burn::tensor::Distribution;

    fn input(shape: [usize; 4], device: &Device) -> Tensor<4> {
        device.seed(7);
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
    }

    #[test]
    fn output_is_floor_grid_plus_one_replicated_row_and_column() {
        let device = Device::flex();
        let layer = RnnPoolLayerConfig::square(3, 6, 4, 4, 5).init(&device).unwrap();
        let y = layer.forward(input([2, 3, 14, 19], &device));
        // Ho = (14 - 6) / 4 + 1 = 3, Wo = (19 - 6) / 4 + 1 = 4.
        assert_eq!(y.dims(), [2, 20, 4, 5]);
        assert_eq!(layer.output_dims(14, 19).unwrap(), [20, 4, 5]);
        let last = y.clone().narrow(2, 3, 1).into_data();
        let before = y.clone().narrow(2, 2, 1).into_data();
        assert_eq!(last, before, "last row must be a copy of the one above");
        let last = y.clone().narrow(3, 4, 1).into_data();
        let before = y.narrow(3, 3, 1).into_data();
        assert_eq!(last, before, "last column must be a copy of the one before");
    }

    #[test]
    fn fused_and_composed_agree_on_non_square_patches() {
        let device = Device::flex().autodiff();
        let cfg = RnnPoolLayerConfig::new(3, [3, 5], [2, 3], 4, 6);
        let fused = cfg.clone().with_implementation(RnnPoolImpl::Fused).init(&device).unwrap();
        let mut composed = fused.clone();
        composed.pool.implementation = RnnPoolImpl::Composed;
        let x = input([2, 3, 9, 14], &device).require_grad();
        let (a, b) = (fused.forward(x.clone()), composed.forward(x.clone()));
        assert_eq!(a.dims(), [2, 24, 5, 5]);
        let diff = (a.clone() - b.clone()).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "forward differs by {diff}");
        let ga = a.powi_scalar(2).sum().backward();
        let gb = b.powi_scalar(2).sum().backward();
        let gx = (x.grad(&ga).unwrap() - x.grad(&gb).unwrap()).abs().max().into_scalar::<f32>();
        assert!(gx < 1e-5, "input gradients differ by {gx}");
    }

    /// Mean-subtracted pixels straight into RNN1, as RNNPool-Face-C reads them: most gates
    /// saturate and the fused kernel flushes the subnormals they make; burn's ops keep them.
    /// Nothing above 1e-38 may change.
    #[test]
    fn fused_and_composed_agree_where_gates_saturate() {
        let device = Device::flex().autodiff();
        let cfg = RnnPoolLayerConfig::square(3, 8, 4, 16, 16);
        let fused = cfg.clone().with_implementation(RnnPoolImpl::Fused).init(&device).unwrap();
        let mut composed = fused.clone();
        composed.pool.implementation = RnnPoolImpl::Composed;
        let x = (input([2, 3, 20, 24], &device) * 60.0).detach().require_grad();
        let (a, b) = (fused.forward(x.clone()), composed.forward(x.clone()));
        fn close<const D: usize>(p: Tensor<D>, q: Tensor<D>, what: &str) {
            let scale = q.clone().abs().max().into_scalar::<f32>().max(1e-30);
            let diff = (p - q).abs().max().into_scalar::<f32>() / scale;
            assert!(diff < 1e-5, "{what}: relative difference {diff}");
        }
        close(a.clone(), b.clone(), "output");
        let (ga, gb) = (a.powi_scalar(2).sum().backward(), b.powi_scalar(2).sum().backward());
        close(x.grad(&ga).unwrap(), x.grad(&gb).unwrap(), "input gradient");
        for (p, what) in [(&fused.pool.rnn1, "rnn1"), (&fused.pool.rnn2, "rnn2")] {
            let RnnCell::FastGrnn(cell) = p else { unreachable!("the default cell is FastGRNN") };
            for (w, name) in [(&cell.w, "W"), (&cell.u, "U"), (&cell.bias_gate, "bias_gate")] {
                close(w.val().grad(&ga).unwrap(), w.val().grad(&gb).unwrap(), &format!("{what} {name}"));
            }
        }
    }

    #[test]
    fn bad_arguments_name_the_numbers() {
        let device = Device::flex();
        let err = RnnPoolLayerConfig::square(3, 6, 0, 4, 4).init(&device).unwrap_err();
        assert!(err.to_string().contains("[0, 0]"), "{err}");
        let err = RnnPoolLayerConfig::square(3, 0, 2, 4, 4).init(&device).unwrap_err();
        assert!(err.to_string().contains("patch"), "{err}");
        let layer = RnnPoolLayerConfig::square(3, 8, 4, 4, 4).init(&device).unwrap();
        let err = layer.try_forward(input([1, 3, 6, 20], &device)).unwrap_err();
        assert!(err.to_string().contains("8x8") && err.to_string().contains("6x20"), "{err}");
        let err = layer.try_forward(input([1, 5, 16, 16], &device)).unwrap_err();
        assert!(err.to_string().contains("5 channels") && err.to_string().contains("= 3"), "{err}");
    }

    #[test]
    #[should_panic(expected = "larger than the 4x4 feature map")]
    fn forward_panics_with_the_same_message() {
        let device = Device::flex();
        let layer = RnnPoolLayerConfig::square(1, 5, 1, 2, 2).init(&device).unwrap();
        layer.forward(input([1, 1, 4, 4], &device));
    }
}
