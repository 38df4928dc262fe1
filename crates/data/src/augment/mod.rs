//! Augmentation: seeded random numbers, the original's photometric distortion, the geometric
//! building blocks, the QVGA face training pipeline and the input normalisations, and the
//! classification transforms; the VGA face pipeline (data-anchor sampling, SSD crops).

pub mod classification;
pub mod face;
pub mod geometry;
pub mod photometric;
pub mod rng;
pub mod vga;

pub use rng::AugRng;
