//! MobileNetV2 (torchvision layout) and its RNNPool variants: MobileNetV2-RNNPool for ImageNet
//! (paper Table 10) and MobileNetV2-0.35x-RNNPool for Visual Wake Words (EdgeML's
//! `model_mobilenet_rnnpool.py`), where one RNNPool layer replaces the first three stages.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use rnnpool_core::{RnnPool, RnnPoolConfig, RnnPoolError, RnnPoolLayer, RnnPoolLayerConfig, StateDict};

use crate::blocks::{ConvBnRelu6, InvertedResidual, make_divisible};
use crate::load;
use crate::summary::{Report, Tracer, batch_norm_params};

/// torchvision's `inverted_residual_setting`: `(t, c, n, s)` = expansion, channels, repeats,
/// first stride.
const STAGES: [(usize, usize, usize, usize); 7] =
    [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];

/// The RNNPool layer that replaces the first three stages (stride 8 of feature extraction).
#[derive(Config, Debug)]
pub struct RnnPoolStemConfig {
    /// Patch side.
    #[config(default = 6)]
    pub patch: usize,
    /// Stride.
    #[config(default = 4)]
    pub stride: usize,
    /// RNN1's hidden size.
    #[config(default = 16)]
    pub hidden1: usize,
    /// RNN2's hidden size.
    #[config(default = 16)]
    pub hidden2: usize,
}

/// MobileNetV2's configuration (torchvision's by default).
#[derive(Config, Debug)]
pub struct MobileNetV2Config {
    /// Classes.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Width multiplier.
    #[config(default = 1.0)]
    pub width_mult: f64,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Channels of the first 3x3 stride-2 conv; `None`: `make_divisible(32 * width_mult)`.
    pub stem_channels: Option<usize>,
    /// Channels of the last 1x1 conv; `None`: `make_divisible(1280 * max(1, width_mult))`.
    pub last_channel: Option<usize>,
    /// `Some`: MobileNetV2-RNNPool (the RNNPool layer replaces stages 1-3).
    pub rnnpool: Option<RnnPoolStemConfig>,
    /// Replace the final average pool by an RNNPool over the whole last map with
    /// h1 = h2 = last_channel / 4 (paper App. F.1.2; EdgeML's `model_mobilenet_2rnnpool.py`).
    #[config(default = false)]
    pub last_rnnpool: bool,
    /// Dropout before the classifier; 0 leaves it out (and the classifier is then
    /// `classifier.0` in the state_dict instead of `classifier.1`).
    #[config(default = 0.2)]
    pub dropout: f64,
    /// BatchNorm momentum.
    #[config(default = 0.1)]
    pub bn_momentum: f64,
}

impl MobileNetV2Config {
    /// MobileNetV2-0.35x-RNNPool for Visual Wake Words, as EdgeML trains it.
    pub fn vww() -> Self {
        Self::new()
            .with_num_classes(2)
            .with_width_mult(0.35)
            .with_stem_channels(Some(8))
            .with_last_channel(Some(320))
            .with_rnnpool(Some(RnnPoolStemConfig::new().with_hidden1(8).with_hidden2(8)))
            .with_bn_momentum(0.01)
    }

    /// The VWW model with a second RNNPool in place of the average pool and no dropout.
    pub fn vww_two_rnnpools() -> Self {
        Self::vww().with_last_rnnpool(true).with_dropout(0.0)
    }

    /// MobileNetV2-RNNPool for ImageNet (paper Table 10: patch 6, stride 4, h1 = h2 = 16).
    pub fn imagenet_rnnpool(num_classes: usize) -> Self {
        Self::new().with_num_classes(num_classes).with_rnnpool(Some(RnnPoolStemConfig::new()))
    }

    /// The network, or an error naming a bad size.
    pub fn init(&self, device: &Device) -> Result<MobileNetV2, RnnPoolError> {
        let w = self.width_mult;
        let stem = self.stem_channels.unwrap_or_else(|| make_divisible(32.0 * w, 8));
        let last = self.last_channel.unwrap_or_else(|| make_divisible(1280.0 * w.max(1.0), 8));
        let (rnn_pool, mut cin, first_stage) = match &self.rnnpool {
            Some(r) => {
                let layer = RnnPoolLayerConfig::square(stem, r.patch, r.stride, r.hidden1, r.hidden2).init(device)?;
                (Some(layer), 4 * r.hidden2, 3)
            }
            None => (None, stem, 0),
        };
        let mut blocks = Vec::new();
        for &(t, c, n, s) in &STAGES[first_stage..] {
            let cout = make_divisible(c as f64 * w, 8);
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                blocks.push(InvertedResidual::with_momentum(cin, cout, stride, t, self.bn_momentum, device));
                cin = cout;
            }
        }
        let cbr = |i, o, k, s| ConvBnRelu6::with_momentum(i, o, k, s, 1, self.bn_momentum, device);
        let last_pool = match self.last_rnnpool {
            true => Some(RnnPoolConfig::new(last, last / 4, last / 4).init(device)?),
            false => None,
        };
        Ok(MobileNetV2 {
            stem: cbr(self.in_channels, stem, 3, 2),
            rnn_pool,
            blocks,
            last: cbr(cin, last, 1, 1),
            last_pool,
            dropout: (self.dropout > 0.0).then(|| DropoutConfig::new(self.dropout).init()),
            classifier: LinearConfig::new(last, self.num_classes).init(device),
        })
    }
}

