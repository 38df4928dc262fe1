//! The fused RNNPool layer: a CPU kernel, a CubeCL (GPU) kernel, and the burn backend extension
//! that exposes them.

pub mod backend;
#[cfg(feature = "wgpu")]
pub mod cube;
pub mod kernel;
pub mod real;
pub mod scan;
pub mod small;
