//! Float tensors read by name from a PyTorch state_dict (`.pth`/`.pt`) or a safetensors file.
//!
//! EdgeML checkpoints are plain `torch.save(model.state_dict())` files, so import only needs
//! names, shapes and values; values are kept in f64 and converted to the model's dtype on load.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::RnnPoolError;

/// One tensor of a state_dict: its shape and values (row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct StateTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub values: Vec<f64>,
    /// The dtype in the file (`F32`, `F64`, ...).
    pub dtype: DType,
}

/// The float tensors of a checkpoint, by name, plus the file's metadata (safetensors only).
#[derive(Clone, Debug)]
pub struct StateDict {
    path: PathBuf,
    tensors: HashMap<String, StateTensor>,
    metadata: HashMap<String, String>,
}

impl StateDict {
    /// Reads a safetensors file (by extension `.safetensors`) or a PyTorch pickle/zip file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, RnnPoolError> {
        let path = path.as_ref();
        let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
        if is_safetensors { Self::load_safetensors(path) } else { Self::load_pytorch(path) }
    }

    /// Reads a `.safetensors` file.
    pub fn load_safetensors(path: &Path) -> Result<Self, RnnPoolError> {
        let read_err = |message: String| RnnPoolError::Read { path: path.into(), message };
        let bytes = std::fs::read(path).map_err(|e| read_err(e.to_string()))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| read_err(format!("not a safetensors file: {e}")))?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| read_err(format!("not a safetensors file: {e}")))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let data = view.data();
            let (dtype, values) = match view.dtype() {
                safetensors::Dtype::F32 => (DType::F32, le_values::<4>(data, |b| f32::from_le_bytes(b) as f64)),
                safetensors::Dtype::F64 => (DType::F64, le_values::<8>(data, f64::from_le_bytes)),
                // Integer entries (e.g. BatchNorm's num_batches_tracked) are not parameters.
                _ => continue,
            };
            tensors.insert(name, StateTensor { shape, values, dtype });
        }
        Ok(Self { path: path.into(), tensors, metadata })
    }

    /// Reads a PyTorch `torch.save(state_dict)` file.
    pub fn load_pytorch(path: &Path) -> Result<Self, RnnPoolError> {
        let read_err = |message: String| RnnPoolError::Read { path: path.into(), message };
        let reader =
            pytorch_reader::PytorchReader::new(path).map_err(|e| read_err(format!("not a PyTorch checkpoint: {e}")))?;
        let mut tensors = HashMap::new();
        for (name, t) in reader.into_tensors() {
            let (dtype, conv): (DType, Decode) = match t.dtype() {
                pytorch_reader::DType::F32 => (DType::F32, |d| le_values::<4>(d, |b| f32::from_le_bytes(b) as f64)),
                pytorch_reader::DType::F64 => (DType::F64, |d| le_values::<8>(d, f64::from_le_bytes)),
                _ => continue,
            };
            let bytes = t.read().map_err(|e| read_err(format!("tensor `{name}`: {e}")))?;
            let values = conv(&bytes);
            tensors.insert(name, StateTensor { shape: t.shape().to_vec(), values, dtype });
        }
        Ok(Self { path: path.into(), tensors, metadata: HashMap::new() })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The safetensors `__metadata__` entries (empty for PyTorch files).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// Every tensor's name.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Whether a tensor of that name is there.
    pub fn contains(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// The tensor named `key`, checked against `expected` shape.
    pub fn get(&self, key: &str, expected: &[usize]) -> Result<&StateTensor, RnnPoolError> {
        let t = self
            .tensors
            .get(key)
            .ok_or_else(|| RnnPoolError::MissingKey { path: self.path.clone(), key: key.into() })?;
        if t.shape != expected {
            return Err(RnnPoolError::ShapeMismatch {
                path: self.path.clone(),
                key: key.into(),
                expected: expected.to_vec(),
                found: t.shape.clone(),
            });
        }
        Ok(t)
    }

    /// The tensor named `key` of any shape.
    pub fn get_any(&self, key: &str) -> Result<&StateTensor, RnnPoolError> {
        self.tensors.get(key).ok_or_else(|| RnnPoolError::MissingKey { path: self.path.clone(), key: key.into() })
    }

    /// The tensor named `key` as a burn tensor of rank `D` in `dtype` on `device`.
    pub fn tensor<const D: usize>(
        &self,
        key: &str,
        expected: [usize; D],
        device: &Device,
        dtype: DType,
    ) -> Result<Tensor<D>, RnnPoolError> {
        let t = self.get(key, &expected)?;
        Ok(t.to_tensor(device, dtype))
    }
}

impl StateTensor {
    /// As a burn tensor of rank `D` in `dtype` (the shape must have rank `D`).
    pub fn to_tensor<const D: usize>(&self, device: &Device, dtype: DType) -> Tensor<D> {
        let data = TensorData::new(self.values.clone(), self.shape.clone()).convert_dtype(dtype);
        Tensor::from_data(data, (device, dtype))
    }
}

/// Little-endian bytes to values.
type Decode = fn(&[u8]) -> Vec<f64>;

fn le_values<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
    data.chunks_exact(N)
        .map(|c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            f(b)
        })
        .collect()
}
