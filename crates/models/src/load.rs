//! Loading PyTorch-named weights into burn layers.

use burn::module::{Param, RunningState};
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
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
