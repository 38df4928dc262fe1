//! Geometric transforms of an image together with its boxes (pixels, `(x1, y1, x2, y2)`):
//! the pieces every augmentation policy of the original is built from. Each keeps the boxes
//! on the pixels they cover; the property test below checks that by moving painted masks.

use image::imageops::{self, FilterType};
use image::{ImageBuffer, Pixel, Rgb};

use crate::wider::FaceBox;

/// A crop rectangle in the source image's pixels; it may extend past the image, where the
/// result is filled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    /// Left edge (may be negative: outside the image).
    pub x: i64,
    /// Top edge (may be negative).
    pub y: i64,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// Crops `rect` out of `img` (filling outside pixels with `fill`), moves the boxes into the
/// crop, keeps those whose centre lies inside it (as SSD/S3FD sampling does) and clips them
/// to the crop.
pub fn crop<P: Pixel>(
    img: &ImageBuffer<P, Vec<P::Subpixel>>,
    boxes: &[FaceBox],
    rect: Rect,
    fill: P,
) -> (ImageBuffer<P, Vec<P::Subpixel>>, Vec<FaceBox>) {
    let mut out = ImageBuffer::from_pixel(rect.w, rect.h, fill);
    for y in 0..rect.h {
        let sy = rect.y + y as i64;
        if sy < 0 || sy >= img.height() as i64 {
            continue;
        }
        for x in 0..rect.w {
            let sx = rect.x + x as i64;
            if sx >= 0 && sx < img.width() as i64 {
                out.put_pixel(x, y, *img.get_pixel(sx as u32, sy as u32));
            }
        }
    }
    let (w, h) = (rect.w as f32, rect.h as f32);
    let kept = boxes
        .iter()
        .filter_map(|b| {
            let moved = FaceBox {
                x1: b.x1 - rect.x as f32,
                y1: b.y1 - rect.y as f32,
                x2: b.x2 - rect.x as f32,
                y2: b.y2 - rect.y as f32,
                invalid: b.invalid,
            };
            let (cx, cy) = ((moved.x1 + moved.x2) / 2.0, (moved.y1 + moved.y2) / 2.0);
            (cx > 0.0 && cy > 0.0 && cx < w && cy < h).then(|| FaceBox {
                x1: moved.x1.clamp(0.0, w),
                y1: moved.y1.clamp(0.0, h),
                x2: moved.x2.clamp(0.0, w),
                y2: moved.y2.clamp(0.0, h),
                ..moved
            })
        })
        .collect();
    (out, kept)
}

/// Resizes to `width x height` with `filter`; boxes scale with the axes.
pub fn resize<P: Pixel + 'static>(
    img: &ImageBuffer<P, Vec<P::Subpixel>>,
    boxes: &[FaceBox],
    width: u32,
    height: u32,
    filter: FilterType,
) -> (ImageBuffer<P, Vec<P::Subpixel>>, Vec<FaceBox>) {
    let (sx, sy) = (width as f32 / img.width() as f32, height as f32 / img.height() as f32);
    let boxes = boxes
        .iter()
        .map(|b| FaceBox { x1: b.x1 * sx, y1: b.y1 * sy, x2: b.x2 * sx, y2: b.y2 * sy, invalid: b.invalid })
        .collect();
    (imageops::resize(img, width, height, filter), boxes)
}

/// Mirrors left to right.
pub fn hflip<P: Pixel + 'static>(
    img: &ImageBuffer<P, Vec<P::Subpixel>>,
    boxes: &[FaceBox],
) -> (ImageBuffer<P, Vec<P::Subpixel>>, Vec<FaceBox>) {
    let w = img.width() as f32;
    let boxes = boxes.iter().map(|b| FaceBox { x1: w - b.x2, x2: w - b.x1, ..*b }).collect();
    (imageops::flip_horizontal(img), boxes)
}

/// Places the image at `(x, y)` on a `width x height` canvas of `fill` (S3FD's expansion and
/// QVGA padding).
pub fn pad<P: Pixel>(
    img: &ImageBuffer<P, Vec<P::Subpixel>>,
    boxes: &[FaceBox],
    width: u32,
    height: u32,
    x: u32,
    y: u32,
    fill: P,
) -> (ImageBuffer<P, Vec<P::Subpixel>>, Vec<FaceBox>) {
    crop(img, boxes, Rect { x: -(x as i64), y: -(y as i64), w: width, h: height }, fill)
}

