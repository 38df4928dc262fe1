//! `cargo run --release -p train -- --config configs/s3fd_rnnpool.toml` trains; `eval` and
//! `detect` use a checkpoint. Results go to stdout, logs (tracing) and progress to stderr.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use image::Rgb;
use rnnpool_core::BackendKind;
use train::Config;
use train::trainer::{self, Existing, RunOptions};
use zoo::s3fd::inference::{detect_config, detect_one, eval_pipeline};

/// See the workspace Cargo.toml: it keeps freed activation buffers for the next step.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "Train and evaluate RNNPool models", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Train (the default when no subcommand is given).
    Train(TrainArgs),
    /// Validation loss and AP (faces) of a checkpoint.
    Eval(EvalArgs),
    /// Run a checkpoint on one image and write a PNG with the boxes and scores.
    Detect(DetectArgs),
}

/// Overrides of the config's common fields.
#[derive(Args, Clone, Default)]
struct Overrides {
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// data.root
    #[arg(long)]
    data: Option<PathBuf>,
    /// flex | ndarray | wgpu
    #[arg(long)]
    backend: Option<BackendKind>,
    /// output.dir
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Clone, Default)]
struct TrainArgs {
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue from <out>/last.ckpt.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Delete the checkpoints and metrics of an earlier run in <out> and start over.
    #[arg(long)]
    overwrite: bool,
    /// With --resume: accept changed settings (batch size, epochs, learning rate, data, ...) and
    /// start a new schedule segment at the epoch in progress.
    #[arg(long, requires = "resume")]
    allow_changes: bool,
    #[command(flatten)]
    overrides: Overrides,
}

#[derive(Args)]
struct EvalArgs {
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    checkpoint: PathBuf,
    #[command(flatten)]
    overrides: Overrides,
}

#[derive(Args)]
struct DetectArgs {
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    checkpoint: PathBuf,
    #[arg(long)]
    image: PathBuf,
    /// The PNG (or JPEG) to write.
    #[arg(long, default_value = "detections.png")]
    out: PathBuf,
}

fn load_config(path: &Path, o: &Overrides) -> Result<Config> {
    let mut cfg = Config::load(path)?;
    if let Some(v) = o.epochs {
        cfg.train.epochs = v;
    }
    if let Some(v) = o.batch_size {
        cfg.train.batch_size = v;
    }
    if let Some(v) = o.lr {
        cfg.train.lr = v;
    }
    if let Some(v) = &o.data {
        cfg.data.root = v.clone();
    }
    if let Some(v) = o.backend {
        cfg.train.backend = v;
    }
    if let Some(v) = &o.out {
        cfg.output.dir = v.clone();
    }
    cfg.validate(path).context("after command-line overrides")?;
    Ok(cfg)
}

fn run_train(args: TrainArgs) -> Result<()> {
    let Some(path) = &args.config else { bail!("--config <file.toml> is required (see configs/)") };
    let cfg = load_config(path, &args.overrides)?;
    tracing::info!(config = %path.display(), model = %cfg.model.name, out = %cfg.output.dir.display(), "training");
    let existing = match (args.resume, args.overwrite) {
        (true, _) => Existing::Resume,
        (false, true) => Existing::Overwrite,
        (false, false) => Existing::Refuse,
    };
    let opts = RunOptions {
        existing,
        allow_changes: args.allow_changes,
        interrupt: Some(stop_on_signals()?),
        ..Default::default()
    };
    let summary = trainer::train(&cfg, &opts).with_context(|| format!("training with {}", path.display()))?;
    println!("{}", train::metrics::to_csv(&summary.history).trim_end());
    println!("checkpoints and metrics in {}", summary.out_dir.display());
    Ok(())
}

