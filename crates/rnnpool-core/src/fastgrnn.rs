//! The FastGRNN cell (Kusupati et al., NeurIPS 2018) in EdgeML's full-rank form, as RNNPool uses it.

use burn::module::{Initializer, Param};
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, tanh};

use crate::RnnPoolError;
use crate::state_dict::StateDict;

/// Configuration of a [`FastGrnnCell`]; the defaults are EdgeML's initialisation as RNNPool
/// calls it (W, U ~ 0.1 N(0, 1), both biases 1, zeta 100, nu -100).
#[derive(Config, Debug)]
pub struct FastGrnnCellConfig {
    /// Size of each input vector.
    pub input_size: usize,
    /// Size of the hidden state.
    pub hidden_size: usize,
    /// Initial raw zeta; the cell uses sigmoid(zeta), so 100 means "1".
    #[config(default = 100.0)]
    pub zeta_init: f64,
    /// Initial raw nu; the cell uses sigmoid(nu), so -100 means "0".
    #[config(default = -100.0)]
    pub nu_init: f64,
    /// Standard deviation of the normal initialisation of W and U.
    #[config(default = 0.1)]
    pub weight_std: f64,
}

impl FastGrnnCellConfig {
    /// The cell with EdgeML's initialisation.
    pub fn init(&self, device: &Device) -> FastGrnnCell {
        let (i, h) = (self.input_size, self.hidden_size);
        let normal = Initializer::Normal { mean: 0.0, std: self.weight_std };
        let constant = |value| Initializer::Constant { value };
        FastGrnnCell {
            w: normal.init([i, h], device),
            u: normal.init([h, h], device),
            bias_gate: constant(1.0).init([1, h], device),
            bias_update: constant(1.0).init([1, h], device),
            zeta: constant(self.zeta_init).init([1, 1], device),
            nu: constant(self.nu_init).init([1, 1], device),
        }
    }
}

/// FastGRNN: `pre = x·W + h·U`, `z = sigmoid(pre + bias_gate)`,
/// `c = tanh(pre + bias_update)`, `h' = z*h + (sigmoid(zeta)*(1 - z) + sigmoid(nu)) * c`.
#[derive(Module, Debug)]
pub struct FastGrnnCell {
    /// `[input, hidden]`, used as `x·W`.
    pub w: Param<Tensor<2>>,
    /// `[hidden, hidden]`, used as `h·U`.
    pub u: Param<Tensor<2>>,
    /// `[1, hidden]`
    pub bias_gate: Param<Tensor<2>>,
    /// `[1, hidden]`
    pub bias_update: Param<Tensor<2>>,
    /// `[1, 1]`, raw (the cell applies the sigmoid).
    pub zeta: Param<Tensor<2>>,
    /// `[1, 1]`, raw (the cell applies the sigmoid).
    pub nu: Param<Tensor<2>>,
}

/// EdgeML's parameter names inside a cell, in the order of [`FastGrnnCell`]'s fields.
pub const EDGEML_NAMES: [&str; 6] = ["W", "U", "bias_gate", "bias_update", "zeta", "nu"];

impl FastGrnnCell {
    /// Input features.
    pub fn input_size(&self) -> usize {
        self.w.dims()[0]
    }

    /// Hidden features.
    pub fn hidden_size(&self) -> usize {
        self.w.dims()[1]
    }

    /// One step: `x` `[batch, input]`, `h` `[batch, hidden]` -> `[batch, hidden]`.
    pub fn step(&self, x: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
        let wx = x.matmul(self.w.val());
        self.step_projected(wx, h)
    }

    /// A step whose input is already multiplied by W.
    fn step_projected(&self, wx: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
        let pre = wx + h.clone().matmul(self.u.val());
        let z = sigmoid(pre.clone() + self.bias_gate.val());
        let c = tanh(pre + self.bias_update.val());
        let keep = sigmoid(self.zeta.val()) * (z.clone().neg() + 1.0) + sigmoid(self.nu.val());
        z * h + keep * c
    }

    /// Runs the cell from a zero state over `seq` `[time, batch, input]` and returns the last
    /// state `[batch, hidden]`.
    pub fn last_state(&self, seq: Tensor<3>) -> Tensor<2> {
        let [t, n, i] = seq.dims();
        let h = self.hidden_size();
        // One matmul for the input projections of all steps, then only h·U inside the loop.
        let wx = seq.reshape([t * n, i]).matmul(self.w.val()).reshape([t, n, h]);
        let mut state = Tensor::<2>::zeros([n, h], (&wx.device(), wx.dtype()));
        for step in 0..t {
            let x = wx.clone().narrow(0, step, 1).reshape([n, h]);
            state = self.step_projected(x, state);
        }
        state
    }

    /// Replaces the parameters with those named `{prefix}W`, `{prefix}U`, ... in `state`,
    /// keeping this cell's dtype and device.
    pub fn load_edgeml(mut self, state: &StateDict, prefix: &str) -> Result<Self, RnnPoolError> {
        let (i, h) = (self.input_size(), self.hidden_size());
        let device = self.w.device();
        let dtype = self.w.val().dtype();
        let shapes = [[i, h], [h, h], [1, h], [1, h], [1, 1], [1, 1]];
        let params =
            [&mut self.w, &mut self.u, &mut self.bias_gate, &mut self.bias_update, &mut self.zeta, &mut self.nu];
        for ((param, name), shape) in params.into_iter().zip(EDGEML_NAMES).zip(shapes) {
            let key = format!("{prefix}{name}");
            let value = state.tensor::<2>(&key, shape, &device, dtype)?;
            *param = Param::from_tensor(value);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_init_is_edgemls() {
        let device = Device::flex();
        let cell = FastGrnnCellConfig::new(3, 5).init(&device);
        assert_eq!(cell.w.dims(), [3, 5]);
        assert_eq!(cell.u.dims(), [5, 5]);
        let ones = cell.bias_gate.val().into_data().try_to_vec::<f32>().unwrap();
        assert!(ones.iter().all(|&v| v == 1.0));
        assert_eq!(cell.zeta.val().into_scalar::<f32>(), 100.0);
        assert_eq!(cell.nu.val().into_scalar::<f32>(), -100.0);
        let w = cell.w.val().into_data().try_to_vec::<f32>().unwrap();
        assert!(w.iter().any(|&v| v != 0.0) && w.iter().all(|v| v.abs() < 1.0));
    }

    #[test]
    fn step_matches_the_equations_by_hand() {
        let device = Device::flex();
        let mut cell = FastGrnnCellConfig::new(1, 1).init(&device);
        let t = |v: f32| Param::from_tensor(Tensor::<2>::from_data([[v]], &device));
        cell.w = t(0.5);
        cell.u = t(-0.25);
        cell.bias_gate = t(0.1);
        cell.bias_update = t(-0.2);
        cell.zeta = t(0.3);
        cell.nu = t(-0.4);
        let (x, h) = (2.0f64, 0.7f64);
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let pre = x * 0.5 + h * -0.25;
        let z = sig(pre + 0.1);
        let c = (pre - 0.2).tanh();
        let expected = z * h + (sig(0.3) * (1.0 - z) + sig(-0.4)) * c;
        let got = cell
            .step(Tensor::from_data([[x as f32]], &device), Tensor::from_data([[h as f32]], &device))
            .into_scalar::<f32>();
        assert!((got as f64 - expected).abs() < 1e-6, "{got} vs {expected}");
    }
}
