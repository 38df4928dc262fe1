//! The `export` command end to end: C, runtime and report for the README's face model, and
//! clear errors for bad input (a trained classifier's faithfulness: `crates/e2e`).

use std::path::PathBuf;
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
    // What a killed export leaves behind is removed.
    std::fs::create_dir_all(out.join("runtime/src")).unwrap();
    std::fs::write(out.join("model.h.tmp"), "half a header").unwrap();
    std::fs::write(out.join("runtime/src/rp_conv_s8.c.tmp"), "half a kernel").unwrap();
    let o = export(&[
        "--config",
        "configs/s3fd_rnnpool.toml",
        "--calibration",
        "datasets/wider_sample/WIDER_train/images",
        "--out",
        out.to_str().unwrap(),
        "--compare-limit",
        "2",
        "--qemu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("total: arena (peak RAM)"), "{stdout}");
    assert!(stdout.contains("on QEMU's Cortex-M4"), "{stdout}");
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
    let rows = report["arena_rows_bytes"].as_u64().unwrap();
    assert!(rows < arena, "rows arena {rows} vs frame {arena}");
    let macs = report["macs"].as_u64().unwrap();
    let instructions = report["mcu"]["instructions_per_image"].as_u64().unwrap();
    assert!(instructions > macs, "{instructions} instructions for {macs} MACs");
    assert!(report["mcu"]["instructions_per_image_rows"].as_u64().unwrap() > macs);
    assert!(report["mcu"]["flash_bytes"].as_u64().unwrap() > report["weight_flash_bytes"].as_u64().unwrap());
    let header = std::fs::read_to_string(out.join("model.h")).unwrap();
    assert!(header.contains(&format!("#define MODEL_ARENA_FRAME_BYTES {arena}")), "{header}");
    assert!(header.contains(&format!("#define MODEL_ARENA_ROWS_BYTES {rows}")), "{header}");
    assert!(!out.join("model.h.tmp").exists() && !out.join("runtime/src/rp_conv_s8.c.tmp").exists());
    assert!(stderr(&o).contains("removed a temporary file left by a killed export"), "{}", stderr(&o));
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
    for size in ["0x0", "0x320", "240x0", "100000x100000"] {
        let cfg = "configs/s3fd_rnnpool.toml";
        let r = export(&["--config", cfg, "--calibration", images, "--out", o, "--input-size", size, "--no-compare"]);
        let e = stderr(&r);
        assert!(!r.status.success() && e.contains(&format!("--input-size {size}")) && e.contains("1 to 4096"), "{e}");
        assert!(!e.contains("panicked"), "{e}");
    }

    std::fs::create_dir_all(&out).unwrap();
    let list = out.join("list.txt");
    std::fs::write(&list, "# calibration photos\n../../no/such.jpg\n").unwrap();
    let bad = export(&["--config", "configs/s3fd_rnnpool.toml", "--calibration", list.to_str().unwrap(), "--out", o]);
    assert!(!bad.status.success() && stderr(&bad).contains("list.txt:2"), "{}", stderr(&bad));

    // A truncated photo among the calibration images is an error naming it, not a grey image.
    let photos = out.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let photo = std::fs::read(repo().join(images).join("0--Sample/2007_007763.jpg")).unwrap();
    std::fs::write(photos.join("cut.jpg"), &photo[..photo.len() / 2]).unwrap();
    let cut = export(&["--config", "configs/s3fd_rnnpool.toml", "--calibration", photos.to_str().unwrap(), "--out", o]);
    let e = stderr(&cut);
    assert!(!cut.status.success() && e.contains("cut.jpg") && e.contains("truncated JPEG"), "{e}");

    let empty = out.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let none = export(&["--config", "configs/s3fd_rnnpool.toml", "--calibration", empty.to_str().unwrap(), "--out", o]);
    assert!(!none.status.success() && stderr(&none).contains("no images"), "{}", stderr(&none));
    std::fs::remove_dir_all(&out).ok();
}
