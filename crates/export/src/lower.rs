//! From a burn model to a [`Graph`]: BatchNorm folded into the convolution before it, weights
//! read into HWC-friendly layouts, the detector heads and classifiers spelled out as layers.

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::prelude::*;
use models::blocks::{ConvBnRelu6, InvertedResidual};
use models::{DenseNet, FaceDetector, MobileNetV2, SmallMobileNet};
use rnnpool_core::{RnnCell, RnnPool, RnnPoolLayer};
use zoo::Net;

use crate::error::ExportError;
use crate::graph::{Activation, CellWeights, ConvWeights, Graph, Op, OutputKind, Shape, TensorId};

fn values<const D: usize>(layer: &str, t: Tensor<D>) -> Result<Vec<f32>, ExportError> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| ExportError::Tensor { layer: layer.into(), message: format!("{e:?}") })
}

fn conv_weights(
    name: &str,
    conv: &Conv2d,
    bn: Option<&BatchNorm>,
    act: Activation,
) -> Result<ConvWeights, ExportError> {
    let [cout, cin_g, kh, kw] = conv.weight.dims();
    if kh != kw || conv.stride[0] != conv.stride[1] || conv.dilation != [1, 1] {
        return Err(ExportError::Unsupported {
            layer: name.into(),
            why: format!(
                "kernel {kh}x{kw}, stride {:?}, dilation {:?}: square kernels and strides only",
                conv.stride, conv.dilation
            ),
        });
    }
    let pad = match conv.padding {
        PaddingConfig2d::Valid => 0,
        PaddingConfig2d::Explicit(t, l, b, r) if t == l && l == b && b == r => t,
        ref p => {
            return Err(ExportError::Unsupported { layer: name.into(), why: format!("padding {p:?}") });
        }
    };
    let groups = conv.groups;
    if groups != 1 && !(cin_g == 1 && groups == cout) {
        return Err(ExportError::Unsupported {
            layer: name.into(),
            why: format!("grouped convolution ({groups} groups)"),
        });
    }
    let w = values(name, conv.weight.val())?;
    let mut bias = match &conv.bias {
        Some(b) => values(name, b.val())?,
        None => vec![0.0; cout],
    };
    // Fold eval-mode BatchNorm: y = (conv(x) + b - mean) * gamma / sqrt(var + eps) + beta.
    let mut scale = vec![1.0f32; cout];
    if let Some(bn) = bn {
        let gamma = values(name, bn.gamma.val())?;
        let beta = values(name, bn.beta.val())?;
        let mean = values(name, bn.running_mean.value())?;
        let var = values(name, bn.running_var.value())?;
        for c in 0..cout {
            scale[c] = gamma[c] / (var[c] + bn.epsilon as f32).sqrt();
            bias[c] = (bias[c] - mean[c]) * scale[c] + beta[c];
        }
    }
    // burn [cout][cin/g][kh][kw] -> [cout][kh][kw][cin/g]
    let mut weight = vec![0.0; w.len()];
    for o in 0..cout {
        for i in 0..cin_g {
            for y in 0..kh {
                for x in 0..kw {
                    weight[((o * kh + y) * kw + x) * cin_g + i] = w[((o * cin_g + i) * kh + y) * kw + x] * scale[o];
                }
            }
        }
    }
    Ok(ConvWeights { cin: cin_g * groups, cout, kernel: kh, stride: conv.stride[0], pad, groups, weight, bias, act })
}

fn conv_bn_relu6(name: &str, m: &ConvBnRelu6) -> Result<ConvWeights, ExportError> {
    conv_weights(name, &m.conv, Some(&m.bn), Activation::Relu6)
}

fn inverted_residual(name: &str, b: &InvertedResidual) -> Result<Op, ExportError> {
    Ok(Op::InvertedResidual {
        expand: b.expand.as_ref().map(|e| conv_bn_relu6(&format!("{name}.expand"), e)).transpose()?,
        depthwise: conv_bn_relu6(&format!("{name}.depthwise"), &b.depthwise)?,
        project: conv_weights(&format!("{name}.project"), &b.project, Some(&b.project_bn), Activation::None)?,
        residual: b.residual,
    })
}

