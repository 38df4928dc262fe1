//! The kernels alone on slices (no burn), forward and backward, median ms over steps, for the
//! layer shapes of the models' training steps; one JSON line per shape.
//!
//!   cargo bench -p nn-ops --bench ops -- [--steps N] [--threads N]

use std::time::Instant;

use nn_ops::batch_norm::{self, Activation, Layout, Norm};
use nn_ops::conv::{self, ConvGeometry};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(steps: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..steps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

fn values(n: usize, salt: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.618 + salt).sin()).collect()
}

/// `(label, batch, cin, size, cout, kernel, stride, groups)`.
type ConvShape = (&'static str, usize, usize, usize, usize, usize, usize, usize);

const CONVS: [ConvShape; 32] = [
    ("vww stem 3->8 224 s2", 16, 3, 224, 8, 3, 2, 1),
    ("m4 stem 1->4 320 s2", 8, 1, 320, 4, 3, 2, 1),
    ("imagenet pointwise 64->384 14", 8, 64, 14, 384, 1, 1, 1),
    ("imagenet pointwise 384->64 14", 8, 384, 14, 64, 1, 1, 1),
    ("imagenet pointwise 960->160 7", 8, 960, 7, 160, 1, 1, 1),
    ("imagenet pointwise 320->1280 7", 8, 320, 7, 1280, 1, 1, 1),
    ("vww depthwise 192 28->14", 16, 192, 28, 192, 3, 2, 192),
    ("vww depthwise 144 14", 16, 144, 14, 144, 3, 1, 144),
    ("vww pointwise 32->192 28", 16, 32, 28, 192, 1, 1, 1),
    ("vww pointwise 192->24 14", 16, 192, 14, 24, 1, 1, 1),
    ("m4 pointwise 64->128 40", 8, 64, 40, 128, 1, 1, 1),
    ("m4 depthwise 128 40", 8, 128, 40, 128, 3, 1, 128),
    ("m4 head 3x3 32->4 40", 8, 32, 40, 4, 3, 1, 1),
    ("imagenet 96px pointwise 64->384 6", 32, 64, 6, 384, 1, 1, 1),
    ("imagenet 96px pointwise 576->96 6", 32, 576, 6, 96, 1, 1, 1),
    ("imagenet 96px pointwise 960->320 3", 32, 960, 3, 320, 1, 1, 1),
    ("imagenet 96px pointwise 160->960 3", 32, 160, 3, 960, 1, 1, 1),
    ("imagenet 128px b4 pointwise 960->160 4", 4, 960, 4, 160, 1, 1, 1),
    ("vww 160px b2 pointwise 24->144 10", 2, 24, 10, 144, 1, 1, 1),
    ("imagenet 128px b8 pointwise 384->64 8", 8, 384, 8, 64, 1, 1, 1),
    ("vww pointwise 56->336 7", 16, 56, 7, 336, 1, 1, 1),
    ("imagenet 96px depthwise 384 12->6", 32, 384, 12, 384, 3, 2, 384),
    ("imagenet 96px depthwise 576 6", 32, 576, 6, 576, 3, 1, 576),
    ("imagenet 96px depthwise 576 6->3", 32, 576, 6, 576, 3, 2, 576),
    ("imagenet 96px depthwise 960 3", 32, 960, 3, 960, 3, 1, 960),
    ("imagenet 96px depthwise 144 24->12", 32, 144, 24, 144, 3, 2, 144),
    ("imagenet 128px b4 depthwise 960 4", 4, 960, 4, 960, 3, 1, 960),
    ("imagenet depthwise 576 14", 8, 576, 14, 576, 3, 1, 576),
    ("imagenet b1 pointwise 64->384 28", 1, 64, 28, 384, 1, 1, 1),
    ("imagenet b1 pointwise 96->576 14", 1, 96, 14, 576, 1, 1, 1),
    ("imagenet b1 pointwise 576->96 14", 1, 576, 14, 96, 1, 1, 1),
    ("imagenet b1 pointwise 960->160 7", 1, 960, 7, 160, 1, 1, 1),
];

fn main() {
    let mut steps = 10;
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(a) = args.next() {
        let v: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{a} needs a number"));
        match a.as_str() {
            "--steps" => steps = v,
            "--threads" => rayon::ThreadPoolBuilder::new().num_threads(v).build_global().expect("thread pool"),
            other => panic!("unknown argument {other}"),
        }
    }
    for (label, batch, cin, size, cout, k, s, groups) in CONVS {
        let p = (k - 1) / 2;
        let g = ConvGeometry {
            batch,
            cin,
            height: size,
            width: size,
            cout,
            kernel: [k, k],
            stride: [s, s],
            padding: [p, p],
            groups,
        };
        let x = values(batch * cin * size * size, 1.0);
        let w = values(cout * g.taps(), 2.0);
        let dy = values(batch * cout * g.out_pixels(), 3.0);
        let f = time(steps, || drop(conv::forward(&g, &x, &w, None)));
        let b = time(steps, || drop(conv::backward(&g, &x, &w, &dy, false, true)));
        let gflop = 2.0 * (batch * cout * g.out_pixels() * g.taps()) as f64 / 1e9;
        println!(
            "{{\"op\":\"{label}\",\"forward_ms\":{f:.2},\"backward_ms\":{b:.2},\"forward_gflops\":{:.1},\"backward_gflops\":{:.1}}}",
            gflop / (f / 1e3),
            2.0 * gflop / (b / 1e3)
        );
    }
    let norms = [
        ("vww bn 192x28", 16, 192, 28),
        ("m4 bn 128x40", 8, 128, 40),
        ("imagenet 96px bn 576x6", 32, 576, 6),
        ("imagenet 96px bn 960x3", 32, 960, 3),
        ("imagenet 128px b4 bn 384x8", 4, 384, 8),
        ("imagenet 128px b4 bn 960x4", 4, 960, 4),
        ("imagenet 160px b2 bn 576x10", 2, 576, 10),
        ("imagenet 128px b32 bn 384x8", 32, 384, 8),
        ("imagenet 96px bn 192x12", 32, 192, 12),
        ("vww bn 144x14", 16, 144, 14),
        ("imagenet bn 960x7", 8, 960, 7),
        ("imagenet 160px b2 bn 960x5", 2, 960, 5),
        ("vww 224px b2 bn 320x7", 2, 320, 7),
    ];
    for (label, batch, channels, size) in norms {
        let l = Layout { batch, channels, pixels: size * size };
        let x = values(batch * channels * size * size, 4.0);
        let dy = values(x.len(), 5.0);
        let (gamma, beta) = (vec![1.0; channels], vec![0.1; channels]);
        let (mean, var) = batch_norm::statistics(&l, &x);
        let n = Norm { gamma: &gamma, beta: &beta, mean: &mean, var: &var, eps: 1e-5, act: Activation::Relu6 };
        let f = time(steps, || drop(batch_norm::train_forward(&l, &x, &gamma, &beta, 1e-5, Activation::Relu6)));
        let b = time(steps, || drop(batch_norm::backward(&l, &x, &dy, &n)));
        println!("{{\"op\":\"{label}\",\"forward_ms\":{f:.2},\"backward_ms\":{b:.2}}}");
    }
}
