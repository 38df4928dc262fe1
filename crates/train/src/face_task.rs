//! Face detection data and evaluation for the trainer: the WIDER FACE / SCUT-HEAD lists, the
//! pipelines a model trains and evaluates with, the batch loss, and validation loss + AP.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::prelude::*;
use data::face_dataset::{FaceBatch, FaceBatcher, FaceDataset, FaceItem, FacePipeline};
use data::wider::{FaceAnnotation, FaceList, WiderFace};
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

/// The evaluation input `eval.input` names: `square` (the training square) or `test` (the
/// original's aspect-keeping shrink).
pub fn eval_pipeline(qvga: bool, input: &str) -> FacePipeline {
    match (qvga, input) {
        (true, "square") => FacePipeline::QvgaEval,
        (false, "square") => FacePipeline::VgaEval,
        (true, _) => FacePipeline::QvgaTest,
        (false, _) => FacePipeline::VgaTest,
    }
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

/// Validation loss and each image's detections (normalised) over the whole of `ds`.
pub struct FaceEval {
    pub loss: f64,
    pub detections: Vec<Vec<Detection>>,
}

pub fn evaluate(model: &FaceDetector, ds: &FaceDataset, batch: usize, cfg: DetectConfig, device: &Device) -> Result<FaceEval, TrainError> {
    // Test inputs differ in size: one at a time.
    let batch = if ds.pipeline().shape().is_none() { 1 } else { batch };
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
        for k in 0..n {
            all.push(detect(&loc[k * p * 4..(k + 1) * p * 4], &conf[k * p * 2..(k + 1) * p * 2], &priors, cfg));
        }
    }
    Ok(FaceEval { loss: loss_sum / batches.max(1) as f64, detections: all })
}

