//! Augmentation: geometric building blocks so far; the original's policies (photometric
//! distortion, data-anchor sampling, SSD crops, QVGA reduce/pad) are still to come.

pub mod geometry;
