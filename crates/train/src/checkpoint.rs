//! One file per checkpoint: a magic tag, the training state as JSON, the model and optimizer
//! as burnpack bytes, and a checksum over all of it, so a truncated or foreign file is a clear
//! error. Written to a temporary file and renamed, so a kill never leaves half a checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"RNNPCKPT";
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not an rnnpool-rs checkpoint (no RNNPCKPT tag)")]
    Foreign { path: PathBuf },
    #[error("{path}: checkpoint format version {found}, this build reads {VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: truncated or corrupt checkpoint ({what})")]
    Corrupt { path: PathBuf, what: String },
    #[error("{path}: checkpoint of model `{found}`, but the config trains `{expected}`")]
    WrongModel { path: PathBuf, found: String, expected: String },
}

/// Where training stands; everything else it needs is recomputed from the config and seed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    pub model: String,
    /// Optimizer steps taken.
    pub step: usize,
    pub seed: u64,
    /// Per-epoch metrics so far (for the CSV/plot after a resume).
    pub history: Vec<crate::metrics::EpochMetrics>,
}

pub struct Checkpoint {
    pub state: TrainState,
    pub model: Vec<u8>,
    pub optimizer: Vec<u8>,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

impl Checkpoint {
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
            let len_bytes: [u8; 8] =
                body.get(at..at + 8).and_then(|s| s.try_into().ok()).ok_or_else(|| corrupt(&format!("{name} length")))?;
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
        let state: TrainState =
            serde_json::from_slice(&parts[0]).map_err(|e| corrupt(&format!("state JSON: {e}")))?;
        Ok(Self { state, model, optimizer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            state: TrainState { model: "face_m4".into(), step: 7, seed: 3, history: vec![] },
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
        assert_eq!((back.model, back.optimizer), (sample().model, sample().optimizer));
        assert!(!dir.join("a.ckpt.tmp").exists());

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
