//! The CPU kernels against burn's own operations: outputs and every gradient, on odd shapes
//! (strides 1 and 2, padding, non-square maps, channel multipliers, groups, batch 1), on Flex
//! and NdArray; BatchNorm's running statistics too; and the same bits for 1 and 2 threads.

#![allow(deprecated)] // NdArray

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::Distribution;
use nn_ops::Activation;

const TOL: f32 = 2e-5;

fn devices() -> Vec<(&'static str, Device)> {
    vec![("flex", Device::flex().autodiff()), ("ndarray", Device::ndarray().autodiff())]
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

/// Largest difference relative to the largest magnitude of `want`.
fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max) / scale
}

/// `(batch, cin, height, width, cout, kernel, stride, padding, groups, bias)`.
type ConvCase = (usize, usize, usize, usize, usize, [usize; 2], [usize; 2], [usize; 2], usize, bool);

const CONV_CASES: [ConvCase; 24] = [
    (1, 5, 8, 7, 2, [3, 2], [1, 1], [1, 0], 1, true), // fewer outputs than inputs: dx as a convolution
    (3, 5, 9, 11, 7, [1, 1], [1, 1], [0, 0], 1, false), // pointwise
    (1, 6, 12, 8, 4, [1, 1], [1, 1], [0, 0], 1, true), // pointwise, batch 1, bias
    (2, 6, 13, 10, 6, [3, 3], [1, 1], [1, 1], 6, false), // depthwise 3x3 s1
    (3, 4, 13, 10, 4, [3, 3], [2, 2], [1, 1], 4, false), // depthwise 3x3 s2, odd sizes
    (2, 3, 11, 9, 6, [3, 3], [1, 1], [1, 1], 3, false), // depthwise, multiplier 2
    (2, 5, 12, 14, 5, [5, 5], [2, 2], [2, 2], 5, true), // depthwise 5x5 s2 with bias
    (1, 4, 7, 9, 4, [3, 3], [1, 2], [0, 1], 4, false), // depthwise, per-axis stride and padding
    (2, 3, 17, 15, 4, [3, 3], [2, 2], [1, 1], 1, false), // dense stem 3x3 s2
    (2, 6, 9, 8, 5, [3, 3], [1, 1], [1, 1], 1, true), // dense head with bias
    (1, 3, 23, 21, 4, [7, 7], [2, 2], [3, 3], 1, false), // dense 7x7 s2
    (2, 4, 10, 10, 6, [3, 3], [1, 1], [1, 1], 2, false), // grouped
    (2, 4, 9, 9, 3, [1, 1], [2, 2], [0, 0], 1, false), // 1x1 stride 2 (dense path)
    (2, 2, 6, 5, 3, [2, 3], [1, 1], [0, 0], 1, true), // non-square kernel, no padding
    (5, 3, 4, 4, 3, [3, 3], [1, 1], [1, 1], 3, false), // tiny maps, batch > threads
    (1, 600, 17, 16, 80, [1, 1], [1, 1], [0, 0], 1, false), // pointwise, one image: row blocks, sums over 512
    (2, 3, 13, 12, 3, [3, 3], [2, 2], [1, 1], 3, false), // depthwise on a map of more than 12x12
    (3, 40, 5, 6, 40, [3, 3], [1, 1], [1, 1], 40, true), // depthwise, two channel blocks
    (9, 70, 7, 7, 70, [3, 3], [2, 2], [1, 1], 70, false), // depthwise s2, partial block, image groups
    (8, 70, 5, 7, 67, [1, 1], [1, 1], [0, 0], 1, false), // pointwise forward by tiles, ragged rows and pixels
    (32, 64, 3, 3, 96, [1, 1], [1, 1], [0, 0], 1, true), // pointwise tiles on 3x3 maps, bias
    (2, 40, 5, 7, 100, [1, 1], [1, 1], [0, 0], 1, false), // pointwise input gradient by tiles, batch 2
    (1, 64, 12, 11, 40, [1, 1], [1, 1], [0, 0], 1, false), // pointwise tiles, one image of 132 pixels
    (1, 33, 19, 17, 48, [1, 1], [1, 1], [0, 0], 1, true), // input gradient by tiles on a larger map
];

fn conv_module(c: &ConvCase, device: &Device) -> Conv2d {
    let &(_, cin, _, _, cout, kernel, stride, [ph, pw], groups, bias) = c;
    let conv = Conv2dConfig::new([cin, cout], kernel)
        .with_stride(stride)
        .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
        .with_groups(groups)
        .with_bias(bias)
        .init(device);
    // Non-zero biases, so that their gradients are tested.
    match conv.bias.clone() {
        Some(b) => {
            Conv2d { bias: Some(Param::from_tensor(b.val().random_like(Distribution::Normal(0.0, 1.0)))), ..conv }
        }
        None => conv,
    }
}

