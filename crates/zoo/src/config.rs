//! The TOML run configuration, typed. Unknown keys are errors (serde's `deny_unknown_fields`,
//! which toml reports with the key, line and column), and so are unknown names of models, data
//! sets, backends, optimizers and evaluation inputs (the error lists the valid names). Every field
//! is documented in configs/README.md, whose lists of names a test keeps equal to these enums.

use std::path::{Path, PathBuf};

use rnnpool_core::BackendKind;
use rnnpool_core::named_enum;
use serde::{Deserialize, Serialize};

named_enum! {
    /// A model a config can train or export.
    pub enum ModelName ("model") {
        /// RNNPool-Face-C (RGB 640x640).
        FaceC => "face_c",
        /// RNNPool-Face-Quant (RGB 640x640).
        FaceQuant => "face_quant",
        /// RNNPool-Face-QVGA-monochrome (grey 320x320).
        FaceQvga => "face_qvga",
        /// RNNPool-Face-M4, the microcontroller model (grey 320x320).
        FaceM4 => "face_m4",
        /// MobileNetV2 (ImageNet).
        MobileNetV2 => "mobilenetv2",
        /// MobileNetV2-RNNPool (ImageNet, the paper's Table 10).
        MobileNetV2RnnPool => "mobilenetv2_rnnpool",
        /// MobileNetV2-0.35x-RNNPool for Visual Wake Words.
        Vww => "vww",
        /// DenseNet121-RNNPool.
        DenseNet121RnnPool => "densenet121_rnnpool",
        /// The small 28x28 classifier with RNNPool after its stem (the Fashion-MNIST demo).
        SmallRnnPool => "small_rnnpool",
        /// The same with average pooling instead of RNNPool.
        SmallAvgPool => "small_avgpool",
    }
}

named_enum! {
    /// A data set layout.
    pub enum DataKind ("data kind") {
        /// WIDER FACE (official layout or EdgeML's flat list).
        Wider => "wider",
        /// SCUT-HEAD part B (VOC XML).
        Scut => "scut",
        /// ImageNet-1K.
        ImageNet => "imagenet",
        /// The paper's ImageNet-10 subset.
        ImageNet10 => "imagenet10",
        /// Visual Wake Words (COCO 2014).
        Vww => "vww",
        /// Fashion-MNIST (IDX files).
        FashionMnist => "fashion_mnist",
    }
}

named_enum! {
    /// The optimizer.
    pub enum Optimizer ("optimizer") {
        /// SGD with PyTorch's undampened momentum.
        Sgd => "sgd",
        /// Adam.
        Adam => "adam",
    }
}

named_enum! {
    /// The input a face model is evaluated on.
    pub enum EvalInput ("evaluation input") {
        /// The original's: aspect kept, shrunk to a pixel budget (320x240 QVGA, 1700x1200 VGA).
        Test => "test",
        /// The training square, batched.
        Square => "square",
    }
}

impl ModelName {
    /// A face detector (S3FD heads) rather than a classifier.
    pub fn is_face(self) -> bool {
        matches!(self, Self::FaceC | Self::FaceQuant | Self::FaceQvga | Self::FaceM4)
    }

    /// A face detector on grey 320x320 (QVGA) rather than RGB 640x640 (VGA) input.
    pub fn is_qvga(self) -> bool {
        matches!(self, Self::FaceQvga | Self::FaceM4)
    }
}

impl DataKind {
    /// Face detection data (WIDER FACE, SCUT-HEAD) rather than classification.
    pub fn is_face(self) -> bool {
        matches!(self, Self::Wider | Self::Scut)
    }
}

/// A run: the model, its data, training, evaluation and where the outputs go.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[model]`
    pub model: ModelSection,
    /// `[data]`
    pub data: DataSection,
    /// `[train]`
    #[serde(default)]
    pub train: TrainSection,
    /// `[eval]`
    #[serde(default)]
    pub eval: EvalSection,
    /// `[output]`
    #[serde(default)]
    pub output: OutputSection,
}

