//! WIDER FACE annotations: the official `wider_face_split/wider_face_{train,val}_bbx_gt.txt`
//! and the flat list that EdgeML's `prepare_wider_data.py` writes.

use std::path::{Path, PathBuf};

use crate::DataError;

/// A face box in pixels, `(x1, y1, x2, y2)` with `x2 = x1 + w`, `y2 = y1 + h`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceBox {
    /// Left.
    pub x1: f32,
    /// Top.
    pub y1: f32,
    /// Right.
    pub x2: f32,
    /// Bottom.
    pub y2: f32,
    /// WIDER's `invalid` attribute (0 where the format has none).
    pub invalid: bool,
}

impl FaceBox {
    /// `x2 - x1`.
    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }

    /// `y2 - y1`.
    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }
}

/// Where an annotation was read, for errors: the file and the line of the image's entry (1 for
/// formats without lines, such as one VOC XML file per image).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Origin {
    /// The annotation file.
    pub file: PathBuf,
    /// The line of the image's entry.
    pub line: usize,
}

/// One image's annotation: its path (relative to the list's image root) and its faces.
#[derive(Clone, Debug, PartialEq)]
pub struct FaceAnnotation {
    /// The photo.
    pub image: PathBuf,
    /// Its faces.
    pub boxes: Vec<FaceBox>,
    /// Where it was read.
    pub origin: Origin,
}

/// A parsed annotation file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaceList {
    /// Every image of the split.
    pub images: Vec<FaceAnnotation>,
    /// Boxes dropped because their width or height is not positive, as the original does.
    pub skipped_boxes: usize,
}

impl FaceList {
    /// Faces in all images.
    pub fn faces(&self) -> usize {
        self.images.iter().map(|a| a.boxes.len()).sum()
    }
}

fn read(path: &Path) -> Result<String, DataError> {
    crate::text::read_text(path)
}

/// A face count is not trusted for an allocation larger than this.
const MAX_PREALLOC: usize = 1024;
/// The most faces one image may list (WIDER FACE's most crowded image has 1968).
pub const MAX_FACES: usize = 100_000;

fn face_count(path: &Path, line: usize, text: &str) -> Result<usize, DataError> {
    let count: usize =
        text.parse().map_err(|_| parse_err(path, line, format!("expected a face count, found `{text}`")))?;
    if count > MAX_FACES {
        return Err(parse_err(path, line, format!("{count} faces in one image (at most {MAX_FACES})")));
    }
    Ok(count)
}

/// Whitespace-separated finite numbers (`nan`/`inf` are rejected: they would make boxes no
/// geometry can handle).
fn numbers(line: &str) -> Option<Vec<f32>> {
    line.split_whitespace().map(|t| t.parse::<f32>().ok().filter(|v| v.is_finite())).collect()
}

fn parse_err(path: &Path, line: usize, message: impl Into<String>) -> DataError {
    DataError::Parse { path: path.into(), line, message: message.into() }
}

/// Parses the official format: an image path line, a face count line, then one line per face
/// `x y w h blur expression illumination invalid occlusion pose` (an image without faces has
/// count 0 and one all-zero line).
pub fn parse_bbx_gt(path: &Path) -> Result<FaceList, DataError> {
    parse_bbx_gt_text(path, &read(path)?)
}

