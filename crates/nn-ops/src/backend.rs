//! The CPU kernels as a burn backend extension: forward and backward primitives for Flex and
//! NdArray, and an `Autodiff` implementation that registers the backward primitive as the
//! operation's gradient. Flex tensors are read and written in place; NdArray's go through
//! `TensorData`.

#![allow(deprecated)] // NdArray is deprecated in burn 0.22 but remains a supported backend.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{FlexTensor, Layout as FlexLayout};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, Flex, NdArray, TensorMetadata, backend_extension, try_read_sync,
};
use burn::tensor::{Bytes, DType, Shape, TensorData};

use crate::batch_norm::{self, Activation, Norm};
use crate::conv::{self, ConvGeometry};
use crate::profile::{Op, timed};
use crate::sgd::{self, SgdArgs};

/// A convolution's hyperparameters, as the extension passes them.
pub type ConvArgs = ([usize; 2], [usize; 2], usize);

/// Backends with the CPU kernels of convolution, BatchNorm(+activation) and the SGD step.
#[backend_extension(Flex, NdArray, Autodiff)]
pub trait NnOpsBackend: Backend {
    /// `x` `[n, cin, h, w]`, `w` `[cout, cin / groups, kh, kw]`, `bias` `[cout]` (`[0]`: none);
    /// `args` = `(stride, padding, groups)`.
    fn conv2d_cpu(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        args: ConvArgs,
    ) -> FloatTensor<Self>;

    /// `(dx, dw, dbias)` of [`NnOpsBackend::conv2d_cpu`] for the output gradient `dy`; `need`:
    /// whether `dx` and `dbias` are wanted (not for a model's first layer and a convolution
    /// without bias), else those are empty tensors.
    fn conv2d_cpu_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        args: ConvArgs,
        need: (bool, bool),
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// BatchNorm with the batch's statistics then activation `act` ([`Activation::code`]):
    /// `(y, mean, biased variance)`.
    fn batch_norm_cpu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
        act: u8,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `(dx, dgamma, dbeta)` of [`NnOpsBackend::batch_norm_cpu`].
    #[allow(clippy::too_many_arguments)] // the primitive's inputs and its two hyperparameters
    fn batch_norm_cpu_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        eps: f64,
        act: u8,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// BatchNorm with given (running) statistics, then activation `act`. The default body is
    /// burn's ops, which differentiate on `Autodiff`; the CPU backends run one pass.
    fn batch_norm_cpu_inference(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        eps: f64,
        act: u8,
    ) -> FloatTensor<Self> {
        let y = Self::batch_norm(x, gamma, beta, mean, var, eps);
        match Activation::from_code(act) {
            Activation::Identity => y,
            Activation::Relu => Self::relu(y),
            Activation::Relu6 => Self::float_clamp(y, 0.0.into(), 6.0.into()),
        }
    }

