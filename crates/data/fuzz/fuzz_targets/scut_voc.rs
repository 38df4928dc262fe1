#![no_main]
//! Any text: `parse_voc` returns an annotation or an error, never panics, and keeps only
//! finite boxes of positive size.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok((a, _)) = data::scut::parse_voc(std::path::Path::new("fuzz.xml"), text)
    {
        assert!(a.boxes.iter().all(|b| b.x2 > b.x1 && b.y2 > b.y1 && b.x2.is_finite() && b.y2.is_finite()));
    }
});
