//! The training loop. It is hand-written around burn's optimizers rather than burn-train's
//! `Learner`, because the face models need what the Learner has no hook for: the host-side S3FD
//! matcher and hard negative mining between forward and backward, M4's sparsification after
//! every step, a per-iteration warm-up + cosine schedule, and checkpoints every N steps whose
//! resume is bit-identical (data order and augmentation are pure functions of seed, epoch and
//! index; model and optimizer state are restored exactly).

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer, MultiGradientsParams, SgdConfig,
};
use burn::prelude::*;
use data::augment::AugRng;
use indicatif::{ProgressBar, ProgressStyle};
use zoo::Net;
use zoo::config::{Config, Optimizer};

use crate::class_task::ClassTask;
use crate::error::TrainError;
use crate::face_task::FaceTask;
use crate::metrics::{self, EpochMetrics};
use crate::schedule::WarmupCosine;
use crate::sparsify::{M4_KEEP, sparsify_rnnpool};
use crate::state::TrainState;
use crate::task::Task;

/// The latest checkpoint of a run folder.
pub const LAST: &str = "last.ckpt";
/// The checkpoint with the lowest validation loss.
pub const BEST: &str = "best.ckpt";

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Optimizer steps taken in all.
    pub steps: usize,
    /// Per-epoch metrics.
    pub history: Vec<EpochMetrics>,
    /// The run folder.
    pub out_dir: PathBuf,
}

/// Options that are not part of the experiment's definition.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Continue from `<out>/last.ckpt`.
    pub resume: bool,
    /// Stop after this many optimizer steps in this process (tests of resume).
    pub stop_after: Option<usize>,
    /// No progress bar or per-epoch lines.
    pub quiet: bool,
}

/// The optimizer `[train]` describes (PyTorch's SGD: no dampening).
pub fn optimizer(cfg: &Config) -> ModuleOptimizer {
    let t = &cfg.train;
    let decay = (t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32));
    match t.optimizer {
        Optimizer::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        Optimizer::Sgd => SgdConfig::new()
            .with_momentum(
                (t.momentum > 0.0).then(|| MomentumConfig::new().with_momentum(t.momentum).with_dampening(0.0)),
            )
            .with_weight_decay(decay)
            .init(),
    }
}

/// The sample order of `epoch`: a Fisher-Yates shuffle seeded by (seed, epoch).
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut rng = AugRng::for_sample(seed, epoch as u64, u64::MAX);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// The task `cfg` describes: face detection or classification.
pub fn build_task(cfg: &Config, device: &Device) -> Result<Box<dyn Task>, TrainError> {
    Ok(if cfg.model.name.is_face() {
        Box::new(FaceTask::new(cfg, cfg.model.name.is_qvga(), device)?)
    } else {
        Box::new(ClassTask::new(cfg, device)?)
    })
}

/// Trains `cfg` on `train.devices` devices of `train.backend`.
pub fn train(cfg: &Config, opts: &RunOptions) -> Result<RunSummary, TrainError> {
    let devices = cfg.train.backend.devices(cfg.train.devices)?;
    train_on(cfg, opts, &devices)
}

/// [`train`] on the given devices (the first holds the model, the optimizer and the
/// evaluation; with several, each micro-batch is split across all of them).
pub fn train_on(cfg: &Config, opts: &RunOptions, devices: &[Device]) -> Result<RunSummary, TrainError> {
    let (mut run, mut net) = Run::start(cfg, opts, devices)?;
    let mut steps_here = 0usize;
    while run.state.step < run.plan.total && opts.stop_after.is_none_or(|k| steps_here < k) {
        net = run.step(net)?;
        steps_here += 1;
        run.after_step(&net)?;
    }
    if opts.stop_after.is_some() && run.state.step < run.plan.total {
        run.state.save(&run.out.join(LAST), &net, &run.optim)?;
    }
    run.bar.finish_and_clear();
    Ok(RunSummary { steps: run.state.step, history: run.state.history, out_dir: run.out })
}

