//! A small end-to-end RNNPool demo (after the paper's synthetic "lines" probe, App. C.1):
//! classify 32x32 images by whether they hold a horizontal or a vertical line segment. The
//! model is an RNNPool layer (patch 8, stride 4) followed by global average pooling and a
//! linear layer; beside it the same classifier without the RNNPool layer, which sees the same
//! pixels but, averaging them, cannot tell the orientation.
//!
//!   cargo run --release -p rnnpool-core --example lines_demo [-- --steps 400 --backend flex]

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use rnnpool_core::{BackendKind, RnnPoolLayer, RnnPoolLayerConfig};

const SIDE: usize = 32;

/// xorshift64*: deterministic images without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// `n` images `[n, 1, 32, 32]` with one line each (label 0 horizontal, 1 vertical) plus noise
/// and as many scattered bright pixels as the line has, so that brightness alone says nothing.
fn batch(n: usize, rng: &mut Rng, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let mut pixels = vec![0.0f32; n * SIDE * SIDE];
    let mut labels = Vec::with_capacity(n);
    for img in pixels.chunks_exact_mut(SIDE * SIDE) {
        for p in img.iter_mut() {
            *p = 0.1 * rng.unit();
        }
        let vertical = rng.below(2);
        let len = 8 + rng.below(16);
        let (a, b) = (rng.below(SIDE), rng.below(SIDE - len));
        for t in 0..len {
            let (y, x) = if vertical == 1 { (b + t, a) } else { (a, b + t) };
            img[y * SIDE + x] = 1.0;
        }
        for _ in 0..len {
            img[rng.below(SIDE * SIDE)] = 1.0;
        }
        labels.push(vertical as i64);
    }
    (
        Tensor::from_data(TensorData::new(pixels, [n, 1, SIDE, SIDE]), device),
        Tensor::from_data(TensorData::new(labels, [n]), device),
    )
}

#[derive(Module, Debug)]
struct RnnPoolClassifier {
    pool: RnnPoolLayer,
    head: Linear,
}

#[derive(Module, Debug)]
struct AvgPoolClassifier {
    head: Linear,
}

trait Classify {
    fn logits(&self, x: Tensor<4>) -> Tensor<2>;
}

/// `[n, c, h, w]` -> `[n, c]`.
fn global_mean(x: Tensor<4>) -> Tensor<2> {
    let [n, c, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([n, c])
}

impl Classify for RnnPoolClassifier {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(global_mean(self.pool.forward(x)))
    }
}

impl Classify for AvgPoolClassifier {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(global_mean(x))
    }
}

fn accuracy(model: &impl Classify, x: Tensor<4>, y: Tensor<1, Int>) -> f32 {
    let n = y.dims()[0] as f32;
    let pred = model.logits(x).argmax(1).flatten::<1>(0, 1);
    pred.equal(y).int().sum().into_scalar::<i64>() as f32 / n
}

fn train<M: Classify + Module>(name: &str, mut model: M, steps: usize, device: &Device) -> f32 {
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut rng = Rng(42);
    let t0 = Instant::now();
    for step in 1..=steps {
        let (x, y) = batch(32, &mut rng, device);
        let loss = loss_fn.forward(model.logits(x), y);
        if step % 50 == 0 || step == 1 {
            eprintln!("[{name}] step {step:4}  loss {:.4}", loss.clone().into_scalar::<f32>());
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    let (x, y) = batch(1000, &mut Rng(7), device);
    let acc = accuracy(&model, x, y);
    println!("{name:>9}: test accuracy {:.1}% after {steps} steps ({:.1}s)", 100.0 * acc, t0.elapsed().as_secs_f32());
    acc
}

fn main() {
    let mut steps = 400;
    let mut backend = BackendKind::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let parsed = match (a.as_str(), args.next()) {
            ("--steps", Some(v)) => v.parse().map(|v| steps = v).map_err(|e| format!("--steps {v}: {e}")),
            ("--backend", Some(v)) => v.parse().map(|b| backend = b),
            (other, _) => Err(format!("unknown argument `{other}`; use --steps N --backend flex|ndarray|wgpu")),
        };
        if let Err(e) = parsed {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
    let device = match backend.device() {
        Ok(d) => d.autodiff(),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    device.seed(0);
    let rnnpool = RnnPoolClassifier {
        pool: RnnPoolLayerConfig::square(1, 8, 4, 8, 8).init(&device).unwrap_or_else(|e| panic!("{e}")),
        head: LinearConfig::new(32, 2).init(&device),
    };
    let avg = AvgPoolClassifier { head: LinearConfig::new(1, 2).init(&device) };
    train("RNNPool", rnnpool, steps, &device);
    train("avg pool", avg, steps, &device);
}
