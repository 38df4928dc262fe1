//! A classifier trained by `train` and exported by `export`: the int8 model agrees with the
//! float one on Fashion-MNIST's test images.

use std::path::PathBuf;

use export::pipeline::{Comparison, ExportOptions, export};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rnnpool-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn int8_classifier_agrees_with_float_on_fashion_mnist() {
    if !std::path::Path::new(data::fashion_mnist::DEBIAN_DIR).exists() {
        eprintln!("{} missing (apt-get install dataset-fashion-mnist): not run", data::fashion_mnist::DEBIAN_DIR);
        return;
    }
    // A short training run (6000 images, one epoch, ~190 steps) gives a classifier worth comparing.
    let config = repo().join("configs/fashion_mnist_rnnpool.toml");
    let run = tmp("fashion-train");
    let mut cfg = zoo::Config::load(&config).unwrap();
    cfg.output.dir = run.clone();
    cfg.data.limit = Some(6000);
    cfg.train.batch_size = 32;
    cfg.train.epochs = 1;
    train::trainer::train(&cfg, &train::trainer::RunOptions { quiet: true, ..Default::default() }).unwrap();
    let out = tmp("fashion-export");
    let opts = ExportOptions {
        config,
        checkpoint: Some(run.join("last.ckpt")),
        calibration: data::fashion_mnist::DEBIAN_DIR.into(),
        calibration_limit: 200,
        out: out.clone(),
        input_size: None,
        compare: true,
        compare_limit: 1000,
        qemu: false,
    };
    let exported = export(&opts, &mut |_, _| {}).unwrap();
    let Some(Comparison::Classes(c)) = exported.comparison else { panic!("no classifier comparison") };
    let (acc_f, acc_q) = (c.accuracy_float.unwrap(), c.accuracy_int8.unwrap());
    eprintln!(
        "fashion-mnist, 1000 test images: top-1 agreement {:.3}, accuracy float {acc_f:.3}, int8 {acc_q:.3}",
        c.top1_agreement
    );
    assert!(acc_f > 0.6, "the float model did not train: {acc_f}");
    assert!(c.top1_agreement >= 0.95, "int8 and float agree on only {}", c.top1_agreement);
    assert!((acc_f - acc_q).abs() <= 0.03, "accuracy float {acc_f} vs int8 {acc_q}");
    assert!(out.join("report.json").is_file() && out.join("model_weights.c").is_file());
    std::fs::remove_dir_all(&run).ok();
    std::fs::remove_dir_all(&out).ok();
}
