//! Decoding images from disk, with the path in every error.

use std::path::Path;

use image::RgbImage;

use crate::DataError;

/// Decodes `path` (JPEG or PNG) to 8-bit RGB.
pub fn load_rgb(path: &Path) -> Result<RgbImage, DataError> {
    let bytes = std::fs::read(path).map_err(DataError::io(path))?;
    let img =
        image::load_from_memory(&bytes).map_err(|e| DataError::Image { path: path.into(), message: e.to_string() })?;
    Ok(img.to_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_bundled_photos_and_names_bad_files() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../datasets/wider_sample/WIDER_train/images/0--Sample/2007_007763.jpg");
        let img = load_rgb(&p).unwrap();
        assert!(img.width() > 100 && img.height() > 100);
        let bad = std::env::temp_dir().join(format!("bad-{}.jpg", std::process::id()));
        std::fs::write(&bad, b"\xff\xd8 definitely not a jpeg").unwrap();
        let e = load_rgb(&bad).unwrap_err().to_string();
        assert!(e.contains(&bad.display().to_string()) && e.contains("decode"), "{e}");
        let e = load_rgb(Path::new("/no/such.jpg")).unwrap_err().to_string();
        assert!(e.contains("/no/such.jpg"), "{e}");
    }
}
