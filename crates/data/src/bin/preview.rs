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
use data::wider::{FaceBox, WiderFace};
use image::{Rgb, RgbImage};

fn draw(img: &mut RgbImage, b: &FaceBox) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let [x1, y1, x2, y2] = [b.x1, b.y1, b.x2 - 1.0, b.y2 - 1.0].map(|v| v.round() as i64);
    let mut put = |x: i64, y: i64| {
        if (0..w).contains(&x) && (0..h).contains(&y) {
            img.put_pixel(x as u32, y as u32, Rgb([0, 255, 0]));
        }
    };
    for x in x1..=x2 {
        put(x, y1);
        put(x, y2);
    }
    for y in y1..=y2 {
        put(x1, y);
        put(x2, y);
    }
}

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
                draw(&mut sample, b);
            }
            let name = a.image.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            let path = out.join(format!("{name}_e{epoch}.png"));
            sample.save(&path)?;
            println!("{} ({} faces)", path.display(), boxes.len());
        }
    }
    Ok(())
}
