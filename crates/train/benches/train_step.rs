//! Training-step speed of every model a shipped config trains: forward, loss, backward and an
//! SGD (momentum 0.9) step, median over steps after one warm-up step, in ms and images/s, with
//! the process's peak RSS. Face models take the S3FD multibox loss on fixed faces, classifiers
//! cross-entropy. `scripts/bench_train_step.py` is the PyTorch twin (same cases, options and
//! JSON keys); `scripts/bench_train_step.sh` runs both, one process per case.
//!
//!   cargo bench -p train --bench train_step -- [--case NAME]... [--batch N] [--size S]
//!       [--steps N] [--threads N] [--backend flex|ndarray|wgpu] [--phases] [--profile]
//!
//! Cases (default batch, input): face_m4 (8, 1x320x320), face_qvga (4, 1x320x320), face_quant
//! and face_c (4, 3x320x320), vww (16, 3x224x224), imagenet_rnnpool (8, 3x224x224, 10
//! classes), densenet_rnnpool (4, 3x224x224, 10 classes), fashion (64, 1x28x28); `all` (the
//! default) runs each. `--phases` syncs the device after the forward pass, the loss, the backward
//! pass and the optimizer step and adds each one's median; `--profile` adds the time of each
//! CPU kernel (nn-ops' convolutions and BatchNorm, the RNNPool layer) per step and what is left
//! to burn's other operations. On a GPU: `--backend wgpu` with `--features wgpu`.

use std::time::Instant;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::{Distribution, Int, TensorData};
use rnnpool_core::BackendKind;
use train::s3fd::multibox::multibox_loss;
use zoo::Net;
use zoo::config::ModelName;
use zoo::s3fd::inference::priors_host;

type Error = Box<dyn std::error::Error>;

/// As the train binary's (see [`train::alloc`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A benchmark case: the model, its default batch and input, and its classes (0: a detector).
struct Case {
    name: &'static str,
    model: ModelName,
    batch: usize,
    channels: usize,
    size: usize,
    classes: usize,
}

const CASES: [Case; 8] = [
    Case { name: "face_m4", model: ModelName::FaceM4, batch: 8, channels: 1, size: 320, classes: 0 },
    Case { name: "face_qvga", model: ModelName::FaceQvga, batch: 4, channels: 1, size: 320, classes: 0 },
    Case { name: "face_quant", model: ModelName::FaceQuant, batch: 4, channels: 3, size: 320, classes: 0 },
    Case { name: "face_c", model: ModelName::FaceC, batch: 4, channels: 3, size: 320, classes: 0 },
    Case { name: "vww", model: ModelName::Vww, batch: 16, channels: 3, size: 224, classes: 2 },
    Case {
        name: "imagenet_rnnpool",
        model: ModelName::MobileNetV2RnnPool,
        batch: 8,
        channels: 3,
        size: 224,
        classes: 10,
    },
    Case {
        name: "densenet_rnnpool",
        model: ModelName::DenseNet121RnnPool,
        batch: 4,
        channels: 3,
        size: 224,
        classes: 10,
    },
    Case { name: "fashion", model: ModelName::SmallRnnPool, batch: 64, channels: 1, size: 28, classes: 10 },
];

/// The phases of a step, in the order [`Step::mark`] is called.
const PHASES: [&str; 4] = ["forward", "loss", "backward", "step"];

/// One training step's clock: `mark` ends a phase (syncing the device first when phases are
/// timed); `done` ends the step.
struct Step<'a> {
    device: &'a Device,
    phases: bool,
    start: Instant,
    last: Instant,
    times: Vec<f64>,
}

impl<'a> Step<'a> {
    fn start(device: &'a Device, phases: bool) -> Self {
        let now = Instant::now();
        Self { device, phases, start: now, last: now, times: vec![] }
    }

    fn mark(&mut self) -> Result<(), Error> {
        if self.phases {
            self.device.sync()?;
            let now = Instant::now();
            self.times.push((now - self.last).as_secs_f64());
            self.last = now;
        }
        Ok(())
    }

    /// `[total, phases...]` in seconds.
    fn done(self) -> Vec<f64> {
        let mut t = vec![self.start.elapsed().as_secs_f64()];
        t.extend(self.times);
        t
    }
}

/// Three faces per image, of the sizes the anchors cover.
fn faces(batch: usize) -> Vec<Vec<[f32; 4]>> {
    (0..batch)
        .map(|i| {
            let o = i as f32 * 0.02;
            vec![[0.1 + o, 0.1, 0.15 + o, 0.16], [0.4, 0.3 + o, 0.5, 0.42 + o], [0.6, 0.6, 0.85, 0.9]]
        })
        .collect()
}

/// The loss of one step: multibox for detectors, cross-entropy for classifiers.
fn loss(net: &Net, x: Tensor<4>, case: &Case, batch: usize, step: &mut Step) -> Result<Tensor<1>, Error> {
    let device = x.device();
    if let Net::Face(model) = net {
        let out = model.forward(x)?;
        step.mark()?;
        let priors = priors_host(out.priors);
        return Ok(multibox_loss(out.loc, out.conf, &priors, &faces(batch)).total());
    }
    let logits = net.classify(x)?;
    step.mark()?;
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % case.classes as i64).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &device);
    Ok(burn::nn::loss::CrossEntropyLossConfig::new().init(&device).forward(logits, labels))
}

