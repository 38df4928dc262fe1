//! Vision models built on RNNPool, with EdgeML weight import: the four RNNPool face detectors
//! (S3FD machinery: priors, L2Norm, max-out) and MobileNetV2 / MobileNetV2-RNNPool (ImageNet and
//! Visual Wake Words, with one or two RNNPools), DenseNet121 and DenseNet121-RNNPool, and a
//! per-layer report of parameters, MACs and peak RAM under the paper's convention.

#![warn(missing_docs)]

pub mod blocks;
pub mod densenet;
pub mod face;
pub mod load;
pub mod mobilenetv2;
pub mod s3fd;
pub mod small_mobilenet;
pub mod summary;

pub use densenet::{DenseNet, DenseNetConfig};
pub use face::{FaceArch, FaceDetector, FaceOutput};
pub use mobilenetv2::{MobileNetV2, MobileNetV2Config};
pub use small_mobilenet::{SmallMobileNet, SmallMobileNetConfig, StemPooling};
pub use summary::{LayerStat, Report};
