//! The models a config can name, built from the models crate, as one burn module.

use burn::prelude::*;
use models::{
    DenseNet, DenseNetConfig, FaceArch, FaceDetector, MobileNetV2, MobileNetV2Config, SmallMobileNet, SmallMobileNetConfig,
    StemPooling,
};
use rnnpool_core::RnnPoolError;
use rnnpool_core::state_dict::StateDict;

use crate::error::TrainError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    Face(FaceArch),
    MobileNetV2,
    MobileNetV2RnnPool,
    Vww,
    DenseNet121RnnPool,
    /// The small MobileNetV2-style classifier (Fashion-MNIST demo) with RNNPool or average
    /// pooling after its stem.
    SmallRnnPool,
    SmallAvgPool,
}

impl ModelKind {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "face_c" => Self::Face(FaceArch::C),
            "face_quant" => Self::Face(FaceArch::Quant),
            "face_qvga" => Self::Face(FaceArch::QvgaMonochrome),
            "face_m4" => Self::Face(FaceArch::M4),
            "mobilenetv2" => Self::MobileNetV2,
            "mobilenetv2_rnnpool" => Self::MobileNetV2RnnPool,
            "vww" => Self::Vww,
            "densenet121_rnnpool" => Self::DenseNet121RnnPool,
            "small_rnnpool" => Self::SmallRnnPool,
            "small_avgpool" => Self::SmallAvgPool,
            _ => return None,
        })
    }

    pub fn is_face(self) -> bool {
        matches!(self, Self::Face(_))
    }

    /// Grey 320x320 (QVGA models) rather than RGB 640x640.
    pub fn is_qvga(self) -> bool {
        matches!(self, Self::Face(FaceArch::M4 | FaceArch::QvgaMonochrome))
    }

    pub fn init(self, num_classes: usize, in_channels: usize, device: &Device) -> Result<Net, RnnPoolError> {
        Ok(match self {
            Self::Face(arch) => Net::Face(arch.init(device)?),
            Self::MobileNetV2 => {
                Net::MobileNetV2(MobileNetV2Config::new().with_num_classes(num_classes).with_in_channels(in_channels).init(device)?)
            }
            Self::MobileNetV2RnnPool => {
                Net::MobileNetV2(MobileNetV2Config::imagenet_rnnpool(num_classes).with_in_channels(in_channels).init(device)?)
            }
            Self::Vww => Net::MobileNetV2(MobileNetV2Config::vww().with_num_classes(num_classes).init(device)?),
            Self::DenseNet121RnnPool => Net::DenseNet(DenseNetConfig::rnnpool_121(num_classes).init(device)?),
            Self::SmallRnnPool | Self::SmallAvgPool => {
                let pooling = if self == Self::SmallRnnPool { StemPooling::RnnPool { hidden: 8 } } else { StemPooling::Average };
                let cfg = SmallMobileNetConfig::new().with_num_classes(num_classes).with_in_channels(in_channels);
                Net::Small(cfg.with_pooling(pooling).init(device)?)
            }
        })
    }
}

#[derive(Module, Debug)]
pub enum Net {
    Face(FaceDetector),
    MobileNetV2(MobileNetV2),
    DenseNet(DenseNet),
    Small(SmallMobileNet),
}

impl Net {
    /// Loads EdgeML / torchvision weights (the state_dict names of the original code).
    pub fn load_state(self, state: &StateDict) -> Result<Self, TrainError> {
        Ok(match self {
            Net::Face(m) => Net::Face(m.load_edgeml(state)?),
            Net::MobileNetV2(m) => Net::MobileNetV2(m.load_state(state)?),
            Net::DenseNet(m) => Net::DenseNet(m.load_state(state)?),
            Net::Small(_) => {
                return Err(TrainError::Unsupported {
                    what: "model.init for the small classifier".into(),
                    why: "it has no original (EdgeML/torchvision) weights; start from a .ckpt".into(),
                });
            }
        })
    }

    /// The dropout probability and the features it acts on, for a classifier with dropout.
    pub fn dropout(&self) -> Option<(f64, usize)> {
        match self {
            Net::MobileNetV2(m) => m.dropout(),
            _ => None,
        }
    }

    /// Training logits of a classifier with dropout, its mask given (`[batch, features]`,
    /// see `MobileNetV2::forward_with_dropout_mask`).
    pub fn classify_with_dropout_mask(&self, x: Tensor<4>, keep: Tensor<2>) -> Result<Tensor<2>, TrainError> {
        match self {
            Net::MobileNetV2(m) => Ok(m.forward_with_dropout_mask(x, keep)?),
            _ => self.classify(x),
        }
    }

    /// Logits `[batch, classes]` of a classifier.
    pub fn classify(&self, x: Tensor<4>) -> Result<Tensor<2>, TrainError> {
        Ok(match self {
            Net::MobileNetV2(m) => m.forward(x)?,
            Net::DenseNet(m) => m.forward(x)?,
            Net::Small(m) => m.forward(x)?,
            Net::Face(_) => {
                return Err(TrainError::Unsupported { what: "classification data for a face detector".into(), why: "use a classifier".into() });
            }
        })
    }
}
