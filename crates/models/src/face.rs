//! EdgeML's RNNPool face detectors (S3FD heads on an RNNPool + MobileNetV2 backbone), layer for
//! layer as in `Face_Detection/models/`:
//! - RNNPool-Face-C (`RPool_Face_C.py`, paper Table 11): RNNPool directly on the RGB image.
//! - RNNPool-Face-Quant (`RPool_Face_Quant.py`, Table 14): two 3x3 convs, then RNNPool
//!   (h1 = h2 = 8, as the code and Table 14 say; the paper text's 4 is wrong); its first
//!   source gets a stride-2 ConvBNReLU6 in each head before the head conv.
//! - RNNPool-Face-QVGA-monochrome (`RPool_Face_QVGA_monochrome.py`) and RNNPool-Face-M4
//!   (`RPool_Face_M4.py`, Table 15): grey input, one 3x3 stride-2 conv, RNNPool h1 = h2 = 16.
//!
//! Common: inverted residuals, sources taken after given blocks, L2Norm (scales 10, 8, 5) on
//! the first three, loc/conf heads with bias, S3FD's max-out of three background logits on the
//! first conf head, priors regenerated from the actual map sizes. Where the paper and the code
//! differ (Face-C's heads: 5x5, 5x5, 5x5, 1x1, 1x1, 3x3 in the code vs "two 3x3 convs" in the
//! text), this follows the code.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use rnnpool_core::{RnnPoolError, RnnPoolLayer, RnnPoolLayerConfig, StateDict};
use serde::{Deserialize, Serialize};

use crate::blocks::{ConvBnRelu6, InvertedResidual};
use crate::load;
use crate::s3fd::priors::{QVGA_ANCHORS, QVGA_STEPS, VGA_ANCHORS, VGA_STEPS};
use crate::s3fd::{L2Norm, priors};
use crate::summary::{Report, Tracer, batch_norm_params};

/// Which detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaceArch {
    /// RNNPool-Face-C.
    C,
    /// RNNPool-Face-Quant.
    Quant,
    /// RNNPool-Face-QVGA-monochrome ("face-2" in EdgeML's C code).
    QvgaMonochrome,
    /// RNNPool-Face-M4, the microcontroller model ("face-4").
    M4,
}

/// Where a detection source is taken: `None` for the output of the convs before the RNNPool,
/// `Some(i)` for the output of inverted residual `i`.
pub type Source = Option<usize>;

/// Everything that differs between the four detectors.
struct Layout {
    in_channels: usize,
    /// `(in, out, stride)` of each 3x3 ConvBNReLU6 before the RNNPool, and their key prefixes.
    stem: Vec<(usize, usize, usize)>,
    stem_keys: Vec<&'static str>,
    /// `(in_channels, hidden)` of the RNNPool (patch 8, stride 4 in every model).
    rnnpool: (usize, usize),
    /// `(in, out, stride, expand_ratio)` of each inverted residual.
    blocks: Vec<(usize, usize, usize, usize)>,
    sources: Vec<Source>,
    head_kernels: Vec<usize>,
    vga: bool,
}

fn repeat(n: usize, block: (usize, usize, usize, usize)) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    std::iter::repeat_n(block, n)
}

impl FaceArch {
    /// The four detectors.
    pub const ALL: [Self; 4] = [Self::C, Self::Quant, Self::QvgaMonochrome, Self::M4];

