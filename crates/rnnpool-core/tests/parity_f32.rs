//! Parity with the original PyTorch RNNPool (EdgeML) in f32: every fixture, on both CPU
//! backends, through both the fused kernel and the composed tensor ops.

mod common;

use burn::prelude::*;
use burn::tensor::DType;
use rnnpool_core::RnnPoolImpl;

const TOL: f64 = 1e-4;

#[allow(deprecated)]
fn devices() -> Vec<(&'static str, Device)> {
    vec![("flex", Device::flex().autodiff()), ("ndarray", Device::ndarray().autodiff())]
}

fn run(imp: RnnPoolImpl) {
    common::assert_parity(&devices(), DType::F32, imp, |_| TOL);
}

#[test]
fn fused_matches_edgeml_in_f32() {
    run(RnnPoolImpl::Fused);
}

#[test]
fn composed_matches_edgeml_in_f32() {
    run(RnnPoolImpl::Composed);
}
