//! Images as the exported model sees them: resized to its fixed input and normalised as in
//! training, HWC. Used for calibration and for the int8-vs-float comparison.

use std::path::{Path, PathBuf};

use burn::data::dataset::Dataset;
use data::augment::{classification, face};
use data::class_dataset::{FASHION_MNIST_MEAN, FASHION_MNIST_STD, FashionMnistDataset};
use data::fashion_mnist::Mnist;
use image::RgbImage;
use image::imageops::{self, FilterType};

use crate::error::ExportError;
use crate::graph::Shape;

/// How a photo becomes the model's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preprocess {
    /// Mean-subtracted grey (the QVGA face models), plain resize to the input.
    FaceGray,
    /// Mean-subtracted RGB (the VGA face models), plain resize to the input.
    FaceRgb,
    /// ImageNet normalisation after a resize and centre crop (photo classifiers).
    Photo,
    /// Fashion-MNIST's own normalisation (28x28 grey).
    FashionMnist,
}

fn chw_to_hwc_image(chw: Vec<f32>, [h, w, c]: Shape) -> Vec<f32> {
    crate::chw_to_hwc(&chw, [c, h, w])
}

/// One photo as the input of `shape` `[h, w, c]`.
pub fn photo_input(img: &RgbImage, shape: Shape, pre: Preprocess) -> Vec<f32> {
    let [h, w, c] = shape;
    match pre {
        Preprocess::FaceGray | Preprocess::FaceRgb => {
            let resized = imageops::resize(img, w as u32, h as u32, FilterType::Triangle);
            if pre == Preprocess::FaceGray {
                face::normalize_gray(&resized)
            } else {
                chw_to_hwc_image(face::normalize_rgb(&resized), shape)
            }
        }
        // Fashion-MNIST's own normalisation of grey pixels, as FashionMnistDataset applies it.
        Preprocess::FashionMnist => {
            let grey = imageops::grayscale(&imageops::resize(img, w as u32, h as u32, FilterType::Triangle));
            grey.pixels().map(|p| (p[0] as f32 / 255.0 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD).collect()
        }
        Preprocess::Photo => {
            let cropped = classification::val(img, h as u32);
            let resized = imageops::resize(&cropped, w as u32, h as u32, FilterType::Triangle);
            let v = chw_to_hwc_image(classification::normalize(&resized), [h, w, 3]);
            if c == 1 { v.chunks(3).map(|p| (p[0] + p[1] + p[2]) / 3.0).collect() } else { v }
        }
    }
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ExportError> {
    for entry in std::fs::read_dir(dir).map_err(ExportError::io(dir))? {
        let path = entry.map_err(ExportError::io(dir))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// The images named by `path`: a folder (searched recursively), or a text file listing one
/// image path per line (relative to the file's folder; `#` starts a comment).
pub fn image_paths(path: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let mut out = Vec::new();
    if path.is_dir() {
        walk(path, &mut out)?;
        out.sort();
    } else {
        let text = data::text::read_text(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let p = base.join(line);
            if !p.is_file() {
                return Err(data::DataError::Parse {
                    path: path.into(),
                    line: i + 1,
                    message: format!("{} is not a file", p.display()),
                }
                .into());
            }
            out.push(p);
        }
    }
    Ok(out)
}

fn has_fashion_mnist(dir: &Path) -> bool {
    ["train", "t10k"].iter().any(|s| {
        let stem = format!("{s}-images-idx3-ubyte");
        dir.join(&stem).exists() || dir.join(format!("{stem}.gz")).exists()
    })
}

/// Fashion-MNIST's `split` (`train` or `t10k`): the first `limit` images with their labels.
pub fn fashion_mnist(dir: &Path, split: &str, limit: usize) -> Result<Vec<(Vec<f32>, usize)>, ExportError> {
    let mut ds = FashionMnistDataset::new(Mnist::load(dir, split)?, false, 0);
    ds.truncate(limit);
    (0..ds.len())
        .map(|i| {
            let item =
                ds.get(i).map_err(|e| ExportError::Tensor { layer: "fashion-mnist".into(), message: e.to_string() })?;
            Ok((item.image, item.label))
        })
        .collect()
}

/// Up to `limit` calibration inputs from `path` (images, an image list, or a Fashion-MNIST
/// folder, whose training split is used when present).
pub fn calibration_inputs(
    path: &Path,
    shape: Shape,
    pre: Preprocess,
    limit: usize,
) -> Result<Vec<Vec<f32>>, ExportError> {
    if path.is_dir() && has_fashion_mnist(path) {
        let split = if path.join("train-images-idx3-ubyte").exists() || path.join("train-images-idx3-ubyte.gz").exists()
        {
            "train"
        } else {
            "t10k"
        };
        return Ok(fashion_mnist(path, split, limit)?.into_iter().map(|(x, _)| x).collect());
    }
    let paths = image_paths(path)?;
    if paths.is_empty() {
        return Err(ExportError::NoImages { path: path.into() });
    }
    paths.iter().take(limit).map(|p| Ok(photo_input(&data::image_io::load_rgb(p)?, shape, pre))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fashion_photos_get_fashion_mnist_normalisation() {
        let img = RgbImage::from_pixel(56, 56, image::Rgb([255, 255, 255]));
        let x = photo_input(&img, [28, 28, 1], Preprocess::FashionMnist);
        assert_eq!(x.len(), 784);
        let white = (1.0 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD;
        assert!(x.iter().all(|v| (v - white).abs() < 1e-5), "{}", x[0]);
    }
}
