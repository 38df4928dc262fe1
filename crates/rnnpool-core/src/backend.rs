//! Which burn backend to run on: the one backend selection of the workspace.
//!
//! wgpu is a cargo feature (`wgpu`) because it adds 15-25 minutes to a cold build; asking for it
//! without the feature, or without a GPU or Vulkan driver, is an error that says how to get one,
//! never a silent CPU run.

use burn::tensor::Device;

use crate::RnnPoolError;

crate::named_enum! {
    /// A burn backend. Flex is the default: burn's recommended CPU backend, and faster than
    /// NdArray on every benchmark here (burn 0.22 deprecates NdArray).
    #[derive(Default)]
    pub enum BackendKind ("backend") {
        /// burn-flex, on the CPU.
        #[default]
        Flex => "flex",
        /// burn-ndarray, on the CPU.
        NdArray => "ndarray",
        /// burn-wgpu (Vulkan, Metal, DX12), with burn's kernel fusion; needs the `wgpu` feature.
        Wgpu => "wgpu",
    }
}

impl BackendKind {
    /// The (non-autodiff) device: Flex, NdArray, or wgpu's default adapter.
    pub fn device(self) -> Result<Device, RnnPoolError> {
        match self {
            Self::Flex => Ok(Device::flex()),
            #[allow(deprecated)] // Device::ndarray: deprecated upstream, kept selectable here.
            Self::NdArray => Ok(Device::ndarray()),
            Self::Wgpu => wgpu_default().ok_or_else(no_wgpu),
        }
    }

    /// `n` devices for data-parallel training: the CPU device `n` times, or wgpu's discrete GPUs
    /// 0..n (not the default device plus GPUs 1..n, which could name one GPU twice).
    pub fn devices(self, n: usize) -> Result<Vec<Device>, RnnPoolError> {
        // Asked first so that a build or machine without wgpu gets its one error and advice.
        let first = self.device()?;
        if n <= 1 || self != Self::Wgpu {
            return Ok(vec![first; n.max(1)]);
        }
        (0..n)
            .map(|i| {
                wgpu_gpu(i).ok_or_else(|| RnnPoolError::Backend {
                    backend: self.name(),
                    message: format!("{n} devices asked for, but discrete GPU {i} is not there"),
                })
            })
            .collect()
    }
}

fn no_wgpu() -> RnnPoolError {
    let message = if cfg!(feature = "wgpu") {
        "no GPU adapter found: install a Vulkan/Metal/DX12 driver (on Linux without a GPU, Mesa's \
         lavapipe: apt-get install mesa-vulkan-drivers libvulkan1)"
    } else {
        "this build has no wgpu support: rebuild with `--features wgpu`"
    };
    RnnPoolError::Backend { backend: "wgpu", message: message.into() }
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
        let _probe = burn::tensor::Tensor::<1>::zeros([1], &d).into_data();
        d
    })
    .ok();
    std::panic::set_hook(report);
    device
}

#[cfg(feature = "wgpu")]
fn wgpu_default() -> Option<Device> {
    probe(burn::tensor::DeviceKind::DefaultDevice)
}

#[cfg(feature = "wgpu")]
fn wgpu_gpu(i: usize) -> Option<Device> {
    probe(burn::tensor::DeviceKind::DiscreteGpu(i))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_default() -> Option<Device> {
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
    fn names_round_trip_and_unknown_names_are_listed() {
        for kind in BackendKind::ALL {
            assert_eq!(kind.name().parse::<BackendKind>().unwrap(), *kind);
        }
        let err = "cuda".parse::<BackendKind>().unwrap_err();
        assert!(err.contains("\"cuda\"") && err.contains("flex, ndarray, wgpu"), "{err}");
        assert_eq!(BackendKind::default(), BackendKind::Flex);
    }

    #[test]
    fn cpu_backends_and_clear_errors() {
        assert!(BackendKind::Flex.device().is_ok() && BackendKind::NdArray.devices(2).unwrap().len() == 2);
        if !cfg!(feature = "wgpu") {
            let e = BackendKind::Wgpu.device().unwrap_err().to_string();
            assert!(e.contains("--features wgpu"), "{e}");
        }
    }
}
