//! RNNPool-Face-M4's sparsification (EdgeML `hardThreshold` after every optimizer step while
//! fine-tuning): of each RNN weight matrix keep the given fraction of entries with the largest
//! magnitude and zero the rest.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::TensorData;
use rnnpool_core::{RnnCell, RnnPool};

/// Fractions kept of W1, U1 (RNN1) and W2, U2 (RNN2), as the paper's M4.
pub const M4_KEEP: [f64; 4] = [0.5, 0.3, 0.3, 0.3];

/// `values` with all but the `keep` fraction of largest magnitudes set to zero (ties at the
/// threshold are kept, as `|a| >= thr` does).
pub fn hard_threshold(values: &[f32], keep: f64) -> Vec<f32> {
    if values.is_empty() || keep >= 1.0 {
        return values.to_vec();
    }
    let mut mags: Vec<f32> = values.iter().map(|v| v.abs()).collect();
    mags.sort_by(|a, b| b.total_cmp(a));
    let k = ((keep * values.len() as f64).ceil() as usize).clamp(1, values.len());
    let thr = mags[k - 1];
    values.iter().map(|&v| if v.abs() >= thr { v } else { 0.0 }).collect()
}

fn threshold_param(p: Param<Tensor<2>>, keep: f64) -> Param<Tensor<2>> {
    p.map(|t| {
        let (device, shape) = (t.device(), t.dims());
        let was_tracked = t.is_require_grad();
        let values: Vec<f32> = t.into_data().iter::<f32>().collect();
        let out = Tensor::from_data(TensorData::new(hard_threshold(&values, keep), shape), &device);
        if was_tracked { out.require_grad() } else { out }
    })
}

/// Applies [`M4_KEEP`] to a FastGRNN RNNPool; other cells are left as they are.
pub fn sparsify_rnnpool(mut pool: RnnPool, keep: [f64; 4]) -> RnnPool {
    if let RnnCell::FastGrnn(c) = pool.rnn1 {
        let mut c = c;
        c.w = threshold_param(c.w, keep[0]);
        c.u = threshold_param(c.u, keep[1]);
        pool.rnn1 = RnnCell::FastGrnn(c);
    }
    if let RnnCell::FastGrnn(c) = pool.rnn2 {
        let mut c = c;
        c.w = threshold_param(c.w, keep[2]);
        c.u = threshold_param(c.u, keep[3]);
        pool.rnn2 = RnnCell::FastGrnn(c);
    }
    pool
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnnpool_core::RnnPoolConfig;

    #[test]
    fn keeps_the_largest_fraction() {
        assert_eq!(hard_threshold(&[0.1, -0.9, 0.5, 0.2], 0.5), vec![0.0, -0.9, 0.5, 0.0]);
        assert_eq!(hard_threshold(&[1.0, 2.0, 3.0], 1.0), vec![1.0, 2.0, 3.0]);
        // 30 % of 10 is 3 entries.
        let v: Vec<f32> = (1..=10).map(|i| i as f32).collect();
        assert_eq!(hard_threshold(&v, 0.3).iter().filter(|&&x| x != 0.0).count(), 3);
    }

    #[test]
    fn an_rnnpool_keeps_m4s_fractions_of_each_matrix() {
        let device = Device::flex();
        let pool = RnnPoolConfig::new(4, 16, 16).init(&device).unwrap();
        let pool = sparsify_rnnpool(pool, M4_KEEP);
        let nonzero = |t: Tensor<2>| {
            let v: Vec<f32> = t.into_data().iter::<f32>().collect();
            v.iter().filter(|&&x| x != 0.0).count() as f64 / v.len() as f64
        };
        let (RnnCell::FastGrnn(a), RnnCell::FastGrnn(b)) = (&pool.rnn1, &pool.rnn2) else { panic!("not FastGRNN") };
        for (t, want) in [(a.w.val(), 0.5), (a.u.val(), 0.3), (b.w.val(), 0.3), (b.u.val(), 0.3)] {
            let got = nonzero(t);
            assert!((got - want).abs() < 0.02, "{got} vs {want}");
        }
    }
}
