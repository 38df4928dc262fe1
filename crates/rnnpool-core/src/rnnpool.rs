//! The RNNPool operator: a `[channels, rows, cols]` patch summarised into `4 * hidden2` values.

use burn::backend::{Dispatch, DispatchDevice};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::RnnPoolError;
use crate::cell::{RnnCell, RnnCellKind};
use crate::fastgrnn::FastGrnnCell;
use crate::fused::backend::{CellTensors, RnnPoolBackend};
use crate::state_dict::StateDict;

/// How the operator is computed. Both give the same numbers (checked by the parity tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RnnPoolImpl {
    /// Fused where it can be (FastGRNN on Flex, NdArray, and wgpu when built with the `wgpu`
    /// feature), composed otherwise.
    #[default]
    Auto,
    /// The fused kernel (CPU, or CubeCL on wgpu); an error for other cells or backends.
    Fused,
    /// Burn tensor ops, one batched step per time step; runs on every backend.
    Composed,
}

/// Configuration of an [`RnnPool`].
#[derive(Config, Debug)]
pub struct RnnPoolConfig {
    /// Channels `k` of each input patch.
    pub in_channels: usize,
    /// Hidden size of RNN1 (the row and column sweeps).
    pub hidden1: usize,
    /// Hidden size of RNN2 (the bidirectional sweeps over RNN1's summaries).
    pub hidden2: usize,
    /// The cell used by both RNNs.
    #[config(default = "RnnCellKind::FastGrnn")]
    pub cell: RnnCellKind,
    /// Fused kernel or composed tensor ops.
    #[config(default = "RnnPoolImpl::Auto")]
    pub implementation: RnnPoolImpl,
}

impl RnnPoolConfig {
    /// The operator, or an error naming the bad size.
    pub fn init(&self, device: &Device) -> Result<RnnPool, RnnPoolError> {
        if self.in_channels == 0 {
            return Err(RnnPoolError::ZeroChannels);
        }
        if self.hidden1 == 0 || self.hidden2 == 0 {
            return Err(RnnPoolError::ZeroHidden { hidden1: self.hidden1, hidden2: self.hidden2 });
        }
        Ok(RnnPool {
            rnn1: self.cell.init(self.in_channels, self.hidden1, device),
            rnn2: self.cell.init(self.hidden1, self.hidden2, device),
            implementation: self.implementation,
        })
    }
}

/// RNNPool (Kusupati et al., NeurIPS 2020, Alg. 1): RNN1 sweeps every row and every column of
/// a patch; RNN2 sweeps the row summaries and the column summaries forwards and backwards.
/// The output is `[row-forward, row-backward, column-forward, column-backward]`, each
/// `hidden2` wide. RNN1 is shared by rows and columns, RNN2 by all four sweeps, and all states
/// start at zero, as in the original code.
#[derive(Module, Debug)]
pub struct RnnPool {
    /// The cell over each row and column of a patch.
    pub rnn1: RnnCell,
    /// The cell over the row and column summaries, both directions.
    pub rnn2: RnnCell,
    /// Fused kernel or composed ops.
    #[module(skip)]
    pub implementation: RnnPoolImpl,
}

impl RnnPool {
    /// Input channels.
    pub fn in_channels(&self) -> usize {
        match &self.rnn1 {
            RnnCell::FastGrnn(c) => c.input_size(),
            RnnCell::Gru(g) => g.update_gate.input_transform.weight.dims()[0],
            RnnCell::Lstm(l) => l.input_gate.input_transform.weight.dims()[0],
        }
    }

    /// RNN2's hidden size (the output has four times as many channels).
    pub fn hidden2(&self) -> usize {
        match &self.rnn2 {
            RnnCell::FastGrnn(c) => c.hidden_size(),
            RnnCell::Gru(g) => g.d_hidden,
            RnnCell::Lstm(l) => l.d_hidden,
        }
    }

    /// Output features per patch: `4 * hidden2`.
    pub fn out_channels(&self) -> usize {
        4 * self.hidden2()
    }

