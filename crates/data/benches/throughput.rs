//! Images per second through the loaders (decode + augmentation + normalisation + batching)
//! on the bundled WIDER-format sample: the VGA and QVGA face pipelines, and the ImageNet
//! training pipeline (the same photos laid out as an ImageNet class tree).
//!
//!   cargo bench -p data --bench throughput [-- --workers 2 --epochs 8]

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::prelude::Device;
use data::augment::classification::IMAGENET_SCALE;
use data::class_dataset::{ClassBatcher, ClassPipeline, ImageClassDataset};
use data::face_dataset::{FaceBatcher, FaceDataset, FacePipeline};
use data::imagenet::ImageNet;
use data::wider::{FaceList, WiderFace};

fn sample_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/wider_sample")
}

/// Every bundled photo (train and val) in one list.
fn all_photos() -> Result<FaceList, Box<dyn std::error::Error>> {
    let w = WiderFace::new(sample_root());
    let mut list = w.split("train")?;
    list.images.extend(w.split("val")?.images);
    Ok(list)
}

fn report(name: &str, images: usize, secs: f64, workers: usize) {
    println!(
        "{{\"pipeline\":\"{name}\",\"workers\":{workers},\"images\":{images},\"seconds\":{secs:.3},\"images_per_s\":{:.1}}}",
        images as f64 / secs
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut workers, mut epochs) = (2usize, 8u64);
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(a) = args.next() {
        let v: u64 = args.next().ok_or(format!("{a} needs a value"))?.parse()?;
        match a.as_str() {
            "--workers" => workers = v as usize,
            "--epochs" => epochs = v,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let device = Device::flex();

    for (name, pipeline) in [("wider_vga_train", FacePipeline::VgaTrain), ("wider_qvga_train", FacePipeline::QvgaTrain)]
    {
        let ds = std::sync::Arc::new(FaceDataset::new(all_photos()?, pipeline, 0, &sample_root(), false)?);
        let n = ds.len();
        let start = Instant::now();
        for epoch in 0..epochs {
            ds.set_epoch(epoch);
            let loader = DataLoaderBuilder::new(FaceBatcher)
                .batch_size(4)
                .num_workers(workers)
                .set_device(device.clone())
                .build(ds.clone());
            for batch in loader.iter() {
                batch?;
            }
        }
        report(name, n * epochs as usize, start.elapsed().as_secs_f64(), workers);
    }

    let tree = std::env::temp_dir().join(format!("throughput-imagenet-{}", std::process::id()));
    for (i, a) in all_photos()?.images.iter().enumerate() {
        let dir = tree.join("train").join(format!("n{:08}", i % 3));
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(&a.image, dir.join(format!("{i}.JPEG")))?;
    }
    let list = ImageNet::new(&tree).split("train")?;
    let ds = std::sync::Arc::new(ImageClassDataset::new(
        list,
        ClassPipeline::Train { size: 224, scale: IMAGENET_SCALE },
        0,
        &tree,
    )?);
    let n = ds.len();
    let start = Instant::now();
    for epoch in 0..epochs {
        ds.set_epoch(epoch);
        let loader = DataLoaderBuilder::new(ClassBatcher)
            .batch_size(4)
            .num_workers(workers)
            .set_device(device.clone())
            .build(ds.clone());
        for batch in loader.iter() {
            batch?;
        }
    }
    report("imagenet_train_224", n * epochs as usize, start.elapsed().as_secs_f64(), workers);
    std::fs::remove_dir_all(&tree).ok();
    Ok(())
}