/// How a run's samples map onto optimizer steps.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Samples per optimizer step (`batch_size * accumulation`).
    per_step: usize,
    /// Training samples.
    samples: usize,
    steps_per_epoch: usize,
    total: usize,
}

impl Plan {
    fn new(cfg: &Config, samples: usize) -> Self {
        let per_step = cfg.train.batch_size * cfg.train.accumulation;
        let steps_per_epoch = samples.div_ceil(per_step);
        Self { per_step, samples, steps_per_epoch, total: steps_per_epoch * cfg.train.epochs }
    }
}

/// A run in progress: everything but the model, which moves through the optimizer each step.
struct Run<'a> {
    cfg: &'a Config,
    opts: &'a RunOptions,
    /// The autodiff devices; the first holds the model.
    replicas: Vec<Device>,
    task: Box<dyn Task>,
    plan: Plan,
    schedule: WarmupCosine,
    optim: ModuleOptimizer,
    state: TrainState,
    out: PathBuf,
    bar: ProgressBar,
    /// This epoch's sample order, with its epoch.
    order: Option<(usize, Vec<usize>)>,
    sums: LossSums,
    epoch_start: Instant,
    best_val: f64,
}

impl<'a> Run<'a> {
    /// Builds the model, the task and the optimizer, and resumes from `last.ckpt` when asked.
    fn start(cfg: &'a Config, opts: &'a RunOptions, devices: &[Device]) -> Result<(Self, Net), TrainError> {
        let replicas: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
        let device = replicas.first().cloned().ok_or_else(|| TrainError::Dataset("no device to train on".into()))?;
        let mut net = zoo::registry::build_model(cfg, &device)?;
        let out = cfg.output.dir.clone();
        std::fs::create_dir_all(&out).map_err(TrainError::io(&out))?;
        let task = build_task(cfg, &device)?;
        let plan = Plan::new(cfg, task.len());
        let t = &cfg.train;
        let warmup_iters = (t.warmup_epochs * plan.steps_per_epoch as f64).round() as usize;
        let schedule = WarmupCosine { base_lr: t.lr, warmup_iters, total_iters: plan.total };
        let mut optim = optimizer(cfg);
        let mut state = TrainState::new(cfg.model.name, t.seed);
        let last = out.join(LAST);
        if opts.resume && last.exists() {
            (state, net, optim) = TrainState::load(&last, cfg.model.name, net, optim)?;
            tracing::info!(step = state.step, path = %last.display(), "resumed");
        } else if opts.resume {
            tracing::warn!(path = %last.display(), "--resume: no checkpoint yet, starting from scratch");
        }
        let best_val = state.history.iter().filter_map(|m| m.val_loss).fold(f64::INFINITY, f64::min);
        let bar = progress_bar(opts.quiet, plan.total, state.step);
        let run = Self {
            cfg,
            opts,
            replicas,
            task,
            plan,
            schedule,
            optim,
            state,
            out,
            bar,
            order: None,
            sums: LossSums::default(),
            epoch_start: Instant::now(),
            best_val,
        };
        Ok((run, net))
    }

