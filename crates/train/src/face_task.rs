//! Face detection training for the trainer: the WIDER FACE / SCUT-HEAD training split, the
//! batch loss, and validation loss + AP (detection itself is `zoo::s3fd`).

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::prelude::*;
use data::face_dataset::{FaceBatch, FaceBatcher, FaceDataset, FaceItem, FacePipeline};
use models::FaceDetector;
use rayon::prelude::*;
use zoo::config::{Config, DataKind};
use zoo::s3fd::ap::PrCurve;
use zoo::s3fd::detect::detect;
use zoo::s3fd::ground_truth::{scored_pr, settings_pr};
use zoo::s3fd::inference::{detect_config, eval_pipeline, face_list, multiscale_detections, priors_host};
use zoo::s3fd::{DetectConfig, Detection};

use crate::error::TrainError;
use crate::s3fd::multibox::{MultiboxLoss, multibox_loss};
use crate::task::{Evaluation, StepLoss, Task, loader_pool};
use zoo::Net;

/// The training pipeline of a QVGA (grey 320) or VGA (RGB 640) model: the original's
/// augmentation, or the plain evaluation resize.
pub fn train_pipeline(qvga: bool, augment: bool) -> FacePipeline {
    match (qvga, augment) {
        (true, true) => FacePipeline::QvgaTrain,
        (true, false) => FacePipeline::QvgaEval,
        (false, true) => FacePipeline::VgaTrain,
        (false, false) => FacePipeline::VgaEval,
    }
}

/// Samples `indices` in parallel (each seeded by its index, so the result does not depend on
/// the thread count) and stacks them.
pub fn load_batch(ds: &FaceDataset, indices: &[usize], device: &Device) -> Result<FaceBatch, TrainError> {
    let items: Vec<FaceItem> = indices
        .par_iter()
        .map(|&i| ds.get(i).map_err(|e| TrainError::Dataset(e.to_string())))
        .collect::<Result<_, _>>()?;
    Ok(FaceBatcher.batch(items, device))
}

/// The multibox loss of `model` on `batch`.
pub fn batch_loss(model: &FaceDetector, batch: FaceBatch) -> Result<MultiboxLoss, TrainError> {
    let out = model.forward(batch.images)?;
    let priors = priors_host(out.priors);
    Ok(multibox_loss(out.loc, out.conf, &priors, &batch.boxes))
}

/// Validation loss and each image's detections (normalised) over the whole of `ds`.
pub struct FaceEval {
    /// Mean loss per batch.
    pub loss: f64,
    /// Each image's detections, normalised; `None` where it was skipped as unreadable.
    pub detections: Vec<Option<Vec<Detection>>>,
    /// Images skipped as unreadable (with `skip_bad`).
    pub skipped: usize,
}

/// Samples `indices` exactly (no substitution): each one's item, or `None` where it cannot be
/// read and `ds` skips bad images.
fn load_exact(ds: &FaceDataset, indices: &[usize]) -> Result<Vec<Option<FaceItem>>, TrainError> {
    indices
        .par_iter()
        .map(|&i| match ds.load(i) {
            Ok(item) => Ok(Some(item)),
            Err(_) if ds.skip_bad() => Ok(None),
            Err(e) => Err(e.into()),
        })
        .collect()
}

/// Validation loss and detections of `model` over all of `ds`, `batch` images at a time.
pub fn evaluate(
    model: &FaceDetector,
    ds: &FaceDataset,
    batch: usize,
    cfg: DetectConfig,
    device: &Device,
) -> Result<FaceEval, TrainError> {
    // Test inputs differ in size: one at a time.
    let batch = if ds.pipeline().shape().is_none() { 1 } else { batch };
    let (mut loss_sum, mut batches) = (0.0, 0usize);
    let mut all: Vec<Option<Vec<Detection>>> = Vec::with_capacity(ds.len());
    for start in (0..ds.len()).step_by(batch.max(1)) {
        let idx: Vec<usize> = (start..(start + batch).min(ds.len())).collect();
        let loaded = load_exact(ds, &idx)?;
        let items: Vec<FaceItem> = loaded.iter().flatten().cloned().collect();
        let mut found = Vec::new();
        if !items.is_empty() {
            let b = FaceBatcher.batch(items, device);
            let out = model.forward(b.images)?;
            let [n, p, _] = out.loc.dims();
            let priors = priors_host(out.priors.clone());
            let loss = multibox_loss(out.loc.clone(), out.conf.clone(), &priors, &b.boxes);
            loss_sum += loss.total().into_scalar::<f32>() as f64;
            batches += 1;
            let loc: Vec<f32> = out.loc.into_data().iter::<f32>().collect();
            let conf: Vec<f32> = out.conf.into_data().iter::<f32>().collect();
            found = (0..n)
                .map(|k| detect(&loc[k * p * 4..(k + 1) * p * 4], &conf[k * p * 2..(k + 1) * p * 2], &priors, cfg))
                .collect();
        }
        let mut found = found.into_iter();
        all.extend(loaded.iter().map(|item| item.as_ref().and_then(|_| found.next())));
    }
    let skipped = all.iter().filter(|d| d.is_none()).count();
    Ok(FaceEval { loss: loss_sum / batches.max(1) as f64, detections: all, skipped })
}

