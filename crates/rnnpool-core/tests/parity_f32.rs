//! Parity with the original PyTorch RNNPool (EdgeML) in f32: every fixture, on both CPU
//! backends, through both the fused kernel and the composed tensor ops.

mod common;

use burn::prelude::*;
use burn::tensor::DType;
use common::{Case, check_case, fixture_files};
use rnnpool_core::RnnPoolImpl;

const TOL: f64 = 1e-4;

#[allow(deprecated)]
fn devices() -> Vec<(&'static str, Device)> {
    vec![("flex", Device::flex().autodiff()), ("ndarray", Device::ndarray().autodiff())]
}

fn run(imp: RnnPoolImpl) {
    let mut failures = Vec::new();
    for path in fixture_files() {
        let case = Case::load(&path);
        for (dev_name, device) in devices() {
            for (what, err) in check_case(&case, &device, DType::F32, imp) {
                let name = path.file_name().unwrap().to_string_lossy();
                eprintln!("{name} {dev_name} {imp:?} {what}: rel err {err:.2e}");
                if !(err <= TOL) {
                    failures.push(format!("{name} {dev_name} {imp:?} {what}: {err:.2e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "over {TOL:e}:\n{}", failures.join("\n"));
}

#[test]
fn fused_matches_edgeml_in_f32() {
    run(RnnPoolImpl::Fused);
}

#[test]
fn composed_matches_edgeml_in_f32() {
    run(RnnPoolImpl::Composed);
}
