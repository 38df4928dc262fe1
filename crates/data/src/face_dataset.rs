//! WIDER-format face images as a burn `Dataset` of augmented samples, and the `Batcher` that
//! stacks them into tensors. Each sample's augmentation is seeded by (seed, epoch, index), so a
//! batch is the same whatever the number of loader workers.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::prelude::*;
use burn::tensor::TensorData;

use crate::DataError;
use crate::augment::AugRng;
use crate::augment::face::{QVGA_TRAIN_SIDE, normalize_gray, normalize_rgb, normalized_boxes, qvga_train};
use crate::augment::geometry;
use crate::augment::vga::{VGA_TRAIN_SIDE, vga_train};
use crate::epoch_draw::EpochDraw;
use crate::image_io::load_rgb;
use crate::wider::{FaceAnnotation, FaceList};
use image::imageops::FilterType;

/// One augmented training sample.
#[derive(Clone, Debug)]
pub struct FaceItem {
    /// `[channels, height, width]`, normalised as the model expects.
    pub image: Vec<f32>,
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    /// Faces as `(x1, y1, x2, y2)` in `[0, 1]`.
    pub boxes: Vec<[f32; 4]>,
}

/// How a face sample is made, for the QVGA monochrome models (320x320 grey: RNNPool-Face-M4,
/// -QVGA-monochrome) or the VGA RGB ones (640x640: RNNPool-Face-C, -Quant): the original's
/// training augmentation, a plain resize to the training square, or the original's test input
/// (aspect kept, shrunk to at most 320x240 pixels for QVGA as `scut_test.py`, 1700x1200 for VGA
/// as `wider_test.py`; samples then differ in size, so batch them one at a time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FacePipeline {
    /// Grey 320x320 with the QVGA augmentation.
    QvgaTrain,
    /// Grey 320x320, plain resize.
    QvgaEval,
    /// Grey, aspect kept, shrunk to [`QVGA_TEST_PIXELS`].
    QvgaTest,
    /// RGB 640x640 with the VGA augmentation.
    VgaTrain,
    /// RGB 640x640, plain resize.
    VgaEval,
    /// RGB, aspect kept, shrunk to [`VGA_TEST_PIXELS`].
    VgaTest,
}

/// The test-time pixel budgets: `shrink = min(1, sqrt(budget / (h * w)))`.
pub const QVGA_TEST_PIXELS: f64 = 320.0 * 240.0;
/// The VGA test input's pixel budget (`wider_test.py`'s base scale).
pub const VGA_TEST_PIXELS: f64 = 1700.0 * 1200.0;

impl FacePipeline {
    /// Input channels: 1 (QVGA, grey) or 3.
    pub fn channels(self) -> usize {
        match self {
            Self::QvgaTrain | Self::QvgaEval | Self::QvgaTest => 1,
            _ => 3,
        }
    }

    /// `[channels, side, side]` of the samples, `None` for the test inputs (their own size).
    pub fn shape(self) -> Option<[usize; 3]> {
        match self {
            Self::QvgaTrain | Self::QvgaEval => Some([1, QVGA_TRAIN_SIDE as usize, QVGA_TRAIN_SIDE as usize]),
            Self::VgaTrain | Self::VgaEval => Some([3, VGA_TRAIN_SIDE as usize, VGA_TRAIN_SIDE as usize]),
            Self::QvgaTest | Self::VgaTest => None,
        }
    }

    /// Augments (or resizes) one image and normalises it as the model expects.
    pub fn apply(self, img: &image::RgbImage, boxes: &[crate::wider::FaceBox], rng: &mut AugRng) -> FaceItem {
        let (img, boxes) = match self {
            Self::QvgaTrain => qvga_train(img, boxes, rng),
            Self::VgaTrain => vga_train(img, boxes, rng),
            Self::QvgaEval | Self::VgaEval => {
                let side = if self == Self::QvgaEval { QVGA_TRAIN_SIDE } else { VGA_TRAIN_SIDE };
                geometry::resize(img, boxes, side, side, FilterType::Triangle)
            }
            Self::QvgaTest | Self::VgaTest => {
                let budget = if self == Self::QvgaTest { QVGA_TEST_PIXELS } else { VGA_TEST_PIXELS };
                let (w, h) = (img.width() as f64, img.height() as f64);
                let s = (budget / (w * h)).sqrt().min(1.0);
                let (nw, nh) = (((w * s).round() as u32).max(1), ((h * s).round() as u32).max(1));
                geometry::resize(img, boxes, nw, nh, FilterType::Triangle)
            }
        };
        let channels = self.channels();
        let image = if channels == 1 { normalize_gray(&img) } else { normalize_rgb(&img) };
        let shape = [channels, img.height() as usize, img.width() as usize];
        FaceItem { image, shape, boxes: normalized_boxes(&boxes, img.width(), img.height()) }
    }
}

