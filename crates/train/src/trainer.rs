//! The training loop. It is hand-written around burn's optimizers rather than burn-train's
//! `Learner`, because the face models need what the Learner has no hook for: the host-side S3FD
//! matcher and hard negative mining between forward and backward, M4's sparsification after
//! every step, a per-iteration warm-up + cosine schedule, and checkpoints every N steps whose
//! resume is bit-identical (data order and augmentation are pure functions of seed, epoch and
//! index; model and optimizer state are restored exactly).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer, MultiGradientsParams, SgdConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::prelude::*;
use burn::store::ModuleRecord;
use data::augment::AugRng;
use indicatif::{ProgressBar, ProgressStyle};
use rnnpool_core::state_dict::StateDict;

use crate::checkpoint::{Checkpoint, CheckpointError, TrainState};
use crate::config::Config;
use crate::error::TrainError;
use crate::class_task::ClassTask;
use crate::face_task::FaceTask;
use crate::metrics::{self, EpochMetrics};
use crate::net::{ModelKind, Net};
use crate::schedule::WarmupCosine;
use crate::sparsify::{M4_KEEP, sparsify_rnnpool};
use crate::task::Task;

pub const LAST: &str = "last.ckpt";
pub const BEST: &str = "best.ckpt";

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub steps: usize,
    pub history: Vec<EpochMetrics>,
    pub out_dir: PathBuf,
}

fn optimizer(cfg: &Config) -> ModuleOptimizer {
    let t = &cfg.train;
    let decay = (t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32));
    match t.optimizer.as_str() {
        "adam" => AdamConfig::new().with_weight_decay(decay).init(),
        // PyTorch's SGD: no dampening.
        _ => SgdConfig::new()
            .with_momentum((t.momentum > 0.0).then(|| MomentumConfig::new().with_momentum(t.momentum).with_dampening(0.0)))
            .with_weight_decay(decay)
            .init(),
    }
}

/// burn's parameter init draws from the device's global generator: seeding and building hold
/// this lock so that models built at once in one process (tests, sweeps) each get their seed's
/// weights.
static SEEDED_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Draws every lazily initialised parameter now, in module order. burn's parameters are
/// initialised on first use; left lazy, the draws would happen outside [`SEEDED_INIT`] and in
/// whatever order the first forward pass (or the data-parallel `fork`s) touch them, so the
/// weights of a seed would depend on the device count and on other trainings in the process.
struct InitNow;

impl burn::module::ModuleVisitor for InitNow {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// A model of `cfg` on `device`, initialised from `train.seed`, with the weights of
/// `model.init` when given.
pub fn build_model(cfg: &Config, device: &Device) -> Result<(ModelKind, Net), TrainError> {
    let kind = ModelKind::parse(&cfg.model.name).ok_or_else(|| TrainError::Unsupported {
        what: format!("model `{}`", cfg.model.name),
        why: "see configs/README.md for the names".into(),
    })?;
    let (classes, channels) = crate::class_task::classes_and_channels(&cfg.data)?;
    let mut net = {
        let _guard = SEEDED_INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        device.seed(cfg.train.seed);
        let net = kind.init(classes, channels, device)?;
        net.visit(&mut InitNow);
        net
    };
    match &cfg.model.init {
        // One of our checkpoints (fine-tuning from a previous run): its weights only.
        Some(init) if init.extension().is_some_and(|e| e == "ckpt") => {
            net = load_checkpoint(init, cfg, net, None)?.1;
            tracing::info!(path = %init.display(), "started from a checkpoint's weights");
        }
        Some(init) => {
            net = net.load_state(&StateDict::load(init)?)?;
            tracing::info!(path = %init.display(), "started from EdgeML weights");
        }
        None => {}
    }
    Ok((kind, net))
}

/// Loads `path` into `net` (and `optim`), checking it holds the configured model.
pub fn load_checkpoint(
    path: &Path,
    cfg: &Config,
    net: Net,
    optim: Option<ModuleOptimizer>,
) -> Result<(TrainState, Net, Option<ModuleOptimizer>), TrainError> {
    let ckpt = Checkpoint::load(path)?;
    if ckpt.state.model != cfg.model.name {
        return Err(CheckpointError::WrongModel {
            path: path.into(),
            found: ckpt.state.model,
            expected: cfg.model.name.clone(),
        }
        .into());
    }
    let record_err = |message: String| TrainError::Record { path: path.into(), message };
    let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(ckpt.model))
        .map_err(|e| record_err(format!("model record: {e}")))?;
    let net = net.try_load_record(record).map_err(|e| record_err(format!("model does not fit: {e}")))?;
    let optim = match optim {
        Some(o) => Some(
            o.from_bytes(burn::tensor::Bytes::from_bytes_vec(ckpt.optimizer))
                .map_err(|e| record_err(format!("optimizer record: {e}")))?,
        ),
        None => None,
    };
    Ok((ckpt.state, net, optim))
}

