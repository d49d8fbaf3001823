//! The IDX format (MNIST, Fashion-MNIST): a big-endian header
//! `00 00 TT NN` (type code, number of dims), NN big-endian u32 dims, then
//! the data. Files may be gzip-compressed (detected by the gzip magic, not
//! the name). Only type 0x08 (u8) occurs in the MNIST family and is read.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{DataError, TensorDataset};

/// A parsed IDX array of u8.
#[derive(Debug, Clone, PartialEq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file, gunzipping it if it starts with the gzip magic.
pub fn read_idx(path: &Path) -> Result<Idx, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::Io { path: path.to_path_buf(), message: e.to_string() })?;
    parse_idx(&raw, path)
}

/// Parses IDX bytes (raw or gzip); `path` only names the source in errors.
pub fn parse_idx(raw: &[u8], path: &Path) -> Result<Idx, DataError> {
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw)
            .read_to_end(&mut out)
            .map_err(|e| DataError::Gzip { path: path.to_path_buf(), message: e.to_string() })?;
        out
    } else {
        raw.to_vec()
    };
    let p = || path.to_path_buf();
    if bytes.len() < 4 {
        return Err(DataError::Truncated { path: p(), what: "the IDX magic", expected: 4, got: bytes.len() });
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let (ty, ndims) = (bytes[2], bytes[3] as usize);
    if bytes[0] != 0 || bytes[1] != 0 || !matches!(ty, 0x08 | 0x09 | 0x0B | 0x0C | 0x0D | 0x0E) || ndims == 0 {
        return Err(DataError::BadMagic { path: p(), found: magic });
    }
    if ty != 0x08 {
        return Err(DataError::Malformed { path: p(), reason: format!("element type 0x{ty:02x} is not supported (only u8, 0x08)") });
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(DataError::Truncated { path: p(), what: "the IDX header", expected: header, got: bytes.len() });
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| DataError::Malformed { path: p(), reason: format!("dims {dims:?} overflow") })?;
    let body = bytes.len() - header;
    if body < count {
        return Err(DataError::Truncated { path: p(), what: "the IDX data", expected: header + count, got: bytes.len() });
    }
    if body > count {
        return Err(DataError::Malformed {
            path: p(),
            reason: format!("{} bytes after the {count} data bytes that dims {dims:?} announce", body - count),
        });
    }
    Ok(Idx { dims, data: bytes[header..].to_vec() })
}

/// The MNIST train and test sets, images scaled to [0, 1] as f32 items of
/// shape `[1, 28, 28]` (channels first), labels 0..10.
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist {
    pub train: TensorDataset,
    pub test: TensorDataset,
}

impl Mnist {
    /// The 10,000-digit subset shipped in the repository
    /// (`examples/data/mnist-10k`: 8,000 train, 2,000 test), or the directory
    /// named by `KILN_MNIST_DIR` when that is set.
    pub fn shipped() -> Result<Mnist, DataError> {
        match std::env::var_os("KILN_MNIST_DIR") {
            Some(d) => Mnist::load_dir(Path::new(&d)),
            None => Mnist::load_dir(&Mnist::shipped_dir()),
        }
    }

    /// Where the shipped subset lives in the source tree.
    pub fn shipped_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/mnist-10k")
    }

    /// Reads the four standard files from `dir` (full MNIST or a subset):
    /// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
    /// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each optionally
    /// with `.gz` (also accepted: the `-idx3.ubyte` spelling some mirrors use).
    pub fn load_dir(dir: &Path) -> Result<Mnist, DataError> {
        Ok(Mnist {
            train: load_pair(dir, "train-images", "train-labels")?,
            test: load_pair(dir, "t10k-images", "t10k-labels")?,
        })
    }

    /// Normalizes train and test with the same statistics.
    pub fn normalize(&mut self, n: super::Normalize) {
        n.apply(&mut self.train);
        n.apply(&mut self.test);
    }
}

fn find(dir: &Path, stem: &str, what: &'static str) -> Result<PathBuf, DataError> {
    let kind = if stem.ends_with("images") { "idx3" } else { "idx1" };
    let names = [
        format!("{stem}-{kind}-ubyte.gz"),
        format!("{stem}-{kind}-ubyte"),
        format!("{stem}.{kind}-ubyte.gz"),
        format!("{stem}.{kind}-ubyte"),
        format!("{stem}-{kind}.ubyte.gz"),
        format!("{stem}-{kind}.ubyte"),
    ];
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::NotFound { dir: dir.to_path_buf(), what, tried: names.join(", ") })
}

fn load_pair(dir: &Path, images: &str, labels: &str) -> Result<TensorDataset, DataError> {
    let ip = find(dir, images, "images")?;
    let lp = find(dir, labels, "labels")?;
    let im = read_idx(&ip)?;
    let lb = read_idx(&lp)?;
    images_and_labels(im, &ip, lb, &lp)
}

