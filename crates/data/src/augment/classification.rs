//! torchvision's classification transforms as the paper and EdgeML use them: training
//! RandomResizedCrop (scale 0.08-1 for ImageNet, 0.2-1 for Visual Wake Words; ratio 3/4-4/3) +
//! horizontal flip, validation resize to 256/224 of the crop + centre crop; ImageNet mean/std.

use image::RgbImage;
use image::imageops::{self, FilterType};

use super::rng::AugRng;

/// ImageNet's per-channel mean (RGB, 0..1).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// RandomResizedCrop's scale range for ImageNet and for Visual Wake Words.
pub const IMAGENET_SCALE: (f64, f64) = (0.08, 1.0);
/// RandomResizedCrop's area range for Visual Wake Words.
pub const VWW_SCALE: (f64, f64) = (0.2, 1.0);
const RATIO: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);

/// torchvision's `RandomResizedCrop.get_params`: up to 10 tries at a random area fraction in
/// `scale` and a log-uniform aspect ratio in 3/4..4/3, else a centre crop of clamped ratio.
/// Returns `(x, y, w, h)`.
pub fn random_resized_crop_box(width: u32, height: u32, scale: (f64, f64), rng: &mut AugRng) -> (u32, u32, u32, u32) {
    let area = width as f64 * height as f64;
    for _ in 0..10 {
        let target = area * rng.uniform(scale.0, scale.1);
        let aspect = rng.uniform(RATIO.0.ln(), RATIO.1.ln()).exp();
        let w = (target * aspect).sqrt().round() as u32;
        let h = (target / aspect).sqrt().round() as u32;
        if w > 0 && h > 0 && w <= width && h <= height {
            let x = rng.below((width - w + 1) as usize) as u32;
            let y = rng.below((height - h + 1) as usize) as u32;
            return (x, y, w, h);
        }
    }
    let ratio = width as f64 / height as f64;
    let (w, h) = if ratio < RATIO.0 {
        (width, ((width as f64 / RATIO.0).round() as u32).min(height))
    } else if ratio > RATIO.1 {
        (((height as f64 * RATIO.1).round() as u32).min(width), height)
    } else {
        (width, height)
    };
    ((width - w) / 2, (height - h) / 2, w, h)
}

/// Training: random resized crop to `size x size` (bilinear), flip with p = 0.5.
pub fn train(img: &RgbImage, size: u32, scale: (f64, f64), rng: &mut AugRng) -> RgbImage {
    let (x, y, w, h) = random_resized_crop_box(img.width(), img.height(), scale, rng);
    let crop = imageops::crop_imm(img, x, y, w, h).to_image();
    let out = imageops::resize(&crop, size, size, FilterType::Triangle);
    if rng.coin(0.5) { imageops::flip_horizontal(&out) } else { out }
}

/// Validation: shorter side to `size * 256 / 224`, then the centre `size x size` (at 224 this
/// is torchvision's Resize(256) + CenterCrop(224); other resolutions keep the ratio, as the
/// paper does for VWW at 96-224).
pub fn val(img: &RgbImage, size: u32) -> RgbImage {
    let short = (size as f64 * 256.0 / 224.0).round() as u32;
    let (w, h) = (img.width() as f64, img.height() as f64);
    let s = short as f64 / w.min(h);
    let (nw, nh) = (((w * s).round() as u32).max(size), ((h * s).round() as u32).max(size));
    let resized = imageops::resize(img, nw, nh, FilterType::Triangle);
    imageops::crop_imm(&resized, (nw - size) / 2, (nh - size) / 2, size, size).to_image()
}

/// `[3, h, w]` of `(x / 255 - mean) / std`.
pub fn normalize(img: &RgbImage) -> Vec<f32> {
    let n = (img.width() * img.height()) as usize;
    let mut out = vec![0.0; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = (p[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_boxes_stay_inside_with_torchvisions_area_and_ratio() {
        let mut rng = AugRng::new(1);
        for (w, h) in [(500u32, 375u32), (64, 640), (300, 300)] {
            for _ in 0..500 {
                let (x, y, cw, ch) = random_resized_crop_box(w, h, IMAGENET_SCALE, &mut rng);
                assert!(cw > 0 && ch > 0 && x + cw <= w && y + ch <= h, "{w}x{h}: {x} {y} {cw} {ch}");
                let frac = (cw * ch) as f64 / (w * h) as f64;
                let ratio = cw as f64 / ch as f64;
                // Either a sampled crop, or the centre fallback with a clamped ratio.
                assert!(frac >= 0.07 || (cw == w || ch == h), "area fraction {frac}");
                assert!((0.70..=1.40).contains(&ratio) || cw == w || ch == h, "ratio {ratio}");
            }
        }
        // A very tall image never fits a sampled crop: the centre crop of ratio 3/4 it is.
        let (_, _, cw, ch) = random_resized_crop_box(10, 1000, (0.99, 1.0), &mut rng);
        assert_eq!((cw, ch), (10, 13));
    }

    #[test]
    fn val_is_resize_256_then_centre_224_and_normalisation_uses_imagenet_stats() {
        let img = RgbImage::from_fn(640, 480, |x, _| image::Rgb([(x % 256) as u8, 0, 0]));
        let out = val(&img, 224);
        assert_eq!(out.dimensions(), (224, 224));
        let small = val(&img, 96);
        assert_eq!(small.dimensions(), (96, 96));
        let t = train(&img, 160, VWW_SCALE, &mut AugRng::new(4));
        assert_eq!(t.dimensions(), (160, 160));
        let grey = RgbImage::from_pixel(1, 1, image::Rgb([124, 116, 104]));
        let n = normalize(&grey);
        for c in 0..3 {
            let want = ([124.0, 116.0, 104.0][c] / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            assert!((n[c] - want).abs() < 1e-6);
        }
    }
}
