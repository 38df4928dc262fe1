//! Errors of the RNNPool operator, its layer and the EdgeML weight import.

use std::path::PathBuf;

/// Everything that can go wrong when building, running or loading an RNNPool.
#[derive(Debug, thiserror::Error)]
pub enum RnnPoolError {
    #[error("patch size must be at least 1x1, got {patch:?}")]
    ZeroPatch { patch: [usize; 2] },
    #[error("stride must be at least 1 in both directions, got {stride:?}")]
    ZeroStride { stride: [usize; 2] },
    #[error("hidden sizes must be at least 1, got hidden1 = {hidden1}, hidden2 = {hidden2}")]
    ZeroHidden { hidden1: usize, hidden2: usize },
    #[error("in_channels must be at least 1")]
    ZeroChannels,
    #[error(
        "patch {patch_h}x{patch_w} is larger than the {height}x{width} feature map \
         (RNNPool does not pad)"
    )]
    PatchLargerThanMap { patch_h: usize, patch_w: usize, height: usize, width: usize },
    #[error("input has {found} channels but the RNNPool was built for in_channels = {expected}")]
    ChannelMismatch { expected: usize, found: usize },
    #[error("input has no elements: shape {shape:?}")]
    EmptyInput { shape: [usize; 4] },
    #[error("the fused implementation runs the FastGRNN cell only; {cell} must use the composed one")]
    FusedNeedsFastGrnn { cell: &'static str },
    #[error(
        "the fused implementation runs on the Flex and NdArray backends (and wgpu, in a build with the `wgpu` feature); this device is {device}"
    )]
    FusedUnsupportedDevice { device: String },
    #[error("EdgeML checkpoints hold FastGRNN cells, but this RNNPool uses {cell}")]
    ImportNeedsFastGrnn { cell: &'static str },
    #[error("{path}: tensor `{key}` should be an [input, hidden] matrix, found shape {found:?}")]
    NotAMatrix { path: PathBuf, key: String, found: Vec<usize> },
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: no tensor named `{key}`")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path}: tensor `{key}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch { path: PathBuf, key: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("{path}: tensor `{key}` has dtype {dtype}, which is not a float type")]
    UnsupportedDType { path: PathBuf, key: String, dtype: String },
    #[error("backend `{backend}`: {message}")]
    Backend { backend: &'static str, message: String },
    #[error("dropout mask has shape {mask:?}, but the classifier's features are {features:?}")]
    DropoutMask { mask: [usize; 2], features: [usize; 2] },
}
