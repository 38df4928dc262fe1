//! EdgeML weight import: a real `torch.save(state_dict)` checkpoint and a safetensors file of the
//! same model give the same operator, and bad files give errors naming the key and shapes.

use std::collections::HashMap;

use burn::prelude::*;
use rnnpool_core::{RnnPool, RnnPoolConfig, RnnPoolError, StateDict};

fn cell_values(pool: &RnnPool) -> Vec<Vec<f32>> {
    [pool.rnn1.as_fastgrnn().unwrap(), pool.rnn2.as_fastgrnn().unwrap()]
        .iter()
        .flat_map(|c| [&c.w, &c.u, &c.bias_gate, &c.bias_update, &c.zeta, &c.nu])
        .map(|p| p.val().into_data().try_to_vec::<f32>().unwrap())
        .collect()
}

/// Every `*.pth` model fixture (EdgeML face models keep their RNNPool under `rnn_model.`) and
/// its safetensors twin give the same cells, equal to the stored values.
#[test]
fn pytorch_checkpoint_and_safetensors_load_the_same_cells() {
    let device = Device::flex();
    for (pth_path, twin) in fixtures::Set::Models.pytorch_twins().unwrap_or_else(|e| panic!("{e}")) {
        let pth = StateDict::load(&pth_path).unwrap();
        let st = StateDict::load(&twin.path).unwrap();
        let a = RnnPool::from_edgeml(&pth, "rnn_model.", &device).unwrap();
        let b = RnnPool::from_edgeml(&st, "rnn_model.", &device).unwrap();
        let (va, vb) = (cell_values(&a), cell_values(&b));
        assert_eq!(va, vb, "{}", pth_path.display());
        let w1 = &st.get_any("rnn_model.cell_rnn.cell.W").unwrap().values;
        assert_eq!(va[0], w1.iter().map(|&v| v as f32).collect::<Vec<_>>());
    }
}

fn write_safetensors(path: &std::path::Path, tensors: &[(&str, Vec<usize>)]) {
    let data: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let bytes = (0..n).flat_map(|i| (i as f32 * 0.01).to_le_bytes()).collect();
            (name.to_string(), bytes, shape.clone())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, b, s)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None::<HashMap<String, String>>, path).unwrap();
}

fn full_cell(prefix: &str, i: usize, h: usize) -> Vec<(String, Vec<usize>)> {
    [
        ("W", vec![i, h]),
        ("U", vec![h, h]),
        ("bias_gate", vec![1, h]),
        ("bias_update", vec![1, h]),
        ("zeta", vec![1, 1]),
        ("nu", vec![1, 1]),
    ]
    .into_iter()
    .map(|(n, s)| (format!("{prefix}{n}"), s))
    .collect()
}

#[test]
fn missing_key_and_wrong_shape_are_named() {
    let dir = std::env::temp_dir().join(format!("rnnpool-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let device = Device::flex();
    let pool = || RnnPoolConfig::new(3, 4, 5).init(&device).unwrap();

    let mut entries = full_cell("m.cell_rnn.cell.", 3, 4);
    entries.extend(full_cell("m.cell_bidirrnn.cell.", 4, 5));
    entries.retain(|(n, _)| n != "m.cell_bidirrnn.cell.nu");
    let path = dir.join("missing.safetensors");
    let borrowed: Vec<(&str, Vec<usize>)> = entries.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
    write_safetensors(&path, &borrowed);
    let err = pool().load_edgeml(&StateDict::load(&path).unwrap(), "m.").unwrap_err();
    assert!(matches!(&err, RnnPoolError::MissingKey { key, .. } if key == "m.cell_bidirrnn.cell.nu"), "{err}");
    assert!(err.to_string().contains("missing.safetensors"), "{err}");

    let mut entries = full_cell("cell_rnn.cell.", 3, 4);
    entries.extend(full_cell("cell_bidirrnn.cell.", 4, 6));
    let path = dir.join("shape.safetensors");
    let borrowed: Vec<(&str, Vec<usize>)> = entries.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
    write_safetensors(&path, &borrowed);
    let err = pool().load_edgeml(&StateDict::load(&path).unwrap(), "").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("cell_bidirrnn.cell.W") && msg.contains("[4, 6]") && msg.contains("[4, 5]"), "{msg}");

    let gru = RnnPoolConfig::new(3, 4, 5).with_cell(rnnpool_core::RnnCellKind::Gru).init(&device).unwrap();
    let err = gru.load_edgeml(&StateDict::load(&path).unwrap(), "").unwrap_err();
    assert!(err.to_string().contains("GRU"), "{err}");

    let garbage = dir.join("garbage.pth");
    std::fs::write(&garbage, b"not a checkpoint").unwrap();
    let err = StateDict::load(&garbage).unwrap_err();
    assert!(err.to_string().contains("garbage.pth"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