    /// The samples of the current step; the order and the augmentation epoch change once per
    /// epoch, not per step.
    fn step_samples(&mut self) -> Vec<usize> {
        let epoch = self.state.step / self.plan.steps_per_epoch;
        let in_epoch = self.state.step % self.plan.steps_per_epoch;
        if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.task.set_epoch(epoch as u64);
            self.order = Some((epoch, epoch_order(self.plan.samples, self.cfg.train.seed, epoch)));
        }
        self.bar.set_prefix(format!("{}/{}", epoch + 1, self.cfg.train.epochs));
        let order = self.order.as_ref().map(|(_, o)| o.as_slice()).unwrap_or_default();
        order[in_epoch * self.plan.per_step..((in_epoch + 1) * self.plan.per_step).min(self.plan.samples)].to_vec()
    }

    /// One optimizer step: every micro-batch's forward and backward, split over the devices,
    /// then the update (and M4's sparsification).
    fn step(&mut self, net: Net) -> Result<Net, TrainError> {
        let samples = self.step_samples();
        let lr = self.schedule.lr(self.state.step);
        // One accumulator per device: gradients stay where they were computed until the
        // optimizer step sums each parameter's on one device.
        let mut grads: Vec<GradientsAccumulator<Net>> =
            self.replicas.iter().map(|_| GradientsAccumulator::new()).collect();
        for micro in samples.chunks(self.cfg.train.batch_size) {
            let shards: Vec<&[usize]> = micro.chunks(micro.len().div_ceil(self.replicas.len())).collect();
            // The shards' losses are weighted as accumulated micro-batches would be.
            let weight = (self.cfg.train.accumulation * shards.len()) as f64;
            let results = data_parallel_pass(self.task.as_ref(), &net, &shards, &self.replicas, weight)?;
            for (i, result) in results.into_iter().enumerate() {
                self.sums.add(&result.loss, shards[i].len());
                grads[i].accumulate(&net, result.grads);
            }
        }
        let net = self.update(net, grads, lr);
        self.state.step += 1;
        self.bar.set_position(self.state.step as u64);
        self.bar.set_message(self.sums.message(lr, self.epoch_start.elapsed().as_secs_f64().max(1e-9)));
        Ok(net)
    }

    /// The optimizer step on one device, or burn's multi-device step: each parameter's
    /// gradients are summed and the parameter updated on one device (chosen by parameter id, so
    /// the optimizer state is spread over the devices), then the model is gathered back on the
    /// first device.
    fn update(&mut self, net: Net, mut grads: Vec<GradientsAccumulator<Net>>, lr: f64) -> Net {
        let net = if self.replicas.len() == 1 {
            let grads = grads.pop().map(|mut g| g.grads()).unwrap_or_default();
            self.optim.step(lr, net, grads)
        } else {
            let grads = MultiGradientsParams {
                grads: grads.iter_mut().map(|g| g.grads()).zip(self.replicas.iter().cloned()).collect(),
            };
            self.optim.step_multi(lr, net, grads).fork(&self.replicas[0])
        };
        match net {
            Net::Face(mut m) if self.cfg.train.sparsify => {
                m.rnn_pool.pool = sparsify_rnnpool(m.rnn_pool.pool, M4_KEEP);
                Net::Face(m)
            }
            other => other,
        }
    }

    /// At an epoch's end: evaluation when due, the metrics files, `last.ckpt` and, at a new
    /// lowest validation loss, `best.ckpt`; between epochs a checkpoint every
    /// `checkpoint_every` steps.
    fn after_step(&mut self, net: &Net) -> Result<(), TrainError> {
        if !self.state.step.is_multiple_of(self.plan.steps_per_epoch) {
            if self.state.step.is_multiple_of(self.cfg.train.checkpoint_every) {
                self.state.save(&self.out.join(LAST), net, &self.optim)?;
            }
            return Ok(());
        }
        let epoch = self.state.step / self.plan.steps_per_epoch;
        let secs = self.epoch_start.elapsed().as_secs_f64().max(1e-9);
        let mut row = self.sums.row(epoch, self.state.step, self.schedule.lr(self.state.step - 1), secs);
        if epoch.is_multiple_of(self.cfg.train.eval_every) || epoch == self.cfg.train.epochs {
            let e = self.task.evaluate(&net.valid())?;
            (row.val_loss, row.val_ap, row.val_top1, row.val_top5) = (Some(e.loss), e.ap, e.top1, e.top5);
            tracing::info!(epoch, val_loss = e.loss, val_ap = ?e.ap, easy_medium_hard = ?e.ap_settings, val_top1 = ?e.top1, "evaluated");
        }
        self.state.history.push(row.clone());
        metrics::write_all(&self.out, &self.state.history).map_err(TrainError::io(&self.out))?;
        self.state.save(&self.out.join(LAST), net, &self.optim)?;
        if let Some(v) = row.val_loss.filter(|&v| v < self.best_val) {
            self.best_val = v;
            self.state.save(&self.out.join(BEST), net, &self.optim)?;
        }
        if !self.opts.quiet {
            self.bar.println(row.summary());
        }
        self.sums = LossSums::default();
        self.epoch_start = Instant::now();
        Ok(())
    }
}

