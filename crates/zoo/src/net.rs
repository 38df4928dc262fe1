//! Every network a config can name, as one burn module.

use burn::prelude::*;
use models::{DenseNet, FaceDetector, MobileNetV2, Report, SmallMobileNet};
use rnnpool_core::state_dict::StateDict;

use crate::error::ZooError;

/// A face detector or one of the classifiers.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // one per run: boxing would only add an indirection
pub enum Net {
    /// An RNNPool face detector (S3FD heads).
    Face(FaceDetector),
    /// MobileNetV2, with or without RNNPool (ImageNet, VWW).
    MobileNetV2(MobileNetV2),
    /// DenseNet121-RNNPool.
    DenseNet(DenseNet),
    /// The small 28x28 classifier.
    Small(SmallMobileNet),
}

impl Net {
    /// Loads EdgeML / torchvision weights (the state_dict names of the original code).
    pub fn load_state(self, state: &StateDict) -> Result<Self, ZooError> {
        Ok(match self {
            Net::Face(m) => Net::Face(m.load_edgeml(state)?),
            Net::MobileNetV2(m) => Net::MobileNetV2(m.load_state(state)?),
            Net::DenseNet(m) => Net::DenseNet(m.load_state(state)?),
            Net::Small(_) => {
                return Err(ZooError::Unsupported {
                    what: "model.init for the small classifier".into(),
                    why: "it has no original (EdgeML/torchvision) weights; start from a .ckpt".into(),
                });
            }
        })
    }

    /// The face detector, or an error saying that a classifier was given.
    pub fn face(&self) -> Result<&FaceDetector, ZooError> {
        match self {
            Net::Face(m) => Ok(m),
            _ => {
                Err(ZooError::Unsupported { what: "a classifier on face data".into(), why: "use a face model".into() })
            }
        }
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
    pub fn classify_with_dropout_mask(&self, x: Tensor<4>, keep: Tensor<2>) -> Result<Tensor<2>, ZooError> {
        match self {
            Net::MobileNetV2(m) => Ok(m.forward_with_dropout_mask(x, keep)?),
            _ => self.classify(x),
        }
    }

    /// The layer table (shapes, parameters, MACs, activation memory) at `input` `[channels,
    /// height, width]`; `None` for the small Fashion-MNIST classifier, which has none.
    pub fn report(&self, input: [usize; 3]) -> Result<Option<Report>, ZooError> {
        Ok(match self {
            Net::Face(m) => Some(m.report(input)?),
            Net::MobileNetV2(m) => Some(m.report(input)?),
            Net::DenseNet(m) => Some(m.report(input)?),
            Net::Small(_) => None,
        })
    }

    /// Logits `[batch, classes]` of a classifier.
    ///
    /// # Shapes
    /// - input `[batch, channels, height, width]`
    /// - output `[batch, classes]`
    pub fn classify(&self, x: Tensor<4>) -> Result<Tensor<2>, ZooError> {
        Ok(match self {
            Net::MobileNetV2(m) => m.forward(x)?,
            Net::DenseNet(m) => m.forward(x)?,
            Net::Small(m) => m.forward(x)?,
            Net::Face(_) => {
                return Err(ZooError::Unsupported {
                    what: "classification data for a face detector".into(),
                    why: "use a classifier".into(),
                });
            }
        })
    }
}
