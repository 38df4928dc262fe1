//! Data-parallel training on two wgpu devices: two shards at once, each on its own wgpu device
//! (its own CubeCL server, memory and queue), gradients and parameters moved between them by
//! burn's `MultiGradientsParams` / `step_multi`, ends with the weights of one wgpu device that
//! takes the same global batch as two accumulated micro-batches (measured on lavapipe:
//! identical). On a machine with two GPUs the devices are `DiscreteGpu(0)` and `DiscreteGpu(1)`
//! (what `train.devices = 2` takes); otherwise wgpu's `DefaultDevice` and the same adapter by
//! its index (a GPU) or as `Cpu` (Mesa's lavapipe, without a GPU): two devices of burn on one
//! adapter. The small Fashion-MNIST classifier with its RNNPool layer (the CubeCL kernels), 32
//! images, so that lavapipe takes seconds: `cargo test -p train --features wgpu --test
//! data_parallel_wgpu`.

#![cfg(feature = "wgpu")]

mod common;

use burn::prelude::*;
use burn::tensor::DeviceKind;

#[test]
#[allow(deprecated)]
fn two_wgpu_devices_equal_one_with_the_same_global_batch() {
    // Two GPUs where the machine has them, else two devices on the one adapter.
    let two_gpus = rnnpool_core::BackendKind::Wgpu.devices(2).ok().and_then(|d| <[Device; 2]>::try_from(d).ok());
    let [a, b] = two_gpus.unwrap_or_else(|| {
        let a = Device::wgpu(DeviceKind::DefaultDevice);
        // A second device of burn on the same adapter: the one GPU by index, or lavapipe's `Cpu`.
        let second = [DeviceKind::DiscreteGpu(0), DeviceKind::IntegratedGpu(0), DeviceKind::Cpu];
        let b = second
            .into_iter()
            .filter_map(rnnpool_core::backend::probe)
            .find(|d| *d != a)
            .expect("a second wgpu device");
        [a, b]
    });
    common::two_devices_match_accumulation("small_rnnpool", "two wgpu devices vs one", [a, b], 16, 1e-6);
}
