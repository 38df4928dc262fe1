//! Data sets in their real on-disk formats. So far: the WIDER FACE annotation formats, SCUT-HEAD's
//! VOC XML, Fashion-MNIST's IDX files and image decoding, each with errors that name the file
//! (and line); the QVGA face training pipeline as a burn Dataset + Batcher. Still to come (the
//! "Data" issue): the VGA face and classification pipelines, ImageNet, Visual Wake Words, the
//! throughput benchmark, fuzz targets and download scripts.

pub mod augment;
pub mod error;
pub mod face_dataset;
pub mod fashion_mnist;
pub mod image_io;
pub mod scut;
pub mod wider;

pub use error::DataError;
