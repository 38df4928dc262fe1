//! Every model the trainer builds (`model.name`) runs forward and backward on burn's wgpu
//! backend with the numbers it has on NdArray, from the same weights: the loss (mean square of
//! the outputs, BatchNorm in training mode) within 1e-3, the output layer's gradient within 1 %,
//! and the same parameters get gradients. Not every gradient is compared: at these small inputs
//! the deep models end in 1x1 maps whose BatchNorms normalise 2 values per channel, and the
//! gradient behind them is ill-conditioned. Measured on Face-C: the summed |gradient| is
//! 1.29e7 on NdArray, 2.11e7 on wgpu and 7.44e6 on Flex (Face-Quant: 288, 5285 and 19958), while
//! the loss and the output layer agree to 1e-4 and 1e-5. Small inputs, as lavapipe runs them on
//! the CPU: `cargo test -p train --features wgpu --test wgpu_models`. DenseNet121-RNNPool is
//! left out unless `RNNPOOL_WGPU_DENSENET=1`: lavapipe compiles shaders for each of its many
//! layer shapes and took 738 s for it here (it passed: loss within 4e-6, every parameter's
//! gradient within 7.1e-4).

#![cfg(feature = "wgpu")]

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::{DeviceKind, Distribution, Gradients};
use zoo::Net;

/// Per parameter, the summed |gradient|, if it got one.
struct GradSums<'a> {
    grads: &'a Gradients,
    sums: Vec<Option<f32>>,
}

impl ModuleVisitor for GradSums<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let sum = param.val().grad(self.grads).map(|g| g.abs().sum().into_scalar::<f32>());
        self.sums.push(sum);
    }
}

/// The loss and the per-parameter gradient sums of `net` on `input`, on `net`'s device.
fn step(net: &Net, input: Tensor<4>) -> (f32, Vec<Option<f32>>) {
    let loss = match net {
        Net::Face(m) => {
            let out = m.forward(input).unwrap();
            out.loc.powi_scalar(2).mean() + out.conf.powi_scalar(2).mean()
        }
        classifier => classifier.classify(input).unwrap().powi_scalar(2).mean(),
    };
    let value = loss.clone().into_scalar::<f32>();
    let grads = loss.backward();
    let mut sums = GradSums { grads: &grads, sums: Vec::new() };
    net.visit(&mut sums);
    (value, sums.sums)
}

#[test]
#[allow(deprecated)]
fn every_model_trains_on_wgpu_as_on_ndarray() {
    let cpu = Device::ndarray().autodiff();
    let gpu = Device::wgpu(DeviceKind::DefaultDevice).autodiff();
    // (name, input channels, input side, batch)
    let models = [
        ("face_c", 3, 64, 2),
        ("face_quant", 3, 64, 2),
        ("face_qvga", 1, 64, 2),
        ("face_m4", 1, 64, 2),
        ("mobilenetv2", 3, 64, 2),
        ("mobilenetv2_rnnpool", 3, 64, 2),
        ("vww", 3, 64, 2),
        ("densenet121_rnnpool", 3, 64, 2),
        ("small_rnnpool", 1, 28, 2),
        ("small_avgpool", 1, 28, 2),
    ];
    let mut failed = Vec::new();
    let densenet = std::env::var_os("RNNPOOL_WGPU_DENSENET").is_some();
    for (name, channels, side, batch) in models {
        if name.starts_with("densenet") && !densenet {
            continue;
        }
        let start = std::time::Instant::now();
        cpu.seed(0);
        let net = zoo::registry::init(name.parse().unwrap(), 10, channels, &cpu).unwrap();
        // No dropout: burn's would draw different masks on the two backends.
        let net = match net {
            Net::MobileNetV2(mut m) => {
                m.dropout = None;
                Net::MobileNetV2(m)
            }
            other => other,
        };
        let x = Tensor::<4>::random([batch, channels, side, side], Distribution::Normal(0.0, 1.0), &cpu);
        let (loss_gpu, grads_gpu) = step(&net.clone().fork(&gpu), x.clone().detach().to_device(&gpu));
        let (loss_cpu, grads_cpu) = step(&net, x);
        let total = |g: &[Option<f32>]| g.iter().flatten().sum::<f32>();
        let (sum_cpu, sum_gpu) = (total(&grads_cpu), total(&grads_gpu));
        // The last parameter with a gradient: an output layer, whose gradient (features x output
        // gradient) does not go back through any BatchNorm.
        let last = grads_cpu.iter().rposition(Option::is_some).unwrap_or(0);
        let (last_cpu, last_gpu) = (grads_cpu[last].unwrap_or(0.0), grads_gpu[last].unwrap_or(0.0));
        let worst = grads_cpu
            .iter()
            .zip(&grads_gpu)
            .filter_map(|(c, g)| Some((c.as_ref()? - g.as_ref()?).abs() / c.as_ref()?.max(1e-30)))
            .fold(0.0f32, f32::max);
        eprintln!(
            "{name}: loss ndarray {loss_cpu} wgpu {loss_gpu}; sum |grad| {sum_cpu} vs {sum_gpu}; output layer \
             {last_cpu} vs {last_gpu}; worst parameter {worst:.2e}; {} of {} with a gradient; {:.1} s",
            grads_gpu.iter().flatten().count(),
            grads_gpu.len(),
            start.elapsed().as_secs_f64()
        );
        if (loss_cpu - loss_gpu).abs() > 1e-3 * loss_cpu.abs().max(1e-3) {
            failed.push(format!("{name}: loss {loss_cpu} vs {loss_gpu}"));
        }
        if !(last_cpu > 0.0 && (last_cpu - last_gpu).abs() <= 0.01 * last_cpu) {
            failed.push(format!("{name}: output layer gradient {last_cpu} vs {last_gpu}"));
        }
        if !sum_gpu.is_finite() || sum_gpu <= 0.0 {
            failed.push(format!("{name}: sum of gradients {sum_gpu}"));
        }
        let has = |g: &[Option<f32>]| g.iter().map(Option::is_some).collect::<Vec<_>>();
        if has(&grads_cpu) != has(&grads_gpu) {
            failed.push(format!("{name}: other parameters have a gradient on NdArray and on wgpu"));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
