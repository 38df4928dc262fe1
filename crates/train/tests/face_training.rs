//! End-to-end face training on the bundled WIDER-format sample: RNNPool-Face-M4 learns the 4
//! training photos (AP on them).

mod common;

use common::{config, tmp};
use train::trainer::{self, LAST, RunOptions};

#[test]
fn rnnpool_face_m4_memorises_the_four_training_photos() {
    let out = tmp("learn");
    let cfg = config(&out, "flex", 150);
    let summary = trainer::train(&cfg, &RunOptions { quiet: true, ..Default::default() }).unwrap();
    let last = summary.history.last().unwrap();
    let ap = last.val_ap.unwrap();
    eprintln!("AP on the 4 training photos after {} steps: {ap:.4} (train loss {:.4})", summary.steps, last.train_loss);
    assert!(ap >= 0.9, "AP {ap} < 0.9");
    assert!(last.train_loss < summary.history[0].train_loss / 5.0);
    for f in ["metrics.csv", "metrics.json", "curves.png", LAST, trainer::BEST] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    std::fs::remove_dir_all(&out).ok();
}
