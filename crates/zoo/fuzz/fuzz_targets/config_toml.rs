#![no_main]
//! Any text: `Config::parse` returns a config or an error naming the file, never panics; a
//! config it accepts passes its own validation again.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let path = std::path::Path::new("fuzz.toml");
    if let Ok(text) = std::str::from_utf8(bytes) {
        match zoo::Config::parse(path, text) {
            Ok(cfg) => assert!(cfg.validate(path).is_ok()),
            Err(e) => assert!(e.to_string().starts_with("fuzz.toml")),
        }
    }
});