    /// `patches` `[n, in_channels, rows, cols]` -> `[n, 4 * hidden2]`.
    ///
    /// # Panics
    /// On a channel mismatch or an unsupported implementation choice; see [`Self::try_forward`].
    pub fn forward(&self, patches: Tensor<4>) -> Tensor<2> {
        self.try_forward(patches).unwrap_or_else(|e| panic!("RnnPool: {e}"))
    }

    /// [`Self::forward`] returning an error instead of panicking.
    pub fn try_forward(&self, patches: Tensor<4>) -> Result<Tensor<2>, RnnPoolError> {
        let [n, _, r, c] = patches.dims();
        let pooled = self.pool_map(patches, [r, c], [r, c])?;
        Ok(pooled.reshape([n, self.out_channels()]))
    }

    /// Every `patch` of `x` `[batch, in_channels, height, width]` taken at `stride` without
    /// padding -> `[batch, 4 * hidden2, out_h, out_w]`.
    pub fn pool_map(&self, x: Tensor<4>, patch: [usize; 2], stride: [usize; 2]) -> Result<Tensor<4>, RnnPoolError> {
        check_map(x.dims(), self.in_channels(), patch, stride)?;
        match self.implementation {
            RnnPoolImpl::Composed => Ok(self.composed(x, patch, stride)),
            RnnPoolImpl::Fused => {
                let (c1, c2) = self.fastgrnn_cells()?;
                check_fused_device(&x.device())?;
                Ok(fused(x, c1, c2, patch, stride))
            }
            RnnPoolImpl::Auto => match self.fastgrnn_cells() {
                Ok((c1, c2)) if fused_runs_on(&x.device()) => Ok(fused(x, c1, c2, patch, stride)),
                _ => Ok(self.composed(x, patch, stride)),
            },
        }
    }

