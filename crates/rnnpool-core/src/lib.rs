//! RNNPool (Kusupati et al., "RNNPool: Efficient Non-linear Pooling for RAM Constrained
//! Inference", NeurIPS 2020) for burn 0.22.
//!
//! - [`FastGrnnCell`]: the cell, in EdgeML's parameterisation.
//! - [`RnnPool`]: the operator over patches `[n, k, r, c] -> [n, 4 * hidden2]`.
//! - [`RnnPoolLayer`]: the operator slid over a feature map, as the paper's models use it.
//! - [`StateDict`]: EdgeML (PyTorch or safetensors) weights by name.
//!
//! On the CPU backends the layer runs as one fused kernel with its own backward pass
//! ([`fused`]); everywhere else (and on request) it runs as composed burn tensor ops.

#![warn(missing_docs)]

#[macro_use]
mod named;
pub mod backend;
pub mod cell;
pub mod error;
pub mod fastgrnn;
pub mod fused;
pub mod layer;
pub mod rnnpool;
pub mod state_dict;

pub use backend::BackendKind;
pub use cell::{RnnCell, RnnCellKind};
pub use error::RnnPoolError;
pub use fastgrnn::{FastGrnnCell, FastGrnnCellConfig};
pub use layer::{RnnPoolLayer, RnnPoolLayerConfig};
pub use rnnpool::{RnnPool, RnnPoolConfig, RnnPoolImpl};
pub use state_dict::{StateDict, StateTensor};

#[doc(hidden)]
pub use serde as __serde;