fn progress_bar(quiet: bool, total: usize, position: usize) -> ProgressBar {
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(total as u64) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} epoch {prefix} [{bar:30}] {pos}/{len} steps {msg} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(position as u64);
    bar
}

/// What one device's shard of a micro-batch gives back.
struct ShardResult {
    loss: ShardLoss,
    grads: GradientsParams,
}

/// A shard's loss, read back to the host.
struct ShardLoss {
    total: f64,
    loc: Option<f64>,
    conf: Option<f64>,
}

/// Forward and backward of `net` on `shards[i]` on `devices[i]`, all devices at once: the
/// first shard on this thread with `net` itself, every other one on a thread of its own with a
/// copy of the model on its device (burn's `fork`). The copies get their own BatchNorm running
/// statistics (`valid().train()` makes new ones), so `net` keeps the first device's, updated
/// from this thread only, as with one device (and as PyTorch's DistributedDataParallel keeps
/// rank 0's): concurrent updates of one shared running state would depend on thread timing.
/// Each result's gradients are on its shard's device.
fn data_parallel_pass(
    task: &dyn Task,
    net: &Net,
    shards: &[&[usize]],
    devices: &[Device],
    weight: f64,
) -> Result<Vec<ShardResult>, TrainError> {
    let pass = |replica: &Net, shard: &[usize], device: &Device| -> Result<ShardResult, TrainError> {
        let loss = task.loss(replica, shard, device)?;
        let grads = GradientsParams::from_grads((loss.total.clone() / weight).backward(), replica);
        let total = loss.total.into_scalar::<f32>() as f64;
        Ok(ShardResult { loss: ShardLoss { total, loc: loss.loc, conf: loss.conf }, grads })
    };
    let ((shard0, other_shards), (device0, other_devices)) = match (shards.split_first(), devices.split_first()) {
        (Some(s), Some(d)) => (s, d),
        _ => return Ok(Vec::new()),
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = other_shards
            .iter()
            .zip(other_devices)
            .map(|(shard, device)| {
                let replica = net.valid().train().fork(device);
                scope.spawn(move || pass(&replica, shard, device))
            })
            .collect();
        let mut results = vec![pass(net, shard0, device0)?];
        for other in others {
            results.push(other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?);
        }
        Ok(results)
    })
}

/// Running sums of one epoch's training losses.
#[derive(Default)]
struct LossSums {
    total: f64,
    /// Detection only: the localisation and classification parts.
    loc: Option<f64>,
    conf: Option<f64>,
    batches: usize,
    images: usize,
}

impl LossSums {
    fn add(&mut self, loss: &ShardLoss, images: usize) {
        self.total += loss.total;
        let add = |sum: Option<f64>, part: Option<f64>| part.map(|p| sum.unwrap_or(0.0) + p).or(sum);
        self.loc = add(self.loc, loss.loc);
        self.conf = add(self.conf, loss.conf);
        self.batches += 1;
        self.images += images;
    }

    fn mean(&self, v: f64) -> f64 {
        v / self.batches.max(1) as f64
    }

    fn message(&self, lr: f64, secs: f64) -> String {
        format!("loss {:.4} lr {lr:.2e} {:.1} img/s", self.mean(self.total), self.images as f64 / secs)
    }

    fn row(&self, epoch: usize, step: usize, lr: f64, secs: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            step,
            lr,
            train_loss: self.mean(self.total),
            train_loc: self.loc.map(|v| self.mean(v)),
            train_conf: self.conf.map(|v| self.mean(v)),
            images_per_s: self.images as f64 / secs,
            ..Default::default()
        }
    }
}
