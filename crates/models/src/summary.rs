//! Per-layer shapes, parameters, MACs and activation memory, and the whole model's peak RAM
//! under the paper's convention (Sec. 4, App. E, after Chowdhery et al.): layers run one after
//! another and a layer needs its input and its output in RAM; an inverted residual counts its
//! input and output only (the expansion is computed channel by channel); the RNNPool layer is
//! computed patch by patch, so it counts its output only, and everything before it (the input
//! image, the stem convs, and the heads that read the stem's output, as Face-Quant's first
//! source) is streamed into it and counts nothing; a last 1x1 conv followed by global average
//! pooling is computed channel by channel (its input and the pooled vector count); DenseNet's
//! dense layers append to the buffer holding their input (their output counts). Shapes are
//! computed, not run.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use rnnpool_core::{RnnPool, RnnPoolError, RnnPoolLayer};

use crate::blocks::{ConvBnRelu6, InvertedResidual};

/// One row of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerStat {
    /// The module path.
    pub name: String,
    /// `[channels, height, width]` of the output.
    pub output: [usize; 3],
    /// Parameters.
    pub params: usize,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Activation elements in RAM while this layer runs.
    pub memory: usize,
}

/// The layers of a model for one input size.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Every layer, in order.
    pub layers: Vec<LayerStat>,
    /// BatchNorm's scales and shifts among [`Self::params`].
    pub batch_norm_params: usize,
}

impl Report {
    /// Parameters in all.
    pub fn params(&self) -> usize {
        self.layers.iter().map(|l| l.params).sum()
    }

    /// Parameters without BatchNorm's, as the paper's tables count them (MobileNetV2 for 10
    /// classes has 2.20 M this way, 2.27 M with BatchNorm).
    pub fn params_without_batch_norm(&self) -> usize {
        self.params() - self.batch_norm_params
    }

    /// Multiply-accumulates in all.
    pub fn macs(&self) -> u64 {
        self.layers.iter().map(|l| l.macs).sum()
    }

    /// Peak activation elements.
    pub fn peak(&self) -> usize {
        self.layers.iter().map(|l| l.memory).max().unwrap_or(0)
    }

    /// The table, with memory in bytes for `bytes_per_element` (4 for f32, 1 for int8).
    pub fn table(&self, bytes_per_element: usize) -> String {
        let mut s =
            format!("{:<34} {:>16} {:>10} {:>14} {:>12}\n", "layer", "output (CxHxW)", "params", "MACs", "memory (B)");
        for l in &self.layers {
            let [c, h, w] = l.output;
            s += &format!(
                "{:<34} {:>16} {:>10} {:>14} {:>12}\n",
                l.name,
                format!("{c}x{h}x{w}"),
                l.params,
                l.macs,
                l.memory * bytes_per_element
            );
        }
        let peak = self.peak() * bytes_per_element;
        s += &format!(
            "total: {} params ({} without BatchNorm), {:.4} GMACs, peak RAM {} B = {:.2} KiB = {:.3} MiB\n",
            self.params(),
            self.params_without_batch_norm(),
            self.macs() as f64 / 1e9,
            peak,
            peak as f64 / 1024.0,
            peak as f64 / (1024.0 * 1024.0)
        );
        s
    }
}

/// Counts the parameters of every BatchNorm inside `module`.
pub fn batch_norm_params<M: Module>(module: &M) -> usize {
    #[derive(Default)]
    struct Counter {
        depth: usize,
        count: usize,
    }
    impl ModuleVisitor for Counter {
        fn enter_module(&mut self, _: &str, container_type: &str) {
            if container_type == "Struct:BatchNorm" || self.depth > 0 {
                self.depth += 1;
            }
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.depth = self.depth.saturating_sub(1);
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.depth > 0 {
                self.count += param.shape().num_elements();
            }
        }
    }
    let mut counter = Counter::default();
    module.visit(&mut counter);
    counter.count
}

/// Walks a model's layers in execution order, tracking the current shape.
#[derive(Debug)]
pub struct Tracer {
    /// The report so far.
    pub report: Report,
    /// The current map's `[channels, height, width]`.
    pub shape: [usize; 3],
    /// True until an RNNPool layer has consumed the streamed stem.
    streamed: bool,
}

fn out_size(len: usize, kernel: usize, stride: usize, pad: (usize, usize)) -> usize {
    (len + pad.0 + pad.1 - kernel) / stride + 1
}

impl Tracer {
    /// `streamed`: the model has an RNNPool fed by a streamed stem.
    pub fn new(input: [usize; 3], streamed: bool) -> Self {
        Self { report: Report::default(), shape: input, streamed }
    }

    fn push(&mut self, name: &str, output: [usize; 3], params: usize, macs: u64, input: [usize; 3]) {
        let elems = |s: [usize; 3]| s[0] * s[1] * s[2];
        let memory = if self.streamed { 0 } else { elems(input) + elems(output) };
        self.report.layers.push(LayerStat { name: name.into(), output, params, macs, memory });
    }

    /// Output shape and MACs of `conv` applied to `input`.
    fn conv_shape(conv: &Conv2d, input: [usize; 3]) -> ([usize; 3], u64) {
        let [cout, cin_g, kh, kw] = conv.weight.dims();
        let (pt, pl, pb, pr) = match &conv.padding {
            PaddingConfig2d::Explicit(t, l, b, r) => (*t, *l, *b, *r),
            PaddingConfig2d::Valid => (0, 0, 0, 0),
            // Same-padding convs keep the size at stride 1; none of our models use it.
            _ => ((kh - 1) / 2, (kw - 1) / 2, kh / 2, kw / 2),
        };
        let h = out_size(input[1], kh, conv.stride[0], (pt, pb));
        let w = out_size(input[2], kw, conv.stride[1], (pl, pr));
        ([cout, h, w], (cout * cin_g * kh * kw * h * w) as u64)
    }

