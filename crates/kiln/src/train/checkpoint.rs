//! Checkpoints: a program's state dict (params and optimizer state) plus the
//! position in training, as one `.safetensors` file any safetensors reader
//! opens. The position is stored as i64 scalars under reserved names
//! (`__kiln.epoch`, `__kiln.step`) so no sidecar file can go missing.
//! Writes go to a temporary file first and are renamed into place, so a crash
//! mid-write never leaves a truncated checkpoint under the real name.
//!
//! To resume: `load_checkpoint`, then `set_state` every entry of `state` on a
//! freshly compiled (or loaded) program and continue from `epoch`/`step`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_ir::HostTensor;

use super::TrainError;

const EPOCH: &str = "__kiln.epoch";
const STEP: &str = "__kiln.step";

#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub state: BTreeMap<String, HostTensor>,
    /// Epochs completed.
    pub epoch: u64,
    /// Steps completed (over all epochs).
    pub step: u64,
}

pub fn save_checkpoint(path: &Path, c: &Checkpoint) -> Result<(), TrainError> {
    let err = |m: String| TrainError::Checkpoint { path: path.to_path_buf(), message: m };
    if let Some(k) = c.state.keys().find(|k| k.starts_with("__kiln.")) {
        return Err(err(format!("state name `{k}` uses the reserved prefix `__kiln.`")));
    }
    let mut all = c.state.clone();
    all.insert(EPOCH.into(), HostTensor::scalar_i64(c.epoch as i64));
    all.insert(STEP.into(), HostTensor::scalar_i64(c.step as i64));
    let bytes = kiln_ir::safetensors_to_bytes(&all).map_err(|e| err(e.to_string()))?;
    write_atomic(path, &bytes)
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let io = |e: std::io::Error| TrainError::Io { path: path.to_path_buf(), message: e.to_string() };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

pub fn load_checkpoint(path: &Path) -> Result<Checkpoint, TrainError> {
    let err = |m: String| TrainError::Checkpoint { path: path.to_path_buf(), message: m };
    let bytes = std::fs::read(path).map_err(|e| TrainError::Io { path: path.to_path_buf(), message: e.to_string() })?;
    let mut state = kiln_ir::safetensors_from_bytes(&bytes).map_err(|e| err(e.to_string()))?;
    let mut pos = |name: &str| -> Result<u64, TrainError> {
        let t = state.remove(name).ok_or_else(|| err(format!("no `{name}` entry (not a kiln checkpoint?)")))?;
        match t.as_i64() {
            Some([v]) if *v >= 0 => Ok(*v as u64),
            _ => Err(err(format!("`{name}` must be a non-negative i64 scalar, got {}", t.ty()))),
        }
    };
    let epoch = pos(EPOCH)?;
    let step = pos(STEP)?;
    Ok(Checkpoint { state, epoch, step })
}

/// A directory of per-epoch checkpoints keeping the newest `keep`, plus
/// `best.safetensors` for the best model so far.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    pub dir: PathBuf,
    pub keep: usize,
}

impl CheckpointDir {
    pub fn new(dir: impl Into<PathBuf>, keep: usize) -> CheckpointDir {
        CheckpointDir { dir: dir.into(), keep: keep.max(1) }
    }

    fn epoch_path(&self, epoch: u64) -> PathBuf {
        self.dir.join(format!("epoch-{epoch:05}.safetensors"))
    }

    pub fn best_path(&self) -> PathBuf {
        self.dir.join("best.safetensors")
    }

    /// Saves `c` as the checkpoint of epoch `c.epoch` and prunes old ones.
    pub fn save(&self, c: &Checkpoint) -> Result<PathBuf, TrainError> {
        let p = self.epoch_path(c.epoch);
        save_checkpoint(&p, c)?;
        let all = self.list()?;
        for (_, old) in all.iter().take(all.len().saturating_sub(self.keep)) {
            std::fs::remove_file(old).map_err(|e| TrainError::Io { path: old.clone(), message: e.to_string() })?;
        }
        Ok(p)
    }

    pub fn save_best(&self, c: &Checkpoint) -> Result<PathBuf, TrainError> {
        let p = self.best_path();
        save_checkpoint(&p, c)?;
        Ok(p)
    }

    /// Per-epoch checkpoints, oldest first.
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>, TrainError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(TrainError::Io { path: self.dir.clone(), message: e.to_string() }),
        };
        let mut v: Vec<(u64, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let n = name.strip_prefix("epoch-")?.strip_suffix(".safetensors")?.parse().ok()?;
                Some((n, e.path()))
            })
            .collect();
        v.sort();
        Ok(v)
    }

    /// The newest per-epoch checkpoint, if any (to resume from).
    pub fn latest(&self) -> Result<Option<Checkpoint>, TrainError> {
        match self.list()?.last() {
            Some((_, p)) => load_checkpoint(p).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kiln-ckpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn ckpt(epoch: u64) -> Checkpoint {
        let mut state = BTreeMap::new();
        state.insert("w".into(), HostTensor::from_f32([2], vec![epoch as f32, -1.5]).unwrap());
        state.insert("w.momentum".into(), HostTensor::from_f32([2], vec![0.25, 0.0]).unwrap());
        Checkpoint { state, epoch, step: epoch * 10 }
    }

    #[test]
    fn roundtrip_and_errors() {
        let d = tmpdir("rt");
        let p = d.join("a.safetensors");
        save_checkpoint(&p, &ckpt(3)).unwrap();
        assert_eq!(load_checkpoint(&p).unwrap(), ckpt(3));
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(load_checkpoint(&p), Err(TrainError::Checkpoint { .. })));
        // A plain safetensors file without the position entries.
        std::fs::write(&p, kiln_ir::safetensors_to_bytes(&ckpt(1).state).unwrap()).unwrap();
        let e = load_checkpoint(&p).unwrap_err();
        assert!(e.to_string().contains("__kiln.epoch"), "{e}");
        assert!(matches!(load_checkpoint(&d.join("missing")), Err(TrainError::Io { .. })));
        let mut bad = ckpt(0);
        bad.state.insert("__kiln.x".into(), HostTensor::scalar_f32(0.0));
        assert!(save_checkpoint(&p, &bad).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn dir_keeps_the_newest() {
        let d = tmpdir("dir");
        let c = CheckpointDir::new(&d, 2);
        assert_eq!(c.latest().unwrap(), None);
        for e in 0..5 {
            c.save(&ckpt(e)).unwrap();
        }
        c.save_best(&ckpt(1)).unwrap();
        assert_eq!(c.list().unwrap().iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(c.latest().unwrap().unwrap().epoch, 4);
        assert_eq!(load_checkpoint(&c.best_path()).unwrap().epoch, 1);
        let _ = std::fs::remove_dir_all(&d);
    }
}
