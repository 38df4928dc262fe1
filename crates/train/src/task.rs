//! What the training loop needs from a task (face detection or classification): its samples,
//! the loss of a micro-batch, and an evaluation.

use burn::prelude::*;

use crate::error::TrainError;
use zoo::Net;
use zoo::s3fd::ap::PrCurve;

/// A micro-batch's loss and, for detection, its localisation and classification parts.
pub struct StepLoss {
    /// The loss to differentiate.
    pub total: Tensor<1>,
    /// Detection: its localisation part.
    pub loc: Option<f64>,
    /// Detection: its classification part.
    pub conf: Option<f64>,
}

/// A validation pass's results.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    /// Mean validation loss.
    pub loss: f64,
    /// Detection: WIDER-protocol AP over all faces.
    pub ap: Option<f64>,
    /// WIDER FACE Easy / Medium / Hard AP, when the official ground-truth .mat files are there.
    pub ap_settings: Option<[f64; 3]>,
    /// Classification: top-1 accuracy.
    pub top1: Option<f64>,
    /// Classification: top-5 accuracy.
    pub top5: Option<f64>,
    /// Validation images skipped as unreadable (`data.skip_bad`), up front or when decoded.
    pub skipped: usize,
    /// Detection: the precision-recall curves, named (all faces, then Easy / Medium / Hard when
    /// the official ground truth is there).
    pub pr: Vec<(String, PrCurve)>,
    /// Classification: `confusion[true][predicted]` image counts.
    pub confusion: Option<Vec<Vec<u64>>>,
}

/// What the training loop needs of a task.
pub trait Task: Send + Sync {
    /// Training samples.
    fn len(&self) -> usize;
    /// No training samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The epoch whose augmentation the training samples draw.
    fn set_epoch(&self, epoch: u64);
    /// Training samples skipped as unreadable by this process so far (`data.skip_bad`), each
    /// replaced by the next readable one.
    fn skipped(&self) -> usize;
    /// Training images left out of the split up front because their header cannot be read.
    fn left_out(&self) -> usize {
        0
    }
    /// A hash of what the data order depends on: the training samples (paths, labels, boxes)
    /// and their pipeline; a resume checks it.
    fn fingerprint(&self) -> u64;
    /// The loss of `net` (on the autodiff `device`, whose plain device gets the batch).
    fn loss(&self, net: &Net, indices: &[usize], device: &Device) -> Result<StepLoss, TrainError>;
    /// Validation of `net` (already in evaluation mode).
    fn evaluate(&self, net: &Net) -> Result<Evaluation, TrainError>;
}

/// FNV-1a over `parts`, each followed by a separator.
pub fn fingerprint<P: AsRef<[u8]>>(parts: impl IntoIterator<Item = P>) -> u64 {
    parts.into_iter().fold(0xcbf2_9ce4_8422_2325u64, |h, part| {
        part.as_ref().iter().chain(&[0xff]).fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
    })
}

/// A thread pool of `workers` threads for decoding and augmentation.
pub fn loader_pool(workers: usize) -> Result<rayon::ThreadPool, TrainError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers.max(1))
        .build()
        .map_err(|e| TrainError::Dataset(format!("starting {workers} loader threads: {e}")))
}