/// [`parse_bbx_gt`] of text already read; `path` only names it in errors.
pub fn parse_bbx_gt_text(path: &Path, text: &str) -> Result<FaceList, DataError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty());
    let mut list = FaceList::default();
    while let Some((n, image)) = lines.next() {
        if !image.contains('.') || image.split_whitespace().count() != 1 {
            return Err(parse_err(path, n, format!("expected an image path, found `{image}`")));
        }
        let (cn, count) = lines.next().ok_or_else(|| parse_err(path, n + 1, "missing the face count"))?;
        let count = face_count(path, cn, count)?;
        let mut boxes = Vec::with_capacity(count.min(MAX_PREALLOC));
        // A 0-face image still has one (all-zero) box line.
        for _ in 0..count.max(1) {
            let (bn, line) = lines
                .next()
                .ok_or_else(|| parse_err(path, cn + 1, format!("{image}: fewer than {count} box lines")))?;
            let v = numbers(line).ok_or_else(|| parse_err(path, bn, format!("expected numbers, found `{line}`")))?;
            if v.len() != 10 {
                return Err(parse_err(
                    path,
                    bn,
                    format!("expected 10 values (x y w h + 6 attributes), found {}", v.len()),
                ));
            }
            if count == 0 {
                continue;
            }
            if v[2] <= 0.0 || v[3] <= 0.0 {
                list.skipped_boxes += 1;
                continue;
            }
            boxes.push(FaceBox { x1: v[0], y1: v[1], x2: v[0] + v[2], y2: v[1] + v[3], invalid: v[7] != 0.0 });
        }
        list.images.push(FaceAnnotation { image: image.into(), boxes, origin: Origin { file: path.into(), line: n } });
    }
    if list.images.is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    Ok(list)
}

/// Parses EdgeML's flat list: `<path> <n> x y w h 1 x y w h 1 ...` per line.
pub fn parse_flat_list(path: &Path) -> Result<FaceList, DataError> {
    parse_flat_list_text(path, &read(path)?)
}

/// [`parse_flat_list`] of text already read; `path` only names it in errors.
pub fn parse_flat_list_text(path: &Path, text: &str) -> Result<FaceList, DataError> {
    let mut list = FaceList::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let mut tokens = line.split_whitespace();
        let Some(image) = tokens.next() else { continue };
        let count = face_count(path, n, tokens.next().ok_or_else(|| parse_err(path, n, "missing the face count"))?)?;
        let rest: Vec<&str> = tokens.collect();
        let v = numbers(&rest.join(" ")).ok_or_else(|| parse_err(path, n, "a box value is not a finite number"))?;
        if Some(v.len()) != count.checked_mul(5) {
            return Err(parse_err(path, n, format!("{count} faces need 5 values each, found {} values", v.len())));
        }
        let mut boxes = Vec::with_capacity(count);
        for b in v.chunks_exact(5) {
            if b[2] <= 0.0 || b[3] <= 0.0 {
                list.skipped_boxes += 1;
                continue;
            }
            boxes.push(FaceBox { x1: b[0], y1: b[1], x2: b[0] + b[2], y2: b[1] + b[3], invalid: false });
        }
        list.images.push(FaceAnnotation { image: image.into(), boxes, origin: Origin { file: path.into(), line: n } });
    }
    if list.images.is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    Ok(list)
}

/// A WIDER FACE tree: `WIDER_{split}/images/...` and `wider_face_split/`.
#[derive(Clone, Debug)]
pub struct WiderFace {
    /// The WIDER FACE folder.
    pub root: PathBuf,
}