/// Per step after a warm-up step: `[total, phases...]` seconds.
fn run(
    case: &Case,
    device: &Device,
    steps: usize,
    batch: usize,
    size: usize,
    phases: bool,
) -> Result<Vec<Vec<f64>>, Error> {
    device.seed(0);
    let mut net = zoo::registry::init(case.model, case.classes.max(2), case.channels, device)?;
    // The trainer's SGD, as `train.optimizer = "sgd"` with momentum 0.9 builds it.
    let mut optim: ModuleOptimizer = nn_ops::sgd::Sgd::new(0.9, 0.0).into();
    // Detector inputs are mean-subtracted pixels (no scaling), classifier inputs standardised.
    let spread = if case.classes == 0 { 60.0 } else { 1.0 };
    let mut times = Vec::new();
    for i in 0..=steps {
        if i == 1 {
            nn_ops::profile::take(); // the warm-up step is not counted
        }
        let x = Tensor::<4>::random([batch, case.channels, size, size], Distribution::Normal(0.0, spread), device);
        let mut step = Step::start(device, phases);
        // As the trainer runs a shard's forward and backward.
        let grads = nn_ops::on_kernel_threads(device, || -> Result<_, String> {
            let loss = loss(&net, x, case, batch, &mut step).map_err(|e| e.to_string())?;
            step.mark().map_err(|e| e.to_string())?;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            step.mark().map_err(|e| e.to_string())?;
            Ok(grads)
        })?;
        net = nn_ops::on_kernel_threads(device, || optim.step(1e-3, net, grads));
        device.sync()?;
        step.mark()?;
        times.push(step.done());
    }
    times.remove(0);
    Ok(times)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Peak resident memory of this process so far, in MB (Linux).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

/// The kernels' time per step as JSON, and what is left of the step for burn's other work.
fn profile_json(step_ms: f64, steps: usize) -> String {
    let rows = nn_ops::profile::take();
    let mut spent = 0.0;
    let mut parts: Vec<String> = rows
        .iter()
        .map(|(name, calls, secs)| {
            let ms = secs * 1e3 / steps as f64;
            spent += ms;
            format!("\"{name}\":{{\"ms\":{ms:.1},\"calls\":{}}}", calls / steps as u64)
        })
        .collect();
    parts.push(format!("\"other burn ops and autodiff\":{{\"ms\":{:.1}}}", (step_ms - spent).max(0.0)));
    format!(",\"profile\":{{{}}}", parts.join(","))
}

struct Args {
    cases: Vec<String>,
    steps: usize,
    batch: Option<usize>,
    size: Option<usize>,
    backend: BackendKind,
    phases: bool,
    profile: bool,
}

fn parse() -> Result<Args, Error> {
    let mut a = Args {
        cases: vec![],
        steps: 10,
        batch: None,
        size: None,
        backend: BackendKind::Flex,
        phases: false,
        profile: false,
    };
    let mut it = std::env::args().skip(1).filter(|s| s != "--bench");
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--phases" => a.phases = true,
            "--profile" => a.profile = true,
            "--steps" => a.steps = value()?.parse()?,
            "--backend" => a.backend = value()?.parse()?,
            "--case" => a.cases.push(value()?),
            "--batch" => a.batch = Some(value()?.parse()?),
            "--size" => a.size = Some(value()?.parse()?),
            "--threads" => {
                let n: usize = value()?.parse()?;
                rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if a.steps == 0 {
        return Err("--steps must be at least 1".into());
    }
    Ok(a)
}

fn main() -> Result<(), Error> {
    train::alloc::keep_freed_memory();
    let args = parse()?;
    let device = args.backend.device()?.autodiff();
    nn_ops::profile::enable(args.profile);
    let wanted = |name: &str| args.cases.is_empty() || args.cases.iter().any(|c| c == name || c == "all");
    for name in &args.cases {
        if name != "all" && !CASES.iter().any(|c| c.name == name) {
            let names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
            return Err(format!("unknown case {name}; expected one of {}", names.join(", ")).into());
        }
    }
    for case in CASES.iter().filter(|c| wanted(c.name)) {
        let (batch, size) = (args.batch.unwrap_or(case.batch), args.size.unwrap_or(case.size));
        let times = run(case, &device, args.steps, batch, size, args.phases)?;
        let column_ms = |i: usize| median(times.iter().map(|t| t[i]).collect()) * 1e3;
        let ms = column_ms(0);
        let phases = if args.phases {
            let each: Vec<String> =
                PHASES.iter().enumerate().map(|(i, p)| format!("\"{p}\":{:.1}", column_ms(i + 1))).collect();
            format!(",\"phases_ms\":{{{}}}", each.join(","))
        } else {
            String::new()
        };
        let profile = if args.profile { profile_json(ms, args.steps) } else { String::new() };
        println!(
            "{{\"case\":\"{}\",\"framework\":\"burn\",\"backend\":\"{}\",\"threads\":{},\"batch\":{batch},\"size\":{size},\"steps\":{},\"median_ms\":{ms:.1},\"images_per_s\":{:.1},\"peak_rss_mb\":{:.0}{phases}{profile}}}",
            case.name,
            args.backend,
            rayon::current_num_threads(),
            args.steps,
            batch as f64 * 1e3 / ms,
            peak_rss_mb()
        );
    }
    Ok(())
}
