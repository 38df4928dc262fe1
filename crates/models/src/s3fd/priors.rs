//! S3FD prior boxes: one square anchor per feature-map cell, regenerated from the actual map
//! sizes so that any input size works.

use burn::prelude::*;
use burn::tensor::TensorData;

/// Priors `[P, 4]` as `(cx, cy, w, h)` normalised by the image size, source by source, each in
/// row-major cell order. `maps[k]` is source `k`'s `(height, width)`.
pub fn priors(
    image: [usize; 2],
    maps: &[[usize; 2]],
    steps: &[usize],
    anchors: &[usize],
    device: &Device,
) -> Tensor<2> {
    let [img_h, img_w] = image.map(|v| v as f64);
    let mut boxes = Vec::new();
    for ((&[fh, fw], &step), &anchor) in maps.iter().zip(steps).zip(anchors) {
        let (fx, fy) = (img_w / step as f64, img_h / step as f64);
        for i in 0..fh {
            for j in 0..fw {
                boxes.extend([
                    (j as f64 + 0.5) / fx,
                    (i as f64 + 0.5) / fy,
                    anchor as f64 / img_w,
                    anchor as f64 / img_h,
                ]);
            }
        }
    }
    let n = boxes.len() / 4;
    let values: Vec<f32> = boxes.into_iter().map(|v| v as f32).collect();
    Tensor::from_data(TensorData::new(values, [n, 4]), device)
}

/// The QVGA (monochrome, 320x240) configuration of EdgeML's `config_qvga.py`.
pub const QVGA_STEPS: [usize; 4] = [8, 8, 16, 16];
/// The QVGA anchor sizes, in input pixels.
pub const QVGA_ANCHORS: [usize; 4] = [8, 16, 32, 48];
/// The VGA (RGB, 640x480) configuration of EdgeML's `config.py`.
pub const VGA_STEPS: [usize; 6] = [4, 8, 16, 32, 64, 128];
/// The VGA anchor sizes, in input pixels.
pub const VGA_ANCHORS: [usize; 6] = [16, 32, 64, 128, 256, 512];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_prior_is_the_centre_of_the_first_cell() {
        let device = Device::flex();
        let p = priors([96, 128], &[[12, 16]], &[8], &[8], &device);
        assert_eq!(p.dims(), [192, 4]);
        let v = p.into_data().try_to_vec::<f32>().unwrap();
        let want = [0.5 / 16.0, 0.5 / 12.0, 8.0 / 128.0, 8.0 / 96.0];
        for (a, b) in v[..4].iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{a} vs {b}");
        }
        // Second cell moves right by one step.
        assert!((v[4] - 1.5 / 16.0).abs() < 1e-7);
    }
}
