//! S3FD's box arithmetic on the host, on `[f32; 4]`: `(x1, y1, x2, y2)` corner boxes and
//! `(cx, cy, w, h)` priors, all normalised to the image. The matcher encodes faces against priors
//! with it and the detector decodes predictions with it, so both sides share one coding.

/// S3FD's variances of the centre and size offsets (EdgeML's configs).
pub const VARIANCES: [f32; 2] = [0.1, 0.2];

/// Intersection over union of two corner boxes (0 when the union is empty).
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// `(cx, cy, w, h)` -> corners.
pub fn corners(p: &[f32; 4]) -> [f32; 4] {
    [p[0] - p[2] / 2.0, p[1] - p[3] / 2.0, p[0] + p[2] / 2.0, p[1] + p[3] / 2.0]
}

/// SSD encoding of a corner box `g` against a prior `p` with the centre and size `variances`:
/// `((g_c - p_c) / (v0 p_wh), log(g_wh / p_wh) / v1)`.
pub fn encode(g: &[f32; 4], p: &[f32; 4], [v0, v1]: [f32; 2]) -> [f32; 4] {
    let (gcx, gcy) = ((g[0] + g[2]) / 2.0, (g[1] + g[3]) / 2.0);
    let (gw, gh) = ((g[2] - g[0]).max(1e-6), (g[3] - g[1]).max(1e-6));
    [(gcx - p[0]) / (v0 * p[2]), (gcy - p[1]) / (v0 * p[3]), (gw / p[2]).ln() / v1, (gh / p[3]).ln() / v1]
}

/// Inverse of [`encode`]: predicted offsets -> a corner box.
pub fn decode(l: &[f32; 4], p: &[f32; 4], [v0, v1]: [f32; 2]) -> [f32; 4] {
    let (cx, cy) = (p[0] + l[0] * v0 * p[2], p[1] + l[1] * v0 * p[3]);
    let (w, h) = (p[2] * (l[2] * v1).exp(), p[3] * (l[3] * v1).exp());
    [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_and_encoding_round_trip() {
        assert_eq!(iou(&[0.0, 0.0, 2.0, 2.0], &[1.0, 0.0, 3.0, 2.0]), 1.0 / 3.0);
        assert_eq!(iou(&[0.0, 0.0, 1.0, 1.0], &[2.0, 2.0, 3.0, 3.0]), 0.0);
        let p = [0.5, 0.4, 0.1, 0.2];
        let g = [0.42, 0.33, 0.61, 0.52];
        let back = decode(&encode(&g, &p, VARIANCES), &p, VARIANCES);
        assert!(g.iter().zip(back).all(|(a, b)| (a - b).abs() < 1e-5), "{back:?}");
        assert_eq!(encode(&corners(&p), &p, VARIANCES).map(|v| (v * 1e4).round()), [0.0; 4]);
        // A box twice the prior's width, same centre: size offset log(2) / 0.2.
        let e = encode(&[0.3, 0.4, 0.7, 0.6], &[0.5, 0.5, 0.2, 0.2], VARIANCES);
        assert!((e[2] - 2f32.ln() / 0.2).abs() < 1e-5 && e[0].abs() < 1e-6, "{e:?}");
    }
}
