//! Where a training step's time goes: every CPU kernel of this crate (and whoever else calls
//! [`timed`]) adds its wall time to a table keyed by operation, when profiling is on. Off, the
//! cost is one relaxed atomic load per call.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::conv::{ConvGeometry, ConvKind};

/// A profiled operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// A convolution's forward pass, by kind.
    ConvForward(ConvKind),
    /// A convolution's backward pass (all its gradients), by kind.
    ConvBackward(ConvKind),
    /// BatchNorm(+activation) forward (training or inference).
    BatchNormForward,
    /// BatchNorm(+activation) backward.
    BatchNormBackward,
    /// Another crate's operation, by name.
    Other(&'static str),
}

impl Op {
    /// The forward pass of convolution `g`.
    pub fn conv_forward(g: &ConvGeometry) -> Self {
        Self::ConvForward(g.kind())
    }

    /// The backward pass of convolution `g`.
    pub fn conv_backward(g: &ConvGeometry) -> Self {
        Self::ConvBackward(g.kind())
    }

    /// A name for tables.
    pub fn name(&self) -> String {
        match self {
            Self::ConvForward(k) => format!("conv {k:?} forward").to_lowercase(),
            Self::ConvBackward(k) => format!("conv {k:?} backward").to_lowercase(),
            Self::BatchNormForward => "batchnorm+act forward".into(),
            Self::BatchNormBackward => "batchnorm+act backward".into(),
            Self::Other(name) => (*name).into(),
        }
    }
}

static ON: AtomicBool = AtomicBool::new(false);
static TABLE: Mutex<BTreeMap<Op, (u64, f64)>> = Mutex::new(BTreeMap::new());

/// Starts (or stops) recording.
pub fn enable(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// Runs `f`, adding its wall time to `op` when recording.
pub fn timed<R>(op: Op, f: impl FnOnce() -> R) -> R {
    if !ON.load(Ordering::Relaxed) {
        return f();
    }
    let start = Instant::now();
    let r = f();
    let secs = start.elapsed().as_secs_f64();
    let mut table = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    let entry = table.entry(op).or_insert((0, 0.0));
    entry.0 += 1;
    entry.1 += secs;
    r
}

/// The table so far, `(operation, calls, seconds)`, and empties it.
pub fn take() -> Vec<(String, u64, f64)> {
    let mut table = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::take(&mut *table).into_iter().map(|(op, (calls, secs))| (op.name(), calls, secs)).collect()
}
