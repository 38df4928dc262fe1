//! The face pipelines' pieces that follow the original exactly enough to train the QVGA models
//! (RNNPool-Face-M4 and -QVGA-monochrome, EdgeML `preprocess_qvga`), and the input
//! normalisation of both VGA (RGB) and QVGA (grey) models.

use image::RgbImage;
use image::imageops::FilterType;

use super::geometry::{self, MEAN_RGB};
use super::photometric;
use super::rng::AugRng;
use crate::wider::FaceBox;

/// PIL's interpolations as the original picks among them (hamming has no twin here: the
/// triangle filter stands in for it).
pub(crate) const FILTERS: [FilterType; 5] =
    [FilterType::Triangle, FilterType::Triangle, FilterType::Nearest, FilterType::CatmullRom, FilterType::Lanczos3];

/// Side of the QVGA models' square training input.
pub const QVGA_TRAIN_SIDE: u32 = 320;
/// `reduce_image` shrinks an image until its largest face is this many pixels across.
pub const QVGA_LARGEST_FACE: f32 = 48.0;

fn largest_face(boxes: &[FaceBox]) -> f32 {
    boxes.iter().map(|b| (b.width() * b.height()).max(0.0).sqrt()).fold(0.0, f32::max)
}

/// EdgeML's QVGA training augmentation: pad to nearly square (+-20 px), photometric
/// distortion, shrink so the largest face is at most 48 px, pad with the mean colour to at
/// least 320 on both sides, resize to 320x320 with a random interpolation, flip with p = 0.5,
/// drop faces under one pixel. Boxes in pixels of the result.
pub fn qvga_train(img: &RgbImage, boxes: &[FaceBox], rng: &mut AugRng) -> (RgbImage, Vec<FaceBox>) {
    let (w, h) = (img.width(), img.height());
    let long = w.max(h) as i64 + rng.below(41) as i64 - 20;
    let (nw, nh) = if w < h { ((long.max(w as i64)) as u32, h) } else { (w, (long.max(h as i64)) as u32) };
    let (x, y) = (rng.below((nw - w + 1) as usize) as u32, rng.below((nh - h + 1) as usize) as u32);
    let (mut img, mut boxes) = geometry::pad(img, boxes, nw, nh, x, y, MEAN_RGB);
    photometric::distort(&mut img, rng);
    let face = largest_face(&boxes);
    if face > QVGA_LARGEST_FACE {
        let s = QVGA_LARGEST_FACE / face;
        let (sw, sh) =
            (((img.width() as f32 * s).round() as u32).max(1), ((img.height() as f32 * s).round() as u32).max(1));
        (img, boxes) = geometry::resize(&img, &boxes, sw, sh, FilterType::Triangle);
    }
    let (pw, ph) = (img.width().max(QVGA_TRAIN_SIDE), img.height().max(QVGA_TRAIN_SIDE));
    let (x, y) =
        (rng.below((pw - img.width() + 1) as usize) as u32, rng.below((ph - img.height() + 1) as usize) as u32);
    (img, boxes) = geometry::pad(&img, &boxes, pw, ph, x, y, MEAN_RGB);
    let filter = FILTERS[rng.below(FILTERS.len())];
    (img, boxes) = geometry::resize(&img, &boxes, QVGA_TRAIN_SIDE, QVGA_TRAIN_SIDE, filter);
    if rng.coin(0.5) {
        (img, boxes) = geometry::hflip(&img, &boxes);
    }
    boxes.retain(|b| b.width() >= 1.0 && b.height() >= 1.0);
    (img, boxes)
}

/// The original's RGB input: the ImageNet mean (104, 117, 123 in BGR) subtracted, no scaling;
/// `[3, h, w]` in RGB order.
pub fn normalize_rgb(img: &RgbImage) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = vec![0.0f32; 3 * w * h];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * w * h + i] = p[c] as f32 - MEAN_RGB[c] as f32;
        }
    }
    out
}

/// The monochrome models' input: grey computed from the mean-subtracted channels
/// (0.299 R' + 0.587 G' + 0.114 B'), as EdgeML does, `[1, h, w]`.
pub fn normalize_gray(img: &RgbImage) -> Vec<f32> {
    img.pixels()
        .map(|p| {
            let [r, g, b] = [0, 1, 2].map(|c| p[c] as f32 - MEAN_RGB[c] as f32);
            0.299 * r + 0.587 * g + 0.114 * b
        })
        .collect()
}

/// Boxes in pixels -> `(x1, y1, x2, y2)` divided by the image size, as the loss wants them.
pub fn normalized_boxes(boxes: &[FaceBox], width: u32, height: u32) -> Vec<[f32; 4]> {
    let (w, h) = (width as f32, height as f32);
    boxes.iter().map(|b| [b.x1 / w, b.y1 / h, b.x2 / w, b.y2 / h]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_io::load_rgb;
    use crate::wider::WiderFace;

    #[test]
    fn qvga_training_samples_from_the_bundled_photos() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/wider_sample");
        let list = WiderFace::new(root).split("train").unwrap();
        for (i, a) in list.images.iter().enumerate() {
            let img = load_rgb(&a.image).unwrap();
            for epoch in 0..3 {
                let mut rng = AugRng::for_sample(7, epoch, i as u64);
                let (out, boxes) = qvga_train(&img, &a.boxes, &mut rng);
                assert_eq!(out.dimensions(), (320, 320));
                assert!(!boxes.is_empty(), "{}: every face lost", a.image.display());
                for b in &boxes {
                    assert!(b.x1 >= 0.0 && b.y1 >= 0.0 && b.x2 <= 320.0 && b.y2 <= 320.0, "{b:?}");
                    // Shrunk to 48 px at most, then padded to >= 320 and resized to 320.
                    assert!(b.width().max(b.height()) <= QVGA_LARGEST_FACE * 1.5 + 1.0, "{b:?}");
                }
                let again = qvga_train(&img, &a.boxes, &mut AugRng::for_sample(7, epoch, i as u64));
                assert_eq!((out.clone(), boxes.clone()), again, "not reproducible");
            }
        }
    }

    #[test]
    fn normalisation_subtracts_the_mean_and_greys_after_it() {
        let img = RgbImage::from_pixel(2, 1, image::Rgb([123, 117, 104]));
        assert!(normalize_rgb(&img).iter().all(|&v| v == 0.0));
        assert!(normalize_gray(&img).iter().all(|&v| v == 0.0));
        let white = RgbImage::from_pixel(1, 1, image::Rgb([255, 255, 255]));
        let g = normalize_gray(&white)[0];
        let want = 0.299 * 132.0 + 0.587 * 138.0 + 0.114 * 151.0;
        assert!((g - want).abs() < 1e-4, "{g} vs {want}");
        assert_eq!(normalize_rgb(&white), vec![132.0, 138.0, 151.0]);
    }
}