    /// One SGD step ([`sgd::update`]) of the parameter `p` with gradient `g` and velocity `v`
    /// (`[0]`: none yet): `(p, v)` after it (`v` empty without momentum).
    fn sgd_step_cpu(
        p: FloatTensor<Self>,
        g: FloatTensor<Self>,
        v: FloatTensor<Self>,
        args: SgdArgs,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// Reading and writing f32 primitives on the host.
trait Host: Backend {
    /// The values of `t` (contiguous, row-major), borrowed where the backend allows it.
    fn with_values<R>(t: &FloatTensor<Self>, f: impl FnOnce(&[f32]) -> R) -> R;
    /// A primitive of `values` with `shape`.
    fn from_values(values: Vec<f32>, shape: Vec<usize>) -> FloatTensor<Self>;
    /// `t` with its values changed by `f`: in place where the backend allows it and `t` holds
    /// its buffer alone, else in a copy.
    fn update_values(t: FloatTensor<Self>, f: impl FnOnce(&mut [f32])) -> FloatTensor<Self>;
}

impl Host for Flex {
    fn with_values<R>(t: &FloatTensor<Self>, f: impl FnOnce(&[f32]) -> R) -> R {
        let t: FlexTensor = t.to_contiguous();
        let start = t.layout().start_offset();
        let n = t.layout().num_elements();
        f(&t.storage::<f32>()[start..start + n])
    }

    fn from_values(values: Vec<f32>, shape: Vec<usize>) -> FloatTensor<Self> {
        FlexTensor::new(Bytes::from_elems(values), FlexLayout::contiguous(Shape::from(shape)), DType::F32)
    }

    fn update_values(t: FloatTensor<Self>, f: impl FnOnce(&mut [f32])) -> FloatTensor<Self> {
        let mut t: FlexTensor = if t.is_contiguous() { t } else { t.to_contiguous() };
        let (start, n) = (t.layout().start_offset(), t.layout().num_elements());
        // Copies the buffer first where another tensor shares it.
        f(&mut t.storage_mut::<f32>()[start..start + n]);
        t
    }
}

impl Host for NdArray {
    fn with_values<R>(t: &FloatTensor<Self>, f: impl FnOnce(&[f32]) -> R) -> R {
        let data = try_read_sync(Self::float_into_data(t.clone()))
            .expect("CPU backends read synchronously")
            .unwrap_or_else(|e| panic!("nn-ops: reading a tensor failed: {e:?}"));
        let values = data.convert::<f32>().into_vec::<f32>().unwrap_or_else(|e| panic!("nn-ops: {e:?}"));
        f(&values)
    }

    fn from_values(values: Vec<f32>, shape: Vec<usize>) -> FloatTensor<Self> {
        Self::float_from_data(TensorData::new(values, shape), &Default::default())
    }

    fn update_values(t: FloatTensor<Self>, f: impl FnOnce(&mut [f32])) -> FloatTensor<Self> {
        let shape = t.shape().to_vec();
        let mut values = Self::with_values(&t, <[f32]>::to_vec);
        f(&mut values);
        Self::from_values(values, shape)
    }
}

fn geometry<B: Backend>(x: &FloatTensor<B>, w: &FloatTensor<B>, (stride, padding, groups): ConvArgs) -> ConvGeometry {
    let ([batch, cin, height, width], [cout, _, kh, kw]) = (x.shape().dims::<4>(), w.shape().dims::<4>());
    ConvGeometry { batch, cin, height, width, cout, kernel: [kh, kw], stride, padding, groups }
}

fn layout<B: Backend>(x: &FloatTensor<B>) -> batch_norm::Layout {
    let [batch, channels, h, w] = x.shape().dims::<4>();
    batch_norm::Layout { batch, channels, pixels: h * w }
}

fn host_conv<B: Host>(x: FloatTensor<B>, w: FloatTensor<B>, bias: FloatTensor<B>, args: ConvArgs) -> FloatTensor<B> {
    let g = geometry::<B>(&x, &w, args);
    let y = timed(Op::conv_forward(&g), || {
        B::with_values(&x, |xv| {
            B::with_values(&w, |wv| {
                B::with_values(&bias, |bv| conv::forward(&g, xv, wv, (!bv.is_empty()).then_some(bv)))
            })
        })
    });
    B::from_values(y, vec![g.batch, g.cout, g.out_h(), g.out_w()])
}

fn host_conv_backward<B: Host>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    dy: FloatTensor<B>,
    args: ConvArgs,
    (need_dx, need_db): (bool, bool),
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let g = geometry::<B>(&x, &w, args);
    let grads = timed(Op::conv_backward(&g), || {
        B::with_values(&x, |xv| {
            B::with_values(&w, |wv| B::with_values(&dy, |dv| conv::backward(&g, xv, wv, dv, need_db, need_dx)))
        })
    });
    let dx = match grads.dx {
        Some(dx) => B::from_values(dx, vec![g.batch, g.cin, g.height, g.width]),
        None => B::from_values(Vec::new(), vec![0]),
    };
    let db = match grads.db {
        Some(db) => B::from_values(db, vec![g.cout]),
        None => B::from_values(Vec::new(), vec![0]),
    };
    (dx, B::from_values(grads.dw, w.shape().to_vec()), db)
}

/// Runs `f` with a [`Norm`] of the given primitives.
fn with_norm<B: Host, R>(
    [gamma, beta, mean, var]: [&FloatTensor<B>; 4],
    eps: f64,
    act: u8,
    f: impl FnOnce(&Norm<'_>) -> R,
) -> R {
    B::with_values(gamma, |gamma| {
        B::with_values(beta, |beta| {
            B::with_values(mean, |mean| {
                B::with_values(var, |var| f(&Norm { gamma, beta, mean, var, eps, act: Activation::from_code(act) }))
            })
        })
    })
}

fn host_batch_norm<B: Host>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    eps: f64,
    act: u8,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let l = layout::<B>(&x);
    let shape = x.shape().to_vec();
    let (y, mean, var) = timed(Op::BatchNormForward, || {
        B::with_values(&x, |xv| {
            B::with_values(&gamma, |g| {
                B::with_values(&beta, |b| batch_norm::train_forward(&l, xv, g, b, eps, Activation::from_code(act)))
            })
        })
    });
    (B::from_values(y, shape), B::from_values(mean, vec![l.channels]), B::from_values(var, vec![l.channels]))
}

#[allow(clippy::too_many_arguments)] // mirrors NnOpsBackend::batch_norm_cpu_backward
fn host_batch_norm_backward<B: Host>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    mean: FloatTensor<B>,
    var: FloatTensor<B>,
    dy: FloatTensor<B>,
    eps: f64,
    act: u8,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let l = layout::<B>(&x);
    let shape = x.shape().to_vec();
    let (dx, dg, db) = timed(Op::BatchNormBackward, || {
        B::with_values(&x, |xv| {
            B::with_values(&dy, |dv| {
                with_norm::<B, _>([&gamma, &beta, &mean, &var], eps, act, |n| batch_norm::backward(&l, xv, dv, n))
            })
        })
    });
    (B::from_values(dx, shape), B::from_values(dg, vec![l.channels]), B::from_values(db, vec![l.channels]))
}

