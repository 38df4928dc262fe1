//! The fused RNNPool layer: a CPU kernel, a CubeCL (GPU) kernel, and the burn backend extension
//! that exposes them.

pub mod backend;
#[cfg(feature = "wgpu")]
pub(crate) mod cube;
pub(crate) mod denormals;
pub(crate) mod kernel;
pub(crate) mod real;
pub(crate) mod scan;
pub(crate) mod small;
