//! RNNPool layer forward + backward of mean(y^2), the cases of scripts/torch_rnnpool.py,
//! printing one JSON line per case in that script's form (plus backend, implementation and the
//! process's peak RSS so far; run one case per process for a per-case peak).
//!
//!   cargo bench -p rnnpool-core --bench rnnpool -- [--case NAME]... [--threads N] [--steps N]
//!       [--backend flex|ndarray|wgpu] [--impl fused|composed] [--batch N] [--spread S]
//!
//! `RNNPOOL_PROFILE=1` logs the time of each stage of the wgpu backward pass (on stderr).
//! `--backend wgpu` needs `--features wgpu` (a GPU, or Mesa's lavapipe: slow); `--batch`
//! overrides the case's batch, e.g. the paper's training batches on a GPU: `--case
//! face_m4_train --batch 64`, `--case face_quant_train --batch 32`. `--spread` overrides the
//! case's standard deviation of the inputs (60 for `face_c_train`, else 1).

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use rnnpool_core::{BackendKind, RnnPoolImpl, RnnPoolLayerConfig};

/// name: (batch, channels, height, width, patch, stride, hidden1, hidden2), the inputs' standard
/// deviation: RNNPool-Face-C's layer reads mean-subtracted pixels, the others normalised maps.
const CASES: [(&str, [usize; 8], f64); 5] = [
    ("face_c_train", [1, 3, 224, 224, 8, 4, 16, 16], 60.0),
    ("face_m4_train", [8, 4, 160, 160, 8, 4, 16, 16], 1.0),
    ("face_quant_train", [4, 4, 320, 320, 8, 4, 8, 8], 1.0),
    ("vww_train", [16, 8, 112, 112, 6, 4, 8, 8], 1.0),
    ("mobilenetv2_train", [16, 32, 112, 112, 6, 4, 16, 16], 1.0),
];

struct Args {
    cases: Vec<String>,
    threads: usize,
    steps: usize,
    backend: BackendKind,
    implementation: RnnPoolImpl,
    batch: Option<usize>,
    spread: Option<f64>,
}

impl Args {
    fn device(&self) -> Result<Device, String> {
        self.backend.device().map(Device::autodiff).map_err(|e| e.to_string())
    }
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        cases: vec![],
        threads: 2,
        steps: 5,
        backend: BackendKind::default(),
        implementation: RnnPoolImpl::Fused,
        batch: None,
        spread: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--case" => a.cases.push(value("--case")?),
            "--threads" => a.threads = value("--threads")?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--steps" => a.steps = value("--steps")?.parse().map_err(|e| format!("--steps: {e}"))?,
            "--backend" => a.backend = value("--backend")?.parse()?,
            "--spread" => a.spread = Some(positive(&value("--spread")?).map_err(|e| format!("--spread: {e}"))?),
            "--batch" => a.batch = Some(value("--batch")?.parse().map_err(|e| format!("--batch: {e}"))?),
            "--impl" => {
                a.implementation = match value("--impl")?.as_str() {
                    "fused" => RnnPoolImpl::Fused,
                    "composed" => RnnPoolImpl::Composed,
                    other => return Err(format!("--impl: unknown `{other}` (fused|composed)")),
                }
            }
            "--bench" => {} // added by `cargo bench`
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if a.cases.is_empty() {
        a.cases = CASES.iter().map(|c| c.0.to_string()).collect();
    }
    Ok(a)
}

/// A finite standard deviation above zero.
fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) => Err(format!("must be a finite number above 0, got {v}")),
        Err(e) => Err(format!("`{text}`: {e}")),
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(args.threads).build_global() {
        eprintln!("error: could not size the thread pool: {e}");
        std::process::exit(2);
    }
    if std::env::var_os("RNNPOOL_PROFILE").is_some() {
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).init();
    }
    let device = match args.device() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    for name in &args.cases {
        let Some(&(_, [b, k, h, w, r, s, h1, h2], spread)) = CASES.iter().find(|c| c.0 == name) else {
            eprintln!("error: unknown case `{name}`");
            std::process::exit(2);
        };
        let b = args.batch.unwrap_or(b);
        device.seed(0);
        let layer = RnnPoolLayerConfig::square(k, r, s, h1, h2)
            .with_implementation(args.implementation)
            .init(&device)
            .unwrap_or_else(|e| panic!("{e}"));
        let x = Tensor::<4>::random([b, k, h, w], Distribution::Normal(0.0, args.spread.unwrap_or(spread)), &device)
            .require_grad();
        let (mut times, mut forward) = (Vec::new(), Vec::new());
        for _ in 0..=args.steps {
            let t0 = Instant::now();
            let y = layer.forward(x.clone());
            // Reading a value forces the lazy backends (wgpu) to finish: the forward time alone.
            let _ = y.clone().sum().into_scalar::<f32>();
            forward.push(t0.elapsed().as_secs_f64() * 1000.0);
            let grads = y.powi_scalar(2).mean().backward();
            let _ = x.grad(&grads).map(|g| g.sum().into_scalar::<f32>());
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        let mut times = times[1..].to_vec();
        times.sort_by(f64::total_cmp);
        let mut forward = forward[1..].to_vec();
        forward.sort_by(f64::total_cmp);
        let patches = b * ((h - r) / s + 1) * ((w - r) / s + 1);
        let median = times[times.len() / 2];
        println!(
            "{{\"case\": \"{name}\", \"threads\": {}, \"batch\": {b}, \"ms_median\": {median:.3}, \"ms_min\": {:.3}, \"forward_ms_median\": {:.3}, \"images_per_s\": {:.1}, \"patches\": {patches}, \"backend\": \"{}\", \"impl\": \"{:?}\", \"peak_rss_mb\": {:.1}}}",
            args.threads,
            times[0],
            forward[forward.len() / 2],
            b as f64 * 1000.0 / median,
            args.backend,
            args.implementation,
            peak_rss_mb()
        );
    }
}
