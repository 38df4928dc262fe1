//! burn-train's standard path for the classifiers (`--learner burn-train`): the same model,
//! data, optimizer and learning-rate schedule as our loop, trained by `SupervisedTraining` +
//! `Learner`, for users who want burn's own loop. The result is evaluated by the same code as
//! our loop's runs and saved as a checkpoint of ours, so `eval`, `detect` and `export` take it.
//!
//! What our loop adds, and this path lacks: exact resume in the middle of an epoch (burn-train
//! checkpoints per epoch), per-sample dropout masks that do not depend on the batch split,
//! data-parallel devices with burn's multi-device optimizer step, and what the face models
//! need between forward and backward (host-side S3FD matching and hard negative mining) and
//! after each step (RNNPool-Face-M4's sparsification). So face models train with our loop only.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::LearningRate;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::prelude::Device;
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric};
use burn::train::{ClassificationOutput, InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep};
use data::class_dataset::ClassBatch;
use zoo::Net;
use zoo::config::Config;

use crate::class_task::{self, ClassTask};
use crate::dashboard::{self, Display};
use crate::error::TrainError;
use crate::metrics::{self, EpochMetrics};
use crate::plots;
use crate::run_dir::{Existing, LAST, RunDir};
use crate::schedule::WarmupCosine;
use crate::state::{RunSettings, TrainState};
use crate::task::Task;
use crate::trainer::{RunOptions, RunSummary, epoch_order, optimizer};

/// Where burn-train writes its checkpoints, metric logs and summary, under the run folder.
pub const LEARNER_DIR: &str = "burn-train";

/// A classifier as burn-train's `Learner` wants it: one forward that gives the loss, the
/// logits and the targets.
#[derive(Module, Debug)]
pub struct Classifier {
    net: Net,
}

impl Classifier {
    /// `net`, when it is a classifier.
    pub fn new(net: Net) -> Result<Self, TrainError> {
        if matches!(net, Net::Face(_)) {
            return Err(TrainError::Learner(
                "face models train with our loop only: they need host-side matching and mining between forward and \
                 backward"
                    .into(),
            ));
        }
        Ok(Self { net })
    }

    fn forward(&self, batch: ClassBatch) -> ClassificationOutput {
        // `new` admits classifiers only, and `classify` fails for face detectors only.
        let logits = match self.net.classify(batch.images) {
            Ok(logits) => logits,
            Err(e) => unreachable!("Classifier holds a classifier: {e}"),
        };
        let loss = CrossEntropyLossConfig::new().init(&logits.device()).forward(logits.clone(), batch.labels.clone());
        ClassificationOutput::new(loss, logits, batch.labels)
    }
}

impl TrainStep for Classifier {
    type Input = ClassBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ClassBatch) -> TrainOutput<ClassificationOutput> {
        nn_ops::on_kernel_threads(&batch.images.device(), || {
            let out = self.forward(batch);
            TrainOutput::new(self, out.loss.backward(), out)
        })
    }
}

impl InferenceStep for Classifier {
    type Input = ClassBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ClassBatch) -> ClassificationOutput {
        nn_ops::on_kernel_threads(&batch.images.device(), || self.forward(batch))
    }
}

/// Our warm-up + cosine schedule as a burn learning-rate scheduler (one call per step).
#[derive(Clone, Debug)]
pub struct Schedule {
    schedule: WarmupCosine,
    iter: u64,
}

impl LrScheduler for Schedule {
    fn step(&mut self) -> LearningRate {
        let lr = self.schedule.lr(self.iter as usize);
        self.iter += 1;
        lr
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar("iter", self.iter)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(iter) = record.scalar::<u64>("iter") {
            self.iter = iter;
        }
    }
}

fn refuse(cfg: &Config, opts: &RunOptions) -> Result<(), TrainError> {
    let why = if opts.existing == Existing::Resume {
        "--resume: burn-train resumes from its own per-epoch checkpoints; use our loop (the default) for exact resume"
    } else if cfg.train.devices > 1 {
        "[train] devices > 1: data-parallel devices need our loop (the default)"
    } else {
        return Ok(());
    };
    Err(TrainError::Learner(why.into()))
}

