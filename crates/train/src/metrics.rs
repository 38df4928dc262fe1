//! Per-epoch metrics: kept in the checkpoint, written as `metrics.csv` and `metrics.json`
//! (atomically) and drawn as `curves.png`.

use std::path::Path;

use image::{Rgb, RgbImage};
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

/// `metrics.csv`, `metrics.json` and `curves.png` in `dir`.
pub fn write_all(dir: &Path, rows: &[EpochMetrics]) -> std::io::Result<()> {
    write_atomic(&dir.join("metrics.csv"), to_csv(rows).as_bytes())?;
    let json = serde_json::to_vec_pretty(rows).map_err(std::io::Error::other)?;
    write_atomic(&dir.join("metrics.json"), &json)?;
    let mut png = Vec::new();
    plot(rows).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).map_err(std::io::Error::other)?;
    write_atomic(&dir.join("curves.png"), &png)
}

/// Training loss (red) and validation loss (blue), each scaled to its own range, and the
/// validation AP / top-1 (green, 0..1) over epochs, on a grid.
pub fn plot(rows: &[EpochMetrics]) -> RgbImage {
    let (w, h, m) = (640u32, 360u32, 30u32);
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    for i in 0..=4 {
        let y = m + i * (h - 2 * m) / 4;
        for x in m..w - m {
            img.put_pixel(x, y, Rgb([225, 225, 225]));
        }
    }
    let series: [(Vec<Option<f64>>, Rgb<u8>, bool); 3] = [
        (rows.iter().map(|r| Some(r.train_loss)).collect(), Rgb([220, 40, 40]), false),
        (rows.iter().map(|r| r.val_loss).collect(), Rgb([40, 80, 220]), false),
        (rows.iter().map(|r| r.val_ap.or(r.val_top1)).collect(), Rgb([30, 160, 60]), true),
    ];
    let n = rows.len().max(2) - 1;
    for (values, colour, unit) in series {
        let finite: Vec<f64> = values.iter().flatten().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            continue;
        }
        let (lo, hi) =
            if unit { (0.0, 1.0) } else { finite.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v))) };
        let span = if hi > lo { hi - lo } else { 1.0 };
        let point = |i: usize, v: f64| {
            let x = m as f64 + i as f64 * (w - 2 * m) as f64 / n as f64;
            let y = (h - m) as f64 - (v - lo) / span * (h - 2 * m) as f64;
            (x, y)
        };
        let pts: Vec<(f64, f64)> =
            values.iter().enumerate().filter_map(|(i, v)| v.filter(|v| v.is_finite()).map(|v| point(i, v))).collect();
        for pair in pts.windows(2) {
            let steps = ((pair[1].0 - pair[0].0).abs().max((pair[1].1 - pair[0].1).abs()) as usize).max(1);
            for s in 0..=steps {
                let t = s as f64 / steps as f64;
                let (x, y) = (pair[0].0 + t * (pair[1].0 - pair[0].0), pair[0].1 + t * (pair[1].1 - pair[0].1));
                for dy in 0..2 {
                    let (px, py) = (x.round() as u32, (y.round() as u32 + dy).min(h - 1));
                    if px < w {
                        img.put_pixel(px, py, colour);
                    }
                }
            }
        }
        for &(x, y) in &pts {
            for d in 0..9u32 {
                let (px, py) = ((x as u32 + d % 3).saturating_sub(1), (y as u32 + d / 3).saturating_sub(1));
                if px < w && py < h {
                    img.put_pixel(px, py, colour);
                }
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_json_and_png_are_written() {
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
        let png = image::open(dir.join("curves.png")).unwrap().to_rgb8();
        assert!(png.pixels().any(|p| *p == Rgb([220, 40, 40])) && png.pixels().any(|p| *p == Rgb([30, 160, 60])));
        std::fs::remove_dir_all(&dir).ok();
    }
}
