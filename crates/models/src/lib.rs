//! MobileNetV2, DenseNet121 and the RNNPool face detectors. Not implemented yet: this crate is
//! an empty placeholder in the workspace until its issue ("Models") is done.
