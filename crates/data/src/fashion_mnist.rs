//! Fashion-MNIST in its IDX files (gzipped or not), e.g. as Debian's `dataset-fashion-mnist`
//! installs them under `/usr/share/datasets/fashion-mnist`.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::DataError;

/// Where Debian's package puts the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Images `[n, 28, 28]` as bytes and their labels (0..10).
#[derive(Clone, Debug)]
pub struct Mnist {
    /// `len * rows * cols` grey pixels.
    pub images: Vec<u8>,
    /// One class per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

impl Mnist {
    /// Images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// No images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i`'s pixels.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.images[i * n..(i + 1) * n]
    }

    /// `split` is `train` or `t10k`; `{split}-images-idx3-ubyte[.gz]` and
    /// `{split}-labels-idx1-ubyte[.gz]` in `dir`.
    pub fn load(dir: &Path, split: &str) -> Result<Self, DataError> {
        let images = read_maybe_gz(&find(dir, &format!("{split}-images-idx3-ubyte"))?)?;
        let labels = read_maybe_gz(&find(dir, &format!("{split}-labels-idx1-ubyte"))?)?;
        let (ipath, lpath) =
            (dir.join(format!("{split}-images-idx3-ubyte")), dir.join(format!("{split}-labels-idx1-ubyte")));
        let (idims, ipix) = parse_idx(&ipath, &images, 3)?;
        let (ldims, lvals) = parse_idx(&lpath, &labels, 1)?;
        if idims[0] != ldims[0] {
            return Err(DataError::Format {
                path: ipath,
                message: format!("{} images but {} labels", idims[0], ldims[0]),
            });
        }
        if let Some(bad) = lvals.iter().find(|&&l| l > 9) {
            return Err(DataError::Format { path: lpath, message: format!("label {bad} outside 0..=9") });
        }
        Ok(Self { images: ipix.to_vec(), labels: lvals.to_vec(), rows: idims[1], cols: idims[2] })
    }
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    let plain = dir.join(stem);
    let gz = dir.join(format!("{stem}.gz"));
    [gz, plain.clone()].into_iter().find(|p| p.exists()).ok_or_else(|| DataError::Io {
        path: plain,
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "neither it nor its .gz exists"),
    })
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(DataError::io(path))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(DataError::io(path))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// IDX: magic `0 0 8 rank`, then `rank` big-endian u32 sizes, then the bytes.
fn parse_idx<'a>(path: &Path, bytes: &'a [u8], rank: usize) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let err = |message: String| DataError::Format { path: path.into(), message };
    if bytes.len() < 4 + 4 * rank || bytes[..3] != [0, 0, 8] || bytes[3] as usize != rank {
        return Err(err(format!("not an IDX file of unsigned bytes with rank {rank}")));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap_or([0; 4])) as usize)
        .collect();
    let body = &bytes[4 + 4 * rank..];
    let want: usize = dims.iter().product();
    if body.len() != want {
        return Err(err(format!("header says {dims:?} ({want} bytes) but {} bytes follow", body.len())));
    }
    Ok((dims, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx(rank: u8, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, rank];
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(body);
        v
    }

    #[test]
    fn reads_gzipped_and_plain_idx_and_rejects_bad_headers() {
        let dir = std::env::temp_dir().join(format!("mnist-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let images = idx(3, &[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&images).unwrap();
        std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(1, &[2], &[3, 9])).unwrap();
        let m = Mnist::load(&dir, "train").unwrap();
        assert_eq!((m.len(), m.rows, m.cols), (2, 2, 3));
        assert_eq!(m.image(1), &[7, 8, 9, 10, 11, 12]);
        assert_eq!(m.labels, vec![3, 9]);

        std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx(3, &[2, 2, 3], &[0; 11])).unwrap();
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(1, &[2], &[0, 1])).unwrap();
        let e = Mnist::load(&dir, "t10k").unwrap_err().to_string();
        assert!(e.contains("t10k-images-idx3-ubyte") && e.contains("11 bytes follow"), "{e}");
        let e = Mnist::load(&dir, "nope").unwrap_err().to_string();
        assert!(e.contains("nope-images-idx3-ubyte"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn debian_fashion_mnist_when_installed() {
        let dir = Path::new(DEBIAN_DIR);
        if !dir.exists() {
            eprintln!("{DEBIAN_DIR} missing (apt-get install dataset-fashion-mnist); not checked");
            return;
        }
        let train = Mnist::load(dir, "train").unwrap();
        let test = Mnist::load(dir, "t10k").unwrap();
        assert_eq!((train.len(), test.len(), train.rows, train.cols), (60_000, 10_000, 28, 28));
        let mut per_class = [0usize; 10];
        for &l in &test.labels {
            per_class[l as usize] += 1;
        }
        assert_eq!(per_class, [1000; 10]);
    }
}
