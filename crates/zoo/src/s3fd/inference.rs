//! Running a face detector on the images a config describes: the face lists of a split, the
//! evaluation pipelines, and detections of one input, of a photo at a scale, and of the
//! original's multi-scale + mirror test.

use burn::data::dataset::Dataset;
use burn::prelude::*;
use data::face_dataset::{FaceDataset, FacePipeline, QVGA_TEST_PIXELS, VGA_TEST_PIXELS};
use data::wider::{FaceList, WiderFace};
use models::FaceDetector;

use super::detect::{DetectConfig, Detection, detect};
use super::multiscale::multiscale_detect;
use crate::config::{DataKind, DataSection, EvalInput, EvalSection};
use crate::error::ZooError;

/// The face list of `split` for face data (`wider` or `scut`), cut to `data.limit`.
pub fn face_list(data: &DataSection, split: &str) -> Result<FaceList, ZooError> {
    let mut list = match data.kind {
        DataKind::Wider => WiderFace::new(&data.root).split(split)?,
        DataKind::Scut => data::scut::split(&data.root, split)?,
        other => {
            return Err(ZooError::Unsupported {
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

/// The evaluation pipeline of `input` for a QVGA (grey 320) or VGA (RGB 640) model.
pub fn eval_pipeline(qvga: bool, input: EvalInput) -> FacePipeline {
    match (qvga, input) {
        (true, EvalInput::Square) => FacePipeline::QvgaEval,
        (false, EvalInput::Square) => FacePipeline::VgaEval,
        (true, EvalInput::Test) => FacePipeline::QvgaTest,
        (false, EvalInput::Test) => FacePipeline::VgaTest,
    }
}

/// The detection settings of `[eval]` for a QVGA or VGA model.
pub fn detect_config(eval: &EvalSection, qvga: bool) -> DetectConfig {
    let base = if qvga { DetectConfig::qvga() } else { DetectConfig::vga() };
    DetectConfig {
        conf_thresh: eval.conf_thresh.unwrap_or(base.conf_thresh),
        nms_iou: eval.nms_iou,
        top_k: eval.top_k,
        keep: eval.keep,
    }
}

/// A detector's priors `[p, 4]` as host boxes `(cx, cy, w, h)`.
pub fn priors_host(priors: Tensor<2>) -> Vec<[f32; 4]> {
    let v: Vec<f32> = priors.into_data().iter::<f32>().collect();
    v.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
}

/// The detections (normalised) of one input.
///
/// # Shapes
/// - input `[1, channels, height, width]`
pub fn detect_one(model: &FaceDetector, input: Tensor<4>, cfg: DetectConfig) -> Result<Vec<Detection>, ZooError> {
    let out = model.forward(input)?;
    let priors = priors_host(out.priors);
    let loc: Vec<f32> = out.loc.into_data().iter::<f32>().collect();
    let conf: Vec<f32> = out.conf.into_data().iter::<f32>().collect();
    Ok(detect(&loc, &conf, &priors, cfg))
}

/// The original's multi-scale + mirror test with box voting on every image of `ds`; boxes
/// normalised; `None` for an image that cannot be decoded when `ds` skips bad images.
pub fn multiscale_detections(
    model: &FaceDetector,
    ds: &FaceDataset,
    qvga: bool,
    cfg: DetectConfig,
    device: &Device,
) -> Result<Vec<Option<Vec<Detection>>>, ZooError> {
    let budget = if qvga { QVGA_TEST_PIXELS } else { VGA_TEST_PIXELS };
    let mut out = Vec::with_capacity(ds.len());
    for a in ds.images() {
        let img = match data::image_io::load_rgb(&a.image) {
            Ok(img) => img,
            Err(_) if ds.skip_bad() => {
                out.push(None);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let (w, h) = (img.width() as f32, img.height() as f32);
        let mut failure = None;
        let dets = multiscale_detect((w * h) as f64, budget, cfg.keep, |scale, mirror| {
            detect_scaled(model, &img, qvga, scale, mirror, cfg, device).unwrap_or_else(|e| {
                failure.get_or_insert(e);
                Vec::new()
            })
        });
        if let Some(e) = failure {
            return Err(e);
        }
        out.push(Some(
            dets.into_iter()
                .map(|d| Detection { bbox: [d.bbox[0] / w, d.bbox[1] / h, d.bbox[2] / w, d.bbox[3] / h], ..d })
                .collect(),
        ));
    }
    Ok(out)
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
) -> Result<Vec<Detection>, ZooError> {
    let (w, h) = (img.width(), img.height());
    let (sw, sh) = (((w as f64 * scale).round() as u32).max(8), ((h as f64 * scale).round() as u32).max(8));
    let mut x = image::imageops::resize(img, sw, sh, image::imageops::FilterType::Triangle);
    if mirror {
        x = image::imageops::flip_horizontal(&x);
    }
    let (pixels, c) =
        if qvga { (data::augment::face::normalize_gray(&x), 1) } else { (data::augment::face::normalize_rgb(&x), 3) };
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
