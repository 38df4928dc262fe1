//! `cargo run --release -p train -- --config configs/s3fd_rnnpool.toml` trains; `eval` and
//! `detect` use a checkpoint; `summary` prints a model's layers. Results go to stdout, logs
//! (tracing) and progress to stderr, or burn-train's dashboard in a terminal.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use burn::train::Interrupter;
use clap::{Args, Parser, Subcommand, ValueEnum};
use image::Rgb;
use rnnpool_core::BackendKind;
use train::Config;
use train::dashboard::{Display, LogWriter};
use train::job::Job;
use train::trainer::{self, Existing, RunOptions};
use zoo::s3fd::inference::{detect_config, detect_one, eval_pipeline};

/// See the workspace Cargo.toml and [`train::alloc`]: it keeps freed activation buffers for the
/// next step.
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
    /// The model of a config, layer by layer: output shape, parameters, MACs, activation
    /// memory, and the peak RAM under the paper's convention.
    Summary(SummaryArgs),
}

/// The training loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
enum LearnerKind {
    /// Ours: exact mid-epoch resume, host-side S3FD matching, sparsification, data-parallel
    /// devices; every model.
    #[default]
    Ours,
    /// burn-train's SupervisedTraining + Learner; classifiers only.
    BurnTrain,
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
    /// Plain progress lines instead of burn-train's dashboard, even in a terminal.
    #[arg(long)]
    no_tui: bool,
    /// The training loop.
    #[arg(long, value_enum, default_value_t)]
    learner: LearnerKind,
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

#[derive(Args)]
struct SummaryArgs {
    #[arg(long)]
    config: PathBuf,
    /// The input `CxHxW` (default: the model's deployed input, or its data's size).
    #[arg(long)]
    input: Option<String>,
    /// Bytes per activation: 4 (float), 2 (half) or 1 (int8).
    #[arg(long, default_value = "4", value_parser = ["1", "2", "4"])]
    bytes: String,
    /// Also print burn's module tree.
    #[arg(long)]
    tree: bool,
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
    let job = Rc::new(Job::start()?);
    let opts = RunOptions {
        existing,
        allow_changes: args.allow_changes,
        no_tui: args.no_tui,
        interrupt: stop_on_signals()?,
        job: Some(job.clone()),
        ..Default::default()
    };
    let summary = match args.learner {
        LearnerKind::Ours => trainer::train(&cfg, &opts),
        _ if job.size() > 1 => Err(train::TrainError::Learner("MPI ranks need our loop (the default)".into())),
        LearnerKind::BurnTrain => train::learner::train(&cfg, &opts, Display::choose(args.no_tui, false)),
    };
    let summary = match summary.with_context(|| format!("training with {}", path.display())) {
        // The other ranks wait in a collective: end them all.
        Err(e) if job.size() > 1 => job.abort(&format!("rank {}: {e:?}", job.rank())),
        other => other?,
    };
    if !job.leads() {
        return Ok(());
    }
    println!("{}", train::metrics::to_csv(&summary.history).trim_end());
    println!("checkpoints and metrics in {}", summary.out_dir.display());
    Ok(())
}

/// SIGINT, SIGTERM and SIGHUP stop the returned interrupter (as the dashboard's quit key
/// does), and the trainer stops after the current step with a checkpoint; a second signal
/// exits at once.
fn stop_on_signals() -> Result<Interrupter> {
    let interrupter = Interrupter::new();
    let stop = interrupter.clone();
    let seen = AtomicBool::new(false);
    ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            train::dashboard::restore_terminal();
            eprintln!("second signal: exiting now, without a checkpoint");
            std::process::exit(130);
        }
        tracing::warn!(
            "signal received: finishing the current step and writing a checkpoint (signal again to exit now)"
        );
        stop.stop(Some("signal"));
    })
    .context("installing the SIGINT / SIGTERM handler")?;
    Ok(interrupter)
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
    let e = nn_ops::on_kernel_threads(&device, || task.evaluate(&net))?;
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
            data::draw::draw_detection(&mut img, b, d.score, Rgb([0, 230, 0]));
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

fn run_summary(args: SummaryArgs) -> Result<()> {
    let cfg = load_config(&args.config, &Overrides::default())?;
    let input = match &args.input {
        Some(text) => parse_input(text)?,
        None => zoo::registry::deployed_input(&cfg)?,
    };
    let device = burn::prelude::Device::flex();
    let net = zoo::registry::build_model(&cfg, &device)?;
    if args.tree {
        println!("{net}");
    }
    let bytes: usize = args.bytes.parse().context("--bytes")?;
    let [c, h, w] = input;
    println!("{} ({}), input {c}x{h}x{w}, {} bytes per activation", cfg.model.name, args.config.display(), bytes);
    println!("parameters (burn's count): {}", burn::module::Module::num_params(&net));
    match net.report(input)? {
        Some(report) => print!("{}", report.table(bytes)),
        None => println!("(no layer table for this model; --tree prints burn's module tree)"),
    }
    Ok(())
}

/// `CxHxW`, each 1 to 4096.
fn parse_input(text: &str) -> Result<[usize; 3]> {
    let dims: Vec<usize> = text
        .split('x')
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--input {text}: expected CxHxW, e.g. 1x240x320"))?;
    match dims[..] {
        [c, h, w] if [c, h, w].iter().all(|&d| (1..=4096).contains(&d)) => Ok([c, h, w]),
        _ => bail!("--input {text}: expected three sizes CxHxW, each 1 to 4096, e.g. 1x240x320"),
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // burn-train's Learner logs every iteration at info level.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,burn_train=warn")),
        )
        .with_writer(LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    train::alloc::keep_freed_memory();
    let cli = Cli::parse();
    match cli.command {
        None => run_train(cli.train),
        Some(Command::Train(a)) => run_train(a),
        Some(Command::Eval(a)) => run_eval(a),
        Some(Command::Detect(a)) => run_detect(a),
        Some(Command::Summary(a)) => run_summary(a),
    }
}
