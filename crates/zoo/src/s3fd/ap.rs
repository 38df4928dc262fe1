//! WIDER FACE average precision as the official evaluation computes it (`eval_tools` /
//! WiderFace-Evaluation's `evaluation.py`): scores normalised over the whole set, per image a
//! greedy IoU >= 0.5 assignment in score order where a prediction on an ignored face is neither
//! right nor wrong, precision/recall at 1000 score thresholds, and VOC's area under the
//! interpolated curve.

use super::detect::Detection;
use models::s3fd::boxes::iou;

/// A detection matches a face at this IoU or more.
pub const IOU_THRESHOLD: f32 = 0.5;
/// Score thresholds of the precision-recall curve.
pub const THRESHOLDS: usize = 1000;

/// One image's ground truth: boxes and whether each counts (false: ignored, e.g. WIDER's
/// `invalid` faces or faces outside an Easy/Medium/Hard subset).
#[derive(Clone, Debug, Default)]
pub struct GroundTruth {
    /// Corner boxes, in the detections' units.
    pub boxes: Vec<[f32; 4]>,
    /// Per box: whether it counts.
    pub keep: Vec<bool>,
}

/// Per prediction (sorted by score, descending): faces recalled so far, and whether it is a
/// proposal that counts (false when it hit an ignored face).
fn image_eval(preds: &[Detection], gt: &GroundTruth) -> (Vec<usize>, Vec<bool>) {
    let mut recalled = vec![0i8; gt.boxes.len()];
    let mut pred_recall = Vec::with_capacity(preds.len());
    let mut proposal = vec![true; preds.len()];
    let mut count = 0;
    for (h, p) in preds.iter().enumerate() {
        let best = gt.boxes.iter().enumerate().map(|(g, b)| (g, iou(&p.bbox, b))).max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((g, o)) = best
            && o >= IOU_THRESHOLD
        {
            if !gt.keep[g] {
                recalled[g] = -1;
                proposal[h] = false;
            } else if recalled[g] == 0 {
                recalled[g] = 1;
                count += 1;
            }
        }
        pred_recall.push(count);
    }
    (pred_recall, proposal)
}

/// A precision-recall curve at [`THRESHOLDS`] score thresholds, highest threshold first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PrCurve {
    recall: Vec<f64>,
    precision: Vec<f64>,
}

impl PrCurve {
    /// A curve from its points (equal lengths; recall rising as the threshold falls).
    pub fn new(recall: Vec<f64>, precision: Vec<f64>) -> Self {
        Self { recall, precision }
    }

    /// VOC's area under the curve: the average precision.
    pub fn ap(&self) -> f64 {
        voc_ap(&self.recall, &self.precision)
    }

    /// `(recall, precision)` points, highest threshold first, without the thresholds at which
    /// nothing was detected yet.
    pub fn points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.recall.iter().zip(&self.precision).filter(|(r, p)| **r > 0.0 || **p > 0.0).map(|(&r, &p)| (r, p))
    }
}

/// AP over `images` of (predictions, ground truth). Predictions need not be sorted.
pub fn average_precision(images: &[(Vec<Detection>, GroundTruth)]) -> f64 {
    pr_curve(images).ap()
}

