//! The per-user code key: the secret behind the seals (`seal.rs`) that let
//! a load install stored machine code. It never goes into a `.kiln` file,
//! so a file from anyone else carries no valid seal and is compiled.
//!
//! Where it lives: the file named by `KILN_CODE_KEY`, else
//! `$XDG_CONFIG_HOME/kiln/code-key`, else `$HOME/.config/kiln/code-key`
//! (`%APPDATA%\kiln\code-key` on Windows). 32 random bytes, created on the
//! first save that stores machine code, readable and writable by its owner
//! only; a key file others could read or replace is refused, since whoever
//! can write it can make kiln run their code.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::FormatError;

/// The environment variable naming the key file.
pub const KEY_ENV: &str = "KILN_CODE_KEY";
const KEY_LEN: usize = 32;

/// A secret key that seals machine code as this user's own.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeKey([u8; KEY_LEN]);

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A secret has no business in logs or panic messages.
        f.write_str("CodeKey(..)")
    }
}

impl CodeKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> CodeKey {
        CodeKey(bytes)
    }

    /// A fresh key from the operating system's random source.
    pub fn random() -> Result<CodeKey, FormatError> {
        let mut b = [0u8; KEY_LEN];
        getrandom::fill(&mut b).map_err(|e| key_error(Path::new("<random>"), format!("no random source: {e}")))?;
        Ok(CodeKey(b))
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key file's location: `KILN_CODE_KEY`, else the per-user config
    /// directory; `None` when the environment names no home at all.
    pub fn default_path() -> Option<PathBuf> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(p) = var(KEY_ENV) {
            return Some(p);
        }
        let config = var("XDG_CONFIG_HOME").or_else(|| var("HOME").map(|h| h.join(".config"))).or_else(|| var("APPDATA"))?;
        Some(config.join("kiln").join("code-key"))
    }

    /// The key stored at `path`; `None` when there is no file. A file of
    /// the wrong size, or (on Unix) not owned by this user or open to
    /// others, is an error.
    pub fn read(path: &Path) -> Result<Option<CodeKey>, FormatError> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(key_error(path, e.to_string())),
        };
        if !meta.is_file() {
            return Err(key_error(path, "not a regular file".into()));
        }
        check_private(path, &meta)?;
        let bytes = std::fs::read(path).map_err(|e| key_error(path, e.to_string()))?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|b: Vec<u8>| key_error(path, format!("{} bytes, a key has {KEY_LEN}", b.len())))?;
        Ok(Some(CodeKey(key)))
    }

    /// The key at `path`, created (with its directory, owner-only) when
    /// there is none. Two processes creating it at once agree on one key.
    pub fn read_or_create(path: &Path) -> Result<CodeKey, FormatError> {
        if let Some(k) = CodeKey::read(path)? {
            return Ok(k);
        }
        let key = CodeKey::random()?;
        let io = |e: std::io::Error| key_error(path, e.to_string());
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        private_dir(dir).map_err(io)?;
        // Written in full under a temporary name, then linked into place:
        // a reader never sees a half-written key, and a link (unlike a
        // rename) fails rather than replacing a key another process made.
        let tmp = dir.join(format!(".code-key.{}.{:016x}.tmp", std::process::id(), getrandom::u64().unwrap_or(0)));
        let written = write_private(&tmp, key.bytes()).map_err(io);
        let linked = written.and_then(|()| match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            // A file system without hard links.
            Err(_) => std::fs::rename(&tmp, path).map(|()| true).map_err(io),
        });
        let _ = std::fs::remove_file(&tmp);
        if linked? {
            Ok(key)
        } else {
            CodeKey::read(path)?.ok_or_else(|| key_error(path, "vanished while being created".into()))
        }
    }
}

/// Which key a save seals machine code with and a load accepts it under.
#[derive(Debug, Clone, Default)]
pub enum KeyChoice {
    /// The user's key file ([`CodeKey::default_path`]), created on the first
    /// save that needs it. Where it cannot be created (no home, a
    /// read-only one), saves store no machine code and loads compile.
    #[default]
    User,
    /// The key file at this path, created on the first save that needs it.
    File(PathBuf),
    /// This key (tests; tools that keep keys elsewhere).
    Key(CodeKey),
    /// No key: a save stores no machine code, a load compiles every kernel.
    None,
}

impl KeyChoice {
    /// The key to seal with, creating the key file if need be.
    pub(crate) fn for_save(&self) -> Result<Option<CodeKey>, FormatError> {
        match self {
            KeyChoice::User => {
                let Some(path) = CodeKey::default_path() else { return Ok(None) };
                match CodeKey::read(&path)? {
                    Some(k) => Ok(Some(k)),
                    // Machine code only saves a compile at load: not worth
                    // failing a save over an unwritable config directory.
                    None => Ok(CodeKey::read_or_create(&path).ok()),
                }
            }
            KeyChoice::File(p) => CodeKey::read_or_create(p).map(Some),
            KeyChoice::Key(k) => Ok(Some(k.clone())),
            KeyChoice::None => Ok(None),
        }
    }

    /// The key to check seals with; never creates one (without a key no
    /// seal can verify anyway).
    pub(crate) fn for_load(&self) -> Result<Option<CodeKey>, FormatError> {
        match self {
            KeyChoice::User => CodeKey::default_path().map_or(Ok(None), |p| CodeKey::read(&p)),
            KeyChoice::File(p) => CodeKey::read(p),
            KeyChoice::Key(k) => Ok(Some(k.clone())),
            KeyChoice::None => Ok(None),
        }
    }
}

fn key_error(path: &Path, reason: String) -> FormatError {
    FormatError::Key { path: path.display().to_string(), reason }
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), FormatError> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(key_error(path, format!("owned by uid {}, not by this user (uid {me})", meta.uid())));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(key_error(path, format!("mode {:o} lets others read or write it; `chmod 600` it (or delete it to make a new key)", meta.mode() & 0o777)));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), FormatError> {
    // The per-user profile directory's ACL is what protects it here.
    Ok(())
}

#[cfg(unix)]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
