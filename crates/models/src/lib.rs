//! Vision models built on RNNPool, with EdgeML weight import: the four RNNPool face detectors
//! (S3FD machinery: priors, L2Norm, max-out) and MobileNetV2 / MobileNetV2-RNNPool (ImageNet and
//! Visual Wake Words). Still to come (the "Models" issue): DenseNet121(-RNNPool), the VWW
//! variant with a second RNNPool, box encoding, the model report.

pub mod blocks;
pub mod face;
pub mod load;
pub mod mobilenetv2;
pub mod s3fd;

pub use face::{FaceArch, FaceDetector, FaceOutput};
pub use mobilenetv2::{MobileNetV2, MobileNetV2Config};
