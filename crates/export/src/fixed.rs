//! Integer arithmetic shared bit for bit by the int8 simulator and the C runtime
//! (`c/include/rp_fixed_point.h` spells out the same operations): TFLite's requantisation
//! (`MultiplyByQuantizedMultiplier`), rounding shifts, saturation, and the FastGRNN
//! sigmoid/tanh tables.

/// A real multiplier `m` as `(q, shift)` with `m ~= q * 2^(shift - 31)`, `q` in `[2^30, 2^31)`.
pub fn quantize_multiplier(m: f64) -> (i32, i32) {
    if m == 0.0 {
        return (0, 0);
    }
    let (q, mut shift) = frexp(m);
    let mut fixed = (q * (1i64 << 31) as f64).round() as i64;
    if fixed == 1i64 << 31 {
        fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        shift = 0;
        fixed = 0;
    }
    (fixed as i32, shift)
}

/// `x = q * 2^e` with `q` in `[0.5, 1)`.
fn frexp(x: f64) -> (f64, i32) {
    let e = x.abs().log2().floor() as i32 + 1;
    let mut q = x / 2f64.powi(e);
    let mut e = e;
    // log2 can land one off at exact powers of two.
    if q.abs() >= 1.0 {
        q /= 2.0;
        e += 1;
    } else if q.abs() < 0.5 {
        q *= 2.0;
        e -= 1;
    }
    (q, e)
}

/// Saturates to int32.
pub fn sat32(x: i64) -> i32 {
    x.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Saturates to int16.
pub fn sat16(x: i64) -> i16 {
    x.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// `x / 2^e` rounded half up (arithmetic shift), `e >= 0`.
pub fn rshift_round(x: i64, e: i32) -> i64 {
    if e <= 0 { x } else { (x + (1i64 << (e - 1))) >> e }
}

/// gemmlowp's SaturatingRoundingDoublingHighMul.
fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge = if ab >= 0 { 1i64 << 30 } else { 1 - (1i64 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp's RoundingDivideByPOT.
fn rdbpot(x: i32, e: i32) -> i32 {
    let mask = ((1i64 << e) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> e) + i32::from(remainder > threshold)
}

/// TFLite's MultiplyByQuantizedMultiplier, with the left shift saturating instead of
/// overflowing.
pub fn requantize(x: i32, q: i32, shift: i32) -> i32 {
    let left = shift.max(0);
    let right = (-shift).max(0);
    rdbpot(srdhm(sat32((x as i64) << left), q), right)
}

/// Q12 fixed point inside the RNNPool cells: 1.0 = 4096.
pub const Q12_ONE: i32 = 1 << 12;
/// Entries of the sigmoid/tanh tables: inputs `[-8, 8]` in Q12, one entry every 1/32.
pub const TABLE_LEN: usize = 513;

/// `f` sampled every 1/32 on `[-8, 8]`, in Q15 (1.0 saturates at 32767).
pub fn table_q15(f: fn(f64) -> f64) -> Vec<i16> {
    (0..TABLE_LEN).map(|i| (f(i as f64 / 32.0 - 8.0) * 32768.0).round().clamp(-32767.0, 32767.0) as i16).collect()
}

/// The exact sigmoid the tables sample.
pub fn sigmoid_f64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The exact tanh the tables sample.
pub fn tanh_f64(x: f64) -> f64 {
    x.tanh()
}

/// Linear interpolation in a [`table_q15`] at a Q12 input.
pub fn lookup_q15(table: &[i16], x_q12: i32) -> i32 {
    let u = (x_q12.clamp(-32768, 32767) + 32768) as u32;
    let i = (u >> 7) as usize;
    let f = (u & 127) as i32;
    let (a, b) = (table[i] as i32, table[i + 1] as i32);
    a + (((b - a) * f + 64) >> 7)
}

/// Floor of the square root.
pub fn isqrt(x: u64) -> u64 {
    let mut rem = x;
    let mut root = 0u64;
    let mut bit = 1u64 << 62;
    while bit > rem {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

/// `a / b` rounded half away from zero, `b > 0`.
pub fn div_round(a: i64, b: i64) -> i64 {
    if a >= 0 { (a + b / 2) / b } else { -((-a + b / 2) / b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requantize_approximates_the_real_multiplier() {
        for &m in &[0.0003, 0.02, 0.5, 0.75, 0.999, 1.0, 3.7, 120.0] {
            let (q, s) = quantize_multiplier(m);
            for &x in &[-100_000i32, -1234, -1, 0, 1, 77, 5000, 1_000_000] {
                let want = (x as f64 * m).round();
                let got = requantize(x, q, s) as f64;
                assert!((got - want).abs() <= 1.0, "m {m} x {x}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn tables_follow_the_functions() {
        let (s, t) = (table_q15(sigmoid_f64), table_q15(tanh_f64));
        for i in -40_000..40_000 {
            let x = i as f64 / 4096.0;
            let xc = x.clamp(-8.0, 8.0);
            assert!((lookup_q15(&s, i) as f64 / 32768.0 - sigmoid_f64(xc)).abs() < 3e-4, "sigmoid {x}");
            assert!((lookup_q15(&t, i) as f64 / 32768.0 - tanh_f64(xc)).abs() < 3e-4, "tanh {x}");
        }
    }

    #[test]
    fn integer_helpers() {
        assert_eq!(isqrt(0), 0);
        assert_eq!(isqrt(99), 9);
        assert_eq!(isqrt(100), 10);
        assert_eq!(isqrt(u64::MAX), 4294967295);
        assert_eq!(div_round(7, 2), 4);
        assert_eq!(div_round(-7, 2), -4);
        assert_eq!(rshift_round(-3, 1), -1);
        assert_eq!(rshift_round(5, 1), 3);
    }
}