    fn layout(self) -> Layout {
        match self {
            Self::C => Layout {
                in_channels: 3,
                stem: vec![],
                stem_keys: vec![],
                rnnpool: (3, 16),
                blocks: [(64, 24, 1, 1), (24, 24, 1, 6), (24, 32, 2, 6)]
                    .into_iter()
                    .chain(repeat(2, (32, 32, 1, 6)))
                    .chain([(32, 64, 2, 6)])
                    .chain(repeat(3, (64, 64, 1, 6)))
                    .chain([(64, 96, 2, 6)])
                    .chain(repeat(2, (96, 96, 1, 6)))
                    .chain([(96, 160, 2, 6), (160, 160, 1, 6), (160, 320, 2, 6)])
                    .collect(),
                sources: vec![Some(1), Some(4), Some(8), Some(11), Some(13), Some(14)],
                head_kernels: vec![5, 5, 5, 1, 1, 3],
                vga: true,
            },
            Self::Quant => Layout {
                in_channels: 3,
                stem: vec![(3, 4, 2), (4, 4, 1)],
                stem_keys: vec!["conv_top.0.", "conv_top.1."],
                rnnpool: (4, 8),
                blocks: std::iter::once((32, 16, 1, 2))
                    .chain(repeat(3, (16, 16, 1, 2)))
                    .chain([(16, 24, 2, 2)])
                    .chain(repeat(3, (24, 24, 1, 2)))
                    .chain([(24, 32, 2, 2), (32, 32, 1, 2), (32, 64, 2, 2), (64, 96, 2, 2)])
                    .collect(),
                sources: vec![None, Some(3), Some(7), Some(9), Some(10), Some(11)],
                head_kernels: vec![3; 6],
                vga: true,
            },
            Self::QvgaMonochrome => Layout {
                in_channels: 1,
                stem: vec![(1, 4, 2)],
                stem_keys: vec!["conv."],
                rnnpool: (4, 16),
                blocks: std::iter::once((64, 32, 1, 2))
                    .chain(repeat(7, (32, 32, 1, 2)))
                    .chain([(32, 96, 2, 2)])
                    .chain(repeat(2, (96, 96, 1, 2)))
                    .chain([(96, 128, 1, 2)])
                    .chain(repeat(2, (128, 128, 1, 2)))
                    .collect(),
                sources: vec![Some(3), Some(7), Some(10), Some(13)],
                head_kernels: vec![3; 4],
                vga: false,
            },
            Self::M4 => Layout {
                in_channels: 1,
                stem: vec![(1, 4, 2)],
                stem_keys: vec!["conv."],
                rnnpool: (4, 16),
                blocks: vec![(64, 32, 1, 2), (32, 32, 1, 2), (32, 64, 2, 2), (64, 64, 1, 2)],
                sources: vec![Some(0), Some(1), Some(2), Some(3)],
                head_kernels: vec![3; 4],
                vga: false,
            },
        }
    }

    /// Where each detection head takes its input, in head order.
    pub fn sources(self) -> Vec<Source> {
        self.layout().sources
    }

    /// EdgeML's class name, as in the fixtures' `arch`.
    pub fn edgeml_name(self) -> &'static str {
        match self {
            Self::C => "RPool_Face_C",
            Self::Quant => "RPool_Face_Quant",
            Self::QvgaMonochrome => "RPool_Face_QVGA_monochrome",
            Self::M4 => "RPool_Face_M4",
        }
    }

    /// The architecture of an EdgeML class name (`RPool_Face_M4`, ...).
    pub fn from_edgeml_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.edgeml_name() == name)
    }

    /// The detector, freshly initialised.
    pub fn init(self, device: &Device) -> Result<FaceDetector, RnnPoolError> {
        let l = self.layout();
        let stem_out = l.stem.last().map_or(l.in_channels, |s| s.1);
        let channels: Vec<usize> = l.sources.iter().map(|s| s.map_or(stem_out, |i| l.blocks[i].1)).collect();
        let head = |cin: usize, cout: usize, k: usize| {
            let p = (k - 1) / 2;
            Conv2dConfig::new([cin, cout], [k, k]).with_padding(PaddingConfig2d::Explicit(p, p, p, p)).init(device)
        };
        // Face-Quant's first source goes through a stride-2 ConvBNReLU6 (4 -> 8) in each head.
        let pre = |c: usize| (self == Self::Quant).then(|| ConvBnRelu6::new(c, 8, 3, 2, 1, device));
        let head_in = |k: usize| if k == 0 && self == Self::Quant { 8 } else { channels[k] };
        let (rk, rh) = l.rnnpool;
        Ok(FaceDetector {
            stem: l.stem.iter().map(|&(i, o, s)| ConvBnRelu6::new(i, o, 3, s, 1, device)).collect(),
            rnn_pool: RnnPoolLayerConfig::square(rk, 8, 4, rh, rh).init(device)?,
            blocks: l.blocks.iter().map(|&(i, o, s, t)| InvertedResidual::new(i, o, s, t, device)).collect(),
            norms: [10.0, 8.0, 5.0].iter().zip(&channels).map(|(&s, &c)| L2Norm::new(c, s, device)).collect(),
            loc_pre: pre(channels[0]),
            conf_pre: pre(channels[0]),
            loc: (0..channels.len()).map(|k| head(head_in(k), 4, l.head_kernels[k])).collect(),
            conf: (0..channels.len())
                .map(|k| head(head_in(k), if k == 0 { 4 } else { 2 }, l.head_kernels[k]))
                .collect(),
            arch: self,
        })
    }
}

