//! ImageNet on disk: `train/<wnid>/*.JPEG`, and `val/` either as class folders or flat with
//! `LOC_val_solution.csv` (Kaggle's layout); ImageNet-10 as the paper's 10 wnids picked from a
//! full tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::DataError;

/// The paper's ImageNet-10 (App. A.1): classes matching CIFAR-10's, in this order.
pub const IMAGENET10_WNIDS: [&str; 10] = [
    "n02690373", // airliner
    "n04285008", // sports car
    "n01560419", // bulbul
    "n02124075", // Egyptian cat
    "n02430045", // deer (ImageNet-22K)
    "n02099601", // golden retriever
    "n01641577", // bullfrog
    "n03538406", // horse cart
    "n03673027", // ocean liner
    "n04467665", // trailer truck
];

/// Labelled image files and the class names their labels index.
#[derive(Clone, Debug, Default)]
pub struct ClassList {
    /// `(image, class index)`.
    pub items: Vec<(PathBuf, usize)>,
    /// Class names (WordNet ids) by index.
    pub classes: Vec<String>,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpeg" | "jpg" | "png"))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(DataError::io(dir))? {
        out.push(entry.map_err(DataError::io(dir))?.path());
    }
    out.sort();
    Ok(out)
}

/// An ImageNet tree rooted at `root` (holding `train/` and `val/`), restricted to `wnids` when
/// given (an error naming a wnid the tree lacks).
#[derive(Clone, Debug)]
pub struct ImageNet {
    /// The tree's root.
    pub root: PathBuf,
    /// Only these classes (ImageNet-10), or all.
    pub wnids: Option<Vec<String>>,
}

impl ImageNet {
    /// The whole ImageNet tree at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), wnids: None }
    }

    /// The paper's ImageNet-10, taken from a full ImageNet tree.
    pub fn imagenet10(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), wnids: Some(IMAGENET10_WNIDS.iter().map(|s| s.to_string()).collect()) }
    }

    /// The class names: the chosen wnids, or every folder of `train/` sorted (torchvision's
    /// ImageFolder order).
    pub fn classes(&self) -> Result<Vec<String>, DataError> {
        let train = self.root.join("train");
        let found: Vec<String> = read_dir_sorted(&train)?
            .into_iter()
            .filter(|p| p.is_dir())
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        match &self.wnids {
            None if found.is_empty() => Err(DataError::Empty { path: train }),
            None => Ok(found),
            Some(want) => {
                if let Some(missing) = want.iter().find(|w| !found.contains(w)) {
                    return Err(DataError::Format {
                        path: train,
                        message: format!("class folder {missing} is missing"),
                    });
                }
                Ok(want.clone())
            }
        }
    }

    /// `split` is `train` or `val`.
    pub fn split(&self, split: &str) -> Result<ClassList, DataError> {
        let classes = self.classes()?;
        let dir = self.root.join(split);
        let index: BTreeMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
        let mut items = Vec::new();
        let foldered = classes.iter().any(|c| dir.join(c).is_dir());
        if foldered {
            for (label, class) in classes.iter().enumerate() {
                let folder = dir.join(class);
                if !folder.is_dir() {
                    continue;
                }
                items.extend(read_dir_sorted(&folder)?.into_iter().filter(|p| is_image(p)).map(|p| (p, label)));
            }
        } else {
            let csv = [self.root.join("LOC_val_solution.csv"), dir.join("LOC_val_solution.csv")]
                .into_iter()
                .find(|p| p.exists())
                .ok_or_else(|| DataError::Format {
                    path: dir.clone(),
                    message: "neither class folders nor LOC_val_solution.csv (beside it or in it)".into(),
                })?;
            for (id, wnid) in parse_loc_solution(&csv)? {
                if let Some(&label) = index.get(wnid.as_str()) {
                    items.push((dir.join(format!("{id}.JPEG")), label));
                }
            }
        }
        if items.is_empty() {
            return Err(DataError::Empty { path: dir });
        }
        Ok(ClassList { items, classes })
    }
}

