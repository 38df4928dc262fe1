//! Classification training: ImageNet / ImageNet-10 / Visual Wake Words photos or Fashion-MNIST,
//! cross-entropy, top-1 / top-5 accuracy.

use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataloader::Progress;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::tensor::{TensorData, TensorReadError};
use burn::train::metric::{
    AccuracyInput, AccuracyMetric, Metric, MetricMetadata, Numeric, NumericEntry, TopKAccuracyInput, TopKAccuracyMetric,
};
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
    fn item(&self, i: usize) -> Result<ClassItem, TrainError> {
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
            Self::Fashion(_) => self.item(i).map(Some),
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

/// The split `split` of the classification data `cfg` names, with training augmentation when
/// `train`.
pub fn split(cfg: &Config, split: &str, train: bool) -> Result<ClassData, TrainError> {
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

    /// The samples `indices` of `data`, decoded on the loader threads, batched on `device`.
    pub(crate) fn batch(&self, data: &ClassData, indices: &[usize], device: &Device) -> Result<ClassBatch, TrainError> {
        let items: Vec<ClassItem> =
            self.loaders.install(|| indices.par_iter().map(|&i| data.item(i)).collect::<Result<_, _>>())?;
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

/// Top-1 and top-5 accuracy (burn-train's metrics, in percent) and the confusion matrix over
/// the batches of an evaluation.
struct Scores {
    top1: AccuracyMetric,
    top5: TopKAccuracyMetric,
    confusion: Vec<Vec<u64>>,
}

impl Scores {
    fn new(classes: usize) -> Self {
        // With fewer than 5 classes, top-5 is every class.
        let top5 = TopKAccuracyMetric::new(classes.clamp(1, 5));
        Self { top1: AccuracyMetric::new(), top5, confusion: vec![vec![0; classes]; classes] }
    }

    fn add(&mut self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Result<(), TrainError> {
        let meta = MetricMetadata { progress: Progress::new(0, 0, None), iteration: None, lr: None };
        let read = |e: TensorReadError| TrainError::Dataset(format!("reading logits back: {e}"));
        self.top1.update(&AccuracyInput::new(logits.clone(), labels.clone()), &meta).map_err(read)?;
        self.top5.update(&TopKAccuracyInput::new(logits.clone(), labels.clone()), &meta).map_err(read)?;
        let predicted = logits.argmax(1).into_data().iter::<i64>().collect::<Vec<_>>();
        let truth = labels.into_data().iter::<i64>().collect::<Vec<_>>();
        let n = self.confusion.len();
        for (&t, &p) in truth.iter().zip(&predicted) {
            if (t as usize) < n && (p as usize) < n {
                self.confusion[t as usize][p as usize] += 1;
            }
        }
        Ok(())
    }

    /// Top-1 and top-5 as fractions.
    fn accuracy(&self) -> (f64, f64) {
        let share = |e: Option<NumericEntry>| e.map_or(0.0, |e| e.current() / 100.0);
        (share(self.top1.running_value()), share(self.top5.running_value()))
    }
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
        let (mut loss, mut skipped, mut scores) = (0.0f64, 0usize, None);
        for start in (0..n).step_by(self.eval_batch) {
            let idx: Vec<usize> = (start..(start + self.eval_batch).min(n)).collect();
            let (batch, left_out) = self.val_batch(&idx)?;
            skipped += left_out;
            let Some(b) = batch else { continue };
            let logits = net.classify(b.images)?;
            let ce = CrossEntropyLossConfig::new().init(&logits.device()).forward(logits.clone(), b.labels.clone());
            loss += ce.into_scalar::<f32>() as f64 * b.labels.dims()[0] as f64;
            scores.get_or_insert_with(|| Scores::new(logits.dims()[1])).add(logits, b.labels)?;
        }
        let scored = (n - skipped).max(1) as f64;
        let (top1, top5) = scores.as_ref().map_or((0.0, 0.0), Scores::accuracy);
        Ok(Evaluation {
            loss: loss / scored,
            top1: Some(top1),
            top5: Some(top5),
            skipped,
            confusion: scores.map(|s| s.confusion),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_count_top_k_and_the_confusion_matrix() {
        let device = Device::flex();
        // Labels ranked 1st, 3rd and 7th of 7.
        let logits = [
            9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, //
            1.0, 9.0, 8.0, 3.0, 4.0, 5.0, 6.0, //
            0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0f32,
        ];
        let logits = Tensor::<2>::from_data(TensorData::new(logits.to_vec(), [3, 7]), &device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 6, 0], [3]), &device);
        let mut scores = Scores::new(7);
        scores.add(logits, labels).unwrap();
        let (top1, top5) = scores.accuracy();
        assert!((top1 - 1.0 / 3.0).abs() < 1e-9 && (top5 - 2.0 / 3.0).abs() < 1e-9, "{top1} {top5}");
        assert_eq!(scores.confusion[0][0], 1);
        assert_eq!(scores.confusion[6][1], 1);
        assert_eq!(scores.confusion[0][6], 1);
        assert_eq!(scores.confusion.iter().flatten().sum::<u64>(), 3);
    }
}
