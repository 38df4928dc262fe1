//! A face list's boxes as normalised ground truth for [`super::ap`], and WIDER FACE's Easy /
//! Medium / Hard AP from the official evaluation's .mat files.

use std::collections::HashMap;
use std::path::Path;

use data::face_dataset::FaceDataset;
use data::wider::FaceAnnotation;

use super::ap::{GroundTruth, PrCurve, pr_curve};
use super::detect::Detection;
use crate::error::ZooError;

/// Each image's faces as normalised ground truth (`invalid` faces ignored), in `ds`'s order.
pub fn ground_truths(ds: &FaceDataset) -> Vec<GroundTruth> {
    ds.images().iter().zip(ds.sizes()).map(|(a, &(w, h))| ground_truth(a, (w as f32, h as f32))).collect()
}

/// The precision-recall curve over the images of `ds` that were scored: `detections[i]` is
/// image `i`'s (normalised), or `None` where it was skipped as unreadable (left out with its
/// faces).
pub fn scored_pr(ds: &FaceDataset, detections: &[Option<Vec<Detection>>]) -> PrCurve {
    let images: Vec<(Vec<Detection>, GroundTruth)> = detections
        .iter()
        .zip(ground_truths(ds))
        .filter_map(|(dets, truth)| dets.as_ref().map(|d| (d.clone(), truth)))
        .collect();
    pr_curve(&images)
}

/// One image's faces normalised by its `(width, height)`, `invalid` faces ignored.
pub fn ground_truth(a: &FaceAnnotation, (w, h): (f32, f32)) -> GroundTruth {
    GroundTruth {
        boxes: a.boxes.iter().map(|f| [f.x1 / w, f.y1 / h, f.x2 / w, f.y2 / h]).collect(),
        keep: a.boxes.iter().map(|f| !f.invalid).collect(),
    }
}

/// Easy / Medium / Hard precision-recall curves of `detections` (normalised, one per image of `val`, `None` where it
/// was skipped) against the official ground truth in `dir`. Images the .mat lists but `val`
/// lacks or skipped count as undetected, as the official evaluation counts them.
pub fn settings_pr(
    dir: &Path,
    val: &FaceDataset,
    detections: &[Option<Vec<Detection>>],
) -> Result<[PrCurve; 3], ZooError> {
    let key = |p: &Path| {
        let event =
            p.parent().and_then(|d| d.file_name()).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let file = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        format!("{event}/{file}")
    };
    let mut by_image = HashMap::new();
    for ((a, dets), &(w, h)) in val.images().iter().zip(detections).zip(val.sizes()) {
        if let Some(dets) = dets {
            by_image.insert(key(&a.image), (dets, w as f32, h as f32));
        }
    }
    let mut out: [PrCurve; 3] = Default::default();
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
        out[k] = pr_curve(&images);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use data::face_dataset::FacePipeline;
    use data::wider::WiderFace;

    #[test]
    fn easy_medium_hard_ap_of_the_bundled_samples_ground_truth() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/wider_sample");
        let list = WiderFace::new(&root).split("val").unwrap();
        let val = FaceDataset::new(list, FacePipeline::QvgaTest, 0, &root, false).unwrap();
        let gt = root.join("eval_tools/ground_truth");
        // Every face detected exactly: AP 1 in every setting.
        let dets = |keep: &dyn Fn(&data::wider::FaceBox) -> bool| -> Vec<Option<Vec<Detection>>> {
            val.images()
                .iter()
                .zip(val.sizes())
                .map(|(a, &(w, h))| {
                    let (w, h) = (w as f32, h as f32);
                    let found = a.boxes.iter().filter(|b| keep(b));
                    Some(
                        found
                            .map(|b| Detection { bbox: [b.x1 / w, b.y1 / h, b.x2 / w, b.y2 / h], score: 0.9 })
                            .collect(),
                    )
                })
                .collect()
        };
        let settings_ap = |d: &[Option<Vec<Detection>>]| settings_pr(&gt, &val, d).unwrap().map(|c| c.ap());
        assert_eq!(settings_ap(&dets(&|_| true)), [1.0, 1.0, 1.0]);
        assert_eq!(scored_pr(&val, &dets(&|_| true)).ap(), 1.0);
        // Only the faces >= 50 px tall (the sample's Easy): Easy stays 1, Hard drops.
        let [easy, medium, hard] = settings_ap(&dets(&|b| b.height() >= 50.0));
        assert_eq!(easy, 1.0);
        assert!(medium < 1.0 && hard < medium, "{medium} {hard}");
        // A skipped image is left out of the scored AP but undetected in the official one.
        let mut skipped = dets(&|_| true);
        skipped[0] = None;
        assert_eq!(scored_pr(&val, &skipped).ap(), 1.0);
        assert!(settings_ap(&skipped)[2] < 1.0);
    }
}
