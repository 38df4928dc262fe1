//! Augmentation: seeded random numbers, the original's photometric distortion, the geometric
//! building blocks, the QVGA face training pipeline and the input normalisations, and the
//! classification transforms. Still to come (the "Data" issue): the VGA face pipeline
//! (data-anchor sampling, SSD crops).

pub mod classification;
pub mod face;
pub mod geometry;
pub mod photometric;
pub mod rng;

pub use rng::AugRng;
