//! The training side of S3FD: matching faces to priors with scale compensation and the
//! multibox loss with hard negative mining. Decoding, NMS and AP are in `zoo::s3fd`.

pub mod matcher;
pub mod multibox;
