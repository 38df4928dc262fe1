//! The original's per-iteration learning rate: linear warm-up (`lr * iter / warmup`) then a
//! half cosine from the end of the warm-up to the last iteration (EdgeML face `train.py`); with
//! no warm-up it is VWW's plain cosine.

use std::f64::consts::PI;

/// Linear warm-up then a half cosine to zero, per iteration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmupCosine {
    /// The peak learning rate.
    pub base_lr: f64,
    /// Iterations of linear warm-up.
    pub warmup_iters: usize,
    /// Iterations in the run.
    pub total_iters: usize,
}

impl WarmupCosine {
    /// The schedule of a run of `epochs` epochs of `steps_per_epoch` steps, peaking at `base_lr`
    /// after `warmup_epochs` (a fraction counts).
    pub fn for_run(base_lr: f64, warmup_epochs: f64, epochs: usize, steps_per_epoch: usize) -> Self {
        let warmup_iters = (warmup_epochs * steps_per_epoch as f64).round() as usize;
        Self { base_lr, warmup_iters, total_iters: epochs * steps_per_epoch }
    }

    /// The learning rate of iteration `iter` (from 0).
    pub fn lr(&self, iter: usize) -> f64 {
        if iter < self.warmup_iters {
            return self.base_lr * iter as f64 / self.warmup_iters as f64;
        }
        let span = self.total_iters.saturating_sub(self.warmup_iters).max(1) as f64;
        let t = ((iter - self.warmup_iters) as f64 / span).min(1.0);
        self.base_lr * 0.5 * (1.0 + (PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_follows_a_half_cosine() {
        let s = WarmupCosine { base_lr: 0.01, warmup_iters: 10, total_iters: 110 };
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(5) - 0.005).abs() < 1e-12);
        assert!((s.lr(10) - 0.01).abs() < 1e-12);
        assert!((s.lr(60) - 0.005).abs() < 1e-12);
        assert!(s.lr(110).abs() < 1e-12);
        let plain = WarmupCosine { base_lr: 0.05, warmup_iters: 0, total_iters: 4 };
        assert_eq!(plain.lr(0), 0.05);
        assert!((plain.lr(2) - 0.025).abs() < 1e-12);
    }
}
