//! Data-parallel training over MPI (`--features mpi`; Debian `libopenmpi-dev openmpi-bin
//! libclang-dev`): `mpirun -np 2` on this machine (loopback) ends with exactly the weights of one
//! process with two devices (the same shards, summed in the same order), and two ranks of two
//! devices those of one process with four within float rounding; a rank that dies ends the job
//! with an error and `--resume` finishes it to the same weights; another rank count is refused
//! on resume.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_train")
}

/// RNNPool-Face-M4 on the bundled photos: SGD, batch 4, `epochs` steps (one per epoch), a
/// checkpoint every step, on `devices` devices, into `dir/run`.
fn config(dir: &Path, epochs: usize, devices: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let text = format!(
        "[model]\nname = \"face_m4\"\n[data]\nkind = \"wider\"\nroot = \"{root}\"\nval_split = \"train\"\naugment = false\n\
         [train]\nepochs = {epochs}\nbatch_size = 4\noptimizer = \"sgd\"\nlr = 0.01\nmomentum = 0.9\nweight_decay = 0.0005\n\
         warmup_epochs = 0\nseed = 0\ncheckpoint_every = 1\neval_every = {epochs}\ndevices = {devices}\n\
         [eval]\ninput = \"square\"\n[output]\ndir = \"{out}\"\n",
        root = common::sample().display(),
        out = dir.join("run").display(),
    );
    let path = dir.join("c.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `mpirun -np <ranks> train <args>`, as root and with more ranks than cores allowed.
fn mpirun(ranks: usize, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np", &ranks.to_string(), bin()]).args(args);
    c.env("RUST_BACKTRACE", "0").env("RUST_LOG", "info");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap_or_else(|e| panic!("mpirun is needed (apt-get install openmpi-bin): {e}"))
}

fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn weights_of(config: &Path) -> Vec<(String, Vec<f32>)> {
    let out = train::Config::load(config).unwrap().output.dir;
    common::weights::of_checkpoint(config, &out.join("last.ckpt"))
}

#[test]
fn two_ranks_train_to_the_weights_of_one_process_with_two_devices_and_resume_after_a_death() {
    let dir = common::tmp("mpi");
    let two_devices = config(&dir.join("devices"), 3, 2);
    let one = Command::new(bin()).args(["--config", two_devices.to_str().unwrap()]).output().unwrap();
    assert!(one.status.success(), "{}", text(&one));

    let ranks_cfg = config(&dir.join("ranks"), 3, 1);
    let ranks = mpirun(2, &["--config", ranks_cfg.to_str().unwrap()], &[]);
    assert!(ranks.status.success(), "{}", text(&ranks));
    assert!(text(&ranks).contains("data-parallel over 2 ranks"), "{}", text(&ranks));
    let (a, b) = (weights_of(&two_devices), weights_of(&ranks_cfg));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name}: 2 ranks and 2 devices end with other weights");
    }
    // A rank that fails ends the job at once, with its message, rather than leaving the others
    // waiting in a collective.
    let refused = mpirun(2, &["--config", ranks_cfg.to_str().unwrap()], &[]);
    assert!(!refused.status.success() && text(&refused).contains("holds an earlier run"), "{}", text(&refused));
    // Only rank 0 wrote: one metrics row per epoch.
    let csv = std::fs::read_to_string(dir.join("ranks/run/metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");

    // Rank 0 dies between writing its second last.ckpt and renaming it: the job ends with an
    // error; the resumed job ends with the same weights.
    let died_cfg = config(&dir.join("died"), 3, 1);
    let args = ["--config", died_cfg.to_str().unwrap()];
    let died = mpirun(2, &args, &[("RNNPOOL_TEST_ABORT_BEFORE_RENAME", "last.ckpt:2")]);
    assert!(!died.status.success(), "{}", text(&died));
    let resumed = mpirun(2, &[args[0], args[1], "--resume"], &[]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let c = weights_of(&died_cfg);
    for ((name, x), (_, y)) in b.iter().zip(&c) {
        assert!(x == y, "{name}: the resumed job ends with other weights");
    }

    // Devices inside ranks: 2 ranks of 2 devices against one process of 4 devices. The four
    // shards' gradients are summed in another order (per rank, then across ranks); the face
    // loss's hard-negative mining turns such rounding into other selections, so the weights
    // are compared to how far training moved them: within 10 % (a shard lost or counted twice
    // would be ~25 % apart).
    let four = config(&dir.join("four"), 3, 4);
    let one = Command::new(bin()).args(["--config", four.to_str().unwrap()]).output().unwrap();
    assert!(one.status.success(), "{}", text(&one));
    let nested = config(&dir.join("nested"), 3, 2);
    let out = mpirun(2, &["--config", nested.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let cfg = train::Config::load(&four).unwrap();
    let start = common::weights::weights(&zoo::registry::build_model(&cfg, &burn::prelude::Device::flex()).unwrap());
    let (x, y) = (weights_of(&four), weights_of(&nested));
    let (mut moved, mut apart) = (0f32, 0f32);
    for (((_, s), (_, a)), (_, b)) in start.iter().zip(&x).zip(&y) {
        moved = s.iter().zip(a).fold(moved, |m, (s, a)| m.max((a - s).abs()));
        apart = a.iter().zip(b).fold(apart, |m, (a, b)| m.max((a - b).abs()));
    }
    eprintln!("2 ranks x 2 devices vs 4 devices: {apart} apart after moving {moved}");
    assert!(moved > 0.0 && apart <= 0.1 * moved, "{apart} apart after moving {moved}");

    // Another rank count is another run.
    let single = Command::new(bin()).args([args[0], args[1], "--resume", "--epochs", "4"]).output().unwrap();
    assert!(!single.status.success());
    assert!(text(&single).contains("ranks: 2 -> 1"), "{}", text(&single));
    std::fs::remove_dir_all(&dir).ok();
}