/// Raw detector outputs, as EdgeML's `forward` returns them in test mode.
#[derive(Debug, Clone)]
pub struct FaceOutput {
    /// `[batch, priors, 4]` box offsets (SSD encoding, variances 0.1 / 0.2).
    pub loc: Tensor<3>,
    /// `[batch, priors, 2]` logits (background, face), after the max-out.
    pub conf: Tensor<3>,
    /// `[priors, 4]` as `(cx, cy, w, h)`, normalised.
    pub priors: Tensor<2>,
}

/// An RNNPool face detector: stem convolutions, RNNPool, inverted residuals, S3FD heads.
#[derive(Module, Debug)]
pub struct FaceDetector {
    /// The convolutions before the RNNPool.
    pub stem: Vec<ConvBnRelu6>,
    /// The RNNPool layer.
    pub rnn_pool: RnnPoolLayer,
    /// The inverted residuals.
    pub blocks: Vec<InvertedResidual>,
    /// L2Norm on the first three sources.
    pub norms: Vec<L2Norm>,
    /// Face-Quant's stride-2 ConvBNReLU6 before the first loc head.
    pub loc_pre: Option<ConvBnRelu6>,
    /// Face-Quant's stride-2 ConvBNReLU6 before the first conf head.
    pub conf_pre: Option<ConvBnRelu6>,
    /// Box heads, one per source.
    pub loc: Vec<Conv2d>,
    /// Class heads, one per source (the first with three background logits).
    pub conf: Vec<Conv2d>,
    /// Which detector.
    #[module(skip)]
    pub arch: FaceArch,
}

impl FaceDetector {
    /// `x` `[batch, channels, height, width]`, normalised as EdgeML does (mean subtracted).
    pub fn forward(&self, x: Tensor<4>) -> Result<FaceOutput, RnnPoolError> {
        let layout = self.arch.layout();
        let [b, _, img_h, img_w] = x.dims();
        let device = x.device();
        let stem = self.stem.iter().fold(x, |h, conv| conv.forward(h));
        let mut feats = Vec::new();
        if layout.sources.contains(&None) {
            feats.push(stem.clone());
        }
        let mut h = self.rnn_pool.try_forward(stem)?;
        for (i, block) in self.blocks.iter().enumerate() {
            h = block.forward(h);
            if layout.sources.contains(&Some(i)) {
                feats.push(h.clone());
            }
        }
        let (mut locs, mut confs, mut maps) = (Vec::new(), Vec::new(), Vec::new());
        for (k, feat) in feats.into_iter().enumerate() {
            let src = match self.norms.get(k) {
                Some(norm) => norm.forward(feat),
                None => feat,
            };
            let (loc_in, conf_in) = match (k, &self.loc_pre, &self.conf_pre) {
                (0, Some(lp), Some(cp)) => (lp.forward(src.clone()), cp.forward(src)),
                _ => (src.clone(), src),
            };
            let loc = nn_ops::conv2d(&self.loc[k], loc_in);
            let mut conf = nn_ops::conv2d(&self.conf[k], conf_in);
            if k == 0 {
                let background = conf.clone().narrow(1, 0, 3).max_dim(1);
                conf = Tensor::cat(vec![background, conf.narrow(1, 3, 1)], 1);
            }
            let [_, _, fh, fw] = loc.dims();
            maps.push([fh, fw]);
            locs.push(loc.permute([0, 2, 3, 1]).reshape([b, fh * fw * 4]));
            confs.push(conf.permute([0, 2, 3, 1]).reshape([b, fh * fw * 2]));
        }
        let n: usize = maps.iter().map(|[h, w]| h * w).sum();
        let (steps, anchors): (&[usize], &[usize]) =
            if layout.vga { (&VGA_STEPS, &VGA_ANCHORS) } else { (&QVGA_STEPS, &QVGA_ANCHORS) };
        Ok(FaceOutput {
            loc: Tensor::cat(locs, 1).reshape([b, n, 4]),
            conf: Tensor::cat(confs, 1).reshape([b, n, 2]),
            priors: priors([img_h, img_w], &maps, steps, anchors, &device),
        })
    }