#[allow(clippy::too_many_arguments)] // mirrors NnOpsBackend::batch_norm_cpu_inference
fn host_batch_norm_inference<B: Host>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    mean: FloatTensor<B>,
    var: FloatTensor<B>,
    eps: f64,
    act: u8,
) -> FloatTensor<B> {
    let l = layout::<B>(&x);
    let shape = x.shape().to_vec();
    let y = timed(Op::BatchNormForward, || {
        B::with_values(&x, |xv| {
            with_norm::<B, _>([&gamma, &beta, &mean, &var], eps, act, |n| batch_norm::normalize(&l, xv, n))
        })
    });
    B::from_values(y, shape)
}

fn host_sgd_step<B: Host>(
    p: FloatTensor<B>,
    g: FloatTensor<B>,
    v: FloatTensor<B>,
    args: SgdArgs,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let first = v.shape().num_elements() == 0;
    let shape = p.shape().to_vec();
    let mut v_out = None;
    let p = timed(Op::Other("sgd step"), || {
        B::update_values(p, |pv| {
            B::with_values(&g, |gv| {
                let v = match args.momentum {
                    Some(_) if first => B::from_values(vec![0.0; pv.len()], shape),
                    Some(_) => v,
                    None => return sgd::update(args, pv, gv, None, false),
                };
                v_out = Some(B::update_values(v, |vv| sgd::update(args, pv, gv, Some(vv), first)));
            })
        })
    });
    (p, v_out.unwrap_or_else(|| B::from_values(Vec::new(), vec![0])))
}

/// The CPU backends share the host implementation.
macro_rules! host_backend {
    ($backend:ty) => {
        impl NnOpsBackend for $backend {
            fn conv2d_cpu(
                x: FloatTensor<Self>,
                w: FloatTensor<Self>,
                bias: FloatTensor<Self>,
                args: ConvArgs,
            ) -> FloatTensor<Self> {
                host_conv::<Self>(x, w, bias, args)
            }

            fn conv2d_cpu_backward(
                x: FloatTensor<Self>,
                w: FloatTensor<Self>,
                dy: FloatTensor<Self>,
                args: ConvArgs,
                need: (bool, bool),
            ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
                host_conv_backward::<Self>(x, w, dy, args, need)
            }

            fn batch_norm_cpu(
                x: FloatTensor<Self>,
                gamma: FloatTensor<Self>,
                beta: FloatTensor<Self>,
                eps: f64,
                act: u8,
            ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
                host_batch_norm::<Self>(x, gamma, beta, eps, act)
            }

            fn batch_norm_cpu_backward(
                x: FloatTensor<Self>,
                gamma: FloatTensor<Self>,
                beta: FloatTensor<Self>,
                mean: FloatTensor<Self>,
                var: FloatTensor<Self>,
                dy: FloatTensor<Self>,
                eps: f64,
                act: u8,
            ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
                host_batch_norm_backward::<Self>(x, gamma, beta, mean, var, dy, eps, act)
            }

            fn batch_norm_cpu_inference(
                x: FloatTensor<Self>,
                gamma: FloatTensor<Self>,
                beta: FloatTensor<Self>,
                mean: FloatTensor<Self>,
                var: FloatTensor<Self>,
                eps: f64,
                act: u8,
            ) -> FloatTensor<Self> {
                host_batch_norm_inference::<Self>(x, gamma, beta, mean, var, eps, act)
            }

            fn sgd_step_cpu(
                p: FloatTensor<Self>,
                g: FloatTensor<Self>,
                v: FloatTensor<Self>,
                args: SgdArgs,
            ) -> (FloatTensor<Self>, FloatTensor<Self>) {
                host_sgd_step::<Self>(p, g, v, args)
            }
        }
    };
}

