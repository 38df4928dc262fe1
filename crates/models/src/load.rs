//! Loading PyTorch-named weights into burn layers.

use burn::module::{Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use rnnpool_core::{RnnPoolError, StateDict};

/// `{prefix}weight` (and `{prefix}bias` when the conv has one) into `conv`.
pub fn conv2d(conv: &mut Conv2d, state: &StateDict, prefix: &str) -> Result<(), RnnPoolError> {
    let (device, dtype) = (conv.weight.device(), conv.weight.val().dtype());
    let shape = conv.weight.dims();
    conv.weight = Param::from_tensor(state.tensor(&format!("{prefix}weight"), shape, &device, dtype)?);
    if let Some(bias) = &mut conv.bias {
        let shape = bias.dims();
        *bias = Param::from_tensor(state.tensor(&format!("{prefix}bias"), shape, &device, dtype)?);
    }
    Ok(())
}

/// PyTorch's `weight`, `bias`, `running_mean`, `running_var` into burn's gamma, beta and
/// running statistics.
pub fn batch_norm(bn: &mut BatchNorm, state: &StateDict, prefix: &str) -> Result<(), RnnPoolError> {
    let (device, dtype) = (bn.gamma.device(), bn.gamma.val().dtype());
    let shape = bn.gamma.dims();
    let get = |name: &str| state.tensor::<1>(&format!("{prefix}{name}"), shape, &device, dtype);
    bn.gamma = Param::from_tensor(get("weight")?);
    bn.beta = Param::from_tensor(get("bias")?);
    bn.running_mean = RunningState::new(get("running_mean")?);
    bn.running_var = RunningState::new(get("running_var")?);
    Ok(())
}

/// `{prefix}weight` `[out, in]` (PyTorch's layout; burn's is `[in, out]`) and `{prefix}bias`.
pub fn linear(linear: &mut Linear, state: &StateDict, prefix: &str) -> Result<(), RnnPoolError> {
    let (device, dtype) = (linear.weight.device(), linear.weight.val().dtype());
    let [fin, fout] = linear.weight.dims();
    let w: burn::tensor::Tensor<2> = state.tensor(&format!("{prefix}weight"), [fout, fin], &device, dtype)?;
    linear.weight = Param::from_tensor(w.transpose());
    if let Some(bias) = &mut linear.bias {
        *bias = Param::from_tensor(state.tensor(&format!("{prefix}bias"), [fout], &device, dtype)?);
    }
    Ok(())
}