/// Trains the classifier `cfg` describes with burn-train's `SupervisedTraining` + `Learner`.
pub fn train(cfg: &Config, opts: &RunOptions, display: Display) -> Result<RunSummary, TrainError> {
    refuse(cfg, opts)?;
    let device = cfg.train.backend.devices(1)?.remove(0).autodiff();
    let dir = RunDir::open(&cfg.output.dir, opts.existing)?;
    let model = Classifier::new(zoo::registry::build_model(cfg, &device)?)?;
    let task = Arc::new(ClassTask::new(cfg, &device.clone().inner())?);
    let samples = task.train.len();
    let per_epoch = samples.div_ceil(cfg.train.batch_size * cfg.train.accumulation).max(1);
    let t = &cfg.train;
    let schedule = Schedule { schedule: WarmupCosine::for_run(t.lr, t.warmup_epochs, t.epochs, per_epoch), iter: 0 };
    let loader = |train| Arc::new(TaskLoader::new(&task, train, cfg, &device)) as Arc<dyn DataLoader<ClassBatch>>;
    let training = SupervisedTraining::new(dir.join(LEARNER_DIR), loader(true), loader(false))
        .num_epochs(t.epochs)
        .grads_accumulation(t.accumulation)
        .with_application_logger(None)
        .with_interrupter(opts.interrupt.clone())
        .renderer(dashboard::renderer(display, &opts.interrupt, None))
        .metric_train_numeric(AccuracyMetric::new())
        .metric_train_numeric(LossMetric::new())
        .metric_train_numeric(LearningRateMetric::new())
        .metric_valid_numeric(AccuracyMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .with_default_checkpointers()
        .summary();
    let result = training.launch(Learner::new(model, optimizer(cfg), schedule));
    drop(result.renderer);
    dashboard::release_logs();
    if let Some(stop) = result.interrupted {
        return Err(TrainError::Learner(format!("burn-train stopped: {stop:?}")));
    }
    finish(cfg, &task, &dir, result.model.net, per_epoch)
}

/// Evaluates the trained `net` as our loop does and saves it as `last.ckpt` with its metrics.
fn finish(cfg: &Config, task: &ClassTask, dir: &RunDir, net: Net, per_epoch: usize) -> Result<RunSummary, TrainError> {
    let e = task.evaluate(&net)?;
    let row = EpochMetrics {
        epoch: cfg.train.epochs,
        step: cfg.train.epochs * per_epoch,
        val_loss: Some(e.loss),
        val_top1: e.top1,
        val_top5: e.top5,
        val_skipped: e.skipped,
        ..Default::default()
    };
    let mut state = TrainState::new(cfg.model.name, RunSettings::new(cfg, task.fingerprint(), task.train.len()));
    state.step = row.step;
    state.history.push(row);
    metrics::write_all(&dir.path, &state.history).map_err(TrainError::io(&dir.path))?;
    if let Some(counts) = &e.confusion {
        let title = format!("Confusion matrix, {} on {} (burn-train's Learner)", cfg.model.name, cfg.data.kind);
        if let Err(e) = plots::confusion(&dir.path, counts, &title) {
            tracing::warn!("{e}");
        }
    }
    // The optimizer's state stays in burn-train's own checkpoints; ours holds a fresh one, as
    // a finished run is not resumed.
    state.save(&dir.join(LAST), &net, &optimizer(cfg))?;
    Ok(RunSummary { steps: state.step, history: state.history, out_dir: dir.path.clone() })
}

/// burn-train's data loader over one split of our [`ClassTask`]: our loop's sample order
/// ([`epoch_order`]), batches and augmentation epochs, each batch decoded on the task's loader
/// threads. burn's multi-worker loader hands batches over in whichever order its workers finish,
/// so two runs of one config would not train alike.
#[derive(Clone)]
struct TaskLoader {
    task: Arc<ClassTask>,
    train: bool,
    seed: u64,
    batch: usize,
    /// The part of each epoch's order this loader serves (burn-train's `slice`).
    range: Range<usize>,
    /// Epochs begun, shared with the copies `to_device` and `slice` make.
    epochs: Arc<AtomicUsize>,
    device: Device,
}

impl TaskLoader {
    fn new(task: &Arc<ClassTask>, train: bool, cfg: &Config, device: &Device) -> Self {
        Self {
            task: task.clone(),
            train,
            seed: cfg.train.seed,
            batch: cfg.train.batch_size,
            range: 0..usize::MAX,
            epochs: Arc::new(AtomicUsize::new(0)),
            device: device.clone(),
        }
    }

    fn data(&self) -> &class_task::ClassData {
        if self.train { &self.task.train } else { &self.task.val }
    }

    /// The samples of the next pass: a new epoch's shuffled order for training, in turn for
    /// validation.
    fn next_order(&self) -> Vec<usize> {
        let n = self.data().len();
        let order = if self.train {
            let epoch = self.epochs.fetch_add(1, Ordering::Relaxed);
            self.task.set_epoch(epoch as u64);
            epoch_order(n, self.seed, epoch)
        } else {
            (0..n).collect()
        };
        order[self.range.start.min(n)..self.range.end.min(n)].to_vec()
    }
}

impl DataLoader<ClassBatch> for TaskLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<ClassBatch> + 'a> {
        Box::new(TaskBatches { loader: self, order: self.next_order(), done: 0 })
    }

    fn num_items(&self) -> usize {
        let n = self.data().len();
        self.range.end.min(n) - self.range.start.min(n)
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<ClassBatch>> {
        Arc::new(Self { device: device.clone(), ..self.clone() })
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<ClassBatch>> {
        let from = self.range.start.saturating_add(start).min(self.range.end);
        let to = self.range.start.saturating_add(end).clamp(from, self.range.end);
        Arc::new(Self { range: from..to, ..self.clone() })
    }
}

/// One pass of a [`TaskLoader`].
struct TaskBatches<'a> {
    loader: &'a TaskLoader,
    order: Vec<usize>,
    done: usize,
}

impl Iterator for TaskBatches<'_> {
    type Item = Result<ClassBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.done;
        if start >= self.order.len() {
            return None;
        }
        self.done = (start + self.loader.batch).min(self.order.len());
        let l = self.loader;
        Some(l.task.batch(l.data(), &self.order[start..self.done], &l.device).map_err(DatasetError::new))
    }
}

impl DataLoaderIterator<ClassBatch> for TaskBatches<'_> {
    fn progress(&self) -> Progress {
        Progress::new(self.done, self.order.len(), None)
    }
}
