//! One file per checkpoint: a magic tag, the training state as JSON, the model and optimizer
//! as burnpack bytes, and a checksum over all of it, so a truncated or foreign file is a clear
//! error. Written to `<name>.tmp`, synced and renamed, so a kill never leaves half a checkpoint;
//! a kill between the write and the rename leaves a complete `.tmp`, which [`recover`] promotes.
//!
//! The JSON names the model (`"model": "face_m4"`), which is all that evaluation and export
//! read of it; the rest is the training loop's business.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::ModelName;

const MAGIC: &[u8; 8] = b"RNNPCKPT";
const VERSION: u32 = 1;

/// A checkpoint that cannot be read or is not the expected one; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The checkpoint.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not one of ours.
    #[error("{path}: not an rnnpool-rs checkpoint (no RNNPCKPT tag)")]
    Foreign {
        /// The file.
        path: PathBuf,
    },
    /// Written by another format version.
    #[error("{path}: checkpoint format version {found}, this build reads {VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// Cut short or changed after writing.
    #[error("{path}: truncated or corrupt checkpoint ({what})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Which part failed.
        what: String,
    },
    /// Holds another model than the config's.
    #[error("{path}: checkpoint of model `{found}`, but the config names `{expected}`")]
    WrongModel {
        /// The file.
        path: PathBuf,
        /// The model it holds.
        found: String,
        /// The config's model.
        expected: ModelName,
    },
}

/// A checkpoint's three parts.
pub struct Checkpoint {
    /// The training state as JSON; its `model` key names the model.
    pub state: serde_json::Value,
    /// The model record (burnpack bytes).
    pub model: Vec<u8>,
    /// The optimizer record (burnpack bytes; empty where none was saved).
    pub optimizer: Vec<u8>,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

impl Checkpoint {
    /// The model the checkpoint holds, as its JSON names it.
    pub fn model_name(&self) -> Option<&str> {
        self.state.get("model").and_then(|m| m.as_str())
    }

    /// An error unless the checkpoint (read from `path`) holds model `expected`.
    pub fn expect_model(&self, path: &Path, expected: ModelName) -> Result<(), CheckpointError> {
        match self.model_name() {
            Some(found) if found == expected.name() => Ok(()),
            found => Err(CheckpointError::WrongModel {
                path: path.into(),
                found: found.unwrap_or("(none)").into(),
                expected,
            }),
        }
    }

