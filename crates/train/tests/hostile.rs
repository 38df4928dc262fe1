//! The real `train` binary against what a hostile but realistic user does: corrupt images and
//! annotations, nonsense settings, kills between a checkpoint's write and its rename, signals,
//! two runs on one folder, resumes with other settings. Each case gives a clear error or the
//! right result; nothing is lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use zoo::Checkpoint;

/// A copy of the bundled sample in a fresh temporary folder.
fn sample_copy(name: &str) -> PathBuf {
    let dir = common::tmp(&format!("hostile-{name}"));
    copy_tree(&common::sample(), &dir.join("data"));
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() { copy_tree(&p, &target) } else { std::fs::copy(&p, &target).map(|_| ()).unwrap() }
    }
}

/// Writes `<dir>/c.toml`: RNNPool-Face-M4 on `<dir>/data`, validation on the training split,
/// into `<dir>/run`, for `epochs` epochs of one step; `train` overrides `[train]` keys and `data`
/// lines are added to `[data]`.
fn config(dir: &Path, epochs: usize, train: &[(&str, &str)], data: &str) -> PathBuf {
    let epochs = epochs.to_string();
    let mut keys = vec![
        ("epochs", epochs.as_str()),
        ("batch_size", "4"),
        ("optimizer", "\"adam\""),
        ("lr", "0.003"),
        ("weight_decay", "0.0"),
        ("warmup_epochs", "0"),
        ("seed", "0"),
        ("checkpoint_every", "1"),
        ("eval_every", "1"),
    ];
    for (key, value) in train {
        match keys.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => keys.push((key, value)),
        }
    }
    let train: String = keys.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    let text = format!(
        "[model]\nname = \"face_m4\"\n[data]\nkind = \"wider\"\nroot = \"{root}\"\nval_split = \"train\"\n\
         augment = false\n{data}\n[train]\n{train}[eval]\ninput = \"square\"\n[output]\ndir = \"{out}\"\n",
        root = dir.join("data").display(),
        out = dir.join("run").display(),
    );
    let path = dir.join("c.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_train"));
    c.args(args).env("RUST_BACKTRACE", "0").env("RUST_LOG", "info").env_remove("RNNPOOL_TEST_ABORT_BEFORE_RENAME");
    c
}

fn train(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    command(&all).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The run's error message (the binary's stderr), asserting it failed.
fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure; stderr:\n{}", stderr(out));
    stderr(out)
}

fn succeeded(out: &Output) {
    assert!(out.status.success(), "expected success; stderr:\n{}", stderr(out));
}

/// Column `name` of `metrics.csv`'s rows.
fn metrics_column(run: &Path, name: &str) -> Vec<String> {
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == name).unwrap();
    lines.map(|l| l.split(',').nth(col).unwrap_or("").to_string()).collect()
}

fn first_photo(dir: &Path) -> PathBuf {
    dir.join("data/WIDER_train/images/0--Sample/2007_007763.jpg")
}

fn as_png(jpg: &Path) -> Vec<u8> {
    let mut png = Vec::new();
    let img = data::image_io::load_rgb(jpg).unwrap();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    png
}

