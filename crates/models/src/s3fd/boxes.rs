//! SSD box encoding against priors, with S3FD's variances (0.1 for centres, 0.2 for sizes).

use burn::prelude::*;

/// `[0.1, 0.2]`, as in EdgeML's configs.
pub const VARIANCES: [f64; 2] = [0.1, 0.2];

/// `(cx, cy, w, h)` -> `(x1, y1, x2, y2)`, `[n, 4]`.
pub fn point_form(boxes: Tensor<2>) -> Tensor<2> {
    let c = boxes.clone().narrow(1, 0, 2);
    let half = boxes.narrow(1, 2, 2) / 2.0;
    Tensor::cat(vec![c.clone() - half.clone(), c + half], 1)
}

/// Offsets of `matched` boxes `(x1, y1, x2, y2)` `[n, 4]` relative to `priors`
/// `(cx, cy, w, h)` `[n, 4]`: `((g_c - p_c) / (0.1 p_wh), log(g_wh / p_wh) / 0.2)`.
pub fn encode(matched: Tensor<2>, priors: Tensor<2>) -> Tensor<2> {
    let (p_c, p_wh) = (priors.clone().narrow(1, 0, 2), priors.narrow(1, 2, 2));
    let (lo, hi) = (matched.clone().narrow(1, 0, 2), matched.narrow(1, 2, 2));
    let g_c = (lo.clone() + hi.clone()) / 2.0;
    let g_wh = hi - lo;
    let centre = (g_c - p_c) / (p_wh.clone() * VARIANCES[0]);
    let size = (g_wh / p_wh).log() / VARIANCES[1];
    Tensor::cat(vec![centre, size], 1)
}

/// Inverse of [`encode`]: predicted offsets `[n, 4]` -> boxes `(x1, y1, x2, y2)`.
pub fn decode(loc: Tensor<2>, priors: Tensor<2>) -> Tensor<2> {
    let (p_c, p_wh) = (priors.clone().narrow(1, 0, 2), priors.narrow(1, 2, 2));
    let c = p_c + loc.clone().narrow(1, 0, 2) * VARIANCES[0] * p_wh.clone();
    let wh = p_wh * (loc.narrow(1, 2, 2) * VARIANCES[1]).exp();
    point_form(Tensor::cat(vec![c, wh], 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_inverts_encode_and_a_prior_encodes_to_zero() {
        let device = Device::flex();
        let priors = Tensor::<2>::from_data([[0.5, 0.5, 0.2, 0.1], [0.25, 0.75, 0.05, 0.05]], &device);
        let boxes = Tensor::<2>::from_data([[0.3, 0.4, 0.55, 0.62], [0.2, 0.7, 0.31, 0.78]], &device);
        let back = decode(encode(boxes.clone(), priors.clone()), priors.clone());
        let diff = (back - boxes).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "{diff}");
        let zero = encode(point_form(priors.clone()), priors).abs().max().into_scalar::<f32>();
        assert!(zero < 1e-5, "{zero}"); // f32 rounding of x2 - x1 inside the log
        // A box twice the prior's width, same centre: size offset log(2) / 0.2.
        let p = Tensor::<2>::from_data([[0.5, 0.5, 0.2, 0.2]], &device);
        let g = Tensor::<2>::from_data([[0.3, 0.4, 0.7, 0.6]], &device);
        let e = encode(g, p).into_data().try_to_vec::<f32>().unwrap();
        assert!((e[2] - 2f32.ln() / 0.2).abs() < 1e-5 && e[0].abs() < 1e-6, "{e:?}");
    }
}
