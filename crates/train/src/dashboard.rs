//! What a run shows while it trains, through burn-train's public traits: its metric types
//! (loss, learning rate, iteration speed, CPU and memory use; the validation figures as a
//! numeric metric of ours), its renderers (the TUI dashboard in a terminal, plain progress on
//! stderr elsewhere) and its file metric logger, which writes burn-train's own layout under
//! `<out>/burn-train/` (`train/epoch-N/Loss.log`, `valid/epoch-N/...`).
//!
//! Our loop stays in charge; this module only reports. burn-train's own plain renderer
//! (`CliMetricsRenderer`) prints a debug line per batch on stdout, which is for results here,
//! so the plain display is ours: a progress bar on a terminal, a line every few seconds in a
//! pipe, both on stderr, behind the same `MetricsRenderer` trait.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::data::dataloader::Progress;
use burn::prelude::*;
use burn::tensor::{TensorData, TensorReadError};
use burn::train::Interrupter;
use burn::train::logger::{EvaluationProgressLogger, FileMetricLogger, MetricLogger, TrainingProgressLogger};
use burn::train::metric::store::{EpochSummary, MetricsUpdate, NumericMetricUpdate, Split};
use burn::train::metric::{
    CpuMemory, CpuUse, IterationSpeedMetric, LearningRateMetric, LossInput, LossMetric, Metric, MetricAttributes,
    MetricDefinition, MetricEntry, MetricId, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation, MetricsRendererTraining,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::metrics::EpochMetrics;

/// The folder under the run folder where burn-train's file metric logger writes.
pub const LOG_DIR: &str = "burn-train";

/// How a run shows its progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Display {
    /// burn-train's TUI dashboard (the terminal's alternate screen).
    Dashboard,
    /// Plain progress on stderr.
    Plain,
    /// Nothing but logs.
    Quiet,
}

impl Display {
    /// The dashboard when stdout and stderr are both a terminal (it draws on stdout) and it is
    /// not refused, plain progress otherwise.
    pub fn choose(no_tui: bool, quiet: bool) -> Self {
        if quiet {
            Self::Quiet
        } else if !no_tui && std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
            Self::Dashboard
        } else {
            Self::Plain
        }
    }
}

/// A burn-train metric with the id the renderer and the logger know it by.
struct Tracked<M> {
    id: MetricId,
    metric: M,
}

impl<M: Metric + Numeric> Tracked<M> {
    fn new(metric: M) -> Self {
        Self { id: MetricId::new(Arc::new(metric.name().to_string())), metric }
    }

    fn definition(&self) -> MetricDefinition {
        MetricDefinition::new(self.id.clone(), &self.metric)
    }

    fn update(&mut self, input: &M::Input, meta: &MetricMetadata) -> Result<NumericMetricUpdate, TensorReadError> {
        let entry = self.metric.update(input, meta)?;
        Ok(NumericMetricUpdate::new(
            MetricEntry::new(self.id.clone(), entry),
            self.metric.value(),
            self.metric.running_value(),
        ))
    }
}

/// A figure our loop computes whole (validation loss, AP, top-1, top-5) as a burn-train numeric
/// metric, so the dashboard plots it and the file logger records it.
#[derive(Clone)]
pub struct Figure {
    name: MetricName,
    higher_is_better: bool,
    value: Option<f64>,
}

impl Figure {
    /// A figure named `name`.
    pub fn new(name: &str, higher_is_better: bool) -> Self {
        Self { name: Arc::new(name.to_string()), higher_is_better, value: None }
    }
}

impl Metric for Figure {
    type Input = f64;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes { unit: None, higher_is_better: self.higher_is_better }.into()
    }

    fn update(&mut self, value: &f64, _meta: &MetricMetadata) -> Result<SerializedEntry, TensorReadError> {
        self.value = Some(*value);
        self.compute()
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(match self.value {
            Some(v) => SerializedEntry::new(format!("{}: {v:.4}", self.name), v.to_string()),
            None => SerializedEntry::not_available(None),
        })
    }

    fn clear(&mut self) {
        self.value = None;
    }
}

impl Numeric for Figure {
    fn value(&self) -> Option<NumericEntry> {
        self.value.map(NumericEntry::Value)
    }

    fn running_value(&self) -> Option<NumericEntry> {
        self.value()
    }

    fn final_value(&self) -> NumericEntry {
        NumericEntry::Final(self.value.unwrap_or(f64::NAN))
    }
}

/// The training split's metrics.
struct TrainMetrics {
    loss: Tracked<LossMetric>,
    lr: Tracked<LearningRateMetric>,
    speed: Tracked<IterationSpeedMetric>,
    cpu: Tracked<CpuUse>,
    memory: Tracked<CpuMemory>,
}

