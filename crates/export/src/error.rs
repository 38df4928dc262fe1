use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot export {layer}: {why}")]
    Unsupported { layer: String, why: String },
    #[error("{layer}: {why}")]
    Quantization { layer: String, why: String },
    #[error("no calibration input")]
    NoCalibration,
    #[error("input size {}x{}: height and width must be 1..={max}", size[0], size[1])]
    InputSize { size: [usize; 2], max: usize },
    #[error("{path}: no images (.jpg, .jpeg, .png) or Fashion-MNIST files found")]
    NoImages { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Model(#[from] rnnpool_core::RnnPoolError),
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Zoo(#[from] zoo::ZooError),
    #[error("reading a tensor of {layer}: {message}")]
    Tensor { layer: String, message: String },
}

impl ExportError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