    /// Writes the checkpoint to `path` atomically (a temporary file, synced, then renamed).
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io { path: path.into(), source };
        let json = serde_json::to_vec(&self.state).map_err(|e| io(std::io::Error::other(e)))?;
        let mut buf = Vec::with_capacity(32 + json.len() + self.model.len() + self.optimizer.len());
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        for part in [&json[..], &self.model, &self.optimizer] {
            buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
            buf.extend_from_slice(part);
        }
        let sum = fnv1a(&buf);
        buf.extend_from_slice(&sum.to_le_bytes());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = tmp_path(path);
        let write = |buf: &[u8]| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(buf)?;
            f.sync_all()
        };
        if let Err(e) = write(&buf) {
            std::fs::remove_file(&tmp).ok();
            return Err(io(e));
        }
        test_hook_before_rename(path);
        std::fs::rename(&tmp, path).map_err(io)?;
        sync_dir(path).map_err(io)
    }

    /// Reads and checks the checkpoint at `path`.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let buf = std::fs::read(path).map_err(|source| CheckpointError::Io { path: path.into(), source })?;
        Self::from_bytes(path, &buf)
    }

    /// Checks and splits the bytes of a checkpoint file; `path` only names it in errors.
    pub fn from_bytes(path: &Path, buf: &[u8]) -> Result<Self, CheckpointError> {
        let corrupt = |what: &str| CheckpointError::Corrupt { path: path.into(), what: what.into() };
        if buf.len() < 12 || &buf[..8] != MAGIC {
            return Err(CheckpointError::Foreign { path: path.into() });
        }
        let version = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
        if version != VERSION {
            return Err(CheckpointError::Version { path: path.into(), found: version });
        }
        if buf.len() < 20 {
            return Err(corrupt("shorter than its header"));
        }
        let (body, tail) = buf.split_at(buf.len() - 8);
        let mut parts = Vec::with_capacity(3);
        let mut at = 12usize;
        for name in ["state", "model", "optimizer"] {
            let len_bytes: [u8; 8] = body
                .get(at..at + 8)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| corrupt(&format!("{name} length")))?;
            let len = u64::from_le_bytes(len_bytes) as usize;
            at += 8;
            let part = body.get(at..at.saturating_add(len)).ok_or_else(|| corrupt(&format!("{name} cut short")))?;
            parts.push(part.to_vec());
            at += len;
        }
        let sum = u64::from_le_bytes(tail.try_into().map_err(|_| corrupt("checksum"))?);
        if at != body.len() || fnv1a(body) != sum {
            return Err(corrupt("checksum mismatch"));
        }
        let optimizer = parts.pop().unwrap_or_default();
        let model = parts.pop().unwrap_or_default();
        let state = serde_json::from_slice(&parts[0]).map_err(|e| corrupt(&format!("state JSON: {e}")))?;
        Ok(Self { state, model, optimizer })
    }

    /// The optimizer step the state records (`"step"`), 0 where it has none.
    pub fn step(&self) -> u64 {
        self.state.get("step").and_then(|s| s.as_u64()).unwrap_or(0)
    }
}

/// Where [`Checkpoint::save`] writes before renaming: `<path>.tmp`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Makes a rename in `path`'s folder durable.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Tests of kills at the worst moment set `RNNPOOL_TEST_ABORT_BEFORE_RENAME` to a checkpoint's
/// file name and, optionally, which of its saves (`best.ckpt:2`, default the first): the
/// process aborts after writing that save's `.tmp` and before the rename.
fn test_hook_before_rename(path: &Path) {
    static SAVES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let Ok(spec) = std::env::var("RNNPOOL_TEST_ABORT_BEFORE_RENAME") else { return };
    let (name, nth) = match spec.split_once(':') {
        Some((name, nth)) => (name, nth.parse().unwrap_or(1)),
        None => (spec.as_str(), 1),
    };
    if path.file_name().and_then(|n| n.to_str()) != Some(name) {
        return;
    }
    if SAVES.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == nth {
        eprintln!("RNNPOOL_TEST_ABORT_BEFORE_RENAME: aborting before renaming {}", path.display());
        std::process::abort();
    }
}

/// What [`recover`] did with a checkpoint's leftover `.tmp`.
#[derive(Clone, Debug, PartialEq)]
pub enum Recovery {
    /// No `.tmp` was there.
    Nothing,
    /// A complete `.tmp` newer than the checkpoint (or with none beside it) became the
    /// checkpoint; its step.
    Promoted {
        /// The step it holds.
        step: u64,
    },
    /// A complete `.tmp` no newer than the checkpoint was removed.
    RemovedOlder,
    /// An incomplete or corrupt `.tmp` was removed; why it was refused.
    RemovedIncomplete {
        /// The reason.
        why: String,
    },
}

