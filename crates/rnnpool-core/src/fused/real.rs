//! The float types the fused kernel computes in, with activations that vectorise.
//!
//! `f32` uses polynomial approximations (no libm calls) so that LLVM can vectorise the
//! activation loops over the hidden dimension; their error is a few ULP, far below the 1e-4
//! tolerance of the reference fixtures. `f64` keeps the exact libm functions: it exists for
//! gradient checks and the 1e-9 parity tests, not for speed.

use core::ops::{Add, AddAssign, Mul, Sub};

/// A float type the fused RNNPool kernel computes in.
pub trait Real:
    Copy
    + Send
    + Sync
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + AddAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    /// `dst[i] = sigmoid(src[i])`.
    fn sigmoid_into(src: &[Self], dst: &mut [Self]);
    /// `dst[i] = tanh(src[i])`.
    fn tanh_into(src: &[Self], dst: &mut [Self]);
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn sigmoid_into(src: &[Self], dst: &mut [Self]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = 1.0 / (1.0 + (-s).exp());
        }
    }
    fn tanh_into(src: &[Self], dst: &mut [Self]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s.tanh();
        }
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn sigmoid_into(src: &[Self], dst: &mut [Self]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = 1.0 / (1.0 + exp_f32(-s));
        }
    }
    #[inline(always)]
    fn tanh_into(src: &[Self], dst: &mut [Self]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = tanh_f32(s);
        }
    }
}

/// exp(x) for f32 without a libm call: Cody-Waite range reduction to r in [-ln2/2, ln2/2],
/// a degree-6 polynomial for e^r, and the exponent built in the float's bits.
#[allow(clippy::excessive_precision)] // 1/k! written out; the compiler rounds them to f32
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Below -87.3 the result is denormal; clamping keeps the bit trick valid (result ~1e-38).
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by adding and removing 1.5 * 2^23 (exact for |v| < 2^22): unlike
    // f32::round this is plain arithmetic, so the loop still vectorises.
    const SHIFTER: f32 = 12_582_912.0;
    let n = (x * LOG2E + SHIFTER) - SHIFTER;
    let r = x - n * LN2_HI - n * LN2_LO;
    // Taylor coefficients up to r^6 / 720: relative error < 2e-7 on the reduced range.
    let p = 1.0
        + r * (1.0
            + r * (0.5 + r * (1.666_666_7e-1 + r * (4.166_666_8e-2 + r * (8.333_333_3e-3 + r * 1.388_888_9e-3)))));
    let bits = ((n as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

/// tanh(x) for f32 as a rational function (odd numerator of degree 13, even denominator of
/// degree 6), clamped where tanh rounds to +-1 in f32. Accurate near zero, unlike 1 - 2/(e^2x+1).
#[allow(clippy::excessive_precision)] // a published minimax fit (the one in Eigen's ptanh_float)
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = -2.760_768_5e-16f32;
    let p = p * x2 + 2.000_187_9e-13;
    let p = p * x2 - 8.604_671_5e-11;
    let p = p * x2 + 5.122_297e-8;
    let p = p * x2 + 1.485_722_4e-5;
    let p = p * x2 + 6.372_619_3e-4;
    let p = p * x2 + 4.893_524_6e-3;
    let p = p * x;
    let q = 1.198_258_4e-6f32;
    let q = q * x2 + 1.185_347_1e-4;
    let q = q * x2 + 2.268_434_6e-3;
    let q = q * x2 + 4.893_525e-3;
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> impl Iterator<Item = f32> {
        (-200_000..=200_000).map(|i| i as f32 * 1e-4)
    }

    #[test]
    fn exp_f32_matches_libm_to_a_few_ulp() {
        let worst =
            grid().map(|x| ((exp_f32(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs()).fold(0.0, f64::max);
        assert!(worst < 5e-7, "worst relative error {worst:e}");
    }

    #[test]
    fn tanh_f32_matches_libm_relatively_even_near_zero() {
        let worst = grid()
            .chain([1e-6, -3e-5, 1e-3, 40.0, -40.0])
            .map(|x| {
                let exact = (x as f64).tanh();
                ((tanh_f32(x) as f64 - exact) / exact.abs().max(1e-30)).abs()
            })
            .fold(0.0, f64::max);
        assert!(worst < 5e-7, "worst relative error {worst:e}");
        assert_eq!(tanh_f32(0.0), 0.0);
    }

    #[test]
    fn sigmoid_f32_saturates_without_nan() {
        let mut out = [0.0f32; 4];
        f32::sigmoid_into(&[-1000.0, 1000.0, 0.0, -100.0], &mut out);
        assert_eq!(out[1], 1.0);
        assert_eq!(out[2], 0.5);
        assert!(out[0] >= 0.0 && out[0] < 1e-30, "{}", out[0]);
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
