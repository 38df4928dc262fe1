//! Checkpoints on the bundled WIDER-format sample: a run killed and resumed ends with the same
//! weights as one that was not, and so does a run beside another in the same process; bad
//! checkpoints are clear errors, and an EdgeML PyTorch checkpoint is a starting point.

mod common;

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::Tensor;
use common::{config, tmp};
use train::Config;
use train::trainer::{self, Existing, LAST, RunOptions};
use zoo::Net;

/// Every float tensor of a module (parameters and BatchNorm statistics) as bits, in visiting
/// order. (Record bytes would not do: loading gives the running statistics fresh ids.)
struct Values(Vec<u32>);

impl ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.0.extend(p.val().into_data().iter::<f32>().map(f32::to_bits));
    }
}

fn values(net: &Net) -> Vec<u32> {
    let mut v = Values(Vec::new());
    net.visit(&mut v);
    v.0
}

/// The values of `dir/last.ckpt`.
fn weights(cfg: &Config, dir: &Path) -> Vec<u32> {
    values(&common::weights::load(cfg, dir))
}

#[test]
fn a_resumed_run_ends_bit_identical_to_an_uninterrupted_one() {
    for backend in ["flex", "ndarray"] {
        // 2 images per batch of the 4 photos: 2 steps an epoch, 3 epochs.
        let (whole, cut) = (tmp(&format!("whole-{backend}")), tmp(&format!("cut-{backend}")));
        let mut a = config(&whole, backend, 3);
        a.train.batch_size = 2;
        let mut b = config(&cut, backend, 3);
        b.train.batch_size = 2;
        let quiet = RunOptions { quiet: true, ..Default::default() };
        let sa = trainer::train(&a, &quiet).unwrap();
        // Killed after 3 steps (mid-epoch), then twice more after 1 step, then to the end.
        trainer::train(&b, &RunOptions { stop_after: Some(3), ..quiet.clone() }).unwrap();
        for _ in 0..2 {
            trainer::train(&b, &RunOptions { existing: Existing::Resume, stop_after: Some(1), ..quiet.clone() })
                .unwrap();
        }
        let s = trainer::train(&b, &RunOptions { existing: Existing::Resume, ..quiet.clone() }).unwrap();
        assert_eq!(s.steps, 6);
        let (wa, wb) = (weights(&a, &whole), weights(&b, &cut));
        assert!(wa == wb, "{backend}: resumed weights differ from the uninterrupted run");
        // The epoch cut in the middle reports the same mean loss (its sums are in the checkpoint).
        let losses = |h: &[train::metrics::EpochMetrics]| h.iter().map(|m| (m.epoch, m.train_loss)).collect::<Vec<_>>();
        assert_eq!(losses(&sa.history), losses(&s.history));
        // The weights did move (so equality is not vacuous).
        let fresh = zoo::registry::build_model(&a, &a.train.backend.device().unwrap()).unwrap();
        assert!(values(&fresh) != wa);
        std::fs::remove_dir_all(&whole).ok();
        std::fs::remove_dir_all(&cut).ok();
    }
}

/// MobileNetV2's dropout masks come from (seed, epoch, sample), not from burn's generator
/// (which a checkpoint does not hold), so a classifier with dropout resumes exactly too.
#[test]
fn a_resumed_classifier_with_dropout_ends_bit_identical() {
    let Some(base) = common::fashion_config("fashion_mnist_avgpool") else { return };
    let run = |name: &str, cuts: &[usize]| {
        let mut cfg = base.clone();
        cfg.output.dir = tmp(name);
        cfg.model.name = zoo::config::ModelName::MobileNetV2;
        cfg.data.limit = Some(24);
        (cfg.train.batch_size, cfg.train.epochs, cfg.train.backend) = (8, 2, rnnpool_core::BackendKind::Flex);
        let quiet = RunOptions { quiet: true, ..Default::default() };
        for (i, &k) in cuts.iter().enumerate() {
            let opts = RunOptions {
                existing: if i > 0 { Existing::Resume } else { Existing::Refuse },
                stop_after: Some(k),
                ..quiet.clone()
            };
            trainer::train(&cfg, &opts).unwrap();
        }
        let s = trainer::train(
            &cfg,
            &RunOptions { existing: if cuts.is_empty() { Existing::Refuse } else { Existing::Resume }, ..quiet },
        )
        .unwrap();
        assert_eq!(s.steps, 6);
        let w = weights(&cfg, &cfg.output.dir);
        std::fs::remove_dir_all(&cfg.output.dir).ok();
        w
    };
    let whole = run("drop-whole", &[]);
    // Killed after 2 steps (mid-epoch) and after 2 more (in the second epoch).
    assert!(whole == run("drop-cut", &[2, 2]), "resumed weights differ from the uninterrupted run");
}

