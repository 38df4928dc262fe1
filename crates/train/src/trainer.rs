//! The training loop. It is hand-written around burn's optimizers rather than burn-train's
//! `Learner`, because the face models need what the Learner has no hook for: the host-side S3FD
//! matcher and hard negative mining between forward and backward, M4's sparsification after
//! every step, a per-iteration warm-up + cosine schedule, and checkpoints every N steps whose
//! resume is bit-identical (data order and augmentation are pure functions of seed, epoch and
//! index; model and optimizer state and the epoch's running sums are restored exactly).
//!
//! Nothing is lost or silently wrong: the run folder is locked and settled first ([`RunDir`]),
//! a resume with other settings is refused unless it starts a new schedule segment
//! ([`crate::state`]), a loss that is not finite stops the run before the update, and a signal
//! stops it after the current step with a checkpoint.
//!
//! It reports through burn-train's metric types and renderers ([`crate::dashboard`]) and can run
//! as one rank of an MPI job ([`crate::job`]).

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer, MultiGradientsParams};
use burn::prelude::*;
use burn::train::Interrupter;
use data::augment::AugRng;
use zoo::Net;
use zoo::config::{Config, Optimizer};

use crate::class_task::ClassTask;
use crate::dashboard::{Dashboard, Display, StepReport};
use crate::error::TrainError;
use crate::face_task::FaceTask;
use crate::job::{Job, StepStats};
use crate::metrics::{self, EpochMetrics};
use crate::plots;
use crate::run_dir::RunDir;
pub use crate::run_dir::{BEST, Existing, LAST};
use crate::schedule::WarmupCosine;
use crate::sparsify::{M4_KEEP, sparsify_rnnpool};
use crate::state::{LossSums, RunSettings, Segment, TrainState};
use crate::task::{Evaluation, Task};

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
#[derive(Clone, Default)]
pub struct RunOptions {
    /// What to do with an earlier run in the folder: refuse (the default), resume from
    /// `<out>/last.ckpt`, or overwrite.
    pub existing: Existing,
    /// On resume, accept changed settings and start a new schedule segment.
    pub allow_changes: bool,
    /// Stop after this many optimizer steps in this process (tests of resume).
    pub stop_after: Option<usize>,
    /// No progress display or per-epoch lines.
    pub quiet: bool,
    /// Plain progress even in a terminal, instead of burn-train's dashboard.
    pub no_tui: bool,
    /// Stopped (by a signal, or from the dashboard) to end the run after the current step with
    /// a checkpoint.
    pub interrupt: Interrupter,
    /// The MPI job this process is a rank of (`--features mpi`); one process when `None`.
    pub job: Option<Rc<Job>>,
}

/// The optimizer `[train]` describes (PyTorch's SGD: no dampening).
pub fn optimizer(cfg: &Config) -> ModuleOptimizer {
    let t = &cfg.train;
    let decay = (t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32));
    match t.optimizer {
        Optimizer::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        // burn's `Sgd` in one pass per parameter on the CPU: same values, same record.
        Optimizer::Sgd => nn_ops::sgd::Sgd::new(t.momentum, t.weight_decay).into(),
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
        net = run.step(net, &opts.interrupt)?;
        steps_here += 1;
        run.after_step(&net)?;
        // One process stops as soon as it is asked; the ranks of a job stop together, at the
        // step where any of them was asked.
        if run.stopping || (run.job.size() == 1 && opts.interrupt.should_stop()) {
            let checkpoint = run.dir.join(LAST);
            run.save(&checkpoint, &net)?;
            return Err(TrainError::Interrupted { step: run.state.step, checkpoint });
        }
    }
    if opts.stop_after.is_some() && run.state.step < run.plan.total {
        run.save(&run.dir.join(LAST), &net)?;
    }
    Ok(RunSummary { steps: run.state.step, history: run.state.history, out_dir: run.dir.path.clone() })
}

