//! The train crate's errors; each names what it is about (file, field, step).

use std::path::PathBuf;

/// Everything that can stop a training run or an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Configs, models, weights and checkpoints.
    #[error(transparent)]
    Zoo(#[from] zoo::ZooError),
    /// The data set's files.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// Running a model.
    #[error("model: {0}")]
    Model(#[from] rnnpool_core::RnnPoolError),
    /// A checkpoint file.
    #[error(transparent)]
    Checkpoint(#[from] zoo::checkpoint::CheckpointError),
    /// Reading or writing a file of the run.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A checkpoint's record that cannot be read or does not fit.
    #[error("{path}: {message}")]
    Record {
        /// The checkpoint.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The data loader.
    #[error("{0}")]
    Dataset(String),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
