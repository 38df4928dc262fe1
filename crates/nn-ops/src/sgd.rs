//! SGD with momentum and weight decay as one pass over each parameter.
//!
//! burn's `Sgd` updates a parameter by tensor operations, each a pass over the parameter with
//! its own dispatch and allocation: weight decay's product and sum, momentum's products and
//! sum, the learning rate's product and the difference. MobileNetV2-RNNPool has 119 parameter
//! tensors, most of them a few hundred values, so that overhead is most of the step's time.
//! [`Sgd`] computes the same values in the same order in one pass that reads the parameter, its
//! gradient and its velocity and writes the parameter and the velocity in place (on Flex and
//! NdArray in f32; burn's tensor operations elsewhere): the same bits as burn's `Sgd`, and the
//! same record (`<param>.momentum.velocity`), so an optimizer state saved by either loads into
//! the other.

use burn::optim::{LearningRate, Optimizer, RecordState, StateSink, StateSource, join_path};
use burn::prelude::*;
use rayon::prelude::*;

use crate::simd::{Kernel, dispatch};

/// One step's hyperparameters: PyTorch's SGD, without dampening or Nesterov momentum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdArgs {
    /// The learning rate.
    pub lr: f32,
    /// The velocity's decay; `None`: plain SGD, no velocity.
    pub momentum: Option<f32>,
    /// The L2 penalty added to the gradient; `None`: none.
    pub weight_decay: Option<f32>,
}

/// Values a rayon task updates: tensors of more than this are split among the threads.
const VALUES_PER_TASK: usize = 1 << 15;

/// Updates the parameter `p` with its gradient `g` and, with momentum, its velocity `v`
/// (`first`: `v` holds nothing yet and becomes the gradient), in place.
pub fn update(args: SgdArgs, p: &mut [f32], g: &[f32], v: Option<&mut [f32]>, first: bool) {
    assert_eq!(p.len(), g.len(), "sgd: parameter and gradient sizes differ");
    let v = v.filter(|_| args.momentum.is_some());
    if let Some(v) = &v {
        assert_eq!(p.len(), v.len(), "sgd: parameter and velocity sizes differ");
    }
    let n = VALUES_PER_TASK;
    if p.len() <= n {
        return update_chunk(args, p, g, v, first);
    }
    match v {
        Some(v) => p.par_chunks_mut(n).zip(g.par_chunks(n)).zip(v.par_chunks_mut(n)).for_each(|((p, g), v)| {
            update_chunk(args, p, g, Some(v), first);
        }),
        None => p.par_chunks_mut(n).zip(g.par_chunks(n)).for_each(|(p, g)| update_chunk(args, p, g, None, first)),
    }
}

/// [`update`] of one run of values, on this thread.
fn update_chunk(args: SgdArgs, p: &mut [f32], g: &[f32], v: Option<&mut [f32]>, first: bool) {
    let decay = args.weight_decay.unwrap_or(0.0);
    match (v, args.momentum) {
        (Some(v), Some(momentum)) => {
            let k = WithVelocity { lr: args.lr, decay, momentum, p, g, v };
            match (args.weight_decay.is_some(), first) {
                (true, true) => dispatch(Pass::<_, true, true>(k)),
                (true, false) => dispatch(Pass::<_, true, false>(k)),
                (false, true) => dispatch(Pass::<_, false, true>(k)),
                (false, false) => dispatch(Pass::<_, false, false>(k)),
            }
        }
        _ => {
            let k = Plain { lr: args.lr, decay, p, g };
            match args.weight_decay.is_some() {
                true => dispatch(Pass::<_, true, false>(k)),
                false => dispatch(Pass::<_, false, false>(k)),
            }
        }
    }
}

/// The gradient with weight decay, as burn's `WeightDecay` adds it (`p * decay + g`).
#[inline(always)]
fn decayed<const DECAY: bool>(p: f32, g: f32, decay: f32) -> f32 {
    if DECAY { p * decay + g } else { g }
}

/// A pass's loop, compiled once per combination of the constant flags so that none of them is
/// tested per value.
struct Pass<K, const DECAY: bool, const FIRST: bool>(K);

/// The buffers and scalars of a step with momentum.
struct WithVelocity<'a> {
    lr: f32,
    decay: f32,
    momentum: f32,
    p: &'a mut [f32],
    g: &'a [f32],
    v: &'a mut [f32],
}

/// The buffers and scalars of a step without momentum.
struct Plain<'a> {
    lr: f32,
    decay: f32,
    p: &'a mut [f32],
    g: &'a [f32],
}

