//! Data sets in their real on-disk formats. So far: the WIDER FACE annotation formats, SCUT-HEAD's
//! VOC XML, Fashion-MNIST's IDX files and image decoding, each with errors that name the file
//! (and line). Augmentation, the burn Dataset/Batcher types, ImageNet and Visual Wake Words are
//! still to come (the "Data" issue).

pub mod augment;
pub mod error;
pub mod fashion_mnist;
pub mod image_io;
pub mod scut;
pub mod wider;

pub use error::DataError;