/// Builds a dataset from an IDX image array `[n, rows, cols]` and an IDX
/// label array `[n]`.
pub(crate) fn images_and_labels(im: Idx, ip: &Path, lb: Idx, lp: &Path) -> Result<TensorDataset, DataError> {
    if im.dims.len() != 3 {
        return Err(DataError::Malformed { path: ip.to_path_buf(), reason: format!("images must have 3 dims [n, rows, cols], got {:?}", im.dims) });
    }
    if lb.dims.len() != 1 {
        return Err(DataError::Malformed { path: lp.to_path_buf(), reason: format!("labels must have 1 dim [n], got {:?}", lb.dims) });
    }
    if im.dims[0] != lb.dims[0] {
        return Err(DataError::CountMismatch { images_path: ip.to_path_buf(), images: im.dims[0], labels_path: lp.to_path_buf(), labels: lb.dims[0] });
    }
    if let Some((i, l)) = lb.data.iter().enumerate().find(|(_, l)| **l > 9) {
        return Err(DataError::Malformed { path: lp.to_path_buf(), reason: format!("label {l} of item {i} is not a digit") });
    }
    let inputs = im.data.iter().map(|&b| b as f32 * (1.0 / 255.0)).collect();
    let labels = lb.data.iter().map(|&b| b as i64).collect();
    TensorDataset::new(inputs, labels, vec![1, im.dims[1], im.dims[2]], 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx(ty: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, ty, dims.len() as u8];
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(data);
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn raw_and_gzip_parse_the_same() {
        let raw = idx(8, &[2, 3], &[1, 2, 3, 4, 5, 6]);
        let a = parse_idx(&raw, Path::new("x")).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(parse_idx(&gz(&raw), Path::new("x")).unwrap(), a);
    }

    #[test]
    fn typed_errors_for_bad_files() {
        let p = Path::new("f");
        let good = idx(8, &[2, 3], &[0; 6]);
        for cut in 0..good.len() {
            assert!(matches!(parse_idx(&good[..cut], p), Err(DataError::Truncated { .. })), "cut {cut}");
        }
        assert!(matches!(parse_idx(&idx(8, &[2, 3], &[0; 7]), p), Err(DataError::Malformed { .. })));
        assert!(matches!(parse_idx(b"PK\x03\x04 zip file", p), Err(DataError::BadMagic { found: 0x504b0304, .. })));
        assert!(matches!(parse_idx(&idx(0x0D, &[1], &[0; 4]), p), Err(DataError::Malformed { .. })));
        let gzipped = gz(&good);
        assert!(matches!(parse_idx(&gzipped[..gzipped.len() - 9], p), Err(DataError::Gzip { .. })));
        let huge = idx(8, &[u32::MAX, u32::MAX, u32::MAX], &[]);
        assert!(parse_idx(&huge, p).is_err());
    }

    #[test]
    fn count_mismatch_and_bad_labels() {
        let im = Idx { dims: vec![2, 2, 2], data: vec![255; 8] };
        let lb = Idx { dims: vec![3], data: vec![1, 2, 3] };
        let e = images_and_labels(im.clone(), Path::new("i"), lb, Path::new("l")).unwrap_err();
        assert!(matches!(e, DataError::CountMismatch { images: 2, labels: 3, .. }), "{e}");
        let lb = Idx { dims: vec![2], data: vec![1, 12] };
        assert!(matches!(images_and_labels(im.clone(), Path::new("i"), lb, Path::new("l")), Err(DataError::Malformed { .. })));
        let lb = Idx { dims: vec![2], data: vec![1, 7] };
        let d = images_and_labels(im, Path::new("i"), lb, Path::new("l")).unwrap();
        assert_eq!(d.item_shape, vec![1, 2, 2]);
        assert_eq!(d.inputs[0], 1.0);
    }

    #[test]
    fn shipped_subset_loads() {
        let m = Mnist::shipped().unwrap();
        assert_eq!((m.train.len(), m.test.len()), (8000, 2000));
        assert_eq!(m.train.item_shape, vec![1, 28, 28]);
        assert!(m.train.class_counts().iter().all(|&c| c > 500), "{:?}", m.train.class_counts());
        let (mean, std) = m.train.mean_std();
        // Full MNIST: 0.1307 / 0.3081; a 8k subset is close to that.
        assert!((mean - 0.1307).abs() < 0.01 && (std - 0.3081).abs() < 0.01, "{mean} {std}");
    }

    #[test]
    fn missing_dir_is_not_found() {
        let e = Mnist::load_dir(Path::new("/nonexistent/mnist")).unwrap_err();
        assert!(matches!(e, DataError::NotFound { what: "images", .. }), "{e}");
    }
}
