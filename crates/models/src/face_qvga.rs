//! The QVGA-family RNNPool face detectors of EdgeML: RNNPool-Face-M4 (`RPool_Face_M4.py`, paper
//! Table 15) and RNNPool-Face-QVGA-monochrome (`RPool_Face_QVGA_monochrome.py`). One grey
//! input channel, a 3x3 stride-2 conv, an RNNPool layer (patch 8, stride 4, h1 = h2 = 16), a
//! stack of inverted residuals, and four S3FD sources with 3x3 loc/conf heads (the first conf
//! head max-out over three background logits), L2Norm on the first three sources.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use rnnpool_core::{RnnPoolError, RnnPoolLayer, RnnPoolLayerConfig, StateDict};
use serde::{Deserialize, Serialize};

use crate::blocks::{ConvBnRelu6, InvertedResidual};
use crate::s3fd::priors::{QVGA_ANCHORS, QVGA_STEPS};
use crate::s3fd::{L2Norm, priors};

/// Which of the two detectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QvgaFaceArch {
    /// RNNPool-Face-M4: four inverted residuals, the microcontroller model.
    M4,
    /// RNNPool-Face-QVGA-monochrome ("face-2" in EdgeML's C code): fourteen.
    QvgaMonochrome,
}

/// `(in, out, stride, expand_ratio)` of each inverted residual, and after which block each of
/// the four sources is taken.
struct Layout {
    blocks: Vec<(usize, usize, usize, usize)>,
    sources: [usize; 4],
}

impl QvgaFaceArch {
    fn layout(self) -> Layout {
        let rep = |n, b| std::iter::repeat_n(b, n);
        match self {
            Self::M4 => Layout {
                blocks: vec![(64, 32, 1, 2), (32, 32, 1, 2), (32, 64, 2, 2), (64, 64, 1, 2)],
                sources: [0, 1, 2, 3],
            },
            Self::QvgaMonochrome => Layout {
                blocks: std::iter::once((64, 32, 1, 2))
                    .chain(rep(7, (32, 32, 1, 2)))
                    .chain([(32, 96, 2, 2)])
                    .chain(rep(2, (96, 96, 1, 2)))
                    .chain([(96, 128, 1, 2)])
                    .chain(rep(2, (128, 128, 1, 2)))
                    .collect(),
                sources: [3, 7, 10, 13],
            },
        }
    }

    /// EdgeML's class name, as in the fixtures' `arch`.
    pub fn edgeml_name(self) -> &'static str {
        match self {
            Self::M4 => "RPool_Face_M4",
            Self::QvgaMonochrome => "RPool_Face_QVGA_monochrome",
        }
    }

    pub fn from_edgeml_name(name: &str) -> Option<Self> {
        [Self::M4, Self::QvgaMonochrome].into_iter().find(|a| a.edgeml_name() == name)
    }

    pub fn init(self, device: &Device) -> Result<QvgaFaceDetector, RnnPoolError> {
        let layout = self.layout();
        let blocks: Vec<InvertedResidual> = layout
            .blocks
            .iter()
            .map(|&(cin, cout, s, t)| InvertedResidual::new(cin, cout, s, t, device))
            .collect();
        let channels = layout.sources.map(|i| layout.blocks[i].1);
        let head = |cin, cout| {
            Conv2dConfig::new([cin, cout], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Ok(QvgaFaceDetector {
            conv: ConvBnRelu6::new(1, 4, 3, 2, 1, device),
            rnn_pool: RnnPoolLayerConfig::square(4, 8, 4, 16, 16).init(device)?,
            blocks,
            norms: [10.0, 8.0, 5.0].iter().zip(channels).map(|(&s, c)| L2Norm::new(c, s, device)).collect(),
            loc: channels.iter().map(|&c| head(c, 4)).collect(),
            conf: channels.iter().enumerate().map(|(k, &c)| head(c, if k == 0 { 4 } else { 2 })).collect(),
            sources: layout.sources.to_vec(),
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

#[derive(Module, Debug)]
pub struct QvgaFaceDetector {
    pub conv: ConvBnRelu6,
    pub rnn_pool: RnnPoolLayer,
    pub blocks: Vec<InvertedResidual>,
    pub norms: Vec<L2Norm>,
    pub loc: Vec<Conv2d>,
    pub conf: Vec<Conv2d>,
    #[module(skip)]
    pub sources: Vec<usize>,
}

impl QvgaFaceDetector {
    /// `x` `[batch, 1, height, width]`, normalised as EdgeML does (mean-subtracted grey).
    pub fn forward(&self, x: Tensor<4>) -> Result<FaceOutput, RnnPoolError> {
        let [b, _, img_h, img_w] = x.dims();
        let device = x.device();
        let mut h = self.rnn_pool.try_forward(self.conv.forward(x))?;
        let (mut locs, mut confs, mut maps) = (Vec::new(), Vec::new(), Vec::new());
        for (i, block) in self.blocks.iter().enumerate() {
            h = block.forward(h);
            let Some(k) = self.sources.iter().position(|&s| s == i) else { continue };
            let src = match self.norms.get(k) {
                Some(norm) => norm.forward(h.clone()),
                None => h.clone(),
            };
            let [_, _, fh, fw] = src.dims();
            maps.push([fh, fw]);
            let mut conf = self.conf[k].forward(src.clone());
            if k == 0 {
                // S3FD's max-out: the largest of three background logits, then the face logit.
                let background = conf.clone().narrow(1, 0, 3).max_dim(1);
                conf = Tensor::cat(vec![background, conf.narrow(1, 3, 1)], 1);
            }
            locs.push(self.loc[k].forward(src).permute([0, 2, 3, 1]).reshape([b, fh * fw * 4]));
            confs.push(conf.permute([0, 2, 3, 1]).reshape([b, fh * fw * 2]));
        }
        let n: usize = maps.iter().map(|[h, w]| h * w).sum();
        Ok(FaceOutput {
            loc: Tensor::cat(locs, 1).reshape([b, n, 4]),
            conf: Tensor::cat(confs, 1).reshape([b, n, 2]),
            priors: priors([img_h, img_w], &maps, &QVGA_STEPS, &QVGA_ANCHORS, &device),
        })
    }

    /// Loads an EdgeML state_dict (`conv.*`, `rnn_model.*`, `mob.N.*`, `L2Norm{3,4,5}_3.*`,
    /// `loc.N.*`, `conf.N.*`).
    pub fn load_edgeml(mut self, state: &StateDict) -> Result<Self, RnnPoolError> {
        self.conv.load(state, "conv.")?;
        self.rnn_pool = self.rnn_pool.load_edgeml(state, "rnn_model.")?;
        for (i, block) in self.blocks.iter_mut().enumerate() {
            block.load(state, &format!("mob.{i}."))?;
        }
        for (norm, name) in self.norms.iter_mut().zip(["L2Norm3_3", "L2Norm4_3", "L2Norm5_3"]) {
            norm.load(state, &format!("{name}.weight"))?;
        }
        for (k, (loc, conf)) in self.loc.iter_mut().zip(self.conf.iter_mut()).enumerate() {
            crate::load::conv2d(loc, state, &format!("loc.{k}."))?;
            crate::load::conv2d(conf, state, &format!("conf.{k}."))?;
        }
        Ok(self)
    }
}
