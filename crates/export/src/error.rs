use std::path::PathBuf;

/// Errors of the exporter; each names the layer or file.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // each variant's fields are named in its message
pub enum ExportError {
    /// A layer the C runtime has no kernel for.
    #[error("cannot export {layer}: {why}")]
    Unsupported { layer: String, why: String },
    /// A value that does not fit its integer type.
    #[error("{layer}: {why}")]
    Quantization { layer: String, why: String },
    /// No calibration image.
    #[error("no calibration input")]
    NoCalibration,
    /// An input size out of range.
    #[error("--input-size {}x{}: height and width must each be 1 to {max} pixels", size[0], size[1])]
    InputSize { size: [usize; 2], max: usize },
    /// A calibration folder or list without images.
    #[error("{path}: no images (.jpg, .jpeg, .png) or Fashion-MNIST files found")]
    NoImages { path: PathBuf },
    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// Building or running the model.
    #[error(transparent)]
    Model(#[from] rnnpool_core::RnnPoolError),
    /// Reading images or data sets.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// The config, the model or its checkpoint.
    #[error(transparent)]
    Zoo(#[from] zoo::ZooError),
    /// Compiling or running the generated C.
    #[error("{what} in {dir}: {detail}")]
    Build { what: String, dir: PathBuf, detail: String },
    /// A tensor that cannot be read back from burn.
    #[error("reading a tensor of {layer}: {message}")]
    Tensor { layer: String, message: String },
}

impl ExportError {
    /// An I/O error of `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
