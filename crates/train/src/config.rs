//! The TOML run configuration. Unknown keys are errors (serde's `deny_unknown_fields`, which
//! toml reports with the key, line and column). Every field is documented in configs/README.md.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub model: ModelSection,
    pub data: DataSection,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub eval: EvalSection,
    #[serde(default)]
    pub output: OutputSection,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// face_c | face_quant | face_qvga | face_m4 | mobilenetv2 | mobilenetv2_rnnpool | vww |
    /// densenet121_rnnpool | fashion_rnnpool | fashion_pool
    pub name: String,
    /// An EdgeML PyTorch checkpoint (.pth / .safetensors) to start from.
    #[serde(default)]
    pub init: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// wider | scut | imagenet | imagenet10 | vww | fashion_mnist
    pub kind: String,
    pub root: PathBuf,
    #[serde(default = "default_train_split")]
    pub train_split: String,
    #[serde(default = "default_val_split")]
    pub val_split: String,
    /// The original's training augmentation (false: the plain evaluation resize).
    #[serde(default = "yes")]
    pub augment: bool,
    /// Skip and count unreadable images instead of stopping.
    #[serde(default)]
    pub skip_bad: bool,
    /// Use only the first N training / validation samples (quick runs).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Classification input side (crop size); faces use their model's training side.
    #[serde(default)]
    pub image_size: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    pub epochs: usize,
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed before each optimizer step.
    pub accumulation: usize,
    /// sgd | adam
    pub optimizer: String,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub warmup_epochs: f64,
    pub seed: u64,
    /// Checkpoint every N optimizer steps (and at the end of every epoch).
    pub checkpoint_every: usize,
    /// flex | ndarray | wgpu
    pub backend: String,
    /// Data-parallel replicas: each micro-batch is split across this many devices of the
    /// backend (wgpu: GPUs 0..n; CPU backends: replicas on the one CPU, for testing), their
    /// gradients summed on the first.
    pub devices: usize,
    /// Worker threads decoding and augmenting images.
    pub workers: usize,
    /// RNNPool-Face-M4's hard-threshold sparsification of the RNN weights after every step.
    pub sparsify: bool,
    /// Evaluate every N epochs (and after the last).
    pub eval_every: usize,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: 300,
            batch_size: 32,
            accumulation: 1,
            optimizer: "sgd".into(),
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            warmup_epochs: 5.0,
            seed: 0,
            checkpoint_every: 500,
            backend: "flex".into(),
            devices: 1,
            workers: 2,
            sparsify: false,
            eval_every: 1,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// Face evaluation input: `test` (the original's: aspect kept, shrunk to a pixel budget of
    /// 320x240 for QVGA models, 1700x1200 for VGA ones, one image at a time) or `square` (the
    /// training square, batched).
    pub input: String,
    /// Faces: also the original's multi-scale + mirror test with box voting (slow).
    pub multiscale: bool,
    /// Face score threshold; `None`: the model's (0.05 QVGA, 0.01 VGA).
    pub conf_thresh: Option<f32>,
    pub nms_iou: f32,
    pub top_k: usize,
    pub keep: usize,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self { input: "test".into(), multiscale: false, conf_thresh: None, nms_iou: 0.3, top_k: 5000, keep: 750 }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    pub dir: PathBuf,
}

impl Default for OutputSection {
    fn default() -> Self {
        Self { dir: "runs/default".into() }
    }
}

fn default_train_split() -> String {
    "train".into()
}

fn default_val_split() -> String {
    "val".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {field}: {message}")]
    Invalid { path: PathBuf, field: &'static str, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let cfg: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |field, message: String| Err(ConfigError::Invalid { path: path.into(), field, message });
        let t = &self.train;
        if t.epochs == 0 {
            return bad("train.epochs", "must be at least 1".into());
        }
        if t.batch_size == 0 {
            return bad("train.batch_size", "must be at least 1".into());
        }
        if t.devices == 0 {
            return bad("train.devices", "must be at least 1".into());
        }
        if t.devices > t.batch_size {
            return bad("train.devices", format!("{} devices cannot share a batch of {}", t.devices, t.batch_size));
        }
        if t.accumulation == 0 {
            return bad("train.accumulation", "must be at least 1".into());
        }
        if t.checkpoint_every == 0 || t.eval_every == 0 {
            return bad("train.checkpoint_every / eval_every", "must be at least 1".into());
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return bad("train.lr", format!("{} is not a positive number", t.lr));
        }
        if !matches!(t.optimizer.as_str(), "sgd" | "adam") {
            return bad("train.optimizer", format!("`{}`: expected sgd or adam", t.optimizer));
        }
        if !matches!(t.backend.as_str(), "flex" | "ndarray" | "wgpu") {
            return bad("train.backend", format!("`{}`: expected flex, ndarray or wgpu", t.backend));
        }
        if !matches!(self.eval.input.as_str(), "test" | "square") {
            return bad("eval.input", format!("`{}`: expected test or square", self.eval.input));
        }
        if crate::net::ModelKind::parse(&self.model.name).is_none() {
            return bad("model.name", format!("unknown model `{}`; see configs/README.md", self.model.name));
        }
        if !matches!(self.data.kind.as_str(), "wider" | "scut" | "imagenet" | "imagenet10" | "vww" | "fashion_mnist") {
            return bad("data.kind", format!("`{}`: expected wider, scut, imagenet, imagenet10, vww or fashion_mnist", self.data.kind));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "[model]\nname = \"face_m4\"\n[data]\nkind = \"wider\"\nroot = \"datasets/wider_sample\"\n";

    #[test]
    fn defaults_fill_in_and_unknown_keys_are_named() {
        let c = Config::parse(Path::new("c.toml"), MIN).unwrap();
        assert_eq!(c.train.optimizer, "sgd");
        assert_eq!(c.data.val_split, "val");
        let e = Config::parse(Path::new("c.toml"), &format!("{MIN}bogus_key = 1\n")).unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("bogus_key"), "{e}");
        let e = Config::parse(Path::new("c.toml"), &format!("{MIN}[train]\nepochs = 2\nlearning_rate = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("learning_rate"), "{e}");
        let e = Config::parse(Path::new("c.toml"), &MIN.replace("face_m4", "face_z")).unwrap_err().to_string();
        assert!(e.contains("model.name") && e.contains("face_z"), "{e}");
    }

    #[test]
    fn every_shipped_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "toml") {
                Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 11, "only {n} configs");
    }
}
