//! How faithful the int8 model is: the same inputs through the float graph and the int8
//! simulator (bit-exact with the C), compared as a user would: detection AP and scores for the
//! face models, top-1 agreement for classifiers.

use burn::prelude::*;
use data::wider::FaceList;
use models::s3fd::priors::{QVGA_ANCHORS, QVGA_STEPS, VGA_ANCHORS, VGA_STEPS, priors};
use serde::Serialize;
use zoo::s3fd::ap::average_precision;
use zoo::s3fd::detect::{DetectConfig, detect};
use zoo::s3fd::ground_truth::ground_truth;
use zoo::s3fd::inference::priors_host;

use crate::error::ExportError;
use crate::graph::{Graph, OutputKind};
use crate::inputs::{Preprocess, photo_input};
use crate::quantize::QGraph;
use crate::{float_sim, int8_sim};

/// The float and the dequantized int8 outputs of one input, each as `(kind, values)` per output.
pub struct Pair {
    /// The float model's outputs.
    pub float: Vec<(OutputKind, Vec<f32>)>,
    /// The int8 model's, dequantized.
    pub int8: Vec<(OutputKind, Vec<f32>)>,
}

/// Input `x` (HWC) through the float graph and the int8 simulator.
pub fn run_both(g: &Graph, q: &QGraph, x: &[f32]) -> Pair {
    let f = float_sim::run(g, x, None);
    let qin: Vec<i8> = x.iter().map(|v| q.params[q.input].quantize(*v)).collect();
    let i = int8_sim::run(q, &qin);
    Pair {
        float: g.outputs.iter().map(|(t, k)| (*k, f[*t].clone())).collect(),
        int8: q
            .outputs
            .iter()
            .map(|(t, k)| (*k, i[*t].iter().map(|v| q.params[*t].dequantize(*v)).collect()))
            .collect(),
    }
}

