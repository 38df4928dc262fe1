//! Training-step speed: forward + loss + backward + SGD step, median over steps, in ms and
//! images/s. RNNPool-Face-M4 (default batch 8 x 1x320x320) and RNNPool-Face-Quant (default
//! batch 32 x 3x640x640, the paper's) with the multibox loss on fixed faces, and the VWW model
//! (MobileNetV2-0.35x-RNNPool, batch 16 x 3x224x224) with cross-entropy.
//!
//!   cargo bench -p train --bench train_step [-- --steps 10 --backend flex|ndarray|wgpu
//!       --case face_m4|face_quant|vww --batch N --size S]
//! On a GPU: `cargo bench -p train --features wgpu --bench train_step -- --backend wgpu --case
//! face_m4 --batch 64` (the paper's M4 batch) and `--case face_quant` (batch 32 at 640x640).
//! `--phases` syncs the device after the forward pass, the loss, the backward pass and the
//! optimizer step, and adds each one's median to the line (the syncs slow the step a little).
//! One JSON line per case on stdout.

use std::time::Instant;

use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::{Distribution, Int, TensorData};
use models::{FaceArch, MobileNetV2Config};
use train::s3fd::multibox::multibox_loss;
use zoo::s3fd::inference::priors_host;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn sgd() -> burn::optim::ModuleOptimizer {
    SgdConfig::new().with_momentum(Some(MomentumConfig::new().with_momentum(0.9).with_dampening(0.0))).init()
}

type Error = Box<dyn std::error::Error>;

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

/// Per step (after a warm-up step): `[total, phases...]`.
type Run = fn(&Device, usize, usize, usize, bool) -> Result<Vec<Vec<f64>>, Error>;

fn face_m4(device: &Device, steps: usize, batch: usize, size: usize, phases: bool) -> Result<Vec<Vec<f64>>, Error> {
    face(FaceArch::M4, 1, device, steps, batch, size, phases)
}

fn face_quant(device: &Device, steps: usize, batch: usize, size: usize, phases: bool) -> Result<Vec<Vec<f64>>, Error> {
    face(FaceArch::Quant, 3, device, steps, batch, size, phases)
}

fn face(
    arch: FaceArch,
    channels: usize,
    device: &Device,
    steps: usize,
    batch: usize,
    size: usize,
    phases: bool,
) -> Result<Vec<Vec<f64>>, Error> {
    let mut model = arch.init(device)?;
    let mut optim = sgd();
    // Three faces per image, of the sizes the anchors cover.
    let faces: Vec<Vec<[f32; 4]>> = (0..batch)
        .map(|i| {
            let o = i as f32 * 0.02;
            vec![[0.1 + o, 0.1, 0.15 + o, 0.16], [0.4, 0.3 + o, 0.5, 0.42 + o], [0.6, 0.6, 0.85, 0.9]]
        })
        .collect();
    let mut times = Vec::new();
    for _ in 0..steps + 1 {
        let x = Tensor::<4>::random([batch, channels, size, size], Distribution::Normal(0.0, 60.0), device);
        let mut step = Step::start(device, phases);
        let out = model.forward(x)?;
        step.mark()?;
        let priors = priors_host(out.priors);
        let loss = multibox_loss(out.loc, out.conf, &priors, &faces).total();
        step.mark()?;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        step.mark()?;
        model = optim.step(1e-3, model, grads);
        let _ = model.loc[0].weight.val().into_data();
        step.mark()?;
        times.push(step.done());
    }
    times.remove(0);
    Ok(times)
}

fn vww(device: &Device, steps: usize, batch: usize, size: usize, phases: bool) -> Result<Vec<Vec<f64>>, Error> {
    let mut model = MobileNetV2Config::vww().init(device)?;
    let mut optim = sgd();
    let labels =
        Tensor::<1, Int>::from_data(TensorData::new((0..batch as i64).map(|i| i % 2).collect(), [batch]), device);
    let mut times = Vec::new();
    for _ in 0..steps + 1 {
        let x = Tensor::<4>::random([batch, 3, size, size], Distribution::Normal(0.0, 1.0), device);
        let mut step = Step::start(device, phases);
        let logits = model.forward(x)?;
        step.mark()?;
        let loss = burn::nn::loss::CrossEntropyLossConfig::new().init(device).forward(logits, labels.clone());
        step.mark()?;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        step.mark()?;
        model = optim.step(1e-3, model, grads);
        let _ = model.classifier.weight.val().into_data();
        step.mark()?;
        times.push(step.done());
    }
    times.remove(0);
    Ok(times)
}

fn main() -> Result<(), Error> {
    let (mut steps, mut backend, mut case) = (10usize, "flex".to_string(), "all".to_string());
    let (mut batch_override, mut size_override, mut phases) = (None, None, false);
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--phases" => phases = true,
            "--steps" => steps = value()?.parse()?,
            "--backend" => backend = value()?,
            "--case" => case = value()?,
            "--batch" => batch_override = Some(value()?.parse()?),
            "--size" => size_override = Some(value()?.parse()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let device = backend.parse::<rnnpool_core::BackendKind>()?.device()?.autodiff();
    // (name, default batch, default input side, run); `all` leaves out Face-Quant's 32x640x640,
    // which is for GPUs.
    let cases: [(&str, usize, usize, Run); 3] =
        [("face_m4", 8, 320, face_m4), ("vww", 16, 224, vww), ("face_quant", 32, 640, face_quant)];
    for (name, default_batch, default_size, run) in cases {
        if (case == "all" && name == "face_quant") || (case != "all" && case != name) {
            continue;
        }
        let (batch, size) = (batch_override.unwrap_or(default_batch), size_override.unwrap_or(default_size));
        let times = run(&device, steps, batch, size, phases)?;
        let column_ms = |i: usize| median(times.iter().map(|t| t[i]).collect()) * 1e3;
        let ms = column_ms(0);
        let phase_ms: String = if phases {
            let each: Vec<String> =
                PHASES.iter().enumerate().map(|(i, p)| format!("\"{p}\":{:.1}", column_ms(i + 1))).collect();
            format!(",\"phases_ms\":{{{}}}", each.join(","))
        } else {
            String::new()
        };
        println!(
            "{{\"case\":\"{name}\",\"backend\":\"{backend}\",\"batch\":{batch},\"size\":{size},\"steps\":{steps},\"median_ms\":{ms:.1},\"images_per_s\":{:.1}{phase_ms}}}",
            batch as f64 * 1e3 / ms
        );
    }
    Ok(())
}