/// How a schedule segment's samples map onto optimizer steps and epochs.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Samples per optimizer step (`batch_size * accumulation`).
    per_step: usize,
    /// Training samples.
    samples: usize,
    steps_per_epoch: usize,
    /// The segment's first step and epoch.
    start_step: usize,
    start_epoch: usize,
    /// The step the run ends at.
    total: usize,
    schedule: WarmupCosine,
}

impl Plan {
    fn new(segment: &Segment) -> Self {
        let s = &segment.settings;
        let per_step = s.batch_size * s.accumulation;
        let steps_per_epoch = s.samples.div_ceil(per_step).max(1);
        let total = segment.start_step + s.epochs.saturating_sub(segment.start_epoch) * steps_per_epoch;
        let schedule = WarmupCosine::for_run(s.lr, s.warmup_epochs, s.epochs, steps_per_epoch);
        let (start_step, start_epoch) = (segment.start_step, segment.start_epoch);
        Self { per_step, samples: s.samples, steps_per_epoch, start_step, start_epoch, total, schedule }
    }

    /// The epoch (from 0) that the step after `step` steps belongs to.
    fn epoch(&self, step: usize) -> usize {
        self.start_epoch + (step - self.start_step) / self.steps_per_epoch
    }

    /// That step's place in its epoch.
    fn in_epoch(&self, step: usize) -> usize {
        (step - self.start_step) % self.steps_per_epoch
    }

    /// The learning rate of the step after `step` steps: the segment's schedule, as if it had
    /// run from epoch 0 with its settings.
    fn lr(&self, step: usize) -> f64 {
        self.schedule.lr(self.start_epoch * self.steps_per_epoch + step - self.start_step)
    }
}

/// A run in progress: everything but the model, which moves through the optimizer each step.
struct Run<'a> {
    cfg: &'a Config,
    /// This process's place in the job; only rank 0 evaluates and writes.
    job: Rc<Job>,
    /// A rank of the job was asked to stop at the last step.
    stopping: bool,
    /// The autodiff devices; the first holds the model.
    replicas: Vec<Device>,
    task: Box<dyn Task>,
    plan: Plan,
    optim: ModuleOptimizer,
    state: TrainState,
    dir: RunDir,
    dashboard: Dashboard,
    /// This epoch's sample order, with its epoch.
    order: Option<(usize, Vec<usize>)>,
    epoch_start: Instant,
    best_val: f64,
}

impl<'a> Run<'a> {
    /// Locks the run folder, builds the model, the task and the optimizer, and resumes from
    /// `last.ckpt` when asked.
    fn start(cfg: &'a Config, opts: &RunOptions, devices: &[Device]) -> Result<(Self, Net), TrainError> {
        let replicas: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
        let device = replicas.first().cloned().ok_or_else(|| TrainError::Dataset("no device to train on".into()))?;
        let job = opts.job.clone().unwrap_or_default();
        let dir =
            if job.leads() { RunDir::open(&cfg.output.dir, opts.existing)? } else { RunDir::follow(&cfg.output.dir) };
        // Rank 0 settles what a killed job left before any rank reads the checkpoint.
        job.barrier();
        let net = zoo::registry::build_model(cfg, &device)?;
        let task = build_task(cfg, &device)?;
        let settings = RunSettings { ranks: job.size(), ..RunSettings::new(cfg, task.fingerprint(), task.len()) };
        let (state, net, optim) = resume_or_start(cfg, opts, &dir.join(LAST), settings, net)?;
        let plan = Plan::new(state.segment().ok_or_else(|| TrainError::Dataset("no schedule segment".into()))?);
        let best_val = state.history.iter().filter_map(|m| m.val_loss).fold(f64::INFINITY, f64::min);
        let display = Display::choose(opts.no_tui, opts.quiet || !job.leads());
        let (epochs, epoch) = (cfg.train.epochs, plan.epoch(state.step));
        let dashboard = Dashboard::start(display, &opts.interrupt, &dir.path, epochs, epoch, plan.steps_per_epoch);
        let run = Self {
            cfg,
            job,
            stopping: false,
            replicas,
            task,
            plan,
            optim,
            state,
            dir,
            dashboard,
            order: None,
            epoch_start: Instant::now(),
            best_val,
        };
        Ok((run, net))
    }