/// The precision-recall curve over `images` of (predictions, ground truth).
pub fn pr_curve(images: &[(Vec<Detection>, GroundTruth)]) -> PrCurve {
    let (lo, hi) = images
        .iter()
        .flat_map(|(p, _)| p.iter().map(|d| d.score))
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| (lo.min(s), hi.max(s)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut pr = vec![[0.0f64; 2]; THRESHOLDS];
    let mut faces = 0usize;
    for (preds, gt) in images {
        faces += gt.keep.iter().filter(|&&k| k).count();
        // The official evaluation skips an image without ground truth or predictions (its
        // faces still count).
        if gt.boxes.is_empty() || preds.is_empty() {
            continue;
        }
        let mut preds: Vec<Detection> = preds
            .iter()
            .map(|d| Detection { score: if hi > lo { (d.score - lo) / span } else { 1.0 }, ..*d })
            .collect();
        preds.sort_by(|a, b| b.score.total_cmp(&a.score));
        let (recall, proposal) = image_eval(&preds, gt);
        for (t, row) in pr.iter_mut().enumerate() {
            let thresh = 1.0 - (t + 1) as f32 / THRESHOLDS as f32;
            // The last prediction at or above the threshold (scores descend).
            if let Some(r) = preds.iter().rposition(|d| d.score >= thresh) {
                row[0] += proposal[..=r].iter().filter(|&&p| p).count() as f64;
                row[1] += recall[r] as f64;
            }
        }
    }
    if faces == 0 {
        return PrCurve::default();
    }
    let precision: Vec<f64> = pr.iter().map(|[p, r]| if *p > 0.0 { r / p } else { 0.0 }).collect();
    let recall: Vec<f64> = pr.iter().map(|[_, r]| r / faces as f64).collect();
    PrCurve { recall, precision }
}

/// VOC's AP: the precision envelope integrated over recall steps.
pub fn voc_ap(recall: &[f64], precision: &[f64]) -> f64 {
    let mut mrec = vec![0.0];
    mrec.extend_from_slice(recall);
    mrec.push(1.0);
    let mut mpre = vec![0.0];
    mpre.extend_from_slice(precision);
    mpre.push(0.0);
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    (0..mrec.len() - 1).filter(|&i| mrec[i + 1] != mrec[i]).map(|i| (mrec[i + 1] - mrec[i]) * mpre[i + 1]).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, score: f32) -> Detection {
        Detection { bbox: [x, 0.0, x + 10.0, 10.0], score }
    }

    fn gt(xs: &[f32]) -> GroundTruth {
        GroundTruth { boxes: xs.iter().map(|&x| [x, 0.0, x + 10.0, 10.0]).collect(), keep: vec![true; xs.len()] }
    }

    #[test]
    fn perfect_detections_score_one_and_misses_cut_recall() {
        let images = vec![(vec![det(0.0, 0.9), det(50.0, 0.8)], gt(&[0.0, 50.0]))];
        assert!((average_precision(&images) - 1.0).abs() < 1e-9);
        // One of two faces found, nothing wrong: AP 0.5.
        let images = vec![(vec![det(0.0, 0.9)], gt(&[0.0, 50.0]))];
        assert!((average_precision(&images) - 0.5).abs() < 1e-9);
        assert_eq!(average_precision(&[(vec![], gt(&[0.0]))]), 0.0);
    }

    #[test]
    fn a_confident_false_positive_halves_the_first_recall_step() {
        // Ranked: FP (1.0), TP (0.5 -> normalised 0), two faces, one found.
        // Precision at the TP is 1/2, recall 1/2: AP = 0.5 * 0.5 = 0.25.
        let images = vec![(vec![det(100.0, 1.0), det(0.0, 0.5)], gt(&[0.0, 50.0]))];
        assert!((average_precision(&images) - 0.25).abs() < 1e-9, "{}", average_precision(&images));
        // The same ranking across two images gives the same AP.
        let images = vec![(vec![det(100.0, 1.0)], gt(&[50.0])), (vec![det(0.0, 0.5)], gt(&[0.0]))];
        assert!((average_precision(&images) - 0.25).abs() < 1e-9);
    }

    #[test]
    fn detections_of_ignored_faces_neither_help_nor_hurt() {
        let mut g = gt(&[0.0, 50.0]);
        g.keep[1] = false;
        let images = vec![(vec![det(50.0, 0.9), det(0.0, 0.8)], g)];
        assert!((average_precision(&images) - 1.0).abs() < 1e-9);
        // A duplicate of a found face is a false positive.
        let images = vec![(vec![det(0.0, 0.9), det(0.5, 0.8)], gt(&[0.0, 50.0]))];
        assert!((average_precision(&images) - 0.5).abs() < 1e-9);
    }
}
