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
use export::plan::Plans;
use export::{QGraph, quantize};
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

/// Builds that every model runs: `model_run()` with the DSP kernels, `model_run_rows()` alone,
/// and `model_run()` with the plain C kernels, as `(rows, plain)`.
const BUILDS: [(bool, bool); 3] = [(false, false), (true, false), (false, true)];

/// One model exported and run on QEMU in each of [`BUILDS`].
struct Measured {
    q: QGraph,
    plans: Plans,
    inputs: Vec<Vec<i8>>,
    macs: u64,
    runs: Vec<mcu::Run>,
}

/// Quantizes `net` at `shape` (calibrated on the bundled photos) and runs it on QEMU on the
/// first `images` photos in each of [`BUILDS`]: each must give the simulator's bytes, report
/// the planner's arena and take more instructions than MACs. Prints the figures.
fn measure(name: &str, net: &Net, shape: [usize; 3], pre: Preprocess, target: Target, images: usize) -> Measured {
    let photos = repo().join("datasets/wider_sample/WIDER_train/images");
    let calibration = calibration_inputs(&photos, shape, pre, 4).unwrap();
    let g = export::lower::lower(name, net, shape).unwrap();
    let ranges = export::calibrate(&g, calibration.iter().map(|v| v.as_slice())).unwrap();
    let q = quantize::quantize(&g, &ranges).unwrap();
    let (dir, plans) = common::export_c(name, &q);
    // Real photos, as the exporter quantizes them.
    let qp = q.params[q.input];
    let inputs: Vec<Vec<i8>> =
        calibration[..images].iter().map(|x| x.iter().map(|v| qp.quantize(*v)).collect()).collect();
    let expected = common::simulated(&q, &inputs);
    let macs: u64 = q.layers.iter().map(|l| l.macs).sum();
    let (frame_arena, rows_arena) = (plans.frame.arena_bytes, plans.rows.arena_bytes);
    eprintln!("{name} {shape:?}: arena {frame_arena} B with model_run(), {rows_arena} B with model_run_rows()");
    let mut runs = Vec::new();
    for (rows, plain) in BUILDS {
        let build = Build { target, rows, plain };
        let run = mcu::run(&dir, build, &inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        let [text, data, bss] = run.sizes.unwrap();
        let per_mac: Vec<String> = run.instructions.iter().map(|&n| format!("{:.2}", n as f64 / macs as f64)).collect();
        eprintln!(
            "{name} {build:?}: text {text} B, data {data} B, bss {bss} B, arena {} B, instructions {:?} ({} per MAC, {macs} MACs)",
            run.arena_bytes,
            run.instructions,
            per_mac.join(", ")
        );
        assert_eq!(run.instructions.len(), images, "{name}: one instruction count per image");
        assert!(
            run.instructions.iter().all(|&n| n > macs),
            "{name}: {macs} MACs in {:?} instructions",
            run.instructions
        );
        assert!(run.outputs == expected, "{name} {build:?}: outputs differ from the simulator's");
        let arena = if rows { rows_arena } else { frame_arena.max(rows_arena) };
        assert_eq!(run.arena_bytes, arena, "{name} {build:?}: the program's arena is not the planner's");
        runs.push(run);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Measured { q, plans, inputs, macs, runs }
}

#[test]
fn face_m4_runs_on_a_cortex_m4_in_256_kb_and_matches_the_simulator() {
    tool("arm-none-eabi-gcc");
    tool("qemu-system-arm");
    let device = Device::flex();
    let state = common::model_fixture("RPool_Face_M4");
    let net = Net::Face(FaceArch::M4.init(&device).unwrap().load_edgeml(&state).unwrap());
    let m = measure("face_m4", &net, [240, 320, 1], Preprocess::FaceGray, Target::CortexM4, 2);
    let (dsp, plain) = (&m.runs[0], &m.runs[2]);
    assert!(dsp.outputs == common::run_c("mcu-host", &m.q, &m.inputs), "Cortex-M4 outputs differ from the host C's");
    // The targets of docs/benchmarks.md (instruction counts are exact under -icount, not timings).
    let (frame_arena, rows_arena) = (m.plans.frame.arena_bytes, m.plans.rows.arena_bytes);
    let [text, data, _] = dsp.sizes.unwrap();
    assert!(frame_arena <= 131_072, "arena {frame_arena} B with the frame, over 128 KiB");
    assert!(rows_arena <= 98_304, "arena {rows_arena} B with model_run_rows(), over 96 KiB");
    assert!(dsp.instructions.iter().all(|&n| n <= 600_000_000), "{:?} instructions", dsp.instructions);
    assert!(text + data <= 125_812, "flash {} B", text + data);
    assert!(
        dsp.instructions.iter().zip(&plain.instructions).all(|(d, p)| d < p),
        "the DSP kernels save nothing over {:?} ({} MACs)",
        plain.instructions,
        m.macs
    );
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
    measure("face_quant", &Net::Face(quant), [480, 640, 3], Preprocess::FaceRgb, Target::Mps2Board, 1);
    measure("vww", &Net::MobileNetV2(vww), [224, 224, 3], Preprocess::Photo, Target::CortexM4, 1);
    measure("fashion", &Net::Small(fashion), [28, 28, 1], Preprocess::FashionMnist, Target::CortexM4, 1);
}
