//! The fused RNNPool layer as a burn backend extension: one primitive for the forward pass and
//! one for its gradient, implemented for the CPU backends (Flex, NdArray) by the kernel in
//! `super::kernel`, for burn's CubeCL backend (wgpu) by the kernels in `super::cube`, and for
//! `Autodiff` by registering that gradient as the backward step.

#![allow(deprecated)] // NdArray is deprecated in burn 0.22 but remains a supported backend.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, ExtensionType, Flex, NdArray, TensorMetadata, backend_extension, try_read_sync,
};
use burn::tensor::{DType, TensorData};
use nn_ops::profile::{Op, timed};

use super::kernel::{self, PatchGrid};
use super::real::Real;
use super::scan::{CellGrads, CellView};

/// A FastGRNN cell's parameters as backend primitives (shapes as in EdgeML).
#[derive(ExtensionType, Clone, Debug)]
#[extension_type(fusion: cfg(feature = "wgpu"))]
pub struct CellTensors<B: Backend> {
    /// `[input, hidden]`, used as `x·W`.
    pub w: FloatTensor<B>,
    /// `[hidden, hidden]`.
    pub u: FloatTensor<B>,
    /// `[1, hidden]`.
    pub bias_gate: FloatTensor<B>,
    /// `[1, hidden]`.
    pub bias_update: FloatTensor<B>,
    /// `[1, 1]`, before its sigmoid.
    pub zeta: FloatTensor<B>,
    /// `[1, 1]`, before its sigmoid.
    pub nu: FloatTensor<B>,
}

impl<B: Backend> CellTensors<B> {
    fn into_array(self) -> [FloatTensor<B>; 6] {
        [self.w, self.u, self.bias_gate, self.bias_update, self.zeta, self.nu]
    }
}

/// Gradients of `sum(output * grad_output)` with respect to every input of the layer.
#[derive(ExtensionType, Debug)]
#[extension_type(fusion: cfg(feature = "wgpu"))]
pub struct RnnPoolGrads<B: Backend> {
    /// Of the input map.
    pub x: FloatTensor<B>,
    /// Of RNN1's parameters.
    #[extension_type]
    pub rnn1: CellTensors<B>,
    /// Of RNN2's parameters.
    #[extension_type]
    pub rnn2: CellTensors<B>,
}

/// Backends that run the fused FastGRNN RNNPool layer. With the `wgpu` feature burn wraps its
/// CubeCL backend in `Fusion` (burn-wgpu's default, which fuses the element-wise ops of the rest
/// of a model into few kernels); the layer is one opaque operation in its graph, run by the
/// CubeCL implementation when the graph executes.
#[backend_extension(Flex, NdArray, Cube: cfg(feature = "wgpu"), Fusion: cfg(feature = "wgpu"), Autodiff)]
pub trait RnnPoolBackend: Backend {
    /// `x` `[batch, channels, height, width]` -> `[batch, 4 * hidden2, out_h, out_w]` (no
    /// replicate padding; the layer adds it).
    #[fusion(meta = fusion_meta::output)]
    fn rnnpool_fastgrnn(
        x: FloatTensor<Self>,
        #[extension_type] rnn1: CellTensors<Self>,
        #[extension_type] rnn2: CellTensors<Self>,
        patch: [usize; 2],
        stride: [usize; 2],
    ) -> FloatTensor<Self>;

    /// The gradients of [`RnnPoolBackend::rnnpool_fastgrnn`] for a given output gradient.
    #[fusion(meta = fusion_meta::gradients)]
    fn rnnpool_fastgrnn_backward(
        x: FloatTensor<Self>,
        #[extension_type] rnn1: CellTensors<Self>,
        #[extension_type] rnn2: CellTensors<Self>,
        grad_out: FloatTensor<Self>,
        patch: [usize; 2],
        stride: [usize; 2],
    ) -> RnnPoolGrads<Self>;
}

/// What the fused operations return, known before they run: Fusion records an operation with
/// its outputs' shapes and dtypes and runs it later.
#[cfg(feature = "wgpu")]
mod fusion_meta {
    use burn::backend::Shape;
    use burn::backend::fusion::custom::TensorSpec;

    use super::{CellTensorsMetadata, RnnPoolGradsMetadata, grid_of};