/// The validation split's figures, in [`EpochMetrics`] order.
struct ValidMetrics {
    loss: Tracked<Figure>,
    ap: Tracked<Figure>,
    top1: Tracked<Figure>,
    top5: Tracked<Figure>,
}

/// One training step as the dashboard sees it.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Steps done in this epoch, and in it all.
    pub done: usize,
    /// Steps in the epoch.
    pub per_epoch: usize,
    /// The step's mean loss per image.
    pub loss: f64,
    /// Images in the step.
    pub images: usize,
    /// The step's learning rate.
    pub lr: f64,
}

/// A run's display and burn-train's metric log.
pub struct Dashboard {
    renderer: Box<dyn MetricsRenderer>,
    logger: FileMetricLogger,
    train: TrainMetrics,
    valid: ValidMetrics,
    /// The device the loss tensors for burn's `LossMetric` are made on.
    device: Device,
    display: Display,
    /// Images trained on by this process: burn's `IterationSpeedMetric` divides them by the time
    /// since its first update, so it shows images per second.
    images: usize,
}

impl Dashboard {
    /// Starts the display of a run of `total_epochs` that continues at epoch `start_epoch`
    /// (from 0), `per_epoch` steps each, logging under `dir/burn-train`.
    pub fn start(
        display: Display,
        interrupter: &Interrupter,
        dir: &Path,
        total_epochs: usize,
        start_epoch: usize,
        per_epoch: usize,
    ) -> Self {
        let renderer = renderer(display, interrupter, (start_epoch > 0).then_some(start_epoch));
        let mut dashboard = Self {
            renderer,
            logger: FileMetricLogger::new(dir.join(LOG_DIR)),
            train: TrainMetrics {
                loss: Tracked::new(LossMetric::new()),
                lr: Tracked::new(LearningRateMetric::new()),
                speed: Tracked::new(IterationSpeedMetric::new()),
                cpu: Tracked::new(CpuUse::new()),
                memory: Tracked::new(CpuMemory::new()),
            },
            valid: ValidMetrics {
                loss: Tracked::new(Figure::new("Validation Loss", false)),
                ap: Tracked::new(Figure::new("AP", true)),
                top1: Tracked::new(Figure::new("Top-1 Accuracy", true)),
                top5: Tracked::new(Figure::new("Top-5 Accuracy", true)),
            },
            device: Device::flex(),
            display,
            images: 0,
        };
        dashboard.register();
        // burn-train counts epochs from 1 here.
        dashboard.renderer.start(total_epochs, start_epoch + 1, Some(per_epoch), Some("training"));
        dashboard.renderer.start_split("train", per_epoch);
        dashboard
    }

    fn register(&mut self) {
        let t = &self.train;
        let v = &self.valid;
        let definitions = [
            t.loss.definition(),
            t.lr.definition(),
            t.speed.definition(),
            t.cpu.definition(),
            t.memory.definition(),
            v.loss.definition(),
            v.ap.definition(),
            v.top1.definition(),
            v.top5.definition(),
        ];
        for d in definitions {
            self.logger.log_metric_definition(d.clone());
            self.renderer.register_metric(d);
        }
    }

    /// Reports one optimizer step.
    pub fn step(&mut self, s: StepReport) {
        keep_ctrl_c_a_signal();
        self.images += s.images;
        let meta = MetricMetadata {
            progress: Progress::new(s.done, s.per_epoch, Some("steps".into())),
            iteration: Some(self.images),
            lr: Some(s.lr.into()),
        };
        let losses = Tensor::<1>::from_data(
            TensorData::new(vec![s.loss as f32; s.images.max(1)], [s.images.max(1)]),
            &self.device,
        );
        let t = &mut self.train;
        let updates = [
            t.loss.update(&LossInput::new(losses), &meta),
            t.lr.update(&(), &meta),
            t.speed.update(&(), &meta),
            t.cpu.update(&(), &meta),
            t.memory.update(&(), &meta),
        ];
        let updates: Vec<NumericMetricUpdate> = updates.into_iter().filter_map(Result::ok).collect();
        self.publish(updates, s.epoch, Split::Train);
        self.renderer.update_split(s.done);
    }

    /// Reports an epoch's end: its validation figures when it was evaluated, its summary line.
    pub fn epoch_end(&mut self, row: &EpochMetrics, next_per_epoch: usize) {
        self.renderer.end_split();
        if let Some(loss) = row.val_loss {
            self.renderer.start_split("valid", 1);
            let meta = MetricMetadata { progress: Progress::new(1, 1, None), iteration: None, lr: None };
            let v = &mut self.valid;
            let figures = [
                (&mut v.loss, Some(loss)),
                (&mut v.ap, row.val_ap),
                (&mut v.top1, row.val_top1),
                (&mut v.top5, row.val_top5),
            ];
            let updates: Vec<NumericMetricUpdate> =
                figures.into_iter().filter_map(|(m, value)| value.and_then(|x| m.update(&x, &meta).ok())).collect();
            self.publish(updates, row.epoch, Split::Valid);
            self.renderer.update_split(1);
            self.renderer.end_split();
        }
        self.logger.log_epoch_summary(EpochSummary::new(row.epoch, Split::Train));
        self.renderer.update_epoch(row.epoch);
        self.renderer.log_event_training(row.summary());
        self.train.loss.metric.clear();
        self.renderer.start_split("train", next_per_epoch);
    }

