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

use burn::data::dataloader::DataLoaderBuilder;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::LearningRate;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::train::metric::{AccuracyMetric, LearningRateMetric, LossMetric};
use burn::train::{ClassificationOutput, InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep};
use data::class_dataset::{ClassBatch, ClassBatcher};
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
use crate::trainer::{RunOptions, RunSummary, optimizer};

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
        let out = self.forward(batch);
        TrainOutput::new(self, out.loss.backward(), out)
    }
}

impl InferenceStep for Classifier {
    type Input = ClassBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: ClassBatch) -> ClassificationOutput {
        self.forward(batch)
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
    let train_data = class_task::split(cfg, &cfg.data.train_split, true)?;
    let valid_data = class_task::split(cfg, &cfg.data.val_split, false)?;
    let samples = train_data.len();
    let per_epoch = samples.div_ceil(cfg.train.batch_size * cfg.train.accumulation).max(1);
    let t = &cfg.train;
    let schedule = Schedule { schedule: WarmupCosine::for_run(t.lr, t.warmup_epochs, t.epochs, per_epoch), iter: 0 };
    let loader = |data, shuffle: bool| {
        let b = DataLoaderBuilder::new(ClassBatcher).batch_size(t.batch_size).num_workers(t.workers);
        let b = if shuffle { b.shuffle(t.seed) } else { b };
        b.set_device(device.clone()).build(data)
    };
    let training = SupervisedTraining::new(dir.join(LEARNER_DIR), loader(train_data, true), loader(valid_data, false))
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
    finish(cfg, &dir, result.model.net, samples, per_epoch)
}

/// Evaluates the trained `net` as our loop does and saves it as `last.ckpt` with its metrics.
fn finish(cfg: &Config, dir: &RunDir, net: Net, samples: usize, per_epoch: usize) -> Result<RunSummary, TrainError> {
    let device = cfg.train.backend.devices(1)?.remove(0);
    let task = ClassTask::new(cfg, &device)?;
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
    let mut state = TrainState::new(cfg.model.name, RunSettings::new(cfg, task.fingerprint(), samples));
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