impl WiderFace {
    /// WIDER FACE laid out under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The annotations of `split` (`train` or `val`), image paths made absolute.
    pub fn split(&self, split: &str) -> Result<FaceList, DataError> {
        let gt = self.root.join(format!("wider_face_split/wider_face_{split}_bbx_gt.txt"));
        let mut list = parse_bbx_gt(&gt)?;
        let images = self.root.join(format!("WIDER_{split}/images"));
        for a in &mut list.images {
            a.image = images.join(&a.image);
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/wider_sample")
    }

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wider-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn bundled_sample_has_its_43_faces() {
        let w = WiderFace::new(sample());
        let (train, val) = (w.split("train").unwrap(), w.split("val").unwrap());
        assert_eq!((train.images.len(), val.images.len()), (4, 6));
        assert_eq!((train.faces(), val.faces()), (18, 25));
        assert_eq!(train.skipped_boxes + val.skipped_boxes, 0);
        let first = &train.images[0];
        assert!(first.image.ends_with("WIDER_train/images/0--Sample/2007_007763.jpg"));
        assert!(first.image.exists());
        assert_eq!(first.boxes[0], FaceBox { x1: 194.0, y1: 90.0, x2: 231.0, y2: 127.0, invalid: false });
        let dogs = val.images.iter().find(|a| a.image.ends_with("dogs.jpg")).unwrap();
        assert!(dogs.boxes.is_empty());
    }

    #[test]
    fn degenerate_boxes_are_skipped_and_counted() {
        let p = write("deg.txt", "a/1.jpg\n3\n1 1 10 10 0 0 0 1 0 0\n5 5 0 4 0 0 0 0 0 0\n5 5 4 -1 0 0 0 0 0 0\n");
        let list = parse_bbx_gt(&p).unwrap();
        assert_eq!(list.faces(), 1);
        assert_eq!(list.skipped_boxes, 2);
        assert!(list.images[0].boxes[0].invalid);
    }

    #[test]
    fn malformed_lines_are_errors_naming_file_and_line() {
        let p = write("bad.txt", "a/1.jpg\n2\n1 1 10 10 0 0 0 0 0 0\n1 1 10 x 0 0 0 0 0 0\n");
        let e = parse_bbx_gt(&p).unwrap_err().to_string();
        assert!(e.contains("bad.txt:4") && e.contains("expected numbers"), "{e}");
        let p = write("short.txt", "a/1.jpg\n2\n1 1 10 10 0 0 0 0 0 0\n");
        let e = parse_bbx_gt(&p).unwrap_err().to_string();
        assert!(e.contains("short.txt") && e.contains("fewer than 2"), "{e}");
        let p = write("count.txt", "a/1.jpg\ntwo\n");
        assert!(parse_bbx_gt(&p).unwrap_err().to_string().contains("count.txt:2"));
        let p = write("empty.txt", "\n\n");
        assert!(matches!(parse_bbx_gt(&p), Err(DataError::Empty { .. })));
        let e = parse_bbx_gt(Path::new("/nonexistent/gt.txt")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/gt.txt"), "{e}");
    }

    #[test]
    fn flat_list_format() {
        let p = write("flat.txt", "/d/a.jpg 2 10 20 30 40 1 5 5 0 3 1\n/d/b.jpg 0\n");
        let list = parse_flat_list(&p).unwrap();
        assert_eq!(list.images.len(), 2);
        assert_eq!(list.images[0].boxes, vec![FaceBox { x1: 10.0, y1: 20.0, x2: 40.0, y2: 60.0, invalid: false }]);
        assert_eq!(list.skipped_boxes, 1);
        let p = write("flat_bad.txt", "/d/a.jpg 2 10 20 30 40 1\n");
        let e = parse_flat_list(&p).unwrap_err().to_string();
        assert!(e.contains("flat_bad.txt:1") && e.contains("found 5 values"), "{e}");
        let p = write("flat_nan.txt", "/d/a.jpg 1 10 nan 30 40 1\n");
        assert!(parse_flat_list(&p).unwrap_err().to_string().contains("flat_nan.txt:1"));
        let huge = format!("/d/a.jpg {} 1 1 1 1 1\n", usize::MAX);
        assert!(parse_flat_list_text(Path::new("huge.txt"), &huge).is_err());
        let huge = format!("a/1.jpg\n{}\n1 1 1 1 0 0 0 0 0 0\n", usize::MAX);
        assert!(parse_bbx_gt_text(Path::new("huge.txt"), &huge).is_err());
        let e = parse_bbx_gt_text(Path::new("many.txt"), "a/1.jpg\n200000\n").unwrap_err().to_string();
        assert!(e.contains("many.txt:2") && e.contains("at most 100000"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_path() {
        let p = write("bom.txt", "\u{feff}a/1.jpg\n1\n1 1 10 10 0 0 0 0 0 0\n");
        let list = parse_bbx_gt(&p).unwrap();
        assert_eq!(list.images[0].image, Path::new("a/1.jpg"));
        assert_eq!(list.images[0].origin, Origin { file: p, line: 1 });
    }
}
