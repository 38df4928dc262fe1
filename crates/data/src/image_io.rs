//! Decoding images from disk, with the path in every error. The format is read from the bytes,
//! not the file name (a PNG named `.jpg` is a PNG); sizes are checked from the header before
//! anything is allocated; and a JPEG cut short is an error, not a grey-padded picture: the image
//! crate's JPEG decoder pads missing data silently, so JPEGs go through zune-jpeg in strict mode,
//! which reports the end of data (the PNG decoder already does).

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, ImageReader, RgbImage};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use crate::DataError;

/// The largest image side accepted, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// The most pixels an image may have (about 400 MB as 8-bit RGBA).
pub const MAX_IMAGE_PIXELS: u64 = 100_000_000;

fn image_err(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Image { path: path.into(), message: message.into() }
}

/// The format of `bytes`, from its first bytes: JPEG or PNG, anything else an error.
fn sniff(path: &Path, bytes: &[u8]) -> Result<ImageFormat, DataError> {
    if bytes.is_empty() {
        return Err(image_err(path, "the file is empty (0 bytes)"));
    }
    match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png)) => Ok(f),
        Ok(other) => Err(image_err(path, format!("{other:?} images are not supported (JPEG or PNG only)"))),
        Err(_) => Err(image_err(path, "not a JPEG or PNG image (unknown leading bytes)")),
    }
}

/// An error unless `width x height` is within [`MAX_IMAGE_SIDE`] and [`MAX_IMAGE_PIXELS`].
fn check_size(path: &Path, (width, height): (u32, u32)) -> Result<(u32, u32), DataError> {
    if width == 0 || height == 0 {
        return Err(image_err(path, format!("the header says {width}x{height} pixels")));
    }
    if width.max(height) > MAX_IMAGE_SIDE || width as u64 * height as u64 > MAX_IMAGE_PIXELS {
        return Err(image_err(
            path,
            format!(
                "{width}x{height} pixels is too large (at most {MAX_IMAGE_SIDE} per side and \
                 {MAX_IMAGE_PIXELS} pixels)"
            ),
        ));
    }
    Ok((width, height))
}

fn header_size(path: &Path, bytes: &[u8], format: ImageFormat) -> Result<(u32, u32), DataError> {
    let reader = ImageReader::with_format(Cursor::new(bytes), format);
    let size = reader.into_dimensions().map_err(|e| image_err(path, e.to_string()))?;
    check_size(path, size)
}

/// `(width, height)` of the image at `path`, from its header (checked against the limits).
pub fn dimensions(path: &Path) -> Result<(u32, u32), DataError> {
    use std::io::Read;
    // JPEG headers can sit behind large EXIF blocks; 1 MiB covers them without reading photos whole.
    let mut head = Vec::new();
    let file = std::fs::File::open(path).map_err(DataError::io(path))?;
    file.take(1 << 20).read_to_end(&mut head).map_err(DataError::io(path))?;
    let format = sniff(path, &head)?;
    match header_size(path, &head, format) {
        Ok(size) => Ok(size),
        Err(_) if head.len() == 1 << 20 => {
            let bytes = std::fs::read(path).map_err(DataError::io(path))?;
            header_size(path, &bytes, format)
        }
        Err(e) => Err(e),
    }
}

/// Decodes `path` (JPEG or PNG, by content) to 8-bit RGB.
pub fn load_rgb(path: &Path) -> Result<RgbImage, DataError> {
    let bytes = std::fs::read(path).map_err(DataError::io(path))?;
    decode_rgb(path, &bytes)
}

/// Decodes `bytes` (read from `path`, which only names them in errors) to 8-bit RGB.
pub fn decode_rgb(path: &Path, bytes: &[u8]) -> Result<RgbImage, DataError> {
    let format = sniff(path, bytes)?;
    let (width, height) = header_size(path, bytes, format)?;
    if format == ImageFormat::Jpeg {
        return decode_jpeg_strict(path, bytes, width, height);
    }
    let img = image::load_from_memory_with_format(bytes, format).map_err(|e| image_err(path, e.to_string()))?;
    Ok(img.to_rgb8())
}

