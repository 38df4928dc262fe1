//! SCUT-HEAD part B: one PASCAL VOC XML file per image (`Annotations/*.xml`), images in
//! `JPEGImages/`.

use std::path::Path;

use crate::DataError;
use crate::wider::{FaceAnnotation, FaceBox};

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
        let bndbox = object
            .children()
            .find(|n| n.has_tag_name("bndbox"))
            .ok_or_else(|| DataError::Parse { path: path.into(), line, message: "<object> without <bndbox>".into() })?;
        let coord = |tag: &str| -> Result<f32, DataError> {
            let text = bndbox.children().find(|n| n.has_tag_name(tag)).and_then(|n| n.text()).unwrap_or("");
            text.trim().parse().map_err(|_| DataError::Parse {
                path: path.into(),
                line,
                message: format!("<{tag}> is `{}`, not a number", text.trim()),
            })
        };
        let (x1, y1, x2, y2) = (coord("xmin")?, coord("ymin")?, coord("xmax")?, coord("ymax")?);
        if x2 <= x1 || y2 <= y1 {
            skipped += 1;
            continue;
        }
        boxes.push(FaceBox { x1, y1, x2, y2, invalid: false });
    }
    Ok((FaceAnnotation { image: filename.into(), boxes }, skipped))
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
    fn bad_xml_names_file_and_line() {
        let bad = XML.replace("<xmax>30</xmax>", "<xmax>3o</xmax>");
        let e = parse_voc(Path::new("b.xml"), &bad).unwrap_err().to_string();
        assert!(e.contains("b.xml:3") && e.contains("3o"), "{e}");
        let e = parse_voc(Path::new("c.xml"), "<annotation>\n<filename>x</filename>\n<object>").unwrap_err().to_string();
        assert!(e.starts_with("c.xml:"), "{e}");
        let e = parse_voc(Path::new("d.xml"), "<annotation/>").unwrap_err().to_string();
        assert!(e.contains("d.xml") && e.contains("filename"), "{e}");
    }
}
