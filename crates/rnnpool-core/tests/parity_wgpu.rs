//! Parity with the original PyTorch RNNPool on burn's wgpu backend (f32): the composed tensor
//! ops, and the fused CubeCL kernels against both the fixtures and the composed version. Without
//! a GPU this runs on Mesa's lavapipe (`apt-get install mesa-vulkan-drivers libvulkan1`), slowly:
//! `cargo test -p rnnpool-core --features wgpu --test parity_wgpu`.

#![cfg(feature = "wgpu")]

mod common;

use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::{DType, DeviceKind};
use rnnpool_core::{RnnPoolImpl, RnnPoolLayerConfig};

fn wgpu() -> Device {
    Device::wgpu(DeviceKind::DefaultDevice).autodiff()
}

#[test]
fn composed_matches_edgeml_on_wgpu() {
    common::assert_parity(&[("wgpu", wgpu())], DType::F32, RnnPoolImpl::Composed, |_| 1e-4);
}

#[test]
fn fused_matches_edgeml_on_wgpu() {
    common::assert_parity(&[("wgpu", wgpu())], DType::F32, RnnPoolImpl::Fused, |_| 1e-4);
}

/// Runs `layer` fused and composed on wgpu on `x` and checks the output and every gradient agree.
fn assert_fused_matches_composed(cfg: RnnPoolLayerConfig, shape: [usize; 4]) -> Vec<f64> {
    let device = wgpu();
    let fused = cfg.with_implementation(RnnPoolImpl::Fused).init(&device).unwrap();
    let mut composed = fused.clone();
    composed.pool.implementation = RnnPoolImpl::Composed;
    device.seed(11);
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad();
    let out_dims = fused.forward(x.clone()).dims();
    let weights = Tensor::<4>::random(out_dims, Distribution::Normal(0.0, 1.0), &device);
    let run = |layer: &rnnpool_core::RnnPoolLayer| {
        common::results(layer.forward(x.clone()), &x, &common::params(&layer.pool), weights.clone())
    };
    let (got, want) = (run(&fused), run(&composed));
    for ((name, g), (_, c)) in got.iter().zip(&want) {
        let err = common::rel_err(g, c);
        eprintln!("{shape:?} {name}: rel err {err:.2e}");
        assert!(err < 1e-4, "{shape:?} {name}: fused differs from composed by {err:.2e}");
    }
    got[1].1.clone()
}

/// Shapes the fixtures do not cover: a non-square patch, strides that differ per axis and leave
/// the last input row and column outside every patch (their gradient must be zero, not stale
/// memory), odd hidden sizes, and a batch of two.
#[test]
fn fused_matches_composed_on_wgpu_for_uneven_grids() {
    let cfg = RnnPoolLayerConfig::new(3, [3, 5], [2, 3], 5, 3);
    let grad_input = assert_fused_matches_composed(cfg, [2, 3, 10, 15]);
    // Row 9 and column 14 lie outside every patch: (10 - 3) / 2 * 2 + 3 = 9, (15 - 5) / 3 * 3 + 5 = 14.
    let (h, w) = (10, 15);
    for (i, v) in grad_input.iter().enumerate() {
        let (y, x) = ((i / w) % h, i % w);
        if y == 9 || x == 14 {
            assert_eq!(*v, 0.0, "input gradient at uncovered pixel ({y}, {x})");
        }
    }
}

/// Sizes that divide into nothing: 3 * 37 * 41 = 4551 pixels make dW's blocks of 1024 steps end
/// in a short one, and the parameter sums run several passes of partial groups.
#[test]
fn fused_matches_composed_on_wgpu_for_ragged_blocks() {
    assert_fused_matches_composed(RnnPoolLayerConfig::new(3, [3, 5], [2, 3], 5, 3), [3, 3, 37, 41]);
}

/// Where the cell (`U` and the biases) does not fit a cube's shared memory (hidden sizes above
/// 63 where a device has Vulkan's minimum 16 KiB) the scans read it from global memory. Such
/// sizes take minutes to compile on lavapipe, so `RNNPOOL_GLOBAL_CELL` forces that path here, in
/// a child process (it is read per launch and process-wide), for two of the cases above.
#[test]
fn fused_matches_composed_on_wgpu_with_the_cell_in_global_memory() {
    let exe = std::env::current_exe().expect("the test binary's own path");
    for case in ["fused_matches_composed_on_wgpu_for_uneven_grids", "fused_matches_composed_on_wgpu_for_face_m4"] {
        let out = std::process::Command::new(&exe)
            .args(["--exact", case])
            .env("RNNPOOL_GLOBAL_CELL", "1")
            .output()
            .expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{case} with RNNPOOL_GLOBAL_CELL=1:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// RNNPool-Face-M4's layer (4 channels, 8x8 patches at stride 4, hidden 16) on a batch of two.
#[test]
fn fused_matches_composed_on_wgpu_for_face_m4() {
    assert_fused_matches_composed(RnnPoolLayerConfig::square(4, 8, 4, 16, 16), [2, 4, 32, 32]);
}
