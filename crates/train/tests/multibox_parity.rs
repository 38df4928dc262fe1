//! The S3FD matcher and multibox loss against the original (EdgeML's `match` and
//! `MultiBoxLoss`): every case of `$RNNPOOL_LOSS_FIXTURES` (default: the repository's
//! `fixtures/loss`), its thresholds, variances and negative ratio read from the metadata. The
//! matched labels must be equal, and the encoded offsets of the faces, `loss_l`, `loss_c` and
//! their gradients with respect to `loc` and `conf` within 1e-4 relative.

use std::collections::HashMap;

use burn::prelude::*;
use burn::tensor::TensorData;
use fixtures::Case;
use train::s3fd::matcher::{MatchConfig, match_priors};
use train::s3fd::multibox::MultiboxConfig;

const TOL: f64 = 1e-4;

/// A fixture's tensors as f64 values with their shapes (f32 and i64 entries).
struct Tensors(HashMap<String, (Vec<f64>, Vec<usize>)>);

impl Tensors {
    fn read(case: &Case) -> Self {
        let bytes = std::fs::read(&case.path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", case.name()));
        let mut out = HashMap::new();
        for (name, view) in st.tensors() {
            let values: Vec<f64> = match view.dtype() {
                safetensors::Dtype::F32 => {
                    view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64).collect()
                }
                safetensors::Dtype::I64 => {
                    view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64).collect()
                }
                other => panic!("{}: {name} has dtype {other:?}", case.name()),
            };
            out.insert(name, (values, view.shape().to_vec()));
        }
        Self(out)
    }

    fn get(&self, key: &str) -> &(Vec<f64>, Vec<usize>) {
        self.0.get(key).unwrap_or_else(|| panic!("no tensor `{key}`"))
    }

    fn boxes(&self, key: &str, width: usize) -> Vec<Vec<f32>> {
        self.get(key).0.chunks_exact(width).map(|r| r.iter().map(|&v| v as f32).collect()).collect()
    }

    fn tensor3(&self, key: &str, device: &Device) -> Tensor<3> {
        let (v, s) = self.get(key);
        let data = TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), [s[0], s[1], s[2]]);
        Tensor::from_data(data, device)
    }
}

/// The loss settings a case's metadata describes.
fn config(case: &Case) -> MultiboxConfig {
    let list = |key: &str| -> Vec<f32> {
        let text = case.require(key).unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{}: metadata `{key}` = {text}: {e}", case.name()))
    };
    let (th, variances) = (list("overlap_thresh"), list("variance"));
    assert!(th.len() == 3 && variances.len() == 2, "{}: 3 thresholds and 2 variances", case.name());
    let matching = MatchConfig { low: th[0], mid: th[1], high: th[2], variances: [variances[0], variances[1]] };
    MultiboxConfig { matching, neg_pos_ratio: case.parse("neg_pos_ratio").unwrap_or_else(|e| panic!("{e}")) }
}

fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
    got.iter().zip(want).map(|(g, w)| (*g as f64 - w).abs()).fold(0.0, f64::max) / scale
}

/// Each image's faces as corner boxes (the label column dropped; every label is 1 = face).
fn faces(t: &Tensors, batch: usize) -> Vec<Vec<[f32; 4]>> {
    (0..batch)
        .map(|i| {
            let rows = t.boxes(&format!("targets.{i}"), 5);
            assert!(rows.iter().all(|r| r[4] == 1.0), "targets.{i}: a label other than face");
            rows.iter().map(|r| [r[0], r[1], r[2], r[3]]).collect()
        })
        .collect()
}

/// The matcher's labels and the offsets of its faces, for one case; returns the failures.
fn check_matches(case: &Case, t: &Tensors, cfg: MultiboxConfig) -> Vec<String> {
    let priors: Vec<[f32; 4]> = t.boxes("priors", 4).iter().map(|r| [r[0], r[1], r[2], r[3]]).collect();
    let np = priors.len();
    let (labels, _) = t.get("matched_label");
    let (offsets, _) = t.get("matched_loc");
    let mut failures = Vec::new();
    for (i, truths) in faces(t, labels.len() / np).iter().enumerate() {
        let m = match_priors(truths, &priors, cfg.matching);
        let want: Vec<bool> = labels[i * np..(i + 1) * np].iter().map(|&l| l == 1.0).collect();
        let differ = (0..np).filter(|&p| m.positive[p] != want[p]).count();
        eprintln!("{} image {i}: {} positives, {differ} labels differ", case.name(), m.num_positive());
        if differ > 0 {
            failures.push(format!("{} image {i}: {differ} matched labels differ", case.name()));
        }
        let (got, expected): (Vec<f32>, Vec<f64>) = (0..np)
            .filter(|&p| want[p])
            .flat_map(|p| (0..4).map(move |k| (p, k)))
            .map(|(p, k)| (m.targets[p][k], offsets[(i * np + p) * 4 + k]))
            .unzip();
        let err = rel_err(&got, &expected);
        eprintln!("{} image {i}: matched_loc rel err {err:.2e}", case.name());
        if err.is_nan() || err > TOL {
            failures.push(format!("{} image {i}: matched_loc differs by {err:.2e}", case.name()));
        }
    }
    failures
}

/// The two losses and their gradients, for one case; returns the failures.
fn check_loss(case: &Case, t: &Tensors, cfg: MultiboxConfig) -> Vec<String> {
    let device = Device::flex().autodiff();
    let loc = t.tensor3("loc", &device).require_grad();
    let conf = t.tensor3("conf", &device).require_grad();
    let priors: Vec<[f32; 4]> = t.boxes("priors", 4).iter().map(|r| [r[0], r[1], r[2], r[3]]).collect();
    let loss = cfg.loss(loc.clone(), conf.clone(), &priors, &faces(t, loc.dims()[0]));
    let grads = loss.total().backward();
    let scalar = |x: Tensor<1>| vec![x.into_scalar::<f32>()];
    let host = |x: Tensor<3>| x.into_data().iter::<f32>().collect::<Vec<_>>();
    let results = [
        ("loss_l", scalar(loss.loc.clone())),
        ("loss_c", scalar(loss.conf.clone())),
        ("grad_loc", host(loc.grad(&grads).expect("loc gradient"))),
        ("grad_conf", host(conf.grad(&grads).expect("conf gradient"))),
    ];
    let mut failures = Vec::new();
    for (key, got) in results {
        let err = rel_err(&got, &t.get(key).0);
        eprintln!("{} {key}: rel err {err:.2e}", case.name());
        if err.is_nan() || err > TOL {
            failures.push(format!("{} {key}: {err:.2e} > {TOL:e}", case.name()));
        }
    }
    failures
}

#[test]
fn matcher_and_multibox_loss_match_the_original() {
    let mut failures = Vec::new();
    for case in fixtures::Set::Loss.cases().unwrap_or_else(|e| panic!("{e}")) {
        assert_eq!(case.meta("kind"), Some("multibox"), "{}: kind", case.name());
        let t = Tensors::read(&case);
        let cfg = config(&case);
        failures.extend(check_matches(&case, &t, cfg));
        failures.extend(check_loss(&case, &t, cfg));
    }
    assert!(failures.is_empty(), "differences from the original:\n{}", failures.join("\n"));
}
