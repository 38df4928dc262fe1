//! S3FD's L2Norm: each position's channel vector scaled to unit length, then by a learned
//! per-channel weight.

use burn::module::{Initializer, Param};
use burn::prelude::*;
use rnnpool_core::{RnnPoolError, StateDict};

/// S3FD's L2Norm: each pixel's channel vector scaled to unit length, then by a learnt per-channel scale.
#[derive(Module, Debug)]
pub struct L2Norm {
    /// `[channels]`
    pub weight: Param<Tensor<1>>,
}

impl L2Norm {
    /// EdgeML initialises the weight to a constant scale (10, 8 or 5 by source).
    pub fn new(channels: usize, scale: f64, device: &Device) -> Self {
        Self { weight: Initializer::Constant { value: scale }.init([channels], device) }
    }

    /// `x / (||x||_2 over channels + 1e-10) * weight`, for `x` `[b, c, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let c = self.weight.dims()[0];
        let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt() + 1e-10;
        x / norm * self.weight.val().reshape([1, c, 1, 1])
    }

    /// Loads the scale from `key` of `state`.
    pub fn load(&mut self, state: &StateDict, key: &str) -> Result<(), RnnPoolError> {
        let (device, dtype) = (self.weight.device(), self.weight.val().dtype());
        let shape = self.weight.dims();
        self.weight = Param::from_tensor(state.tensor(key, shape, &device, dtype)?);
        Ok(())
    }
}
