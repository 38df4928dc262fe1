//! The `export` command end to end: C, runtime and report for the README's face model, clear
//! errors for bad input, and int8-vs-float faithfulness of a trained classifier.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rnnpool-export-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn export(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_export")).args(args).current_dir(repo()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn writes_c_runtime_and_report_for_face_m4() {
    let out = tmp("m4");
    let o = export(&[
        "--config",
        "configs/s3fd_rnnpool.toml",
        "--calibration",
        "datasets/wider_sample/WIDER_train/images",
        "--out",
        out.to_str().unwrap(),
        "--compare-limit",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("total: arena (peak RAM)"), "{stdout}");
    for f in
        ["model.h", "model_weights.c", "runtime/include/rp_nn.h", "runtime/src/rp_rnnpool_s8.c", "runtime/Makefile"]
    {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let arena = report["arena_bytes"].as_u64().unwrap();
    assert!(arena > 76_800 && arena <= 160_000, "arena {arena}");
    assert_eq!(report["input"], serde_json::json!([240, 320, 1]));
    assert_eq!(report["outputs"].as_array().unwrap().len(), 8);
    assert_eq!(report["comparison"]["images"], 2);
    assert!(report["comparison"]["ap_float"].is_number());
    let header = std::fs::read_to_string(out.join("model.h")).unwrap();
    assert!(header.contains(&format!("#define MODEL_ARENA_BYTES {arena}")));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn bad_inputs_are_clear_errors() {
    let out = tmp("errors");
    let o = out.to_str().unwrap();
    let images = "datasets/wider_sample/WIDER_train/images";
    let size = export(&[
        "--config",
        "configs/s3fd_rnnpool.toml",
        "--calibration",
        images,
        "--out",
        o,
        "--input-size",
        "240by320",
    ]);
    assert!(!size.status.success() && stderr(&size).contains("--input-size `240by320`"), "{}", stderr(&size));

    // Smaller than one RNNPool patch after the stride-2 stem.
    let tiny =
        export(&["--config", "configs/s3fd_rnnpool.toml", "--calibration", images, "--out", o, "--input-size", "8x8"]);
    assert!(!tiny.status.success() && stderr(&tiny).contains("patch"), "{}", stderr(&tiny));

    std::fs::create_dir_all(&out).unwrap();
    let list = out.join("list.txt");
    std::fs::write(&list, "# calibration photos\n../../no/such.jpg\n").unwrap();
    let bad = export(&["--config", "configs/s3fd_rnnpool.toml", "--calibration", list.to_str().unwrap(), "--out", o]);
    assert!(!bad.status.success() && stderr(&bad).contains("list.txt:2"), "{}", stderr(&bad));

    let empty = out.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let none = export(&["--config", "configs/s3fd_rnnpool.toml", "--calibration", empty.to_str().unwrap(), "--out", o]);
    assert!(!none.status.success() && stderr(&none).contains("no images"), "{}", stderr(&none));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn int8_classifier_agrees_with_float_on_fashion_mnist() {
    if !Path::new(data::fashion_mnist::DEBIAN_DIR).exists() {
        eprintln!("{} missing (apt-get install dataset-fashion-mnist): not run", data::fashion_mnist::DEBIAN_DIR);
        return;
    }
    // A short training run (6000 images, one epoch, ~190 steps) gives a classifier worth comparing.
    let run = tmp("fashion-train");
    let mut cfg = train::Config::load(&repo().join("configs/fashion_mnist_rnnpool.toml")).unwrap();
    cfg.output.dir = run.clone();
    cfg.data.limit = Some(6000);
    cfg.train.batch_size = 32;
    cfg.train.epochs = 1;
    train::trainer::train(&cfg, &train::trainer::RunOptions { quiet: true, ..Default::default() }).unwrap();
    let config = run.join("config.toml");
    std::fs::write(&config, std::fs::read_to_string(repo().join("configs/fashion_mnist_rnnpool.toml")).unwrap())
        .unwrap();
    let out = tmp("fashion-export");
    let o = export(&[
        "--config",
        config.to_str().unwrap(),
        "--checkpoint",
        run.join("last.ckpt").to_str().unwrap(),
        "--calibration",
        data::fashion_mnist::DEBIAN_DIR,
        "--calibration-limit",
        "200",
        "--compare-limit",
        "1000",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let c = &report["comparison"];
    let (agree, acc_f, acc_q) = (
        c["top1_agreement"].as_f64().unwrap(),
        c["accuracy_float"].as_f64().unwrap(),
        c["accuracy_int8"].as_f64().unwrap(),
    );
    eprintln!(
        "fashion-mnist, 1000 test images: top-1 agreement {agree:.3}, accuracy float {acc_f:.3}, int8 {acc_q:.3}"
    );
    assert!(acc_f > 0.6, "the float model did not train: {acc_f}");
    assert!(agree >= 0.95, "int8 and float agree on only {agree}");
    assert!((acc_f - acc_q).abs() <= 0.03, "accuracy float {acc_f} vs int8 {acc_q}");
    std::fs::remove_dir_all(&run).ok();
    std::fs::remove_dir_all(&out).ok();
}
