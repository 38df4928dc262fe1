//! Visual Wake Words from COCO 2014: an instances JSON (the scripts/ split
//! `instances_maxitrain.json` / `instances_minival.json`, or any COCO instances file) and its
//! image folder. An image is labelled "person" (1) when some person annotation covers more
//! than 0.5 % of the image, as TF's `build_visualwakewords_data` does with COCO's `area` (the
//! mask's area; the box's when a file lacks it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::DataError;
use crate::imagenet::ClassList;

/// The fraction of the image a person must cover.
pub const VWW_AREA_THRESHOLD: f64 = 0.005;
/// The two classes, by index.
pub const VWW_CLASSES: [&str; 2] = ["not-person", "person"];

#[derive(Deserialize)]
struct Instances {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
    width: f64,
    height: f64,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    image_id: u64,
    category_id: u64,
    area: Option<f64>,
    bbox: Option<[f64; 4]>,
}

#[derive(Deserialize)]
struct CocoCategory {
    id: u64,
    name: String,
}

/// Reads `instances` and labels each of its images; image paths are `images_dir/file_name`.
pub fn load(instances: &Path, images_dir: &Path) -> Result<ClassList, DataError> {
    let text = crate::text::read_text(instances)?;
    let parsed: Instances = serde_json::from_str(&text).map_err(|e| DataError::Parse {
        path: instances.into(),
        line: e.line(),
        message: e.to_string(),
    })?;
    let person =
        parsed.categories.iter().find(|c| c.name == "person").map(|c| c.id).ok_or_else(|| DataError::Format {
            path: instances.into(),
            message: "no category named `person`".into(),
        })?;
    let mut covered: HashMap<u64, f64> = HashMap::new();
    for a in parsed.annotations.iter().filter(|a| a.category_id == person) {
        let area = a.area.or(a.bbox.map(|b| b[2] * b[3])).unwrap_or(0.0);
        let best = covered.entry(a.image_id).or_insert(0.0);
        *best = best.max(area);
    }
    let mut items = Vec::with_capacity(parsed.images.len());
    for img in &parsed.images {
        let area = covered.get(&img.id).copied().unwrap_or(0.0);
        let label = usize::from(area > VWW_AREA_THRESHOLD * img.width * img.height);
        items.push((images_dir.join(&img.file_name), label));
    }
    if items.is_empty() {
        return Err(DataError::Empty { path: instances.into() });
    }
    Ok(ClassList { items, classes: VWW_CLASSES.iter().map(|s| s.to_string()).collect() })
}

/// Where scripts/make_vww.py leaves a split: `<root>/annotations/instances_{maxitrain,minival}.json`
/// with images under `<root>/all2014/`. `split` is `train` or `val`.
pub fn split(root: &Path, split: &str) -> Result<ClassList, DataError> {
    let name = match split {
        "train" => "instances_maxitrain.json",
        "val" => "instances_minival.json",
        other => {
            return Err(DataError::Format { path: root.into(), message: format!("VWW split `{other}`: train or val") });
        }
    };
    load(&root.join("annotations").join(name), &PathBuf::from(root).join("all2014"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_half_percent_person_rule() {
        let dir = std::env::temp_dir().join(format!("vww-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = r#"{
          "images": [
            {"id": 1, "file_name": "a.jpg", "width": 100, "height": 100},
            {"id": 2, "file_name": "b.jpg", "width": 100, "height": 100},
            {"id": 3, "file_name": "c.jpg", "width": 100, "height": 100},
            {"id": 4, "file_name": "d.jpg", "width": 100, "height": 100}
          ],
          "annotations": [
            {"image_id": 1, "category_id": 1, "area": 60.0, "bbox": [0, 0, 1, 1]},
            {"image_id": 2, "category_id": 1, "area": 40.0, "bbox": [0, 0, 10, 10]},
            {"image_id": 3, "category_id": 18, "area": 5000.0},
            {"image_id": 4, "category_id": 1, "bbox": [0, 0, 10, 6]}
          ],
          "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]
        }"#;
        let p = dir.join("instances.json");
        std::fs::write(&p, json).unwrap();
        let list = load(&p, Path::new("/imgs")).unwrap();
        let labels: Vec<usize> = list.items.iter().map(|(_, l)| *l).collect();
        // 60 > 50 (0.5 % of 100x100); 40 is not, whatever its box; a dog is not a person; no
        // `area`: the box's 60.
        assert_eq!(labels, [1, 0, 0, 1]);
        assert_eq!(list.items[1].0, Path::new("/imgs/b.jpg"));

        std::fs::write(&p, "{\n\"images\": [\n{\"id\": \"x\"}]}").unwrap();
        let e = load(&p, Path::new("/imgs")).unwrap_err().to_string();
        assert!(e.contains("instances.json:3"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