    /// The samples of the current step; the order and the augmentation epoch change once per
    /// epoch, not per step.
    fn step_samples(&mut self) -> Vec<usize> {
        let epoch = self.plan.epoch(self.state.step);
        let in_epoch = self.plan.in_epoch(self.state.step);
        if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.task.set_epoch(epoch as u64);
            self.order = Some((epoch, epoch_order(self.plan.samples, self.cfg.train.seed, epoch)));
        }
        let order = self.order.as_ref().map(|(_, o)| o.as_slice()).unwrap_or_default();
        order[in_epoch * self.plan.per_step..((in_epoch + 1) * self.plan.per_step).min(self.plan.samples)].to_vec()
    }

    /// One optimizer step: every micro-batch's forward and backward, split over the devices,
    /// then the update (and M4's sparsification). A loss that is not finite stops the run
    /// before the update.
    fn step(&mut self, net: Net, interrupt: &Interrupter) -> Result<Net, TrainError> {
        let samples = self.step_samples();
        let lr = self.plan.lr(self.state.step);
        let skipped_before = self.task.skipped();
        let (mut stats, mut parts) = (StepStats::default(), false);
        // One accumulator per device: gradients stay where they were computed until the
        // optimizer step sums each parameter's on one device.
        let mut grads: Vec<GradientsAccumulator<Net>> =
            self.replicas.iter().map(|_| GradientsAccumulator::new()).collect();
        for micro in samples.chunks(self.cfg.train.batch_size) {
            let ranks = self.job.shards(micro);
            let Some(mine) = ranks.get(self.job.rank()) else { continue };
            let shards: Vec<&[usize]> = mine.chunks(mine.len().div_ceil(self.replicas.len())).collect();
            // The shards' losses are weighted as accumulated micro-batches would be.
            let weight = (self.cfg.train.accumulation * shards.len() * ranks.len()) as f64;
            let results = data_parallel_pass(self.task.as_ref(), &net, &shards, &self.replicas, weight)?;
            for (i, result) in results.into_iter().enumerate() {
                let ShardLoss { total, loc, conf } = result.loss;
                parts |= loc.is_some();
                stats.add(total, loc, conf, shards[i].len());
                grads[i].accumulate(&net, result.grads);
            }
        }
        stats.stop = f64::from(u8::from(interrupt.should_stop()));
        let stats = self.job.sum_stats(stats);
        self.check_finite(&stats, lr)?;
        self.stopping = stats.stop > 0.0;
        self.state.epoch_sums.add_step(&stats, parts);
        self.state.epoch_sums.skipped += self.task.skipped().saturating_sub(skipped_before);
        let net = self.update(net, grads, lr);
        self.state.step += 1;
        self.report(stats.mean_loss(), stats.images as usize, lr);
        Ok(net)
    }

    fn report(&mut self, loss: f64, images: usize, lr: f64) {
        let per_epoch = self.plan.steps_per_epoch;
        let done = match self.plan.in_epoch(self.state.step) {
            0 => per_epoch,
            k => k,
        };
        let epoch = self.plan.epoch(self.state.step - 1) + 1;
        self.dashboard.step(StepReport { epoch, done, per_epoch, loss, images, lr });
    }

    /// An error when a shard's loss (on any rank) was not finite, before the update.
    fn check_finite(&self, stats: &StepStats, lr: f64) -> Result<(), TrainError> {
        if stats.non_finite == 0.0 {
            return Ok(());
        }
        let loss = stats.loss;
        let step = self.state.step + 1;
        let epoch = self.plan.epoch(self.state.step) + 1;
        Err(TrainError::NonFinite { loss, step, epoch, lr, checkpoint: self.dir.join(LAST) })
    }

    /// The optimizer step on one device, or burn's multi-device step: each parameter's
    /// gradients are summed and the parameter updated on one device (chosen by parameter id, so
    /// the optimizer state is spread over the devices), then the model is gathered back on the
    /// first device.
    fn update(&mut self, net: Net, mut grads: Vec<GradientsAccumulator<Net>>, lr: f64) -> Net {
        let net = if self.job.size() > 1 {
            // Across ranks: every rank sums all ranks' gradients and takes the same step.
            let local: Vec<GradientsParams> = grads.iter_mut().map(|g| g.grads()).collect();
            let summed = self.job.sum_gradients(&net, &local);
            self.optim.step(lr, net, summed)
        } else if self.replicas.len() == 1 {
            let grads = grads.pop().map(|mut g| g.grads()).unwrap_or_default();
            // On the kernels' threads, as the passes: the SGD kernel splits large parameters.
            let optim = &mut self.optim;
            nn_ops::on_kernel_threads(&self.replicas[0], || optim.step(lr, net, grads))
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
        if self.plan.in_epoch(self.state.step) != 0 {
            if self.state.step.is_multiple_of(self.cfg.train.checkpoint_every) {
                self.save(&self.dir.join(LAST), net)?;
            }
            return Ok(());
        }
        if !self.job.leads() {
            self.state.epoch_sums = LossSums::default();
            return Ok(());
        }
        let row = self.epoch_row(net)?;
        self.state.history.push(row.clone());
        self.state.epoch_sums = LossSums::default();
        metrics::write_all(&self.dir.path, &self.state.history).map_err(TrainError::io(&self.dir.path))?;
        let title = format!("{} on {}", self.cfg.model.name, self.cfg.data.kind);
        if let Err(e) = plots::curves(&self.dir.path, &self.state.history, &title) {
            tracing::warn!("{e}");
        }
        self.save(&self.dir.join(LAST), net)?;
        if let Some(v) = row.val_loss.filter(|&v| v < self.best_val) {
            self.best_val = v;
            self.save(&self.dir.join(BEST), net)?;
        }
        self.dashboard.epoch_end(&row, self.plan.steps_per_epoch);
        self.epoch_start = Instant::now();
        Ok(())
    }

    /// The metrics of the epoch that just ended, with an evaluation when one is due.
    fn epoch_row(&self, net: &Net) -> Result<EpochMetrics, TrainError> {
        let epoch = self.plan.epoch(self.state.step - 1) + 1;
        let secs = self.epoch_start.elapsed().as_secs_f64().max(1e-9);
        let sums = &self.state.epoch_sums;
        let mut row = EpochMetrics {
            epoch,
            step: self.state.step,
            lr: self.plan.lr(self.state.step - 1),
            train_loss: sums.mean(sums.total),
            train_loc: sums.loc.map(|v| sums.mean(v)),
            train_conf: sums.conf.map(|v| sums.mean(v)),
            images_per_s: sums.images as f64 / secs,
            train_skipped: sums.skipped + self.task.left_out(),
            ..Default::default()
        };
        if epoch.is_multiple_of(self.cfg.train.eval_every) || epoch == self.cfg.train.epochs {
            let (task, valid) = (&self.task, net.valid());
            let e = nn_ops::on_kernel_threads(&self.replicas[0], || task.evaluate(&valid))?;
            (row.val_loss, row.val_ap, row.val_top1, row.val_top5) = (Some(e.loss), e.ap, e.top1, e.top5);
            row.val_skipped = e.skipped;
            tracing::info!(epoch, val_loss = e.loss, val_ap = ?e.ap, easy_medium_hard = ?e.ap_settings, val_top1 = ?e.top1, "evaluated");
            self.plot_evaluation(&e, epoch);
        }
        if row.train_skipped + row.val_skipped > 0 {
            tracing::warn!(
                epoch,
                train = row.train_skipped,
                val = row.val_skipped,
                "unreadable images skipped (skip_bad)"
            );
        }
        Ok(row)
    }
}

