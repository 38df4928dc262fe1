//! Writes augmented training samples with their boxes drawn, as PNG files, to check the
//! pipeline by eye. The images are shown before normalisation (RGB, also for the grey QVGA
//! models).
//!
//!   cargo run -p data --bin preview -- --wider datasets/wider_sample --split train --out preview

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use data::augment::AugRng;
use data::augment::face::qvga_train;
use data::augment::vga::vga_train;
use data::image_io::load_rgb;
use data::wider::{FaceAnnotation, WiderFace};
use image::Rgb;

/// The training augmentation to preview.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Pipeline {
    /// The QVGA models' (RNNPool-Face-M4, -QVGA-monochrome): 320x320.
    Qvga,
    /// The VGA models' (RNNPool-Face-C, -Quant): 640x640.
    Vga,
}

#[derive(Parser, Debug)]
#[command(about = "Write augmented WIDER FACE training samples with their boxes drawn, as PNG files")]
struct Args {
    /// A WIDER FACE folder (`WIDER_<split>/images` and `wider_face_split/`).
    #[arg(long, default_value = "datasets/wider_sample")]
    wider: PathBuf,
    /// The split to read.
    #[arg(long, default_value = "train")]
    split: String,
    /// The folder to write the PNG files to.
    #[arg(long, default_value = "preview")]
    out: PathBuf,
    /// The augmentation.
    #[arg(long, value_enum, default_value_t = Pipeline::Qvga)]
    pipeline: Pipeline,
    /// Augmented versions of each image (one per epoch).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=100))]
    epochs: u64,
    /// The augmentation seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Writes `epochs` augmented versions of image `index` into `out`.
fn preview_one(args: &Args, index: usize, a: &FaceAnnotation) -> Result<()> {
    let img = load_rgb(&a.image)?;
    let augment = match args.pipeline {
        Pipeline::Qvga => qvga_train,
        Pipeline::Vga => vga_train,
    };
    let name = a.image.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    for epoch in 0..args.epochs {
        let (mut sample, boxes) = augment(&img, &a.boxes, &mut AugRng::for_sample(args.seed, epoch, index as u64));
        for b in &boxes {
            data::draw::draw_box(&mut sample, [b.x1, b.y1, b.x2, b.y2], Rgb([0, 255, 0]), 1);
        }
        let path = args.out.join(format!("{name}_e{epoch}.png"));
        sample.save(&path).with_context(|| format!("writing {}", path.display()))?;
        println!("{} ({} faces)", path.display(), boxes.len());
    }
    Ok(())
}

fn create_out(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        anyhow::bail!("--out {}: is a file; give a folder", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let list = WiderFace::new(&args.wider).split(&args.split)?;
    create_out(&args.out)?;
    for (i, a) in list.images.iter().enumerate() {
        preview_one(&args, i, a)?;
    }
    Ok(())
}
