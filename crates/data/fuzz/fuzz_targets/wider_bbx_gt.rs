#![no_main]
//! Any text: `parse_bbx_gt_text` returns a list or an error, never panics, and every box it keeps is finite.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(list) = data::wider::parse_bbx_gt_text(std::path::Path::new("fuzz.txt"), text)
    {
        for a in &list.images {
            assert!(a.boxes.iter().all(|b| [b.x1, b.y1, b.x2, b.y2].iter().all(|v| v.is_finite())));
        }
    }
});
