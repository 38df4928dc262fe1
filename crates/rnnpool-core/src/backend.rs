//! Which burn backend to run on, by name, with the project's default.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// The CPU backends rnnpool-rs runs on. Flex is the default: on the RNNPool benchmark it is
/// faster than NdArray (README, "Speed"), and burn 0.22 deprecates NdArray.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Flex,
    NdArray,
}

impl BackendKind {
    pub const NAMES: [&'static str; 2] = ["flex", "ndarray"];

    /// The device, with autodiff when `training`.
    #[allow(deprecated)] // Device::ndarray: deprecated upstream, kept selectable here.
    pub fn device(self, training: bool) -> Device {
        let device = match self {
            Self::Flex => Device::flex(),
            Self::NdArray => Device::ndarray(),
        };
        if training { device.autodiff() } else { device }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flex => "flex",
            Self::NdArray => "ndarray",
        })
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "flex" => Ok(Self::Flex),
            "ndarray" => Ok(Self::NdArray),
            other => Err(format!("unknown backend `{other}`; choose one of {:?}", Self::NAMES)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_listed() {
        for name in BackendKind::NAMES {
            assert_eq!(name.parse::<BackendKind>().unwrap().to_string(), name);
        }
        let err = "cuda".parse::<BackendKind>().unwrap_err();
        assert!(err.contains("cuda") && err.contains("ndarray"), "{err}");
        assert_eq!(BackendKind::default(), BackendKind::Flex);
    }
}