/// Face detection training on a WIDER FACE or SCUT-HEAD split.
pub struct FaceTask {
    /// Evaluate with the multi-scale + mirror test instead of the single input.
    pub multiscale: bool,
    pub qvga: bool,
    /// `eval_tools/ground_truth` of a WIDER FACE tree whose `val` split is evaluated.
    pub wider_gt: Option<std::path::PathBuf>,
    pub train: FaceDataset,
    pub val: FaceDataset,
    /// `(width, height)` of each validation image, read once.
    val_sizes: Vec<(f32, f32)>,
    val_truths: Vec<GroundTruth>,
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
        let gt = cfg.data.root.join("eval_tools/ground_truth");
        let official = cfg.data.kind == "wider" && cfg.data.val_split == "val" && gt.join("wider_face_val.mat").exists();
        let val = make(&cfg.data.val_split, eval_pipeline(qvga, &cfg.eval.input))?;
        let val_sizes = image_sizes(&val)?;
        Ok(Self {
            multiscale: cfg.eval.multiscale,
            qvga,
            wider_gt: official.then_some(gt),
            train: make(&cfg.data.train_split, train_pipeline(qvga, cfg.data.augment))?,
            val_truths: ground_truths(&val, &val_sizes),
            val_sizes,
            val,
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

    fn loss(&self, net: &Net, indices: &[usize], device: &Device) -> Result<StepLoss, TrainError> {
        let batch = self.loaders.install(|| load_batch(&self.train, indices, device))?;
        let loss = batch_loss(face_model(net)?, batch)?;
        Ok(StepLoss {
            loc: Some(loss.loc.clone().into_scalar::<f32>() as f64),
            conf: Some(loss.conf.clone().into_scalar::<f32>() as f64),
            total: loss.total(),
        })
    }

    fn evaluate(&self, net: &Net) -> Result<Evaluation, TrainError> {
        let model = face_model(net)?;
        let mut r = evaluate(model, &self.val, self.eval_batch, self.detect, &self.device)?;
        if self.multiscale {
            r.detections = multiscale_detections(model, &self.val, self.qvga, self.detect, &self.device)?;
        }
        let images: Vec<(Vec<Detection>, GroundTruth)> =
            r.detections.iter().cloned().zip(self.val_truths.iter().cloned()).collect();
        let ap_settings = match &self.wider_gt {
            Some(dir) => Some(settings_ap(dir, &self.val, &self.val_sizes, &r.detections)?),
            None => None,
        };
        Ok(Evaluation { loss: r.loss, ap: Some(average_precision(&images)), ap_settings, ..Default::default() })
    }
}

/// `(width, height)` of each image of `ds`, from the file headers.
pub fn image_sizes(ds: &FaceDataset) -> Result<Vec<(f32, f32)>, TrainError> {
    ds.images()
        .iter()
        .map(|a| {
            let (w, h) = image::image_dimensions(&a.image).map_err(|e| TrainError::Dataset(format!("{}: {e}", a.image.display())))?;
            Ok((w as f32, h as f32))
        })
        .collect()
}

/// Each image's faces as normalised ground truth (`invalid` faces ignored); `sizes` from
/// [`image_sizes`].
pub fn ground_truths(ds: &FaceDataset, sizes: &[(f32, f32)]) -> Vec<GroundTruth> {
    ds.images().iter().zip(sizes).map(|(a, &size)| ground_truth(a, size)).collect()
}

/// One image's faces normalised by its `(width, height)`, `invalid` faces ignored.
pub fn ground_truth(a: &FaceAnnotation, (w, h): (f32, f32)) -> GroundTruth {
    GroundTruth {
        boxes: a.boxes.iter().map(|f| [f.x1 / w, f.y1 / h, f.x2 / w, f.y2 / h]).collect(),
        keep: a.boxes.iter().map(|f| !f.invalid).collect(),
    }
}

/// The multi-scale + mirror test with box voting on every image of `ds`; boxes normalised.
pub fn multiscale_detections(
    model: &FaceDetector,
    ds: &FaceDataset,
    qvga: bool,
    cfg: DetectConfig,
    device: &Device,
) -> Result<Vec<Vec<Detection>>, TrainError> {
    use data::face_dataset::{QVGA_TEST_PIXELS, VGA_TEST_PIXELS};
    let budget = if qvga { QVGA_TEST_PIXELS } else { VGA_TEST_PIXELS };
    let mut out = Vec::with_capacity(ds.len());
    for a in ds.images() {
        let img = data::image_io::load_rgb(&a.image)?;
        let (w, h) = (img.width() as f32, img.height() as f32);
        let mut failure = None;
        let dets = crate::detection::multiscale::multiscale_detect((w * h) as f64, budget, cfg.keep, |scale, mirror| {
            match detect_scaled(model, &img, qvga, scale, mirror, cfg, device) {
                Ok(d) => d,
                Err(e) => {
                    failure.get_or_insert(e);
                    Vec::new()
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        out.push(dets.into_iter().map(|d| Detection { bbox: [d.bbox[0] / w, d.bbox[1] / h, d.bbox[2] / w, d.bbox[3] / h], ..d }).collect());
    }
    Ok(out)
}

/// The detections (normalised) of one input `[1, c, h, w]`.
pub fn detect_one(model: &FaceDetector, input: Tensor<4>, cfg: DetectConfig) -> Result<Vec<Detection>, TrainError> {
    let out = model.forward(input)?;
    let priors = priors_host(out.priors);
    let loc: Vec<f32> = out.loc.into_data().iter::<f32>().collect();
    let conf: Vec<f32> = out.conf.into_data().iter::<f32>().collect();
    Ok(detect(&loc, &conf, &priors, cfg))
}

/// Detections (pixels of `img`) of `img` resized by `scale`, mirrored first when asked.
fn detect_scaled(
    model: &FaceDetector,
    img: &image::RgbImage,
    qvga: bool,
    scale: f64,
    mirror: bool,
    cfg: DetectConfig,
    device: &Device,
) -> Result<Vec<Detection>, TrainError> {
    let (w, h) = (img.width(), img.height());
    let (sw, sh) = (((w as f64 * scale).round() as u32).max(8), ((h as f64 * scale).round() as u32).max(8));
    let mut x = image::imageops::resize(img, sw, sh, image::imageops::FilterType::Triangle);
    if mirror {
        x = image::imageops::flip_horizontal(&x);
    }
    let (pixels, c) = if qvga {
        (data::augment::face::normalize_gray(&x), 1)
    } else {
        (data::augment::face::normalize_rgb(&x), 3)
    };
    let input = Tensor::<4>::from_data(burn::tensor::TensorData::new(pixels, [1, c, sh as usize, sw as usize]), device);
    let (fw, fh) = (w as f32, h as f32);
    Ok(detect_one(model, input, cfg)?
        .into_iter()
        .map(|d| {
            let [x1, y1, x2, y2] = d.bbox;
            let (x1, x2) = if mirror { (1.0 - x2, 1.0 - x1) } else { (x1, x2) };
            Detection { bbox: [x1 * fw, y1 * fh, x2 * fw, y2 * fh], ..d }
        })
        .collect())
}

/// Easy / Medium / Hard AP of `detections` (normalised, one list per image of `val`) against the
/// official ground truth in `dir`. Images the .mat lists but `val` lacks count as undetected.
pub fn settings_ap(
    dir: &std::path::Path,
    val: &FaceDataset,
    sizes: &[(f32, f32)],
    detections: &[Vec<Detection>],
) -> Result<[f64; 3], TrainError> {
    let key = |p: &std::path::Path| {
        let event = p.parent().and_then(|d| d.file_name()).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let file = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        format!("{event}/{file}")
    };
    let mut by_image = std::collections::HashMap::new();
    for ((a, dets), &(w, h)) in val.images().iter().zip(detections).zip(sizes) {
        by_image.insert(key(&a.image), (dets, w, h));
    }
    let mut out = [0.0; 3];
    for (k, setting) in data::wider_eval::SETTINGS.iter().enumerate() {
        let images: Vec<(Vec<Detection>, GroundTruth)> = data::wider_eval::load(dir, setting)?
            .into_iter()
            .map(|img| {
                let (dets, w, h) = match by_image.get(&format!("{}/{}", img.event, img.file)) {
                    Some((d, w, h)) => ((*d).clone(), *w, *h),
                    None => (Vec::new(), 1.0, 1.0),
                };
                let boxes = img.boxes.iter().map(|b| [b[0] / w, b[1] / h, b[2] / w, b[3] / h]).collect();
                (dets, GroundTruth { boxes, keep: img.keep })
            })
            .collect();
        out[k] = average_precision(&images);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easy_medium_hard_ap_of_the_bundled_samples_ground_truth() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/wider_sample");
        let list = WiderFace::new(&root).split("val").unwrap();
        let val = FaceDataset::new(list, FacePipeline::QvgaTest, 0, &root).unwrap();
        let gt = root.join("eval_tools/ground_truth");
        // Every face detected exactly: AP 1 in every setting.
        let dets = |keep: &dyn Fn(&data::wider::FaceBox) -> bool| -> Vec<Vec<Detection>> {
            val.images()
                .iter()
                .map(|a| {
                    let (w, h) = image::image_dimensions(&a.image).unwrap();
                    let (w, h) = (w as f32, h as f32);
                    a.boxes
                        .iter()
                        .filter(|b| keep(b))
                        .map(|b| Detection { bbox: [b.x1 / w, b.y1 / h, b.x2 / w, b.y2 / h], score: 0.9 })
                        .collect()
                })
                .collect()
        };
        let sizes = image_sizes(&val).unwrap();
        assert_eq!(settings_ap(&gt, &val, &sizes, &dets(&|_| true)).unwrap(), [1.0, 1.0, 1.0]);
        // Only the faces >= 50 px tall (the sample's Easy): Easy stays 1, Hard drops.
        let [easy, medium, hard] = settings_ap(&gt, &val, &sizes, &dets(&|b| b.height() >= 50.0)).unwrap();
        assert_eq!(easy, 1.0);
        assert!(medium < 1.0 && hard < medium, "{medium} {hard}");
    }
}
