//! The float graph the exporter works on: a model lowered to a list of inference layers over
//! HWC feature maps (one image, BatchNorm folded into the convolutions), the form both
//! simulators and the C code generator read.

/// A feature map in the graph, by index into [`Graph::tensors`].
pub type TensorId = usize;

/// `[height, width, channels]`.
pub type Shape = [usize; 3];

/// A convolution with BatchNorm folded in: `out = act(conv(x, weight) + bias)`.
#[derive(Clone, Debug)]
pub struct ConvWeights {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Square kernel side.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
    /// 1, or `cin` (= `cout`) for a depthwise convolution.
    pub groups: usize,
    /// `[cout][kh][kw][cin / groups]`.
    pub weight: Vec<f32>,
    /// Per output channel.
    pub bias: Vec<f32>,
    /// The activation after it.
    pub act: Activation,
}

/// What follows a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `clamp(x, 0, 6)`.
    Relu6,
}

impl Activation {
    /// The activation of `x`.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::None => x,
            Self::Relu => x.max(0.0),
            Self::Relu6 => x.clamp(0.0, 6.0),
        }
    }
}

impl ConvWeights {
    /// The output shape for an input of `[h, w, _]`.
    pub fn out_shape(&self, [h, w, _]: Shape) -> Shape {
        let o = |n: usize| (n + 2 * self.pad - self.kernel) / self.stride + 1;
        [o(h), o(w), self.cout]
    }

    /// One filter per channel.
    pub fn depthwise(&self) -> bool {
        self.groups > 1
    }

    /// Multiply-accumulates for an output of shape `out`.
    pub fn macs(&self, out: Shape) -> u64 {
        (out[0] * out[1] * self.cout * self.kernel * self.kernel * (self.cin / self.groups)) as u64
    }
}

/// The taps of a `kernel x kernel` window at output `(oy, ox)` that fall inside an `h x w` map
/// (the rest read zero padding): `(tap index ky * kernel + kx, input pixel iy * w + ix)`.
pub fn taps(
    kernel: usize,
    stride: usize,
    pad: usize,
    [h, w]: [usize; 2],
    (oy, ox): (usize, usize),
) -> impl Iterator<Item = (usize, usize)> {
    (0..kernel * kernel).filter_map(move |t| {
        let iy = (oy * stride + t / kernel).checked_sub(pad).filter(|&v| v < h)?;
        let ix = (ox * stride + t % kernel).checked_sub(pad).filter(|&v| v < w)?;
        Some((t, iy * w + ix))
    })
}

/// A FastGRNN cell with `sigmoid(zeta)` and `sigmoid(nu)` already applied, weights as the C
/// reference stores them (`[hidden][input]`, the transpose of EdgeML's `W`).
#[derive(Clone, Debug)]
pub struct CellWeights {
    /// Input size.
    pub input: usize,
    /// Hidden size.
    pub hidden: usize,
    /// `[hidden][input]`.
    pub w: Vec<f32>,
    /// `[hidden][hidden]`.
    pub u: Vec<f32>,
    /// `[hidden]`.
    pub bias_gate: Vec<f32>,
    /// `[hidden]`.
    pub bias_update: Vec<f32>,
    /// `sigmoid(zeta)`.
    pub zeta: f32,
    /// `sigmoid(nu)`.
    pub nu: f32,
}

