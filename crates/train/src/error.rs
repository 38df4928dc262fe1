//! The train crate's errors; each names what it is about (file, field, backend).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error("model: {0}")]
    Model(#[from] rnnpool_core::RnnPoolError),
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Record { path: PathBuf, message: String },
    #[error("backend `{backend}`: {message}")]
    Backend { backend: String, message: String },
    #[error("{0}")]
    Dataset(String),
    #[error("{what} is not supported yet: {why}")]
    Unsupported { what: String, why: String },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