/// Images with at least one face (as the original keeps them), made into samples by a
/// [`FacePipeline`].
pub struct FaceDataset {
    images: Vec<FaceAnnotation>,
    pipeline: FacePipeline,
    draw: EpochDraw,
}

impl FaceDataset {
    /// An error naming `origin` (where the list came from) when no image has a face: no silent
    /// zero-step epochs.
    pub fn new(list: FaceList, pipeline: FacePipeline, seed: u64, origin: &std::path::Path) -> Result<Self, DataError> {
        let images: Vec<FaceAnnotation> = list.images.into_iter().filter(|a| !a.boxes.is_empty()).collect();
        if images.is_empty() {
            return Err(DataError::Empty { path: origin.into() });
        }
        Ok(Self { images, pipeline, draw: EpochDraw::new(seed) })
    }

    /// The pipeline samples go through.
    pub fn pipeline(&self) -> FacePipeline {
        self.pipeline
    }

    /// The annotated images, in the order `get` indexes them.
    pub fn images(&self) -> &[FaceAnnotation] {
        &self.images
    }

    /// Skip (and count) images that cannot be read instead of failing on them.
    pub fn with_skip_bad(mut self, skip: bool) -> Self {
        self.draw.set_skip_bad(skip);
        self
    }

    /// The epoch whose augmentation `get` draws.
    pub fn set_epoch(&self, epoch: u64) {
        self.draw.set_epoch(epoch);
    }

    /// Images skipped so far because they could not be read.
    pub fn skipped(&self) -> usize {
        self.draw.skipped()
    }

    fn sample(&self, index: usize) -> Result<FaceItem, DataError> {
        let a = &self.images[index];
        let img = load_rgb(&a.image)?;
        Ok(self.pipeline.apply(&img, &a.boxes, &mut self.draw.rng(index)))
    }
}

impl Dataset<FaceItem> for FaceDataset {
    fn get(&self, index: usize) -> Result<FaceItem, DatasetError> {
        self.draw.get(index, self.images.len(), |i| self.sample(i))
    }

    fn len(&self) -> usize {
        self.images.len()
    }
}

/// A batch: images `[batch, channels, height, width]` and each image's boxes.
#[derive(Clone, Debug)]
pub struct FaceBatch {
    /// `[batch, channels, height, width]`.
    pub images: Tensor<4>,
    /// Each image's faces as normalised corner boxes.
    pub boxes: Vec<Vec<[f32; 4]>>,
}

/// Stacks [`FaceItem`]s into a [`FaceBatch`].
#[derive(Clone, Debug, Default)]
pub struct FaceBatcher;