/// What a float layer computes.
#[derive(Clone, Debug)]
pub enum Op {
    /// A convolution.
    Conv {
        /// Its weights.
        conv: ConvWeights,
    },
    /// MobileNetV2's block; `expand` is absent when the expansion ratio is 1.
    InvertedResidual {
        /// The 1x1 expansion.
        expand: Option<ConvWeights>,
        /// The 3x3 depthwise convolution.
        depthwise: ConvWeights,
        /// The 1x1 projection.
        project: ConvWeights,
        /// Whether the input is added to the output.
        residual: bool,
    },
    /// RNNPool over `patch x patch` windows at `stride`, no padding; `replicate` appends a copy
    /// of the last row and column (every model but a whole-map pool does).
    RnnPool {
        /// Square patch side.
        patch: usize,
        /// Stride in both directions.
        stride: usize,
        /// The cell over rows and columns of a patch.
        rnn1: CellWeights,
        /// The bidirectional cell over their summaries.
        rnn2: CellWeights,
        /// The original's replicated last row and column.
        replicate: bool,
    },
    /// S3FD's L2Norm: each pixel's channel vector scaled to unit length, then by `weight`.
    L2Norm {
        /// Per-channel scale.
        weight: Vec<f32>,
    },
    /// S3FD's max-out: 4 channels (3 background logits, face) -> 2 (their max, face).
    MaxOut,
    /// Average pooling without padding (global when the kernel is the map).
    AvgPool {
        /// Window `[h, w]`.
        kernel: [usize; 2],
        /// Stride `[h, w]`.
        stride: [usize; 2],
    },
    /// The layer's input, then `other`'s channels (DenseNet's dense connections).
    Concat {
        /// The second input.
        other: TensorId,
    },
}

/// One layer of the float graph.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The module path it came from.
    pub name: String,
    /// Its input tensor.
    pub input: TensorId,
    /// Its output tensor.
    pub output: TensorId,
    /// What it computes.
    pub op: Op,
}

/// What a graph output is, so the host can put the model's results back together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// A detection head's box offsets, `[h, w, 4]`.
    Loc,
    /// A detection head's logits (background, face), `[h, w, 2]`.
    Conf,
    /// A classifier's logits, `[1, 1, classes]`.
    Logits,
}

/// A model as inference layers over HWC tensors, in execution order.
#[derive(Clone, Debug)]
pub struct Graph {
    /// Model name as in the config.
    pub model: String,
    /// Every tensor's shape.
    pub tensors: Vec<Shape>,
    /// The input tensor.
    pub input: TensorId,
    /// The layers.
    pub layers: Vec<Layer>,
    /// The output tensors, with what each holds.
    pub outputs: Vec<(TensorId, OutputKind)>,
}

impl Graph {
    /// An empty graph of `model` with an input of `input`.
    pub fn new(model: &str, input: Shape) -> Self {
        Self { model: model.into(), tensors: vec![input], input: 0, layers: Vec::new(), outputs: Vec::new() }
    }

    /// Appends a layer reading `input`; returns its output tensor.
    pub fn push(&mut self, name: impl Into<String>, input: TensorId, op: Op) -> TensorId {
        let output = self.tensors.len();
        let shape = match op {
            Op::Concat { other } => {
                let ([h, w, a], [_, _, b]) = (self.tensors[input], self.tensors[other]);
                [h, w, a + b]
            }
            _ => op_out_shape(&op, self.tensors[input]),
        };
        self.tensors.push(shape);
        self.layers.push(Layer { name: name.into(), input, output, op });
        output
    }

    /// The input's `[h, w, c]`.
    pub fn input_shape(&self) -> Shape {
        self.tensors[self.input]
    }
}

/// The output shape of `op` on `input` (a concatenation's second input is added by [`Graph::push`]).
pub fn op_out_shape(op: &Op, input: Shape) -> Shape {
    match op {
        Op::Conv { conv } => conv.out_shape(input),
        Op::InvertedResidual { expand, depthwise, project, .. } => {
            let e = expand.as_ref().map_or(input, |c| c.out_shape(input));
            project.out_shape(depthwise.out_shape(e))
        }
        Op::RnnPool { patch, stride, rnn2, replicate, .. } => {
            let n = |d: usize| (d - patch) / stride + 1 + usize::from(*replicate);
            [n(input[0]), n(input[1]), 4 * rnn2.hidden]
        }
        Op::L2Norm { .. } => input,
        Op::MaxOut => [input[0], input[1], 2],
        Op::AvgPool { kernel, stride } => {
            [(input[0] - kernel[0]) / stride[0] + 1, (input[1] - kernel[1]) / stride[1] + 1, input[2]]
        }
        // The channels of `other` are added by Graph::push, which knows its shape.
        Op::Concat { .. } => input,
    }
}