/// MobileNetV2, with RNNPools in place of its first stages or not.
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// The 3x3 stride-2 stem.
    pub stem: ConvBnRelu6,
    /// The RNNPool after the stem (RNNPool variants).
    pub rnn_pool: Option<RnnPoolLayer>,
    /// The inverted residuals.
    pub blocks: Vec<InvertedResidual>,
    /// The last 1x1 convolution.
    pub last: ConvBnRelu6,
    /// The RNNPool in place of the global average pooling (the two-RNNPool VWW variant).
    pub last_pool: Option<RnnPool>,
    /// Dropout before the classifier.
    pub dropout: Option<Dropout>,
    /// The classifier.
    pub classifier: Linear,
}

impl MobileNetV2 {
    /// `x` `[batch, in_channels, height, width]` -> logits `[batch, num_classes]`. In training
    /// the dropout draws from burn's generator; [`forward_with_dropout_mask`] takes the mask.
    ///
    /// [`forward_with_dropout_mask`]: Self::forward_with_dropout_mask
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>, RnnPoolError> {
        let mut pooled = self.pooled(x)?;
        if let Some(dropout) = &self.dropout {
            pooled = dropout.forward(pooled);
        }
        Ok(self.classifier.forward(pooled))
    }

    /// [`forward`](Self::forward) in training, with the dropout's mask given: `keep`
    /// `[batch, features]` holds 0 (dropped) or 1 / (1 - p). burn's dropout draws from one
    /// generator per backend, shared by every thread and not saved in checkpoints; a mask
    /// drawn per sample (the trainer seeds it by seed, epoch and sample) makes a run the same
    /// on any number of devices, beside other runs, and after a resume.
    pub fn forward_with_dropout_mask(&self, x: Tensor<4>, keep: Tensor<2>) -> Result<Tensor<2>, RnnPoolError> {
        let pooled = self.pooled(x)?;
        let (mask, features) = (keep.dims(), pooled.dims());
        if mask != features {
            return Err(RnnPoolError::DropoutMask { mask, features });
        }
        Ok(self.classifier.forward(pooled * keep))
    }

    /// The dropout probability and the number of features it acts on, when there is dropout.
    pub fn dropout(&self) -> Option<(f64, usize)> {
        self.dropout.as_ref().map(|d| (d.prob, self.classifier.weight.dims()[0]))
    }

    /// The pooled features `[batch, features]` the classifier takes.
    fn pooled(&self, x: Tensor<4>) -> Result<Tensor<2>, RnnPoolError> {
        let mut h = self.stem.forward(x);
        if let Some(pool) = &self.rnn_pool {
            h = pool.try_forward(h)?;
        }
        for block in &self.blocks {
            h = block.forward(h);
        }
        let h = self.last.forward(h);
        let [b, c, _, _] = h.dims();
        Ok(match &self.last_pool {
            // The whole last map is one patch: last_channel / 4 * 4 = last_channel features.
            Some(pool) => pool.try_forward(h)?,
            None => h.mean_dim(3).mean_dim(2).reshape([b, c]),
        })
    }

    /// Shapes, parameters, MACs and memory for an input `[channels, height, width]`.
    pub fn report(&self, input: [usize; 3]) -> Result<Report, RnnPoolError> {
        let mut t = Tracer::new(input, self.rnn_pool.is_some());
        t.conv_bn_relu6("stem", &self.stem);
        if let Some(pool) = &self.rnn_pool {
            t.rnnpool_layer("rnn_pool", pool)?;
        }
        for (i, block) in self.blocks.iter().enumerate() {
            t.inverted_residual(&format!("block.{i}"), block);
        }
        match &self.last_pool {
            Some(pool) => {
                t.conv_bn_relu6("last", &self.last);
                t.rnnpool_whole("last_rnnpool", pool);
            }
            None => t.conv_then_average("last+avgpool", &self.last),
        }
        let [fin, fout] = self.classifier.weight.dims();
        t.linear("classifier", fin, fout, self.classifier.num_params());
        t.report.batch_norm_params = batch_norm_params(self);
        Ok(t.report)
    }

