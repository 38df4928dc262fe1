//! Writes augmented training samples with their boxes drawn, as PNG files, to check the
//! pipeline by eye.
//!
//!   cargo run -p data --bin preview -- --wider datasets/wider_sample --split train --out preview [--pipeline qvga|vga] [--epochs 2] [--seed 0]
//!
//! The images are shown before normalisation (RGB, also for the grey QVGA models).

use std::path::PathBuf;

use data::augment::AugRng;
use data::augment::face::qvga_train;
use data::augment::vga::vga_train;
use data::image_io::load_rgb;
use data::wider::WiderFace;
use image::Rgb;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut wider = PathBuf::from("datasets/wider_sample");
    let mut split = "train".to_string();
    let mut out = PathBuf::from("preview");
    let mut pipeline = "qvga".to_string();
    let (mut epochs, mut seed) = (2u64, 0u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--wider" => wider = v.into(),
            "--split" => split = v,
            "--out" => out = v.into(),
            "--epochs" => epochs = v.parse()?,
            "--seed" => seed = v.parse()?,
            "--pipeline" => pipeline = v,
            other => return Err(format!("unknown argument {other}; see the file's header").into()),
        }
    }
    let augment = match pipeline.as_str() {
        "qvga" => qvga_train,
        "vga" => vga_train,
        other => return Err(format!("--pipeline {other}: expected qvga or vga").into()),
    };
    std::fs::create_dir_all(&out)?;
    let list = WiderFace::new(&wider).split(&split)?;
    for (i, a) in list.images.iter().enumerate() {
        let img = load_rgb(&a.image)?;
        for epoch in 0..epochs {
            let (mut sample, boxes) = augment(&img, &a.boxes, &mut AugRng::for_sample(seed, epoch, i as u64));
            for b in &boxes {
                data::draw::draw_box(&mut sample, [b.x1, b.y1, b.x2, b.y2], Rgb([0, 255, 0]), 1);
            }
            let name = a.image.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            let path = out.join(format!("{name}_e{epoch}.png"));
            sample.save(&path)?;
            println!("{} ({} faces)", path.display(), boxes.len());
        }
    }
    Ok(())
}