fn save_checkpoint(path: &Path, state: &TrainState, net: &Net, optim: &ModuleOptimizer) -> Result<(), TrainError> {
    let record_err = |message: String| TrainError::Record { path: path.into(), message };
    // `valid()` first: it folds BatchNorm's pending running-statistics update into the value
    // (a record of the training module would miss the latest update).
    let model = net.valid().into_record().into_bytes().map_err(|e| record_err(e.to_string()))?;
    let optimizer = optim.into_bytes().map_err(|e| record_err(e.to_string()))?;
    Checkpoint { state: state.clone(), model: model.to_vec(), optimizer: optimizer.to_vec() }.save(path)?;
    Ok(())
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

/// Options that are not part of the experiment's definition.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub resume: bool,
    /// Stop after this many optimizer steps in this process (tests of resume).
    pub stop_after: Option<usize>,
    pub quiet: bool,
}

/// The task `cfg` describes, for a model of `kind`.
pub fn build_task(cfg: &Config, kind: ModelKind, device: &Device) -> Result<Box<dyn Task>, TrainError> {
    Ok(if kind.is_face() {
        Box::new(FaceTask::new(cfg, kind.is_qvga(), device)?)
    } else {
        Box::new(ClassTask::new(cfg, device)?)
    })
}

pub fn train(cfg: &Config, opts: &RunOptions) -> Result<RunSummary, TrainError> {
    let devices = crate::backend::devices(&cfg.train.backend, cfg.train.devices)?;
    train_on(cfg, opts, &devices)
}