    /// Loads a state_dict by the original names: torchvision's (`features.0` stem,
    /// `features.1..` blocks, last conv, `classifier.1`) or, with an RNNPool, EdgeML's VWW
    /// model (`features_init`, `rnn_model`, `features.0..` blocks, last conv, `classifier.1`).
    pub fn load_state(mut self, state: &StateDict) -> Result<Self, RnnPoolError> {
        let first_block = match self.rnn_pool.take() {
            Some(pool) => {
                self.stem.load(state, "features_init.")?;
                self.rnn_pool = Some(pool.load_edgeml(state, "rnn_model.")?);
                0
            }
            None => {
                self.stem.load(state, "features.0.")?;
                1
            }
        };
        for (i, block) in self.blocks.iter_mut().enumerate() {
            block.load(state, &format!("features.{}.", first_block + i))?;
        }
        let last = first_block + self.blocks.len();
        self.last.load(state, &format!("features.{last}."))?;
        if let Some(pool) = self.last_pool.take() {
            self.last_pool = Some(pool.load_edgeml(state, "rnn_model_end.")?);
        }
        let linear = if self.dropout.is_some() { "classifier.1" } else { "classifier.0" };
        load::linear(&mut self.classifier, state, &format!("{linear}."))?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vww_layout_is_edgemls() {
        let device = Device::flex();
        let m = MobileNetV2Config::vww().init(&device).unwrap();
        assert_eq!(m.blocks.len(), 11);
        assert_eq!(m.stem.conv.weight.dims(), [8, 3, 3, 3]);
        assert_eq!(m.blocks[0].project.weight.dims(), [24, 192, 1, 1]);
        assert_eq!(m.blocks[10].project.weight.dims(), [112, 336, 1, 1]);
        assert_eq!(m.last.conv.weight.dims(), [320, 112, 1, 1]);
        let y = m.forward(Tensor::zeros([1, 3, 96, 96], &device)).unwrap();
        assert_eq!(y.dims(), [1, 2]);
    }

    #[test]
    fn plain_mobilenetv2_has_torchvisions_17_blocks() {
        let device = Device::flex();
        let m = MobileNetV2Config::new().init(&device).unwrap();
        assert_eq!(m.blocks.len(), 17);
        assert!(m.rnn_pool.is_none());
        assert!(m.blocks[0].expand.is_none());
        let two = MobileNetV2Config::vww_two_rnnpools().init(&device).unwrap();
        assert_eq!(two.last_pool.as_ref().unwrap().hidden2(), 80);
        assert_eq!(two.forward(Tensor::zeros([2, 3, 224, 224], &device)).unwrap().dims(), [2, 2]);
        let r = MobileNetV2Config::imagenet_rnnpool(10).init(&device).unwrap();
        assert_eq!(r.blocks.len(), 11);
        assert_eq!(r.blocks[0].expand.as_ref().unwrap().conv.weight.dims(), [384, 64, 1, 1]);
    }

    #[test]
    fn a_given_dropout_mask_is_what_the_classifier_sees() {
        let device = Device::flex();
        let mut cfg = MobileNetV2Config::new().with_num_classes(3).with_in_channels(1).with_width_mult(0.35);
        cfg.last_channel = Some(16);
        let m = cfg.init(&device).unwrap();
        assert_eq!(m.dropout(), Some((0.2, 16)));
        let x = Tensor::<4>::random([2, 1, 32, 32], burn::tensor::Distribution::Default, &device);
        let plain = m.valid().forward(x.clone()).unwrap();
        // All kept at 1 is no dropout; all dropped leaves the classifier's bias.
        let ones = m.forward_with_dropout_mask(x.clone(), Tensor::ones([2, 16], &device)).unwrap();
        assert!(ones.sub(plain).abs().max().into_scalar::<f32>() < 1e-6);
        let zeros = m.forward_with_dropout_mask(x.clone(), Tensor::zeros([2, 16], &device)).unwrap();
        let bias = m.classifier.bias.as_ref().unwrap().val().unsqueeze::<2>().repeat_dim(0, 2);
        assert!(zeros.sub(bias).abs().max().into_scalar::<f32>() < 1e-6);
        let e = m.forward_with_dropout_mask(x, Tensor::ones([2, 15], &device)).unwrap_err().to_string();
        assert!(e.contains("[2, 15]") && e.contains("[2, 16]"), "{e}");
    }
}
