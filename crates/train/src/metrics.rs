//! Per-epoch metrics: kept in the checkpoint, written as `metrics.csv` and `metrics.json`
//! (atomically); [`crate::plots`] draws them.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One epoch's row of `metrics.csv`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Optimizer steps taken at its end.
    pub step: usize,
    /// The learning rate of its last step.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Detection: localisation and classification parts of the training loss.
    pub train_loc: Option<f64>,
    /// Detection: mean classification loss.
    pub train_conf: Option<f64>,
    /// Mean validation loss, when evaluated.
    pub val_loss: Option<f64>,
    /// Detection: WIDER-protocol AP on the validation split.
    pub val_ap: Option<f64>,
    /// Classification: top-1 / top-5 accuracy on the validation split.
    pub val_top1: Option<f64>,
    /// Classification: top-5 accuracy.
    pub val_top5: Option<f64>,
    /// Training throughput.
    pub images_per_s: f64,
    /// Training images skipped as unreadable this epoch (`data.skip_bad`).
    #[serde(default)]
    pub train_skipped: usize,
    /// Validation images skipped as unreadable.
    #[serde(default)]
    pub val_skipped: usize,
}

impl EpochMetrics {
    /// One line for the terminal.
    pub fn summary(&self) -> String {
        let opt = |name: &str, v: Option<f64>| v.map(|v| format!(", {name} {v:.4}")).unwrap_or_default();
        let skipped = self.train_skipped + self.val_skipped;
        let skipped = if skipped > 0 {
            format!(", skipped {} train / {} val unreadable images", self.train_skipped, self.val_skipped)
        } else {
            String::new()
        };
        format!(
            "epoch {}: train loss {:.4}{}{}{}{}{skipped}",
            self.epoch,
            self.train_loss,
            opt("val loss", self.val_loss),
            opt("val AP", self.val_ap),
            opt("top-1", self.val_top1),
            opt("top-5", self.val_top5)
        )
    }
}

const COLUMNS: [&str; 13] = [
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_loc",
    "train_conf",
    "val_loss",
    "val_ap",
    "val_top1",
    "val_top5",
    "images_per_s",
    "train_skipped",
    "val_skipped",
];

fn cell(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.6}")).unwrap_or_default()
}

/// The rows as CSV with a header.
pub fn to_csv(rows: &[EpochMetrics]) -> String {
    let mut out = COLUMNS.join(",") + "\n";
    for r in rows {
        let cells = [
            r.epoch.to_string(),
            r.step.to_string(),
            format!("{:.6e}", r.lr),
            format!("{:.6}", r.train_loss),
            cell(r.train_loc),
            cell(r.train_conf),
            cell(r.val_loss),
            cell(r.val_ap),
            cell(r.val_top1),
            cell(r.val_top5),
            format!("{:.2}", r.images_per_s),
            r.train_skipped.to_string(),
            r.val_skipped.to_string(),
        ];
        out += &(cells.join(",") + "\n");
    }
    out
}

/// Writes `bytes` to `path` through `<path>.tmp` and a rename; a failed write (a full disk)
/// removes the temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = zoo::checkpoint::tmp_path(path);
    if let Err(e) = std::fs::write(&tmp, bytes) {
        std::fs::remove_file(&tmp).ok();
        return Err(e);
    }
    std::fs::rename(tmp, path)
}

/// `metrics.csv` and `metrics.json` in `dir`.
pub fn write_all(dir: &Path, rows: &[EpochMetrics]) -> std::io::Result<()> {
    write_atomic(&dir.join("metrics.csv"), to_csv(rows).as_bytes())?;
    let json = serde_json::to_vec_pretty(rows).map_err(std::io::Error::other)?;
    write_atomic(&dir.join("metrics.json"), &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_are_written() {
        let rows: Vec<EpochMetrics> = (0..3)
            .map(|e| EpochMetrics {
                epoch: e,
                train_loss: 3.0 - e as f64,
                val_ap: Some(0.3 * e as f64),
                ..Default::default()
            })
            .collect();
        let csv = to_csv(&rows);
        assert!(csv.starts_with("epoch,step,lr,train_loss"));
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.lines().nth(3).unwrap().contains(",0.600000,"));
        let dir = std::env::temp_dir().join(format!("metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_all(&dir, &rows).unwrap();
        let back: Vec<EpochMetrics> =
            serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
        assert_eq!(back, rows);
        std::fs::remove_dir_all(&dir).ok();
    }
}
