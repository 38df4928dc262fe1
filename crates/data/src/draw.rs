//! Boxes and labels on images, for the PNGs a person checks by eye (`preview`, `train detect`):
//! drawn with `imageproc`, labels in DejaVu Sans (bundled by the `dejavu` crate, so every
//! machine draws the same text).

use ab_glyph::{FontRef, PxScale};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;

/// The label font.
fn font() -> FontRef<'static> {
    // The bundled font is a valid TrueType file (the `dejavu` crate ships it and a test reads
    // it); an error would be a packaging bug caught by that test.
    match FontRef::try_from_slice(dejavu::sans::regular()) {
        Ok(font) => font,
        Err(e) => unreachable!("the bundled DejaVu Sans font is unreadable: {e}"),
    }
}

/// The outline of `(x1, y1, x2, y2)` (pixels, exclusive right/bottom edge), `thickness` wide;
/// parts outside the image are clipped.
pub fn draw_box(img: &mut RgbImage, b: [f32; 4], colour: Rgb<u8>, thickness: u32) {
    let [x1, y1, x2, y2] = b.map(|v| v.round() as i32);
    for t in 0..thickness as i32 {
        let (w, h) = (x2 - x1 - 2 * t, y2 - y1 - 2 * t);
        if w <= 0 || h <= 0 {
            break;
        }
        draw_hollow_rect_mut(img, Rect::at(x1 + t, y1 + t).of_size(w as u32, h as u32), colour);
    }
}

/// `text` in a filled `colour` tag whose bottom-left corner is at `(x, y)` (moved inside the
/// image where it would leave it), letters `height` pixels tall in black or white, whichever
/// reads better on `colour`.
pub fn draw_label(img: &mut RgbImage, x: f32, y: f32, text: &str, colour: Rgb<u8>, height: f32) {
    let font = font();
    let scale = PxScale::from(height);
    let (tw, th) = text_size(scale, &font, text);
    let pad = (height / 6.0).ceil() as u32;
    let (w, h) = (tw + 2 * pad, th + 2 * pad);
    let max_x = img.width().saturating_sub(w) as i32;
    let left = (x.round() as i32).clamp(0, max_x.max(0));
    let top = (y.round() as i32 - h as i32).clamp(0, img.height().saturating_sub(h) as i32);
    draw_filled_rect_mut(img, Rect::at(left, top).of_size(w, h), colour);
    let luma = 0.299 * colour[0] as f32 + 0.587 * colour[1] as f32 + 0.114 * colour[2] as f32;
    let ink = if luma > 140.0 { Rgb([0, 0, 0]) } else { Rgb([255, 255, 255]) };
    draw_text_mut(img, ink, left + pad as i32, top + pad as i32, scale, &font, text);
}

/// A box with its score as a label above it, sized for the image.
pub fn draw_detection(img: &mut RgbImage, b: [f32; 4], score: f32, colour: Rgb<u8>) {
    let short = img.width().min(img.height()) as f32;
    draw_box(img, b, colour, (short / 200.0).round().clamp(1.0, 6.0) as u32);
    draw_label(img, b[0], b[1], &format!("face {score:.2}"), colour, (short / 30.0).clamp(11.0, 48.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_land_where_asked_and_are_clipped() {
        let mut img = RgbImage::new(20, 12);
        let g = Rgb([0, 255, 0]);
        draw_box(&mut img, [2.0, 2.0, 8.0, 6.0], g, 1);
        assert_eq!(*img.get_pixel(2, 2), g);
        assert_eq!(*img.get_pixel(7, 5), g);
        assert_eq!(*img.get_pixel(4, 4), Rgb([0, 0, 0]), "the inside stays");
        // Off-image parts are clipped, not a panic.
        draw_box(&mut img, [-5.0, -5.0, 30.0, 30.0], g, 2);
        draw_box(&mut img, [5.0, 5.0, 5.0, 5.0], g, 3);
    }

    #[test]
    fn a_label_is_readable_text_on_a_tag() {
        let mut img = RgbImage::from_pixel(200, 100, Rgb([40, 40, 40]));
        draw_label(&mut img, 10.0, 60.0, "face 0.97", Rgb([0, 255, 0]), 20.0);
        let tag = img.pixels().filter(|p| p.0 == [0, 255, 0]).count();
        assert!(tag > 500, "tag pixels {tag}");
        // Glyph strokes in black inside the tag (the background outside is dark grey, not black).
        let black = img.pixels().filter(|p| p.0 == [0, 0, 0]).count();
        assert!(black > 40, "black glyph pixels {black}");
        // Near the right or top edge the tag moves inside the image.
        draw_label(&mut img, 195.0, 2.0, "face 0.50", Rgb([0, 255, 0]), 20.0);
        assert_eq!(img.get_pixel(199, 2).0, [0, 255, 0]);
    }
}