/// A linear layer as a 1x1 convolution on a 1x1 map.
fn linear(name: &str, l: &Linear) -> Result<ConvWeights, ExportError> {
    let [fin, fout] = l.weight.dims();
    let w = values(name, l.weight.val())?;
    let weight = (0..fout).flat_map(|o| (0..fin).map(move |i| (o, i))).map(|(o, i)| w[i * fout + o]).collect();
    let bias = match &l.bias {
        Some(b) => values(name, b.val())?,
        None => vec![0.0; fout],
    };
    Ok(ConvWeights {
        cin: fin,
        cout: fout,
        kernel: 1,
        stride: 1,
        pad: 0,
        groups: 1,
        weight,
        bias,
        act: Activation::None,
    })
}

fn cell(name: &str, c: &RnnCell) -> Result<CellWeights, ExportError> {
    let RnnCell::FastGrnn(c) = c else {
        return Err(ExportError::Unsupported {
            layer: name.into(),
            why: format!("{} cells (the C runtime implements FastGRNN, the paper's cell)", c.name()),
        });
    };
    let (input, hidden) = (c.input_size(), c.hidden_size());
    let w = values(name, c.w.val())?;
    let u = values(name, c.u.val())?;
    let transpose = |m: &[f32], rows: usize| -> Vec<f32> {
        (0..hidden).flat_map(|j| (0..rows).map(move |i| (j, i))).map(|(j, i)| m[i * hidden + j]).collect()
    };
    let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
    Ok(CellWeights {
        input,
        hidden,
        w: transpose(&w, input),
        u: transpose(&u, hidden),
        bias_gate: values(name, c.bias_gate.val())?,
        bias_update: values(name, c.bias_update.val())?,
        zeta: sig(values(name, c.zeta.val())?[0]),
        nu: sig(values(name, c.nu.val())?[0]),
    })
}

fn rnnpool_op(name: &str, pool: &RnnPool, patch: usize, stride: usize, replicate: bool) -> Result<Op, ExportError> {
    Ok(Op::RnnPool {
        patch,
        stride,
        rnn1: cell(&format!("{name}.rnn1"), &pool.rnn1)?,
        rnn2: cell(&format!("{name}.rnn2"), &pool.rnn2)?,
        replicate,
    })
}

fn rnnpool_layer(g: &mut Graph, name: &str, input: TensorId, layer: &RnnPoolLayer) -> Result<TensorId, ExportError> {
    let [r, c] = layer.patch_size;
    if r != c || layer.stride[0] != layer.stride[1] {
        return Err(ExportError::Unsupported { layer: name.into(), why: "non-square patches or strides".into() });
    }
    let [h, w, _] = g.tensors[input];
    layer.output_dims(h, w)?;
    Ok(g.push(name, input, rnnpool_op(name, &layer.pool, r, layer.stride[0], true)?))
}

/// The graph of `net` for one `input` image `[height, width, channels]`.
pub fn lower(model: &str, net: &Net, input: Shape) -> Result<Graph, ExportError> {
    let mut g = Graph::new(model, input);
    match net {
        Net::Face(f) => face(&mut g, f)?,
        Net::MobileNetV2(m) => mobilenet_v2(&mut g, m)?,
        Net::Small(m) => small(&mut g, m)?,
        Net::DenseNet(m) => densenet(&mut g, m)?,
    }
    Ok(g)
}

fn face(g: &mut Graph, f: &FaceDetector) -> Result<(), ExportError> {
    let mut x = g.input;
    for (i, conv) in f.stem.iter().enumerate() {
        let name = format!("stem.{i}");
        x = g.push(&name, x, Op::Conv { conv: conv_bn_relu6(&name, conv)? });
    }
    let stem = x;
    x = rnnpool_layer(g, "rnn_pool", stem, &f.rnn_pool)?;
    // Heads run right after their source (the stem's output, for Face-Quant's first head, or
    // an inverted residual's) so that the source map dies early.
    let sources = f.arch.sources();
    let mut k = 0;
    if sources.contains(&None) {
        face_head(g, f, k, stem)?;
        k += 1;
    }
    for (i, block) in f.blocks.iter().enumerate() {
        let name = format!("mob.{i}");
        x = g.push(&name, x, inverted_residual(&name, block)?);
        if sources.contains(&Some(i)) {
            face_head(g, f, k, x)?;
            k += 1;
        }
    }
    Ok(())
}

