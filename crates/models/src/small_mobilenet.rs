//! A small MobileNetV2-RNNPool-style classifier for low-resolution inputs (Fashion-MNIST's
//! 28x28): a 3x3 stem, then either an RNNPool layer or average pooling over the same patches
//! and stride (so the two can be compared), then inverted residual blocks, a 1x1 conv, global
//! average pooling and a linear classifier.

use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use rnnpool_core::{RnnPoolError, RnnPoolLayer, RnnPoolLayerConfig};

use crate::blocks::{ConvBnRelu6, InvertedResidual};

/// What summarises each patch after the stem.
#[derive(Config, Debug, PartialEq)]
pub enum StemPooling {
    /// RNNPool with h1 = h2 = `hidden` (4 * hidden output channels).
    RnnPool {
        /// Hidden size of both cells.
        hidden: usize,
    },
    /// Average pooling (keeps the stem's channels).
    Average,
}

/// The small MobileNetV2-style classifier for 28x28 inputs.
#[derive(Config, Debug)]
pub struct SmallMobileNetConfig {
    /// Input channels.
    #[config(default = 1)]
    pub in_channels: usize,
    /// Classes.
    #[config(default = 10)]
    pub num_classes: usize,
    /// Channels after the stem.
    #[config(default = 16)]
    pub stem_channels: usize,
    /// Pooling patch side.
    #[config(default = 4)]
    pub patch: usize,
    /// Pooling stride.
    #[config(default = 2)]
    pub stride: usize,
    /// What pools after the stem.
    #[config(default = "StemPooling::RnnPool { hidden: 8 }")]
    pub pooling: StemPooling,
}

impl SmallMobileNetConfig {
    /// The network, or an error naming a bad size.
    pub fn init(&self, device: &Device) -> Result<SmallMobileNet, RnnPoolError> {
        let (rnn_pool, avg_pool, pooled) = match self.pooling {
            StemPooling::RnnPool { hidden } => {
                let layer = RnnPoolLayerConfig::square(self.stem_channels, self.patch, self.stride, hidden, hidden)
                    .init(device)?;
                (Some(layer), None, 4 * hidden)
            }
            StemPooling::Average => {
                let pool =
                    AvgPool2dConfig::new([self.patch, self.patch]).with_strides([self.stride, self.stride]).init();
                (None, Some(pool), self.stem_channels)
            }
        };
        let blocks = vec![
            InvertedResidual::new(pooled, 32, 1, 2, device),
            InvertedResidual::new(32, 64, 2, 2, device),
            InvertedResidual::new(64, 64, 1, 2, device),
        ];
        Ok(SmallMobileNet {
            stem: ConvBnRelu6::new(self.in_channels, self.stem_channels, 3, 1, 1, device),
            rnn_pool,
            avg_pool,
            blocks,
            last: ConvBnRelu6::new(64, 128, 1, 1, 1, device),
            classifier: LinearConfig::new(128, self.num_classes).init(device),
        })
    }
}

/// The small classifier: stem, pooling, inverted residuals, classifier.
#[derive(Module, Debug)]
pub struct SmallMobileNet {
    /// The 3x3 stem.
    pub stem: ConvBnRelu6,
    /// RNNPool after the stem.
    pub rnn_pool: Option<RnnPoolLayer>,
    /// Or average pooling after it.
    pub avg_pool: Option<AvgPool2d>,
    /// The inverted residuals.
    pub blocks: Vec<InvertedResidual>,
    /// The last 1x1 convolution.
    pub last: ConvBnRelu6,
    /// The classifier.
    pub classifier: Linear,
}

impl SmallMobileNet {
    /// `[batch, in_channels, h, w]` -> logits `[batch, num_classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>, RnnPoolError> {
        let mut h = self.stem.forward(x);
        if let Some(pool) = &self.rnn_pool {
            h = pool.try_forward(h)?;
        }
        if let Some(pool) = &self.avg_pool {
            h = pool.forward(h);
        }
        for block in &self.blocks {
            h = block.forward(h);
        }
        let h = self.last.forward(h);
        let [b, c, _, _] = h.dims();
        Ok(self.classifier.forward(h.mean_dim(3).mean_dim(2).reshape([b, c])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_poolings_classify_28x28_grey_images() {
        let device = Device::flex();
        for pooling in [StemPooling::RnnPool { hidden: 8 }, StemPooling::Average] {
            let net = SmallMobileNetConfig::new().with_pooling(pooling).init(&device).unwrap();
            let y = net.forward(Tensor::zeros([2, 1, 28, 28], &device)).unwrap();
            assert_eq!(y.dims(), [2, 10]);
        }
    }
}
