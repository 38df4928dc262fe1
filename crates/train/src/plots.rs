//! The run's pictures, drawn with `plotters` into PNG files beside the metrics: the training
//! curves, the precision-recall curves of the last face evaluation and the confusion matrix of
//! the last classification evaluation. Text uses DejaVu Sans, bundled by the `dejavu` crate,
//! so the pictures look the same on every machine.

use std::path::Path;
use std::sync::Once;

use image::RgbImage;
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::FontStyle;
use zoo::s3fd::ap::PrCurve;

use crate::metrics::{EpochMetrics, write_atomic};

/// The training curves' file.
pub const CURVES: &str = "curves.png";
/// The precision-recall curves' file (face models).
pub const PR_CURVE: &str = "pr_curve.png";
/// The confusion matrix's file (classifiers).
pub const CONFUSION: &str = "confusion.png";

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (960, 540);

/// Why a picture could not be made.
#[derive(Debug, thiserror::Error)]
#[error("drawing {file}: {message}")]
pub struct PlotError {
    file: &'static str,
    message: String,
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let bytes = if matches!(style, FontStyle::Bold) { dejavu::sans::bold() } else { dejavu::sans::regular() };
            // The bundled font is a valid TrueType file; a failure here would be a packaging bug,
            // and plotting then fails with a message rather than the process.
            if plotters::style::register_font(FONT, style, bytes).is_err() {
                tracing::error!("the bundled DejaVu Sans font could not be read");
            }
        }
    });
}

/// Draws with `draw` onto a white canvas and writes it to `dir/file` as PNG, atomically.
fn render(
    dir: &Path,
    file: &'static str,
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<(), PlotError> {
    register_font();
    let fail = |message: String| PlotError { file, message };
    let mut pixels = vec![255u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
        draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let img = RgbImage::from_raw(SIZE.0, SIZE.1, pixels).ok_or_else(|| fail("pixel buffer size".into()))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).map_err(|e| fail(e.to_string()))?;
    write_atomic(&dir.join(file), &png).map_err(|e| fail(e.to_string()))
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A chart with the house title, margin and axis label areas.
fn chart_builder<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder.caption(title, (FONT, 24)).margin(12).x_label_area_size(45).y_label_area_size(70);
    builder
}

/// The legend of `chart`'s labelled series, boxed, at `position`.
fn legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// Finite values' range, padded so that a flat series still has a visible axis.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 0.05).max(1e-6);
    ((lo - pad).max(0.0_f64.min(lo)), hi + pad)
}

/// `curves.png`: training and validation loss over epochs (left axis), validation AP or top-1
/// (right axis, 0 to 1), the epoch of the lowest validation loss marked.
pub fn curves(dir: &Path, rows: &[EpochMetrics], title: &str) -> Result<(), PlotError> {
    render(dir, CURVES, |root| draw_curves(root, rows, title))
}

