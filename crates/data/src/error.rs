//! Errors of the data loaders: each names the file, and the line where there is one.

use std::path::PathBuf;

/// Errors of the data loaders.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // each variant's fields are named in its message
pub enum DataError {
    /// A line of an annotation or list file that does not parse.
    #[error("{path}:{line}: {message}")]
    Parse { path: PathBuf, line: usize, message: String },
    /// A file or folder that cannot be read.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// An image that cannot be decoded.
    #[error("{path}: cannot decode image: {message}")]
    Image { path: PathBuf, message: String },
    /// A file in the wrong format.
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// A data set without samples.
    #[error("{path}: the data set is empty")]
    Empty { path: PathBuf },
    /// A sample index past the end.
    #[error("sample {index} asked of a data set of {len}")]
    OutOfRange { index: usize, len: usize },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
