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
use crate::wider::{FaceAnnotation, FaceBox, FaceList};
use image::imageops::FilterType;
use rayon::prelude::*;

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

/// What [`FaceDataset::new`] found when it read every image's header.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Screening {
    /// Images left out because their header cannot be read (with `skip_bad`): each error.
    pub unreadable: Vec<String>,
    /// Boxes reaching partly outside their image, clipped to it.
    pub clipped_boxes: usize,
}

/// A box is clipped to its image when at least this share of its area is inside, and refused
/// (an annotation error) when less is.
pub const MIN_INSIDE: f32 = 0.5;

/// Clips `a`'s boxes to its `(width, height)` image; the count clipped, or an error naming the
/// annotation's file and line for a box mostly outside.
pub fn clip_boxes(a: &mut FaceAnnotation, (width, height): (u32, u32)) -> Result<usize, DataError> {
    let (w, h) = (width as f32, height as f32);
    let area = |b: &FaceBox| b.width().max(0.0) * b.height().max(0.0);
    let mut clipped = 0;
    for (k, b) in a.boxes.iter_mut().enumerate() {
        let inside = FaceBox {
            x1: b.x1.clamp(0.0, w),
            y1: b.y1.clamp(0.0, h),
            x2: b.x2.clamp(0.0, w),
            y2: b.y2.clamp(0.0, h),
            ..*b
        };
        if area(&inside) < MIN_INSIDE * area(b) {
            let message = format!(
                "face {} of {}: box x {}..{}, y {}..{} lies outside the {width}x{height} image (at least half \
                 of a box must be inside x 0..{width}, y 0..{height})",
                k + 1,
                a.image.display(),
                b.x1,
                b.x2,
                b.y1,
                b.y2
            );
            return Err(DataError::Parse { path: a.origin.file.clone(), line: a.origin.line, message });
        }
        if inside != *b {
            *b = inside;
            clipped += 1;
        }
    }
    Ok(clipped)
}

/// Images with at least one face (as the original keeps them), made into samples by a
/// [`FacePipeline`]. Every image's header is read up front: sizes are checked, boxes are clipped
/// to their image or refused, and (with `skip_bad`) unreadable images are left out and counted.
pub struct FaceDataset {
    images: Vec<FaceAnnotation>,
    sizes: Vec<(u32, u32)>,
    pipeline: FacePipeline,
    draw: EpochDraw,
    screening: Screening,
}

impl FaceDataset {
    /// An error naming `origin` (where the list came from) when no image has a face: no silent
    /// zero-step epochs. `skip_bad`: images that cannot be read are skipped and counted (here and
    /// when decoding fails later) instead of being errors.
    pub fn new(
        list: FaceList,
        pipeline: FacePipeline,
        seed: u64,
        origin: &std::path::Path,
        skip_bad: bool,
    ) -> Result<Self, DataError> {
        let candidates: Vec<FaceAnnotation> = list.images.into_iter().filter(|a| !a.boxes.is_empty()).collect();
        let headers: Vec<Result<(u32, u32), DataError>> =
            candidates.par_iter().map(|a| crate::image_io::dimensions(&a.image)).collect();
        let (mut images, mut sizes, mut screening) = (Vec::new(), Vec::new(), Screening::default());
        for (mut a, header) in candidates.into_iter().zip(headers) {
            match header {
                Ok(size) => {
                    screening.clipped_boxes += clip_boxes(&mut a, size)?;
                    images.push(a);
                    sizes.push(size);
                }
                Err(e) if skip_bad => screening.unreadable.push(e.to_string()),
                Err(e) => return Err(e),
            }
        }
        if images.is_empty() {
            return Err(DataError::Empty { path: origin.into() });
        }
        let mut draw = EpochDraw::new(seed);
        draw.set_skip_bad(skip_bad);
        Ok(Self { images, sizes, pipeline, draw, screening })
    }

    /// The pipeline samples go through.
    pub fn pipeline(&self) -> FacePipeline {
        self.pipeline
    }

    /// The annotated images, in the order `get` indexes them.
    pub fn images(&self) -> &[FaceAnnotation] {
        &self.images
    }

    /// `(width, height)` of each image, from its header.
    pub fn sizes(&self) -> &[(u32, u32)] {
        &self.sizes
    }

    /// What reading the headers found.
    pub fn screening(&self) -> &Screening {
        &self.screening
    }

    /// Whether unreadable images are skipped rather than errors.
    pub fn skip_bad(&self) -> bool {
        self.draw.skip_bad()
    }