/// Face detection training on a WIDER FACE or SCUT-HEAD split.
pub struct FaceTask {
    /// Evaluate with the multi-scale + mirror test instead of the single input.
    pub multiscale: bool,
    /// Grey 320 (QVGA) rather than RGB 640 (VGA) input.
    pub qvga: bool,
    /// `eval_tools/ground_truth` of a WIDER FACE tree whose `val` split is evaluated.
    pub wider_gt: Option<std::path::PathBuf>,
    /// The training split.
    pub train: FaceDataset,
    /// The validation split.
    pub val: FaceDataset,
    /// Detection settings of the evaluation.
    pub detect: DetectConfig,
    /// Images per evaluation batch (test inputs: one).
    pub eval_batch: usize,
    loaders: rayon::ThreadPool,
    device: Device,
}

impl FaceTask {
    /// The training and validation splits `cfg` names, for a QVGA or VGA model.
    pub fn new(cfg: &Config, qvga: bool, device: &Device) -> Result<Self, TrainError> {
        let make = |split: &str, pipeline| -> Result<FaceDataset, TrainError> {
            let ds = FaceDataset::new(
                face_list(&cfg.data, split)?,
                pipeline,
                cfg.train.seed,
                &cfg.data.root,
                cfg.data.skip_bad,
            )?;
            report_screening(split, &ds);
            Ok(ds)
        };
        let gt = cfg.data.root.join("eval_tools/ground_truth");
        let official =
            cfg.data.kind == DataKind::Wider && cfg.data.val_split == "val" && gt.join("wider_face_val.mat").exists();
        let val = make(&cfg.data.val_split, eval_pipeline(qvga, cfg.eval.input))?;
        Ok(Self {
            multiscale: cfg.eval.multiscale,
            qvga,
            wider_gt: official.then_some(gt),
            train: make(&cfg.data.train_split, train_pipeline(qvga, cfg.data.augment))?,
            val,
            detect: detect_config(&cfg.eval, qvga),
            eval_batch: cfg.train.batch_size,
            loaders: loader_pool(cfg.train.workers)?,
            device: device.clone(),
        })
    }
}

/// Logs what reading a split's headers found: images left out, boxes clipped.
fn report_screening(split: &str, ds: &FaceDataset) {
    let s = ds.screening();
    for e in &s.unreadable {
        tracing::warn!(split, "skipped (skip_bad): {e}");
    }
    if !s.unreadable.is_empty() {
        tracing::warn!(split, skipped = s.unreadable.len(), kept = ds.len(), "unreadable images left out of the split");
    }
    if s.clipped_boxes > 0 {
        tracing::warn!(split, boxes = s.clipped_boxes, "boxes reaching outside their image were clipped to it");
    }
}

impl Task for FaceTask {
    fn len(&self) -> usize {
        self.train.len()
    }

    fn set_epoch(&self, epoch: u64) {
        self.train.set_epoch(epoch);
    }

    fn skipped(&self) -> usize {
        self.train.skipped()
    }

    fn left_out(&self) -> usize {
        self.train.screening().unreadable.len()
    }

    fn fingerprint(&self) -> u64 {
        let images = self.train.images().iter().map(|a| format!("{}{:?}", a.image.display(), a.boxes));
        crate::task::fingerprint(images.chain([format!("{:?}", self.train.pipeline())]))
    }

    fn loss(&self, net: &Net, indices: &[usize], device: &Device) -> Result<StepLoss, TrainError> {
        let batch = self.loaders.install(|| load_batch(&self.train, indices, device))?;
        let loss = batch_loss(net.face()?, batch)?;
        Ok(StepLoss {
            loc: Some(loss.loc.clone().into_scalar::<f32>() as f64),
            conf: Some(loss.conf.clone().into_scalar::<f32>() as f64),
            total: loss.total(),
        })
    }

    fn evaluate(&self, net: &Net) -> Result<Evaluation, TrainError> {
        let model = net.face()?;
        let mut r = evaluate(model, &self.val, self.eval_batch, self.detect, &self.device)?;
        if self.multiscale {
            r.detections = multiscale_detections(model, &self.val, self.qvga, self.detect, &self.device)?;
        }
        let settings = match &self.wider_gt {
            Some(dir) => Some(settings_pr(dir, &self.val, &r.detections)?),
            None => None,
        };
        let skipped = r.detections.iter().filter(|d| d.is_none()).count() + self.val.screening().unreadable.len();
        let all = scored_pr(&self.val, &r.detections);
        let ap_settings = settings.as_ref().map(|s| s.each_ref().map(PrCurve::ap));
        let mut pr = vec![("all faces".to_string(), all.clone())];
        if let Some([easy, medium, hard]) = settings {
            pr.extend([("Easy".into(), easy), ("Medium".into(), medium), ("Hard".into(), hard)]);
        }
        Ok(Evaluation { loss: r.loss, ap: Some(all.ap()), ap_settings, skipped, pr, ..Default::default() })
    }
}
