//! Training and evaluation of the RNNPool models: the training loop with exact resume
//! ([`trainer`]), the face detection and classification tasks ([`face_task`], [`class_task`]),
//! S3FD's matcher and multibox loss ([`s3fd`]), the learning-rate schedule, RNNPool-Face-M4's
//! sparsification, and per-epoch metrics files; what a run shows through burn-train
//! ([`dashboard`]) and draws ([`plots`]); burn-train's own `Learner` for classifiers ([`learner`]).
//!
//! Configs, the model registry, checkpoints and detection inference are in the `zoo` crate,
//! which export shares.

#![warn(missing_docs)]

pub mod alloc;
pub mod class_task;
pub mod dashboard;
pub mod error;
pub mod face_task;
pub mod job;
pub mod learner;
pub mod metrics;
pub mod plots;
pub mod run_dir;
pub mod s3fd;
pub mod schedule;
pub mod sparsify;
pub mod state;
pub mod task;
pub mod trainer;

pub use error::TrainError;
pub use zoo::Config;
