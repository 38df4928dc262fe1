//! S3FD's MultiBoxLoss: smooth-L1 on the positive priors' offsets, softmax cross-entropy on the
//! positives and the hardest negatives (3 per positive, ranked by their own loss), both summed
//! over the batch and divided by its number of positives.

use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::log_softmax;

use super::matcher::{MatchConfig, Matches, match_priors};

/// The loss's settings: the matcher's, and how many negatives are kept per positive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiboxConfig {
    /// The matcher's settings.
    pub matching: MatchConfig,
    /// Negatives kept per positive.
    pub neg_pos_ratio: usize,
}

impl Default for MultiboxConfig {
    /// S3FD's: 3 negatives per positive.
    fn default() -> Self {
        Self { matching: MatchConfig::default(), neg_pos_ratio: 3 }
    }
}

/// The two parts of the loss, each over the batch's positives.
pub struct MultiboxLoss {
    /// Smooth-L1 on the positives' offsets.
    pub loc: Tensor<1>,
    /// Cross-entropy on positives and mined negatives.
    pub conf: Tensor<1>,
    /// Positive priors in the batch.
    pub positives: usize,
}

impl MultiboxLoss {
    /// `loc + conf`.
    pub fn total(&self) -> Tensor<1> {
        self.loc.clone() + self.conf.clone()
    }
}

/// Which priors enter the classification loss: every positive, and per image the
/// `min(neg_pos_ratio * positives, priors - 1)` negatives with the largest loss.
pub fn mine_hard_negatives(ce: &[f32], positive: &[bool], neg_pos_ratio: usize) -> Vec<bool> {
    let np = positive.len();
    let pos = positive.iter().filter(|&&p| p).count();
    let num_neg = (neg_pos_ratio * pos).min(np.saturating_sub(1));
    let mut order: Vec<usize> = (0..np).filter(|&p| !positive[p]).collect();
    // Descending loss; stable so equal losses keep prior order.
    order.sort_by(|&a, &b| ce[b].total_cmp(&ce[a]));
    let mut keep = positive.to_vec();
    for &p in order.iter().take(num_neg) {
        keep[p] = true;
    }
    keep
}

/// S3FD's multibox loss ([`MultiboxConfig::default`]); see [`MultiboxConfig::loss`].
pub fn multibox_loss(loc: Tensor<3>, conf: Tensor<3>, priors: &[[f32; 4]], faces: &[Vec<[f32; 4]>]) -> MultiboxLoss {
    MultiboxConfig::default().loss(loc, conf, priors, faces)
}

