//! A reader for MATLAB level-5 MAT files (v5/v7, zlib-compressed elements), enough for WIDER
//! FACE's evaluation ground truth (`eval_tools/ground_truth/wider_*_val.mat`): cell arrays,
//! char arrays and numeric matrices. Structs, sparse and complex data are reported as
//! unsupported.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::DataError;

/// A MATLAB value; matrices are column-major with their dimensions.
#[derive(Clone, Debug, PartialEq)]
pub enum MatValue {
    /// A cell array.
    Cell {
        /// Dimensions.
        dims: Vec<usize>,
        /// Items, column-major.
        items: Vec<MatValue>,
    },
    /// A character array.
    Char(String),
    /// A numeric array, converted to f64.
    Numeric {
        /// Dimensions.
        dims: Vec<usize>,
        /// Values, column-major.
        data: Vec<f64>,
    },
}

impl MatValue {
    /// The items of a cell array.
    pub fn as_cell(&self) -> Option<&[MatValue]> {
        match self {
            Self::Cell { items, .. } => Some(items),
            _ => None,
        }
    }

    /// The text of a character array.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Char(s) => Some(s),
            _ => None,
        }
    }

    /// `(dims, column-major values)` of a numeric matrix.
    pub fn as_numeric(&self) -> Option<(&[usize], &[f64])> {
        match self {
            Self::Numeric { dims, data } => Some((dims, data)),
            _ => None,
        }
    }
}

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MX_CELL: u8 = 1;
const MX_CHAR: u8 = 4;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn err(&self, message: impl Into<String>) -> DataError {
        DataError::Format { path: self.path.into(), message: format!("byte {}: {}", self.at, message.into()) }
    }

    fn u32(&mut self) -> Result<u32, DataError> {
        let b = self.bytes.get(self.at..self.at + 4).ok_or_else(|| self.err("truncated"))?;
        self.at += 4;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// One data element: `(type, payload)`, leaving the reader after its padding.
    fn element(&mut self) -> Result<(u32, &'a [u8]), DataError> {
        let first = self.u32()?;
        if first >> 16 != 0 {
            // Small element: size and type share the tag, data in the next 4 bytes.
            let (ty, n) = (first & 0xffff, (first >> 16) as usize);
            let data = self.bytes.get(self.at..self.at + n.min(4)).ok_or_else(|| self.err("truncated"))?;
            self.at += 4;
            return Ok((ty, data));
        }
        let n = self.u32()? as usize;
        let data =
            self.bytes.get(self.at..self.at.saturating_add(n)).ok_or_else(|| self.err("element past the end"))?;
        self.at += n;
        if first != MI_COMPRESSED {
            self.at = self.at.div_ceil(8) * 8;
        }
        Ok((first, data))
    }
}

fn numbers(ty: u32, b: &[u8], path: &Path) -> Result<Vec<f64>, DataError> {
    macro_rules! conv {
        ($t:ty) => {
            b.chunks_exact(std::mem::size_of::<$t>())
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or_default()) as f64)
                .collect()
        };
    }
    Ok(match ty {
        MI_INT8 => b.iter().map(|&v| v as i8 as f64).collect(),
        MI_UINT8 | MI_UTF8 => b.iter().map(|&v| v as f64).collect(),
        MI_INT16 => conv!(i16),
        MI_UINT16 => conv!(u16),
        MI_INT32 => conv!(i32),
        MI_UINT32 => conv!(u32),
        MI_SINGLE => conv!(f32),
        MI_DOUBLE => conv!(f64),
        MI_INT64 => conv!(i64),
        MI_UINT64 => conv!(u64),
        other => {
            return Err(DataError::Format { path: path.into(), message: format!("unsupported data type {other}") });
        }
    })
}

