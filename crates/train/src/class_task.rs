//! Classification training: ImageNet / ImageNet-10 / Visual Wake Words photos or Fashion-MNIST,
//! cross-entropy, top-1 / top-5 accuracy.

use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::tensor::TensorData;
use data::augment::AugRng;
use data::augment::classification::{IMAGENET_SCALE, VWW_SCALE};
use data::class_dataset::{ClassBatch, ClassBatcher, ClassItem, ClassPipeline, FashionMnistDataset, ImageClassDataset};
use data::fashion_mnist::Mnist;
use data::imagenet::{ClassList, ImageNet};
use rayon::prelude::*;

use zoo::Net;
use zoo::config::{Config, DataKind, DataSection};

use crate::error::TrainError;
use crate::task::{Evaluation, StepLoss, Task, loader_pool};

/// One split of a classification data set.
pub enum ClassData {
    /// Photos (ImageNet, ImageNet-10, VWW).
    Images(ImageClassDataset),
    /// Fashion-MNIST.
    Fashion(FashionMnistDataset),
}

impl ClassData {
    fn get(&self, i: usize) -> Result<ClassItem, TrainError> {
        match self {
            Self::Images(d) => d.get(i),
            Self::Fashion(d) => d.get(i),
        }
        .map_err(|e| TrainError::Dataset(e.to_string()))
    }

    /// Samples.
    pub fn len(&self) -> usize {
        match self {
            Self::Images(d) => d.len(),
            Self::Fashion(d) => d.len(),
        }
    }

    /// No samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn set_epoch(&self, epoch: u64) {
        match self {
            Self::Images(d) => d.set_epoch(epoch),
            Self::Fashion(d) => d.set_epoch(epoch),
        }
    }

    /// Sample `i` exactly, or `None` where it cannot be read and bad images are skipped.
    fn load_exact(&self, i: usize) -> Result<Option<ClassItem>, TrainError> {
        match self {
            Self::Images(d) => match d.load(i) {
                Ok(item) => Ok(Some(item)),
                Err(_) if d.skip_bad() => Ok(None),
                Err(e) => Err(e.into()),
            },
            Self::Fashion(_) => self.get(i).map(Some),
        }
    }

    /// Samples skipped as unreadable so far.
    fn skipped(&self) -> usize {
        match self {
            Self::Images(d) => d.skipped(),
            Self::Fashion(_) => 0,
        }
    }

    /// What the sample order and content depend on, for [`crate::task::fingerprint`].
    fn fingerprint(&self) -> u64 {
        match self {
            Self::Images(d) => crate::task::fingerprint(
                d.items()
                    .iter()
                    .map(|(p, label)| format!("{} {label}", p.display()))
                    .chain([format!("{:?}", d.pipeline())]),
            ),
            Self::Fashion(d) => {
                let m = d.data();
                let shape = format!("{}x{} train {}", m.rows, m.cols, d.is_train());
                crate::task::fingerprint([shape.as_bytes(), &m.labels, &m.images])
            }
        }
    }
}

fn photo_list(data: &DataSection, split: &str) -> Result<ClassList, TrainError> {
    let mut list = match data.kind {
        DataKind::ImageNet => ImageNet::new(&data.root).split(split)?,
        DataKind::ImageNet10 => ImageNet::imagenet10(&data.root).split(split)?,
        DataKind::Vww => data::vww::split(&data.root, split)?,
        other => {
            return Err(zoo::ZooError::Unsupported {
                what: format!("data.kind `{other}` for a photo classifier"),
                why: "photo classifiers train on imagenet, imagenet10 or vww".into(),
            }
            .into());
        }
    };
    if let Some(n) = data.limit {
        list.items.truncate(n);
    }
    Ok(list)
}

fn split(cfg: &Config, split: &str, train: bool) -> Result<ClassData, TrainError> {
    let d = &cfg.data;
    if d.kind == DataKind::FashionMnist {
        let mut ds = FashionMnistDataset::new(Mnist::load(&d.root, split)?, train && d.augment, cfg.train.seed);
        if let Some(n) = d.limit {
            ds.truncate(n);
        }
        return Ok(ClassData::Fashion(ds));
    }
    let size = d.image_size.unwrap_or(224);
    let scale = if d.kind == DataKind::Vww { VWW_SCALE } else { IMAGENET_SCALE };
    let pipeline = if train && d.augment { ClassPipeline::Train { size, scale } } else { ClassPipeline::Eval { size } };
    let list = photo_list(d, split)?;
    Ok(ClassData::Images(ImageClassDataset::new(list, pipeline, cfg.train.seed, &d.root)?.with_skip_bad(d.skip_bad)))
}

/// Classification training: cross-entropy, top-1 and top-5 accuracy.
pub struct ClassTask {
    /// The training split.
    pub train: ClassData,
    /// The validation split.
    pub val: ClassData,
    /// Seed and epoch of the dropout masks.
    seed: u64,
    epoch: AtomicU64,
    eval_batch: usize,
    loaders: rayon::ThreadPool,
    device: Device,
}

impl ClassTask {
    /// The training and validation splits `cfg` names.
    pub fn new(cfg: &Config, device: &Device) -> Result<Self, TrainError> {
        Ok(Self {
            train: split(cfg, &cfg.data.train_split, true)?,
            val: split(cfg, &cfg.data.val_split, false)?,
            seed: cfg.train.seed,
            epoch: AtomicU64::new(0),
            eval_batch: cfg.train.batch_size.max(64),
            loaders: loader_pool(cfg.train.workers)?,
            device: device.clone(),
        })
    }

