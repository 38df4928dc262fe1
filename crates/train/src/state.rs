//! Where a run stands, as its checkpoints record it: the step, the per-epoch metrics, the sums
//! of the epoch in progress, and every setting that the data order and the schedule depend on
//! (per schedule segment), with the model and optimizer records beside them in one
//! `zoo::Checkpoint`.

use std::path::Path;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};
use zoo::Checkpoint;
use zoo::Net;
use zoo::config::{Config, ModelName, Optimizer};

use crate::error::TrainError;
use crate::metrics::EpochMetrics;

/// What the data order and the learning-rate schedule depend on; a resume that changes any of
/// them would not continue the same run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunSettings {
    /// `train.batch_size`.
    pub batch_size: usize,
    /// `train.accumulation`.
    pub accumulation: usize,
    /// `train.devices`.
    pub devices: usize,
    /// `train.seed`.
    pub seed: u64,
    /// A hash of the training samples and their pipeline (`data.*`), in hex.
    pub data: String,
    /// Training samples.
    pub samples: usize,
    /// `train.epochs`.
    pub epochs: usize,
    /// `train.optimizer`.
    pub optimizer: Optimizer,
    /// `train.lr`.
    pub lr: f64,
    /// `train.momentum`.
    pub momentum: f64,
    /// `train.weight_decay`.
    pub weight_decay: f64,
    /// `train.warmup_epochs`.
    pub warmup_epochs: f64,
    /// `train.sparsify`.
    pub sparsify: bool,
    /// MPI ranks (`--features mpi`): each takes its shard of every micro-batch.
    #[serde(default = "one")]
    pub ranks: usize,
}

fn one() -> usize {
    1
}

impl RunSettings {
    /// The settings of `cfg` over training data with `fingerprint` and `samples`.
    pub fn new(cfg: &Config, fingerprint: u64, samples: usize) -> Self {
        let t = &cfg.train;
        Self {
            batch_size: t.batch_size,
            accumulation: t.accumulation,
            devices: t.devices,
            seed: t.seed,
            data: format!("{fingerprint:016x}"),
            samples,
            epochs: t.epochs,
            optimizer: t.optimizer,
            lr: t.lr,
            momentum: t.momentum,
            weight_decay: t.weight_decay,
            warmup_epochs: t.warmup_epochs,
            sparsify: t.sparsify,
            ranks: 1,
        }
    }

    /// Each setting that differs from `now`: `(name, value here, value now)`.
    pub fn changes(&self, now: &RunSettings) -> Vec<(String, String, String)> {
        let (serde_json::Value::Object(a), serde_json::Value::Object(b)) =
            (serde_json::json!(self), serde_json::json!(now))
        else {
            return Vec::new();
        };
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.to_string(), b.get(k).map(|v| v.to_string()).unwrap_or_default()))
            .collect()
    }
}

/// A stretch of the run with one set of settings: the whole run, unless a resume with
/// `--allow-changes` started another.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Segment {
    /// Its first optimizer step.
    pub start_step: usize,
    /// Its first epoch (from 0): it starts at an epoch's beginning.
    pub start_epoch: usize,
    /// Its settings.
    pub settings: RunSettings,
}

/// Running sums of the epoch in progress (saved, so that a resumed epoch reports the same
/// means as an uninterrupted one).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LossSums {
    /// Sum of the micro-batch losses.
    pub total: f64,
    /// Detection: the localisation part.
    pub loc: Option<f64>,
    /// Detection: the classification part.
    pub conf: Option<f64>,
    /// Micro-batches.
    pub batches: usize,
    /// Images.
    pub images: usize,
    /// Training samples skipped as unreadable.
    pub skipped: usize,
}

impl LossSums {
    /// Adds a step's sums (over all ranks); `parts`: the task reports detection's loss parts.
    pub fn add_step(&mut self, s: &crate::job::StepStats, parts: bool) {
        self.total += s.loss;
        if parts {
            self.loc = Some(self.loc.unwrap_or(0.0) + s.loc);
            self.conf = Some(self.conf.unwrap_or(0.0) + s.conf);
        }
        self.batches += s.shards as usize;
        self.images += s.images as usize;
    }

    /// `v` per micro-batch.
    pub fn mean(&self, v: f64) -> f64 {
        v / self.batches.max(1) as f64
    }
}

/// The training state; everything else a resume needs is recomputed from the config and seed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// The model trained (what evaluation and export check).
    pub model: ModelName,
    /// Optimizer steps taken.
    pub step: usize,
    /// `train.seed` of the run.
    pub seed: u64,
    /// Per-epoch metrics so far (for the CSV and plots after a resume).
    pub history: Vec<EpochMetrics>,
    /// The schedule segments, the current one last.
    pub segments: Vec<Segment>,
    /// The sums of the epoch in progress.
    pub epoch_sums: LossSums,
}

impl TrainState {
    /// A run at step 0 with `settings`.
    pub fn new(model: ModelName, settings: RunSettings) -> Self {
        let seed = settings.seed;
        let segments = vec![Segment { start_step: 0, start_epoch: 0, settings }];
        Self { model, step: 0, seed, history: Vec::new(), segments, epoch_sums: LossSums::default() }
    }

    /// The current segment.
    pub fn segment(&self) -> Option<&Segment> {
        self.segments.last()
    }

    /// Writes the state, `net` and `optim` to `path` atomically.
    pub fn save(&self, path: &Path, net: &Net, optim: &ModuleOptimizer) -> Result<(), TrainError> {
        let record_err = |message: String| TrainError::Record { path: path.into(), message };
        // `valid()` first: it folds BatchNorm's pending running-statistics update into the value
        // (a record of the training module would miss the latest update).
        let model = net.valid().into_record().into_bytes().map_err(|e| record_err(e.to_string()))?;
        let optimizer = optim.into_bytes().map_err(|e| record_err(e.to_string()))?;
        let state = serde_json::to_value(self).map_err(|e| record_err(e.to_string()))?;
        Checkpoint { state, model: model.to_vec(), optimizer: optimizer.to_vec() }.save(path)?;
        Ok(())
    }

    /// Reads the checkpoint at `path` into `net` and `optim`, checking it holds `model`.
    pub fn load(
        path: &Path,
        model: ModelName,
        net: Net,
        optim: ModuleOptimizer,
    ) -> Result<(Self, Net, ModuleOptimizer), TrainError> {
        let ckpt = Checkpoint::load(path)?;
        let net = zoo::registry::load_weights(&ckpt, path, model, net)?;
        let record_err = |message: String| TrainError::Record { path: path.into(), message };
        let optim = optim
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(ckpt.optimizer))
            .map_err(|e| record_err(format!("optimizer record: {e}")))?;
        let state = serde_json::from_value(ckpt.state).map_err(|e| record_err(format!("training state: {e}")))?;
        Ok((state, net, optim))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_each_setting_with_both_values() {
        let cfg = Config::parse(
            Path::new("c.toml"),
            "[model]\nname = \"face_m4\"\n[data]\nkind = \"wider\"\nroot = \"d\"\n[train]\nbatch_size = 4\n",
        )
        .unwrap();
        let a = RunSettings::new(&cfg, 7, 100);
        assert!(a.changes(&a).is_empty());
        let mut b = a.clone();
        b.batch_size = 2;
        b.data = "00000000000000ff".into();
        let changes = b.changes(&a);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(changes.contains(&("batch_size".into(), "2".into(), "4".into())), "{changes:?}");
    }
}