    pub(super) fn output(
        x: &TensorSpec,
        _rnn1: &CellTensorsMetadata,
        rnn2: &CellTensorsMetadata,
        patch: &[usize; 2],
        stride: &[usize; 2],
    ) -> TensorSpec {
        let g = grid_of(&x.shape.to_vec(), *patch, *stride);
        let h2 = rnn2.w.shape[1];
        TensorSpec::new(Shape::from(vec![g.batch, 4 * h2, g.out_h(), g.out_w()]), x.dtype)
    }

    /// Every gradient has its input's shape and dtype.
    pub(super) fn gradients(
        x: &TensorSpec,
        rnn1: &CellTensorsMetadata,
        rnn2: &CellTensorsMetadata,
        _grad_out: &TensorSpec,
        _patch: &[usize; 2],
        _stride: &[usize; 2],
    ) -> RnnPoolGradsMetadata {
        RnnPoolGradsMetadata { x: x.clone(), rnn1: rnn1.clone(), rnn2: rnn2.clone() }
    }
}

/// The CPU backends share one host implementation: read the tensors, run the kernel, write back.
macro_rules! host_backend {
    ($backend:ty) => {
        impl RnnPoolBackend for $backend {
            fn rnnpool_fastgrnn(
                x: FloatTensor<Self>,
                rnn1: CellTensors<Self>,
                rnn2: CellTensors<Self>,
                patch: [usize; 2],
                stride: [usize; 2],
            ) -> FloatTensor<Self> {
                timed(Op::Other("rnnpool forward"), || host_forward::<Self>(x, rnn1, rnn2, patch, stride))
            }

            fn rnnpool_fastgrnn_backward(
                x: FloatTensor<Self>,
                rnn1: CellTensors<Self>,
                rnn2: CellTensors<Self>,
                grad_out: FloatTensor<Self>,
                patch: [usize; 2],
                stride: [usize; 2],
            ) -> RnnPoolGrads<Self> {
                timed(Op::Other("rnnpool backward"), || host_backward::<Self>(x, rnn1, rnn2, grad_out, patch, stride))
            }
        }
    };
}

host_backend!(Flex);
host_backend!(NdArray);

#[derive(Debug)]
struct RnnPoolBackward;

/// What the backward step keeps: the inputs (the kernel recomputes the rest) and the geometry.
type SavedInputs<B> = (FloatTensor<B>, CellTensors<B>, CellTensors<B>, [usize; 2], [usize; 2]);

impl<B: RnnPoolBackend> Backward<B, 13> for RnnPoolBackward {
    type State = SavedInputs<B>;