/// The ImageNet mean colour as the original fills with it, RGB.
pub const MEAN_RGB: Rgb<u8> = Rgb([123, 117, 104]);

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma};

    use crate::augment::AugRng;

    /// Uniform integer in `lo..=hi`.
    fn range(rng: &mut AugRng, lo: u32, hi: u32) -> u32 {
        lo + rng.below((hi - lo + 1) as usize) as u32
    }

    /// Paints box `i` with label `i + 1` on a blank mask, boxes on a grid so they never overlap.
    fn scene(rng: &mut AugRng) -> (GrayImage, Vec<FaceBox>) {
        let (w, h) = (range(rng, 120, 260), range(rng, 100, 220));
        let mut mask = GrayImage::new(w, h);
        let mut boxes = Vec::new();
        for gy in 0..3u32 {
            for gx in 0..3u32 {
                let (cw, ch) = (w / 3, h / 3);
                let bw = range(rng, 8, cw - 4);
                let bh = range(rng, 8, ch - 4);
                let x0 = gx * cw + range(rng, 0, cw - bw - 1);
                let y0 = gy * ch + range(rng, 0, ch - bh - 1);
                let label = boxes.len() as u8 + 1;
                for y in y0..y0 + bh {
                    for x in x0..x0 + bw {
                        mask.put_pixel(x, y, Luma([label]));
                    }
                }
                boxes.push(FaceBox {
                    x1: x0 as f32,
                    y1: y0 as f32,
                    x2: (x0 + bw) as f32,
                    y2: (y0 + bh) as f32,
                    invalid: false,
                });
            }
        }
        (mask, boxes)
    }

    /// The bounding box of the pixels labelled `label`, as `(x1, y1, x2, y2)` (exclusive ends).
    fn painted(mask: &GrayImage, label: u8) -> Option<[f32; 4]> {
        let mut r: Option<[u32; 4]> = None;
        for (x, y, p) in mask.enumerate_pixels() {
            if p.0[0] == label {
                let b = r.get_or_insert([x, y, x + 1, y + 1]);
                *b = [b[0].min(x), b[1].min(y), b[2].max(x + 1), b[3].max(y + 1)];
            }
        }
        r.map(|b| b.map(|v| v as f32))
    }

    #[test]
    fn boxes_move_with_the_pixels_under_random_transforms() {
        let mut rng = AugRng::new(0x5eed);
        for case in 0..60 {
            let (mut mask, mut boxes) = scene(&mut rng);
            let mut slack = 0.0f32;
            for _ in 0..3 {
                let (w, h) = (mask.width(), mask.height());
                (mask, boxes) = match range(&mut rng, 0, 3) {
                    0 => {
                        let rect = Rect {
                            x: range(&mut rng, 0, w / 2) as i64 - (w / 8) as i64,
                            y: range(&mut rng, 0, h / 2) as i64 - (h / 8) as i64,
                            w: range(&mut rng, w / 2, w),
                            h: range(&mut rng, h / 2, h),
                        };
                        crop(&mask, &boxes, rect, Luma([0]))
                    }
                    1 => {
                        let (nw, nh) = (range(&mut rng, w / 2, w * 2), range(&mut rng, h / 2, h * 2));
                        // Nearest sampling can move an edge by up to one source pixel.
                        slack = slack * (nw as f32 / w as f32).max(nh as f32 / h as f32)
                            + 1.0
                            + (nw as f32 / w as f32).max(nh as f32 / h as f32);
                        resize(&mask, &boxes, nw, nh, FilterType::Nearest)
                    }
                    2 => hflip(&mask, &boxes),
                    _ => {
                        let (nw, nh) = (w + range(&mut rng, 0, 60), h + range(&mut rng, 0, 60));
                        pad(&mask, &boxes, nw, nh, range(&mut rng, 0, nw - w), range(&mut rng, 0, nh - h), Luma([0]))
                    }
                };
            }
            // Every box that survived must sit on one of the painted regions.
            assert!(boxes.len() <= 9);
            for b in &boxes {
                let best = (1..=9u8)
                    .filter_map(|l| painted(&mask, l))
                    .map(|p| {
                        (p[0] - b.x1).abs().max((p[1] - b.y1).abs()).max((p[2] - b.x2).abs()).max((p[3] - b.y2).abs())
                    })
                    .fold(f32::INFINITY, f32::min);
                assert!(
                    best <= slack + 1.0,
                    "case {case}: box {b:?} is {best} px from any painted region (slack {slack})"
                );
            }
        }
    }
}
