//! S3FD's matching of ground-truth faces to priors with scale compensation (EdgeML
//! `layers/box_utils.py::match`): each prior takes its best face, each face's best prior is
//! forced onto it, priors under IoU 0.35 are background, then the faces' share of extra priors
//! with IoU in (0.1, 0.35) is switched to face, best first.

use models::s3fd::boxes::{VARIANCES, corners, encode, iou};

/// The matcher's settings: candidates above IoU `low`, positives at `mid`, well-matched faces
/// at `high`; regression targets encoded with `variances`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatchConfig {
    /// Candidates for scale compensation have IoU above this.
    pub low: f32,
    /// Positives have IoU at least this.
    pub mid: f32,
    /// Well-matched faces have IoU at least this.
    pub high: f32,
    /// Centre and size variances of the box coding.
    pub variances: [f32; 2],
}

impl Default for MatchConfig {
    /// S3FD's (EdgeML's `config_qvga.py` and `config.py`).
    fn default() -> Self {
        Self { low: 0.1, mid: 0.35, high: 0.5, variances: VARIANCES }
    }
}

/// Per prior: whether it is a face, and its regression target (SSD-encoded).
#[derive(Clone, Debug, PartialEq)]
pub struct Matches {
    /// Per prior: a face.
    pub positive: Vec<bool>,
    /// Per prior: the encoded offsets of its face.
    pub targets: Vec<[f32; 4]>,
}

impl Matches {
    /// Positive priors.
    pub fn num_positive(&self) -> usize {
        self.positive.iter().filter(|&&p| p).count()
    }
}

/// `truths` are corner boxes, `priors` `(cx, cy, w, h)`, both normalised.
pub fn match_priors(truths: &[[f32; 4]], priors: &[[f32; 4]], th: MatchConfig) -> Matches {
    let np = priors.len();
    if truths.is_empty() {
        return Matches { positive: vec![false; np], targets: vec![[0.0; 4]; np] };
    }
    let prior_boxes: Vec<[f32; 4]> = priors.iter().map(corners).collect();
    let mut best_truth = vec![0usize; np];
    let mut best_truth_overlap = vec![-1.0f32; np];
    let mut best_prior = vec![0usize; truths.len()];
    let mut best_prior_overlap = vec![-1.0f32; truths.len()];
    for (g, t) in truths.iter().enumerate() {
        for (p, b) in prior_boxes.iter().enumerate() {
            let o = iou(t, b);
            // First maximum wins, as torch's max does.
            if o > best_truth_overlap[p] {
                best_truth_overlap[p] = o;
                best_truth[p] = g;
            }
            if o > best_prior_overlap[g] {
                best_prior_overlap[g] = o;
                best_prior[g] = p;
            }
        }
    }
    for (g, &p) in best_prior.iter().enumerate() {
        best_truth_overlap[p] = 2.0;
        best_truth[p] = g;
    }
    let mut positive: Vec<bool> = best_truth_overlap.iter().map(|&o| o >= th.mid).collect();
    let n = (best_prior_overlap.iter().filter(|&&o| o >= th.mid).count()
        + best_prior_overlap.iter().filter(|&&o| o >= th.high).count())
        / 2;
    if n > 0 {
        let mut candidates: Vec<usize> =
            (0..np).filter(|&p| best_truth_overlap[p] > th.low && best_truth_overlap[p] < th.mid).collect();
        // Descending IoU; stable so ties keep prior order.
        candidates.sort_by(|&a, &b| best_truth_overlap[b].total_cmp(&best_truth_overlap[a]));
        for &p in candidates.iter().take(n) {
            positive[p] = true;
        }
    }
    let targets = (0..np).map(|p| encode(&truths[best_truth[p]], &priors[p], th.variances)).collect();
    Matches { positive, targets }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Priors on a 4x4 grid of 0.25-wide squares.
    fn grid() -> Vec<[f32; 4]> {
        (0..16).map(|i| [(i % 4) as f32 * 0.25 + 0.125, (i / 4) as f32 * 0.25 + 0.125, 0.25, 0.25]).collect()
    }

    #[test]
    fn an_exact_face_takes_its_prior_only() {
        let m = match_priors(&[[0.25, 0.25, 0.5, 0.5]], &grid(), MatchConfig::default());
        assert_eq!(m.num_positive(), 1);
        assert!(m.positive[5]);
        assert!(m.targets[5].iter().all(|v| v.abs() < 1e-5));
    }

    #[test]
    fn a_small_face_still_gets_its_best_prior_forced() {
        // IoU with prior 0 is 0.01 / 0.0625 = 0.16 < 0.35: only the forcing makes it positive.
        let m = match_priors(&[[0.0, 0.0, 0.1, 0.1]], &grid(), MatchConfig::default());
        assert_eq!(m.num_positive(), 1);
        assert!(m.positive[0]);
    }

    #[test]
    fn scale_compensation_adds_the_best_mid_overlap_priors() {
        let faces = [[0.25, 0.25, 0.5, 0.5], [0.5, 0.5, 0.75, 0.75], [0.0, 0.5, 0.25, 0.75]];
        let base = match_priors(&faces, &grid(), MatchConfig::default());
        // Three exact faces: each IoU 1 >= 0.35 and >= 0.5, N = 3; candidates (0.1, 0.35):
        // none (neighbours of an exact square have IoU 0), so nothing is added.
        assert_eq!(base.num_positive(), 3);
        // A face straddling priors 0 and 1 (IoU 1/3 each with both), with two exact faces:
        // N = (2 + 2) / 2 = 2, so both straddled priors (0.333 in (0.1, 0.35)) become positive,
        // one of them already by forcing.
        let faces = [[0.25, 0.25, 0.5, 0.5], [0.5, 0.5, 0.75, 0.75], [0.125, 0.0, 0.375, 0.25]];
        let m = match_priors(&faces, &grid(), MatchConfig::default());
        assert!(m.positive[0] && m.positive[1], "{:?}", m.positive);
        assert_eq!(m.num_positive(), 4);
        // Without the two exact faces N = (0 + 0) / 2 = 0: only the forced prior.
        let m = match_priors(&faces[2..], &grid(), MatchConfig::default());
        assert_eq!(m.num_positive(), 1);
    }

    #[test]
    fn no_faces_means_all_background() {
        let m = match_priors(&[], &grid(), MatchConfig::default());
        assert_eq!(m.num_positive(), 0);
    }
}