fn face_head(g: &mut Graph, f: &FaceDetector, k: usize, source: TensorId) -> Result<(), ExportError> {
    let src = match f.norms.get(k) {
        Some(norm) => {
            let name = format!("l2norm.{k}");
            g.push(&name, source, Op::L2Norm { weight: values(&name, norm.weight.val())? })
        }
        None => source,
    };
    let pre = |g: &mut Graph, m: &Option<ConvBnRelu6>, name: &str| -> Result<TensorId, ExportError> {
        match (k, m) {
            (0, Some(m)) => Ok(g.push(name, src, Op::Conv { conv: conv_bn_relu6(name, m)? })),
            _ => Ok(src),
        }
    };
    let loc_in = pre(g, &f.loc_pre, "loc.pre")?;
    let name = format!("loc.{k}");
    let loc = g.push(&name, loc_in, Op::Conv { conv: conv_weights(&name, &f.loc[k], None, Activation::None)? });
    let conf_in = pre(g, &f.conf_pre, "conf.pre")?;
    let name = format!("conf.{k}");
    let mut conf = g.push(&name, conf_in, Op::Conv { conv: conv_weights(&name, &f.conf[k], None, Activation::None)? });
    if k == 0 {
        conf = g.push("conf.0.maxout", conf, Op::MaxOut);
    }
    g.outputs.push((loc, OutputKind::Loc));
    g.outputs.push((conf, OutputKind::Conf));
    Ok(())
}

