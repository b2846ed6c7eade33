//! Reading a bepasty storage directory: `<name>.data` (the bytes) beside `<name>.meta` (a pickled
//! dict of str/int/bool, see bepasty's `constants.py`). The directory is treated as hostile:
//! nothing in it is followed (symlinks, FIFOs), names only come from its own listing, and a
//! `.meta` is size-bounded and parsed by `serde-pickle` into flat scalars only.

use crate::blobs::open_regular;
use serde::de::{self, Deserializer, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// bepasty writes a few hundred bytes. The bound is far below 1 MiB on purpose: pickle's DUP
/// copies whole lists, so a hostile pickle can make memory grow with the square of its size
/// (at 4 KiB, a DUP bomb peaks below 100 MB).
pub const MAX_META: u64 = 4 << 10;

/// One `*.meta` of the directory (an item exists in bepasty iff its `.meta` does).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The file name without `.meta` (lossy if not UTF-8: then it is no valid name anyway).
    pub name: String,
    pub meta: PathBuf,
    pub data: PathBuf,
}

/// The `*.meta` entries of `dir` in name order, and the `*.data` files without a `.meta`.
pub fn list(dir: &Path) -> io::Result<(Vec<Entry>, Vec<String>)> {
    let mut metas = Vec::new();
    let mut datas = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if let Some(stem) = file_name.strip_suffix(".meta") {
            metas.push(Entry {
                name: stem.to_string(),
                meta: entry.path(),
                data: dir.join(format!("{stem}.data")),
            });
        } else if let Some(stem) = file_name.strip_suffix(".data") {
            datas.push(stem.to_string());
        }
    }
    metas.sort_by(|a, b| a.name.cmp(&b.name));
    let orphans = datas
        .into_iter()
        .filter(|d| metas.binary_search_by(|m| m.name.as_str().cmp(d)).is_err())
        .collect();
    Ok((metas, orphans))
}

/// An item's metadata as bepasty 1.2.2 keeps it, with `bepasty-object migrate`'s defaults for
/// keys that items of older versions lack.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub filename: Option<String>,
    pub content_type: Option<String>,
    /// `None`: missing (migrate takes the data file's size).
    pub size: Option<u64>,
    /// `None`: missing (migrate would take the current time; we take the data file's mtime).
    pub uploaded: Option<i64>,
    /// 0: never.
    pub downloaded: i64,
    /// Unix seconds if > 0; -1 (or any value <= 0) is forever.
    pub max_life: i64,
    pub locked: bool,
    pub complete: bool,
    /// Lower-case hex SHA-256, empty until bepasty computed it.
    pub hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("cannot read metadata: {0}")]
    Io(#[from] io::Error),
    #[error("its metadata is a symlink (never followed)")]
    Symlink,
    #[error("empty metadata (bepasty lists no item for it)")]
    Empty,
    #[error("metadata has {0} bytes, more than bepasty ever writes ({MAX_META})")]
    TooBig(u64),
    #[error("corrupt metadata: {0}")]
    Pickle(#[from] serde_pickle::Error),
    #[error("corrupt metadata: {0:?} is {1}")]
    Key(&'static str, &'static str),
}

/// Reads and parses one `.meta` file (never following a symlink).
pub fn read_meta(path: &Path) -> Result<Meta, MetaError> {
    let file = open_regular(path, false).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => MetaError::Symlink,
        _ => MetaError::Io(e),
    })?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Err(MetaError::Empty);
    }
    if len > MAX_META {
        return Err(MetaError::TooBig(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_META + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_META {
        return Err(MetaError::TooBig(bytes.len() as u64));
    }
    parse_meta(&bytes)
}

/// Parses pickled metadata. Bytes after the pickle's STOP are ignored, as Python does: bepasty
/// rewrites a `.meta` in place without truncating it.
pub fn parse_meta(bytes: &[u8]) -> Result<Meta, MetaError> {
    // decode_strings: metadata written under Python 2 has its text as byte strings.
    let options = serde_pickle::DeOptions::new().decode_strings();
    let mut de = serde_pickle::Deserializer::new(bytes, options);
    let dict: BTreeMap<String, Scalar> = serde::Deserialize::deserialize(&mut de)?;
    let text = |key: &'static str| match dict.get(key) {
        None | Some(Scalar::None) => Ok(None),
        Some(Scalar::Text(s)) => Ok(Some(s.clone())),
        Some(_) => Err(MetaError::Key(key, "not text")),
    };
    let int = |key: &'static str| match dict.get(key) {
        None | Some(Scalar::None) => Ok(None),
        Some(Scalar::Int(i)) => Ok(Some(*i)),
        // `bepasty-object migrate` stores time.time(), a float.
        Some(Scalar::Float(f)) if f.is_finite() => Ok(Some(*f as i64)),
        Some(_) => Err(MetaError::Key(key, "not a number")),
    };
    let flag = |key: &'static str| match dict.get(key) {
        None | Some(Scalar::None) => Ok(None),
        Some(Scalar::Bool(b)) => Ok(Some(*b)),
        Some(Scalar::Int(i)) => Ok(Some(*i != 0)),
        Some(_) => Err(MetaError::Key(key, "not a boolean")),
    };
    let size = match int("size")? {
        Some(s) => Some(u64::try_from(s).map_err(|_| MetaError::Key("size", "negative"))?),
        None => None,
    };
    Ok(Meta {
        filename: text("filename")?,
        content_type: text("type")?,
        size,
        uploaded: int("timestamp-upload")?,
        downloaded: int("timestamp-download")?.unwrap_or(0),
        max_life: int("timestamp-max-life")?.unwrap_or(-1),
        // Before 0.1.0 the key was `unlocked`.
        locked: match flag("locked")? {
            Some(l) => l,
            None => flag("unlocked")?.is_some_and(|u| !u),
        },
        complete: flag("complete")?.unwrap_or(true),
        hash: text("hash")?.unwrap_or_default().to_ascii_lowercase(),
    })
}