impl Batcher<FaceItem, FaceBatch> for FaceBatcher {
    fn batch(&self, items: Vec<FaceItem>, device: &Device) -> FaceBatch {
        let shape = items.first().map_or([1, 1, 1], |i| i.shape);
        let n = items.len();
        let mut pixels = Vec::with_capacity(n * shape.iter().product::<usize>());
        let mut boxes = Vec::with_capacity(n);
        for item in items {
            pixels.extend_from_slice(&item.image);
            boxes.push(item.boxes);
        }
        let images = Tensor::from_data(TensorData::new(pixels, [n, shape[0], shape[1], shape[2]]), device);
        FaceBatch { images, boxes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wider::WiderFace;
    use burn::data::dataloader::DataLoaderBuilder;

    fn root() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/wider_sample")
    }

    fn dataset() -> FaceDataset {
        FaceDataset::new(WiderFace::new(root()).split("train").unwrap(), FacePipeline::QvgaTrain, 3, &root()).unwrap()
    }

    /// Each batch as a fingerprint (its pixel bits and boxes), sorted: burn's multi-worker
    /// loader yields batches in completion order, so only the set of batches is compared.
    fn batches(workers: usize) -> Vec<(u64, String)> {
        let device = Device::flex();
        let loader =
            DataLoaderBuilder::new(FaceBatcher).batch_size(2).num_workers(workers).set_device(device).build(dataset());
        let mut out: Vec<(u64, String)> = loader
            .iter()
            .map(|b| b.unwrap())
            .map(|b| {
                let pixels = b.images.into_data().try_to_vec::<f32>().unwrap();
                let hash = pixels
                    .iter()
                    .fold(0xcbf2_9ce4_8422_2325u64, |h, v| (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3));
                (hash, format!("{:?}", b.boxes))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn samples_are_grey_320_squares_with_normalised_boxes() {
        let ds = dataset();
        assert_eq!(ds.len(), 4);
        let item = ds.get(1).unwrap();
        assert_eq!(item.shape, [1, 320, 320]);
        assert!(item.image.iter().all(|v| v.is_finite() && v.abs() < 160.0));
        assert!(!item.boxes.is_empty());
        assert!(item.boxes.iter().flatten().all(|&v| (0.0..=1.0).contains(&v)));
        let again = ds.get(1).unwrap();
        assert_eq!(item.image, again.image);
        ds.set_epoch(1);
        assert_ne!(ds.get(1).unwrap().image, item.image, "a new epoch draws a new augmentation");
    }

    #[test]
    fn vga_and_eval_pipelines_make_their_shapes() {
        let list = WiderFace::new(root()).split("val").unwrap();
        for p in [FacePipeline::VgaTrain, FacePipeline::VgaEval, FacePipeline::QvgaEval] {
            let ds = FaceDataset::new(list.clone(), p, 1, &root()).unwrap();
            let item = ds.get(0).unwrap();
            assert_eq!(Some(item.shape), p.shape());
            assert_eq!(item.image.len(), item.shape.iter().product::<usize>());
            if p != FacePipeline::VgaTrain {
                // A plain resize keeps every face, normalised.
                assert_eq!(item.boxes.len(), ds.images()[0].boxes.len());
            }
        }
    }

    #[test]
    fn test_inputs_keep_the_aspect_within_the_pixel_budget() {
        let list = WiderFace::new(root()).split("val").unwrap();
        let ds = FaceDataset::new(list, FacePipeline::QvgaTest, 0, &root()).unwrap();
        for i in 0..ds.len() {
            let item = ds.get(i).unwrap();
            let (w, h) = image::image_dimensions(&ds.images()[i].image).unwrap();
            let [c, th, tw] = item.shape;
            assert_eq!(c, 1);
            assert!((th * tw) as f64 <= QVGA_TEST_PIXELS * 1.01, "{th}x{tw}");
            let (a, b) = (w as f64 / h as f64, tw as f64 / th as f64);
            assert!((a - b).abs() < 0.02, "aspect {a} -> {b}");
        }
    }

    #[test]
    fn batches_do_not_depend_on_the_worker_count() {
        let one = batches(1);
        assert_eq!(one.len(), 2);
        assert!(one == batches(2), "batches differ between 1 and 2 workers");
    }

    #[test]
    fn bad_images_fail_or_are_skipped_and_counted() {
        let mut list = WiderFace::new(root()).split("train").unwrap();
        list.images[0].image = "/no/such/image.jpg".into();
        let ds = FaceDataset::new(list.clone(), FacePipeline::QvgaTrain, 0, &root()).unwrap();
        let e = ds.get(0).unwrap_err().to_string();
        assert!(e.contains("/no/such/image.jpg"), "{e}");
        let ds = FaceDataset::new(list, FacePipeline::QvgaTrain, 0, &root()).unwrap().with_skip_bad(true);
        assert!(ds.get(0).is_ok());
        assert_eq!(ds.skipped(), 1);
        let mut empty = WiderFace::new(root()).split("val").unwrap();
        empty.images.iter_mut().for_each(|a| a.boxes.clear());
        assert!(matches!(FaceDataset::new(empty, FacePipeline::VgaTrain, 0, &root()), Err(DataError::Empty { .. })));
    }
}
