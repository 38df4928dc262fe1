//! The train crate's errors; each names what it is about (file, field, step).

use std::path::PathBuf;

/// Everything that can stop a training run or an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Configs, models, weights and checkpoints.
    #[error(transparent)]
    Zoo(#[from] zoo::ZooError),
    /// The data set's files.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// Running a model.
    #[error("model: {0}")]
    Model(#[from] rnnpool_core::RnnPoolError),
    /// A checkpoint file.
    #[error(transparent)]
    Checkpoint(#[from] zoo::checkpoint::CheckpointError),
    /// Reading or writing a file of the run.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A checkpoint's record that cannot be read or does not fit.
    #[error("{path}: {message}")]
    Record {
        /// The checkpoint.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The data loader.
    #[error("{0}")]
    Dataset(String),
    /// Another process trains into the same folder.
    #[error("{path}: held by another run ({}); wait for it to finish or pass another --out", holder(*pid))]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's process id, as it wrote it.
        pid: Option<u32>,
    },
    /// A new run into a folder holding an earlier run's checkpoints.
    #[error(
        "{path}: the run folder holds an earlier run; pass --resume to continue it or --overwrite to \
         delete its checkpoints and metrics and start over"
    )]
    RunExists {
        /// The checkpoint found.
        path: PathBuf,
    },
    /// A resume whose settings differ from the checkpoint's.
    #[error(
        "{path}: --resume with other settings than the run's ({changes}); the data order and schedule would \
         not continue the same run. Restore them, or pass --allow-changes to start a new schedule segment \
         at the next epoch"
    )]
    ResumeChanged {
        /// The checkpoint.
        path: PathBuf,
        /// `name: before -> now`, comma-separated.
        changes: String,
    },
    /// The loss became NaN or infinite.
    #[error(
        "the training loss is {loss} at step {step} (epoch {epoch}, learning rate {lr:.3e}); training stopped. \
         The last good checkpoint stays in {checkpoint}; lower train.lr or check the data"
    )]
    NonFinite {
        /// The loss.
        loss: f64,
        /// The step (from 1).
        step: usize,
        /// The epoch (from 1).
        epoch: usize,
        /// The learning rate of the step.
        lr: f64,
        /// The latest checkpoint.
        checkpoint: PathBuf,
    },
    /// The MPI job could not be joined.
    #[error("MPI: {0}")]
    Mpi(String),
    /// `--learner burn-train` cannot do what was asked.
    #[error("--learner burn-train: {0}")]
    Learner(String),
    /// Stopped by SIGINT, SIGTERM, SIGHUP or the dashboard after writing a checkpoint.
    #[error("interrupted: stopped after step {step} and wrote {checkpoint}; continue with --resume")]
    Interrupted {
        /// Steps taken.
        step: usize,
        /// The checkpoint written.
        checkpoint: PathBuf,
    },
}

fn holder(pid: Option<u32>) -> String {
    pid.map_or("process id unknown".into(), |p| format!("pid {p}"))
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
