//! MobileNetV2 building blocks in torchvision's layout (the layout EdgeML's models use).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use nn_ops::Activation;
use rnnpool_core::{RnnPoolError, StateDict};

use crate::load;

/// `_make_divisible`: round to the nearest multiple of `divisor`, never below `divisor` and
/// never more than 10 % below `value`.
pub fn make_divisible(value: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut rounded = (((value + d / 2.0) / d).floor() * d).max(d);
    if rounded < 0.9 * value {
        rounded += d;
    }
    rounded as usize
}

/// Conv (no bias, padding `(k - 1) / 2`) + BatchNorm + ReLU6.
#[derive(Module, Debug)]
pub struct ConvBnRelu6 {
    /// The convolution, without bias.
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
}

/// PyTorch's (and burn's) default BatchNorm momentum; EdgeML's VWW model uses 0.01.
pub const BN_MOMENTUM: f64 = 0.1;

impl ConvBnRelu6 {
    /// With BatchNorm momentum 0.1 (PyTorch's default).
    pub fn new(cin: usize, cout: usize, kernel: usize, stride: usize, groups: usize, device: &Device) -> Self {
        Self::with_momentum(cin, cout, kernel, stride, groups, BN_MOMENTUM, device)
    }

    /// With BatchNorm momentum `momentum`.
    pub fn with_momentum(
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        bn_momentum: f64,
        device: &Device,
    ) -> Self {
        let pad = (kernel - 1) / 2;
        Self {
            conv: Conv2dConfig::new([cin, cout], [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_groups(groups)
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(cout).with_momentum(bn_momentum).init(device),
        }
    }

    /// `[batch, cin, h, w]` -> `[batch, cout, h / stride, w / stride]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        nn_ops::batch_norm(&self.bn, nn_ops::conv2d(&self.conv, x), Activation::Relu6)
    }

    /// `{prefix}0.*` (conv) and `{prefix}1.*` (BatchNorm), as in `nn.Sequential(conv, bn, relu6)`.
    pub fn load(&mut self, state: &StateDict, prefix: &str) -> Result<(), RnnPoolError> {
        load::conv2d(&mut self.conv, state, &format!("{prefix}0."))?;
        load::batch_norm(&mut self.bn, state, &format!("{prefix}1."))
    }
}

/// MobileNetV2's inverted residual: [1x1 expand + BN + ReLU6] (when `expand_ratio != 1`),
/// 3x3 depthwise + BN + ReLU6, 1x1 project + BN; a residual add when the stride is 1 and the
/// channel counts match.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// The 1x1 expansion (none at ratio 1).
    pub expand: Option<ConvBnRelu6>,
    /// The 3x3 depthwise convolution.
    pub depthwise: ConvBnRelu6,
    /// The 1x1 projection.
    pub project: Conv2d,
    /// Its BatchNorm.
    pub project_bn: BatchNorm,
    /// Whether the input is added to the output (stride 1, `cin == cout`).
    #[module(skip)]
    pub residual: bool,
}

impl InvertedResidual {
    /// With BatchNorm momentum 0.1.
    pub fn new(cin: usize, cout: usize, stride: usize, expand_ratio: usize, device: &Device) -> Self {
        Self::with_momentum(cin, cout, stride, expand_ratio, BN_MOMENTUM, device)
    }

    /// With BatchNorm momentum `momentum`.
    pub fn with_momentum(
        cin: usize,
        cout: usize,
        stride: usize,
        expand_ratio: usize,
        bn_momentum: f64,
        device: &Device,
    ) -> Self {
        let hidden = cin * expand_ratio;
        let cbr = |i, o, k, s, g| ConvBnRelu6::with_momentum(i, o, k, s, g, bn_momentum, device);
        Self {
            expand: (expand_ratio != 1).then(|| cbr(cin, hidden, 1, 1, 1)),
            depthwise: cbr(hidden, hidden, 3, stride, hidden),
            project: Conv2dConfig::new([hidden, cout], [1, 1]).with_bias(false).init(device),
            project_bn: BatchNormConfig::new(cout).with_momentum(bn_momentum).init(device),
            residual: stride == 1 && cin == cout,
        }
    }

    /// `[batch, cin, h, w]` -> `[batch, cout, h / stride, w / stride]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = match &self.expand {
            Some(expand) => expand.forward(x.clone()),
            None => x.clone(),
        };
        let projected = nn_ops::conv2d(&self.project, self.depthwise.forward(h));
        let y = nn_ops::batch_norm(&self.project_bn, projected, Activation::Identity);
        if self.residual { x + y } else { y }
    }

    /// torchvision's names under `{prefix}conv.`: with expansion `0` expand, `1` depthwise,
    /// `2` project conv, `3` its BatchNorm; without, the indices shift down by one.
    pub fn load(&mut self, state: &StateDict, prefix: &str) -> Result<(), RnnPoolError> {
        let mut i = 0;
        if let Some(expand) = &mut self.expand {
            expand.load(state, &format!("{prefix}conv.0."))?;
            i = 1;
        }
        self.depthwise.load(state, &format!("{prefix}conv.{i}."))?;
        load::conv2d(&mut self.project, state, &format!("{prefix}conv.{}.", i + 1))?;
        load::batch_norm(&mut self.project_bn, state, &format!("{prefix}conv.{}.", i + 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_torchvision() {
        assert_eq!(make_divisible(32.0 * 0.35, 8), 16);
        assert_eq!(make_divisible(64.0 * 0.35, 8), 24);
        assert_eq!(make_divisible(160.0 * 0.35, 8), 56);
        assert_eq!(make_divisible(320.0 * 0.35, 8), 112);
        assert_eq!(make_divisible(1280.0, 8), 1280);
        assert_eq!(make_divisible(3.0, 8), 8);
    }

    #[test]
    fn residual_only_when_shape_is_kept() {
        let device = Device::flex();
        assert!(InvertedResidual::new(32, 32, 1, 2, &device).residual);
        assert!(!InvertedResidual::new(32, 32, 2, 2, &device).residual);
        assert!(!InvertedResidual::new(32, 64, 1, 2, &device).residual);
        let block = InvertedResidual::new(8, 16, 2, 6, &device);
        assert_eq!(block.forward(Tensor::zeros([1, 8, 10, 12], &device)).dims(), [1, 16, 5, 6]);
    }
}
