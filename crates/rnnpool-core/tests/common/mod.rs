//! Shared by the parity tests: the fixture folder and the comparison rule.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::prelude::*;
use rnnpool_core::{RnnPool, RnnPoolConfig, RnnPoolImpl, RnnPoolLayer, RnnPoolLayerConfig, StateDict};

/// Every operator and layer case (`$RNNPOOL_FIXTURES`, else the repository's
/// `fixtures/rnnpool`); panics if there is none, because a parity test that compares nothing
/// must not pass.
pub fn fixture_files() -> Vec<PathBuf> {
    fixtures::Set::Rnnpool.cases().unwrap_or_else(|e| panic!("{e}")).into_iter().map(|c| c.path).collect()
}

/// A fixture's case, read from its metadata only.
pub struct Case {
    pub state: StateDict,
    pub is_layer: bool,
    pub in_channels: usize,
    pub patch: usize,
    pub stride: usize,
    pub hidden1: usize,
    pub hidden2: usize,
}

impl Case {
    pub fn load(path: &std::path::Path) -> Self {
        let state = StateDict::load(path).unwrap_or_else(|e| panic!("{e}"));
        let meta = state.metadata().clone();
        let num = |k: &str| -> usize {
            meta.get(k)
                .unwrap_or_else(|| panic!("{}: metadata has no `{k}`", path.display()))
                .parse()
                .unwrap_or_else(|e| panic!("{}: metadata `{k}`: {e}", path.display()))
        };
        let kind = meta.get("kind").map(String::as_str).unwrap_or("");
        assert!(kind == "op" || kind == "layer", "{}: unknown kind `{kind}`", path.display());
        Self {
            is_layer: kind == "layer",
            in_channels: num("in_channels"),
            patch: num("patch"),
            stride: num("stride"),
            hidden1: num("hidden1"),
            hidden2: num("hidden2"),
            state,
        }
    }

    pub fn pool(&self, device: &Device, implementation: RnnPoolImpl) -> RnnPool {
        RnnPoolConfig::new(self.in_channels, self.hidden1, self.hidden2)
            .with_implementation(implementation)
            .init(device)
            .unwrap()
            .load_edgeml(&self.state, "")
            .unwrap()
    }

    pub fn layer(&self, device: &Device, implementation: RnnPoolImpl) -> RnnPoolLayer {
        RnnPoolLayerConfig::square(self.in_channels, self.patch, self.stride, self.hidden1, self.hidden2)
            .with_implementation(implementation)
            .init(device)
            .unwrap()
            .load_edgeml(&self.state, "")
            .unwrap()
    }

    pub fn values(&self, key: &str) -> (Vec<f64>, Vec<usize>) {
        let t = self.state.get_any(key).unwrap_or_else(|e| panic!("{e}"));
        (t.values.clone(), t.shape.clone())
    }

    pub fn tensor<const D: usize>(&self, key: &str, device: &Device, dtype: burn::tensor::DType) -> Tensor<D> {
        self.state.get_any(key).unwrap_or_else(|e| panic!("{e}")).to_tensor(device, dtype)
    }
}

/// Largest |got - want| relative to the largest |want| of the tensor (a norm-wise relative
/// error: element-wise ratios are meaningless for entries that are almost zero).
pub fn rel_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
    got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max) / scale
}

pub fn to_f64<const D: usize>(t: Tensor<D>) -> (Vec<f64>, Vec<usize>) {
    let shape = t.dims().to_vec();
    let data = t.into_data().convert::<f64>();
    (data.try_to_vec::<f64>().unwrap(), shape)
}

/// The parameter names of a pool in EdgeML order, with getters for their gradients.
pub const PARAM_KEYS: [&str; 12] = [
    "cell_rnn.cell.W",
    "cell_rnn.cell.U",
    "cell_rnn.cell.bias_gate",
    "cell_rnn.cell.bias_update",
    "cell_rnn.cell.zeta",
    "cell_rnn.cell.nu",
    "cell_bidirrnn.cell.W",
    "cell_bidirrnn.cell.U",
    "cell_bidirrnn.cell.bias_gate",
    "cell_bidirrnn.cell.bias_update",
    "cell_bidirrnn.cell.zeta",
    "cell_bidirrnn.cell.nu",
];