/// Eval-mode BatchNorm + ReLU on its own (DenseNet's pre-activation), as a per-channel 1x1
/// depthwise convolution: `relu(x * gamma / sigma + beta - mean * gamma / sigma)`.
fn batch_norm_relu(name: &str, bn: &BatchNorm) -> Result<ConvWeights, ExportError> {
    let gamma = values(name, bn.gamma.val())?;
    let beta = values(name, bn.beta.val())?;
    let mean = values(name, bn.running_mean.value())?;
    let var = values(name, bn.running_var.value())?;
    let scale: Vec<f32> = gamma.iter().zip(&var).map(|(g, v)| g / (v + bn.epsilon as f32).sqrt()).collect();
    let bias = beta.iter().zip(&mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
    let c = gamma.len();
    Ok(ConvWeights {
        cin: c,
        cout: c,
        kernel: 1,
        stride: 1,
        pad: 0,
        groups: c,
        weight: scale,
        bias,
        act: Activation::Relu,
    })
}

/// DenseNet121(-RNNPool): dense layers as BN+ReLU, 1x1 conv (with the next BatchNorm and ReLU
/// folded in), 3x3 conv, and a concatenation; transitions as BN+ReLU, 1x1 conv, 2x2 average pool.
fn densenet(g: &mut Graph, m: &DenseNet) -> Result<(), ExportError> {
    let mut x =
        g.push("conv0", g.input, Op::Conv { conv: conv_weights("conv0", &m.conv0, Some(&m.norm0), Activation::Relu)? });
    if m.pool0.is_some() {
        return Err(ExportError::Unsupported {
            layer: "pool0 (3x3 max pooling)".into(),
            why: "the C runtime has no max pooling; DenseNet121-RNNPool, which replaces it, exports".into(),
        });
    }
    if let Some(pool) = &m.rnn_pool {
        x = rnnpool_layer(g, "rnn_pool", x, pool)?;
    }
    for (b, (block, transition)) in m.blocks.iter().zip(&m.transitions).enumerate() {
        for (i, layer) in block.iter().enumerate() {
            let name = format!("block{}.{i}", b + 1);
            let h = g.push(format!("{name}.norm1"), x, Op::Conv { conv: batch_norm_relu(&name, &layer.norm1)? });
            let conv1 = conv_weights(&format!("{name}.conv1"), &layer.conv1, Some(&layer.norm2), Activation::Relu)?;
            let h = g.push(format!("{name}.conv1"), h, Op::Conv { conv: conv1 });
            let conv2 = conv_weights(&format!("{name}.conv2"), &layer.conv2, None, Activation::None)?;
            let h = g.push(format!("{name}.conv2"), h, Op::Conv { conv: conv2 });
            x = g.push(format!("{name}.concat"), x, Op::Concat { other: h });
        }
        if let Some(t) = transition {
            let name = format!("transition{}", b + 1);
            let h = g.push(format!("{name}.norm"), x, Op::Conv { conv: batch_norm_relu(&name, &t.norm)? });
            let conv = conv_weights(&format!("{name}.conv"), &t.conv, None, Activation::None)?;
            let h = g.push(format!("{name}.conv"), h, Op::Conv { conv });
            if t.pool.padding != PaddingConfig2d::Valid {
                return Err(ExportError::Unsupported {
                    layer: format!("{name}.pool"),
                    why: "padded average pooling".into(),
                });
            }
            x = g.push(format!("{name}.pool"), h, Op::AvgPool { kernel: t.pool.kernel_size, stride: t.pool.stride });
        }
    }
    x = g.push("norm5", x, Op::Conv { conv: batch_norm_relu("norm5", &m.norm5)? });
    x = global_avg_pool(g, "avgpool", x);
    let logits = g.push("classifier", x, Op::Conv { conv: linear("classifier", &m.classifier)? });
    g.outputs.push((logits, OutputKind::Logits));
    Ok(())
}

fn global_avg_pool(g: &mut Graph, name: &str, x: TensorId) -> TensorId {
    let [h, w, _] = g.tensors[x];
    g.push(name, x, Op::AvgPool { kernel: [h, w], stride: [h, w] })
}

fn mobilenet_v2(g: &mut Graph, m: &MobileNetV2) -> Result<(), ExportError> {
    let mut x = g.push("stem", g.input, Op::Conv { conv: conv_bn_relu6("stem", &m.stem)? });
    if let Some(pool) = &m.rnn_pool {
        x = rnnpool_layer(g, "rnn_pool", x, pool)?;
    }
    for (i, block) in m.blocks.iter().enumerate() {
        let name = format!("block.{i}");
        x = g.push(&name, x, inverted_residual(&name, block)?);
    }
    x = g.push("last", x, Op::Conv { conv: conv_bn_relu6("last", &m.last)? });
    x = match &m.last_pool {
        Some(pool) => {
            let [h, w, _] = g.tensors[x];
            if h != w {
                return Err(ExportError::Unsupported {
                    layer: "last_rnnpool".into(),
                    why: format!("the whole {h}x{w} map is one patch, and patches must be square"),
                });
            }
            g.push("last_rnnpool", x, rnnpool_op("last_rnnpool", pool, h, h, false)?)
        }
        None => global_avg_pool(g, "avgpool", x),
    };
    // Dropout is the identity at inference.
    let logits = g.push("classifier", x, Op::Conv { conv: linear("classifier", &m.classifier)? });
    g.outputs.push((logits, OutputKind::Logits));
    Ok(())
}

fn small(g: &mut Graph, m: &SmallMobileNet) -> Result<(), ExportError> {
    let mut x = g.push("stem", g.input, Op::Conv { conv: conv_bn_relu6("stem", &m.stem)? });
    if let Some(pool) = &m.rnn_pool {
        x = rnnpool_layer(g, "rnn_pool", x, pool)?;
    }
    if let Some(pool) = &m.avg_pool {
        if pool.padding != PaddingConfig2d::Valid {
            return Err(ExportError::Unsupported { layer: "avg_pool".into(), why: "padded average pooling".into() });
        }
        x = g.push("avg_pool", x, Op::AvgPool { kernel: pool.kernel_size, stride: pool.stride });
    }
    for (i, block) in m.blocks.iter().enumerate() {
        let name = format!("block.{i}");
        x = g.push(&name, x, inverted_residual(&name, block)?);
    }
    x = g.push("last", x, Op::Conv { conv: conv_bn_relu6("last", &m.last)? });
    x = global_avg_pool(g, "avgpool", x);
    let logits = g.push("classifier", x, Op::Conv { conv: linear("classifier", &m.classifier)? });
    g.outputs.push((logits, OutputKind::Logits));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{DenseNetConfig, FaceArch, SmallMobileNetConfig};
    use rnnpool_core::{RnnCellKind, RnnPoolLayerConfig};

    #[test]
    fn layers_without_a_kernel_are_errors_naming_them() {
        let device = Device::flex();
        let mut small = SmallMobileNetConfig::new().init(&device).unwrap();
        small.rnn_pool =
            Some(RnnPoolLayerConfig::square(16, 4, 2, 8, 8).with_cell(RnnCellKind::Gru).init(&device).unwrap());
        let err = |r: Result<Graph, ExportError>| r.err().map(|e| e.to_string()).unwrap_or_default();
        let e = err(lower("small", &Net::Small(small), [28, 28, 1]));
        assert!(e.contains("rnn_pool.rnn1") && e.contains("GRU"), "{e}");

        let dense = DenseNetConfig::new().with_block_config([1, 1, 1, 1]).with_growth_rate(4).with_init_features(8);
        let e = err(lower("densenet", &Net::DenseNet(dense.init(&device).unwrap()), [32, 32, 3]));
        assert!(e.contains("pool0 (3x3 max pooling)"), "{e}");

        let face = FaceArch::M4.init(&device).unwrap();
        let e = err(lower("face_m4", &Net::Face(face), [8, 8, 1]));
        assert!(e.contains("patch"), "{e}");
    }
}
