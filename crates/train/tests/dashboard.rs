//! What a user sees: burn-train's dashboard in a real terminal (tmux), stopped with Ctrl-C and
//! resumed to exactly the weights of an uninterrupted run; plain progress in a pipe; the PNGs
//! beside the metrics; burn-train's metric logs; `train summary`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_train")
}

/// RNNPool-Face-M4 on the bundled photos for `epochs` epochs of one step each, into `dir/run`.
fn config(dir: &Path, epochs: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let text = format!(
        "[model]\nname = \"face_m4\"\n[data]\nkind = \"wider\"\nroot = \"{root}\"\nval_split = \"train\"\naugment = false\n\
         [train]\nepochs = {epochs}\nbatch_size = 4\noptimizer = \"adam\"\nlr = 0.003\nweight_decay = 0.0\n\
         warmup_epochs = 0\nseed = 0\ncheckpoint_every = 1\neval_every = 2\n[eval]\ninput = \"square\"\n\
         [output]\ndir = \"{out}\"\n",
        root = common::sample().display(),
        out = dir.join("run").display(),
    );
    let path = dir.join("c.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn train(args: &[&str]) -> Output {
    let out = Command::new(bin()).args(args).env("RUST_BACKTRACE", "0").output().unwrap();
    assert!(out.status.success(), "train {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

use common::weights::of_checkpoint as weights_of;

fn tmux(args: &[&str]) -> Output {
    Command::new("tmux")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("tmux is needed for the dashboard test (apt-get install tmux): {e}"))
}

/// Polls `what` every 200 ms until it is true; false after `limit`.
fn wait_for(limit: Duration, mut what: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if what() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn the_dashboard_draws_in_a_terminal_and_ctrl_c_stops_with_a_checkpoint_that_resumes_exactly() {
    let dir = common::tmp("dashboard-tmux");
    let cfg = config(&dir, 30);
    let run = dir.join("run");
    let done = dir.join("exit-code");
    let session = format!("rnnpool-dashboard-{}", std::process::id());
    let line = format!("{} --config {}; echo $? > {}", bin(), cfg.display(), done.display());
    let started = tmux(&["new-session", "-d", "-s", &session, "-x", "180", "-y", "50", &line]);
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    let pane = || String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).into_owned();
    let panels = ["Loss", "Learning Rate", "Iteration Speed", "CPU Usage", "CPU Memory"];
    let drawn = wait_for(Duration::from_secs(180), || {
        let p = pane();
        panels.iter().all(|name| p.contains(name)) && run.join("last.ckpt").exists()
    });
    let screen = pane();
    tmux(&["send-keys", "-t", &session, "C-c"]);
    let ended = wait_for(Duration::from_secs(120), || done.exists());
    tmux(&["kill-session", "-t", &session]);
    assert!(drawn, "the dashboard's panels never appeared:\n{screen}");
    assert!(ended, "Ctrl-C did not end the run");
    let code = std::fs::read_to_string(&done).unwrap();
    assert_eq!(code.trim(), "1", "an interrupted run exits with an error");
    let step = zoo::Checkpoint::load(&run.join("last.ckpt")).unwrap().step();
    assert!(step < 30, "the run was not stopped early (step {step})");

    let resumed = train(&["--config", cfg.to_str().unwrap(), "--resume"]);
    let progress = String::from_utf8_lossy(&resumed.stderr);
    assert!(progress.contains("resumed"), "{progress}");
    let whole_dir = common::tmp("dashboard-whole");
    let whole_cfg = config(&whole_dir, 30);
    train(&["--config", whole_cfg.to_str().unwrap()]);
    let resumed = weights_of(&cfg, &run.join("last.ckpt"));
    assert!(resumed == weights_of(&whole_cfg, &whole_dir.join("run/last.ckpt")), "resumed weights differ");

    // burn-train's metric logs, in its own layout, and the pictures beside the metrics.
    let loss_log = std::fs::read_to_string(run.join("burn-train/train/epoch-30/Loss.log")).unwrap();
    assert_eq!(loss_log.lines().count(), 1, "{loss_log}");
    assert!(run.join("burn-train/valid/epoch-30/AP.log").exists());
    for png in ["curves.png", "pr_curve.png"] {
        let img = image::open(run.join(png)).unwrap().to_rgb8();
        let ink = img.pixels().filter(|p| p.0.iter().any(|&c| c < 200)).count();
        assert!(img.width() >= 800 && ink > 3000, "{png}: {}x{}, {ink} inked pixels", img.width(), img.height());
    }
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&whole_dir).ok();
}

#[test]
fn in_a_pipe_progress_is_plain_lines_and_stdout_holds_the_results() {
    let dir = common::tmp("dashboard-pipe");
    let cfg = config(&dir, 2);
    let out = train(&["--config", cfg.to_str().unwrap()]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stderr.contains("epoch 2: train loss"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "terminal escapes in a pipe: {stderr}");
    assert!(stdout.starts_with("epoch,step,lr,train_loss"), "{stdout}");
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn summary_prints_the_layer_table_with_burns_parameter_count() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let out = train(&["summary", "--config", configs.join("s3fd_rnnpool.toml").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("input 1x240x320"), "{text}");
    let burn_count: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("parameters (burn's count): "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no parameter count: {text}"));
    let cfg = train::Config::load(&configs.join("s3fd_rnnpool.toml")).unwrap();
    let net = zoo::registry::build_model(&cfg, &burn::prelude::Device::flex()).unwrap();
    assert_eq!(burn_count, burn::module::Module::num_params(&net));
    assert!(text.contains("rnn_pool") || text.contains("RNNPool"), "{text}");
    assert!(text.to_lowercase().contains("peak"), "{text}");
    let bad = Command::new(bin()).args(["summary", "--config", "configs/none.toml"]).output().unwrap();
    assert!(!bad.status.success());
    let bad = Command::new(bin())
        .args(["summary", "--config", configs.join("s3fd_rnnpool.toml").to_str().unwrap(), "--input", "1x0x5"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("each 1 to 4096"));
}
