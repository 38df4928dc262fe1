//! Data-parallel training over two devices (`train.devices = 2`: each micro-batch split in two,
//! one model copy per device via burn's `fork`, gradients moved back with
//! `GradientsParams::to_device` and summed) gives the weights of one device that sees the same
//! global batch as two accumulated micro-batches. NdArray, so that the comparison is exact;
//! BatchNorm running statistics are left out (each replica keeps its own, as in PyTorch's
//! DataParallel).

mod common;

use burn::prelude::*;
use train::net::Net;
use train::trainer::{self, RunOptions};

/// Trainings running at once in one process are not bit-reproducible: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// The largest change between two weight sets, and the largest change from `start` (per tensor).
fn compare(label: &str, x: &[(String, Vec<f32>)], y: &[(String, Vec<f32>)], start: &[(String, Vec<f32>)], tol: f32) {
    for (((name, x), (_, y)), (_, s)) in x.iter().zip(y).zip(start) {
        let diff = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        let moved = x.iter().zip(s).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        eprintln!("{name}: {label} {diff:.2e} (training moved it by {moved:.2e})");
        assert!(moved > 1e-5, "{name} did not train");
        assert!(diff <= tol * moved, "{name}: {label} differ by {diff}");
    }
}

fn weights(net: &Net) -> Vec<(String, Vec<f32>)> {
    if let Net::Small(m) = net {
        return vec![
            ("stem".into(), values(m.stem.conv.weight.val())),
            ("block.0.project".into(), values(m.blocks[0].project.weight.val())),
            ("classifier".into(), values(m.classifier.weight.val())),
        ];
    }
    let Net::Face(m) = net else { panic!("a face model") };
    let cell = m.rnn_pool.pool.rnn1.as_fastgrnn().unwrap();
    vec![
        ("stem".into(), values(m.stem[0].conv.weight.val())),
        ("rnn1.W".into(), values(cell.w.val())),
        ("mob.3.project".into(), values(m.blocks[3].project.weight.val())),
        ("mob.3.project_bn.gamma".into(), values(m.blocks[3].project_bn.gamma.val())),
        ("conf.3".into(), values(m.conf[3].weight.val())),
    ]
}

#[test]
#[allow(deprecated)]
fn two_devices_equal_one_device_with_the_same_global_batch() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (a, b) = (common::tmp("dp2"), common::tmp("dp1"));
    let mut two = common::config(&a, "ndarray", 3);
    two.train.devices = 2;
    let mut one = common::config(&b, "ndarray", 3);
    one.train.batch_size = 2;
    one.train.accumulation = 2;
    // SGD: its step is linear in the gradient, so backend rounding stays rounding (Adam
    // divides tiny gradients by their own size and blows it up).
    for cfg in [&mut two, &mut one] {
        cfg.train.optimizer = "sgd".into();
        cfg.train.lr = 0.01;
    }
    let quiet = RunOptions { quiet: true, ..Default::default() };
    let s2 = trainer::train_on(&two, &quiet, &[Device::ndarray(), Device::ndarray()]).unwrap();
    let s1 = trainer::train(&one, &quiet).unwrap();
    assert_eq!((s2.steps, s1.steps), (3, 3));
    let (w2, w1) = (weights(&load(&two, &a)), weights(&load(&one, &b)));
    let start = weights(&trainer::build_model(&one, &Device::ndarray()).unwrap().1);
    compare("two devices vs one", &w2, &w1, &start, 1e-6);
    let _ = [a, b].map(std::fs::remove_dir_all);
}

#[allow(deprecated)]
fn load(cfg: &train::Config, dir: &std::path::Path) -> Net {
    let (_, net) = trainer::build_model(cfg, &Device::ndarray()).unwrap();
    trainer::load_checkpoint(&dir.join("last.ckpt"), cfg, net, None).unwrap().1
}

/// Across backends: NdArray holds the model, a Flex replica takes half of each batch, so the
/// gradients really move between devices. The two backends round differently (single ops
/// agree to ~1e-6) and BatchNorm over near-constant channels of a fresh model amplifies that:
/// one SGD step of the average-pooling classifier ends 1.6 % of its movement apart (measured).
/// A replica whose gradients were lost or counted twice would be ~50 % apart. (Faces are
/// worse: hard-negative mining turns rounding into different selections.)
#[test]
#[allow(deprecated)]
fn gradients_cross_backends_between_devices() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !std::path::Path::new(data::fashion_mnist::DEBIAN_DIR).exists() {
        eprintln!("{} missing (apt-get install dataset-fashion-mnist): not run", data::fashion_mnist::DEBIAN_DIR);
        return;
    }
    let configs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let base = train::Config::load(&configs.join("fashion_mnist_avgpool.toml")).unwrap();
    let run = |name: &str, devices: &[Device], batch: usize, accumulation: usize| {
        let mut cfg = base.clone();
        cfg.output.dir = common::tmp(name);
        cfg.data.limit = Some(32);
        (cfg.train.batch_size, cfg.train.accumulation, cfg.train.devices) = (batch, accumulation, devices.len());
        (cfg.train.optimizer, cfg.train.lr, cfg.train.epochs, cfg.train.backend) = ("sgd".into(), 0.05, 1, "ndarray".into());
        trainer::train_on(&cfg, &RunOptions { quiet: true, ..Default::default() }, devices).unwrap();
        let w = weights(&load(&cfg, &cfg.output.dir));
        std::fs::remove_dir_all(&cfg.output.dir).ok();
        (w, cfg)
    };
    let (mixed, cfg) = run("dp-mixed", &[Device::ndarray(), Device::flex()], 32, 1);
    let (single, _) = run("dp-single", &[Device::ndarray()], 16, 2);
    let start = weights(&trainer::build_model(&cfg, &Device::ndarray()).unwrap().1);
    compare("ndarray+flex vs one ndarray", &mixed, &single, &start, 0.1);
}