    fn publish(&mut self, updates: Vec<NumericMetricUpdate>, epoch: usize, split: Split) {
        for u in &updates {
            let state = MetricState::Numeric(u.entry.clone(), u.numeric_entry.clone());
            match split {
                Split::Train => self.renderer.update_train(state),
                _ => self.renderer.update_valid(state),
            }
        }
        self.logger.log(MetricsUpdate::new(Vec::new(), updates), epoch, &split);
    }

    /// Whether the display is burn-train's dashboard.
    pub fn display(&self) -> Display {
        self.display
    }
}

/// The renderer of `display`, for a run that resumes after `done` finished epochs. While the
/// dashboard draws, log lines are held; [`release_logs`] writes them out once it is closed.
pub fn renderer(display: Display, interrupter: &Interrupter, done: Option<usize>) -> Box<dyn MetricsRenderer> {
    match display {
        Display::Dashboard => {
            hold_logs(true);
            Box::new(burn::train::renderer::tui::TuiMetricsRendererWrapper::new(interrupter.clone(), done))
        }
        Display::Plain | Display::Quiet => Box::new(PlainRenderer::new(display == Display::Quiet)),
    }
}

/// Writes the log lines held while the dashboard drew to stderr, and stops holding them.
pub fn release_logs() {
    hold_logs(false);
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.renderer.end();
        // The TUI leaves the alternate screen when its renderer is dropped; the logs held while
        // it drew come after.
        let renderer = std::mem::replace(&mut self.renderer, Box::new(PlainRenderer::new(true)));
        drop(renderer);
        release_logs();
    }
}

/// Progress on stderr: an indicatif bar on a terminal, a line every [`PLAIN_EVERY`] in a pipe,
/// and each epoch's summary line.
struct PlainRenderer {
    quiet: bool,
    bar: ProgressBar,
    split: String,
    total: usize,
    epoch: usize,
    epochs: usize,
    last_line: Instant,
    metrics: Vec<(MetricId, String)>,
}

/// How often the plain display prints a progress line when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

impl PlainRenderer {
    fn new(quiet: bool) -> Self {
        let bar = if quiet || !std::io::stderr().is_terminal() { ProgressBar::hidden() } else { ProgressBar::new(0) };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} steps {msg} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let (split, last_line, metrics) = (String::new(), Instant::now(), Vec::new());
        Self { quiet, bar, split, total: 0, epoch: 0, epochs: 0, last_line, metrics }
    }

    /// The latest value of each training metric, as burn formats it.
    fn message(&self) -> String {
        self.metrics.iter().map(|(_, text)| text.as_str()).collect::<Vec<_>>().join(" | ")
    }

    fn remember(&mut self, state: &MetricState) {
        let entry = match state {
            MetricState::Generic(e) | MetricState::Numeric(e, _) => e,
        };
        let text = entry.serialized_entry.formatted.clone();
        match self.metrics.iter_mut().find(|(id, _)| *id == entry.metric_id) {
            Some(slot) => slot.1 = text,
            None => self.metrics.push((entry.metric_id.clone(), text)),
        }
    }
}

impl MetricsRendererTraining for PlainRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.remember(&state);
    }

    fn update_valid(&mut self, _state: MetricState) {}
}

impl TrainingProgressLogger for PlainRenderer {
    fn start(&mut self, total_epochs: usize, starting_epoch: usize, _items: Option<usize>, _label: Option<&str>) {
        (self.epochs, self.epoch) = (total_epochs, starting_epoch);
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch + 1;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        (self.split, self.total) = (split.to_string(), total_items);
        self.bar.set_length(total_items as u64);
        self.bar.set_position(0);
        self.bar.set_prefix(format!("epoch {}/{} {split}", self.epoch, self.epochs));
    }

    fn update_split(&mut self, done: usize) {
        if self.split != "train" {
            return;
        }
        self.bar.set_position(done as u64);
        self.bar.set_message(self.message());
        if !self.quiet && self.bar.is_hidden() && self.last_line.elapsed() >= PLAIN_EVERY {
            eprintln!("epoch {}/{} step {done}/{}: {}", self.epoch, self.epochs, self.total, self.message());
            self.last_line = Instant::now();
        }
    }

    fn end_split(&mut self) {}

