//! From a config's `[model]` and `[data]` to a network: which module a name builds, seeded
//! initialisation, and starting weights (EdgeML / torchvision files or one of our checkpoints).

use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use data::imagenet::ImageNet;
use models::{DenseNetConfig, FaceArch, MobileNetV2Config, SmallMobileNetConfig, StemPooling};
use rnnpool_core::StateDict;

use crate::checkpoint::Checkpoint;
use crate::config::{Config, DataKind, DataSection, ModelName};
use crate::error::ZooError;
use crate::net::Net;

/// The detector architecture of a face model's name.
pub fn face_arch(name: ModelName) -> Option<FaceArch> {
    Some(match name {
        ModelName::FaceC => FaceArch::C,
        ModelName::FaceQuant => FaceArch::Quant,
        ModelName::FaceQvga => FaceArch::QvgaMonochrome,
        ModelName::FaceM4 => FaceArch::M4,
        _ => return None,
    })
}

/// Classes and input channels of a classifier trained on `data` (face detectors fix their own).
pub fn classes_and_channels(data: &DataSection) -> Result<(usize, usize), ZooError> {
    Ok(match data.kind {
        DataKind::FashionMnist => (10, 1),
        DataKind::Vww => (2, 3),
        DataKind::ImageNet10 => (10, 3),
        DataKind::ImageNet => (ImageNet::new(&data.root).classes()?.len(), 3),
        DataKind::Wider | DataKind::Scut => (2, 3),
    })
}

/// The input `[channels, height, width]` a model of `cfg` is deployed at: 240x320 grey for the
/// QVGA face models, 480x640 colour for the VGA ones, the data's image size for classifiers.
pub fn deployed_input(cfg: &Config) -> Result<[usize; 3], ZooError> {
    let (_, channels) = classes_and_channels(&cfg.data)?;
    let name = cfg.model.name;
    Ok(match (name.is_face(), name.is_qvga()) {
        (true, true) => [1, 240, 320],
        (true, false) => [3, 480, 640],
        (false, _) => {
            let side = match cfg.data.kind {
                DataKind::FashionMnist => 28,
                _ => cfg.data.image_size.unwrap_or(224) as usize,
            };
            [channels, side, side]
        }
    })
}

/// A freshly initialised network `name` (burn's lazy initialisation, not yet drawn).
pub fn init(name: ModelName, classes: usize, channels: usize, device: &Device) -> Result<Net, ZooError> {
    let small = |pooling| {
        SmallMobileNetConfig::new().with_num_classes(classes).with_in_channels(channels).with_pooling(pooling)
    };
    let mobilenet = |config: MobileNetV2Config| config.with_in_channels(channels).init(device);
    Ok(match (face_arch(name), name) {
        (Some(arch), _) => Net::Face(arch.init(device)?),
        (None, ModelName::MobileNetV2) => {
            Net::MobileNetV2(mobilenet(MobileNetV2Config::new().with_num_classes(classes))?)
        }
        (None, ModelName::MobileNetV2RnnPool) => {
            Net::MobileNetV2(mobilenet(MobileNetV2Config::imagenet_rnnpool(classes))?)
        }
        (None, ModelName::Vww) => Net::MobileNetV2(MobileNetV2Config::vww().with_num_classes(classes).init(device)?),
        (None, ModelName::DenseNet121RnnPool) => Net::DenseNet(DenseNetConfig::rnnpool_121(classes).init(device)?),
        (None, ModelName::SmallRnnPool) => Net::Small(small(StemPooling::RnnPool { hidden: 8 }).init(device)?),
        (None, ModelName::SmallAvgPool) => Net::Small(small(StemPooling::Average).init(device)?),
        (None, face) => {
            return Err(ZooError::Unsupported { what: format!("model `{face}`"), why: "no architecture".into() });
        }
    })
}

/// burn's parameter init draws from the device's global generator: seeding and building hold
/// this lock so that models built at once in one process (tests, sweeps) each get their seed's
/// weights.
static SEEDED_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Draws every lazily initialised parameter now, in module order. burn's parameters are
/// initialised on first use; left lazy, the draws would happen outside [`SEEDED_INIT`] and in
/// whatever order the first forward pass (or the data-parallel `fork`s) touch them, so the
/// weights of a seed would depend on the device count and on other trainings in the process.
struct InitNow;

impl burn::module::ModuleVisitor for InitNow {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// The network of `cfg` on `device`, initialised from `train.seed`, with the weights of
/// `model.init` when given.
pub fn build_model(cfg: &Config, device: &Device) -> Result<Net, ZooError> {
    let (classes, channels) = classes_and_channels(&cfg.data)?;
    let net = {
        let _guard = SEEDED_INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        device.seed(cfg.train.seed);
        let net = init(cfg.model.name, classes, channels, device)?;
        net.visit(&mut InitNow);
        net
    };
    match &cfg.model.init {
        // One of our checkpoints (fine-tuning from a previous run): its weights only.
        Some(path) if path.extension().is_some_and(|e| e == "ckpt") => {
            let net = load_weights(&Checkpoint::load(path)?, path, cfg.model.name, net)?;
            tracing::info!(path = %path.display(), "started from a checkpoint's weights");
            Ok(net)
        }
        Some(path) => {
            let net = net.load_state(&StateDict::load(path)?)?;
            tracing::info!(path = %path.display(), "started from EdgeML weights");
            Ok(net)
        }
        None => Ok(net),
    }
}

/// `net` with the weights of `ckpt` (read from `path`), which must hold model `name`.
pub fn load_weights(ckpt: &Checkpoint, path: &Path, name: ModelName, net: Net) -> Result<Net, ZooError> {
    ckpt.expect_model(path, name)?;
    let record_err = |message: String| ZooError::Record { path: path.into(), message };
    let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(ckpt.model.clone()))
        .map_err(|e| record_err(format!("model record: {e}")))?;
    net.try_load_record(record).map_err(|e| record_err(format!("model does not fit: {e}")))
}

/// The network of `cfg` with the weights of the checkpoint at `path` (evaluation, export).
pub fn load_model(cfg: &Config, path: &Path, device: &Device) -> Result<Net, ZooError> {
    let net = build_model(cfg, device)?;
    load_weights(&Checkpoint::load(path)?, path, cfg.model.name, net)
}
