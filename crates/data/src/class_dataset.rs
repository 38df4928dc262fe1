//! Classification samples as burn `Dataset`s (photo folders with torchvision's transforms, and
//! Fashion-MNIST) and the `Batcher` that stacks them. Each sample's augmentation is seeded by
//! (seed, epoch, index), so batches do not depend on the number of loader workers.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::prelude::*;
use burn::tensor::{Int, TensorData};

use crate::DataError;
use crate::augment::classification;
use crate::epoch_draw::EpochDraw;
use crate::fashion_mnist::Mnist;
use crate::image_io::load_rgb;
use crate::imagenet::ClassList;

/// One classification sample: a normalised CHW image and its class.
#[derive(Clone, Debug)]
pub struct ClassItem {
    /// `[channels, height, width]`, normalised.
    pub image: Vec<f32>,
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    /// The class index.
    pub label: usize,
}

/// Training (RandomResizedCrop with `scale`, flip) or evaluation (resize + centre crop), at
/// `size x size`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClassPipeline {
    /// Training: RandomResizedCrop to `size` with area range `scale`, flip.
    Train {
        /// Output side.
        size: u32,
        /// RandomResizedCrop's area range.
        scale: (f64, f64),
    },
    /// Evaluation: resize and centre crop to `size`.
    Eval {
        /// Output side.
        size: u32,
    },
}

/// Labelled photos (ImageNet, ImageNet-10, Visual Wake Words).
pub struct ImageClassDataset {
    list: ClassList,
    pipeline: ClassPipeline,
    draw: EpochDraw,
}

impl ImageClassDataset {
    /// An error naming `origin` when `list` is empty.
    pub fn new(
        list: ClassList,
        pipeline: ClassPipeline,
        seed: u64,
        origin: &std::path::Path,
    ) -> Result<Self, DataError> {
        if list.items.is_empty() {
            return Err(DataError::Empty { path: origin.into() });
        }
        Ok(Self { list, pipeline, draw: EpochDraw::new(seed) })
    }

    /// Skip (and count) images that cannot be read instead of failing on them.
    pub fn with_skip_bad(mut self, skip: bool) -> Self {
        self.draw.set_skip_bad(skip);
        self
    }

    /// The epoch whose augmentation samples draw.
    pub fn set_epoch(&self, epoch: u64) {
        self.draw.set_epoch(epoch);
    }

    /// Samples skipped as unreadable so far (with `skip_bad`).
    pub fn skipped(&self) -> usize {
        self.draw.skipped()
    }

    /// Whether unreadable images are skipped rather than errors.
    pub fn skip_bad(&self) -> bool {
        self.draw.skip_bad()
    }

    /// The class names, by index.
    pub fn classes(&self) -> &[String] {
        &self.list.classes
    }

    /// The pipeline samples go through.
    pub fn pipeline(&self) -> ClassPipeline {
        self.pipeline
    }

    /// The labelled images, in the order `get` indexes them.
    pub fn items(&self) -> &[(std::path::PathBuf, usize)] {
        &self.list.items
    }

    /// Sample `index` exactly (no skipping to another image, as evaluation needs).
    pub fn load(&self, index: usize) -> Result<ClassItem, DataError> {
        let len = self.list.items.len();
        let (path, label) = self.list.items.get(index).ok_or(DataError::OutOfRange { index, len })?;
        let img = load_rgb(path)?;
        let (out, size) = match self.pipeline {
            ClassPipeline::Train { size, scale } => {
                (classification::train(&img, size, scale, &mut self.draw.rng(index)), size as usize)
            }
            ClassPipeline::Eval { size } => (classification::val(&img, size), size as usize),
        };
        Ok(ClassItem { image: classification::normalize(&out), shape: [3, size, size], label: *label })
    }
}

impl Dataset<ClassItem> for ImageClassDataset {
    fn get(&self, index: usize) -> Result<ClassItem, DatasetError> {
        self.draw.get(index, self.list.items.len(), |i| self.load(i))
    }

    fn len(&self) -> usize {
        self.list.items.len()
    }
}

/// Fashion-MNIST's mean and standard deviation of pixel/255 over the training set.
pub const FASHION_MNIST_MEAN: f32 = 0.2860;
/// Fashion-MNIST's pixel standard deviation (0..1 scale).
pub const FASHION_MNIST_STD: f32 = 0.3530;

/// Fashion-MNIST, `[1, 28, 28]`, normalised with its mean/std; training samples flipped with
/// p = 0.5.
pub struct FashionMnistDataset {
    data: Mnist,
    train: bool,
    draw: EpochDraw,
}

impl FashionMnistDataset {
    /// `data` with the training augmentation when `train`, seeded by `seed`.
    pub fn new(data: Mnist, train: bool, seed: u64) -> Self {
        Self { data, train, draw: EpochDraw::new(seed) }
    }

    /// The epoch whose augmentation samples draw.
    pub fn set_epoch(&self, epoch: u64) {
        self.draw.set_epoch(epoch);
    }

    /// Whether training samples are flipped at random.
    pub fn is_train(&self) -> bool {
        self.train
    }

    /// The images and labels.
    pub fn data(&self) -> &Mnist {
        &self.data
    }

    /// The first `n` samples only (quick runs and tests).
    pub fn truncate(&mut self, n: usize) {
        let pixels = self.data.rows * self.data.cols;
        self.data.labels.truncate(n);
        self.data.images.truncate(n * pixels);
    }
}