fn decode_jpeg_strict(path: &Path, bytes: &[u8], width: u32, height: u32) -> Result<RgbImage, DataError> {
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(MAX_IMAGE_SIDE as usize)
        .set_max_height(MAX_IMAGE_SIDE as usize)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let pixels = decoder.decode().map_err(|e| match e {
        zune_jpeg::errors::DecodeErrors::ExhaustedData => {
            image_err(path, "truncated JPEG (the data ends before the image does)")
        }
        other => image_err(path, format!("corrupt JPEG: {other:?}")),
    })?;
    RgbImage::from_raw(width, height, pixels)
        .ok_or_else(|| image_err(path, format!("the JPEG decoder gave a picture other than {width}x{height}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../datasets/wider_sample/WIDER_train/images/0--Sample/2007_007763.jpg")
    }

    fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("image-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn err(path: &Path) -> String {
        let e = load_rgb(path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        e
    }

    #[test]
    fn decodes_the_bundled_photos_and_names_bad_files() {
        let img = load_rgb(&photo()).unwrap();
        assert_eq!(img.dimensions(), (500, 375));
        assert_eq!(dimensions(&photo()).unwrap(), (500, 375));
        let e = err(&temp("bad.jpg", b"\xff\xd8\xff definitely not a jpeg"));
        assert!(e.contains("cannot decode"), "{e}");
        assert!(err(&temp("empty.jpg", b"")).contains("empty (0 bytes)"));
        assert!(err(&temp("text.jpg", b"hello, I am text\n")).contains("not a JPEG or PNG"));
        assert!(err(Path::new("/no/such.jpg")).contains("/no/such.jpg"));
    }

    #[test]
    fn cut_short_jpegs_and_pngs_are_errors() {
        let bytes = std::fs::read(photo()).unwrap();
        for cut in [1000, bytes.len() / 2, bytes.len() - 50] {
            let e = err(&temp(&format!("cut{cut}.jpg"), &bytes[..cut]));
            assert!(e.contains("truncated JPEG") || e.contains("corrupt JPEG"), "cut at {cut}: {e}");
        }
        // Only the end-of-image marker missing: every pixel is there.
        assert!(load_rgb(&temp("no_eoi.jpg", &bytes[..bytes.len() - 2])).is_ok());
        let mut png = Vec::new();
        load_rgb(&photo()).unwrap().write_to(&mut Cursor::new(&mut png), ImageFormat::Png).unwrap();
        for cut in [png.len() / 2, png.len() - 20] {
            let e = err(&temp(&format!("cut{cut}.png"), &png[..cut]));
            assert!(e.contains("end of file"), "{e}");
        }
    }

    /// PNG's chunk checksum (CRC-32, polynomial 0xEDB88320).
    fn crc32(bytes: &[u8]) -> u32 {
        !bytes.iter().fold(!0u32, |c, &b| {
            (0..8).fold(c ^ b as u32, |c, _| if c & 1 == 1 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 })
        })
    }

    #[test]
    fn the_format_comes_from_the_bytes_and_sizes_are_bounded() {
        let mut png = Vec::new();
        load_rgb(&photo()).unwrap().write_to(&mut Cursor::new(&mut png), ImageFormat::Png).unwrap();
        let named_jpg = temp("really_a_png.jpg", &png);
        assert_eq!(load_rgb(&named_jpg).unwrap().dimensions(), (500, 375));
        assert_eq!(dimensions(&named_jpg).unwrap(), (500, 375));
        // A valid PNG header claiming 100000 x 100000 pixels.
        let mut huge = png.clone();
        huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&huge[12..29]);
        huge[29..33].copy_from_slice(&crc.to_be_bytes());
        let e = err(&temp("huge.png", &huge));
        assert!(e.contains("100000x100000") && e.contains("too large"), "{e}");
    }
}
