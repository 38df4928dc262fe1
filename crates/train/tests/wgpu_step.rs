//! One RNNPool-Face-M4 training step (forward, S3FD multibox loss with matching and mining,
//! backward, Adam) gives the same numbers on burn's wgpu backend as on NdArray, from the same
//! weights. Without a GPU this runs on Mesa's lavapipe (`apt-get install mesa-vulkan-drivers
//! libvulkan1`), slowly, so the input is 64x64: `cargo test -p train --features wgpu --test
//! wgpu_step`.

#![cfg(feature = "wgpu")]

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::{DeviceKind, TensorData};
use models::{FaceArch, FaceDetector};
use train::detection::multibox::multibox_loss;
use train::face_task::priors_host;

const SIZE: usize = 64;

fn image(device: &Device) -> Tensor<4> {
    let pixels: Vec<f32> = (0..2 * SIZE * SIZE).map(|i| ((i * 7919) % 251) as f32 - 125.0).collect();
    Tensor::from_data(TensorData::new(pixels, [2, 1, SIZE, SIZE]), device)
}

/// The loss before the step and the box offsets after it (which depend on every updated weight).
/// `net` lives on `plain.autodiff()`.
fn step(net: FaceDetector, plain: &Device) -> (f32, Vec<f32>) {
    let faces = vec![vec![[0.3, 0.3, 0.6, 0.6]], vec![[0.1, 0.5, 0.3, 0.8], [0.6, 0.1, 0.9, 0.4]]];
    let out = net.forward(image(&plain.clone().autodiff())).unwrap();
    let priors = priors_host(out.priors);
    let loss = multibox_loss(out.loc, out.conf, &priors, &faces).total();
    let value = loss.clone().into_scalar().elem::<f32>();
    let grads = GradientsParams::from_grads(loss.backward(), &net);
    let net = AdamConfig::new().init().step(1e-3, net, grads);
    let after = net.valid().forward(image(plain)).unwrap().loc;
    (value, after.into_data().convert::<f32>().try_to_vec::<f32>().unwrap())
}

#[test]
#[allow(deprecated)]
fn face_m4_training_step_matches_ndarray() {
    let cpu = Device::ndarray();
    cpu.seed(0);
    let net = FaceArch::M4.init(&cpu.clone().autodiff()).unwrap();
    let gpu = Device::wgpu(DeviceKind::DefaultDevice);
    let (loss_gpu, loc_gpu) = step(net.clone().to_device(&gpu.clone().autodiff()), &gpu);
    let (loss_cpu, loc_cpu) = step(net, &cpu);
    let scale = loc_cpu.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = loc_cpu.iter().zip(&loc_gpu).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max) / scale;
    eprintln!("loss ndarray {loss_cpu} wgpu {loss_gpu}; box offsets after the step: rel err {err:.2e}");
    assert!((loss_cpu - loss_gpu).abs() <= 1e-4 * loss_cpu.abs().max(1.0), "loss {loss_cpu} vs {loss_gpu}");
    assert!(err <= 1e-3, "box offsets after one step differ by {err}");
}