fn largest_error(a: &[(OutputKind, Vec<f32>)], b: &[(OutputKind, Vec<f32>)], kind: OutputKind) -> f32 {
    a.iter()
        .zip(b)
        .filter(|((k, _), _)| *k == kind)
        .flat_map(|((_, x), (_, y))| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

/// How the int8 detector compares with the float one.
#[derive(Debug, Serialize)]
pub struct FaceComparison {
    /// Images compared.
    pub images: usize,
    /// WIDER-protocol AP of the float model.
    pub ap_float: f64,
    /// WIDER-protocol AP of the int8 model.
    pub ap_int8: f64,
    /// Largest |int8 - float| over all conf logits and over all box offsets.
    pub max_logit_error: f32,
    /// Largest |int8 - float| box offset.
    pub max_loc_error: f32,
    /// Largest |int8 - float| face probability at a prior where either exceeds the threshold.
    pub max_score_error: f32,
    /// Detections (after NMS) of the float model matched by an int8 detection with IoU >= 0.5.
    pub detections_float: usize,
    /// Of those, matched by an int8 detection.
    pub detections_matched: usize,
}

fn concat(outs: &[(OutputKind, Vec<f32>)], kind: OutputKind) -> Vec<f32> {
    outs.iter().filter(|(k, _)| *k == kind).flat_map(|(_, v)| v.iter().copied()).collect()
}

fn face_scores(conf: &[f32]) -> Vec<f32> {
    conf.chunks(2).map(|c| 1.0 / (1.0 + (c[0] - c[1]).exp())).collect()
}

/// Each image of `list` resized to the model's input, detected by both models; AP against the
/// list's boxes (invalid faces ignored).
pub fn compare_faces(
    g: &Graph,
    q: &QGraph,
    list: &FaceList,
    pre: Preprocess,
    qvga: bool,
) -> Result<FaceComparison, ExportError> {
    let shape = g.input_shape();
    let maps: Vec<[usize; 2]> = g
        .outputs
        .iter()
        .filter(|(_, k)| *k == OutputKind::Loc)
        .map(|(t, _)| [g.tensors[*t][0], g.tensors[*t][1]])
        .collect();
    let (steps, anchors): (&[usize], &[usize]) =
        if qvga { (&QVGA_STEPS, &QVGA_ANCHORS) } else { (&VGA_STEPS, &VGA_ANCHORS) };
    let p = priors([shape[0], shape[1]], &maps, steps, anchors, &Device::flex());
    let priors: Vec<[f32; 4]> = priors_host(p);
    let cfg = if qvga { DetectConfig::qvga() } else { DetectConfig::vga() };
    let (mut fl, mut ql) = (Vec::new(), Vec::new());
    let mut c = FaceComparison {
        images: 0,
        ap_float: 0.0,
        ap_int8: 0.0,
        max_logit_error: 0.0,
        max_loc_error: 0.0,
        max_score_error: 0.0,
        detections_float: 0,
        detections_matched: 0,
    };
    for a in &list.images {
        let img = data::image_io::load_rgb(&a.image)?;
        let (w, h) = (img.width() as f32, img.height() as f32);
        let pair = run_both(g, q, &photo_input(&img, shape, pre));
        c.max_logit_error = c.max_logit_error.max(largest_error(&pair.float, &pair.int8, OutputKind::Conf));
        c.max_loc_error = c.max_loc_error.max(largest_error(&pair.float, &pair.int8, OutputKind::Loc));
        let (sf, sq) =
            (face_scores(&concat(&pair.float, OutputKind::Conf)), face_scores(&concat(&pair.int8, OutputKind::Conf)));
        for (a, b) in sf.iter().zip(&sq) {
            if a.max(*b) > cfg.conf_thresh {
                c.max_score_error = c.max_score_error.max((a - b).abs());
            }
        }
        let df = detect(&concat(&pair.float, OutputKind::Loc), &concat(&pair.float, OutputKind::Conf), &priors, cfg);
        let dq = detect(&concat(&pair.int8, OutputKind::Loc), &concat(&pair.int8, OutputKind::Conf), &priors, cfg);
        c.detections_float += df.len();
        c.detections_matched +=
            df.iter().filter(|d| dq.iter().any(|e| models::s3fd::boxes::iou(&d.bbox, &e.bbox) >= 0.5)).count();
        let gt = ground_truth(a, (w, h));
        fl.push((df, gt.clone()));
        ql.push((dq, gt));
        c.images += 1;
    }
    c.ap_float = average_precision(&fl);
    c.ap_int8 = average_precision(&ql);
    Ok(c)
}

/// How the int8 classifier compares with the float one.
#[derive(Debug, Serialize)]
pub struct ClassComparison {
    /// Inputs compared.
    pub images: usize,
    /// Inputs where the int8 and float top-1 classes agree.
    pub top1_agreement: f64,
    /// Accuracies when labels are known.
    pub accuracy_float: Option<f64>,
    /// The int8 model's, when labels are known.
    pub accuracy_int8: Option<f64>,
    /// Largest |int8 - float| logit.
    pub max_logit_error: f32,
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
}

/// Each sample (HWC input, label if known) through both models.
pub fn compare_classes(g: &Graph, q: &QGraph, samples: &[(Vec<f32>, Option<usize>)]) -> ClassComparison {
    let (mut agree, mut right_f, mut right_q, mut labelled) = (0usize, 0usize, 0usize, 0usize);
    let mut err = 0.0f32;
    for (x, label) in samples {
        let pair = run_both(g, q, x);
        let (f, i) = (concat(&pair.float, OutputKind::Logits), concat(&pair.int8, OutputKind::Logits));
        err = err.max(largest_error(&pair.float, &pair.int8, OutputKind::Logits));
        let (af, ai) = (argmax(&f), argmax(&i));
        agree += usize::from(af == ai);
        if let Some(l) = label {
            labelled += 1;
            right_f += usize::from(af == *l);
            right_q += usize::from(ai == *l);
        }
    }
    let n = samples.len().max(1) as f64;
    let acc = |r: usize| (labelled > 0).then(|| r as f64 / labelled as f64);
    ClassComparison {
        images: samples.len(),
        top1_agreement: agree as f64 / n,
        accuracy_float: acc(right_f),
        accuracy_int8: acc(right_q),
        max_logit_error: err,
    }
}

/// Per layer: the largest |int8 - float| of its output and the largest |float| (the int8 model
/// runs on its own int8 results, so errors accumulate as they would on the device).
#[derive(Debug, Serialize)]
pub struct LayerError {
    /// The layer's name.
    pub layer: String,
    /// Largest |int8 - float| of its output.
    pub max_error: f32,
    /// Largest |float| of its output.
    pub max_value: f32,
    /// Its output's int8 step.
    pub scale: f32,
}

/// Each layer's error on input `x` (HWC).
pub fn layer_errors(g: &Graph, q: &QGraph, x: &[f32]) -> Vec<LayerError> {
    let f = float_sim::run(g, x, None);
    let qin: Vec<i8> = x.iter().map(|v| q.params[q.input].quantize(*v)).collect();
    let i = int8_sim::run(q, &qin);
    g.layers
        .iter()
        .map(|l| {
            let p = q.params[l.output];
            let err =
                f[l.output].iter().zip(&i[l.output]).map(|(a, b)| (a - p.dequantize(*b)).abs()).fold(0.0, f32::max);
            LayerError {
                layer: l.name.clone(),
                max_error: err,
                max_value: f[l.output].iter().fold(0.0, |m, v| m.max(v.abs())),
                scale: p.scale,
            }
        })
        .collect()
}
