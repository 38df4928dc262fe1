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