    fn backward(self, ops: Ops<Self::State, 13>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_out = grads.consume::<B>(&ops.node);
        let (x, rnn1, rnn2, patch, stride) = ops.state;
        let g = B::rnnpool_fastgrnn_backward(x, rnn1, rnn2, grad_out, patch, stride);
        let all = core::iter::once(g.x).chain(g.rnn1.into_array()).chain(g.rnn2.into_array());
        for (parent, grad) in ops.parents.into_iter().zip(all) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

fn inner_cell<B: Backend, C: CheckpointStrategy>(cell: &CellTensors<Autodiff<B, C>>) -> CellTensors<B> {
    CellTensors {
        w: cell.w.primitive().clone(),
        u: cell.u.primitive().clone(),
        bias_gate: cell.bias_gate.primitive().clone(),
        bias_update: cell.bias_update.primitive().clone(),
        zeta: cell.zeta.primitive().clone(),
        nu: cell.nu.primitive().clone(),
    }
}

impl<B: RnnPoolBackend, C: CheckpointStrategy> RnnPoolBackend for Autodiff<B, C> {
    fn rnnpool_fastgrnn(
        x: FloatTensor<Self>,
        rnn1: CellTensors<Self>,
        rnn2: CellTensors<Self>,
        patch: [usize; 2],
        stride: [usize; 2],
    ) -> FloatTensor<Self> {
        let nodes = [
            x.node(),
            rnn1.w.node(),
            rnn1.u.node(),
            rnn1.bias_gate.node(),
            rnn1.bias_update.node(),
            rnn1.zeta.node(),
            rnn1.nu.node(),
            rnn2.w.node(),
            rnn2.u.node(),
            rnn2.bias_gate.node(),
            rnn2.bias_update.node(),
            rnn2.zeta.node(),
            rnn2.nu.node(),
        ];
        let (c1, c2) = (inner_cell(&rnn1), inner_cell(&rnn2));
        let x = x.into_primitive();
        match RnnPoolBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::rnnpool_fastgrnn(x.clone(), c1.clone(), c2.clone(), patch, stride);
                prep.finish((x, c1, c2, patch, stride), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::rnnpool_fastgrnn(x, c1, c2, patch, stride)),
        }
    }

    /// Gradients of gradients are not tracked: the result is a constant of the graph.
    fn rnnpool_fastgrnn_backward(
        x: FloatTensor<Self>,
        rnn1: CellTensors<Self>,
        rnn2: CellTensors<Self>,
        grad_out: FloatTensor<Self>,
        patch: [usize; 2],
        stride: [usize; 2],
    ) -> RnnPoolGrads<Self> {
        let g = B::rnnpool_fastgrnn_backward(
            x.into_primitive(),
            inner_cell(&rnn1),
            inner_cell(&rnn2),
            grad_out.into_primitive(),
            patch,
            stride,
        );
        let leaf = <Self as AutodiffBackend>::from_inner;
        let lift = |c: CellTensors<B>| CellTensors {
            w: leaf(c.w),
            u: leaf(c.u),
            bias_gate: leaf(c.bias_gate),
            bias_update: leaf(c.bias_update),
            zeta: leaf(c.zeta),
            nu: leaf(c.nu),
        };
        RnnPoolGrads { x: leaf(g.x), rnn1: lift(g.rnn1), rnn2: lift(g.rnn2) }
    }
}

// ---- host implementation shared by the CPU backends ----

/// A primitive read back as `T` values with its shape.
fn read<B: Backend, T: Real + burn::tensor::Element>(t: FloatTensor<B>) -> (Vec<T>, Vec<usize>) {
    let shape = t.shape().to_vec();
    let data = try_read_sync(B::float_into_data(t))
        .expect("CPU backends read synchronously")
        .unwrap_or_else(|e| panic!("rnnpool: reading a tensor failed: {e:?}"))
        .convert::<T>();
    let values = data.into_vec::<T>().unwrap_or_else(|e| panic!("rnnpool: tensor data conversion failed: {e:?}"));
    (values, shape)
}

fn write<B: Backend, T: Real + burn::tensor::Element>(
    values: Vec<T>,
    shape: Vec<usize>,
    dtype: DType,
    device: &B::Device,
) -> FloatTensor<B> {
    B::float_from_data(TensorData::new(values, shape).convert_dtype(dtype), device)
}

struct HostCell<T> {
    w: Vec<T>,
    u: Vec<T>,
    bias_gate: Vec<T>,
    bias_update: Vec<T>,
    zeta: T,
    nu: T,
    input: usize,
    hidden: usize,
}

impl<T: Real + burn::tensor::Element> HostCell<T> {
    fn read<B: Backend>(c: CellTensors<B>) -> Self {
        let (w, w_shape) = read::<B, T>(c.w);
        let (u, _) = read::<B, T>(c.u);
        Self {
            input: w_shape[0],
            hidden: w_shape[1],
            w,
            u,
            bias_gate: read::<B, T>(c.bias_gate).0,
            bias_update: read::<B, T>(c.bias_update).0,
            zeta: read::<B, T>(c.zeta).0[0],
            nu: read::<B, T>(c.nu).0[0],
        }
    }

    fn view(&self) -> CellView<'_, T> {
        CellView {
            w: &self.w,
            u: &self.u,
            bias_gate: &self.bias_gate,
            bias_update: &self.bias_update,
            zeta: self.zeta,
            nu: self.nu,
            input: self.input,
            hidden: self.hidden,
        }
    }
}

pub(super) fn grid_of(shape: &[usize], patch: [usize; 2], stride: [usize; 2]) -> PatchGrid {
    PatchGrid { batch: shape[0], channels: shape[1], height: shape[2], width: shape[3], patch, stride }
}

/// Axes that turn `[n, c, h, w]` into the kernel's channels-last `[n, h, w, c]`; the backend
/// makes the copy while reading, so no separate transpose pass is needed.
const TO_CHANNELS_LAST: [usize; 4] = [0, 2, 3, 1];
/// Axes back to `[n, c, h, w]`: a view, not a copy.
const TO_CHANNELS_FIRST: [usize; 4] = [0, 3, 1, 2];

/// `t` (`[n, c, h, w]`) read in channels-last order, with its channels-first shape.
fn read_channels_last<B: Backend, T: Real + burn::tensor::Element>(t: FloatTensor<B>) -> (Vec<T>, Vec<usize>) {
    let shape = t.shape().to_vec();
    let (values, _) = read::<B, T>(B::float_permute(t, &TO_CHANNELS_LAST));
    (values, shape)
}