    /// Shapes, parameters, MACs and memory for an input `[channels, height, width]`.
    pub fn report(&self, input: [usize; 3]) -> Result<Report, RnnPoolError> {
        let layout = self.arch.layout();
        let mut t = Tracer::new(input, true);
        for (i, conv) in self.stem.iter().enumerate() {
            t.conv_bn_relu6(&format!("stem.{i}"), conv);
        }
        let mut k = 0;
        if layout.sources.contains(&None) {
            self.trace_head(&mut t, k);
            k += 1;
        }
        t.rnnpool_layer("rnn_pool", &self.rnn_pool)?;
        for (i, block) in self.blocks.iter().enumerate() {
            t.inverted_residual(&format!("mob.{i}"), block);
            if layout.sources.contains(&Some(i)) {
                self.trace_head(&mut t, k);
                k += 1;
            }
        }
        t.report.batch_norm_params = batch_norm_params(self);
        Ok(t.report)
    }

    fn trace_head(&self, t: &mut Tracer, k: usize) {
        t.branch(|t| {
            if let Some(norm) = self.norms.get(k) {
                let shape = t.shape;
                t.elementwise(&format!("l2norm.{k}"), shape, norm.num_params());
            }
            let source = t.shape;
            let pre = |t: &mut Tracer, m: &Option<ConvBnRelu6>, name: &str| {
                if let (0, Some(m)) = (k, m) {
                    t.conv_bn_relu6(name, m);
                }
            };
            pre(t, &self.loc_pre, "loc.pre");
            t.conv(&format!("loc.{k}"), &self.loc[k]);
            t.shape = source;
            pre(t, &self.conf_pre, "conf.pre");
            t.conv(&format!("conf.{k}"), &self.conf[k]);
        });
    }

    /// Loads an EdgeML state_dict by its own names (`conv.*` or `conv_top.N.*`, `rnn_model.*`,
    /// `mob.N.*`, `L2Norm{3,4,5}_3.weight`, `loc.N.*`, `conf.N.*`; Face-Quant's head lists hold
    /// the stride-2 ConvBNReLU6 at index 0, so its head convs start at index 1).
    pub fn load_edgeml(mut self, state: &StateDict) -> Result<Self, RnnPoolError> {
        for (conv, prefix) in self.stem.iter_mut().zip(self.arch.layout().stem_keys) {
            conv.load(state, prefix)?;
        }
        self.rnn_pool = self.rnn_pool.load_edgeml(state, "rnn_model.")?;
        for (i, block) in self.blocks.iter_mut().enumerate() {
            block.load(state, &format!("mob.{i}."))?;
        }
        for (norm, name) in self.norms.iter_mut().zip(["L2Norm3_3", "L2Norm4_3", "L2Norm5_3"]) {
            norm.load(state, &format!("{name}.weight"))?;
        }
        let mut first_head = 0;
        if let (Some(lp), Some(cp)) = (&mut self.loc_pre, &mut self.conf_pre) {
            lp.load(state, "loc.0.")?;
            cp.load(state, "conf.0.")?;
            first_head = 1;
        }
        for (k, (loc, conf)) in self.loc.iter_mut().zip(self.conf.iter_mut()).enumerate() {
            load::conv2d(loc, state, &format!("loc.{}.", first_head + k))?;
            load::conv2d(conf, state, &format!("conf.{}.", first_head + k))?;
        }
        Ok(self)
    }
}