impl Dataset<ClassItem> for FashionMnistDataset {
    fn get(&self, index: usize) -> Result<ClassItem, DatasetError> {
        if index >= self.data.len() {
            return Err(DatasetError::new(DataError::OutOfRange { index, len: self.data.len() }));
        }
        let (rows, cols) = (self.data.rows, self.data.cols);
        let flip = self.train && self.draw.rng(index).coin(0.5);
        let src = self.data.image(index);
        let mut image = Vec::with_capacity(rows * cols);
        for y in 0..rows {
            for x in 0..cols {
                let sx = if flip { cols - 1 - x } else { x };
                image.push((src[y * cols + sx] as f32 / 255.0 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD);
            }
        }
        Ok(ClassItem { image, shape: [1, rows, cols], label: self.data.labels[index] as usize })
    }

    fn len(&self) -> usize {
        self.data.len()
    }
}

/// Images `[batch, channels, height, width]` and labels `[batch]`.
#[derive(Clone, Debug)]
pub struct ClassBatch {
    /// `[batch, channels, height, width]`.
    pub images: Tensor<4>,
    /// `[batch]` class indices.
    pub labels: Tensor<1, Int>,
}

/// Stacks [`ClassItem`]s into a [`ClassBatch`].
#[derive(Clone, Debug, Default)]
pub struct ClassBatcher;

impl Batcher<ClassItem, ClassBatch> for ClassBatcher {
    fn batch(&self, items: Vec<ClassItem>, device: &Device) -> ClassBatch {
        let shape = items.first().map_or([1, 1, 1], |i| i.shape);
        let n = items.len();
        let mut pixels = Vec::with_capacity(n * shape.iter().product::<usize>());
        let mut labels = Vec::with_capacity(n);
        for item in items {
            pixels.extend_from_slice(&item.image);
            labels.push(item.label as i64);
        }
        ClassBatch {
            images: Tensor::from_data(TensorData::new(pixels, [n, shape[0], shape[1], shape[2]]), device),
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::classification::IMAGENET_SCALE;
    use crate::imagenet::ImageNet;
    use burn::data::dataloader::DataLoaderBuilder;

    /// An ImageNet-layout tree made of the bundled photos: 2 classes of 2 photos each.
    fn photo_tree() -> std::path::PathBuf {
        let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/wider_sample");
        let list = crate::wider::WiderFace::new(&sample).split("train").unwrap();
        let root = std::env::temp_dir().join(format!("classds-{}", std::process::id()));
        for (i, a) in list.images.iter().enumerate() {
            let d = root.join("train").join(["n001", "n002"][i % 2]);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(&a.image, d.join(format!("{i}.JPEG"))).unwrap();
        }
        root
    }

    #[test]
    fn photos_batch_into_normalised_tensors_whatever_the_worker_count() {
        let root = photo_tree();
        let list = ImageNet::new(&root).split("train").unwrap();
        let pipe = ClassPipeline::Train { size: 64, scale: IMAGENET_SCALE };
        let mut runs = Vec::new();
        for workers in [1, 2] {
            let ds = ImageClassDataset::new(list.clone(), pipe, 9, &root).unwrap();
            let loader = DataLoaderBuilder::new(ClassBatcher).batch_size(2).num_workers(workers).build(ds);
            let mut sums: Vec<(i64, String)> = loader
                .iter()
                .map(|b| {
                    let b = b.unwrap();
                    assert_eq!(b.images.dims(), [2, 3, 64, 64]);
                    let v = b.images.into_data().try_to_vec::<f32>().unwrap();
                    assert!(v.iter().all(|x| x.is_finite() && x.abs() < 3.0));
                    let labels: Vec<i64> = b.labels.into_data().iter::<i64>().collect();
                    ((v.iter().map(|x| *x as f64).sum::<f64>() * 1e3) as i64, format!("{labels:?}"))
                })
                .collect();
            sums.sort();
            runs.push(sums);
        }
        assert_eq!(runs[0].len(), 2);
        assert_eq!(runs[0], runs[1]);
        let eval = ImageClassDataset::new(list.clone(), ClassPipeline::Eval { size: 32 }, 0, &root).unwrap();
        assert_eq!(eval.get(3).unwrap().shape, [3, 32, 32]);
        assert_eq!(eval.get(3).unwrap().label, 1);
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn empty_lists_and_bad_photos_are_errors_naming_paths() {
        let root = std::path::Path::new("/nowhere");
        let e = ImageClassDataset::new(ClassList::default(), ClassPipeline::Eval { size: 8 }, 0, root);
        assert!(e.err().unwrap().to_string().contains("/nowhere"));
        let list = ClassList { items: vec![("/no/img.JPEG".into(), 0), ("/no/img2.JPEG".into(), 0)], classes: vec![] };
        let ds = ImageClassDataset::new(list, ClassPipeline::Eval { size: 8 }, 0, root).unwrap();
        assert!(ds.get(0).unwrap_err().to_string().contains("/no/img.JPEG"));
    }

    #[test]
    fn fashion_mnist_items_are_normalised_and_flipped_only_in_training() {
        let mut images = vec![0u8; 2 * 28 * 28];
        images[0] = 255; // top-left pixel of image 0
        let data = Mnist { images, labels: vec![4, 7], rows: 28, cols: 28 };
        let test = FashionMnistDataset::new(data.clone(), false, 0);
        let item = test.get(0).unwrap();
        assert_eq!((item.shape, item.label), ([1, 28, 28], 4));
        assert!((item.image[0] - (1.0 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD).abs() < 1e-6);
        let train = FashionMnistDataset::new(data, true, 0);
        let flipped = (0..20).any(|e| {
            train.set_epoch(e);
            train.get(0).unwrap().image[27] > 1.0
        });
        assert!(flipped, "no training draw flipped the image in 20 epochs");
        assert!(test.get(2).is_err());
    }
}
