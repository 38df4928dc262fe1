//! A run folder is owned by one run at a time: a lock file held while it trains (the operating
//! system drops the lock when the process dies, however it dies), leftovers of a killed write
//! settled on start, and an earlier run's checkpoints never replaced without `--resume` or
//! `--overwrite`.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use zoo::checkpoint::{Recovery, recover};

use crate::error::TrainError;

/// The latest checkpoint of a run folder.
pub const LAST: &str = "last.ckpt";
/// The checkpoint with the lowest validation loss.
pub const BEST: &str = "best.ckpt";
/// The lock file.
pub const LOCK: &str = "run.lock";
/// What a run writes besides its checkpoints (`--overwrite` removes them with the checkpoints).
pub const OUTPUTS: [&str; 5] = ["metrics.csv", "metrics.json", "curves.png", "pr_curve.png", "confusion.png"];

/// A run folder, locked for as long as this value lives.
#[derive(Debug)]
pub struct RunDir {
    /// The folder.
    pub path: PathBuf,
    /// Holds the lock (released when closed); `None` for an MPI rank other than 0.
    _lock: Option<File>,
}

/// What to do with a folder that holds an earlier run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Existing {
    /// An error (the default: nothing is replaced unasked).
    #[default]
    Refuse,
    /// Continue it (`--resume`).
    Resume,
    /// Delete its checkpoints and metrics and start over (`--overwrite`).
    Overwrite,
}

impl RunDir {
    /// Creates and locks `path`, settles leftover temporary files, and applies `existing` to an
    /// earlier run's checkpoints.
    pub fn open(path: &Path, existing: Existing) -> Result<Self, TrainError> {
        std::fs::create_dir_all(path).map_err(TrainError::io(path))?;
        let lock = lock(&path.join(LOCK))?;
        let dir = Self { path: path.into(), _lock: Some(lock) };
        dir.settle_leftovers()?;
        match existing {
            Existing::Resume => {}
            Existing::Refuse => dir.refuse_earlier_run()?,
            Existing::Overwrite => dir.remove_earlier_run()?,
        }
        Ok(dir)
    }

    /// `name` in the folder.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Promotes or removes each checkpoint's leftover `.tmp`, and removes other `.tmp` files
    /// (metrics are rewritten from the checkpoint), saying what it did.
    fn settle_leftovers(&self) -> Result<(), TrainError> {
        for name in [LAST, BEST] {
            let path = self.join(name);
            match recover(&path)? {
                Recovery::Nothing => {}
                Recovery::Promoted { step } => {
                    tracing::warn!(path = %path.display(), step, "a complete checkpoint left by a killed run was promoted")
                }
                Recovery::RemovedOlder => {
                    tracing::warn!(path = %path.display(), "removed a leftover temporary checkpoint older than this one")
                }
                Recovery::RemovedIncomplete { why } => {
                    tracing::warn!(path = %path.display(), "removed an incomplete temporary checkpoint ({why})")
                }
            }
        }
        let entries = std::fs::read_dir(&self.path).map_err(TrainError::io(&self.path))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".tmp")) {
                std::fs::remove_file(&p).map_err(TrainError::io(&p))?;
                tracing::warn!(path = %p.display(), "removed a temporary file left by a killed run");
            }
        }
        Ok(())
    }

    fn earlier_checkpoints(&self) -> Vec<PathBuf> {
        [LAST, BEST].iter().map(|n| self.join(n)).filter(|p| p.exists()).collect()
    }

    fn refuse_earlier_run(&self) -> Result<(), TrainError> {
        match self.earlier_checkpoints().first() {
            None => Ok(()),
            Some(found) => Err(TrainError::RunExists { path: found.clone() }),
        }
    }

    /// The folder of a run that rank 0 of an MPI job holds: read, never locked or written.
    pub fn follow(path: &Path) -> Self {
        Self { path: path.into(), _lock: None }
    }

    fn remove_earlier_run(&self) -> Result<(), TrainError> {
        let outputs = OUTPUTS.iter().map(|n| self.join(n)).filter(|p| p.exists());
        for p in self.earlier_checkpoints().into_iter().chain(outputs) {
            std::fs::remove_file(&p).map_err(TrainError::io(&p))?;
            tracing::warn!(path = %p.display(), "--overwrite: removed");
        }
        let logs = self.join(crate::dashboard::LOG_DIR);
        if logs.is_dir() {
            std::fs::remove_dir_all(&logs).map_err(TrainError::io(&logs))?;
            tracing::warn!(path = %logs.display(), "--overwrite: removed");
        }
        Ok(())
    }
}

/// Locks `path` for this process and writes its pid there; an error naming the holder's pid
/// when another process holds it.
fn lock(path: &Path) -> Result<File, TrainError> {
    let io = TrainError::io(path);
    let mut file = File::options().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            file.read_to_string(&mut holder).ok();
            let pid = holder.trim().parse::<u32>().ok();
            return Err(TrainError::Locked { path: path.into(), pid });
        }
        Err(TryLockError::Error(e)) => return Err(TrainError::io(path)(e)),
    }
    let write_pid = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "{}", std::process::id())?;
        f.flush()
    };
    write_pid(&mut file).map_err(TrainError::io(path))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("run-dir-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        dir
    }

    #[test]
    fn a_second_opener_is_refused_with_the_holders_pid_until_the_first_closes() {
        let dir = fresh("lock");
        let first = RunDir::open(&dir, Existing::Refuse).unwrap();
        let e = RunDir::open(&dir, Existing::Resume).unwrap_err().to_string();
        assert!(e.contains(&format!("pid {}", std::process::id())) && e.contains("run.lock"), "{e}");
        drop(first);
        assert!(RunDir::open(&dir, Existing::Resume).is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_earlier_run_is_refused_resumed_or_overwritten() {
        let dir = fresh("existing");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(LAST), b"x").unwrap();
        std::fs::write(dir.join("metrics.csv"), b"epoch\n").unwrap();
        std::fs::write(dir.join("metrics.csv.tmp"), b"half").unwrap();
        let e = RunDir::open(&dir, Existing::Refuse).unwrap_err().to_string();
        assert!(e.contains("last.ckpt") && e.contains("--resume") && e.contains("--overwrite"), "{e}");
        assert!(!dir.join("metrics.csv.tmp").exists(), "leftover .tmp files are removed");
        assert!(RunDir::open(&dir, Existing::Resume).is_ok());
        assert!(dir.join(LAST).exists());
        drop(RunDir::open(&dir, Existing::Overwrite).unwrap());
        assert!(!dir.join(LAST).exists() && !dir.join("metrics.csv").exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
