//! Where a run stands, as its checkpoints record it: the step, the seed and the per-epoch
//! metrics, with the model and optimizer records beside them in one `zoo::Checkpoint`.

use std::path::Path;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};
use zoo::Checkpoint;
use zoo::Net;
use zoo::config::ModelName;

use crate::error::TrainError;
use crate::metrics::EpochMetrics;

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
}

impl TrainState {
    /// A run at step 0.
    pub fn new(model: ModelName, seed: u64) -> Self {
        Self { model, step: 0, seed, history: Vec::new() }
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
