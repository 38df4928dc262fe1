//! The original's photometric distortion (S3FD/PyramidBox `distort_image`, PIL semantics):
//! brightness, contrast, saturation and hue, each applied with probability 0.5, in one of two
//! orders chosen 50/50.

use image::{Rgb, RgbImage};

use super::rng::AugRng;

/// Largest relative change of brightness (0.125), contrast (0.5) and saturation (0.5), and of
/// hue in PIL's 0..=255 hue units (18).
pub const BRIGHTNESS: f64 = 0.125;
/// Contrast factors are drawn from `1 ± CONTRAST`.
pub const CONTRAST: f64 = 0.5;
/// Saturation factors are drawn from `1 ± SATURATION`.
pub const SATURATION: f64 = 0.5;
/// Hue shifts are drawn from `± HUE` degrees.
pub const HUE: f64 = 18.0;

/// PIL's luma (ITU-R 601-2), as `ImageEnhance` blends with it.
fn luma(p: &Rgb<u8>) -> f64 {
    (p[0] as f64 * 299.0 + p[1] as f64 * 587.0 + p[2] as f64 * 114.0) / 1000.0
}

fn clamp_u8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// `ImageEnhance.Brightness(img).enhance(f)`: blend with black.
pub fn brightness(img: &mut RgbImage, f: f64) {
    for p in img.pixels_mut() {
        p.0 = p.0.map(|c| clamp_u8(c as f64 * f));
    }
}

/// `ImageEnhance.Contrast(img).enhance(f)`: blend with the image's mean grey.
pub fn contrast(img: &mut RgbImage, f: f64) {
    let n = (img.width() * img.height()).max(1) as f64;
    let mean = (img.pixels().map(luma).sum::<f64>() / n).round();
    for p in img.pixels_mut() {
        p.0 = p.0.map(|c| clamp_u8(mean + f * (c as f64 - mean)));
    }
}

/// `ImageEnhance.Color(img).enhance(f)`: blend with the pixel's own grey.
pub fn saturation(img: &mut RgbImage, f: f64) {
    for p in img.pixels_mut() {
        let g = luma(p);
        p.0 = p.0.map(|c| clamp_u8(g + f * (c as f64 - g)));
    }
}

/// Shifts the hue by `delta` in 0..=255 units (PIL's HSV), wrapping around.
pub fn hue(img: &mut RgbImage, delta: f64) {
    for p in img.pixels_mut() {
        let [r, g, b] = p.0.map(|c| c as f64 / 255.0);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let d = max - min;
        if d == 0.0 {
            continue;
        }
        let h6 = if max == r {
            ((g - b) / d).rem_euclid(6.0)
        } else if max == g {
            (b - r) / d + 2.0
        } else {
            (r - g) / d + 4.0
        };
        let h = (h6 / 6.0 + delta / 256.0).rem_euclid(1.0) * 6.0;
        let (s, v) = (d / max, max);
        let i = h.floor();
        let f = h - i;
        let (pp, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let (r, g, b) = match i as u32 % 6 {
            0 => (v, t, pp),
            1 => (q, v, pp),
            2 => (pp, v, t),
            3 => (pp, q, v),
            4 => (t, pp, v),
            _ => (v, pp, q),
        };
        p.0 = [r, g, b].map(|c| clamp_u8(c * 255.0));
    }
}

/// The whole distortion with the original's probabilities and ranges.
pub fn distort(img: &mut RgbImage, rng: &mut AugRng) {
    let order: [u8; 4] = if rng.coin(0.5) { [0, 1, 2, 3] } else { [0, 2, 3, 1] };
    for which in order {
        if !rng.coin(0.5) {
            continue;
        }
        match which {
            0 => brightness(img, 1.0 + rng.uniform(-BRIGHTNESS, BRIGHTNESS)),
            1 => contrast(img, 1.0 + rng.uniform(-CONTRAST, CONTRAST)),
            2 => saturation(img, 1.0 + rng.uniform(-SATURATION, SATURATION)),
            _ => hue(img, rng.uniform(-HUE, HUE)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> RgbImage {
        RgbImage::from_fn(16, 8, |x, y| Rgb([(x * 15) as u8, (y * 30) as u8, ((x + y) * 7) as u8]))
    }

    #[test]
    fn unit_factors_change_nothing_and_hue_round_trips() {
        let orig = image();
        for f in [brightness, contrast, saturation] {
            let mut img = orig.clone();
            f(&mut img, 1.0);
            assert_eq!(img, orig);
        }
        let mut img = orig.clone();
        hue(&mut img, 0.0);
        let worst = img
            .pixels()
            .zip(orig.pixels())
            .flat_map(|(a, b)| (0..3).map(move |i| (a[i] as i32 - b[i] as i32).abs()))
            .max();
        assert!(worst <= Some(1), "HSV round trip off by {worst:?}");
        let mut img = orig.clone();
        hue(&mut img, 128.0);
        hue(&mut img, 128.0);
        let worst = img
            .pixels()
            .zip(orig.pixels())
            .flat_map(|(a, b)| (0..3).map(move |i| (a[i] as i32 - b[i] as i32).abs()))
            .max();
        assert!(worst <= Some(2), "a full hue turn off by {worst:?}");
    }

    #[test]
    fn factors_act_as_pil_does() {
        let mut img = RgbImage::from_pixel(2, 1, Rgb([100, 50, 200]));
        brightness(&mut img, 0.5);
        assert_eq!(img.get_pixel(0, 0).0, [50, 25, 100]);
        let mut img = RgbImage::from_pixel(2, 1, Rgb([100, 50, 200]));
        saturation(&mut img, 0.0);
        let g = clamp_u8(luma(&Rgb([100, 50, 200])));
        assert_eq!(img.get_pixel(0, 0).0, [g, g, g]);
        let mut img = RgbImage::from_fn(2, 1, |x, _| if x == 0 { Rgb([0, 0, 0]) } else { Rgb([200, 200, 200]) });
        contrast(&mut img, 0.0);
        assert_eq!(img.get_pixel(0, 0), img.get_pixel(1, 0));
    }

    #[test]
    fn distortion_is_reproducible_for_a_seed() {
        let (mut a, mut b) = (image(), image());
        distort(&mut a, &mut AugRng::new(3));
        distort(&mut b, &mut AugRng::new(3));
        assert_eq!(a, b);
    }
}