/// burn draws parameter init from a generator global to the backend, and initialises parameters
/// lazily (on first use): `build_model` draws them all while it holds the seed. Measured before
/// it did: the runs beside each other ended with 58193 and 58210 of 58258 values different.
#[test]
fn a_run_beside_another_ends_bit_identical_to_one_alone() {
    let run = |name: &str| {
        let out = tmp(name);
        let cfg = config(&out, "ndarray", 2);
        trainer::train(&cfg, &RunOptions { quiet: true, ..Default::default() }).unwrap();
        let w = weights(&cfg, &out);
        std::fs::remove_dir_all(&out).ok();
        w
    };
    let alone = run("alone");
    let (a, b) = std::thread::scope(|s| {
        let (a, b) = (s.spawn(|| run("beside-a")), s.spawn(|| run("beside-b")));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a == alone && b == alone, "runs at once differ from a run alone");
}

#[test]
fn checkpoints_of_another_model_or_cut_short_are_clear_errors() {
    let out = tmp("errs");
    let cfg = config(&out, "flex", 1);
    trainer::train(&cfg, &RunOptions { quiet: true, stop_after: Some(1), ..Default::default() }).unwrap();
    let mut other = cfg.clone();
    other.model.name = zoo::config::ModelName::FaceQvga;
    let device = burn::prelude::Device::flex();
    let e = zoo::registry::load_model(&other, &out.join(LAST), &device).err().unwrap().to_string();
    assert!(e.contains("face_m4") && e.contains("face_qvga"), "{e}");
    let bytes = std::fs::read(out.join(LAST)).unwrap();
    std::fs::write(out.join("cut.ckpt"), &bytes[..bytes.len() / 2]).unwrap();
    let e = zoo::registry::load_model(&cfg, &out.join("cut.ckpt"), &device).err().unwrap().to_string();
    assert!(e.contains("cut.ckpt") && e.contains("corrupt"), "{e}");
    let Net::Face(_) = zoo::registry::build_model(&cfg, &device).unwrap() else { panic!("not a face model") };
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn an_edgeml_pytorch_checkpoint_is_a_starting_point() {
    let (pth, twin) = fixtures::Set::Models
        .pytorch_twins()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|(_, twin)| twin.meta("arch") == Some("RPool_Face_M4"))
        .expect("a .pth of RPool_Face_M4 among the model fixtures");
    let out = tmp("edgeml");
    let mut cfg = config(&out, "flex", 1);
    cfg.model.init = Some(pth);
    let device = burn::prelude::Device::flex();
    let net = zoo::registry::build_model(&cfg, &device).unwrap();
    let Net::Face(model) = net else { panic!("not a face model") };
    let reference = rnnpool_core::StateDict::load(&twin.path).unwrap();
    let x: Tensor<4> = reference.get_any("input").unwrap().to_tensor(&device, burn::tensor::DType::F32);
    let got: Vec<f32> = model.forward(x).unwrap().loc.into_data().iter::<f32>().collect();
    let want = &reference.get_any("loc").unwrap().values;
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = got.iter().zip(want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max) / scale;
    assert!(err < 1e-5, "loc differs from the original's by {err:e}");
    // And training goes on from it.
    trainer::train(&cfg, &RunOptions { quiet: true, stop_after: Some(1), ..Default::default() }).unwrap();
    std::fs::remove_dir_all(&out).ok();
}