fn draw_curves(root: &DrawingArea<BitMapBackend, Shift>, rows: &[EpochMetrics], title: &str) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let last = rows.iter().map(|r| r.epoch).max().unwrap_or(1).max(1) as f64;
    let losses = rows.iter().flat_map(|r| [Some(r.train_loss), r.val_loss]).flatten();
    let (lo, hi) = range(losses);
    let score_name = if rows.iter().any(|r| r.val_ap.is_some()) { "validation AP" } else { "validation top-1" };
    let mut chart = chart_builder(root, title)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0.0..last + 0.5, lo..hi)
        .map_err(err)?
        .set_secondary_coord(0.0..last + 0.5, 0.0..1.0);
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss (mean per image)")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()
        .map_err(err)?;
    chart
        .configure_secondary_axes()
        .y_desc(score_name)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()
        .map_err(err)?;
    let series = |f: fn(&EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter().filter_map(|r| f(r).filter(|v| v.is_finite()).map(|v| (r.epoch as f64, v))).collect()
    };
    let train = series(|r| Some(r.train_loss));
    let val = series(|r| r.val_loss);
    let score = series(|r| r.val_ap.or(r.val_top1));
    chart
        .draw_series(LineSeries::new(train, RED.stroke_width(2)))
        .map_err(err)?
        .label("training loss")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(val.clone(), BLUE.stroke_width(2)).point_size(3))
        .map_err(err)?
        .label("validation loss")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    let green = RGBColor(30, 150, 60);
    chart
        .draw_secondary_series(LineSeries::new(score, green.stroke_width(2)).point_size(3))
        .map_err(err)?
        .label(format!("{score_name} (right axis)"))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], green.stroke_width(2)));
    if let Some(&(epoch, loss)) = val.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
        let mark = BLACK.stroke_width(1);
        chart
            .draw_series([PathElement::new([(epoch, lo), (epoch, hi)], mark)])
            .map_err(err)?
            .label(format!("best epoch {epoch:.0} (validation loss {loss:.4})"))
            .legend(|(x, y)| PathElement::new([(x + 10, y - 6), (x + 10, y + 6)], BLACK.stroke_width(1)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// `pr_curve.png`: precision over recall of the last evaluation, one curve per face set (all
/// faces, and Easy / Medium / Hard when the official ground truth is there), AP in the legend.
pub fn pr_curves(dir: &Path, curves: &[(&str, &PrCurve)], title: &str) -> Result<(), PlotError> {
    render(dir, PR_CURVE, |root| {
        root.fill(&WHITE).map_err(err)?;
        let mut chart = chart_builder(root, title).build_cartesian_2d(0.0..1.0, 0.0..1.02).map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("recall")
            .y_desc("precision")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .draw()
            .map_err(err)?;
        let colours = [RED, BLUE, RGBColor(30, 150, 60), RGBColor(200, 120, 0)];
        for (k, (name, curve)) in curves.iter().enumerate() {
            let colour = colours[k % colours.len()];
            let points: Vec<(f64, f64)> = curve.points().collect();
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(err)?
                .label(format!("{name}: AP {:.3}", curve.ap()))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        }
        legend(&mut chart, SeriesLabelPosition::LowerLeft)
    })
}

/// `confusion.png`: `counts[true][predicted]` as a grid, each row shaded by its share of that
/// class's images, with the counts written in the cells.
pub fn confusion(dir: &Path, counts: &[Vec<u64>], title: &str) -> Result<(), PlotError> {
    let n = counts.len();
    if n == 0 || counts.iter().any(|row| row.len() != n) {
        return Err(PlotError { file: CONFUSION, message: format!("not a square matrix of {n} classes") });
    }
    render(dir, CONFUSION, |root| {
        root.fill(&WHITE).map_err(err)?;
        let mut chart = chart_builder(root, title)
            .build_cartesian_2d((0..n).into_segmented(), (0..n).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted class")
            .y_desc("true class")
            .x_labels(n.min(20))
            .y_labels(n.min(20))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 17))
            .draw()
            .map_err(err)?;
        let cells = counts.iter().enumerate().flat_map(|(t, row)| {
            let total = row.iter().sum::<u64>().max(1) as f64;
            row.iter().enumerate().map(move |(p, &c)| (t, p, c, c as f64 / total))
        });
        for (t, p, count, share) in cells {
            let shade = (255.0 * (1.0 - 0.85 * share)) as u8;
            let (x0, x1) = (SegmentValue::Exact(p), SegmentValue::Exact(p + 1));
            let (y0, y1) = (SegmentValue::Exact(t), SegmentValue::Exact(t + 1));
            let fill = RGBColor(shade, shade, 255).filled();
            chart.draw_series([Rectangle::new([(x0, y0), (x1, y1)], fill)]).map_err(err)?;
            if n <= 20 {
                let colour = if share > 0.5 { WHITE } else { BLACK };
                let label = Text::new(
                    count.to_string(),
                    (SegmentValue::CenterOf(p), SegmentValue::CenterOf(t)),
                    (FONT, 14).into_font().color(&colour),
                );
                chart.draw_series([label]).map_err(err)?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixels that are neither white nor near-white: drawn content.
    fn inked(path: &Path) -> (u32, u32, usize) {
        let img = image::open(path).unwrap().to_rgb8();
        let ink = img.pixels().filter(|p| p.0.iter().any(|&c| c < 200)).count();
        (img.width(), img.height(), ink)
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("plots-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn curves_have_axes_lines_and_a_legend() {
        let rows: Vec<EpochMetrics> = (1..=6)
            .map(|e| EpochMetrics {
                epoch: e,
                train_loss: 6.0 / e as f64,
                val_loss: Some(5.0 / e as f64 + if e == 6 { 1.0 } else { 0.0 }),
                val_ap: Some(0.15 * e as f64),
                ..Default::default()
            })
            .collect();
        let dir = temp_dir("curves");
        curves(&dir, &rows, "RNNPool-Face-M4").unwrap();
        let (w, h, ink) = inked(&dir.join(CURVES));
        assert_eq!((w, h), SIZE);
        // Axes, tick labels, three lines and a legend: thousands of dark pixels, yet mostly white.
        assert!(ink > 3000 && ink < (w * h / 3) as usize, "{ink} inked pixels");
        let img = image::open(dir.join(CURVES)).unwrap().to_rgb8();
        assert!(img.pixels().any(|p| p.0 == [255, 0, 0]), "no training-loss line");
        assert!(img.pixels().any(|p| p.0 == [30, 150, 60]), "no score line");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn pr_curve_and_confusion_are_drawn() {
        let dir = temp_dir("pr");
        let curve = PrCurve::new(vec![0.1, 0.5, 0.8], vec![1.0, 0.9, 0.5]);
        pr_curves(&dir, &[("all faces", &curve)], "WIDER FACE").unwrap();
        let (_, _, ink) = inked(&dir.join(PR_CURVE));
        assert!(ink > 2000, "{ink}");
        let counts = vec![vec![50, 3, 0], vec![4, 40, 6], vec![0, 2, 45]];
        confusion(&dir, &counts, "Fashion-MNIST").unwrap();
        let (_, _, ink) = inked(&dir.join(CONFUSION));
        assert!(ink > 2000, "{ink}");
        assert!(confusion(&dir, &[vec![1, 2]], "bad").is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
