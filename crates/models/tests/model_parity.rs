//! Parity with EdgeML's models: every `*.safetensors` in `$RNNPOOL_MODEL_FIXTURES` (default:
//! the repository's `fixtures/models`) is loaded as the model its `arch` metadata names and run
//! in eval mode (an unknown `arch` fails); `loc`, `conf` and `priors` (faces) or `logits` (classifiers) must match within 1e-3
//! (largest difference over the tensor's largest magnitude).

use burn::prelude::*;
use burn::tensor::DType;
use models::{DenseNetConfig, FaceArch, MobileNetV2Config};
use rnnpool_core::StateDict;

fn rel_err<const D: usize>(got: Tensor<D>, want: &[f64]) -> f64 {
    let got = got.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
    assert_eq!(got.len(), want.len(), "length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max) / scale
}

#[test]
fn implemented_models_match_edgeml() {
    let device = Device::flex();
    for case in fixtures::Set::Models.cases().unwrap_or_else(|e| panic!("{e}")) {
        let path = case.path;
        let state = StateDict::load(&path).unwrap();
        let arch = state.metadata().get("arch").cloned().unwrap_or_default();
        if arch == "model_mobilenet_rnnpool" {
            let model = MobileNetV2Config::vww().init(&device).unwrap().load_state(&state).unwrap();
            let x: Tensor<4> = state.get_any("input").unwrap().to_tensor(&device, DType::F32);
            let err = rel_err(model.forward(x).unwrap(), &state.get_any("logits").unwrap().values);
            eprintln!("{} logits: rel err {err:.2e}", path.display());
            assert!(err <= 1e-3, "{}: logits differ by {err:e}", path.display());
            continue;
        }
        let kind =
            FaceArch::from_edgeml_name(&arch).unwrap_or_else(|| panic!("{}: unknown arch `{arch}`", path.display()));
        let model = kind.init(&device).unwrap().load_edgeml(&state).unwrap();
        let input = state.get_any("input").unwrap();
        let x: Tensor<4> = input.to_tensor(&device, DType::F32);
        let out = model.forward(x).unwrap();
        let [b, p, _] = out.loc.dims();
        let priors = out.priors.reshape([1, p, 4]);
        for (name, got) in [("loc", out.loc), ("conf", out.conf), ("priors", priors)] {
            let want = &state.get_any(name).unwrap().values;
            let err = rel_err(got, want);
            eprintln!("{} {name} (batch {b}, {p} priors): rel err {err:.2e}", path.display());
            assert!(err <= 1e-3, "{}: {name} differs by {err:e}", path.display());
        }
    }
}

#[test]
fn pytorch_checkpoints_give_the_fixture_outputs() {
    // Real `torch.save(state_dict)` files, with EdgeML's aliased RNN keys and
    // num_batches_tracked entries that the loader must ignore.
    let device = Device::flex();
    for (pth_path, twin) in fixtures::Set::Models.pytorch_twins().unwrap_or_else(|e| panic!("{e}")) {
        let pth = StateDict::load(&pth_path).unwrap();
        let reference = StateDict::load(&twin.path).unwrap();
        let arch = twin.require("arch").unwrap_or_else(|e| panic!("{e}"));
        let arch =
            FaceArch::from_edgeml_name(arch).unwrap_or_else(|| panic!("{}: not a face model", pth_path.display()));
        let model = arch.init(&device).unwrap().load_edgeml(&pth).unwrap();
        let x: Tensor<4> = reference.get_any("input").unwrap().to_tensor(&device, DType::F32);
        let out = model.forward(x).unwrap();
        for (name, got) in [("loc", out.loc), ("conf", out.conf)] {
            let err = rel_err(got, &reference.get_any(name).unwrap().values);
            assert!(err <= 1e-5, "{}: {name}: {err:e}", pth_path.display());
        }
    }
}

#[allow(deprecated)]
fn ndarray_autodiff() -> Device {
    Device::ndarray().autodiff()
}

#[test]
fn m4_output_shapes_follow_the_input_size() {
    let device = ndarray_autodiff();
    let model = FaceArch::M4.init(&device).unwrap();
    let out = model.forward(Tensor::zeros([2, 1, 64, 96], &device)).unwrap();
    // 64x96 -> conv 32x48 -> RNNPool 7x11 + 1 = 8x12 -> sources 8x12, 8x12, 4x6, 4x6.
    assert_eq!(out.loc.dims(), [2, 2 * 96 + 2 * 24, 4]);
    assert_eq!(out.conf.dims(), [2, 240, 2]);
    assert_eq!(out.priors.dims(), [240, 4]);
}

#[test]
fn every_face_detector_trains_on_ndarray_autodiff() {
    let device = ndarray_autodiff();
    for arch in FaceArch::ALL {
        let model = arch.init(&device).unwrap();
        let channels = model.stem.first().map_or(3, |c| c.conv.weight.dims()[1]);
        let x = Tensor::<4>::random([2, channels, 64, 64], burn::tensor::Distribution::Normal(0.0, 50.0), &device);
        let out = model.forward(x).unwrap();
        let grads = (out.loc.powi_scalar(2).mean() + out.conf.powi_scalar(2).mean()).backward();
        let first = model.rnn_pool.pool.rnn1.as_fastgrnn().unwrap();
        let g = first.w.val().grad(&grads).unwrap_or_else(|| panic!("{arch:?}: no RNNPool gradient"));
        let g = g.abs().sum().into_scalar::<f32>();
        assert!(g > 0.0 && g.is_finite(), "{arch:?}: {g}");
    }
}

#[test]
fn every_classifier_trains_on_ndarray_autodiff() {
    let device = ndarray_autodiff();
    let configs = [
        ("vww", MobileNetV2Config::vww()),
        ("vww two rnnpools", MobileNetV2Config::vww_two_rnnpools()),
        ("imagenet rnnpool", MobileNetV2Config::imagenet_rnnpool(10)),
        ("mobilenetv2", MobileNetV2Config::new().with_num_classes(10)),
    ];
    for (name, config) in configs {
        let model = config.init(&device).unwrap();
        let x = Tensor::<4>::random([2, 3, 64, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let logits = model.forward(x).unwrap();
        let grads = logits.powi_scalar(2).mean().backward();
        let g = model.stem.conv.weight.grad(&grads).unwrap_or_else(|| panic!("{name}: no stem gradient"));
        assert!(g.abs().sum().into_scalar::<f32>() > 0.0, "{name}");
    }
    for (name, config) in
        [("densenet121", DenseNetConfig::new()), ("densenet121-rnnpool", DenseNetConfig::rnnpool_121(10))]
    {
        let model = config.init(&device).unwrap();
        let x = Tensor::<4>::random([1, 3, 64, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let grads = model.forward(x).unwrap().powi_scalar(2).mean().backward();
        let g = model.conv0.weight.grad(&grads).unwrap_or_else(|| panic!("{name}: no conv0 gradient"));
        assert!(g.abs().sum().into_scalar::<f32>() > 0.0, "{name}");
    }
}
