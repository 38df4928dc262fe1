//! S3FD detection training and evaluation: prior matching with scale compensation, the
//! multibox loss with hard negative mining, decoding + NMS, and WIDER FACE average precision.

pub mod ap;
pub mod boxes;
pub mod matcher;
pub mod multibox;
pub mod multiscale;
pub mod nms;
