//! Test-time detection as S3FD's `Detect`: softmax face scores above a threshold, decoded
//! boxes, greedy NMS over the top candidates, at most `keep` results.

use models::s3fd::boxes::{VARIANCES, decode, iou};

/// The detection settings.
#[derive(Clone, Copy, Debug)]
pub struct DetectConfig {
    /// Face probability a prior needs to be a candidate.
    pub conf_thresh: f32,
    /// NMS drops a box overlapping a kept one by more than this IoU.
    pub nms_iou: f32,
    /// Candidates entering NMS (highest scores first).
    pub top_k: usize,
    /// Detections kept after NMS.
    pub keep: usize,
}

impl DetectConfig {
    /// EdgeML's QVGA settings (score 0.05) or VGA ones (0.01); NMS IoU 0.3, 5000 -> 750.
    pub fn qvga() -> Self {
        Self { conf_thresh: 0.05, nms_iou: 0.3, top_k: 5000, keep: 750 }
    }

    /// EdgeML's VGA settings: as [`DetectConfig::qvga`] with score 0.01.
    pub fn vga() -> Self {
        Self { conf_thresh: 0.01, ..Self::qvga() }
    }
}

/// A box `(x1, y1, x2, y2)` (normalised or pixels, as given) with its score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// `(x1, y1, x2, y2)`.
    pub bbox: [f32; 4],
    /// Face probability.
    pub score: f32,
}

/// Greedy NMS: highest score first, dropping boxes overlapping a kept one by more than `iou`.
pub fn nms(mut dets: Vec<Detection>, iou_thresh: f32, top_k: usize, keep: usize) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    dets.truncate(top_k);
    let mut out: Vec<Detection> = Vec::new();
    for d in dets {
        if out.len() >= keep {
            break;
        }
        if out.iter().all(|k| iou(&k.bbox, &d.bbox) <= iou_thresh) {
            out.push(d);
        }
    }
    out
}

/// One image's detections from its raw outputs: `loc` `[p * 4]`, `conf` logits `[p * 2]`,
/// priors `(cx, cy, w, h)`.
pub fn detect(loc: &[f32], conf: &[f32], priors: &[[f32; 4]], cfg: DetectConfig) -> Vec<Detection> {
    let dets = priors
        .iter()
        .enumerate()
        .filter_map(|(p, prior)| {
            let (bg, face) = (conf[2 * p], conf[2 * p + 1]);
            let score = 1.0 / (1.0 + (bg - face).exp());
            (score > cfg.conf_thresh).then(|| {
                let l = [loc[4 * p], loc[4 * p + 1], loc[4 * p + 2], loc[4 * p + 3]];
                Detection { bbox: decode(&l, prior, VARIANCES), score }
            })
        })
        .collect();
    nms(dets, cfg.nms_iou, cfg.top_k, cfg.keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nms_drops_overlaps_above_the_threshold_only() {
        let d = |x: f32, s: f32| Detection { bbox: [x, 0.0, x + 1.0, 1.0], score: s };
        // IoU(0, 0.2) = 0.8/1.2 = 0.67: dropped; IoU(0, 0.6) = 0.4/1.6 = 0.25: kept.
        let out = nms(vec![d(0.2, 0.8), d(0.0, 0.9), d(0.6, 0.7), d(5.0, 0.1)], 0.3, 5000, 750);
        assert_eq!(out, vec![d(0.0, 0.9), d(0.6, 0.7), d(5.0, 0.1)]);
        assert_eq!(nms(vec![d(0.0, 0.9), d(5.0, 0.1)], 0.3, 1, 750).len(), 1);
        assert_eq!(nms(vec![d(0.0, 0.9), d(5.0, 0.1)], 0.3, 10, 1).len(), 1);
    }

    #[test]
    fn detect_thresholds_softmax_scores_and_decodes() {
        let priors = [[0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.2, 0.2]];
        let loc = [0.0; 8];
        let conf = [0.0, 3.0, 3.0, 0.0];
        let out = detect(&loc, &conf, &priors, DetectConfig::qvga());
        assert_eq!(out.len(), 1);
        assert!((out[0].score - 1.0 / (1.0 + (-3.0f32).exp())).abs() < 1e-6);
        assert!(out[0].bbox.iter().zip([0.4, 0.4, 0.6, 0.6]).all(|(a, b)| (a - b).abs() < 1e-6));
    }
}
