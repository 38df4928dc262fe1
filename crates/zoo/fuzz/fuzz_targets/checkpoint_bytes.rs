#![no_main]
//! Any bytes: `Checkpoint::from_bytes` returns a checkpoint or an error naming the file, never
//! panics or allocates past the input; what it accepts answers its model name and step.

use libfuzzer_sys::fuzz_target;
use zoo::checkpoint::Checkpoint;

fuzz_target!(|bytes: &[u8]| {
    let path = std::path::Path::new("fuzz.ckpt");
    match Checkpoint::from_bytes(path, bytes) {
        Ok(c) => {
            assert!(c.model.len() + c.optimizer.len() <= bytes.len());
            let _ = (c.model_name(), c.step(), c.expect_model(path, zoo::config::ModelName::FaceM4));
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.ckpt")),
    }
});
