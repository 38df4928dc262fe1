//! What every augmented data set shares: the seed and epoch that seed each sample's random
//! stream, and the policy for unreadable samples (fail, or skip to the next and count).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use burn::data::dataset::DatasetError;

use crate::DataError;
use crate::augment::AugRng;

/// Per-sample seeding and bad-sample skipping shared by the datasets: a sample draws from `(seed, epoch, index)`.
#[derive(Debug)]
pub struct EpochDraw {
    seed: u64,
    epoch: AtomicU64,
    skip_bad: bool,
    skipped: AtomicUsize,
}

impl EpochDraw {
    /// Seeded by `seed`, at epoch 0.
    pub fn new(seed: u64) -> Self {
        Self { seed, epoch: AtomicU64::new(0), skip_bad: false, skipped: AtomicUsize::new(0) }
    }

    /// Skip and count unreadable samples instead of failing.
    pub fn set_skip_bad(&mut self, skip: bool) {
        self.skip_bad = skip;
    }

    /// Whether unreadable samples are skipped.
    pub fn skip_bad(&self) -> bool {
        self.skip_bad
    }

    /// The epoch samples draw from.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// Samples skipped so far because they could not be read.
    pub fn skipped(&self) -> usize {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The random stream of sample `index` in the current epoch.
    pub fn rng(&self, index: usize) -> AugRng {
        AugRng::for_sample(self.seed, self.epoch.load(Ordering::Relaxed), index as u64)
    }

    /// `make(index)`, or when skipping is on and it fails, the next sample that works (once
    /// round the `len` samples at most).
    pub fn get<T>(
        &self,
        index: usize,
        len: usize,
        make: impl Fn(usize) -> Result<T, DataError>,
    ) -> Result<T, DatasetError> {
        let mut k = 0;
        loop {
            match make((index + k) % len.max(1)) {
                Ok(item) => return Ok(item),
                Err(_) if self.skip_bad && k + 1 < len => {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    k += 1;
                }
                Err(e) => return Err(DatasetError::new(e)),
            }
        }
    }
}