/// Settles a checkpoint's leftover `.tmp` (a kill between writing and renaming, or during the
/// write): promoted when it is complete (its checksum verifies) and newer than `path` by step,
/// removed otherwise.
pub fn recover(path: &Path) -> Result<Recovery, CheckpointError> {
    let tmp = tmp_path(path);
    if !tmp.exists() {
        return Ok(Recovery::Nothing);
    }
    let io = |source| CheckpointError::Io { path: tmp.clone(), source };
    let outcome = match Checkpoint::load(&tmp) {
        Ok(candidate) => {
            let current = Checkpoint::load(path).ok().map(|c| c.step());
            if current.is_none_or(|step| candidate.step() > step) {
                std::fs::rename(&tmp, path).map_err(io)?;
                sync_dir(path).map_err(io)?;
                return Ok(Recovery::Promoted { step: candidate.step() });
            }
            Recovery::RemovedOlder
        }
        Err(e) => Recovery::RemovedIncomplete { why: e.to_string() },
    };
    std::fs::remove_file(&tmp).map_err(io)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            state: serde_json::json!({ "model": "face_m4", "step": 7 }),
            model: vec![1, 2, 3, 4, 5],
            optimizer: vec![9; 100],
        }
    }

    #[test]
    fn round_trips_and_rejects_truncated_or_foreign_files() {
        let dir = std::env::temp_dir().join(format!("ckpt-test-{}", std::process::id()));
        let p = dir.join("a.ckpt");
        sample().save(&p).unwrap();
        let back = Checkpoint::load(&p).unwrap();
        assert_eq!(back.state, sample().state);
        assert!(back.expect_model(&p, ModelName::FaceM4).is_ok());
        assert_eq!((back.model, back.optimizer), (sample().model, sample().optimizer));
        assert!(!dir.join("a.ckpt.tmp").exists());
        assert_eq!(tmp_path(&p), dir.join("a.ckpt.tmp"));
        let e = Checkpoint::load(&p).unwrap().expect_model(&p, ModelName::FaceC).unwrap_err().to_string();
        assert!(e.contains("a.ckpt") && e.contains("`face_m4`") && e.contains("`face_c`"), "{e}");

        let bytes = std::fs::read(&p).unwrap();
        for cut in [bytes.len() - 1, bytes.len() - 20, 30, 14] {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let e = Checkpoint::load(&p).err().unwrap().to_string();
            assert!(e.contains("a.ckpt") && e.contains("corrupt"), "cut {cut}: {e}");
        }
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        std::fs::write(&p, &flipped).unwrap();
        assert!(Checkpoint::load(&p).err().unwrap().to_string().contains("checksum"));
        std::fs::write(&p, b"PK\x03\x04 a zip file, say").unwrap();
        assert!(matches!(Checkpoint::load(&p), Err(CheckpointError::Foreign { .. })));
        std::fs::remove_dir_all(&dir).ok();
    }

    fn at_step(step: u64) -> Checkpoint {
        Checkpoint { state: serde_json::json!({ "model": "face_m4", "step": step }), ..sample() }
    }

    #[test]
    fn leftover_tmp_files_are_promoted_when_complete_and_newer_else_removed() {
        let dir = std::env::temp_dir().join(format!("ckpt-recover-{}", std::process::id()));
        let p = dir.join("best.ckpt");
        let tmp = tmp_path(&p);
        assert_eq!(recover(&p).unwrap(), Recovery::Nothing);
        at_step(10).save(&p).unwrap();
        at_step(20).save(&tmp).unwrap();
        assert_eq!(recover(&p).unwrap(), Recovery::Promoted { step: 20 });
        assert_eq!(Checkpoint::load(&p).unwrap().step(), 20);
        assert!(!tmp.exists());
        at_step(5).save(&tmp).unwrap();
        assert_eq!(recover(&p).unwrap(), Recovery::RemovedOlder);
        assert_eq!((Checkpoint::load(&p).unwrap().step(), tmp.exists()), (20, false));
        at_step(30).save(&tmp).unwrap();
        let bytes = std::fs::read(&tmp).unwrap();
        std::fs::write(&tmp, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(recover(&p).unwrap(), Recovery::RemovedIncomplete { .. }));
        assert_eq!((Checkpoint::load(&p).unwrap().step(), tmp.exists()), (20, false));
        std::fs::remove_file(&p).unwrap();
        at_step(3).save(&tmp).unwrap();
        assert_eq!(recover(&p).unwrap(), Recovery::Promoted { step: 3 });
        std::fs::remove_dir_all(&dir).ok();
    }
}