/// `[model]`: which network, and the weights to start from.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// The network.
    pub name: ModelName,
    /// An EdgeML / torchvision checkpoint (`.pth`, `.safetensors`) or one of our `.ckpt`.
    #[serde(default)]
    pub init: Option<PathBuf>,
}

/// `[data]`: the data set and how it is read.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// The layout.
    pub kind: DataKind,
    /// The data set's folder.
    pub root: PathBuf,
    /// The split trained on.
    #[serde(default = "default_train_split")]
    pub train_split: String,
    /// The split evaluated on.
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

/// `[train]`: the optimization.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Passes over the training split.
    pub epochs: usize,
    /// Samples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed before each optimizer step.
    pub accumulation: usize,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Peak learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Linear warm-up length, in epochs (fractions allowed).
    pub warmup_epochs: f64,
    /// Seed of the model initialisation, the data order and the augmentation.
    pub seed: u64,
    /// Checkpoint every N optimizer steps (and at the end of every epoch).
    pub checkpoint_every: usize,
    /// The backend.
    pub backend: BackendKind,
    /// Data-parallel replicas: each micro-batch is split across this many devices of the
    /// backend (wgpu: GPUs 0..n; CPU backends: replicas on the one CPU, for testing).
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
            optimizer: Optimizer::Sgd,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            warmup_epochs: 5.0,
            seed: 0,
            checkpoint_every: 500,
            backend: BackendKind::Flex,
            devices: 1,
            workers: 2,
            sparsify: false,
            eval_every: 1,
        }
    }
}

/// `[eval]`: how validation runs.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// The face evaluation input.
    pub input: EvalInput,
    /// Faces: the original's multi-scale + mirror test with box voting instead (slow).
    pub multiscale: bool,
    /// Face score threshold; `None`: the model's (0.05 QVGA, 0.01 VGA).
    pub conf_thresh: Option<f32>,
    /// NMS IoU threshold.
    pub nms_iou: f32,
    /// Candidates entering NMS.
    pub top_k: usize,
    /// Detections kept after NMS.
    pub keep: usize,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self { input: EvalInput::Test, multiscale: false, conf_thresh: None, nms_iou: 0.3, top_k: 5000, keep: 750 }
    }
}

/// `[output]`: where checkpoints and metrics go.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// The run folder.
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

/// A config that cannot be read or is not valid; each names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, or not a config (toml's message names the key, line and column).
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// toml's message.
        message: String,
    },
    /// A value out of its range.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The field, as `section.key`.
        field: &'static str,
        /// What is wrong and what is valid.
        message: String,
    },
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(path, text.strip_prefix('\u{feff}').unwrap_or(&text))
    }

    /// Parses and validates `text`, read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let cfg: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks every value against its range.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |(field, message)| ConfigError::Invalid { path: path.into(), field, message };
        self.train.validate().map_err(invalid)?;
        self.eval.validate().map_err(invalid)?;
        self.data.validate().map_err(invalid)?;
        let face_data = self.data.kind.is_face();
        if self.model.name.is_face() != face_data {
            let what =
                if face_data { "face data needs a face model" } else { "classification data needs a classifier" };
            let message = format!("`{}` with data.kind `{}`: {what}", self.model.name, self.data.kind);
            return Err(invalid(("model.name", message)));
        }
        Ok(())
    }
}