/// Opens an item's data file: a regular file only, never through a symlink.
pub fn open_data(path: &Path) -> io::Result<File> {
    open_regular(path, false)
}

/// A value of the metadata dict. Anything nested (a list, a dict) is refused without being
/// looked into, so memo references cannot blow it up.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number, boolean or None")
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::None)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        i64::try_from(v)
            .map(Scalar::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(v.to_string()))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Scalar, E> {
        std::str::from_utf8(v)
            .map(|s| Scalar::Text(s.to_string()))
            .map_err(|_| E::custom("text that is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pickle.dumps({...}, protocol=2)` of a REST upload's metadata, as Python 3.11 wrote it,
    /// with stale bytes after STOP (bepasty rewrites in place).
    const PICKLE: &[u8] = b"\x80\x02}q\x00(X\x08\x00\x00\x00filenameq\x01X\x07\x00\x00\x00big.binq\x02X\x04\x00\x00\x00sizeq\x03J\xe0\x93\x04\x00X\x04\x00\x00\x00typeq\x04X\x18\x00\x00\x00application/octet-streamq\x05X\x10\x00\x00\x00timestamp-uploadq\x06J9\x1a\x10kX\x12\x00\x00\x00timestamp-downloadq\x07K\x00X\x06\x00\x00\x00lockedq\x08\x89X\x08\x00\x00\x00completeq\t\x88X\x04\x00\x00\x00hashq\nX\x00\x00\x00\x00q\x0bX\x12\x00\x00\x00timestamp-max-lifeq\x0cJ\xff\xff\xff\xffu.stale";

    #[test]
    fn reads_python_pickles_and_ignores_trailing_bytes() {
        let m = parse_meta(PICKLE).unwrap();
        assert_eq!(m.filename.as_deref(), Some("big.bin"));
        assert_eq!(m.size, Some(300_000));
        assert_eq!(m.uploaded, Some(1_796_217_401));
        assert_eq!(m.max_life, -1);
        assert!(!m.locked && m.complete && m.hash.is_empty());
    }

    #[test]
    fn refuses_what_is_not_flat_metadata() {
        // A list of a memoized list repeated: nested values are refused unexpanded.
        let nested = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(]q\x03(K\x01K\x02eh\x03h\x03es.";
        assert!(matches!(parse_meta(nested), Err(MetaError::Pickle(_))));
        // A global (what a pickle uses to run code) is an error, never looked up.
        let global = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
        assert!(parse_meta(global).is_err());
        assert!(parse_meta(b"garbage").is_err());
        assert!(parse_meta(b"").is_err());
        let wrong_type = b"\x80\x02}q\x00X\x04\x00\x00\x00sizeq\x01X\x01\x00\x00\x00xq\x02s.";
        assert!(matches!(
            parse_meta(wrong_type),
            Err(MetaError::Key("size", _))
        ));
    }

    #[test]
    fn legacy_keys_get_migrates_defaults() {
        // {'unlocked': False, 'timestamp-upload': 1.5e9}
        let old = b"\x80\x02}q\x00(X\x08\x00\x00\x00unlockedq\x01\x89X\x10\x00\x00\x00timestamp-uploadq\x02GA\xd6Z\x0b\xc0\x00\x00\x00u.";
        let m = parse_meta(old).unwrap();
        assert!(m.locked && m.complete);
        assert_eq!(m.uploaded, Some(1_500_000_000));
        assert_eq!((m.max_life, m.size, m.filename), (-1, None, None));
    }
}
