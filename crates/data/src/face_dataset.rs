//! WIDER-format face images as a burn `Dataset` of augmented samples, and the `Batcher` that
//! stacks them into tensors. Each sample's augmentation is seeded by (seed, epoch, index), so a
//! batch is the same whatever the number of loader workers.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::prelude::*;
use burn::tensor::TensorData;

use crate::DataError;
use crate::augment::AugRng;
use crate::augment::face::{QVGA_TRAIN_SIDE, normalize_gray, normalized_boxes, qvga_train};
use crate::image_io::load_rgb;
use crate::wider::{FaceAnnotation, FaceList};

/// One augmented training sample.
#[derive(Clone, Debug)]
pub struct FaceItem {
    /// `[channels, height, width]`, normalised as the model expects.
    pub image: Vec<f32>,
    pub shape: [usize; 3],
    /// Faces as `(x1, y1, x2, y2)` in `[0, 1]`.
    pub boxes: Vec<[f32; 4]>,
}

/// Training images with at least one face (as the original keeps them), augmented with the
/// QVGA monochrome pipeline (RNNPool-Face-M4 and -QVGA-monochrome).
pub struct FaceDataset {
    images: Vec<FaceAnnotation>,
    seed: u64,
    epoch: AtomicU64,
    skip_bad: bool,
    skipped: AtomicUsize,
}

impl FaceDataset {
    /// An error when no image has a face (no silent zero-step epochs).
    pub fn qvga(list: FaceList, seed: u64, origin: &std::path::Path) -> Result<Self, DataError> {
        let images: Vec<FaceAnnotation> = list.images.into_iter().filter(|a| !a.boxes.is_empty()).collect();
        if images.is_empty() {
            return Err(DataError::Empty { path: origin.into() });
        }
        Ok(Self { images, seed, epoch: AtomicU64::new(0), skip_bad: false, skipped: AtomicUsize::new(0) })
    }

    /// Skip (and count) images that cannot be read instead of failing on them.
    pub fn with_skip_bad(mut self, skip: bool) -> Self {
        self.skip_bad = skip;
        self
    }

    /// The epoch whose augmentation `get` draws.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// Images skipped so far because they could not be read.
    pub fn skipped(&self) -> usize {
        self.skipped.load(Ordering::Relaxed)
    }

    fn sample(&self, index: usize) -> Result<FaceItem, DataError> {
        let a = &self.images[index];
        let img = load_rgb(&a.image)?;
        let mut rng = AugRng::for_sample(self.seed, self.epoch.load(Ordering::Relaxed), index as u64);
        let (img, boxes) = qvga_train(&img, &a.boxes, &mut rng);
        let side = QVGA_TRAIN_SIDE as usize;
        Ok(FaceItem {
            image: normalize_gray(&img),
            shape: [1, side, side],
            boxes: normalized_boxes(&boxes, img.width(), img.height()),
        })
    }
}

impl Dataset<FaceItem> for FaceDataset {
    fn get(&self, index: usize) -> Result<FaceItem, DatasetError> {
        let n = self.images.len();
        let mut k = 0;
        loop {
            match self.sample((index + k) % n) {
                Ok(item) => return Ok(item),
                // Skipping moves on to the next image, once round the whole set at most.
                Err(_) if self.skip_bad && k + 1 < n => {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    k += 1;
                }
                Err(e) => return Err(DatasetError::new(e)),
            }
        }
    }

    fn len(&self) -> usize {
        self.images.len()
    }
}

/// A batch: images `[batch, channels, height, width]` and each image's boxes.
#[derive(Clone, Debug)]
pub struct FaceBatch {
    pub images: Tensor<4>,
    pub boxes: Vec<Vec<[f32; 4]>>,
}

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
        FaceDataset::qvga(WiderFace::new(root()).split("train").unwrap(), 3, &root()).unwrap()
    }

    /// Each batch as a fingerprint (its pixel bits and boxes), sorted: burn's multi-worker
    /// loader yields batches in completion order, so only the set of batches is compared.
    fn batches(workers: usize) -> Vec<(u64, String)> {
        let device = Device::flex();
        let loader = DataLoaderBuilder::new(FaceBatcher)
            .batch_size(2)
            .num_workers(workers)
            .set_device(device)
            .build(dataset());
        let mut out: Vec<(u64, String)> = loader
            .iter()
            .map(|b| b.unwrap())
            .map(|b| {
                let pixels = b.images.into_data().try_to_vec::<f32>().unwrap();
                let hash = pixels.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
                    (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3)
                });
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
    fn batches_do_not_depend_on_the_worker_count() {
        let one = batches(1);
        assert_eq!(one.len(), 2);
        assert!(one == batches(2), "batches differ between 1 and 2 workers");
    }

    #[test]
    fn bad_images_fail_or_are_skipped_and_counted() {
        let mut list = WiderFace::new(root()).split("train").unwrap();
        list.images[0].image = "/no/such/image.jpg".into();
        let ds = FaceDataset::qvga(list.clone(), 0, &root()).unwrap();
        let e = ds.get(0).unwrap_err().to_string();
        assert!(e.contains("/no/such/image.jpg"), "{e}");
        let ds = FaceDataset::qvga(list, 0, &root()).unwrap().with_skip_bad(true);
        assert!(ds.get(0).is_ok());
        assert_eq!(ds.skipped(), 1);
        let mut empty = WiderFace::new(root()).split("val").unwrap();
        empty.images.iter_mut().for_each(|a| a.boxes.clear());
        assert!(matches!(FaceDataset::qvga(empty, 0, &root()), Err(DataError::Empty { .. })));
    }
}