    fn end(&mut self) {
        self.bar.finish_and_clear();
    }

    fn log_event_training(&mut self, event: String) {
        // burn-train's Learner sends "Iteration" after every batch for the dashboard's counter.
        if self.quiet || event == "Iteration" {
            return;
        }
        if self.bar.is_hidden() {
            eprintln!("{event}");
        } else {
            self.bar.println(event);
        }
    }
}

impl EvaluationProgressLogger for PlainRenderer {
    fn start_global_progress(&mut self, _total: usize) {}
    fn start_test(&mut self, _name: &str, _items: usize) {}
    fn update_test_progress(&mut self, _done: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRendererEvaluation for PlainRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
}

impl MetricsRenderer for PlainRenderer {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _definition: MetricDefinition) {}
}

/// The dashboard puts the terminal in raw mode, where Ctrl-C is a key press the dashboard
/// ignores rather than a signal. Turning the terminal's signal keys back on makes Ctrl-C stop
/// the run the same way everywhere (after the step, with a checkpoint). Checked every step, as
/// the dashboard's thread enters raw mode on its own schedule.
fn keep_ctrl_c_a_signal() {
    #[cfg(unix)]
    if std::io::stdin().is_terminal() {
        // SAFETY: tcgetattr/tcsetattr on the process's own stdin with a zeroed termios that
        // tcgetattr fills before it is read.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut t) == 0 && t.c_lflag & libc::ISIG == 0 {
                t.c_lflag |= libc::ISIG;
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t);
            }
        }
    }
}

/// Gives the terminal back after the dashboard when the process must exit at once (a second
/// Ctrl-C): the dashboard's own cleanup runs only when it is dropped, so without this the shell
/// would be left in the alternate screen, in raw mode, with mouse capture on.
pub fn restore_terminal() {
    let drawing = HELD.lock().map(|held| held.is_some()).unwrap_or(false);
    if !drawing {
        return;
    }
    use std::io::Write;
    // Mouse capture off (the modes crossterm turns on), then leave the alternate screen.
    let reset = "\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1015l\x1b[?1006l\x1b[?1049l\x1b[?25h";
    let mut out = std::io::stdout();
    out.write_all(reset.as_bytes()).ok();
    out.flush().ok();
    #[cfg(unix)]
    if std::io::stdin().is_terminal() {
        // SAFETY: as in keep_ctrl_c_a_signal: the process's own stdin, a termios filled by
        // tcgetattr before it is changed.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut t) == 0 {
                t.c_lflag |= libc::ICANON | libc::ECHO | libc::ISIG | libc::IEXTEN;
                t.c_iflag |= libc::ICRNL;
                t.c_oflag |= libc::OPOST;
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t);
            }
        }
    }
    hold_logs(false);
}

/// Log lines held while the dashboard owns the terminal, written to stderr when it closes.
static HELD: std::sync::Mutex<Option<Vec<u8>>> = std::sync::Mutex::new(None);

fn hold_logs(hold: bool) {
    let Ok(mut held) = HELD.lock() else { return };
    if hold {
        held.get_or_insert_with(Vec::new);
    } else if let Some(lines) = held.take() {
        use std::io::Write;
        std::io::stderr().write_all(&lines).ok();
    }
}

/// The tracing writer of the binaries: stderr, or held while the dashboard draws.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut held) = HELD.lock()
            && let Some(lines) = held.as_mut()
        {
            lines.extend_from_slice(buf);
            return Ok(buf.len());
        }
        std::io::stderr().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize) -> EpochMetrics {
        EpochMetrics { epoch, train_loss: 1.0, val_loss: Some(0.5), val_top1: Some(0.8), ..Default::default() }
    }

    #[test]
    fn metrics_land_in_burn_trains_layout() {
        let dir = std::env::temp_dir().join(format!("dashboard-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        {
            let mut d = Dashboard::start(Display::Quiet, &Interrupter::new(), &dir, 2, 0, 3);
            for done in 1..=3 {
                let s = StepReport { epoch: 1, done, per_epoch: 3, loss: 2.0, images: 4, lr: 0.1 };
                d.step(s);
            }
            d.epoch_end(&row(1), 3);
        }
        let read = |p: &str| std::fs::read_to_string(dir.join(LOG_DIR).join(p)).unwrap_or_default();
        // burn-train's FileMetricLogger writes asynchronously; its files are complete once
        // the logger is dropped.
        let loss = read("train/epoch-1/Loss.log");
        assert_eq!(loss.lines().count(), 3, "{loss}");
        assert!(loss.lines().all(|l| l.starts_with('2')), "{loss}");
        assert_eq!(read("train/epoch-1/Learning_Rate.log").lines().count(), 3);
        assert!(read("valid/epoch-1/Top-1_Accuracy.log").starts_with("0.8"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
