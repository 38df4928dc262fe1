//! What the training tests share: the bundled sample and a small RNNPool-Face-M4 config,
//! Fashion-MNIST runs, weight comparisons. Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use train::Config;

pub mod weights;

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

/// `configs/<name>.toml`, a Fashion-MNIST config; `None` (and a note) when the Debian dataset
/// is not installed.
pub fn fashion_config(name: &str) -> Option<Config> {
    if !Path::new(data::fashion_mnist::DEBIAN_DIR).exists() {
        eprintln!("{} missing (apt-get install dataset-fashion-mnist): not run", data::fashion_mnist::DEBIAN_DIR);
        return None;
    }
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    Some(Config::load(&configs.join(format!("{name}.toml"))).unwrap())
}

/// Trains classifier `model` on 32 Fashion-MNIST images (`configs/fashion_mnist_avgpool.toml`)
/// for one epoch of SGD on `devices` (`batch` images a micro-batch, `accumulation` micro-batches
/// a step) and returns its config and end weights; `None` without the dataset.
fn train_fashion(
    model: &str,
    name: &str,
    devices: &[burn::prelude::Device],
    batch: usize,
    accumulation: usize,
) -> Option<(Config, weights::Named)> {
    let mut cfg = fashion_config("fashion_mnist_avgpool")?;
    cfg.model.name = model.parse().unwrap();
    cfg.output.dir = tmp(name);
    cfg.data.limit = Some(32);
    (cfg.train.batch_size, cfg.train.accumulation, cfg.train.devices) = (batch, accumulation, devices.len());
    (cfg.train.optimizer, cfg.train.lr, cfg.train.epochs) = (zoo::config::Optimizer::Sgd, 0.05, 1);
    let quiet = train::trainer::RunOptions { quiet: true, ..Default::default() };
    train::trainer::train_on(&cfg, &quiet, devices).unwrap();
    let w = weights::weights(&weights::load(&cfg, &cfg.output.dir));
    std::fs::remove_dir_all(&cfg.output.dir).ok();
    Some((cfg, w))
}

/// Trains `model` on Fashion-MNIST on the two `devices` (micro-batch `batch`, split between
/// them) and on the first alone (`batch / 2`, 2 micro-batches accumulated), and asserts that
/// the weights end within `tol` of their movement (see [`weights::compare`]).
pub fn two_devices_match_accumulation(
    model: &str,
    label: &str,
    devices: [burn::prelude::Device; 2],
    batch: usize,
    tol: f32,
) {
    let Some((cfg, two)) = train_fashion(model, &format!("{model}-2"), &devices, batch, 1) else { return };
    let (_, one) = train_fashion(model, &format!("{model}-1"), &devices[..1], batch / 2, 2).unwrap();
    #[allow(deprecated)]
    let start = weights::weights(&zoo::registry::build_model(&cfg, &burn::prelude::Device::ndarray()).unwrap());
    weights::compare(label, &two, &one, &start, tol);
}