/// Kaggle's `LOC_val_solution.csv`: header `ImageId,PredictionString`, then
/// `<id>,<wnid> x1 y1 x2 y2 [<wnid> ...]`; the first wnid is the image's class.
pub fn parse_loc_solution(path: &Path) -> Result<Vec<(String, String)>, DataError> {
    let text = crate::text::read_text(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if i == 0 || line.is_empty() {
            continue;
        }
        let bad = |message: &str| DataError::Parse { path: path.into(), line: i + 1, message: message.into() };
        let (id, rest) = line.split_once(',').ok_or_else(|| bad("expected `<ImageId>,<PredictionString>`"))?;
        let wnid = rest.split_whitespace().next().ok_or_else(|| bad("empty PredictionString"))?;
        if !wnid.starts_with('n') || id.is_empty() {
            return Err(bad(&format!("`{wnid}` is not a wnid")));
        }
        out.push((id.to_string(), wnid.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny tree in the real layout: 3 classes of 2 training images, flat val with the CSV.
    fn tree(name: &str, wnids: &[&str]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("imagenet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let img = image::RgbImage::from_pixel(8, 6, image::Rgb([1, 2, 3]));
        let mut csv = String::from("ImageId,PredictionString\n");
        for (c, w) in wnids.iter().enumerate() {
            let d = root.join("train").join(w);
            std::fs::create_dir_all(&d).unwrap();
            for k in 0..2 {
                img.save(d.join(format!("{w}_{k}.JPEG"))).unwrap();
            }
            csv += &format!("ILSVRC2012_val_{c:08},{w} 1 2 3 4 {w} 5 6 7 8\n");
        }
        std::fs::create_dir_all(root.join("val")).unwrap();
        std::fs::write(root.join("LOC_val_solution.csv"), csv).unwrap();
        std::fs::write(root.join("train").join(wnids[0]).join("notes.txt"), "not an image").unwrap();
        root
    }

    #[test]
    fn class_folders_and_the_flat_val_with_its_csv() {
        let root = tree("flat", &["n01", "n02", "n03"]);
        let net = ImageNet::new(&root);
        let train = net.split("train").unwrap();
        assert_eq!(train.classes, ["n01", "n02", "n03"]);
        assert_eq!(train.items.len(), 6);
        assert_eq!(train.items[2].1, 1);
        let val = net.split("val").unwrap();
        assert_eq!(val.items.len(), 3);
        assert!(val.items[2].0.ends_with("val/ILSVRC2012_val_00000002.JPEG"));
        assert_eq!(val.items[2].1, 2);
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn imagenet10_picks_its_wnids_and_names_a_missing_one() {
        let mut wnids = IMAGENET10_WNIDS.to_vec();
        wnids.push("n09999999");
        let root = tree("ten", &wnids);
        let ten = ImageNet::imagenet10(&root).split("train").unwrap();
        assert_eq!(ten.classes.len(), 10);
        assert_eq!(ten.items.len(), 20);
        assert!(ten.items.iter().all(|(p, l)| p.to_string_lossy().contains(IMAGENET10_WNIDS[*l])));
        std::fs::remove_dir_all(root.join("train").join("n02430045")).unwrap();
        let e = ImageNet::imagenet10(&root).split("train").unwrap_err().to_string();
        assert!(e.contains("n02430045") && e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn a_bad_csv_line_names_file_and_line() {
        let root = tree("badcsv", &["n01"]);
        std::fs::write(root.join("LOC_val_solution.csv"), "ImageId,PredictionString\nabc,n01 1 2 3 4\nno comma here\n")
            .unwrap();
        let e = ImageNet::new(&root).split("val").unwrap_err().to_string();
        assert!(e.contains("LOC_val_solution.csv:3"), "{e}");
        std::fs::remove_dir_all(&root).ok();
    }
}