/// Output, input gradient and weight (and bias) gradients of `sum(y * r)` for a fixed `r`.
fn conv_results(conv: &Conv2d, x: &Tensor<4>, fused: bool) -> Vec<Vec<f32>> {
    let x = x.clone().require_grad();
    let y = if fused { nn_ops::conv2d(conv, x.clone()) } else { conv.forward(x.clone()) };
    let r = Tensor::<4>::ones(y.dims(), &y.device()).mul_scalar(0.5) + y.clone().detach().sin();
    let grads = (y.clone() * r).sum().backward();
    let mut out = vec![values(y), values(x.grad(&grads).unwrap()), values(conv.weight.grad(&grads).unwrap())];
    if let Some(b) = &conv.bias {
        out.push(values(b.grad(&grads).unwrap()));
    }
    out
}

#[test]
fn convolutions_match_burn_on_every_shape_and_gradient() {
    let mut failures = Vec::new();
    for (name, device) in devices() {
        device.seed(3);
        for case in &CONV_CASES {
            let conv = conv_module(case, &device);
            let x = Tensor::<4>::random([case.0, case.1, case.2, case.3], Distribution::Normal(0.0, 1.0), &device);
            let (got, want) = (conv_results(&conv, &x, true), conv_results(&conv, &x, false));
            for (what, (g, w)) in ["output", "dx", "dw", "dbias"].iter().zip(got.iter().zip(&want)) {
                let e = rel_err(g, w);
                eprintln!("{name} {case:?} {what}: {e:.1e}");
                if e.is_nan() || e > TOL {
                    failures.push(format!("{name} {case:?} {what}: {e:e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn bn_module(channels: usize, device: &Device) -> BatchNorm {
    let bn = BatchNormConfig::new(channels).init(device);
    let gamma = bn.gamma.val().random_like(Distribution::Uniform(0.5, 1.5));
    let beta = bn.beta.val().random_like(Distribution::Normal(0.0, 0.5));
    BatchNorm { gamma: Param::from_tensor(gamma), beta: Param::from_tensor(beta), ..bn }
}

fn activate(y: Tensor<4>, act: Activation) -> Tensor<4> {
    match act {
        Activation::Identity => y,
        Activation::Relu => burn::tensor::activation::relu(y),
        Activation::Relu6 => burn::tensor::activation::relu6(y),
    }
}

/// Output, the gradients of x, gamma and beta, and the running statistics after the step.
fn bn_results(bn: &BatchNorm, x: &Tensor<4>, act: Activation, fused: bool) -> Vec<Vec<f32>> {
    let x = x.clone().require_grad();
    let y = if fused { nn_ops::batch_norm(bn, x.clone(), act) } else { activate(bn.forward(x.clone()), act) };
    let r = y.clone().detach().cos();
    let grads = (y.clone() * r).sum().backward();
    vec![
        values(y),
        values(x.grad(&grads).unwrap()),
        values(bn.gamma.grad(&grads).unwrap()),
        values(bn.beta.grad(&grads).unwrap()),
        values(bn.running_mean.value()),
        values(bn.running_var.value()),
    ]
}

#[test]
fn batch_norm_with_activations_matches_burn_in_training_and_inference() {
    let mut failures = Vec::new();
    for (name, device) in devices() {
        device.seed(5);
        for (shape, act) in [
            ([4, 3, 7, 9], Activation::Relu6),
            ([1, 5, 6, 6], Activation::Relu),
            ([3, 2, 5, 4], Activation::Identity),
            ([3, 4, 1, 2], Activation::Relu6),
            // Few pixels in a batch of 8 or more: the per-element path.
            ([9, 5, 3, 3], Activation::Relu6),
            ([8, 3, 5, 7], Activation::Relu),
            ([10, 70, 2, 2], Activation::Identity),
        ] {
            // Values spread over ReLU6's both bends, with a large offset on one channel.
            let x = Tensor::<4>::random(shape, Distribution::Normal(2.0, 3.0), &device);
            let (a, b) = (bn_module(shape[1], &device), bn_module(shape[1], &device));
            let b = BatchNorm { gamma: Param::from_tensor(a.gamma.val()), beta: Param::from_tensor(a.beta.val()), ..b };
            let (got, want) = (bn_results(&a, &x, act, true), bn_results(&b, &x, act, false));
            let what = ["output", "dx", "dgamma", "dbeta", "running mean", "running var"];
            for (w, (g, r)) in what.iter().zip(got.iter().zip(&want)) {
                let e = rel_err(g, r);
                eprintln!("{name} {shape:?} {act:?} {w}: {e:.1e}");
                if e.is_nan() || e > TOL {
                    failures.push(format!("{name} {shape:?} {act:?} {w}: {e:e}"));
                }
            }
            // Inference (plain device): the running statistics normalise.
            let (a, b) = (a.valid(), b.valid());
            let xi = x.clone().inner();
            let (yi, wi) = (values(nn_ops::batch_norm(&a, xi.clone(), act)), values(activate(b.forward(xi), act)));
            let e = rel_err(&yi, &wi);
            if e.is_nan() || e > TOL {
                failures.push(format!("{name} {shape:?} {act:?} inference: {e:e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A tensor of `t`'s shape with values fixed by `salt` (tests run at once share burn's
/// generator, so the thread-count test cannot draw its inputs from it).
fn fixed_like<const D: usize>(t: Tensor<D>, salt: f32) -> Tensor<D> {
    let dims = t.dims();
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.731 + salt).sin() * 1.7).collect();
    Tensor::from_data(burn::tensor::TensorData::new(v, dims), &t.device())
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let device = Device::flex().autodiff();
            let mut all = Vec::new();
            for case in &CONV_CASES {
                let conv = conv_module(case, &device);
                let conv = Conv2d {
                    weight: Param::from_tensor(fixed_like(conv.weight.val(), 1.0)),
                    bias: conv.bias.map(|b| Param::from_tensor(fixed_like(b.val(), 2.0))),
                    ..conv
                };
                let x = fixed_like(Tensor::<4>::zeros([case.0, case.1, case.2, case.3], &device), 3.0);
                all.extend(conv_results(&conv, &x, true));
            }
            let x = fixed_like(Tensor::<4>::zeros([3, 4, 33, 35], &device), 4.0) * 2.0 + 1.0;
            let bn = bn_module(4, &device);
            let (gamma, beta) = (fixed_like(bn.gamma.val(), 5.0) + 1.0, fixed_like(bn.beta.val(), 6.0));
            let bn = BatchNorm { gamma: Param::from_tensor(gamma), beta: Param::from_tensor(beta), ..bn };
            all.extend(bn_results(&bn, &x, Activation::Relu6, true));
            // Few pixels, many images: channel blocks are cut by the thread count.
            let x = fixed_like(Tensor::<4>::zeros([9, 40, 3, 3], &device), 7.0) * 2.0 + 1.0;
            let bn = bn_module(40, &device);
            let (gamma, beta) = (fixed_like(bn.gamma.val(), 8.0) + 1.0, fixed_like(bn.beta.val(), 9.0));
            let bn = BatchNorm { gamma: Param::from_tensor(gamma), beta: Param::from_tensor(beta), ..bn };
            all.extend(bn_results(&bn, &x, Activation::Relu6, true));
            all
        })
    };
    let (one, two, three) = (run(1), run(2), run(3));
    assert!(one == two && two == three, "results differ between 1, 2 and 3 threads");
}

/// A model's first layer: the input is data (no gradient), and a convolution without bias;
/// the weight gradient is still burn's.
#[test]
fn a_first_layer_without_input_gradient_gets_the_same_weight_gradient() {
    let device = Device::flex().autodiff();
    for case in [(2, 3, 17, 15, 4, [3, 3], [2, 2], [1, 1], 1, false), (2, 4, 9, 8, 4, [3, 3], [1, 1], [1, 1], 4, true)]
    {
        let conv = conv_module(&case, &device);
        let x = Tensor::<4>::random([case.0, case.1, case.2, case.3], Distribution::Normal(0.0, 1.0), &device);
        let grad_w = |fused: bool| {
            let y = if fused { nn_ops::conv2d(&conv, x.clone()) } else { conv.forward(x.clone()) };
            let grads = y.powi_scalar(2).sum().backward();
            assert!(x.grad(&grads).is_none());
            let gb = conv.bias.as_ref().map(|b| values(b.grad(&grads).unwrap()));
            (values(conv.weight.grad(&grads).unwrap()), gb)
        };
        let ((gw, gb), (rw, rb)) = (grad_w(true), grad_w(false));
        assert!(rel_err(&gw, &rw) <= TOL, "{case:?} dw: {}", rel_err(&gw, &rw));
        if let (Some(gb), Some(rb)) = (gb, rb) {
            assert!(rel_err(&gb, &rb) <= TOL, "{case:?} db: {}", rel_err(&gb, &rb));
        }
    }
}
