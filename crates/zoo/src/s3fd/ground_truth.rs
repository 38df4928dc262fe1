//! A face list's boxes as normalised ground truth for [`super::ap`], and WIDER FACE's Easy /
//! Medium / Hard AP from the official evaluation's .mat files.

use std::collections::HashMap;
use std::path::Path;

use data::face_dataset::FaceDataset;
use data::wider::FaceAnnotation;

use super::ap::{GroundTruth, average_precision};
use super::detect::Detection;
use crate::error::ZooError;

/// `(width, height)` of each image of `ds`, from the file headers.
pub fn image_sizes(ds: &FaceDataset) -> Result<Vec<(f32, f32)>, ZooError> {
    ds.images()
        .iter()
        .map(|a| {
            let (w, h) = image::image_dimensions(&a.image)
                .map_err(|e| data::DataError::Image { path: a.image.clone(), message: e.to_string() })?;
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

/// Easy / Medium / Hard AP of `detections` (normalised, one list per image of `val`) against the
/// official ground truth in `dir`. Images the .mat lists but `val` lacks count as undetected.
pub fn settings_ap(
    dir: &Path,
    val: &FaceDataset,
    sizes: &[(f32, f32)],
    detections: &[Vec<Detection>],
) -> Result<[f64; 3], ZooError> {
    let key = |p: &Path| {
        let event =
            p.parent().and_then(|d| d.file_name()).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let file = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        format!("{event}/{file}")
    };
    let mut by_image = HashMap::new();
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
    use data::face_dataset::FacePipeline;
    use data::wider::WiderFace;

    #[test]
    fn easy_medium_hard_ap_of_the_bundled_samples_ground_truth() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/wider_sample");
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