    fn batch(&self, data: &ClassData, indices: &[usize], device: &Device) -> Result<ClassBatch, TrainError> {
        let items: Vec<ClassItem> =
            self.loaders.install(|| indices.par_iter().map(|&i| data.get(i)).collect::<Result<_, _>>())?;
        Ok(ClassBatcher.batch(items, device))
    }

    /// The validation samples `indices` that can be read, batched (`None` when none can).
    fn val_batch(&self, indices: &[usize]) -> Result<(Option<ClassBatch>, usize), TrainError> {
        let loaded: Vec<Option<ClassItem>> =
            self.loaders.install(|| indices.par_iter().map(|&i| self.val.load_exact(i)).collect::<Result<_, _>>())?;
        let items: Vec<ClassItem> = loaded.into_iter().flatten().collect();
        let skipped = indices.len() - items.len();
        Ok(((!items.is_empty()).then(|| ClassBatcher.batch(items, &self.device)), skipped))
    }
}

/// Sets the dropout masks' random streams apart from the augmentation's of the same samples.
const DROPOUT_STREAM: u64 = 0xD50B_0A75_1EAF_0001;

/// The dropout mask `[indices, features]` of training samples `indices` in `epoch`: each
/// sample's row is drawn from its own stream of (seed, epoch, index), so that the mask does not
/// depend on how the batch is split over devices, on other runs in the process, or on where a
/// run was resumed. Kept features are 1 / (1 - prob), as in burn's and PyTorch's dropout.
fn dropout_mask(seed: u64, epoch: u64, indices: &[usize], prob: f64, features: usize, device: &Device) -> Tensor<2> {
    let scale = (1.0 / (1.0 - prob)) as f32;
    let mut keep = Vec::with_capacity(indices.len() * features);
    for &i in indices {
        let mut rng = AugRng::for_sample(seed ^ DROPOUT_STREAM, epoch, i as u64);
        keep.extend((0..features).map(|_| if rng.coin(prob) { 0.0 } else { scale }));
    }
    Tensor::from_data(TensorData::new(keep, [indices.len(), features]), device)
}

/// Top-1 and top-5 hits of `logits` `[n, classes]` against `labels`.
pub fn top_k_hits(logits: &[f32], classes: usize, labels: &[usize]) -> (usize, usize) {
    let (mut top1, mut top5) = (0, 0);
    for (row, &label) in logits.chunks_exact(classes).zip(labels) {
        let above = row.iter().filter(|&&v| v > row[label]).count();
        top1 += usize::from(above == 0);
        top5 += usize::from(above < 5);
    }
    (top1, top5)
}

impl Task for ClassTask {
    fn len(&self) -> usize {
        self.train.len()
    }

    fn set_epoch(&self, epoch: u64) {
        self.train.set_epoch(epoch);
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    fn skipped(&self) -> usize {
        self.train.skipped()
    }

    fn fingerprint(&self) -> u64 {
        self.train.fingerprint()
    }

    fn loss(&self, net: &Net, indices: &[usize], device: &Device) -> Result<StepLoss, TrainError> {
        let b = self.batch(&self.train, indices, device)?;
        let logits = match net.dropout() {
            Some((prob, features)) => {
                let epoch = self.epoch.load(Ordering::Relaxed);
                let keep = dropout_mask(self.seed, epoch, indices, prob, features, &b.images.device());
                net.classify_with_dropout_mask(b.images, keep)?
            }
            None => net.classify(b.images)?,
        };
        let total = CrossEntropyLossConfig::new().init(&logits.device()).forward(logits, b.labels);
        Ok(StepLoss { total, loc: None, conf: None })
    }

    /// Mean loss and top-k accuracy over the readable validation images; unreadable ones (with
    /// `skip_bad`) are left out and counted.
    fn evaluate(&self, net: &Net) -> Result<Evaluation, TrainError> {
        let n = self.val.len();
        let (mut loss, mut top1, mut top5, mut skipped) = (0.0f64, 0usize, 0usize, 0usize);
        for start in (0..n).step_by(self.eval_batch) {
            let idx: Vec<usize> = (start..(start + self.eval_batch).min(n)).collect();
            let (batch, left_out) = self.val_batch(&idx)?;
            skipped += left_out;
            let Some(b) = batch else { continue };
            let labels: Vec<usize> = b.labels.clone().into_data().iter::<i64>().map(|l| l as usize).collect();
            let logits = net.classify(b.images)?;
            let classes = logits.dims()[1];
            let ce = CrossEntropyLossConfig::new().init(&logits.device()).forward(logits.clone(), b.labels);
            loss += ce.into_scalar::<f32>() as f64 * labels.len() as f64;
            let host: Vec<f32> = logits.into_data().iter::<f32>().collect();
            let (h1, h5) = top_k_hits(&host, classes, &labels);
            (top1, top5) = (top1 + h1, top5 + h5);
        }
        let scored = (n - skipped).max(1) as f64;
        Ok(Evaluation {
            loss: loss / scored,
            top1: Some(top1 as f64 / scored),
            top5: Some(top5 as f64 / scored),
            skipped,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_counts_ranks() {
        // Label ranked 1st, 3rd, and 7th of 7.
        let logits = [
            9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, //
            1.0, 9.0, 8.0, 3.0, 4.0, 5.0, 6.0, //
            0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0,
        ];
        assert_eq!(top_k_hits(&logits, 7, &[0, 6, 0]), (1, 2));
    }
}
