//! Vision models built on RNNPool. So far: the S3FD machinery (priors, L2Norm), the MobileNetV2
//! blocks, and the QVGA-family face detectors (RNNPool-Face-M4, RNNPool-Face-QVGA-monochrome)
//! with EdgeML weight import. MobileNetV2/DenseNet classifiers, the VGA face models and the
//! model report are still to come (see the "Models" issue).

pub mod blocks;
pub mod face_qvga;
pub mod load;
pub mod mobilenetv2;
pub mod s3fd;

pub use face_qvga::{FaceOutput, QvgaFaceArch, QvgaFaceDetector};
pub use mobilenetv2::{MobileNetV2, MobileNetV2Config};
