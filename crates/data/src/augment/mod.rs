//! Augmentation: seeded random numbers, the original's photometric distortion and the
//! geometric building blocks. The sampling policies (data-anchor sampling, SSD crops, QVGA
//! reduce/pad) are still to come.

pub mod geometry;
pub mod photometric;
pub mod rng;

pub use rng::AugRng;
