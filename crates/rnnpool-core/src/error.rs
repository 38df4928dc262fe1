//! Errors of the RNNPool operator, its layer and the EdgeML weight import.

use std::path::PathBuf;

/// Everything that can go wrong when building, running or loading an RNNPool.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // each variant's fields are named in its message
pub enum RnnPoolError {
    /// A patch of zero rows or columns.
    #[error("patch size must be at least 1x1, got {patch:?}")]
    ZeroPatch { patch: [usize; 2] },
    /// A zero stride.
    #[error("stride must be at least 1 in both directions, got {stride:?}")]
    ZeroStride { stride: [usize; 2] },
    /// A zero hidden size.
    #[error("hidden sizes must be at least 1, got hidden1 = {hidden1}, hidden2 = {hidden2}")]
    ZeroHidden { hidden1: usize, hidden2: usize },
    /// Zero input channels.
    #[error("in_channels must be at least 1")]
    ZeroChannels,
    #[error(
        "patch {patch_h}x{patch_w} is larger than the {height}x{width} feature map \
         (RNNPool does not pad)"
    )]
    /// A patch larger than the feature map.
    PatchLargerThanMap { patch_h: usize, patch_w: usize, height: usize, width: usize },
    /// An input with another channel count than the layer's.
    #[error("input has {found} channels but the RNNPool was built for in_channels = {expected}")]
    ChannelMismatch { expected: usize, found: usize },
    /// An input without elements.
    #[error("input has no elements: shape {shape:?}")]
    EmptyInput { shape: [usize; 4] },
    /// The fused implementation asked for with a GRU or LSTM cell.
    #[error("the fused implementation runs the FastGRNN cell only; {cell} must use the composed one")]
    FusedNeedsFastGrnn { cell: &'static str },
    #[error(
        "the fused implementation runs on the Flex and NdArray backends (and wgpu, in a build with the `wgpu` feature); this device is {device}"
    )]
    /// The fused implementation asked for on a backend it does not run on.
    FusedUnsupportedDevice { device: String },
    /// EdgeML weights loaded into a GRU or LSTM cell.
    #[error("EdgeML checkpoints hold FastGRNN cells, but this RNNPool uses {cell}")]
    ImportNeedsFastGrnn { cell: &'static str },
    /// A weight that should be a matrix.
    #[error("{path}: tensor `{key}` should be an [input, hidden] matrix, found shape {found:?}")]
    NotAMatrix { path: PathBuf, key: String, found: Vec<usize> },
    /// A weight file that cannot be read.
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    /// A tensor missing from a weight file.
    #[error("{path}: no tensor named `{key}`")]
    MissingKey { path: PathBuf, key: String },
    /// A tensor of the wrong shape.
    #[error("{path}: tensor `{key}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch { path: PathBuf, key: String, expected: Vec<usize>, found: Vec<usize> },
    /// A tensor of a non-float type.
    #[error("{path}: tensor `{key}` has dtype {dtype}, which is not a float type")]
    UnsupportedDType { path: PathBuf, key: String, dtype: String },
    /// A backend that this build or machine cannot give.
    #[error("backend `{backend}`: {message}")]
    Backend { backend: &'static str, message: String },
    /// A dropout mask of the wrong shape.
    #[error("dropout mask has shape {mask:?}, but the classifier's features are {features:?}")]
    DropoutMask { mask: [usize; 2], features: [usize; 2] },
}
