//! The original's multi-scale test (S3FD `wider_test.py`): detections at the base shrink, of
//! the mirrored image, at a smaller scale keeping only large faces and at larger scales keeping
//! only small ones, merged by box voting. Boxes here are in pixels of the original image.

use super::detect::Detection;
use models::s3fd::boxes::iou;

/// Box voting: highest score first, every box overlapping it by IoU >= 0.3 is merged into a
/// score-weighted mean box carrying the group's best score. As in the original, a group of one
/// box is dropped. At most `keep` results.
pub fn bbox_vote(mut dets: Vec<Detection>, keep: usize) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while let Some(first) = dets.first().copied() {
        // The original measures areas with the +1 pixel convention.
        let plus1 = |b: &[f32; 4]| [b[0], b[1], b[2] + 1.0, b[3] + 1.0];
        let (group, rest): (Vec<Detection>, Vec<Detection>) =
            dets.into_iter().partition(|d| iou(&plus1(&first.bbox), &plus1(&d.bbox)) >= 0.3);
        dets = rest;
        if group.len() <= 1 {
            continue;
        }
        let total: f32 = group.iter().map(|d| d.score).sum();
        let mut bbox = [0.0f32; 4];
        for d in &group {
            for (b, v) in bbox.iter_mut().zip(d.bbox) {
                *b += v * d.score / total;
            }
        }
        out.push(Detection { bbox, score: first.score });
    }
    out.truncate(keep);
    out
}

fn side(d: &Detection, f: fn(f32, f32) -> f32) -> f32 {
    f(d.bbox[2] - d.bbox[0] + 1.0, d.bbox[3] - d.bbox[1] + 1.0)
}

/// Runs `detect(scale, mirrored)` (pixel boxes of the original image) at the original's scales
/// for an image of `pixels` pixels with base pixel budget `budget`, and merges by voting.
pub fn multiscale_detect(
    pixels: f64,
    budget: f64,
    keep: usize,
    mut detect: impl FnMut(f64, bool) -> Vec<Detection>,
) -> Vec<Detection> {
    let max_shrink = (budget / pixels).sqrt().min(3.0);
    let shrink = max_shrink.min(1.0);
    let mut all = detect(shrink, false);
    all.extend(detect(shrink, true));
    // Smaller: only faces larger than 30 px.
    let st = if max_shrink >= 0.75 { 0.5 } else { 0.5 * max_shrink };
    all.extend(detect(st, false).into_iter().filter(|d| side(d, f32::max) > 30.0));
    // Larger: 2x (or between), then doublings up to the maximum, only faces under 100 px.
    let mut bt = if max_shrink > 1.0 { max_shrink.min(2.0) } else { (st + max_shrink) / 2.0 };
    let mut big = detect(bt, false);
    if max_shrink > 2.0 {
        bt *= 2.0;
        while bt < max_shrink {
            big.extend(detect(bt, false));
            bt *= 2.0;
        }
        big.extend(detect(max_shrink, false));
    }
    if bt > 1.0 {
        all.extend(big.into_iter().filter(|d| side(d, f32::min) < 100.0));
    } else {
        all.extend(big.into_iter().filter(|d| side(d, f32::max) > 30.0));
    }
    bbox_vote(all, keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: f32, w: f32, score: f32) -> Detection {
        Detection { bbox: [x, 0.0, x + w, w], score }
    }

    #[test]
    fn voting_averages_groups_by_score_and_drops_lone_boxes() {
        let out = bbox_vote(vec![d(0.0, 10.0, 0.9), d(1.0, 10.0, 0.3), d(100.0, 10.0, 0.8)], 750);
        assert_eq!(out.len(), 1, "the lone box at 100 is dropped, as the original does");
        let want = (0.0 * 0.9 + 1.0 * 0.3) / 1.2;
        assert!((out[0].bbox[0] - want).abs() < 1e-6 && out[0].score == 0.9, "{:?}", out[0]);
    }

    #[test]
    fn scales_follow_the_original() {
        // A 400x300 image with the VGA budget: max shrink = min(3, sqrt(1700*1200/120000)) = 3,
        // so 1 (+ mirror), 0.5, 2, then doublings below 3 (none: 4 > 3), then 3.
        let mut calls = Vec::new();
        multiscale_detect(400.0 * 300.0, 1700.0 * 1200.0, 750, |s, m| {
            calls.push((s, m));
            vec![]
        });
        assert_eq!(calls, vec![(1.0, false), (1.0, true), (0.5, false), (2.0, false), (3.0, false)]);
        // A large image: shrink below 1, the enlarging pass is the midpoint.
        calls.clear();
        let px = 4000.0 * 3000.0;
        multiscale_detect(px, 1700.0 * 1200.0, 750, |s, m| {
            calls.push((s, m));
            vec![]
        });
        let m = (1700.0f64 * 1200.0 / px).sqrt();
        assert_eq!(calls.len(), 4);
        assert!((calls[0].0 - m).abs() < 1e-12 && (calls[2].0 - 0.5 * m).abs() < 1e-12);
        assert!((calls[3].0 - (0.5 * m + m) / 2.0).abs() < 1e-12);
    }
}
