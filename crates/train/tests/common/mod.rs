//! What the training tests share: the bundled sample and a small RNNPool-Face-M4 config.

use std::path::{Path, PathBuf};

use train::Config;

pub fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/wider_sample")
}

/// Plain resize, Adam 0.003, batch 4, a checkpoint every step, evaluation after the last epoch.
pub fn config(out: &Path, backend: &str, epochs: usize) -> Config {
    let text = format!(
        "[model]\nname = \"face_m4\"\n[data]\nkind = \"wider\"\nroot = \"{}\"\nval_split = \"train\"\naugment = false\n\
         [train]\nepochs = {epochs}\nbatch_size = 4\noptimizer = \"adam\"\nlr = 0.003\nweight_decay = 0.0\n\
         warmup_epochs = 5\nseed = 0\ncheckpoint_every = 1\nbackend = \"{backend}\"\neval_every = {epochs}\n[eval]\ninput = \"square\"\n\
         [output]\ndir = \"{}\"\n",
        sample().display(),
        out.display()
    );
    Config::parse(Path::new("test.toml"), &text).unwrap()
}

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}