/// Channels-last `values` of a `[n, c, h, w]` tensor, as that tensor.
fn write_channels_last<B: Backend, T: Real + burn::tensor::Element>(
    values: Vec<T>,
    shape: &[usize],
    dtype: DType,
    device: &B::Device,
) -> FloatTensor<B> {
    let nhwc = vec![shape[0], shape[2], shape[3], shape[1]];
    B::float_permute(write::<B, T>(values, nhwc, dtype, device), &TO_CHANNELS_FIRST)
}

fn host_forward<B: Backend>(
    x: FloatTensor<B>,
    rnn1: CellTensors<B>,
    rnn2: CellTensors<B>,
    patch: [usize; 2],
    stride: [usize; 2],
) -> FloatTensor<B> {
    match x.dtype() {
        DType::F64 => host_forward_as::<B, f64>(x, rnn1, rnn2, patch, stride),
        _ => host_forward_as::<B, f32>(x, rnn1, rnn2, patch, stride),
    }
}

fn host_forward_as<B: Backend, T: Real + burn::tensor::Element>(
    x: FloatTensor<B>,
    rnn1: CellTensors<B>,
    rnn2: CellTensors<B>,
    patch: [usize; 2],
    stride: [usize; 2],
) -> FloatTensor<B> {
    let (device, dtype) = (x.device(), x.dtype());
    let (x, shape) = read_channels_last::<B, T>(x);
    let g = grid_of(&shape, patch, stride);
    let (c1, c2) = (HostCell::<T>::read(rnn1), HostCell::<T>::read(rnn2));
    let y = kernel::forward(&g, &x, c1.view(), c2.view());
    let out_shape = [g.batch, 4 * c2.hidden, g.out_h(), g.out_w()];
    write_channels_last::<B, T>(y, &out_shape, dtype, &device)
}

fn host_backward<B: Backend>(
    x: FloatTensor<B>,
    rnn1: CellTensors<B>,
    rnn2: CellTensors<B>,
    grad_out: FloatTensor<B>,
    patch: [usize; 2],
    stride: [usize; 2],
) -> RnnPoolGrads<B> {
    match x.dtype() {
        DType::F64 => host_backward_as::<B, f64>(x, rnn1, rnn2, grad_out, patch, stride),
        _ => host_backward_as::<B, f32>(x, rnn1, rnn2, grad_out, patch, stride),
    }
}

fn host_backward_as<B: Backend, T: Real + burn::tensor::Element>(
    x: FloatTensor<B>,
    rnn1: CellTensors<B>,
    rnn2: CellTensors<B>,
    grad_out: FloatTensor<B>,
    patch: [usize; 2],
    stride: [usize; 2],
) -> RnnPoolGrads<B> {
    let (device, dtype) = (x.device(), x.dtype());
    let shapes1 = cell_shapes(&rnn1);
    let shapes2 = cell_shapes(&rnn2);
    let (x, shape) = read_channels_last::<B, T>(x);
    let g = grid_of(&shape, patch, stride);
    let (c1, c2) = (HostCell::<T>::read(rnn1), HostCell::<T>::read(rnn2));
    let (go, _) = read_channels_last::<B, T>(grad_out);
    let grads = kernel::backward(&g, &x, c1.view(), c2.view(), &go);
    let cell = |c: CellGrads<T>, shapes: [Vec<usize>; 6]| {
        let [sw, su, sg, sb, sz, sn] = shapes;
        CellTensors {
            w: write::<B, T>(c.w, sw, dtype, &device),
            u: write::<B, T>(c.u, su, dtype, &device),
            bias_gate: write::<B, T>(c.bias_gate, sg, dtype, &device),
            bias_update: write::<B, T>(c.bias_update, sb, dtype, &device),
            zeta: write::<B, T>(vec![c.zeta], sz, dtype, &device),
            nu: write::<B, T>(vec![c.nu], sn, dtype, &device),
        }
    };
    RnnPoolGrads {
        x: write_channels_last::<B, T>(grads.x, &shape, dtype, &device),
        rnn1: cell(grads.rnn1, shapes1),
        rnn2: cell(grads.rnn2, shapes2),
    }
}

fn cell_shapes<B: Backend>(c: &CellTensors<B>) -> [Vec<usize>; 6] {
    [&c.w, &c.u, &c.bias_gate, &c.bias_update, &c.zeta, &c.nu].map(|t| t.shape().to_vec())
}