impl<const DECAY: bool, const FIRST: bool> Kernel for Pass<WithVelocity<'_>, DECAY, FIRST> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let WithVelocity { lr, decay, momentum, p, g, v } = self.0;
        for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
            let g = decayed::<DECAY>(*p, g, decay);
            // burn's `Momentum`: the first velocity is the gradient itself.
            *v = if FIRST { g } else { g + *v * momentum };
            *p -= *v * lr;
        }
    }
}

impl<const DECAY: bool, const FIRST: bool> Kernel for Pass<Plain<'_>, DECAY, FIRST> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Plain { lr, decay, p, g } = self.0;
        for (p, &g) in p.iter_mut().zip(g) {
            *p -= decayed::<DECAY>(*p, g, decay) * lr;
        }
    }
}

/// SGD with momentum and weight decay (PyTorch's, without dampening), one pass per parameter
/// on the CPU backends. Build a [`burn::optim::ModuleOptimizer`] from it with `.into()`.
#[derive(Clone, Debug)]
pub struct Sgd {
    momentum: Option<f32>,
    weight_decay: Option<f32>,
}

impl Sgd {
    /// `momentum` and `weight_decay` of 0 (or less) mean none, as in PyTorch.
    pub fn new(momentum: f64, weight_decay: f64) -> Self {
        Self {
            momentum: (momentum > 0.0).then_some(momentum as f32),
            weight_decay: (weight_decay > 0.0).then_some(weight_decay as f32),
        }
    }

    fn args(&self, lr: LearningRate) -> SgdArgs {
        SgdArgs { lr: lr as f32, momentum: self.momentum, weight_decay: self.weight_decay }
    }
}

/// [`Sgd`]'s state of one parameter: its velocity, with momentum.
#[derive(Clone, Debug)]
pub struct SgdState<const D: usize> {
    velocity: Option<Tensor<D>>,
}

/// The record path of the velocity under a parameter's prefix, as burn's `SgdState` names it.
const MOMENTUM: &str = "momentum";
const VELOCITY: &str = "velocity";

impl<const D: usize> RecordState for SgdState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        if let Some(v) = &self.velocity {
            out.push_tensor(&join_path(prefix, MOMENTUM), VELOCITY, v.clone().into_data());
        }
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let momentum = join_path(prefix, MOMENTUM);
        let velocity = src.take_tensor(&momentum, VELOCITY).map(|data| Tensor::from_data(data, device));
        Some(Self { velocity })
    }
}

impl Optimizer for Sgd {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<SgdState<D>>,
    ) -> (Tensor<D>, Option<SgdState<D>>) {
        let velocity = state.and_then(|s| s.velocity);
        let (tensor, velocity) = match crate::kernels_take(&tensor) && crate::kernels_take(&grad) {
            true => crate::sgd_step(tensor, grad, velocity, self.args(lr)),
            false => with_tensor_ops(tensor, grad, velocity, self.args(lr)),
        };
        (tensor, Some(SgdState { velocity }))
    }

    fn to_device<const D: usize>(state: SgdState<D>, device: &Device) -> SgdState<D> {
        SgdState { velocity: state.velocity.map(|v| v.to_device(device)) }
    }
}

