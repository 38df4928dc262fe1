//! DenseNet121 (torchvision layout) and DenseNet121-RNNPool (paper Fig. 2). No original code
//! exists for the RNNPool variant; choices made here, from the figure and Table 1:
//! - C1 is conv0 + norm0 + ReLU (the 7x7 stride-2 conv with its BatchNorm), 112x112x64 at 224;
//! - the RNNPool layer (patch 8, stride 4, h1 = h2 = 48) replaces pool0, denseblock1,
//!   transition1 and denseblock2 and gives 28x28x192 (Fig. 2; the text's "128" contradicts
//!   4 * 48);
//! - transition2 then maps 192 -> 256 channels (Fig. 2's 14x14x256), not the usual halving;
//! - the RNNPool's weights are named `rnn_model.*` as in EdgeML's other models.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use nn_ops::Activation;
use rnnpool_core::{RnnPoolError, RnnPoolLayer, RnnPoolLayerConfig, StateDict};

use crate::load;
use crate::summary::{Report, Tracer, batch_norm_params};

/// The RNNPool layer that replaces pool0 ... denseblock2.
#[derive(Config, Debug)]
pub struct DenseRnnPoolConfig {
    /// Patch side.
    #[config(default = 8)]
    pub patch: usize,
    /// Stride.
    #[config(default = 4)]
    pub stride: usize,
    /// Hidden size of both cells.
    #[config(default = 48)]
    pub hidden: usize,
    /// Output channels of transition2 (Fig. 2: 256).
    #[config(default = 256)]
    pub transition_out: usize,
}

/// DenseNet121's configuration (torchvision's defaults).
#[derive(Config, Debug)]
pub struct DenseNetConfig {
    /// Classes.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Channels each layer adds.
    #[config(default = 32)]
    pub growth_rate: usize,
    /// Layers per dense block.
    #[config(default = "[6, 12, 24, 16]")]
    pub block_config: [usize; 4],
    /// Channels after the stem.
    #[config(default = 64)]
    pub init_features: usize,
    /// Bottleneck width, in multiples of the growth rate.
    #[config(default = 4)]
    pub bn_size: usize,
    /// `Some`: DenseNet121-RNNPool.
    pub rnnpool: Option<DenseRnnPoolConfig>,
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    let p = (k - 1) / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(false)
        .init(device)
}

/// BN-ReLU-conv1x1 (bottleneck) then BN-ReLU-conv3x3 (growth), concatenated to the input.
#[derive(Module, Debug)]
pub struct DenseLayer {
    /// BatchNorm before the 1x1 convolution.
    pub norm1: BatchNorm,
    /// The 1x1 bottleneck convolution.
    pub conv1: Conv2d,
    /// BatchNorm before the 3x3 convolution.
    pub norm2: BatchNorm,
    /// The 3x3 convolution.
    pub conv2: Conv2d,
}

impl DenseLayer {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = nn_ops::conv2d(&self.conv1, nn_ops::batch_norm(&self.norm1, x.clone(), Activation::Relu));
        let h = nn_ops::conv2d(&self.conv2, nn_ops::batch_norm(&self.norm2, h, Activation::Relu));
        Tensor::cat(vec![x, h], 1)
    }

    fn load(&mut self, state: &StateDict, prefix: &str) -> Result<(), RnnPoolError> {
        load::batch_norm(&mut self.norm1, state, &format!("{prefix}norm1."))?;
        load::conv2d(&mut self.conv1, state, &format!("{prefix}conv1."))?;
        load::batch_norm(&mut self.norm2, state, &format!("{prefix}norm2."))?;
        load::conv2d(&mut self.conv2, state, &format!("{prefix}conv2."))
    }
}

/// BN-ReLU-conv1x1 then 2x2 average pooling.
#[derive(Module, Debug)]
pub struct Transition {
    /// BatchNorm.
    pub norm: BatchNorm,
    /// The 1x1 convolution.
    pub conv: Conv2d,
    /// The 2x2 average pooling.
    pub pool: AvgPool2d,
}

impl Transition {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pool.forward(nn_ops::conv2d(&self.conv, nn_ops::batch_norm(&self.norm, x, Activation::Relu)))
    }
}

