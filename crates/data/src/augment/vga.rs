//! The VGA (RGB, 640x640) face training pipeline of S3FD/EdgeML `preprocess`: photometric
//! distortion, then with p = 0.5 PyramidBox's data-anchor-sampling, otherwise SSD-style square
//! crop sampling; resize to 640x640 with a random interpolation, horizontal flip, and faces
//! under 6x6 px dropped.

use image::RgbImage;

use super::face::FILTERS;
use super::geometry::{self, MEAN_RGB, Rect};
use super::photometric;
use super::rng::AugRng;
use crate::wider::FaceBox;

/// Side of the VGA models' square training input.
pub const VGA_TRAIN_SIDE: u32 = 640;
/// The VGA models' anchor sizes, which data-anchor-sampling rescales faces towards.
pub const VGA_ANCHORS: [f32; 6] = [16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Faces smaller than this (either side, pixels of the 640 input) are dropped.
pub const VGA_MIN_FACE: f32 = 6.0;
/// Sampling trials per sampler, as the original.
const TRIALS: usize = 50;
/// The original bounds the rescaled image's area by 12000^2.
const MAX_SIDE: f64 = 12000.0;

fn iou(a: &FaceBox, r: &Rect) -> f32 {
    let (rx2, ry2) = (r.x as f32 + r.w as f32, r.y as f32 + r.h as f32);
    let iw = (a.x2.min(rx2) - a.x1.max(r.x as f32)).max(0.0);
    let ih = (a.y2.min(ry2) - a.y1.max(r.y as f32)).max(0.0);
    let inter = iw * ih;
    let union = a.width() * a.height() + r.w as f32 * r.h as f32 - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

fn inside(b: &FaceBox, r: &Rect) -> bool {
    b.x1 >= r.x as f32 && b.y1 >= r.y as f32 && b.x2 <= (r.x + r.w as i64) as f32 && b.y2 <= (r.y + r.h as i64) as f32
}

/// PyramidBox's data-anchor-sampling: picks a face, rescales the image so that face becomes a
/// random anchor size no larger than the next one above its own (times 2^U(-1, 1)), then picks
/// a 640x640 window around the face (50 tries; a window counts when some face lies wholly in it
/// or overlaps it by IoU > 0.7). When no window qualifies the rescaled image is returned whole,
/// as the original does.
pub fn data_anchor_sampling(img: &RgbImage, boxes: &[FaceBox], rng: &mut AugRng) -> (RgbImage, Vec<FaceBox>) {
    if boxes.is_empty() {
        return (img.clone(), Vec::new());
    }
    let pick = rng.below(boxes.len());
    let side = (boxes[pick].width() * boxes[pick].height()).max(1.0).sqrt();
    let nearest = (0..VGA_ANCHORS.len())
        .min_by(|&a, &b| (VGA_ANCHORS[a] - side).abs().total_cmp(&(VGA_ANCHORS[b] - side).abs()))
        .unwrap_or(0);
    let target = VGA_ANCHORS[rng.below(nearest.min(4) + 2)];
    let mut ratio = (target / side) as f64 * 2f64.powf(rng.uniform(-1.0, 1.0));
    let (w, h) = (img.width() as f64, img.height() as f64);
    if w * ratio * h * ratio > MAX_SIDE * MAX_SIDE {
        ratio = (MAX_SIDE * MAX_SIDE / (w * h)).sqrt();
    }
    let (nw, nh) = (((w * ratio).round() as u32).max(1), ((h * ratio).round() as u32).max(1));
    let filter = FILTERS[rng.below(FILTERS.len())];
    let (img, boxes) = geometry::resize(img, boxes, nw, nh, filter);
    let face = boxes[pick];
    let s = VGA_TRAIN_SIDE as f64;
    let mut windows = Vec::new();
    for _ in 0..TRIALS {
        let (x, y) = if s < nw.max(nh) as f64 {
            let (bx, by, bw, bh) = (face.x1 as f64, face.y1 as f64, face.width() as f64, face.height() as f64);
            let x = if bw <= s { rng.uniform(bx + bw - s, bx) } else { rng.uniform(bx, bx + bw - s) };
            let y = if bh <= s { rng.uniform(by + bh - s, by) } else { rng.uniform(by, by + bh - s) };
            (x, y)
        } else {
            (rng.uniform(nw as f64 - s, 0.0), rng.uniform(nh as f64 - s, 0.0))
        };
        let rect = Rect { x: x.floor() as i64, y: y.floor() as i64, w: VGA_TRAIN_SIDE, h: VGA_TRAIN_SIDE };
        if boxes.iter().any(|b| inside(b, &rect) || iou(b, &rect) > 0.7) {
            windows.push(rect);
        }
    }
    if windows.is_empty() {
        return (img, boxes);
    }
    let rect = windows[rng.below(windows.len())];
    geometry::crop(&img, &boxes, rect, MEAN_RGB)
}

/// SSD-style sampling as S3FD uses it: one sampler keeps the whole image's short side, four
/// draw a side of U(0.3, 1) of it; each tries 50 random square windows and keeps the first
/// that holds some face wholly; one of the kept windows is used (the image unchanged if none).
pub fn ssd_square_crop(img: &RgbImage, boxes: &[FaceBox], rng: &mut AugRng) -> (RgbImage, Vec<FaceBox>) {
    let short = img.width().min(img.height()) as f64;
    let mut windows = Vec::new();
    for sampler in 0..5 {
        for _ in 0..TRIALS {
            let scale = if sampler == 0 { 1.0 } else { rng.uniform(0.3, 1.0) };
            let side = ((short * scale).round() as u32).max(1);
            let x = rng.below((img.width() - side + 1) as usize) as i64;
            let y = rng.below((img.height() - side + 1) as usize) as i64;
            let rect = Rect { x, y, w: side, h: side };
            if boxes.iter().any(|b| inside(b, &rect)) {
                windows.push(rect);
                break;
            }
        }
    }
    if windows.is_empty() {
        return (img.clone(), boxes.to_vec());
    }
    let rect = windows[rng.below(windows.len())];
    geometry::crop(img, boxes, rect, MEAN_RGB)
}

/// The whole VGA training augmentation; boxes in pixels of the 640x640 result.
pub fn vga_train(img: &RgbImage, boxes: &[FaceBox], rng: &mut AugRng) -> (RgbImage, Vec<FaceBox>) {
    let mut img = img.clone();
    photometric::distort(&mut img, rng);
    let (img, boxes) =
        if rng.coin(0.5) { data_anchor_sampling(&img, boxes, rng) } else { ssd_square_crop(&img, boxes, rng) };
    let filter = FILTERS[rng.below(FILTERS.len())];
    let (mut img, mut boxes) = geometry::resize(&img, &boxes, VGA_TRAIN_SIDE, VGA_TRAIN_SIDE, filter);
    if rng.coin(0.5) {
        (img, boxes) = geometry::hflip(&img, &boxes);
    }
    boxes.retain(|b| b.width() >= VGA_MIN_FACE && b.height() >= VGA_MIN_FACE);
    (img, boxes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_io::load_rgb;
    use crate::wider::WiderFace;

    fn sample() -> Vec<(RgbImage, Vec<FaceBox>)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/wider_sample");
        let list = WiderFace::new(root).split("train").unwrap();
        list.images.iter().map(|a| (load_rgb(&a.image).unwrap(), a.boxes.clone())).collect()
    }

    #[test]
    fn vga_samples_are_640_squares_with_faces_inside_and_reproducible() {
        let mut kept = 0;
        for (i, (img, boxes)) in sample().iter().enumerate() {
            for epoch in 0..4 {
                let (out, got) = vga_train(img, boxes, &mut AugRng::for_sample(5, epoch, i as u64));
                assert_eq!(out.dimensions(), (640, 640));
                for b in &got {
                    assert!(b.x1 >= 0.0 && b.y1 >= 0.0 && b.x2 <= 640.0 && b.y2 <= 640.0, "{b:?}");
                    assert!(b.width() >= VGA_MIN_FACE && b.height() >= VGA_MIN_FACE);
                }
                kept += got.len();
                let again = vga_train(img, boxes, &mut AugRng::for_sample(5, epoch, i as u64));
                assert_eq!((out, got), again, "not reproducible");
            }
        }
        assert!(kept > 16, "only {kept} faces survived 16 samples");
    }

    #[test]
    fn data_anchor_sampling_brings_the_chosen_face_near_an_anchor() {
        // One 60 px face: its nearest anchor is 64 (index 2), so the target is one of 16..128
        // and the face ends at target * 2^U(-1,1): within [8, 256] px.
        let img = RgbImage::from_pixel(300, 240, image::Rgb([50, 60, 70]));
        let face = FaceBox { x1: 120.0, y1: 90.0, x2: 180.0, y2: 150.0, invalid: false };
        let mut rng = AugRng::new(11);
        let mut sides = Vec::new();
        for _ in 0..100 {
            let (_, got) = data_anchor_sampling(&img, &[face], &mut rng);
            if let Some(b) = got.first() {
                sides.push(b.width());
            }
        }
        assert!(sides.len() > 90, "the face was lost in {} of 100 samples", 100 - sides.len());
        assert!(sides.iter().all(|&s| (7.9..=256.1).contains(&s)), "{sides:?}");
        assert!(sides.iter().any(|&s| s < 24.0) && sides.iter().any(|&s| s > 100.0), "no spread: {sides:?}");
    }

    #[test]
    fn ssd_crops_are_square_and_keep_a_whole_face() {
        let img = RgbImage::from_pixel(400, 300, image::Rgb([0, 0, 0]));
        let face = FaceBox { x1: 180.0, y1: 130.0, x2: 220.0, y2: 170.0, invalid: false };
        let mut rng = AugRng::new(3);
        for _ in 0..100 {
            let (out, got) = ssd_square_crop(&img, &[face], &mut rng);
            assert_eq!(out.width(), out.height());
            assert!(out.width() >= 90 && out.width() <= 300, "{}", out.width());
            assert_eq!(got.len(), 1);
            assert!((got[0].width() - 40.0).abs() < 1e-4, "the face was cut: {:?}", got[0]);
        }
    }
}
