//! The fused RNNPool layer: a CPU kernel and the burn backend extension that exposes it.

pub mod backend;
pub mod kernel;
pub mod real;
pub mod scan;
pub mod small;