/// SIGINT, SIGTERM and SIGHUP set the returned flag, and the trainer stops after the current
/// step with a checkpoint; a second signal exits at once.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            eprintln!("second signal: exiting now, without a checkpoint");
            std::process::exit(130);
        }
        eprintln!("signal received: finishing the current step and writing a checkpoint (signal again to exit now)");
    })
    .context("installing the SIGINT / SIGTERM handler")?;
    Ok(flag)
}

/// An error unless `out` can be written as an image: not a folder, a .png or .jpg name.
fn check_image_out(out: &Path) -> Result<()> {
    if out.is_dir() {
        bail!(
            "--out {}: is a folder; give a file name such as {}",
            out.display(),
            out.join("detections.png").display()
        );
    }
    let ext = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if !matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
        bail!("--out {}: the name must end in .png, .jpg or .jpeg (the format written)", out.display());
    }
    match out.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => bail!("--out {}: the folder {} does not exist", out.display(), dir.display()),
        _ => Ok(()),
    }
}

fn run_eval(args: EvalArgs) -> Result<()> {
    let cfg = load_config(&args.config, &args.overrides)?;
    let device = cfg.train.backend.device()?;
    let net = zoo::registry::load_model(&cfg, &args.checkpoint, &device)?;
    let task = trainer::build_task(&cfg, &device)?;
    let e = task.evaluate(&net)?;
    let opt = |name: &str, v: Option<f64>| v.map(|v| format!(", {name} {v:.4}")).unwrap_or_default();
    println!(
        "split {}: loss {:.4}{}{}{}",
        cfg.data.val_split,
        e.loss,
        opt("AP (IoU 0.5, all faces)", e.ap),
        opt("top-1", e.top1),
        opt("top-5", e.top5)
    );
    if let Some([easy, medium, hard]) = e.ap_settings {
        println!("WIDER FACE AP (official ground truth): Easy {easy:.4}, Medium {medium:.4}, Hard {hard:.4}");
    }
    Ok(())
}

fn run_detect(args: DetectArgs) -> Result<()> {
    check_image_out(&args.out)?;
    let cfg = load_config(&args.config, &Overrides::default())?;
    let device = cfg.train.backend.device()?;
    let zoo::Net::Face(model) = zoo::registry::load_model(&cfg, &args.checkpoint, &device)? else {
        bail!("detect needs a face model; {} names `{}`", args.config.display(), cfg.model.name)
    };
    let mut img = data::image_io::load_rgb(&args.image)?;
    let qvga = cfg.model.name.is_qvga();
    let pipeline = eval_pipeline(qvga, cfg.eval.input);
    let item = pipeline.apply(&img, &[], &mut data::augment::AugRng::new(0));
    let x = burn::prelude::Tensor::<4>::from_data(
        burn::tensor::TensorData::new(item.image, [1, item.shape[0], item.shape[1], item.shape[2]]),
        &device,
    );
    let dets = detect_one(&model, x, detect_config(&cfg.eval, qvga))?;
    let (w, h) = (img.width() as f32, img.height() as f32);
    for d in &dets {
        let b = [d.bbox[0] * w, d.bbox[1] * h, d.bbox[2] * w, d.bbox[3] * h];
        println!("{:.1} {:.1} {:.1} {:.1} {:.4}", b[0], b[1], b[2], b[3], d.score);
        if d.score >= 0.5 {
            data::draw::draw_box(&mut img, b, Rgb([0, 255, 0]), 2);
            data::draw::draw_number(
                &mut img,
                b[0] as i64,
                b[1] as i64 - 12,
                &format!("{:.2}", d.score),
                Rgb([0, 255, 0]),
                2,
            );
        }
    }
    img.save(&args.out).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{} detections ({} drawn at score >= 0.5) -> {}",
        dets.len(),
        dets.iter().filter(|d| d.score >= 0.5).count(),
        args.out.display()
    );
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        None => run_train(cli.train),
        Some(Command::Train(a)) => run_train(a),
        Some(Command::Eval(a)) => run_eval(a),
        Some(Command::Detect(a)) => run_detect(a),
    }
}
