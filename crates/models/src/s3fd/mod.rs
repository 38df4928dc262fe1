//! The S3FD detection machinery shared by the RNNPool face detectors.

pub mod boxes;
pub mod l2norm;
pub mod priors;

pub use l2norm::L2Norm;
pub use priors::priors;
