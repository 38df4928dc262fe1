//! The zoo's errors; each names what it is about (file, field, model).

use std::path::PathBuf;

/// Everything that can go wrong reading a config, building a model or loading its weights.
#[derive(Debug, thiserror::Error)]
pub enum ZooError {
    /// The config.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data set's files.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// Building a model or loading EdgeML weights.
    #[error("model: {0}")]
    Model(#[from] rnnpool_core::RnnPoolError),
    /// A checkpoint file.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// A checkpoint whose records do not fit the model.
    #[error("{path}: {message}")]
    Record {
        /// The checkpoint.
        path: PathBuf,
        /// What did not fit.
        message: String,
    },
    /// Something this combination of model and data cannot do.
    #[error("{what} is not supported: {why}")]
    Unsupported {
        /// What was asked.
        what: String,
        /// Why not, and what to do instead.
        why: String,
    },
}
