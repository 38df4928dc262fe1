//! What training and export share, so that neither needs the other:
//!
//! - [`config`]: the typed TOML run configuration;
//! - [`registry`] and [`net`]: the network a config names, seeded, with its starting weights;
//! - [`checkpoint`]: the checkpoint file format;
//! - [`s3fd`]: the inference side of the face detectors: priors on the host, decoding, NMS,
//!   WIDER FACE average precision, the original's multi-scale test, and the face lists and
//!   image pipelines a config describes.
//!
//! The training side of S3FD (matching and the multibox loss) lives in the `train` crate, the
//! network side (heads, L2Norm, priors, box coding) in `models::s3fd`.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod net;
pub mod registry;
pub mod s3fd;

pub use checkpoint::Checkpoint;
pub use config::Config;
pub use error::ZooError;
pub use net::Net;
