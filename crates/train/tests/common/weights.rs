//! Watched weights of a trained model, and how far two trainings ended apart.

use burn::prelude::*;
use zoo::Net;

/// Watched weights by name.
pub type Named = Vec<(String, Vec<f32>)>;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// The watched weights of checkpoint `path` of the run that `config` (a file) describes:
/// values, not record bytes, which hold random parameter ids.
pub fn of_checkpoint(config: &std::path::Path, path: &std::path::Path) -> Named {
    let cfg = train::Config::load(config).unwrap();
    weights(&zoo::registry::load_model(&cfg, path, &Device::flex()).unwrap())
}

/// Weights that cover the network: stem, the RNNPool cell (faces), a block, a head.
pub fn weights(net: &Net) -> Vec<(String, Vec<f32>)> {
    let classifier = |stem: Tensor<4>, block: Tensor<4>, head: Tensor<2>| {
        vec![
            ("stem".into(), values(stem)),
            ("block.0.project".into(), values(block)),
            ("classifier".into(), values(head)),
        ]
    };
    match net {
        Net::Small(m) => {
            classifier(m.stem.conv.weight.val(), m.blocks[0].project.weight.val(), m.classifier.weight.val())
        }
        Net::MobileNetV2(m) => {
            classifier(m.stem.conv.weight.val(), m.blocks[0].project.weight.val(), m.classifier.weight.val())
        }
        Net::Face(m) => {
            let cell = m.rnn_pool.pool.rnn1.as_fastgrnn().unwrap();
            vec![
                ("stem".into(), values(m.stem[0].conv.weight.val())),
                ("rnn1.W".into(), values(cell.w.val())),
                ("mob.3.project".into(), values(m.blocks[3].project.weight.val())),
                ("mob.3.project_bn.gamma".into(), values(m.blocks[3].project_bn.gamma.val())),
                ("conf.3".into(), values(m.conf[3].weight.val())),
            ]
        }
        Net::DenseNet(_) => panic!("a face or MobileNetV2-style model"),
    }
}

/// Asserts that every watched weight trained, and that `x` and `y` differ by at most `tol` times
/// the largest change from `start` (per tensor).
pub fn compare(
    label: &str,
    x: &[(String, Vec<f32>)],
    y: &[(String, Vec<f32>)],
    start: &[(String, Vec<f32>)],
    tol: f32,
) {
    for (((name, x), (_, y)), (_, s)) in x.iter().zip(y).zip(start) {
        let diff = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        let moved = x.iter().zip(s).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        eprintln!("{name}: {label} {diff:.2e} (training moved it by {moved:.2e})");
        assert!(moved > 1e-5, "{name} did not train");
        assert!(diff <= tol * moved, "{name}: {label} differ by {diff}");
    }
}

/// The weights of `dir/last.ckpt`, loaded on NdArray.
#[allow(deprecated)]
pub fn load(cfg: &train::Config, dir: &std::path::Path) -> Net {
    zoo::registry::load_model(cfg, &dir.join("last.ckpt"), &Device::ndarray()).unwrap()
}
