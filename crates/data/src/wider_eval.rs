//! WIDER FACE's official evaluation ground truth (`eval_tools/ground_truth/*.mat`): per image of
//! the validation set, every face box and, for each setting (Easy, Medium, Hard), which faces
//! count; the others are ignored, as the official evaluation does.

use std::path::Path;

use crate::DataError;
use crate::matlab::{self, MatValue};

/// The official evaluation's settings, in order.
pub const SETTINGS: [&str; 3] = ["easy", "medium", "hard"];

/// One image of the official ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalImage {
    /// Its event folder.
    pub event: String,
    /// File name without extension, as the .mat lists it.
    pub file: String,
    /// `(x1, y1, x2, y2)` in pixels.
    pub boxes: Vec<[f32; 4]>,
    /// Per box: whether `setting` counts it.
    pub keep: Vec<bool>,
}

fn field<'a>(
    vars: &'a std::collections::HashMap<String, MatValue>,
    name: &str,
    path: &Path,
) -> Result<&'a [MatValue], DataError> {
    vars.get(name)
        .and_then(MatValue::as_cell)
        .ok_or_else(|| DataError::Format { path: path.into(), message: format!("no cell array `{name}`") })
}

/// The images of `dir/wider_face_val.mat` with the faces `dir/wider_{setting}_val.mat` keeps.
pub fn load(dir: &Path, setting: &str) -> Result<Vec<EvalImage>, DataError> {
    let all_path = dir.join("wider_face_val.mat");
    let set_path = dir.join(format!("wider_{setting}_val.mat"));
    let all = matlab::load(&all_path)?;
    let set = matlab::load(&set_path)?;
    let bad = |path: &Path, message: String| DataError::Format { path: path.into(), message };
    let events = field(&all, "event_list", &all_path)?;
    let files = field(&all, "file_list", &all_path)?;
    let boxes = field(&all, "face_bbx_list", &all_path)?;
    let keeps = field(&set, "gt_list", &set_path)?;
    if files.len() != events.len() || boxes.len() != events.len() || keeps.len() != events.len() {
        return Err(bad(&set_path, "event, file, box and gt lists differ in length".into()));
    }
    let mut out = Vec::new();
    for e in 0..events.len() {
        let event = events[e].as_str().ok_or_else(|| bad(&all_path, format!("event_list[{e}] is not text")))?;
        let (f, b, k) = (files[e].as_cell(), boxes[e].as_cell(), keeps[e].as_cell());
        let (Some(f), Some(b), Some(k)) = (f, b, k) else {
            return Err(bad(&all_path, format!("event {event}: lists are not cell arrays")));
        };
        if f.len() != b.len() || f.len() != k.len() {
            return Err(bad(
                &set_path,
                format!("event {event}: {} files, {} box lists, {} gt lists", f.len(), b.len(), k.len()),
            ));
        }
        for i in 0..f.len() {
            let file = f[i].as_str().ok_or_else(|| bad(&all_path, format!("event {event}: file {i} is not text")))?;
            let (dims, v) =
                b[i].as_numeric().ok_or_else(|| bad(&all_path, format!("{event}/{file}: boxes are not numeric")))?;
            let rows = if v.is_empty() { 0 } else { dims[0] };
            if v.len() != rows * 4 {
                return Err(bad(&all_path, format!("{event}/{file}: boxes have dims {dims:?}, expected n x 4")));
            }
            // Column-major n x 4 of x, y, w, h.
            let boxes: Vec<[f32; 4]> = (0..rows)
                .map(|r| {
                    let [x, y, w, h] = [0, 1, 2, 3].map(|c| v[c * rows + r] as f32);
                    [x, y, x + w, y + h]
                })
                .collect();
            let mut keep = vec![false; rows];
            let idx = k[i].as_numeric().map(|(_, v)| v).unwrap_or(&[]);
            for &j in idx {
                let j = j as usize;
                if j == 0 || j > rows {
                    return Err(bad(&set_path, format!("{event}/{file}: face index {j} of {rows}")));
                }
                keep[j - 1] = true;
            }
            out.push(EvalImage { event: event.into(), file: file.into(), boxes, keep });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bundled_samples_official_layout() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/wider_sample/eval_tools/ground_truth");
        let easy = load(&dir, "easy").unwrap();
        let hard = load(&dir, "hard").unwrap();
        assert_eq!(easy.len(), 6);
        let first = &hard[0];
        assert_eq!((first.event.as_str(), first.file.as_str()), ("0--Sample", "2008_002470"));
        // The first line of wider_face_val_bbx_gt.txt: 274 181 52 53.
        assert_eq!(first.boxes[0], [274.0, 181.0, 326.0, 234.0]);
        assert_eq!(first.boxes.len(), 6);
        assert!(hard.iter().all(|i| i.keep.iter().all(|&k| k)));
        // Easy keeps faces >= 50 px tall: only the first of this image.
        assert_eq!(easy[0].keep, vec![true, false, false, false, false, false]);
        assert!(easy.iter().find(|i| i.file == "dogs").unwrap().boxes.is_empty());
        let e = load(&dir, "nightmare").unwrap_err().to_string();
        assert!(e.contains("wider_nightmare_val.mat"), "{e}");
    }
}