/// DenseNet121, with an RNNPool in place of its stem pooling or not.
#[derive(Module, Debug)]
pub struct DenseNet {
    /// The 7x7 stem convolution.
    pub conv0: Conv2d,
    /// Its BatchNorm.
    pub norm0: BatchNorm,
    /// The stem's 3x3 max pooling (plain DenseNet).
    pub pool0: Option<MaxPool2d>,
    /// The RNNPool in its place (DenseNet-RNNPool).
    pub rnn_pool: Option<RnnPoolLayer>,
    /// The dense blocks' layers: denseblock1..=4 for DenseNet121; with RNNPool an empty slot
    /// for denseblock2 (so that transition2 follows it), then denseblock3 and 4.
    pub blocks: Vec<Vec<DenseLayer>>,
    /// The transition after each block but the last.
    pub transitions: Vec<Option<Transition>>,
    /// The final BatchNorm.
    pub norm5: BatchNorm,
    /// The classifier.
    pub classifier: Linear,
}

impl DenseNetConfig {
    /// DenseNet121-RNNPool.
    pub fn rnnpool_121(num_classes: usize) -> Self {
        Self::new().with_num_classes(num_classes).with_rnnpool(Some(DenseRnnPoolConfig::new()))
    }

    /// The network, or an error naming a bad size.
    pub fn init(&self, device: &Device) -> Result<DenseNet, RnnPoolError> {
        let g = self.growth_rate;
        let bn = |c| BatchNormConfig::new(c).init(device);
        let transition = |cin: usize, cout: usize| Transition {
            norm: bn(cin),
            conv: conv(cin, cout, 1, 1, device),
            pool: AvgPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        };
        let (pool0, rnn_pool, first_block, mut c) = match &self.rnnpool {
            None => {
                let pool = MaxPool2dConfig::new([3, 3])
                    .with_strides([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init();
                (Some(pool), None, 0, self.init_features)
            }
            Some(r) => {
                let layer = RnnPoolLayerConfig::square(self.init_features, r.patch, r.stride, r.hidden, r.hidden)
                    .init(device)?;
                (None, Some(layer), 2, 4 * r.hidden)
            }
        };
        let mut blocks = Vec::new();
        let mut transitions = Vec::new();
        if let Some(r) = &self.rnnpool {
            // Transition2 follows the RNNPool directly.
            transitions.push(Some(transition(c, r.transition_out)));
            blocks.push(Vec::new());
            c = r.transition_out;
        }
        for (b, &layers) in self.block_config.iter().enumerate().skip(first_block) {
            let block: Vec<DenseLayer> = (0..layers)
                .map(|i| {
                    let cin = c + i * g;
                    DenseLayer {
                        norm1: bn(cin),
                        conv1: conv(cin, self.bn_size * g, 1, 1, device),
                        norm2: bn(self.bn_size * g),
                        conv2: conv(self.bn_size * g, g, 3, 1, device),
                    }
                })
                .collect();
            blocks.push(block);
            c += layers * g;
            if b + 1 < self.block_config.len() {
                transitions.push(Some(transition(c, c / 2)));
                c /= 2;
            } else {
                transitions.push(None);
            }
        }
        Ok(DenseNet {
            conv0: conv(self.in_channels, self.init_features, 7, 2, device),
            norm0: bn(self.init_features),
            pool0,
            rnn_pool,
            blocks,
            transitions,
            norm5: bn(c),
            classifier: LinearConfig::new(c, self.num_classes).init(device),
        })
    }
}

impl DenseNet {
    /// `x` `[batch, in_channels, height, width]` -> logits `[batch, num_classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>, RnnPoolError> {
        let mut h = nn_ops::batch_norm(&self.norm0, nn_ops::conv2d(&self.conv0, x), Activation::Relu);
        if let Some(pool) = &self.pool0 {
            h = pool.forward(h);
        }
        if let Some(pool) = &self.rnn_pool {
            h = pool.try_forward(h)?;
        }
        for (block, transition) in self.blocks.iter().zip(&self.transitions) {
            for layer in block {
                h = layer.forward(h);
            }
            if let Some(t) = transition {
                h = t.forward(h);
            }
        }
        let h = nn_ops::batch_norm(&self.norm5, h, Activation::Relu);
        let [b, c, _, _] = h.dims();
        Ok(self.classifier.forward(h.mean_dim(3).mean_dim(2).reshape([b, c])))
    }

    /// Shapes, parameters, MACs and memory for an input `[channels, height, width]`.
    pub fn report(&self, input: [usize; 3]) -> Result<Report, RnnPoolError> {
        let mut t = Tracer::new(input, self.rnn_pool.is_some());
        t.conv("conv0", &self.conv0);
        let shape = t.shape;
        // BatchNorm + ReLU run in place on conv0's output.
        t.in_place("norm0+relu", shape, self.norm0.num_params(), 0);
        if self.pool0.is_some() {
            let [c, h, w] = t.shape;
            t.elementwise("pool0", [c, (h - 1) / 2 + 1, (w - 1) / 2 + 1], 0);
        }
        if let Some(pool) = &self.rnn_pool {
            t.rnnpool_layer("rnn_pool", pool)?;
        }
        for (b, (block, transition)) in self.blocks.iter().zip(&self.transitions).enumerate() {
            for (i, layer) in block.iter().enumerate() {
                let [c, h, w] = t.shape;
                let [bottleneck, _, _, _] = layer.conv1.weight.dims();
                let [growth, _, _, _] = layer.conv2.weight.dims();
                let macs = (h * w * (c * bottleneck + bottleneck * growth * 9)) as u64;
                t.in_place(&format!("block.{b}.layer.{i}"), [c + growth, h, w], layer.num_params(), macs);
            }
            if let Some(tr) = transition {
                let [c, h, w] = t.shape;
                let [cout, _, _, _] = tr.conv.weight.dims();
                t.custom(&format!("transition.{b}"), [cout, h / 2, w / 2], tr.num_params(), (h * w * c * cout) as u64);
            }
        }
        let shape = t.shape;
        t.in_place("norm5+relu", shape, self.norm5.num_params(), 0);
        t.elementwise("avgpool", [shape[0], 1, 1], 0);
        let [fin, fout] = self.classifier.weight.dims();
        t.linear("classifier", fin, fout, self.classifier.num_params());
        t.report.batch_norm_params = batch_norm_params(self);
        Ok(t.report)
    }

    /// Loads torchvision's names (`features.conv0`, `features.denseblockN.denselayerM.*`,
    /// `features.transitionN.*`, `features.norm5`, `classifier`); the RNNPool as `rnn_model.*`.
    pub fn load_state(mut self, state: &StateDict) -> Result<Self, RnnPoolError> {
        load::conv2d(&mut self.conv0, state, "features.conv0.")?;
        load::batch_norm(&mut self.norm0, state, "features.norm0.")?;
        if let Some(pool) = self.rnn_pool.take() {
            self.rnn_pool = Some(pool.load_edgeml(state, "rnn_model.")?);
        }
        // With RNNPool the first stored entry is block 2's (empty) slot, whose transition is
        // transition2; otherwise block n is denseblock{n + 1}.
        let offset = if self.rnn_pool.is_some() { 2 } else { 1 };
        for (i, (block, transition)) in self.blocks.iter_mut().zip(&mut self.transitions).enumerate() {
            let n = i + offset;
            for (m, layer) in block.iter_mut().enumerate() {
                layer.load(state, &format!("features.denseblock{n}.denselayer{}.", m + 1))?;
            }
            if let Some(t) = transition {
                load::batch_norm(&mut t.norm, state, &format!("features.transition{n}.norm."))?;
                load::conv2d(&mut t.conv, state, &format!("features.transition{n}.conv."))?;
            }
        }
        load::batch_norm(&mut self.norm5, state, "features.norm5.")?;
        load::linear(&mut self.classifier, state, "classifier.")?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_the_paper() {
        // Table 1, ImageNet-10: DenseNet121 6.96M, DenseNet121-RNNPool 5.60M (within 2 %).
        let device = Device::flex();
        let base = DenseNetConfig::new().with_num_classes(10).init(&device).unwrap().num_params() as f64;
        let rnn = DenseNetConfig::rnnpool_121(10).init(&device).unwrap().num_params() as f64;
        assert!((base / 6.96e6 - 1.0).abs() < 0.02, "DenseNet121: {base}");
        assert!((rnn / 5.60e6 - 1.0).abs() < 0.02, "DenseNet121-RNNPool: {rnn}");
    }

    #[test]
    fn rnnpool_variant_shapes_follow_figure_2() {
        let device = Device::flex();
        let m = DenseNetConfig::rnnpool_121(10).init(&device).unwrap();
        assert_eq!(m.blocks.iter().map(Vec::len).collect::<Vec<_>>(), [0, 24, 16]);
        assert_eq!(m.transitions[0].as_ref().unwrap().conv.weight.dims(), [256, 192, 1, 1]);
        assert_eq!(m.classifier.weight.dims(), [1024, 10]);
        let y = m.forward(Tensor::zeros([1, 3, 96, 96], &device)).unwrap();
        assert_eq!(y.dims(), [1, 10]);
    }
}