/// The step by burn's tensor operations, in burn's `Sgd`'s order (other backends and dtypes).
fn with_tensor_ops<const D: usize>(
    p: Tensor<D>,
    g: Tensor<D>,
    v: Option<Tensor<D>>,
    args: SgdArgs,
) -> (Tensor<D>, Option<Tensor<D>>) {
    let g = match args.weight_decay {
        Some(decay) => p.clone().mul_scalar(decay).add(g),
        None => g,
    };
    let v = args.momentum.map(|m| match v {
        Some(v) => g.clone().add(v.mul_scalar(m)),
        None => g.clone(),
    });
    let step = v.clone().unwrap_or(g);
    (p - step.mul_scalar(args.lr), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::momentum::MomentumConfig;
    use burn::optim::{ModuleOptimizer, SgdConfig};
    use burn::tensor::{Distribution, TensorData};

    fn burn_sgd(momentum: f64, decay: f32) -> burn::optim::Sgd {
        SgdConfig::new()
            .with_momentum((momentum > 0.0).then(|| MomentumConfig::new().with_momentum(momentum).with_dampening(0.0)))
            .with_weight_decay((decay > 0.0).then(|| WeightDecayConfig::new(decay)))
            .build()
    }

    fn bits<const D: usize>(t: &Tensor<D>) -> Vec<u32> {
        t.to_data().try_to_vec::<f32>().expect("f32 values").iter().map(|v| v.to_bits()).collect()
    }

    /// Three steps of ours and burn's `Sgd` on the same parameter and gradients: the same bits,
    /// on the kernel (Flex) and through the tensor operations.
    #[test]
    fn steps_match_burns_sgd_bit_for_bit() {
        let device = Device::flex();
        for (momentum, decay) in [(0.9, 4e-5), (0.9, 0.0), (0.0, 1e-3), (0.0, 0.0)] {
            let (ours, theirs) = (Sgd::new(momentum, decay as f64), burn_sgd(momentum, decay));
            let p0 = Tensor::<2>::random([257, 131], Distribution::Normal(0.0, 1.0), &device);
            let (mut p, mut q, mut r) = (p0.clone(), p0.clone(), p0);
            let (mut s, mut t, mut u) = (None, None, None);
            for lr in [0.1, 0.05, 0.01] {
                let g = Tensor::<2>::random([257, 131], Distribution::Normal(0.0, 1.0), &device);
                (p, s) = ours.step(lr, p, g.clone(), s);
                (q, t) = theirs.step(lr, q, g.clone(), t);
                let v = u.take().and_then(|s: SgdState<2>| s.velocity);
                let (r2, v2) = with_tensor_ops(r, g, v, ours.args(lr));
                (r, u) = (r2, Some(SgdState { velocity: v2 }));
                assert_eq!(bits(&p), bits(&q), "kernel, momentum {momentum}, decay {decay}");
                assert_eq!(bits(&r), bits(&q), "tensor ops, momentum {momentum}, decay {decay}");
            }
            assert_eq!(s.as_ref().is_some_and(|s| s.velocity.is_some()), momentum > 0.0);
        }
    }

    /// A velocity the step changes in place leaves the caller's other handles alone (a shared
    /// buffer is copied first).
    #[test]
    fn shared_buffers_are_not_written() {
        let device = Device::flex();
        let p = Tensor::<1>::from_data(TensorData::from([1.0f32, 2.0, 3.0]), &device);
        let g = Tensor::<1>::from_data(TensorData::from([1.0f32, 1.0, 1.0]), &device);
        let kept = p.clone();
        let (p2, _) = Sgd::new(0.9, 0.0).step(0.5, p, g, None);
        assert_eq!(kept.to_data().try_to_vec::<f32>().ok(), Some(vec![1.0, 2.0, 3.0]));
        assert_eq!(p2.to_data().try_to_vec::<f32>().ok(), Some(vec![0.5, 1.5, 2.5]));
    }

    #[derive(burn::module::Module, Debug)]
    struct Two {
        a: burn::nn::Linear,
        b: burn::nn::Linear,
    }

    /// A state saved by burn's `Sgd` loads into ours and goes on to the same parameters, and
    /// ours saves the same record.
    #[test]
    fn records_load_across_both_optimizers() {
        let device = Device::flex().autodiff();
        let lin = |i, o| burn::nn::LinearConfig::new(i, o).init(&device);
        let step = |m: Two, o: &mut ModuleOptimizer| {
            let x = Tensor::<2>::random([6, 5], Distribution::Normal(0.0, 1.0), &device);
            let loss = m.b.forward(m.a.forward(x)).powi_scalar(2).sum();
            let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &m);
            o.step(0.1, m, grads)
        };
        let mut burns: ModuleOptimizer = burn_sgd(0.9, 1e-3).into();
        let mut ours: ModuleOptimizer = Sgd::new(0.9, 1e-3).into();
        let m1 = Two { a: lin(5, 4), b: lin(4, 3) };
        let m2 = m1.clone();
        device.seed(1);
        let m1 = step(m1, &mut burns);
        device.seed(1);
        let m2 = step(m2, &mut ours);
        assert_eq!(bits(&m1.a.weight.val()), bits(&m2.a.weight.val()));
        let (saved_burn, saved_ours) = (burns.to_record(), ours.to_record());
        assert_eq!(saved_burn.len(), saved_ours.len());
        // Crossed: burn's record into ours and ours into burn's; each goes on as burn's own
        // optimizer does without a save (which a lost velocity would not).
        let mut ours2: ModuleOptimizer = ModuleOptimizer::from(Sgd::new(0.9, 1e-3)).load_record(saved_burn);
        let mut burns2: ModuleOptimizer = ModuleOptimizer::from(burn_sgd(0.9, 1e-3)).load_record(saved_ours);
        let m3 = m1.clone();
        let mut fresh: ModuleOptimizer = burn_sgd(0.9, 1e-3).into();
        let m4 = m1.clone();
        let mut results = vec![];
        for (m, o) in [(m1, &mut burns), (m2, &mut ours2), (m3, &mut burns2), (m4, &mut fresh)] {
            device.seed(2);
            let m = step(m, o);
            results.push((bits(&m.a.weight.val()), bits(&m.b.bias.as_ref().expect("bias").val())));
        }
        assert_eq!(results[1], results[0], "burn's record in ours");
        assert_eq!(results[2], results[0], "our record in burn's");
        assert_ne!(results[3], results[0], "the velocity changes the step");
    }
}
