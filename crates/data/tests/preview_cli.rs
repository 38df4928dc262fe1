//! The `preview` binary: help, readable errors, and a truncated photo refused.

use std::path::Path;
use std::process::{Command, Output};

fn preview(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_preview")).args(args).env("RUST_BACKTRACE", "0").output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn help_errors_and_output() {
    let help = preview(&["--help"]);
    assert!(help.status.success() && text(&help).contains("Usage: preview"), "{}", text(&help));
    let bad = preview(&["--wider", "/no/such/wider"]);
    let e = text(&bad);
    assert!(!bad.status.success() && e.contains("/no/such/wider/wider_face_split") && !e.contains("Io {"), "{e}");
    let pipeline = preview(&["--pipeline", "cga"]);
    assert!(
        !pipeline.status.success() && text(&pipeline).contains("possible values: qvga, vga"),
        "{}",
        text(&pipeline)
    );

    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/wider_sample");
    let out = std::env::temp_dir().join(format!("preview-cli-{}", std::process::id()));
    let (wider, o) = (sample.to_str().unwrap(), out.to_str().unwrap());
    let ok = preview(&["--wider", wider, "--out", o, "--epochs", "1"]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 4);
    std::fs::remove_dir_all(&out).ok();
}
