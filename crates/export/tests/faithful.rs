//! The int8 face detector follows the float one on the bundled photos (EdgeML's
//! RNNPool-Face-M4 weights from the fixtures, calibrated on the training photos, compared on
//! the validation photos at the deployed 320x240). Those weights are random, so their scores
//! are near-ties and AP means nothing: the test bounds the logit and face-probability errors;
//! the README reports AP for a trained model (`export` prints it).

mod common;

use burn::prelude::*;
use export::compare::compare_faces;
use export::inputs::{Preprocess, calibration_inputs};
use export::quantize;
use models::FaceArch;
use zoo::Net;

#[test]
fn int8_face_m4_follows_the_float_scores() {
    let device = Device::flex();
    let state = common::model_fixture("RPool_Face_M4");
    let net = Net::Face(FaceArch::M4.init(&device).unwrap().load_edgeml(&state).unwrap());
    let shape = [240, 320, 1];
    let g = export::lower::lower("face_m4", &net, shape).unwrap();
    let sample = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/wider_sample");
    let images = calibration_inputs(&sample.join("WIDER_train/images"), shape, Preprocess::FaceGray, 8).unwrap();
    let ranges = export::calibrate(&g, images.iter().map(|v| v.as_slice())).unwrap();
    let q = quantize::quantize(&g, &ranges).unwrap();
    let list = data::wider::WiderFace::new(&sample).split("val").unwrap();
    let c = compare_faces(&g, &q, &list, Preprocess::FaceGray, true).unwrap();
    eprintln!("{c:?}");
    assert_eq!(c.images, list.images.len());
    assert!(c.detections_float > 0, "no detections to compare");
    assert!(c.max_logit_error < 0.1, "logits differ by up to {}", c.max_logit_error);
    assert!(c.max_score_error < 0.05, "face probabilities differ by up to {}", c.max_score_error);
}
