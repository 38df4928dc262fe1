//! Post-training int8 export of the RNNPool models for microcontrollers.
//!
//! A trained model is lowered to a float [`graph::Graph`] (BatchNorm folded), calibrated on
//! real images ([`float_sim`]), quantized ([`quantize`]), planned into one static arena
//! ([`plan`]) and written out as C ([`codegen`]) that runs on the C runtime in the repository's
//! `c/` folder. [`int8_sim`] computes in Rust exactly what that C computes.

#![warn(missing_docs)]

pub mod codegen;
pub mod compare;
/// The exporter's errors.
pub mod error;
pub mod fixed;
pub mod float_sim;
pub mod graph;
pub mod inputs;
pub mod int8_sim;
pub mod lower;
pub mod mcu;
pub mod pipeline;
pub mod plan;
pub mod quantize;
pub mod report;

pub use error::ExportError;
pub use graph::Graph;
pub use quantize::QGraph;

/// `[c, h, w]` planes -> HWC.
pub fn chw_to_hwc(x: &[f32], [c, h, w]: [usize; 3]) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for ch in 0..c {
        for p in 0..h * w {
            y[p * c + ch] = x[ch * h * w + p];
        }
    }
    y
}

/// Activation ranges of `g` over the calibration images (HWC each).
pub fn calibrate<'a>(g: &Graph, images: impl IntoIterator<Item = &'a [f32]>) -> Result<float_sim::Ranges, ExportError> {
    let mut ranges = float_sim::Ranges::new(g);
    let mut n = 0;
    for image in images {
        float_sim::run(g, image, Some(&mut ranges));
        n += 1;
    }
    if n == 0 {
        return Err(ExportError::NoCalibration);
    }
    Ok(ranges)
}
