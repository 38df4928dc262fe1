//! Prints a model's per-layer output shapes, parameters, MACs and activation memory, and its
//! totals and peak RAM under the paper's convention (see `models::summary`).
//!
//!   cargo run -p models --bin summary -- --model rnnpool-face-m4 --input 1x240x320 [--bytes 1]
//!       [--classes N]

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use models::{DenseNetConfig, FaceArch, MobileNetV2Config, Report};

const MODELS: [&str; 10] = [
    "rnnpool-face-c",
    "rnnpool-face-quant",
    "rnnpool-face-qvga-monochrome",
    "rnnpool-face-m4",
    "mobilenetv2",
    "mobilenetv2-rnnpool",
    "mobilenetv2-vww",
    "mobilenetv2-vww-2rnnpool",
    "densenet121",
    "densenet121-rnnpool",
];

fn report(model: &str, input: [usize; 3], classes: Option<usize>, device: &Device) -> Result<Report> {
    let face = |arch: FaceArch| -> Result<Report> { Ok(arch.init(device)?.report(input)?) };
    let n = classes.unwrap_or(1000);
    Ok(match model {
        "rnnpool-face-c" => face(FaceArch::C)?,
        "rnnpool-face-quant" => face(FaceArch::Quant)?,
        "rnnpool-face-qvga-monochrome" => face(FaceArch::QvgaMonochrome)?,
        "rnnpool-face-m4" => face(FaceArch::M4)?,
        "mobilenetv2" => MobileNetV2Config::new().with_num_classes(n).init(device)?.report(input)?,
        "mobilenetv2-rnnpool" => MobileNetV2Config::imagenet_rnnpool(n).init(device)?.report(input)?,
        "mobilenetv2-vww" => {
            MobileNetV2Config::vww().with_num_classes(classes.unwrap_or(2)).init(device)?.report(input)?
        }
        "mobilenetv2-vww-2rnnpool" => {
            MobileNetV2Config::vww_two_rnnpools().with_num_classes(classes.unwrap_or(2)).init(device)?.report(input)?
        }
        "densenet121" => DenseNetConfig::new().with_num_classes(n).init(device)?.report(input)?,
        "densenet121-rnnpool" => DenseNetConfig::rnnpool_121(n).init(device)?.report(input)?,
        other => bail!("unknown model `{other}`; choose one of: {}", MODELS.join(", ")),
    })
}

fn parse_input(s: &str) -> Result<[usize; 3]> {
    let dims: Vec<usize> = s
        .split('x')
        .map(|d| d.parse::<usize>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--input `{s}`: expected CxHxW, e.g. 1x240x320"))?;
    match dims[..] {
        [c, h, w] if c > 0 && h > 0 && w > 0 => Ok([c, h, w]),
        _ => bail!("--input `{s}`: expected three positive sizes CxHxW, e.g. 1x240x320"),
    }
}

fn main() -> Result<()> {
    let mut model = None;
    let mut input = None;
    let mut bytes = 4;
    let mut classes = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--model" => model = Some(value()?),
            "--input" => input = Some(parse_input(&value()?)?),
            "--bytes" => {
                bytes = value()?.parse().context("--bytes: 4 (f32) or 1 (int8)")?;
                if bytes != 1 && bytes != 4 {
                    bail!("--bytes {bytes}: 4 (f32) or 1 (int8)");
                }
            }
            "--classes" => classes = Some(value()?.parse().context("--classes: a positive number")?),
            other => bail!("unknown argument `{other}`; usage: --model NAME --input CxHxW [--bytes 4|1] [--classes N]"),
        }
    }
    let model = model.with_context(|| format!("--model is required: {}", MODELS.join(", ")))?;
    let input = input.context("--input CxHxW is required, e.g. 1x240x320")?;
    let device = Device::flex();
    let report = report(&model, input, classes, &device).with_context(|| format!("{model} at {input:?}"))?;
    println!("{model}, input {}x{}x{}, {} bytes per activation", input[0], input[1], input[2], bytes);
    print!("{}", report.table(bytes));
    Ok(())
}
