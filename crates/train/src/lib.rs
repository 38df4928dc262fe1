//! Training and evaluation: TOML run configs, the S3FD detection loss, matcher, NMS and WIDER
//! FACE AP, the per-iteration LR schedule, atomic checkpoints with bit-identical resume,
//! per-epoch metrics (CSV, JSON, PNG) and the training loop.

pub mod backend;
pub mod checkpoint;
pub mod class_task;
pub mod config;
pub mod detection;
pub mod error;
pub mod face_task;
pub mod metrics;
pub mod net;
pub mod schedule;
pub mod sparsify;
pub mod task;
pub mod trainer;

pub use config::Config;
pub use error::TrainError;