    /// The epoch whose augmentation `get` draws.
    pub fn set_epoch(&self, epoch: u64) {
        self.draw.set_epoch(epoch);
    }

    /// Images skipped by `get` so far because they could not be decoded.
    pub fn skipped(&self) -> usize {
        self.draw.skipped()
    }

    /// Sample `index` exactly (no skipping to another image: evaluation must know which image it
    /// scored).
    pub fn load(&self, index: usize) -> Result<FaceItem, DataError> {
        let a = self.images.get(index).ok_or(DataError::OutOfRange { index, len: self.images.len() })?;
        let img = load_rgb(&a.image)?;
        Ok(self.pipeline.apply(&img, &a.boxes, &mut self.draw.rng(index)))
    }
}

impl Dataset<FaceItem> for FaceDataset {
    fn get(&self, index: usize) -> Result<FaceItem, DatasetError> {
        self.draw.get(index, self.images.len(), |i| self.load(i))
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
        FaceDataset::new(WiderFace::new(root()).split("train").unwrap(), FacePipeline::QvgaTrain, 3, &root(), false)
            .unwrap()
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
            let ds = FaceDataset::new(list.clone(), p, 1, &root(), false).unwrap();
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
        let ds = FaceDataset::new(list, FacePipeline::QvgaTest, 0, &root(), false).unwrap();
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

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("face-ds-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn unreadable_images_fail_or_are_skipped_and_counted() {
        let mut list = WiderFace::new(root()).split("train").unwrap();
        list.images[0].image = "/no/such/image.jpg".into();
        let e = FaceDataset::new(list.clone(), FacePipeline::QvgaTrain, 0, &root(), false).err().unwrap().to_string();
        assert!(e.contains("/no/such/image.jpg"), "{e}");
        let ds = FaceDataset::new(list, FacePipeline::QvgaTrain, 0, &root(), true).unwrap();
        assert_eq!((ds.len(), ds.screening().unreadable.len()), (3, 1));
        let mut empty = WiderFace::new(root()).split("val").unwrap();
        empty.images.iter_mut().for_each(|a| a.boxes.clear());
        let e = FaceDataset::new(empty, FacePipeline::VgaTrain, 0, &root(), false);
        assert!(matches!(e, Err(DataError::Empty { .. })));
    }

    #[test]
    fn a_truncated_photo_is_skipped_by_get_and_an_error_for_load() {
        let mut list = WiderFace::new(root()).split("train").unwrap();
        let bytes = std::fs::read(&list.images[0].image).unwrap();
        let cut = temp_dir("cut").join("cut.jpg");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        list.images[0].image = cut.clone();
        let strict = FaceDataset::new(list.clone(), FacePipeline::QvgaTrain, 0, &root(), false).unwrap();
        let e = strict.get(0).unwrap_err().to_string();
        assert!(e.contains("cut.jpg") && e.contains("truncated JPEG"), "{e}");
        let lenient = FaceDataset::new(list, FacePipeline::QvgaTrain, 0, &root(), true).unwrap();
        assert!(lenient.get(0).is_ok());
        assert_eq!(lenient.skipped(), 1);
        assert!(lenient.load(0).is_err(), "load never substitutes another image");
    }

    #[test]
    fn boxes_slightly_outside_are_clipped_and_absurd_ones_refused() {
        let mut list = WiderFace::new(root()).split("train").unwrap();
        let (w, _) = crate::image_io::dimensions(&list.images[0].image).unwrap();
        let b = &mut list.images[0].boxes[0];
        (b.x1, b.x2) = (w as f32 - 10.0, w as f32 + 5.0);
        let ds = FaceDataset::new(list.clone(), FacePipeline::QvgaTrain, 0, &root(), false).unwrap();
        assert_eq!(ds.screening().clipped_boxes, 1);
        assert_eq!(ds.images()[0].boxes[0].x2, w as f32);
        let b = &mut list.images[0].boxes[0];
        (b.x1, b.y1, b.x2, b.y2) = (5000.0, 5000.0, 5010.0, 5010.0);
        for skip_bad in [false, true] {
            let e = FaceDataset::new(list.clone(), FacePipeline::QvgaTrain, 0, &root(), skip_bad).err().unwrap();
            let e = e.to_string();
            assert!(e.contains("wider_face_train_bbx_gt.txt:1:") && e.contains("outside the 500x375 image"), "{e}");
        }
    }
}
