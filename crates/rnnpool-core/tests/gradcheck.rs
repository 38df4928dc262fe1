//! Finite-difference gradient check in f64, independent of the reference fixtures: a tiny
//! layer with a non-square patch, overlapping strides and unsaturated zeta/nu, whose analytic
//! gradients (fused kernel and composed ops) must match central differences.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::{DType, FloatDType, TensorData};
use rnnpool_core::{FastGrnnCell, RnnPoolImpl, RnnPoolLayer, RnnPoolLayerConfig};

const K: usize = 2;
const H1: usize = 3;
const H2: usize = 2;
const SHAPE: [usize; 4] = [2, K, 5, 6];

fn device() -> Device {
    let mut d = Device::flex();
    let _ = d.configure(FloatDType::F64);
    let mut ad = d.autodiff();
    let _ = ad.configure(FloatDType::F64);
    ad
}

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// Parameter shapes in FastGrnnCell field order, RNN1 then RNN2.
fn param_shapes() -> Vec<[usize; 2]> {
    let cell = |i, h| vec![[i, h], [h, h], [1, h], [1, h], [1, 1], [1, 1]];
    [cell(K, H1), cell(H1, H2)].concat()
}

fn set(cell: &mut FastGrnnCell, vals: &[Vec<f64>], shapes: &[[usize; 2]], dev: &Device) {
    let t = |i: usize| {
        Param::from_tensor(Tensor::<2>::from_data(TensorData::new(vals[i].clone(), shapes[i]), (dev, DType::F64)))
    };
    cell.w = t(0);
    cell.u = t(1);
    cell.bias_gate = t(2);
    cell.bias_update = t(3);
    cell.zeta = t(4);
    cell.nu = t(5);
}

fn layer(params: &[Vec<f64>], imp: RnnPoolImpl, dev: &Device) -> RnnPoolLayer {
    let mut layer = RnnPoolLayerConfig::new(K, [3, 4], [2, 1], H1, H2).with_implementation(imp).init(dev).unwrap();
    let shapes = param_shapes();
    let mut c1 = layer.pool.rnn1.as_fastgrnn().unwrap().clone();
    let mut c2 = layer.pool.rnn2.as_fastgrnn().unwrap().clone();
    set(&mut c1, &params[..6], &shapes[..6], dev);
    set(&mut c2, &params[6..], &shapes[6..], dev);
    layer.pool.rnn1 = rnnpool_core::RnnCell::FastGrnn(c1);
    layer.pool.rnn2 = rnnpool_core::RnnCell::FastGrnn(c2);
    layer
}

fn loss(layer: &RnnPoolLayer, x: Tensor<4>, weights: &Tensor<4>) -> Tensor<1> {
    (layer.forward(x) * weights.clone()).sum()
}

fn check(imp: RnnPoolImpl) {
    let dev = device();
    let shapes = param_shapes();
    let params: Vec<Vec<f64>> = shapes.iter().enumerate().map(|(i, s)| values(s[0] * s[1], 10 + i as u64)).collect();
    let x_vals = values(SHAPE.iter().product(), 1);
    let x = Tensor::<4>::from_data(TensorData::new(x_vals.clone(), SHAPE), (&dev, DType::F64));
    let l = layer(&params, imp, &dev);
    let out_dims = l.forward(x.clone()).dims();
    let weights =
        Tensor::<4>::from_data(TensorData::new(values(out_dims.iter().product(), 2), out_dims), (&dev, DType::F64));
    let xg = x.clone().require_grad();
    let grads = loss(&l, xg.clone(), &weights).backward();
    let scalar = |l: &RnnPoolLayer, x: Tensor<4>| loss(l, x, &weights).into_scalar::<f64>();
    let eps = 1e-6;
    let mut worst = 0.0f64;

    let gx = xg.grad(&grads).unwrap().into_data().try_to_vec::<f64>().unwrap();
    for i in (0..x_vals.len()).step_by(7) {
        let at = |d: f64| {
            let mut v = x_vals.clone();
            v[i] += d;
            scalar(&l, Tensor::from_data(TensorData::new(v, SHAPE), (&dev, DType::F64)))
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * eps);
        worst = worst.max((fd - gx[i]).abs() / fd.abs().max(1e-3));
    }

    let analytic: Vec<Vec<f64>> = {
        let cells = [l.pool.rnn1.as_fastgrnn().unwrap(), l.pool.rnn2.as_fastgrnn().unwrap()];
        cells
            .iter()
            .flat_map(|c| [&c.w, &c.u, &c.bias_gate, &c.bias_update, &c.zeta, &c.nu])
            .map(|p| p.grad(&grads).unwrap().into_data().try_to_vec::<f64>().unwrap())
            .collect()
    };
    for (p, grad) in analytic.iter().enumerate() {
        for i in 0..grad.len() {
            let at = |d: f64| {
                let mut ps = params.clone();
                ps[p][i] += d;
                scalar(&layer(&ps, imp, &dev), x.clone())
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            let err = (fd - grad[i]).abs() / fd.abs().max(1e-3);
            assert!(err < 1e-5, "{imp:?} param {p}[{i}]: analytic {} vs fd {fd}", grad[i]);
            worst = worst.max(err);
        }
    }
    assert!(worst < 1e-5, "{imp:?}: worst relative error {worst:e}");
}

#[test]
fn fused_gradients_match_finite_differences() {
    check(RnnPoolImpl::Fused);
}

#[test]
fn composed_gradients_match_finite_differences() {
    check(RnnPoolImpl::Composed);
}
