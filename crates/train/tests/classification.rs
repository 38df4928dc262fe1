//! The classification path: the small MobileNetV2-style classifier reaches 85 % test accuracy
//! on Fashion-MNIST in one epoch, with RNNPool after its stem and with average pooling in its
//! place (configs/fashion_mnist_{rnnpool,avgpool}.toml); MobileNetV2-RNNPool trains on photos in
//! the ImageNet folder layout.

mod common;

use std::path::Path;

use train::Config;
use train::trainer::{self, RunOptions};

/// One epoch of `name` with our loop or burn-train's `Learner`; its test top-1.
fn top1_after_one_epoch(name: &str, burn_learner: bool) -> Option<f64> {
    let mut cfg = common::fashion_config(name)?;
    let learner = if burn_learner { "burn-train" } else { "ours" };
    let out = std::env::temp_dir().join(format!("{name}-{learner}-{}", std::process::id()));
    cfg.output.dir = out.clone();
    let start = std::time::Instant::now();
    let opts = RunOptions { quiet: true, ..Default::default() };
    let s = if burn_learner {
        train::learner::train(&cfg, &opts, train::dashboard::Display::Quiet).unwrap()
    } else {
        trainer::train(&cfg, &opts).unwrap()
    };
    let last = s.history.last().unwrap();
    let top1 = last.val_top1.unwrap();
    eprintln!(
        "{name} ({learner}): test top-1 {top1:.4}, top-5 {:.4}, {:.0} s",
        last.val_top5.unwrap(),
        start.elapsed().as_secs_f64()
    );
    let confusion = image::open(out.join("confusion.png"));
    assert!(confusion.is_ok_and(|img| img.width() >= 800), "{name} ({learner}): no confusion matrix");
    std::fs::remove_dir_all(&out).ok();
    Some(top1)
}

#[test]
fn both_poolings_reach_85_percent_on_fashion_mnist_and_burn_trains_learner_matches_our_loop() {
    let Some(ours) = top1_after_one_epoch("fashion_mnist_rnnpool", false) else { return };
    assert!(ours >= 0.85, "RNNPool: top-1 {ours} < 0.85");
    let Some(average) = top1_after_one_epoch("fashion_mnist_avgpool", false) else { return };
    assert!(average >= 0.85, "average pooling: top-1 {average} < 0.85");
    let Some(learner) = top1_after_one_epoch("fashion_mnist_rnnpool", true) else { return };
    assert!(
        (learner - ours).abs() <= 0.01,
        "burn-train's Learner {learner} vs our loop {ours}: more than 1 point apart"
    );
}

#[test]
fn mobilenetv2_rnnpool_trains_on_an_imagenet_tree_and_reports_top_k() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/wider_sample");
    let list = data::wider::WiderFace::new(&sample).split("train").unwrap();
    let root = std::env::temp_dir().join(format!("imagenet-train-{}", std::process::id()));
    for split in ["train", "val"] {
        for (i, a) in list.images.iter().enumerate() {
            let dir = root.join(split).join(["n01000001", "n01000002"][i % 2]);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(&a.image, dir.join(format!("{i}.JPEG"))).unwrap();
        }
    }
    let text = format!(
        "[model]\nname = \"mobilenetv2_rnnpool\"\n[data]\nkind = \"imagenet\"\nroot = \"{}\"\nimage_size = 64\n\
         [train]\nepochs = 2\nbatch_size = 2\nlr = 0.01\nwarmup_epochs = 0\n[output]\ndir = \"{}\"\n",
        root.display(),
        root.join("run").display()
    );
    let cfg = Config::parse(Path::new("imagenet.toml"), &text).unwrap();
    let s = trainer::train(&cfg, &RunOptions { quiet: true, ..Default::default() }).unwrap();
    assert_eq!((s.steps, s.history.len()), (4, 2));
    let last = s.history.last().unwrap();
    // Two classes: top-5 is always right, top-1 is a fraction of the 4 images.
    assert_eq!(last.val_top5, Some(1.0));
    assert!([0.0, 0.25, 0.5, 0.75, 1.0].contains(&last.val_top1.unwrap()));
    assert!(last.train_loss.is_finite() && last.val_loss.unwrap().is_finite());
    std::fs::remove_dir_all(&root).ok();
}

/// burn-train's `Learner` trains a config alike each time, loader threads or not: the same
/// batches in the same order, so the same validation loss to the last bit.
#[test]
fn burn_trains_learner_repeats_itself_with_two_loader_threads() {
    let Some(mut cfg) = common::fashion_config("fashion_mnist_rnnpool") else { return };
    (cfg.data.limit, cfg.train.batch_size, cfg.train.workers) = (Some(384), 16, 2);
    let mut run = |i: usize| {
        cfg.output.dir = std::env::temp_dir().join(format!("learner-repeat-{i}-{}", std::process::id()));
        let opts = RunOptions { quiet: true, ..Default::default() };
        let s = train::learner::train(&cfg, &opts, train::dashboard::Display::Quiet).unwrap();
        std::fs::remove_dir_all(&s.out_dir).ok();
        let last = s.history.last().unwrap().clone();
        (last.val_loss.unwrap(), last.val_top1.unwrap())
    };
    let (first, second) = (run(0), run(1));
    assert!(first.0.is_finite(), "validation loss {}", first.0);
    assert_eq!(first, second, "two runs of one config: (validation loss, top-1)");
}
