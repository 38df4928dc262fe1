//! Face detection data and evaluation for the trainer: the WIDER FACE / SCUT-HEAD lists, the
//! pipelines a model trains and evaluates with, the batch loss, and validation loss + AP.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::prelude::*;
use data::face_dataset::{FaceBatch, FaceBatcher, FaceDataset, FaceItem, FacePipeline};
use data::wider::{FaceList, WiderFace};
use models::FaceDetector;
use rayon::prelude::*;

use crate::config::{Config, DataSection};
use crate::detection::ap::{GroundTruth, average_precision};
use crate::detection::multibox::{MultiboxLoss, multibox_loss};
use crate::detection::nms::{DetectConfig, Detection, detect};
use crate::error::TrainError;
use crate::net::Net;
use crate::task::{Evaluation, StepLoss, Task, loader_pool};

/// The face list of `split` for `data.kind` wider or scut, cut to `data.limit`.
pub fn face_list(data: &DataSection, split: &str) -> Result<FaceList, TrainError> {
    let mut list = match data.kind.as_str() {
        "wider" => WiderFace::new(&data.root).split(split)?,
        "scut" => data::scut::split(&data.root, split)?,
        other => {
            return Err(TrainError::Unsupported {
                what: format!("data.kind `{other}` for a face model"),
                why: "face models train on wider or scut".into(),
            });
        }
    };
    if let Some(n) = data.limit {
        list.images.truncate(n);
    }
    Ok(list)
}

pub fn train_pipeline(qvga: bool, augment: bool) -> FacePipeline {
    match (qvga, augment) {
        (true, true) => FacePipeline::QvgaTrain,
        (true, false) => FacePipeline::QvgaEval,
        (false, true) => FacePipeline::VgaTrain,
        (false, false) => FacePipeline::VgaEval,
    }
}

pub fn eval_pipeline(qvga: bool) -> FacePipeline {
    if qvga { FacePipeline::QvgaEval } else { FacePipeline::VgaEval }
}

pub fn detect_config(cfg: &Config, qvga: bool) -> DetectConfig {
    let base = if qvga { DetectConfig::qvga() } else { DetectConfig::vga() };
    DetectConfig {
        conf_thresh: cfg.eval.conf_thresh.unwrap_or(base.conf_thresh),
        nms_iou: cfg.eval.nms_iou,
        top_k: cfg.eval.top_k,
        keep: cfg.eval.keep,
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

pub fn priors_host(priors: Tensor<2>) -> Vec<[f32; 4]> {
    let v: Vec<f32> = priors.into_data().iter::<f32>().collect();
    v.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
}

pub fn batch_loss(model: &FaceDetector, batch: FaceBatch) -> Result<MultiboxLoss, TrainError> {
    let out = model.forward(batch.images)?;
    let priors = priors_host(out.priors);
    Ok(multibox_loss(out.loc, out.conf, &priors, &batch.boxes))
}

/// Validation loss and AP over the whole of `ds` (evaluation pipeline), in batches.
pub struct FaceEval {
    pub loss: f64,
    pub ap: f64,
    pub detections: Vec<Vec<Detection>>,
}

pub fn evaluate(model: &FaceDetector, ds: &FaceDataset, batch: usize, cfg: DetectConfig, device: &Device) -> Result<FaceEval, TrainError> {
    let mut images = Vec::with_capacity(ds.len());
    let (mut loss_sum, mut batches) = (0.0, 0usize);
    let mut all = Vec::with_capacity(ds.len());
    for start in (0..ds.len()).step_by(batch.max(1)) {
        let idx: Vec<usize> = (start..(start + batch).min(ds.len())).collect();
        let b = load_batch(ds, &idx, device)?;
        let out = model.forward(b.images)?;
        let [n, p, _] = out.loc.dims();
        let priors = priors_host(out.priors.clone());
        let loss = multibox_loss(out.loc.clone(), out.conf.clone(), &priors, &b.boxes);
        loss_sum += loss.total().into_scalar::<f32>() as f64;
        batches += 1;
        let loc: Vec<f32> = out.loc.into_data().iter::<f32>().collect();
        let conf: Vec<f32> = out.conf.into_data().iter::<f32>().collect();
        for (k, &i) in idx.iter().enumerate().take(n) {
            let dets = detect(&loc[k * p * 4..(k + 1) * p * 4], &conf[k * p * 2..(k + 1) * p * 2], &priors, cfg);
            let a = &ds.images()[i];
            let (w, h) = image::image_dimensions(&a.image).map_err(|e| TrainError::Dataset(format!("{}: {e}", a.image.display())))?;
            let gt = GroundTruth {
                boxes: a.boxes.iter().map(|f| [f.x1 / w as f32, f.y1 / h as f32, f.x2 / w as f32, f.y2 / h as f32]).collect(),
                keep: a.boxes.iter().map(|f| !f.invalid).collect(),
            };
            all.push(dets.clone());
            images.push((dets, gt));
        }
    }
    Ok(FaceEval { loss: loss_sum / batches.max(1) as f64, ap: average_precision(&images), detections: all })
}

/// Face detection training on a WIDER FACE or SCUT-HEAD split.
pub struct FaceTask {
    pub train: FaceDataset,
    pub val: FaceDataset,
    pub detect: DetectConfig,
    pub eval_batch: usize,
    loaders: rayon::ThreadPool,
    device: Device,
}

impl FaceTask {
    pub fn new(cfg: &Config, qvga: bool, device: &Device) -> Result<Self, TrainError> {
        let make = |split: &str, pipeline| -> Result<FaceDataset, TrainError> {
            Ok(FaceDataset::new(face_list(&cfg.data, split)?, pipeline, cfg.train.seed, &cfg.data.root)?
                .with_skip_bad(cfg.data.skip_bad))
        };
        Ok(Self {
            train: make(&cfg.data.train_split, train_pipeline(qvga, cfg.data.augment))?,
            val: make(&cfg.data.val_split, eval_pipeline(qvga))?,
            detect: detect_config(cfg, qvga),
            eval_batch: cfg.train.batch_size,
            loaders: loader_pool(cfg.train.workers)?,
            device: device.clone(),
        })
    }
}

fn face_model(net: &Net) -> Result<&FaceDetector, TrainError> {
    match net {
        Net::Face(m) => Ok(m),
        _ => Err(TrainError::Unsupported { what: "a classifier on face data".into(), why: "use a face model".into() }),
    }
}

impl Task for FaceTask {
    fn len(&self) -> usize {
        self.train.len()
    }

    fn set_epoch(&self, epoch: u64) {
        self.train.set_epoch(epoch);
    }

    fn loss(&self, net: &Net, indices: &[usize]) -> Result<StepLoss, TrainError> {
        let batch = self.loaders.install(|| load_batch(&self.train, indices, &self.device))?;
        let loss = batch_loss(face_model(net)?, batch)?;
        Ok(StepLoss {
            loc: Some(loss.loc.clone().into_scalar::<f32>() as f64),
            conf: Some(loss.conf.clone().into_scalar::<f32>() as f64),
            total: loss.total(),
        })
    }

    fn evaluate(&self, net: &Net) -> Result<Evaluation, TrainError> {
        let r = evaluate(face_model(net)?, &self.val, self.eval_batch, self.detect, &self.device)?;
        Ok(Evaluation { loss: r.loss, ap: Some(r.ap), ..Default::default() })
    }
}
