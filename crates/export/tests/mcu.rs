//! RNNPool-Face-M4 on an emulated Cortex-M4: the exported model (EdgeML's M4 weights,
//! calibrated on the bundled photos, 320x240 grey) is cross-compiled with the 256 KB RAM linker
//! script that the export copies from `c/mcu/cortex_m4_256k.ld` (so the link itself proves it
//! fits), run under
//! `qemu-system-arm -M mps2-an386` on real photos read through semihosting, and must give the
//! int8 simulator's outputs byte for byte. Needs gcc-arm-none-eabi, libnewlib-arm-none-eabi
//! and qemu-system-arm (`.ci/run` installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::prelude::*;
use export::inputs::{Preprocess, calibration_inputs};
use export::{codegen, plan, quantize};
use models::FaceArch;
use zoo::Net;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tool(name: &str) {
    let found = Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{name}` not found: install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm (see .ci/run)"
    );
}

/// `(text, data, bss)` from arm-none-eabi-size.
fn sizes(elf: &Path) -> [u64; 3] {
    let out = Command::new("arm-none-eabi-size").arg(elf).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).unwrap_or_default();
    let v: Vec<u64> = line.split_whitespace().take(3).map(|s| s.parse().unwrap()).collect();
    [v[0], v[1], v[2]]
}

#[test]
fn face_m4_runs_on_a_cortex_m4_in_256_kb_and_matches_the_simulator() {
    tool("arm-none-eabi-gcc");
    tool("qemu-system-arm");
    let device = Device::flex();
    let state = common::model_fixture("RPool_Face_M4");
    let net = Net::Face(FaceArch::M4.init(&device).unwrap().load_edgeml(&state).unwrap());
    let shape = [240, 320, 1];
    let g = export::lower::lower("face_m4", &net, shape).unwrap();
    let photos = repo().join("datasets/wider_sample/WIDER_train/images");
    let images = calibration_inputs(&photos, shape, Preprocess::FaceGray, 4).unwrap();
    let ranges = export::calibrate(&g, images.iter().map(|v| v.as_slice())).unwrap();
    let q = quantize::quantize(&g, &ranges).unwrap();
    let p = plan::plan(&q);
    assert!(p.arena_bytes <= 160_000, "arena {} B over the 160 KB target", p.arena_bytes);

    let dir = common::work_dir("mcu");
    codegen::generate(&q, &p).unwrap().write(&dir).unwrap();
    let elf = dir.join("run_model_m4.elf");
    let out = Command::new("arm-none-eabi-gcc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-DRP_CORTEX_M", "-mcpu=cortex-m4", "-mthumb"])
        .args(["-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2", "-nostartfiles", "--specs=rdimon.specs", "-T"])
        .arg(dir.join("runtime/mcu/cortex_m4_256k.ld"))
        .arg("-I")
        .arg(dir.join("runtime/include"))
        .arg("-I")
        .arg(&dir)
        .arg(dir.join("runtime/mcu/startup_cortex_m4.c"))
        .args(common::sources(&dir))
        .arg("-o")
        .arg(&elf)
        .args(["-lc", "-lrdimon"])
        .output()
        .unwrap();
    assert!(out.status.success(), "cross-compiling or linking failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let [text, data, bss] = sizes(&elf);
    eprintln!("face_m4 on Cortex-M4: text {text} B, data {data} B, bss {bss} B (arena {} B)", p.arena_bytes);
    assert!(text + data <= 200 * 1024, "flash {} B over 200 KB", text + data);

    // Two real photos, as the exporter quantizes them.
    let qp = q.params[q.input];
    let inputs: Vec<Vec<i8>> = images[..2].iter().map(|x| x.iter().map(|v| qp.quantize(*v)).collect()).collect();
    let bytes: Vec<u8> = inputs.iter().flatten().map(|v| *v as u8).collect();
    std::fs::write(dir.join("input.bin"), bytes).unwrap();
    let run = Command::new("qemu-system-arm")
        .args([
            "-M",
            "mps2-an386",
            "-nographic",
            "-icount",
            "shift=0",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
        ])
        .arg(&elf)
        .current_dir(&dir)
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&run.stdout);
    eprintln!("{console}");
    assert!(run.status.success(), "qemu exit {:?}:\n{console}\n{}", run.status, String::from_utf8_lossy(&run.stderr));
    let instructions: Vec<u64> =
        console.lines().filter_map(|l| l.split(": ").nth(1)?.strip_suffix(" instructions")?.parse().ok()).collect();
    assert_eq!(instructions.len(), 2, "one instruction count per image");
    assert!(
        instructions.iter().all(|&n| n > 100_000_000),
        "the model's ~100 M MACs take more instructions than {instructions:?}"
    );
    let device_out = std::fs::read(dir.join("output.bin")).unwrap();
    let expected = common::simulated(&q, &inputs);
    assert_eq!(device_out.len(), expected.len(), "output size");
    assert!(device_out == expected, "Cortex-M4 outputs differ from the simulator's");
    assert!(device_out == common::run_c("mcu-host", &q, &inputs), "Cortex-M4 outputs differ from the host C's");
    let _ = std::fs::remove_dir_all(&dir);
}
