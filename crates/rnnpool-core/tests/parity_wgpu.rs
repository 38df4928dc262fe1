//! Parity with the original PyTorch RNNPool on burn's wgpu backend (f32, the composed tensor
//! ops: the fused kernel is CPU-only). Without a GPU this runs on Mesa's lavapipe (`apt-get
//! install mesa-vulkan-drivers libvulkan1`), slowly: `cargo test -p rnnpool-core --features wgpu
//! --test parity_wgpu`.

#![cfg(feature = "wgpu")]

mod common;

use burn::prelude::*;
use burn::tensor::{DType, DeviceKind};
use rnnpool_core::RnnPoolImpl;

#[test]
fn composed_matches_edgeml_on_wgpu() {
    let device = Device::wgpu(DeviceKind::DefaultDevice).autodiff();
    common::assert_parity(&[("wgpu", device)], DType::F32, RnnPoolImpl::Composed, |_| 1e-4);
}
