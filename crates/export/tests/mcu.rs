//! RNNPool-Face-M4 on an emulated Cortex-M4: the exported model (EdgeML's M4 weights,
//! calibrated on the bundled photos, 320x240 grey) is cross-compiled with the 256 KB RAM linker
//! script that the export copies from `c/mcu/cortex_m4_256k.ld` (so the link itself proves it
//! fits), run under
//! `qemu-system-arm -M mps2-an386` on real photos read through semihosting, and must give the
//! int8 simulator's outputs byte for byte. Needs gcc-arm-none-eabi, libnewlib-arm-none-eabi
//! and qemu-system-arm (`.ci/run` installs them).

mod common;

use std::path::PathBuf;
use std::process::Command;

use burn::prelude::*;
use export::inputs::{Preprocess, calibration_inputs};
use export::mcu::{self, Build, Target};
use export::quantize;
use models::{FaceArch, MobileNetV2Config, SmallMobileNetConfig, StemPooling};
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
    let (dir, plans) = common::export_c("mcu", &q);
    let (frame_arena, rows_arena) = (plans.frame.arena_bytes, plans.rows.arena_bytes);
    eprintln!("face_m4 320x240: arena {frame_arena} B with model_run(), {rows_arena} B with model_run_rows()");

    // Two real photos, as the exporter quantizes them.
    let qp = q.params[q.input];
    let inputs: Vec<Vec<i8>> = images[..2].iter().map(|x| x.iter().map(|v| qp.quantize(*v)).collect()).collect();
    let expected = common::simulated(&q, &inputs);
    let macs: u64 = q.layers.iter().map(|l| l.macs).sum();
    let mut runs = Vec::new();
    for (rows, plain) in [(false, false), (true, false), (false, true)] {
        let build = Build { target: Target::CortexM4, rows, plain };
        let run = mcu::run(&dir, build, &inputs).unwrap_or_else(|e| panic!("{e}"));
        let [text, data, bss] = run.sizes.unwrap();
        let per_mac: Vec<String> = run.instructions.iter().map(|&n| format!("{:.2}", n as f64 / macs as f64)).collect();
        eprintln!(
            "{build:?}: text {text} B, data {data} B, bss {bss} B, arena {} B, instructions {:?} ({} per MAC, {macs} MACs)",
            run.arena_bytes,
            run.instructions,
            per_mac.join(", ")
        );
        assert_eq!(run.instructions.len(), 2, "one instruction count per image");
        assert!(
            run.instructions.iter().all(|&n| n > macs),
            "{macs} MACs take more instructions than {:?}",
            run.instructions
        );
        assert!(run.outputs == expected, "{build:?}: Cortex-M4 outputs differ from the simulator's");
        let arena = if rows { rows_arena } else { frame_arena.max(rows_arena) };
        assert_eq!(run.arena_bytes, arena, "{build:?}: the program's arena is not the planner's");
        runs.push(run);
    }
    assert!(runs[0].outputs == common::run_c("mcu-host", &q, &inputs), "Cortex-M4 outputs differ from the host C's");
    // The targets of docs/benchmarks.md (instruction counts are exact under -icount, not timings).
    let [text, data, _] = runs[0].sizes.unwrap();
    assert!(frame_arena <= 131_072, "arena {frame_arena} B with the frame, over 128 KiB");
    assert!(rows_arena <= 98_304, "arena {rows_arena} B with model_run_rows(), over 96 KiB");
    assert!(runs[0].instructions.iter().all(|&n| n <= 600_000_000), "{:?} instructions", runs[0].instructions);
    assert!(text + data <= 125_812, "flash {} B", text + data);
    let plain = &runs[2].instructions;
    assert!(runs[0].instructions.iter().zip(plain).all(|(d, p)| d < p), "the DSP kernels save nothing over {plain:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Quantizes `net` at `shape` (calibrated on the bundled photos) and runs it on QEMU: both
/// entry points with the DSP kernels, and the plain kernels; each gives the simulator's bytes
/// and reports its planned arena. Prints the figures; returns instructions per image (DSP).
fn run_on_qemu(name: &str, net: &Net, shape: [usize; 3], pre: Preprocess, target: Target) -> u64 {
    let photos = repo().join("datasets/wider_sample/WIDER_train/images");
    let images = calibration_inputs(&photos, shape, pre, 4).unwrap();
    let g = export::lower::lower(name, net, shape).unwrap();
    let ranges = export::calibrate(&g, images.iter().map(|v| v.as_slice())).unwrap();
    let q = quantize::quantize(&g, &ranges).unwrap();
    let (dir, plans) = common::export_c(name, &q);
    let qp = q.params[q.input];
    let inputs: Vec<Vec<i8>> = images[..1].iter().map(|x| x.iter().map(|v| qp.quantize(*v)).collect()).collect();
    let expected = common::simulated(&q, &inputs);
    let macs: u64 = q.layers.iter().map(|l| l.macs).sum();
    let mut per_image = 0;
    for (rows, plain) in [(false, false), (true, false), (false, true)] {
        let build = Build { target, rows, plain };
        let run = mcu::run(&dir, build, &inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(run.outputs == expected, "{name} {build:?}: outputs differ from the simulator's");
        let arena = if rows { plans.rows.arena_bytes } else { plans.frame.arena_bytes.max(plans.rows.arena_bytes) };
        assert_eq!(run.arena_bytes, arena, "{name} {build:?}: the program's arena is not the planner's");
        let [text, data, _] = run.sizes.unwrap();
        let n = run.instructions[0];
        eprintln!(
            "{name} {shape:?} {build:?}: flash {} B, arena {} B, {n} instructions ({:.2} per MAC, {macs} MACs)",
            text + data,
            run.arena_bytes,
            n as f64 / macs as f64
        );
        if !rows && !plain {
            per_image = n;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    per_image
}

#[test]
fn the_other_exported_models_run_on_qemu_with_the_same_kernels() {
    tool("arm-none-eabi-gcc");
    tool("qemu-system-arm");
    let device = Device::flex();
    let quant = FaceArch::Quant.init(&device).unwrap().load_edgeml(&common::model_fixture("RPool_Face_Quant")).unwrap();
    let vww = MobileNetV2Config::vww()
        .init(&device)
        .unwrap()
        .load_state(&common::model_fixture("model_mobilenet_rnnpool"))
        .unwrap();
    device.seed(5);
    let fashion = SmallMobileNetConfig::new().with_pooling(StemPooling::RnnPool { hidden: 8 }).init(&device).unwrap();
    // Face-Quant at 640x480 needs more RAM than a 256 KB part: it runs on the whole board.
    run_on_qemu("face_quant", &Net::Face(quant), [480, 640, 3], Preprocess::FaceRgb, Target::Mps2Board);
    run_on_qemu("vww", &Net::MobileNetV2(vww), [224, 224, 3], Preprocess::Photo, Target::CortexM4);
    run_on_qemu("fashion", &Net::Small(fashion), [28, 28, 1], Preprocess::FashionMnist, Target::CortexM4);
}
