//! The float graph reproduces EdgeML's outputs, and the int8 model follows the float one.

mod common;

use common::{fixtures, outputs};
use export::{float_sim, int8_sim, quantize};

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

#[test]
fn lowered_graphs_reproduce_edgeml_outputs_in_f32() {
    for f in fixtures() {
        for (x, want) in f.inputs.iter().zip(&f.expected) {
            let got = outputs(&f.graph, &float_sim::run(&f.graph, x, None));
            assert_eq!(got.len(), want.len(), "{}", f.name);
            let err = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max) / max_abs(want);
            eprintln!("{}: float graph rel err {err:.2e}", f.name);
            assert!(err < 1e-3, "{}: {err}", f.name);
        }
    }
}

#[test]
fn int8_outputs_follow_the_float_outputs() {
    for f in fixtures() {
        let ranges = export::calibrate(&f.graph, f.inputs.iter().map(|v| v.as_slice())).unwrap();
        let q = quantize::quantize(&f.graph, &ranges).unwrap();
        for x in &f.inputs {
            let float = outputs(&f.graph, &float_sim::run(&f.graph, x, None));
            let qin: Vec<i8> = x.iter().map(|v| q.params[q.input].quantize(*v)).collect();
            let ints = int8_sim::run(&q, &qin);
            let deq: Vec<f32> =
                q.outputs.iter().flat_map(|(t, _)| ints[*t].iter().map(|v| q.params[*t].dequantize(*v))).collect();
            let err = deq.iter().zip(&float).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max) / max_abs(&float);
            let mean =
                deq.iter().zip(&float).map(|(a, b)| (a - b).abs()).sum::<f32>() / float.len() as f32 / max_abs(&float);
            eprintln!("{}: int8 vs float: largest error {err:.3} of the largest output, mean {mean:.4}", f.name);
            assert!(mean < 0.05, "{}: mean error {mean}", f.name);
        }
    }
}

/// DenseNet121-RNNPool has no fixture: its lowered float graph against burn's own forward pass.
/// A fresh model's running statistics (mean 0, variance 1) make a deep net's output nearly
/// constant, so BatchNorm first takes the statistics of a batch (momentum 1, one training-mode
/// pass): then every layer's output varies with the input.
#[test]
fn lowered_densenet_reproduces_burn_forward() {
    use burn::prelude::*;
    use models::DenseNetConfig;
    use zoo::Net;
    let plain = Device::flex();
    let device = plain.clone().autodiff();
    device.seed(11);
    let mut m = DenseNetConfig::rnnpool_121(10).init(&device).unwrap();
    m.norm0.momentum = 1.0;
    m.norm5.momentum = 1.0;
    for layer in m.blocks.iter_mut().flatten() {
        (layer.norm1.momentum, layer.norm2.momentum) = (1.0, 1.0);
    }
    for t in m.transitions.iter_mut().flatten() {
        t.norm.momentum = 1.0;
    }
    let [h, w, c] = [64, 64, 3];
    let image = |k: usize| -> Vec<f32> { (0..c * h * w).map(|i| ((i * 31 * k) % 97) as f32 / 40.0 - 1.2).collect() };
    let batch: Vec<f32> = (1..5).flat_map(image).collect();
    let _ = m.forward(Tensor::<4>::from_data(burn::tensor::TensorData::new(batch, [4, c, h, w]), &device)).unwrap();
    let net = Net::DenseNet(m.valid());
    let g = export::lower::lower("densenet121_rnnpool", &net, [h, w, c]).unwrap();
    let mut outs = Vec::new();
    for k in [1, 7] {
        let chw = image(k);
        let want = net
            .classify(Tensor::<4>::from_data(burn::tensor::TensorData::new(chw.clone(), [1, c, h, w]), &plain))
            .unwrap();
        let want = want.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let got = outputs(&g, &float_sim::run(&g, &export::chw_to_hwc(&chw, [c, h, w]), None));
        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max) / max_abs(&want);
        eprintln!("densenet121_rnnpool, input {k}: float graph vs burn rel err {err:.2e}, logits {want:.3?}");
        assert!(err < 1e-3, "{err}");
        outs.push(want);
    }
    let spread = outs[0].iter().zip(&outs[1]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max) / max_abs(&outs[0]);
    assert!(spread > 0.01, "the logits hardly depend on the input ({spread}): the comparison would prove little");
}