/// [`train`] on the given devices (the first holds the model, the optimizer and the
/// evaluation; with several, each micro-batch is split across all of them).
pub fn train_on(cfg: &Config, opts: &RunOptions, devices: &[Device]) -> Result<RunSummary, TrainError> {
    let replicas: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
    let device = replicas.first().cloned().ok_or_else(|| TrainError::Backend {
        backend: cfg.train.backend.clone(),
        message: "no device to train on".into(),
    })?;
    let (kind, mut net) = build_model(cfg, &device)?;
    let out = cfg.output.dir.clone();
    std::fs::create_dir_all(&out).map_err(TrainError::io(&out))?;
    let task = build_task(cfg, kind, &device)?;

    let t = &cfg.train;
    let per_step = t.batch_size * t.accumulation;
    let n = task.len();
    let steps_per_epoch = n.div_ceil(per_step);
    let total = steps_per_epoch * t.epochs;
    let schedule = WarmupCosine {
        base_lr: t.lr,
        warmup_iters: (t.warmup_epochs * steps_per_epoch as f64).round() as usize,
        total_iters: total,
    };
    let mut optim = optimizer(cfg);
    let mut state = TrainState { model: cfg.model.name.clone(), step: 0, seed: t.seed, history: Vec::new() };
    let last = out.join(LAST);
    if opts.resume && last.exists() {
        let (s, m, o) = load_checkpoint(&last, cfg, net, Some(optim))?;
        let record = |message: &str| TrainError::Record { path: last.clone(), message: message.into() };
        (state, net, optim) = (s, m, o.ok_or_else(|| record("no optimizer state"))?);
        tracing::info!(step = state.step, path = %last.display(), "resumed");
    } else if opts.resume {
        tracing::warn!(path = %last.display(), "--resume: no checkpoint yet, starting from scratch");
    }

    let bar = if opts.quiet { ProgressBar::hidden() } else { ProgressBar::new(total as u64) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} epoch {prefix} [{bar:30}] {pos}/{len} steps {msg} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(state.step as u64);
    let mut best_val = state.history.iter().filter_map(|m| m.val_loss).fold(f64::INFINITY, f64::min);
    let mut sums = LossSums::default();
    let mut epoch_start = Instant::now();
    let mut steps_here = 0usize;
    let mut order: Option<(usize, Vec<usize>)> = None;
    while state.step < total {
        if opts.stop_after.is_some_and(|k| steps_here >= k) {
            break;
        }
        let epoch = state.step / steps_per_epoch;
        let in_epoch = state.step % steps_per_epoch;
        // The order and the augmentation epoch change once per epoch, not per step.
        if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            task.set_epoch(epoch as u64);
            order = Some((epoch, epoch_order(n, t.seed, epoch)));
        }
        let samples = order.as_ref().map(|(_, o)| o.as_slice()).unwrap_or_default();
        bar.set_prefix(format!("{}/{}", epoch + 1, t.epochs));
        let lr = schedule.lr(state.step);
        // One accumulator per device: gradients stay where they were computed until the
        // optimizer step sums each parameter's on one device.
        let mut grads: Vec<GradientsAccumulator<Net>> = replicas.iter().map(|_| GradientsAccumulator::new()).collect();
        for micro in samples[in_epoch * per_step..((in_epoch + 1) * per_step).min(n)].chunks(t.batch_size) {
            let shards: Vec<&[usize]> = micro.chunks(micro.len().div_ceil(replicas.len())).collect();
            // The shards' losses are weighted as accumulated micro-batches would be.
            let weight = (t.accumulation * shards.len()) as f64;
            for (i, result) in data_parallel_pass(task.as_ref(), &net, &shards, &replicas, weight)?.into_iter().enumerate() {
                sums.add(&result.loss, shards[i].len());
                grads[i].accumulate(&net, result.grads);
            }
        }
        net = if replicas.len() == 1 {
            let grads = grads.pop().map(|mut g| g.grads()).unwrap_or_default();
            optim.step(lr, net, grads)
        } else {
            // burn's multi-device step: each parameter's gradients are summed and the parameter
            // updated on one device (chosen by parameter id, so the optimizer state is spread over
            // the devices); the model is then gathered back on the first device.
            let grads = MultiGradientsParams {
                grads: grads.iter_mut().map(|g| g.grads()).zip(replicas.iter().cloned()).collect(),
            };
            optim.step_multi(lr, net, grads).fork(&device)
        };
        if t.sparsify
            && let Net::Face(mut m) = net
        {
            m.rnn_pool.pool = sparsify_rnnpool(m.rnn_pool.pool, M4_KEEP);
            net = Net::Face(m);
        }
        state.step += 1;
        steps_here += 1;
        bar.set_position(state.step as u64);
        let secs = epoch_start.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(sums.message(lr, secs));
        if state.step % steps_per_epoch == 0 {
            let epoch_no = state.step / steps_per_epoch;
            let mut row = sums.row(epoch_no, state.step, lr, secs);
            if epoch_no % t.eval_every == 0 || epoch_no == t.epochs {
                let e = task.evaluate(&net.valid())?;
                (row.val_loss, row.val_ap, row.val_top1, row.val_top5) = (Some(e.loss), e.ap, e.top1, e.top5);
                tracing::info!(epoch = epoch_no, val_loss = e.loss, val_ap = ?e.ap, easy_medium_hard = ?e.ap_settings, val_top1 = ?e.top1, "evaluated");
            }
            state.history.push(row.clone());
            metrics::write_all(&out, &state.history).map_err(TrainError::io(&out))?;
            save_checkpoint(&last, &state, &net, &optim)?;
            if let Some(v) = row.val_loss
                && v < best_val
            {
                best_val = v;
                save_checkpoint(&out.join(BEST), &state, &net, &optim)?;
            }
            if !opts.quiet {
                bar.println(row.summary());
            }
            sums = LossSums::default();
            epoch_start = Instant::now();
        } else if state.step % t.checkpoint_every == 0 {
            save_checkpoint(&last, &state, &net, &optim)?;
        }
    }
    if opts.stop_after.is_some() && state.step < total {
        save_checkpoint(&last, &state, &net, &optim)?;
    }
    bar.finish_and_clear();
    Ok(RunSummary { steps: state.step, history: state.history, out_dir: out })
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