host_backend!(Flex);
host_backend!(NdArray);

/// Registers each gradient for its parent, where that parent is tracked.
macro_rules! register {
    ($ops:expr, $grads:expr, $outs:expr) => {
        for (parent, grad) in $ops.parents.into_iter().zip($outs) {
            if let Some(node) = parent {
                $grads.register::<B>(node.id, grad);
            }
        }
    };
}

#[derive(Debug)]
struct ConvBackward;

impl<B: NnOpsBackend> Backward<B, 3> for ConvBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, ConvArgs);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (x, w, args) = ops.state;
        let need = (ops.parents[0].is_some(), ops.parents[2].is_some());
        let (dx, dw, db) = B::conv2d_cpu_backward(x, w, dy, args, need);
        register!(ops, grads, [dx, dw, db]);
    }
}

#[derive(Debug)]
struct BatchNormBackward;

impl<B: NnOpsBackend> Backward<B, 3> for BatchNormBackward {
    /// `(x, gamma, beta, mean, var, eps, act)`.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, f64, u8);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (x, gamma, beta, mean, var, eps, act) = ops.state;
        let (dx, dg, db) = B::batch_norm_cpu_backward(x, gamma, beta, mean, var, dy, eps, act);
        register!(ops, grads, [dx, dg, db]);
    }
}

impl<B: NnOpsBackend, C: CheckpointStrategy> NnOpsBackend for Autodiff<B, C> {
    fn conv2d_cpu(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        args: ConvArgs,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), w.node(), bias.node()];
        let (x, w, bias) = (x.into_primitive(), w.into_primitive(), bias.into_primitive());
        match ConvBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::conv2d_cpu(x.clone(), w.clone(), bias, args);
                prep.finish((x, w, args), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d_cpu(x, w, bias, args)),
        }
    }

    /// Gradients of gradients are not tracked: the results are constants of the graph.
    fn conv2d_cpu_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        args: ConvArgs,
        need: (bool, bool),
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let p = |t: FloatTensor<Self>| t.into_primitive();
        let (dx, dw, db) = B::conv2d_cpu_backward(p(x), p(w), p(dy), args, need);
        let leaf = <Self as AutodiffBackend>::from_inner;
        (leaf(dx), leaf(dw), leaf(db))
    }

    fn batch_norm_cpu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
        act: u8,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let nodes = [x.node(), gamma.node(), beta.node()];
        let (x, gamma, beta) = (x.into_primitive(), gamma.into_primitive(), beta.into_primitive());
        let leaf = <Self as AutodiffBackend>::from_inner;
        match BatchNormBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, mean, var) = B::batch_norm_cpu(x.clone(), gamma.clone(), beta.clone(), eps, act);
                let y = prep.finish((x, gamma, beta, mean.clone(), var.clone(), eps, act), y);
                (y, leaf(mean), leaf(var))
            }
            OpsKind::UnTracked(prep) => {
                let (y, mean, var) = B::batch_norm_cpu(x, gamma, beta, eps, act);
                (prep.finish(y), leaf(mean), leaf(var))
            }
        }
    }

    /// Gradients of gradients are not tracked: the results are constants of the graph.
    fn batch_norm_cpu_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        eps: f64,
        act: u8,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let p = |t: FloatTensor<Self>| t.into_primitive();
        let (dx, dg, db) = B::batch_norm_cpu_backward(p(x), p(gamma), p(beta), p(mean), p(var), p(dy), eps, act);
        let leaf = <Self as AutodiffBackend>::from_inner;
        (leaf(dx), leaf(dg), leaf(db))
    }

    /// The step is not tracked: a parameter's new value is a leaf.
    fn sgd_step_cpu(
        p: FloatTensor<Self>,
        g: FloatTensor<Self>,
        v: FloatTensor<Self>,
        args: SgdArgs,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let i = |t: FloatTensor<Self>| t.into_primitive();
        let (p, v) = B::sgd_step_cpu(i(p), i(g), i(v), args);
        let leaf = <Self as AutodiffBackend>::from_inner;
        (leaf(p), leaf(v))
    }
}
