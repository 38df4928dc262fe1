//! The device a config's `train.backend` names. wgpu is a cargo feature (`--features wgpu`)
//! because it adds about 12 minutes to a cold build; asking for it without the feature, or
//! without a GPU/Vulkan driver, is an error that says how to get one — never a silent CPU run.

use burn::prelude::Device;

use crate::error::TrainError;

/// The (non-autodiff) device for `backend`: flex | ndarray | wgpu.
pub fn device(backend: &str) -> Result<Device, TrainError> {
    let err = |message: &str| TrainError::Backend { backend: backend.into(), message: message.into() };
    match backend {
        "flex" => Ok(Device::flex()),
        #[allow(deprecated)]
        "ndarray" => Ok(Device::ndarray()),
        "wgpu" => wgpu_device().ok_or_else(|| {
            err(if cfg!(feature = "wgpu") {
                "no GPU adapter found: install a Vulkan/Metal/DX12 driver (on Linux without a GPU, \
                 Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1)"
            } else {
                "this build has no wgpu support: rebuild with `--features wgpu`"
            })
        }),
        other => Err(err(&format!("unknown backend `{other}`: expected flex, ndarray or wgpu"))),
    }
}

/// `n` devices for data-parallel training: one as [`device`] gives it, or wgpu's discrete GPUs
/// 0..n (not the default device plus GPUs 1..n, which could name one GPU twice), or (CPU
/// backends) the same CPU device n times.
pub fn devices(backend: &str, n: usize) -> Result<Vec<Device>, TrainError> {
    // Asked first so that a build or machine without wgpu gets `device`'s error and advice.
    let first = device(backend)?;
    if n <= 1 || backend != "wgpu" {
        return Ok(vec![first; n.max(1)]);
    }
    (0..n)
        .map(|i| {
            wgpu_gpu(i).ok_or_else(|| TrainError::Backend {
                backend: backend.into(),
                message: format!("train.devices = {n}, but discrete GPU {i} is not there"),
            })
        })
        .collect()
}

/// The wgpu device of `kind`, if the machine has an adapter for it.
#[cfg(feature = "wgpu")]
pub fn probe(kind: burn::tensor::DeviceKind) -> Option<Device> {
    // Without an adapter cubecl panics (on its device thread, then on ours); turn that into our
    // error, without the panic messages that would bury it.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let device = std::panic::catch_unwind(|| {
        let d = Device::wgpu(kind);
        let _probe = burn::prelude::Tensor::<1>::zeros([1], &d).into_data();
        d
    })
    .ok();
    std::panic::set_hook(report);
    device
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> Option<Device> {
    probe(burn::tensor::DeviceKind::DefaultDevice)
}

#[cfg(feature = "wgpu")]
fn wgpu_gpu(i: usize) -> Option<Device> {
    probe(burn::tensor::DeviceKind::DiscreteGpu(i))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Option<Device> {
    None
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_gpu(_: usize) -> Option<Device> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_backends_and_clear_errors() {
        assert!(device("flex").is_ok() && device("ndarray").is_ok());
        let e = device("cuda").unwrap_err().to_string();
        assert!(e.contains("cuda") && e.contains("expected flex"), "{e}");
        if !cfg!(feature = "wgpu") {
            assert!(device("wgpu").unwrap_err().to_string().contains("--features wgpu"));
        }
    }
}
