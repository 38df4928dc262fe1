//! Reading annotation and list files as text.

use std::path::Path;

use crate::DataError;

/// The text of `path`, without a leading UTF-8 byte-order mark (which editors on Windows write and
/// which would otherwise become part of the first path or key).
pub fn read_text(path: &Path) -> Result<String, DataError> {
    let text = std::fs::read_to_string(path).map_err(DataError::io(path))?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_is_dropped() {
        let p = std::env::temp_dir().join(format!("bom-{}.txt", std::process::id()));
        std::fs::write(&p, "\u{feff}a/1.jpg\n").unwrap();
        assert_eq!(read_text(&p).unwrap(), "a/1.jpg\n");
        std::fs::write(&p, "a/\u{feff}1.jpg\n").unwrap();
        assert_eq!(read_text(&p).unwrap(), "a/\u{feff}1.jpg\n");
    }
}