    /// `conv` applied to the current map; `params` of the whole layer (conv plus any norm).
    fn conv_layer(&mut self, name: &str, conv: &Conv2d, params: usize) {
        let (out, macs) = Self::conv_shape(conv, self.shape);
        self.custom(name, out, params, macs);
    }

    /// Records a convolution.
    pub fn conv(&mut self, name: &str, conv: &Conv2d) {
        self.conv_layer(name, conv, conv.num_params());
    }

    /// Records a ConvBNReLU6.
    pub fn conv_bn_relu6(&mut self, name: &str, m: &ConvBnRelu6) {
        self.conv_layer(name, &m.conv, m.num_params());
    }

    /// Records an inverted residual.
    pub fn inverted_residual(&mut self, name: &str, m: &InvertedResidual) {
        let input = self.shape;
        let mut macs = 0;
        let mut s = input;
        if let Some(e) = &m.expand {
            let (o, c) = Self::conv_shape(&e.conv, s);
            (s, macs) = (o, macs + c);
        }
        let (o, c) = Self::conv_shape(&m.depthwise.conv, s);
        (s, macs) = (o, macs + c);
        let (out, c) = Self::conv_shape(&m.project, s);
        self.push(name, out, m.num_params(), macs + c, input);
        self.shape = out;
    }

    /// MACs of RNNPool on one `r x c` patch: both RNN1 sweeps (x·W and h·U every step) and the
    /// four RNN2 sweeps (the paper's formula `2 r^2 (k + h1) h1 + 4 r (h1 + h2) h2` for square
    /// patches).
    fn rnnpool_patch_macs(pool: &RnnPool, r: usize, c: usize) -> u64 {
        let (k, h2) = (pool.in_channels(), pool.hidden2());
        let h1 = match &pool.rnn1 {
            rnnpool_core::RnnCell::FastGrnn(cell) => cell.hidden_size(),
            rnnpool_core::RnnCell::Gru(g) => g.d_hidden,
            rnnpool_core::RnnCell::Lstm(l) => l.d_hidden,
        };
        (2 * r * c * (k + h1) * h1 + 2 * (r + c) * (h1 + h2) * h2) as u64
    }

    /// The RNNPool layer: output only in RAM; ends the streamed stem. An error when the map is
    /// smaller than a patch.
    pub fn rnnpool_layer(&mut self, name: &str, layer: &RnnPoolLayer) -> Result<(), RnnPoolError> {
        let [_, h, w] = self.shape;
        let [r, c] = layer.patch_size;
        let [co, ho, wo] = layer.output_dims(h, w)?;
        // The last row and column are replicated, not computed.
        let patches = ((ho - 1) * (wo - 1)) as u64;
        let macs = patches * Self::rnnpool_patch_macs(&layer.pool, r, c);
        let out = [co, ho, wo];
        self.streamed = false;
        let memory = co * ho * wo;
        self.report.layers.push(LayerStat { name: name.into(), output: out, params: layer.num_params(), macs, memory });
        self.shape = out;
        Ok(())
    }

    /// RNNPool over the whole map (one patch per image) -> `[4 h2, 1, 1]`.
    pub fn rnnpool_whole(&mut self, name: &str, pool: &RnnPool) {
        let macs = Self::rnnpool_patch_macs(pool, self.shape[1], self.shape[2]);
        self.custom(name, [pool.out_channels(), 1, 1], pool.num_params(), macs);
    }

    /// A layer that keeps the spatial size or pools to `output`, with no MACs worth counting
    /// (BatchNorm, ReLU, L2Norm, pooling).
    pub fn elementwise(&mut self, name: &str, output: [usize; 3], params: usize) {
        self.custom(name, output, params, 0);
    }

    /// Any other layer, with its MACs worked out by the caller.
    pub fn custom(&mut self, name: &str, output: [usize; 3], params: usize, macs: u64) {
        let input = self.shape;
        self.push(name, output, params, macs, input);
        self.shape = output;
    }

    /// A layer that writes its output into a buffer holding its input (DenseNet's concatenation),
    /// so only the output counts.
    pub fn in_place(&mut self, name: &str, output: [usize; 3], params: usize, macs: u64) {
        let memory = if self.streamed { 0 } else { output.iter().product() };
        self.report.layers.push(LayerStat { name: name.into(), output, params, macs, memory });
        self.shape = output;
    }

    /// A 1x1 conv (with its BatchNorm and ReLU6) whose output is only averaged over space:
    /// computed channel by channel and pooled at once, so its full output never exists.
    pub fn conv_then_average(&mut self, name: &str, m: &ConvBnRelu6) {
        let (out, macs) = Self::conv_shape(&m.conv, self.shape);
        self.custom(name, [out[0], 1, 1], m.num_params(), macs);
    }

    /// Records a fully connected layer.
    pub fn linear(&mut self, name: &str, inputs: usize, outputs: usize, params: usize) {
        self.custom(name, [outputs, 1, 1], params, (inputs * outputs) as u64);
    }

    /// Runs `f` with the stem's streaming flag as it is now, then restores the shape: for a
    /// branch (a detection head) that reads the current map.
    pub fn branch(&mut self, f: impl FnOnce(&mut Self)) {
        let shape = self.shape;
        f(self);
        self.shape = shape;
    }

    /// Marks the layers traced from now on as streamed or not (a head reading the stem).
    pub fn set_streamed(&mut self, streamed: bool) -> bool {
        std::mem::replace(&mut self.streamed, streamed)
    }
}