impl Run<'_> {
    /// Writes a checkpoint; rank 0 alone writes, the other ranks hold the same state.
    fn save(&self, path: &Path, net: &Net) -> Result<(), TrainError> {
        if self.job.leads() { self.state.save(path, net, &self.optim) } else { Ok(()) }
    }

    /// The precision-recall curves or the confusion matrix of an evaluation, beside the metrics.
    /// A picture that cannot be drawn is a warning: the metrics files hold the figures.
    fn plot_evaluation(&self, e: &Evaluation, epoch: usize) {
        let what = format!("{} on {}, epoch {epoch}", self.cfg.model.name, self.cfg.data.kind);
        let curves: Vec<(&str, &zoo::s3fd::ap::PrCurve)> = e.pr.iter().map(|(n, c)| (n.as_str(), c)).collect();
        let drawn = match (&e.confusion, curves.is_empty()) {
            (Some(counts), _) => plots::confusion(&self.dir.path, counts, &format!("Confusion matrix, {what}")),
            (None, false) => {
                plots::pr_curves(&self.dir.path, &curves, &format!("Precision-recall (WIDER protocol), {what}"))
            }
            (None, true) => Ok(()),
        };
        if let Err(e) = drawn {
            tracing::warn!("{e}");
        }
    }
}

/// The state to train from: `last`'s when resuming (its settings checked against `settings`),
/// else a new one.
fn resume_or_start(
    cfg: &Config,
    opts: &RunOptions,
    last: &Path,
    settings: RunSettings,
    net: Net,
) -> Result<(TrainState, Net, ModuleOptimizer), TrainError> {
    let optim = optimizer(cfg);
    let resume = opts.existing == Existing::Resume;
    if !(resume && last.exists()) {
        if resume {
            tracing::warn!(path = %last.display(), "--resume: no checkpoint yet, starting from scratch");
        }
        return Ok((TrainState::new(cfg.model.name, settings), net, optim));
    }
    let (mut state, net, optim) = TrainState::load(last, cfg.model.name, net, optim)?;
    check_settings(&mut state, settings, opts.allow_changes, last)?;
    tracing::info!(step = state.step, path = %last.display(), "resumed");
    Ok((state, net, optim))
}

