//! Convolution and BatchNorm (+ ReLU / ReLU6) for burn modules, with fast CPU kernels and their
//! own backward passes.
//!
//! burn-flex 0.22 computes a convolution's forward pass by im2col and a matrix product but its
//! backward with burn's generic code: the input gradient as a transposed convolution and the
//! weight gradient by slicing, convolving and writing back once per group, once per channel for
//! a depthwise convolution. BatchNorm in training runs as a chain of tensor operations, each a
//! pass over the map. The models of this project spend most of a training step there. This crate
//! runs those layers as single operations (burn's backend-extension mechanism, as
//! `rnnpool-core`'s fused RNNPool does): on Flex and NdArray in f32 the kernels in [`conv`] and
//! [`mod@batch_norm`]; on every other backend or dtype burn's own modules, unchanged.
//!
//! ```ignore
//! let y = nn_ops::conv2d(&self.conv, x);                            // instead of self.conv.forward(x)
//! let y = nn_ops::batch_norm(&self.bn, y, Activation::Relu6);      // instead of relu6(self.bn.forward(y))
//! ```
//!
//! [`sgd::Sgd`] is burn's SGD with momentum and weight decay as one pass per parameter on the
//! same backends (same values, same record).
//!
//! A training loop runs each forward and backward pass (and the optimizer step) through
//! [`on_kernel_threads`], so that the kernels' threads do not fall asleep between kernels
//! ([`pool`]).

#![warn(missing_docs)]

pub mod backend;
pub mod batch_norm;
mod buffer;
pub mod conv;
pub mod gemm;
pub mod pool;
pub mod profile;
pub mod sgd;
pub mod simd;
mod transpose;

use burn::backend::{Dispatch, DispatchDevice};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::DType;

pub use batch_norm::Activation;
pub use conv::{ConvGeometry, ConvKind};
pub use pool::on_kernel_threads;

use backend::NnOpsBackend;

/// Whether the CPU kernels run on this device's backend (Flex or NdArray, with or without
/// autodiff).
pub fn runs_on(device: &Device) -> bool {
    #[allow(deprecated)]
    let cpu = matches!(device.clone().inner().as_dispatch(), DispatchDevice::Flex(_) | DispatchDevice::NdArray(_));
    cpu
}

/// `NN_OPS_BURN=1` in the environment runs burn's own modules everywhere, to compare.
fn burn_only() -> bool {
    static BURN_ONLY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *BURN_ONLY.get_or_init(|| std::env::var_os("NN_OPS_BURN").is_some_and(|v| v == "1"))
}

/// Whether the kernels take `x`: a CPU backend and f32.
fn kernels_take<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && runs_on(&x.device()) && !burn_only()
}

/// Symmetric padding `[rows, columns]` of `conv`, if it has one the kernels take.
fn symmetric_padding(conv: &Conv2d) -> Option<[usize; 2]> {
    match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => Some([top, left]),
        _ => None,
    }
}

/// `conv.forward(x)`, by the CPU kernels where they apply.
///
/// # Shapes
/// - input `[batch, in_channels, height, width]`
/// - output `[batch, out_channels, out_height, out_width]`
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match symmetric_padding(conv) {
        Some(p) if conv.dilation == [1, 1] && kernels_take(&x) => p,
        _ => return conv.forward(x),
    };
    let weight = conv.weight.val();
    let ([batch, cin, height, width], [cout, _, kh, kw]) = (x.dims(), weight.dims());
    let g = ConvGeometry {
        batch,
        cin,
        height,
        width,
        cout,
        kernel: [kh, kw],
        stride: conv.stride,
        padding,
        groups: conv.groups,
    };
    if !g.is_valid() || cin != weight.dims()[1] * conv.groups {
        // burn reports bad shapes in its own words.
        return conv.forward(x);
    }
    // No bias: an empty one, which the kernels skip (a pass over the output saved).
    let bias = match &conv.bias {
        Some(b) => b.val(),
        None => Tensor::zeros([0], &x.device()),
    };
    let y = <Dispatch as NnOpsBackend>::conv2d_cpu(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        (conv.stride, padding, conv.groups),
    );
    Tensor::from_dispatch(y)
}

/// `act(bn.forward(x))`, by the CPU kernels where they apply. As burn's BatchNorm: in training
/// (an autodiff device and the layer's training flag on) the batch's statistics normalise and
/// the running statistics move towards them by `momentum`; otherwise the running statistics
/// normalise.
///
/// # Shapes
/// - input `[batch, channels, height, width]`
/// - output `[batch, channels, height, width]`
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>, act: Activation) -> Tensor<4> {
    if !kernels_take(&x) || x.dims()[1] != bn.gamma.dims()[0] {
        return activate(bn.forward(x), act);
    }
    let device = x.device();
    if device.is_autodiff() && bn.training.is_enabled() {
        let (y, mean, var) = <Dispatch as NnOpsBackend>::batch_norm_cpu(
            x.into_dispatch(),
            bn.gamma.val().into_dispatch(),
            bn.beta.val().into_dispatch(),
            bn.epsilon,
            act.code(),
        );
        let (mean, var) = (Tensor::<1>::from_dispatch(mean), Tensor::<1>::from_dispatch(var));
        update_running(bn, mean, var, &device);
        return Tensor::from_dispatch(y);
    }
    let y = <Dispatch as NnOpsBackend>::batch_norm_cpu_inference(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        bn.running_mean.value().to_device(&device).into_dispatch(),
        bn.running_var.value().to_device(&device).into_dispatch(),
        bn.epsilon,
        act.code(),
    );
    Tensor::from_dispatch(y)
}

/// The SGD step of [`sgd::Sgd`] on the CPU kernels: the new parameter and velocity.
fn sgd_step<const D: usize>(
    p: Tensor<D>,
    g: Tensor<D>,
    v: Option<Tensor<D>>,
    args: sgd::SgdArgs,
) -> (Tensor<D>, Option<Tensor<D>>) {
    let momentum = args.momentum.is_some();
    // No velocity yet: an empty one, which the kernel fills with the first.
    let v = v.filter(|_| momentum).unwrap_or_else(|| Tensor::zeros([0; D], &p.device()));
    let (p, v) =
        <Dispatch as NnOpsBackend>::sgd_step_cpu(p.into_dispatch(), g.into_dispatch(), v.into_dispatch(), args);
    (Tensor::from_dispatch(p), momentum.then(|| Tensor::from_dispatch(v)))
}

/// The running statistics' update, as burn's BatchNorm makes it.
fn update_running(bn: &BatchNorm, mean: Tensor<1>, var: Tensor<1>, device: &Device) {
    let m = bn.momentum;
    let running_mean = bn.running_mean.value_sync().to_device(device);
    let running_var = bn.running_var.value_sync().to_device(device);
    let running_mean = running_mean.mul_scalar(1.0 - m).add(mean.detach().mul_scalar(m));
    let running_var = running_var.mul_scalar(1.0 - m).add(var.detach().mul_scalar(m));
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
}

/// `act(y)` with burn's ops.
fn activate(y: Tensor<4>, act: Activation) -> Tensor<4> {
    match act {
        Activation::Identity => y,
        Activation::Relu => burn::tensor::activation::relu(y),
        Activation::Relu6 => y.clamp(0.0, 6.0),
    }
}