    fn fastgrnn_cells(&self) -> Result<(&FastGrnnCell, &FastGrnnCell), RnnPoolError> {
        match (self.rnn1.as_fastgrnn(), self.rnn2.as_fastgrnn()) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(RnnPoolError::FusedNeedsFastGrnn { cell: self.rnn1.name() }),
        }
    }

    /// The tensor-op version: patches cut with `unfold`, then RNN1 over all rows and columns of
    /// all patches at once (one batched step per time step), then RNN2 over all four sweeps.
    fn composed(&self, x: Tensor<4>, patch: [usize; 2], stride: [usize; 2]) -> Tensor<4> {
        let [b, k, _, _] = x.dims();
        let [r, c] = patch;
        // [b, k, ho, W, r] -> [b, k, ho, wo, r, c]
        let windows: Tensor<6> = x.unfold::<5, _>(2, r, stride[0]).unfold(3, c, stride[1]);
        let [_, _, ho, wo, _, _] = windows.dims();
        let n = b * ho * wo;
        let patches = windows.permute([0, 2, 3, 1, 4, 5]).reshape([n, k, r, c]);
        let pooled = self.pool_patches(patches);
        pooled.reshape([b, ho, wo, self.out_channels()]).permute([0, 3, 1, 2])
    }

    /// `[n, k, r, c]` -> `[n, 4 * hidden2]` with tensor ops.
    fn pool_patches(&self, p: Tensor<4>) -> Tensor<2> {
        let [n, k, r, c] = p.dims();
        // Row sweeps: time runs along the columns, one sequence per (patch, row).
        let rows = p.clone().permute([3, 0, 2, 1]).reshape([c, n * r, k]);
        // Column sweeps: time runs down the rows, one sequence per (patch, column).
        let cols = p.permute([2, 0, 3, 1]).reshape([r, n * c, k]);
        let (row_sum, col_sum) = if r == c {
            let both = self.rnn1.last_state(Tensor::cat(vec![rows, cols], 1));
            let h1 = both.dims()[1];
            (both.clone().narrow(0, 0, n * r), both.narrow(0, n * r, n * c).reshape([n * c, h1]))
        } else {
            (self.rnn1.last_state(rows), self.rnn1.last_state(cols))
        };
        let h1 = row_sum.dims()[1];
        // Summaries as sequences: [r, n, h1] and [c, n, h1].
        let row_seq = row_sum.reshape([n, r, h1]).swap_dims(0, 1);
        let col_seq = col_sum.reshape([n, c, h1]).swap_dims(0, 1);
        let bidir = |seq: Tensor<3>| Tensor::cat(vec![seq.clone(), seq.flip([0])], 1);
        let [q_rf, q_rb, q_cf, q_cb] = if r == c {
            let q = self.rnn2.last_state(Tensor::cat(vec![bidir(row_seq), bidir(col_seq)], 1));
            [0, 1, 2, 3].map(|i| q.clone().narrow(0, i * n, n))
        } else {
            let qr = self.rnn2.last_state(bidir(row_seq));
            let qc = self.rnn2.last_state(bidir(col_seq));
            [qr.clone().narrow(0, 0, n), qr.narrow(0, n, n), qc.clone().narrow(0, 0, n), qc.narrow(0, n, n)]
        };
        Tensor::cat(vec![q_rf, q_rb, q_cf, q_cb], 1)
    }

    /// Loads RNN1 from `{prefix}cell_rnn.cell.*` and RNN2 from `{prefix}cell_bidirrnn.cell.*`
    /// (EdgeML's names), keeping this operator's dtype and device.
    pub fn load_edgeml(self, state: &StateDict, prefix: &str) -> Result<Self, RnnPoolError> {
        let load = |cell: RnnCell, name: &str| match cell {
            RnnCell::FastGrnn(c) => Ok(RnnCell::FastGrnn(c.load_edgeml(state, &format!("{prefix}{name}"))?)),
            other => Err(RnnPoolError::ImportNeedsFastGrnn { cell: other.name() }),
        };
        Ok(Self {
            rnn1: load(self.rnn1, "cell_rnn.cell.")?,
            rnn2: load(self.rnn2, "cell_bidirrnn.cell.")?,
            implementation: self.implementation,
        })
    }

    /// Builds an operator whose sizes come from the EdgeML tensors under `prefix` and loads them.
    pub fn from_edgeml(state: &StateDict, prefix: &str, device: &Device) -> Result<Self, RnnPoolError> {
        let dims = |name: &str| -> Result<[usize; 2], RnnPoolError> {
            let key = format!("{prefix}{name}");
            match state.get_any(&key)?.shape[..] {
                [input, hidden] => Ok([input, hidden]),
                ref found => Err(RnnPoolError::NotAMatrix { path: state.path().into(), key, found: found.to_vec() }),
            }
        };
        let [k, h1] = dims("cell_rnn.cell.W")?;
        let [_, h2] = dims("cell_bidirrnn.cell.W")?;
        RnnPoolConfig::new(k, h1, h2).init(device)?.load_edgeml(state, prefix)
    }
}

fn check_map(dims: [usize; 4], in_channels: usize, patch: [usize; 2], stride: [usize; 2]) -> Result<(), RnnPoolError> {
    let [_, k, h, w] = dims;
    if patch.contains(&0) {
        return Err(RnnPoolError::ZeroPatch { patch });
    }
    if stride.contains(&0) {
        return Err(RnnPoolError::ZeroStride { stride });
    }
    if dims.contains(&0) {
        return Err(RnnPoolError::EmptyInput { shape: dims });
    }
    if k != in_channels {
        return Err(RnnPoolError::ChannelMismatch { expected: in_channels, found: k });
    }
    if patch[0] > h || patch[1] > w {
        return Err(RnnPoolError::PatchLargerThanMap { patch_h: patch[0], patch_w: patch[1], height: h, width: w });
    }
    Ok(())
}