/// The body of an miMATRIX element: `(name, value)`.
fn matrix(body: &[u8], path: &Path) -> Result<(String, MatValue), DataError> {
    let mut r = Reader { bytes: body, at: 0, path };
    if body.is_empty() {
        // An empty miMATRIX is an empty array.
        return Ok((String::new(), MatValue::Numeric { dims: vec![0, 0], data: vec![] }));
    }
    let (_, flags) = r.element()?;
    let class = *flags.first().ok_or_else(|| r.err("no array flags"))?;
    let complex = flags.get(1).is_some_and(|f| f & 0x08 != 0);
    let (ty, dims) = r.element()?;
    let dims: Vec<usize> = numbers(ty, dims, path)?.into_iter().map(|d| d as usize).collect();
    let (_, name) = r.element()?;
    let name = String::from_utf8_lossy(name).into_owned();
    let count: usize = dims.iter().product();
    let value = match class {
        MX_CELL => {
            let mut items = Vec::with_capacity(count.min(1 << 20));
            for _ in 0..count {
                let (ty, sub) = r.element()?;
                if ty != MI_MATRIX {
                    return Err(r.err(format!("cell item of type {ty}")));
                }
                items.push(matrix(sub, path)?.1);
            }
            MatValue::Cell { dims, items }
        }
        MX_CHAR => {
            let (ty, data) = if count == 0 { (MI_UINT16, &[][..]) } else { r.element()? };
            let text = match ty {
                MI_UTF8 | MI_UINT8 => String::from_utf8_lossy(data).into_owned(),
                _ => numbers(ty, data, path)?.into_iter().filter_map(|c| char::from_u32(c as u32)).collect(),
            };
            MatValue::Char(text)
        }
        6..=15 if !complex => {
            let data = if count == 0 {
                Vec::new()
            } else {
                let (ty, data) = r.element()?;
                numbers(ty, data, path)?
            };
            if data.len() != count {
                return Err(r.err(format!("{name}: {} values for dims {dims:?}", data.len())));
            }
            MatValue::Numeric { dims, data }
        }
        other => return Err(r.err(format!("{name}: unsupported array class {other} (complex: {complex})"))),
    };
    Ok((name, value))
}

/// Every variable of the MAT file at `path`.
pub fn load(path: &Path) -> Result<HashMap<String, MatValue>, DataError> {
    let bytes = std::fs::read(path).map_err(DataError::io(path))?;
    if bytes.len() < 128 || &bytes[126..128] != b"IM" {
        return Err(DataError::Format { path: path.into(), message: "not a little-endian level-5 MAT file".into() });
    }
    let mut r = Reader { bytes: &bytes, at: 128, path };
    let mut vars = HashMap::new();
    while r.at + 8 <= bytes.len() {
        let (ty, data) = r.element()?;
        let (name, value) = match ty {
            MI_MATRIX => matrix(data, path)?,
            MI_COMPRESSED => {
                let mut inflated = Vec::new();
                flate2::read::ZlibDecoder::new(data).read_to_end(&mut inflated).map_err(|e| DataError::Format {
                    path: path.into(),
                    message: format!("compressed element: {e}"),
                })?;
                let mut inner = Reader { bytes: &inflated, at: 0, path };
                let (ty, body) = inner.element()?;
                if ty != MI_MATRIX {
                    continue;
                }
                matrix(body, path)?
            }
            _ => continue,
        };
        vars.insert(name, value);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_uncompressed_cells_chars_and_numbers_and_rejects_other_files() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mixed_uncompressed.mat");
        let vars = load(&p).unwrap();
        let cell = vars["c"].as_cell().unwrap();
        assert_eq!(cell[0].as_str(), Some("héllo"));
        // Column-major.
        assert_eq!(cell[1].as_numeric().unwrap(), (&[2usize, 3][..], &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0][..]));
        assert_eq!(vars["u8"].as_numeric().unwrap().1, &[7.0, 255.0]);
        assert_eq!(vars["d"].as_numeric().unwrap().1, &[1.5, -2.25]);
        assert!(vars["empty"].as_numeric().unwrap().1.is_empty());
        let bad = std::env::temp_dir().join(format!("not-a-mat-{}.mat", std::process::id()));
        std::fs::write(&bad, b"hello").unwrap();
        assert!(load(&bad).unwrap_err().to_string().contains("not a little-endian level-5 MAT file"));
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&bad, &bytes[..bytes.len() - 20]).unwrap();
        assert!(load(&bad).is_err(), "a truncated file must be an error");
    }
}
