//! Drawing boxes and scores on images, for the PNGs a person checks by eye (`preview`,
//! `train detect`).

use image::{Rgb, RgbImage};

fn put(img: &mut RgbImage, x: i64, y: i64, colour: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, colour);
    }
}

/// The outline of `(x1, y1, x2, y2)` (pixels, exclusive right/bottom edge), `thickness` wide.
pub fn draw_box(img: &mut RgbImage, b: [f32; 4], colour: Rgb<u8>, thickness: i64) {
    let [x1, y1, x2, y2] = [b[0], b[1], b[2] - 1.0, b[3] - 1.0].map(|v| v.round() as i64);
    for t in 0..thickness {
        for x in x1..=x2 {
            put(img, x, y1 + t, colour);
            put(img, x, y2 - t, colour);
        }
        for y in y1..=y2 {
            put(img, x1 + t, y, colour);
            put(img, x2 - t, y, colour);
        }
    }
}

/// 3x5 glyphs of `0-9` and `.`, one row per 3 bits (top row first).
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        _ => return None,
    })
}

/// `text` (digits and `.`; other characters are skipped) with its top-left corner at `(x, y)`,
/// each glyph pixel drawn as a `scale x scale` square.
pub fn draw_number(img: &mut RgbImage, x: i64, y: i64, text: &str, colour: Rgb<u8>, scale: i64) {
    let mut cx = x;
    for g in text.chars().filter_map(glyph) {
        for (row, bits) in g.iter().enumerate() {
            for col in 0..3 {
                if bits & (0b100 >> col) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            put(img, cx + col * scale + dx, y + row as i64 * scale + dy, colour);
                        }
                    }
                }
            }
        }
        cx += 4 * scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_and_numbers_land_where_asked() {
        let mut img = RgbImage::new(20, 12);
        let g = Rgb([0, 255, 0]);
        draw_box(&mut img, [2.0, 2.0, 8.0, 6.0], g, 1);
        assert_eq!(*img.get_pixel(2, 2), g);
        assert_eq!(*img.get_pixel(7, 5), g);
        assert_eq!(*img.get_pixel(4, 4), Rgb([0, 0, 0]), "the inside stays");
        // Off-image parts are clipped, not a panic.
        draw_box(&mut img, [-5.0, -5.0, 30.0, 30.0], g, 2);
        let mut n = RgbImage::new(12, 5);
        draw_number(&mut n, 0, 0, "1.0", Rgb([255, 255, 255]), 1);
        let lit = n.pixels().filter(|p| p.0[0] == 255).count();
        assert_eq!(lit, 8 + 1 + 12);
    }
}