/// Whether the fused kernel has an implementation for this device's backend.
pub fn fused_runs_on(device: &Device) -> bool {
    #[allow(deprecated)]
    let supported = match device.clone().inner().as_dispatch() {
        DispatchDevice::Flex(_) | DispatchDevice::NdArray(_) => true,
        #[cfg(feature = "wgpu")]
        DispatchDevice::Cube(_) => true,
        _ => false,
    };
    supported
}

fn check_fused_device(device: &Device) -> Result<(), RnnPoolError> {
    if fused_runs_on(device) {
        Ok(())
    } else {
        Err(RnnPoolError::FusedUnsupportedDevice { device: format!("{device:?}") })
    }
}

fn cell_tensors(cell: &FastGrnnCell) -> CellTensors<Dispatch> {
    CellTensors {
        w: cell.w.val().into_dispatch(),
        u: cell.u.val().into_dispatch(),
        bias_gate: cell.bias_gate.val().into_dispatch(),
        bias_update: cell.bias_update.val().into_dispatch(),
        zeta: cell.zeta.val().into_dispatch(),
        nu: cell.nu.val().into_dispatch(),
    }
}

fn fused(x: Tensor<4>, rnn1: &FastGrnnCell, rnn2: &FastGrnnCell, patch: [usize; 2], stride: [usize; 2]) -> Tensor<4> {
    let out = <Dispatch as RnnPoolBackend>::rnnpool_fastgrnn(
        x.into_dispatch(),
        cell_tensors(rnn1),
        cell_tensors(rnn2),
        patch,
        stride,
    );
    Tensor::from_dispatch(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn every_cell_kind_trains_through_the_operator() {
        let device = Device::flex().autodiff();
        for cell in [RnnCellKind::FastGrnn, RnnCellKind::Gru, RnnCellKind::Lstm] {
            let pool = RnnPoolConfig::new(3, 4, 5).with_cell(cell).init(&device).unwrap();
            let x = Tensor::<4>::random([6, 3, 4, 4], Distribution::Normal(0.0, 1.0), &device).require_grad();
            let y = pool.forward(x.clone());
            assert_eq!(y.dims(), [6, 20], "{cell:?}");
            let grads = y.powi_scalar(2).sum().backward();
            let gx = x.grad(&grads).unwrap().abs().sum().into_scalar::<f32>();
            assert!(gx > 0.0 && gx.is_finite(), "{cell:?}: input gradient {gx}");
        }
    }

    #[test]
    fn fused_is_refused_for_other_cells_but_auto_falls_back() {
        let device = Device::flex();
        let x = Tensor::<4>::ones([2, 3, 4, 4], &device);
        let gru = RnnPoolConfig::new(3, 4, 4).with_cell(RnnCellKind::Gru);
        let err = gru
            .clone()
            .with_implementation(RnnPoolImpl::Fused)
            .init(&device)
            .unwrap()
            .try_forward(x.clone())
            .unwrap_err();
        assert!(err.to_string().contains("GRU"), "{err}");
        assert_eq!(gru.init(&device).unwrap().forward(x).dims(), [2, 16]);
    }

    #[test]
    fn row_and_column_outputs_swap_with_a_transposed_patch() {
        // The row sweeps of a patch are the column sweeps of its transpose.
        let device = Device::flex();
        let pool = RnnPoolConfig::new(2, 3, 4).init(&device).unwrap();
        let x = Tensor::<4>::random([3, 2, 5, 5], Distribution::Normal(0.0, 1.0), &device);
        let a = pool.forward(x.clone());
        let b = pool.forward(x.swap_dims(2, 3));
        let swapped = Tensor::cat(vec![b.clone().narrow(1, 8, 8), b.narrow(1, 0, 8)], 1);
        let diff = (a - swapped).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn zero_sizes_are_config_errors() {
        let device = Device::flex();
        assert!(matches!(RnnPoolConfig::new(0, 4, 4).init(&device), Err(RnnPoolError::ZeroChannels)));
        let err = RnnPoolConfig::new(3, 0, 4).init(&device).unwrap_err();
        assert!(err.to_string().contains("hidden1 = 0"), "{err}");
    }
}