impl MultiboxConfig {
    /// The loss of `loc` `[b, p, 4]` and `conf` `[b, p, 2]` (logits) against each image's
    /// normalised corner boxes `faces`, with `priors` `(cx, cy, w, h)` `[p, 4]`.
    pub fn loss(&self, loc: Tensor<3>, conf: Tensor<3>, priors: &[[f32; 4]], faces: &[Vec<[f32; 4]>]) -> MultiboxLoss {
        let [b, np, _] = loc.dims();
        let device = loc.device();
        let matches: Vec<Matches> = faces.iter().map(|f| match_priors(f, priors, self.matching)).collect();
        let positives: usize = matches.iter().map(Matches::num_positive).sum();
        let pos_mask: Vec<f32> = matches.iter().flat_map(|m| m.positive.iter().map(|&p| p as u8 as f32)).collect();
        let targets: Vec<f32> = matches.iter().flat_map(|m| m.targets.iter().flatten().copied()).collect();
        let labels: Vec<i64> = matches.iter().flat_map(|m| m.positive.iter().map(|&p| p as i64)).collect();

        let pos = Tensor::<3>::from_data(TensorData::new(pos_mask, [b, np, 1]), &device);
        let target = Tensor::<3>::from_data(TensorData::new(targets, [b, np, 4]), &device);
        let diff = (loc - target).abs();
        // Smooth-L1 with beta 1: 0.5 d^2 below 1, d - 0.5 above.
        let small = diff.clone().lower_elem(1.0).float();
        let sl1 = small.clone() * diff.clone().powi_scalar(2) * 0.5 + (small.neg() + 1.0) * (diff - 0.5);
        let loss_l = (sl1 * pos).sum();

        let label = Tensor::<3, Int>::from_data(TensorData::new(labels, [b, np, 1]), &device);
        let ce = log_softmax(conf, 2).gather(2, label).neg().reshape([b, np]);
        let ce_host: Vec<f32> = ce.clone().detach().into_data().iter::<f32>().collect();
        let mut selected = Vec::with_capacity(b * np);
        for (i, m) in matches.iter().enumerate() {
            let keep = mine_hard_negatives(&ce_host[i * np..(i + 1) * np], &m.positive, self.neg_pos_ratio);
            selected.extend(keep.into_iter().map(|k| k as u8 as f32));
        }
        let selected = Tensor::<2>::from_data(TensorData::new(selected, [b, np]), &device);
        let loss_c = (ce * selected).sum();
        let norm = positives.max(1) as f64;
        MultiboxLoss { loc: loss_l / norm, conf: loss_c / norm, positives }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mining_keeps_positives_and_the_three_hardest_negatives_each() {
        let ce = [0.1, 5.0, 0.2, 3.0, 0.3, 4.0, 9.0, 0.0];
        let positive = [false, false, false, false, false, false, true, false];
        let keep = mine_hard_negatives(&ce, &positive, 3);
        assert_eq!(keep, [false, true, false, true, false, true, true, false]);
        // Never more negatives than priors - 1.
        let keep = mine_hard_negatives(&[1.0, 2.0, 3.0], &[true, true, false], 3);
        assert_eq!(keep, [true, true, true]);
        assert!(mine_hard_negatives(&[1.0, 2.0], &[false, false], 3).iter().all(|k| !k));
    }

    #[test]
    fn the_loss_is_zero_for_perfect_predictions_and_counts_mined_negatives() {
        let device = Device::flex();
        let priors: Vec<[f32; 4]> =
            (0..16).map(|i| [(i % 4) as f32 * 0.25 + 0.125, (i / 4) as f32 * 0.25 + 0.125, 0.25, 0.25]).collect();
        let faces = vec![vec![[0.25, 0.25, 0.5, 0.5]]];
        let loc = Tensor::<3>::zeros([1, 16, 4], &device);
        // Confident and right: face logit high on prior 5, background elsewhere.
        let mut logits = vec![0.0f32; 32];
        for p in 0..16 {
            logits[2 * p + usize::from(p == 5)] = 30.0;
        }
        let conf = Tensor::<3>::from_data(TensorData::new(logits.clone(), [1, 16, 2]), &device);
        let l = multibox_loss(loc.clone(), conf, &priors, &faces);
        assert_eq!(l.positives, 1);
        assert!(l.total().into_scalar::<f32>() < 1e-6);
        // Uniform logits: CE ln 2 on the positive and on 3 mined negatives, over 1 positive.
        let conf = Tensor::<3>::zeros([1, 16, 2], &device);
        let l = multibox_loss(loc.clone(), conf, &priors, &faces);
        let want = 4.0 * std::f32::consts::LN_2;
        assert!((l.conf.into_scalar::<f32>() - want).abs() < 1e-5);
        // An offset of 2 on one coordinate of the positive: smooth-L1 = 2 - 0.5.
        let mut off = vec![0.0f32; 64];
        off[5 * 4] = 2.0;
        off[6 * 4] = 7.0; // a negative prior's offset does not count
        let loc = Tensor::<3>::from_data(TensorData::new(off, [1, 16, 4]), &device);
        let conf = Tensor::<3>::from_data(TensorData::new(logits, [1, 16, 2]), &device);
        assert!((multibox_loss(loc, conf, &priors, &faces).loc.into_scalar::<f32>() - 1.5).abs() < 1e-6);
    }
}
