//! SCUT-HEAD part B: one PASCAL VOC XML file per image (`Annotations/*.xml`), images in
//! `JPEGImages/`, splits as id lists in `ImageSets/Main/{train,val,trainval,test}.txt`.

use std::path::Path;

use crate::DataError;
use crate::wider::{FaceAnnotation, FaceBox, FaceList, Origin};

/// The heads of split `split` of the SCUT-HEAD tree at `root`, image paths absolute. Boxes with
/// no positive size are skipped and counted, as in WIDER FACE.
pub fn split(root: &Path, split: &str) -> Result<FaceList, DataError> {
    let ids = root.join("ImageSets/Main").join(format!("{split}.txt"));
    let text = crate::text::read_text(&ids)?;
    let mut list = FaceList::default();
    for id in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let xml_path = root.join("Annotations").join(format!("{id}.xml"));
        let xml = crate::text::read_text(&xml_path)?;
        let (mut a, skipped) = parse_voc(&xml_path, &xml)?;
        a.image = root.join("JPEGImages").join(&a.image);
        list.skipped_boxes += skipped;
        list.images.push(a);
    }
    if list.images.is_empty() {
        return Err(DataError::Empty { path: ids });
    }
    Ok(list)
}

fn format_err(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Format { path: path.into(), message: message.into() }
}

/// Parses one VOC annotation; `image` is `<filename>` (relative to `JPEGImages/`). Objects
/// whose box has no positive width or height are skipped; the count comes back beside.
pub fn parse_voc(path: &Path, xml: &str) -> Result<(FaceAnnotation, usize), DataError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| DataError::Parse {
        path: path.into(),
        line: e.pos().row as usize,
        message: format!("not well-formed XML: {e}"),
    })?;
    let root = doc.root_element();
    let filename = root
        .children()
        .find(|n| n.has_tag_name("filename"))
        .and_then(|n| n.text())
        .ok_or_else(|| format_err(path, "no <filename>"))?
        .trim()
        .to_string();
    let mut boxes = Vec::new();
    let mut skipped = 0;
    for object in root.children().filter(|n| n.has_tag_name("object")) {
        let line = doc.text_pos_at(object.range().start).row as usize;
        let bndbox = object.children().find(|n| n.has_tag_name("bndbox")).ok_or_else(|| DataError::Parse {
            path: path.into(),
            line,
            message: "<object> without <bndbox>".into(),
        })?;
        let coord = |tag: &str| -> Result<f32, DataError> {
            let text = bndbox.children().find(|n| n.has_tag_name(tag)).and_then(|n| n.text()).unwrap_or("");
            text.trim().parse::<f32>().ok().filter(|v| v.is_finite()).ok_or_else(|| DataError::Parse {
                path: path.into(),
                line,
                message: format!("<{tag}> is `{}`, not a finite number", text.trim()),
            })
        };
        let (x1, y1, x2, y2) = (coord("xmin")?, coord("ymin")?, coord("xmax")?, coord("ymax")?);
        if x2 <= x1 || y2 <= y1 {
            skipped += 1;
            continue;
        }
        boxes.push(FaceBox { x1, y1, x2, y2, invalid: false });
    }
    Ok((FaceAnnotation { image: filename.into(), boxes, origin: Origin { file: path.into(), line: 1 } }, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = "<annotation>\n  <filename>PartB_00001.jpg</filename>\n  <object>\n    <name>person</name>\n    <bndbox><xmin>10</xmin><ymin>20</ymin><xmax>30</xmax><ymax>44</ymax></bndbox>\n  </object>\n  <object>\n    <bndbox><xmin>5</xmin><ymin>5</ymin><xmax>5</xmax><ymax>9</ymax></bndbox>\n  </object>\n</annotation>\n";

    #[test]
    fn voc_boxes_and_degenerate_ones() {
        let (a, skipped) = parse_voc(Path::new("a.xml"), XML).unwrap();
        assert_eq!(a.image, Path::new("PartB_00001.jpg"));
        assert_eq!(a.boxes, vec![FaceBox { x1: 10.0, y1: 20.0, x2: 30.0, y2: 44.0, invalid: false }]);
        assert_eq!(skipped, 1);
    }

    #[test]
    fn a_split_reads_its_ids_annotations_and_names_a_missing_file() {
        let root = std::env::temp_dir().join(format!("scut-{}", std::process::id()));
        std::fs::create_dir_all(root.join("ImageSets/Main")).unwrap();
        std::fs::create_dir_all(root.join("Annotations")).unwrap();
        std::fs::write(root.join("Annotations/PartB_00001.xml"), XML).unwrap();
        std::fs::write(root.join("ImageSets/Main/train.txt"), "PartB_00001\n\n").unwrap();
        std::fs::write(root.join("ImageSets/Main/test.txt"), "PartB_00001\nPartB_00002\n").unwrap();
        let list = split(&root, "train").unwrap();
        assert_eq!((list.images.len(), list.faces(), list.skipped_boxes), (1, 1, 1));
        assert_eq!(list.images[0].image, root.join("JPEGImages/PartB_00001.jpg"));
        let e = split(&root, "test").unwrap_err().to_string();
        assert!(e.contains("PartB_00002.xml"), "{e}");
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn bad_xml_names_file_and_line() {
        let bad = XML.replace("<xmax>30</xmax>", "<xmax>3o</xmax>");
        let e = parse_voc(Path::new("b.xml"), &bad).unwrap_err().to_string();
        assert!(e.contains("b.xml:3") && e.contains("3o"), "{e}");
        let e =
            parse_voc(Path::new("c.xml"), "<annotation>\n<filename>x</filename>\n<object>").unwrap_err().to_string();
        assert!(e.starts_with("c.xml:"), "{e}");
        let e = parse_voc(Path::new("d.xml"), "<annotation/>").unwrap_err().to_string();
        assert!(e.contains("d.xml") && e.contains("filename"), "{e}");
    }
}