#[test]
fn corrupt_images_are_errors_or_skipped_and_counted_in_every_split() {
    let original = common::sample().join("WIDER_train/images/0--Sample/2007_007763.jpg");
    let photo = std::fs::read(&original).unwrap();
    let png = as_png(&original);
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated_jpeg", photo[..photo.len() / 2].to_vec(), "truncated JPEG"),
        ("truncated_png", png[..png.len() / 2].to_vec(), "end of file"),
        ("empty", Vec::new(), "empty (0 bytes)"),
        ("text", b"this is not a picture\n".to_vec(), "not a JPEG or PNG"),
    ];
    for (name, bytes, reason) in cases {
        let dir = sample_copy(name);
        std::fs::write(first_photo(&dir), &bytes).unwrap();
        let e = failure(&train(&config(&dir, 1, &[], ""), &[]));
        assert!(e.contains("2007_007763.jpg") && e.contains(reason), "{name}: {e}");
        succeeded(&train(&config(&dir, 2, &[], "skip_bad = true"), &["--overwrite"]));
        let run = dir.join("run");
        assert_eq!(metrics_column(&run, "train_skipped"), ["1", "1"], "{name}");
        assert_eq!(metrics_column(&run, "val_skipped"), ["1", "1"], "{name}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn a_png_named_jpg_and_a_list_with_a_byte_order_mark_are_read() {
    let dir = sample_copy("content");
    std::fs::write(first_photo(&dir), as_png(&first_photo(&dir))).unwrap();
    let list = dir.join("data/wider_face_split/wider_face_train_bbx_gt.txt");
    let text = std::fs::read_to_string(&list).unwrap();
    std::fs::write(&list, format!("\u{feff}{text}")).unwrap();
    succeeded(&train(&config(&dir, 1, &[], ""), &[]));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_absurd_box_is_an_error_naming_the_line_and_a_slightly_outside_one_is_clipped() {
    let dir = sample_copy("boxes");
    let list = dir.join("data/wider_face_split/wider_face_train_bbx_gt.txt");
    let text = std::fs::read_to_string(&list).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let original = lines[2].clone();
    lines[2] = "5000 5000 10 10 0 0 0 0 0 0".into();
    std::fs::write(&list, lines.join("\n") + "\n").unwrap();
    let e = failure(&train(&config(&dir, 1, &[], ""), &[]));
    assert!(e.contains("wider_face_train_bbx_gt.txt:1") && e.contains("outside the 500x375 image"), "{e}");
    // 6 pixels past the right edge of a 500-pixel-wide photo: clipped, with a warning.
    lines[2] = "480 90 26 37 0 0 0 0 0 0".into();
    std::fs::write(&list, lines.join("\n") + "\n").unwrap();
    let out = train(&config(&dir, 1, &[], ""), &["--overwrite"]);
    succeeded(&out);
    assert!(stderr(&out).contains("clipped"), "{}", stderr(&out));
    assert_ne!(original, lines[2]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn nonsense_settings_are_refused_with_their_range() {
    let dir = sample_copy("settings");
    let cfg = config(&dir, 1, &[], "");
    let e = failure(&train(&cfg, &["--lr", "-1"]));
    assert!(e.contains("train.lr: -1 is out of range (valid: above 0, at most 10)"), "{e}");
    let e = failure(&train(&config(&dir, 1, &[("momentum", "-0.5")], ""), &[]));
    assert!(e.contains("train.momentum: -0.5"), "{e}");
    let e = failure(
        &command(&[
            "detect",
            "--config",
            cfg.to_str().unwrap(),
            "--checkpoint",
            "x.ckpt",
            "--image",
            "y.jpg",
            "--out",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap(),
    );
    assert!(e.contains("is a folder"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_loss_that_is_not_finite_stops_the_run_naming_the_step() {
    let dir = sample_copy("nan");
    let cfg = config(&dir, 20, &[("lr", "10"), ("optimizer", "\"sgd\"")], "");
    let e = failure(&train(&cfg, &[]));
    assert!(e.contains("the training loss is NaN at step") && e.contains("last good checkpoint"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

use common::weights::of_checkpoint as weights_of;

#[test]
fn a_kill_between_a_checkpoints_write_and_its_rename_loses_nothing() {
    let dir = sample_copy("kill");
    let cfg = config(&dir, 3, &[], "");
    let run = dir.join("run");
    succeeded(&train(&cfg, &[]));
    let whole = (weights_of(&cfg, &run.join("last.ckpt")), weights_of(&cfg, &run.join("best.ckpt")));
    let best_step = |run: &Path| Checkpoint::load(&run.join("best.ckpt")).unwrap().step();
    let uninterrupted_best = best_step(&run);
    for target in ["best.ckpt:2", "last.ckpt:2"] {
        let mut killed = command(&["--config", cfg.to_str().unwrap(), "--overwrite"]);
        let out = killed.env("RNNPOOL_TEST_ABORT_BEFORE_RENAME", target).output().unwrap();
        assert!(!out.status.success() && stderr(&out).contains("aborting before renaming"), "{}", stderr(&out));
        let name = target.split(':').next().unwrap();
        assert!(run.join(format!("{name}.tmp")).exists(), "{target}: no complete .tmp left");
        let resumed = train(&cfg, &["--resume"]);
        succeeded(&resumed);
        assert!(stderr(&resumed).contains("promoted"), "{target}: {}", stderr(&resumed));
        assert_eq!(best_step(&run), uninterrupted_best, "{target}: best.ckpt is not the best epoch's");
        let after = (weights_of(&cfg, &run.join("last.ckpt")), weights_of(&cfg, &run.join("best.ckpt")));
        assert!(after.0 == whole.0, "{target}: the resumed run ends with other weights");
        assert!(after.1 == whole.1, "{target}: the resumed run has another best checkpoint");
        assert_eq!(metrics_column(&run, "epoch"), ["1", "2", "3"]);
        let leftovers: Vec<_> = std::fs::read_dir(&run)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn resume_is_exact_or_refused_and_a_finished_folder_is_not_overwritten_unasked() {
    let dir = sample_copy("resume");
    let cfg = config(&dir, 1, &[], "");
    succeeded(&train(&cfg, &[]));
    let e = failure(&train(&cfg, &[]));
    assert!(e.contains("last.ckpt") && e.contains("--resume") && e.contains("--overwrite"), "{e}");
    let e = failure(&train(&cfg, &["--resume", "--epochs", "3", "--batch-size", "2"]));
    assert!(e.contains("batch_size: 4 -> 2") && e.contains("epochs: 1 -> 3") && e.contains("--allow-changes"), "{e}");
    let out = train(&cfg, &["--resume", "--epochs", "3", "--batch-size", "2", "--allow-changes"]);
    succeeded(&out);
    assert!(stderr(&out).contains("new schedule segment starts at epoch 2"), "{}", stderr(&out));
    assert_eq!(metrics_column(&dir.join("run"), "epoch"), ["1", "2", "3"]);
    assert_eq!(metrics_column(&dir.join("run"), "step"), ["1", "3", "5"]);
    let e = failure(&train(&cfg, &["--allow-changes"]));
    assert!(e.contains("--resume"), "{e}");
    succeeded(&train(&cfg, &["--overwrite"]));
    assert_eq!(metrics_column(&dir.join("run"), "epoch"), ["1"]);
    std::fs::remove_dir_all(&dir).ok();
}

/// Starts a long run (`--resume` when asked) and waits until it holds its folder's lock.
fn start_long_run(cfg: &Path, run: &Path, resume: bool) -> Child {
    let mut args = vec!["--config", cfg.to_str().unwrap()];
    if resume {
        args.push("--resume");
    }
    let child = command(&args).stderr(Stdio::piped()).spawn().unwrap();
    let lock = run.join("run.lock");
    let pid = child.id().to_string();
    let start = Instant::now();
    while std::fs::read_to_string(&lock).map_or(true, |t| t.trim() != pid) {
        assert!(start.elapsed() < Duration::from_secs(120), "the run never took its lock");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
}

#[test]
fn a_second_run_is_refused_and_signals_stop_with_a_checkpoint() {
    let dir = sample_copy("signals");
    let cfg = config(&dir, 1000, &[("checkpoint_every", "1000"), ("eval_every", "1000")], "");
    let run = dir.join("run");
    let first = start_long_run(&cfg, &run, false);
    let e = failure(&train(&cfg, &["--resume"]));
    assert!(e.contains(&format!("held by another run (pid {})", first.id())), "{e}");
    signal(&first, "TERM");
    let out = first.wait_with_output().unwrap();
    let e = failure(&out);
    assert!(e.contains("interrupted: stopped after step") && e.contains("--resume"), "{e}");
    let step = Checkpoint::load(&run.join("last.ckpt")).unwrap().step();
    assert!(step >= 1, "checkpoint at step {step}");
    // A second signal exits at once, without waiting for the step.
    let second = start_long_run(&cfg, &run, true);
    signal(&second, "INT");
    // Apart, so that the kernel does not merge them into one pending signal.
    std::thread::sleep(Duration::from_millis(100));
    signal(&second, "INT");
    let out = second.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    // SIGKILL leaves the lock file, but not the lock: the next run takes it.
    let third = start_long_run(&cfg, &run, true);
    signal(&third, "KILL");
    drop(third.wait_with_output());
    let mut fourth = start_long_run(&cfg, &run, true);
    fourth.kill().ok();
    fourth.wait().ok();
    std::fs::remove_dir_all(&dir).ok();
}