/// A field out of its range: the field and a message with the value and the valid range.
type Invalid = (&'static str, String);

/// An error unless `ok`, naming `field`, its `value` and the `valid` range.
fn check(field: &'static str, ok: bool, value: impl std::fmt::Display, valid: &str) -> Result<(), Invalid> {
    if ok { Ok(()) } else { Err((field, format!("{value} is out of range (valid: {valid})"))) }
}

/// An error unless `lo <= value <= hi`.
fn within(field: &'static str, value: usize, lo: usize, hi: usize) -> Result<(), Invalid> {
    check(field, (lo..=hi).contains(&value), value, &format!("{lo} to {hi}"))
}

/// The largest epoch count, batch size, accumulation, candidate count accepted.
const MAX_COUNT: usize = 1_000_000;

impl TrainSection {
    fn validate(&self) -> Result<(), Invalid> {
        within("train.epochs", self.epochs, 1, MAX_COUNT)?;
        within("train.batch_size", self.batch_size, 1, 65_536)?;
        within("train.accumulation", self.accumulation, 1, 65_536)?;
        within("train.devices", self.devices, 1, 64)?;
        within("train.workers", self.workers, 1, 256)?;
        within("train.checkpoint_every", self.checkpoint_every, 1, usize::MAX)?;
        within("train.eval_every", self.eval_every, 1, usize::MAX)?;
        if self.devices > self.batch_size {
            let message = format!("{} devices cannot share a batch of {}", self.devices, self.batch_size);
            return Err(("train.devices", message));
        }
        check("train.lr", self.lr > 0.0 && self.lr <= 10.0, self.lr, "above 0, at most 10")?;
        check("train.momentum", (0.0..1.0).contains(&self.momentum), self.momentum, "0 to below 1")?;
        check("train.weight_decay", (0.0..=1.0).contains(&self.weight_decay), self.weight_decay, "0 to 1")?;
        let warmup_ok = (0.0..=MAX_COUNT as f64).contains(&self.warmup_epochs);
        check("train.warmup_epochs", warmup_ok, self.warmup_epochs, &format!("0 to {MAX_COUNT}"))
    }
}

impl EvalSection {
    fn validate(&self) -> Result<(), Invalid> {
        if let Some(t) = self.conf_thresh {
            check("eval.conf_thresh", (0.0..=1.0).contains(&t), t, "0 to 1")?;
        }
        check("eval.nms_iou", self.nms_iou > 0.0 && self.nms_iou <= 1.0, self.nms_iou, "above 0, at most 1")?;
        within("eval.top_k", self.top_k, 1, MAX_COUNT)?;
        within("eval.keep", self.keep, 1, self.top_k)
    }
}

impl DataSection {
    fn validate(&self) -> Result<(), Invalid> {
        if let Some(n) = self.limit {
            within("data.limit", n, 1, usize::MAX)?;
        }
        if let Some(side) = self.image_size {
            within("data.image_size", side as usize, 16, 4096)?;
        }
        check("data.train_split", !self.train_split.trim().is_empty(), "\"\"", "a split name")?;
        check("data.val_split", !self.val_split.trim().is_empty(), "\"\"", "a split name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "[model]\nname = \"face_m4\"\n[data]\nkind = \"wider\"\nroot = \"datasets/wider_sample\"\n";

    fn parse_err(text: &str) -> String {
        Config::parse(Path::new("c.toml"), text).unwrap_err().to_string()
    }

    #[test]
    fn defaults_fill_in_and_unknown_keys_are_named() {
        let c = Config::parse(Path::new("c.toml"), MIN).unwrap();
        assert_eq!(c.train.optimizer, Optimizer::Sgd);
        assert_eq!(c.data.val_split, "val");
        let e = parse_err(&format!("{MIN}bogus_key = 1\n"));
        assert!(e.contains("c.toml") && e.contains("bogus_key"), "{e}");
        let e = parse_err(&format!("{MIN}[train]\nepochs = 2\nlearning_rate = 3\n"));
        assert!(e.contains("learning_rate"), "{e}");
    }

    #[test]
    fn unknown_names_list_the_valid_ones_with_their_line() {
        let e = parse_err(&MIN.replace("face_m4", "face_m5"));
        assert!(e.contains("c.toml") && e.contains("line 2") && e.contains("unknown model \"face_m5\""), "{e}");
        assert!(e.contains(&ModelName::names()), "{e}");
        let e = parse_err(&format!("{MIN}[train]\nbackend = \"cuda\"\n"));
        assert!(e.contains("unknown backend \"cuda\"; expected one of flex, ndarray, wgpu"), "{e}");
        let e = parse_err(&format!("{MIN}[train]\noptimizer = \"rmsprop\"\n"));
        assert!(e.contains("expected one of sgd, adam"), "{e}");
        let e = parse_err(&format!("{MIN}[eval]\ninput = \"tiles\"\n"));
        assert!(e.contains("expected one of test, square"), "{e}");
        let e = parse_err(&MIN.replace("wider", "coco"));
        assert!(e.contains("expected one of wider, scut"), "{e}");
        let e = parse_err(&MIN.replace("face_m4", "vww"));
        assert!(e.contains("model.name") && e.contains("face data needs a face model"), "{e}");
    }

    #[test]
    fn values_out_of_range_name_the_field_value_and_range() {
        let cases = [
            ("[train]\nlr = 1e30\n", "train.lr: 1000000000000000000000000000000 is out of range (valid: above 0"),
            ("[train]\nlr = -1\n", "train.lr: -1 is out of range"),
            ("[train]\nlr = nan\n", "train.lr: NaN"),
            ("[train]\nweight_decay = -1\n", "train.weight_decay: -1 is out of range (valid: 0 to 1)"),
            ("[train]\nmomentum = -0.5\n", "train.momentum: -0.5 is out of range (valid: 0 to below 1)"),
            ("[train]\nwarmup_epochs = -3\n", "train.warmup_epochs: -3 is out of range (valid: 0 to 1000000)"),
            ("[train]\nwarmup_epochs = nan\n", "train.warmup_epochs: NaN"),
            ("[train]\nepochs = 0\n", "train.epochs: 0 is out of range (valid: 1 to 1000000)"),
            ("[train]\nworkers = 0\n", "train.workers: 0"),
            ("[eval]\nconf_thresh = 5\n", "eval.conf_thresh: 5 is out of range (valid: 0 to 1)"),
            ("[eval]\nnms_iou = -1\n", "eval.nms_iou: -1"),
            ("[eval]\nkeep = 0\n", "eval.keep: 0 is out of range (valid: 1 to 5000)"),
            ("[eval]\ntop_k = 0\n", "eval.top_k: 0"),
            ("[eval]\ntop_k = 10\nkeep = 20\n", "eval.keep: 20 is out of range (valid: 1 to 10)"),
        ];
        for (extra, want) in cases {
            let e = parse_err(&format!("{MIN}{extra}"));
            assert!(e.starts_with("c.toml: ") && e.contains(want), "{extra}: {e}");
        }
        let e = parse_err(&MIN.replace("root = ", "limit = 0\nroot = "));
        assert!(e.contains("data.limit: 0"), "{e}");
        let bom = format!("\u{feff}{MIN}");
        let p = std::env::temp_dir().join(format!("bom-{}.toml", std::process::id()));
        std::fs::write(&p, bom).unwrap();
        assert!(Config::load(&p).is_ok());
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

    /// configs/README.md lists exactly the names each enum accepts, on its field's line
    /// (`- `field` ..., one of: `a`, `b`, ...`).
    #[test]
    fn the_configs_readme_lists_every_name() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/README.md")).unwrap();
        let listed = |field: &str| -> Vec<String> {
            let line = readme
                .lines()
                .find(|l| l.starts_with(&format!("- `{field}`")) && l.contains("one of:"))
                .unwrap_or_else(|| panic!("configs/README.md: no line `- `{field}` ... one of: ...`"));
            let list = line.split_once("one of:").map_or("", |(_, rest)| rest);
            list.split('`').skip(1).step_by(2).map(str::to_string).collect()
        };
        let names = |all: Vec<&str>| all.into_iter().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(listed("name"), names(ModelName::ALL.iter().map(|v| v.name()).collect()));
        assert_eq!(listed("kind"), names(DataKind::ALL.iter().map(|v| v.name()).collect()));
        assert_eq!(listed("backend"), names(BackendKind::ALL.iter().map(|v| v.name()).collect()));
        assert_eq!(listed("optimizer"), names(Optimizer::ALL.iter().map(|v| v.name()).collect()));
        assert_eq!(listed("input"), names(EvalInput::ALL.iter().map(|v| v.name()).collect()));
    }
}
