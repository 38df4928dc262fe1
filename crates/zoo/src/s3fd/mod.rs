//! The inference side of the S3FD face detectors: decoding and NMS ([`detect`]), WIDER FACE
//! average precision ([`ap`], [`ground_truth`]), the original's multi-scale test
//! ([`multiscale`]), and running a detector on a config's images ([`inference`]).

pub mod ap;
pub mod detect;
pub mod ground_truth;
pub mod inference;
pub mod multiscale;

pub use detect::{DetectConfig, Detection};
