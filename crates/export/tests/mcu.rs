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
    let _ = std::fs::remove_dir_all(&dir);
}
