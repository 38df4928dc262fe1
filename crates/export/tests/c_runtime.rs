//! The generated C, compiled with the host gcc (-Wall -Wextra -Werror, address and
//! undefined-behaviour sanitizers), gives exactly the int8 simulator's outputs, for every
//! model fixture and for the small classifier with either pooling, MobileNetV2, MobileNetV2
//! with two RNNPools and a small DenseNet-RNNPool, on several inputs.

mod common;

use burn::prelude::*;
use common::{run_c, simulated};
use export::{QGraph, quantize};
use models::densenet::DenseRnnPoolConfig;
use models::{DenseNetConfig, MobileNetV2Config, SmallMobileNetConfig, StemPooling};
use zoo::Net;

/// The calibration images, a mirrored one and two of noise in the input's range.
fn test_inputs(q: &QGraph, images: &[Vec<f32>]) -> Vec<Vec<i8>> {
    let [h, w, c] = q.input_shape();
    let qp = q.params[q.input];
    let mut v: Vec<Vec<i8>> = images.iter().map(|x| x.iter().map(|f| qp.quantize(*f)).collect()).collect();
    let first = &images[0];
    let mirrored: Vec<f32> =
        (0..h * w * c).map(|i| first[(i / (w * c)) * w * c + (w - 1 - (i / c) % w) * c + i % c]).collect();
    v.push(mirrored.iter().map(|f| qp.quantize(*f)).collect());
    let mut seed = 0x9e3779b97f4a7c15u64;
    for _ in 0..2 {
        v.push(
            (0..h * w * c)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 56) as u8 as i8
                })
                .collect(),
        );
    }
    v
}

fn check(name: &str, q: &QGraph, images: &[Vec<f32>]) {
    let inputs = test_inputs(q, images);
    let c = run_c(name, q, &inputs);
    let rust = simulated(q, &inputs);
    assert_eq!(c.len(), rust.len(), "{name}: output size");
    let first = c.iter().zip(&rust).position(|(a, b)| a != b);
    assert!(first.is_none(), "{name}: C and the simulator differ first at byte {first:?}");
    eprintln!("{name}: {} inputs, {} output bytes, C == simulator", inputs.len(), c.len());
}

#[test]
fn generated_c_matches_the_simulator_on_the_fixture_models() {
    for f in common::fixtures() {
        let ranges = export::calibrate(&f.graph, f.inputs.iter().map(|v| v.as_slice())).unwrap();
        let q = quantize::quantize(&f.graph, &ranges).unwrap();
        check(&f.name, &q, &f.inputs);
    }
}

#[test]
fn generated_c_matches_the_simulator_on_the_other_classifiers() {
    let device = Device::flex();
    device.seed(3);
    let small = |pooling| Net::Small(SmallMobileNetConfig::new().with_pooling(pooling).init(&device).unwrap());
    let mobilenet = |cfg: MobileNetV2Config| Net::MobileNetV2(cfg.init(&device).unwrap());
    let cases = [
        ("small_rnnpool", small(StemPooling::RnnPool { hidden: 8 }), [28, 28, 1]),
        ("small_avgpool", small(StemPooling::Average), [28, 28, 1]),
        (
            "mobilenetv2_0.35",
            mobilenet(MobileNetV2Config::new().with_num_classes(10).with_width_mult(0.35)),
            [32, 32, 3],
        ),
        ("vww_two_rnnpools", mobilenet(MobileNetV2Config::vww_two_rnnpools()), [96, 96, 3]),
        // DenseNet121-RNNPool's layer types at a size that compiles quickly.
        (
            "densenet_rnnpool_small",
            Net::DenseNet(
                DenseNetConfig::new()
                    .with_num_classes(10)
                    .with_growth_rate(8)
                    .with_block_config([2, 2, 3, 2])
                    .with_init_features(16)
                    .with_bn_size(2)
                    .with_rnnpool(Some(DenseRnnPoolConfig::new().with_hidden(8).with_transition_out(24)))
                    .init(&device)
                    .unwrap(),
            ),
            [64, 64, 3],
        ),
    ];
    for (name, net, shape) in cases {
        let g = export::lower::lower(name, &net, shape).unwrap();
        let n: usize = shape.iter().product();
        let images: Vec<Vec<f32>> =
            (0..3).map(|k| (0..n).map(|i| ((i * (k + 3)) % 29) as f32 / 10.0 - 1.4).collect()).collect();
        let ranges = export::calibrate(&g, images.iter().map(|v| v.as_slice())).unwrap();
        let q = quantize::quantize(&g, &ranges).unwrap();
        check(name, &q, &images);
    }
}

/// A model whose first layer cannot take rows (an inverted residual): `model_run_rows()` reads
/// them into the frame first, and gives `model_run()`'s bytes.
#[test]
fn rows_into_the_frame_when_the_first_layer_needs_it_whole() {
    let device = Device::flex();
    device.seed(4);
    let net =
        Net::MobileNetV2(MobileNetV2Config::new().with_num_classes(10).with_width_mult(0.35).init(&device).unwrap());
    let g = export::lower::lower("mobilenetv2", &net, [32, 32, 3]).unwrap();
    let images: Vec<Vec<f32>> =
        (0..2).map(|k| (0..32 * 32 * 3).map(|i| ((i * (k + 5)) % 31) as f32 / 12.0 - 1.2).collect()).collect();
    let ranges = export::calibrate(&g, images.iter().map(|v| v.as_slice())).unwrap();
    let mut q = quantize::quantize(&g, &ranges).unwrap();
    let stem = q.layers.remove(0);
    q.input = stem.output;
    assert!(matches!(q.layers[0].op, export::quantize::QOp::InvertedResidual(_)));
    assert!(!export::plan::streams_input(&q) && export::plan::Plans::new(&q).rows.stores(q.input));
    let n: usize = q.input_shape().iter().product();
    let inputs: Vec<Vec<i8>> =
        (0..3).map(|k| (0..n).map(|i| ((i * 37 + k * 11) % 256) as u8 as i8).collect()).collect();
    assert!(run_c("first_layer_whole", &q, &inputs) == simulated(&q, &inputs), "C and the simulator differ");
}