/// The 12 FastGRNN parameters of a pool, in [`PARAM_KEYS`] order.
pub fn params(pool: &RnnPool) -> Vec<Tensor<2>> {
    let cells = [pool.rnn1.as_fastgrnn().unwrap(), pool.rnn2.as_fastgrnn().unwrap()];
    cells.iter().flat_map(|c| [&c.w, &c.u, &c.bias_gate, &c.bias_update, &c.zeta, &c.nu].map(|p| p.val())).collect()
}

/// Runs one fixture on `device` and returns (name, relative error) for the output, the input
/// gradient and every parameter gradient.
pub fn check_case(case: &Case, device: &Device, dtype: burn::tensor::DType, imp: RnnPoolImpl) -> Vec<(String, f64)> {
    let input = case.tensor::<4>("input", device, dtype).require_grad();
    let (output, pool_params): (Tensor<4>, Vec<Tensor<2>>) = if case.is_layer {
        let layer = case.layer(device, imp);
        (layer.forward(input.clone()), params(&layer.pool))
    } else {
        let pool = case.pool(device, imp);
        let [n, _, _, _] = input.dims();
        let out = pool.forward(input.clone());
        let f = out.dims()[1];
        (out.reshape([n, f, 1, 1]), params(&pool))
    };
    let grad_out: Tensor<4> = if case.is_layer {
        case.tensor::<4>("grad_output", device, dtype)
    } else {
        let (v, s) = case.values("grad_output");
        Tensor::<2>::from_data(burn::tensor::TensorData::new(v, s).convert_dtype(dtype), (device, dtype))
            .unsqueeze_dims(&[2, 3])
    };
    results(output, &input, &pool_params, grad_out)
        .into_iter()
        .map(|(name, got)| {
            let err = rel_err(&got, &case.values(&name).0);
            (name, err)
        })
        .collect()
}

/// The output and, for `sum(output * grad_out)`, the input gradient and every parameter's, as
/// (fixture key, values): `output`, `grad_input`, `grad.<PARAM_KEYS>`.
pub fn results(
    output: Tensor<4>,
    input: &Tensor<4>,
    params: &[Tensor<2>],
    grad_out: Tensor<4>,
) -> Vec<(String, Vec<f64>)> {
    let grads = (output.clone() * grad_out).sum().backward();
    let mut out = vec![("output".to_string(), to_f64(output).0)];
    let gx = input.grad(&grads).expect("input gradient");
    out.push(("grad_input".to_string(), to_f64(gx).0));
    for (p, key) in params.iter().zip(PARAM_KEYS) {
        let g = p.grad(&grads).unwrap_or_else(|| panic!("no gradient for {key}"));
        out.push((format!("grad.{key}"), to_f64(g).0));
    }
    out
}

/// Runs every fixture on every device with `imp` and asserts each error is within
/// `tolerance(device name)`; prints every error so that a run shows the margins.
pub fn assert_parity(
    devices: &[(&'static str, Device)],
    dtype: burn::tensor::DType,
    imp: RnnPoolImpl,
    tolerance: impl Fn(&str) -> f64,
) {
    let mut failures = Vec::new();
    let mut compared = 0;
    for path in fixture_files() {
        let case = Case::load(&path);
        // A fixture computed in f32 cannot be held to f64 accuracy; every fixture is checked in f32.
        let fixture_dtype = case.state.get_any("input").unwrap_or_else(|e| panic!("{e}")).dtype;
        if dtype == burn::tensor::DType::F64 && fixture_dtype != dtype {
            eprintln!("{}: {fixture_dtype:?} fixture, not compared in f64", path.display());
            continue;
        }
        compared += 1;
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for (dev_name, device) in devices {
            let tol = tolerance(dev_name);
            for (what, err) in check_case(&case, device, dtype, imp) {
                eprintln!("{name} {dev_name} {imp:?} {what}: rel err {err:.2e}");
                #[allow(clippy::neg_cmp_op_on_partial_ord)] // written so that NaN fails
                if !(err <= tol) {
                    failures.push(format!("{name} {dev_name} {imp:?} {what}: {err:.2e} > {tol:e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "over tolerance:\n{}", failures.join("\n"));
    eprintln!("{compared} fixtures compared");
}