/// An error when `now` differs from the run's settings, unless `allow`: then a new schedule
/// segment starts at the beginning of the epoch in progress.
fn check_settings(state: &mut TrainState, now: RunSettings, allow: bool, path: &Path) -> Result<(), TrainError> {
    let Some(current) = state.segment() else {
        return Err(TrainError::Record { path: path.into(), message: "the training state has no settings".into() });
    };
    let changes: Vec<String> =
        current.settings.changes(&now).into_iter().map(|(k, was, is)| format!("{k}: {was} -> {is}")).collect();
    if changes.is_empty() {
        return Ok(());
    }
    let changes = changes.join(", ");
    if !allow {
        return Err(TrainError::ResumeChanged { path: path.into(), changes });
    }
    let epoch = Plan::new(current).epoch(state.step);
    tracing::warn!(
        step = state.step,
        "--allow-changes: {changes}; a new schedule segment starts at epoch {} (the epoch in progress restarts)",
        epoch + 1
    );
    state.segments.push(Segment { start_step: state.step, start_epoch: epoch, settings: now });
    state.epoch_sums = LossSums::default();
    Ok(())
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
/// On the CPU backends every pass runs on the kernels' worker 0 (`nn_ops::on_kernel_threads`),
/// so CPU shards take turns there; they share the same cores either way. Each result's
/// gradients are on its shard's device.
fn data_parallel_pass(
    task: &dyn Task,
    net: &Net,
    shards: &[&[usize]],
    devices: &[Device],
    weight: f64,
) -> Result<Vec<ShardResult>, TrainError> {
    let pass = |replica: &Net, shard: &[usize], device: &Device| -> Result<ShardResult, TrainError> {
        nn_ops::on_kernel_threads(device, || {
            let loss = task.loss(replica, shard, device)?;
            let grads = GradientsParams::from_grads((loss.total.clone() / weight).backward(), replica);
            let total = loss.total.into_scalar::<f32>() as f64;
            Ok(ShardResult { loss: ShardLoss { total, loc: loss.loc, conf: loss.conf }, grads })
        })
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
