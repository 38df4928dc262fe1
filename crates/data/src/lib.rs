//! Data sets in their real on-disk formats, each with errors that name the file (and line):
//! WIDER FACE (both annotation formats), SCUT-HEAD's VOC XML, ImageNet / ImageNet-10 folder
//! trees, Visual Wake Words from COCO instances JSON, Fashion-MNIST's IDX files; the original's
//! augmentation (QVGA and VGA face pipelines, torchvision's classification transforms) and burn
//! `Dataset` + `Batcher` types for faces and for classification.

#![warn(missing_docs)]

pub mod augment;
pub mod class_dataset;
pub mod draw;
pub mod epoch_draw;
pub mod error;
pub mod face_dataset;
pub mod fashion_mnist;
pub mod image_io;
pub mod imagenet;
pub mod matlab;
pub mod scut;
pub mod text;
pub mod vww;
pub mod wider;
pub mod wider_eval;

pub use error::DataError;
