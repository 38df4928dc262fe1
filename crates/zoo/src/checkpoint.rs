//! One file per checkpoint: a magic tag, the training state as JSON, the model and optimizer
//! as burnpack bytes, and a checksum over all of it, so a truncated or foreign file is a clear
//! error. Written to a temporary file and renamed, so a kill never leaves half a checkpoint.
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
        let tmp = path.with_extension("ckpt.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&buf).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads and checks the checkpoint at `path`.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let buf = std::fs::read(path).map_err(|source| CheckpointError::Io { path: path.into(), source })?;
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
}
