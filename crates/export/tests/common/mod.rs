//! The EdgeML model fixtures as export inputs.

#![allow(dead_code)]

use std::path::PathBuf;

use burn::prelude::*;
use export::graph::OutputKind;
use export::mcu::{self, Build, Target};
use export::{Graph, QGraph, codegen, int8_sim, plan};
use models::{FaceArch, MobileNetV2Config};
use rnnpool_core::StateDict;
use zoo::Net;

/// The weights of the model fixture whose `arch` metadata is `arch` (e.g. `RPool_Face_M4`).
pub fn model_fixture(arch: &str) -> StateDict {
    let case = ::fixtures::Set::Models.find("arch", arch).unwrap_or_else(|e| panic!("{e}"));
    StateDict::load(&case.path).unwrap()
}

pub struct Fixture {
    pub name: String,
    pub graph: Graph,
    /// HWC images of the fixture's batch.
    pub inputs: Vec<Vec<f32>>,
    /// Per image, the reference outputs in the graph's output order (flattened NHWC).
    pub expected: Vec<Vec<f32>>,
}

/// Every model fixture, lowered.
pub fn fixtures() -> Vec<Fixture> {
    let device = Device::flex();
    let mut out = Vec::new();
    for case in ::fixtures::Set::Models.cases().unwrap_or_else(|e| panic!("{e}")) {
        let path = case.path;
        let state = StateDict::load(&path).unwrap();
        let arch = state.metadata().get("arch").cloned().unwrap_or_default();
        let (name, net) = match FaceArch::from_edgeml_name(&arch) {
            Some(a) => (arch.clone(), Net::Face(a.init(&device).unwrap().load_edgeml(&state).unwrap())),
            None => (
                "vww".to_string(),
                Net::MobileNetV2(MobileNetV2Config::vww().init(&device).unwrap().load_state(&state).unwrap()),
            ),
        };
        let input = state.get_any("input").unwrap();
        let [b, c, h, w] = [input.shape[0], input.shape[1], input.shape[2], input.shape[3]];
        let per = c * h * w;
        let inputs: Vec<Vec<f32>> = (0..b)
            .map(|i| {
                let x: Vec<f32> = input.values[i * per..(i + 1) * per].iter().map(|v| *v as f32).collect();
                export::chw_to_hwc(&x, [c, h, w])
            })
            .collect();
        let graph = export::lower::lower(&name, &net, [h, w, c]).unwrap();
        let expected = (0..b)
            .map(|i| {
                let mut v = Vec::new();
                if graph.outputs.iter().any(|(_, k)| *k == OutputKind::Logits) {
                    let l = &state.get_any("logits").unwrap();
                    let n = l.shape[1];
                    v.extend(l.values[i * n..(i + 1) * n].iter().map(|x| *x as f32));
                } else {
                    // Reference loc [B, P, 4] and conf [B, P, 2] split back into heads.
                    let loc = &state.get_any("loc").unwrap().values;
                    let conf = &state.get_any("conf").unwrap().values;
                    let p = loc.len() / b / 4;
                    let (mut lo, mut co) = (i * p * 4, i * p * 2);
                    for (t, kind) in &graph.outputs {
                        let [hh, ww, _] = graph.tensors[*t];
                        match kind {
                            OutputKind::Loc => {
                                v.extend(loc[lo..lo + hh * ww * 4].iter().map(|x| *x as f32));
                                lo += hh * ww * 4;
                            }
                            _ => {
                                v.extend(conf[co..co + hh * ww * 2].iter().map(|x| *x as f32));
                                co += hh * ww * 2;
                            }
                        }
                    }
                }
                v
            })
            .collect();
        out.push(Fixture { name, graph, inputs, expected });
    }
    out
}

/// The graph's outputs, concatenated.
pub fn outputs<T: Copy>(g: &Graph, tensors: &[Vec<T>]) -> Vec<T> {
    g.outputs.iter().flat_map(|(t, _)| tensors[*t].iter().copied()).collect()
}

pub fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rnnpool-export-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Exports `q` (both entry points planned) into a fresh work folder.
pub fn export_c(name: &str, q: &QGraph) -> (PathBuf, plan::Plans) {
    let dir = work_dir(name);
    let plans = plan::Plans::new(q);
    codegen::generate(q, &plans).unwrap().write(&dir).unwrap();
    (dir, plans)
}

/// Exports `q`, builds it with gcc and the sanitizers, runs it on `inputs` with `model_run()`
/// and the DSP kernels (on their C model), with `model_run_rows()`, and with the plain
/// kernels; asserts the three agree and each reports its planned arena; returns the outputs of
/// each input, concatenated.
pub fn run_c(name: &str, q: &QGraph, inputs: &[Vec<i8>]) -> Vec<u8> {
    let (dir, plans) = export_c(name, q);
    let build = |rows, plain| Build { target: Target::Host, rows, plain };
    let frame = mcu::run(&dir, build(false, false), inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
    let rows = mcu::run(&dir, build(true, false), inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
    let plain = mcu::run(&dir, build(false, true), inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(frame.outputs == rows.outputs, "{name}: model_run_rows() differs from model_run()");
    assert!(frame.outputs == plain.outputs, "{name}: the DSP kernels differ from the plain ones");
    assert_eq!(frame.arena_bytes, plans.frame.arena_bytes.max(plans.rows.arena_bytes), "{name}: arena");
    assert_eq!(rows.arena_bytes, plans.rows.arena_bytes, "{name}: rows-only arena");
    let _ = std::fs::remove_dir_all(&dir);
    frame.outputs
}

pub fn simulated(q: &QGraph, inputs: &[Vec<i8>]) -> Vec<u8> {
    inputs
        .iter()
        .flat_map(|x| {
            let t = int8_sim::run(q, x);
            q.outputs.iter().flat_map(|(o, _)| t[*o].iter().map(|v| *v as u8).collect::<Vec<_>>()).collect::<Vec<_>>()
        })
        .collect()
}
