//! Checkpoints: `<data_dir>/checkpoints/<source>.json`, mapping each file's
//! fingerprint to the offset up to which the pipeline has acknowledged its
//! lines. Written atomically (temporary file, rename), so a crashed process
//! leaves either the previous or the new version; with `sync`, the data and
//! the directory are fsynced too, so it also survives a power loss.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::reader::Key;

/// The file format version.
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    source: String,
    /// Keyed by `<sha256 hex>/<length>` (plus `@<dev>:<ino>` for entries
    /// bound to an inode).
    files: BTreeMap<String, Entry>,
}

/// One file's progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// Hex SHA-256 of the file's first `fingerprint_len` bytes.
    pub fingerprint: String,
    pub fingerprint_len: u32,
    /// The fingerprint only identifies the file together with its inode
    /// (short files, colliding prefixes).
    #[serde(default)]
    pub inode_bound: bool,
    pub dev: u64,
    pub ino: u64,
    /// Bytes acknowledged: the next line starts here.
    pub offset: u64,
    /// Where the file was last seen.
    pub path: String,
    /// The stream name its lines carry (the path it was first seen at).
    pub stream: String,
    /// Discovery order, for reading rotated files before their successors.
    pub seq: u64,
    /// When a scan last found the file (Unix seconds).
    pub last_seen: u64,
}

impl Entry {
    pub fn key(&self) -> Option<Key> {
        Key::from_hex(
            &self.fingerprint,
            self.fingerprint_len,
            self.inode_bound.then_some((self.dev, self.ino)),
        )
    }
}

/// The checkpoint file of source `name`'s lane for `vendor` under
/// `data_dir`: `checkpoints/vendors/<vendor>/<name>.json`.
pub(crate) fn lane_path(data_dir: &Path, name: &str, vendor: &str) -> PathBuf {
    let file = path(data_dir, name);
    let file_name = file.file_name().map(|f| f.to_owned()).unwrap_or_default();
    data_dir
        .join("checkpoints")
        .join("vendors")
        .join(safe_name(vendor))
        .join(file_name)
}

fn safe_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() || safe.starts_with('.') {
        format!("_{safe}")
    } else {
        safe
    }
}

/// The checkpoint file of source `name` under `data_dir`.
pub(crate) fn path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir
        .join("checkpoints")
        .join(format!("{}.json", safe_name(name)))
}

/// What was found on disk.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// No checkpoint file: this source never ran with this data directory.
    Missing,
    Entries(Vec<Entry>),
    /// The file exists but cannot be read: it was moved aside to the path
    /// given, and every file is read from its beginning.
    Corrupt {
        moved_to: PathBuf,
        error: String,
    },
}

pub(crate) fn load(path: &Path) -> io::Result<Loaded> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(e) => return Err(e),
    };
    let parsed: Result<CheckpointFile, String> =
        serde_json::from_slice(&bytes).map_err(|e| e.to_string());
    let error = match parsed {
        Ok(f) if f.version == VERSION => {
            let mut v: Vec<Entry> = f
                .files
                .into_values()
                .filter(|e| e.key().is_some())
                .collect();
            v.sort_by_key(|e| e.seq);
            return Ok(Loaded::Entries(v));
        }
        Ok(f) => format!("unsupported version {}", f.version),
        Err(e) => e,
    };
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let moved_to = path.with_extension(format!("json.corrupt-{secs}"));
    fs::rename(path, &moved_to)?;
    Ok(Loaded::Corrupt { moved_to, error })
}

/// Serialises a checkpoint.
pub(crate) fn encode(source: &str, entries: Vec<(Key, Entry)>) -> Vec<u8> {
    let f = CheckpointFile {
        version: VERSION,
        source: source.to_string(),
        files: entries.into_iter().map(|(k, e)| (k.id(), e)).collect(),
    };
    serde_json::to_vec_pretty(&f).unwrap_or_default()
}

/// Writes `bytes` to `path` atomically; durably with `sync` (fsync of the
/// temporary file before the rename, and of the directory after it).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    if sync {
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "app/../x");
        assert!(p.ends_with("checkpoints/app_.._x.json"));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        assert!(matches!(load(&p).unwrap(), Loaded::Missing));
        let k = Key::of(b"hello world", 256, 1, 2);
        let e = Entry {
            fingerprint: k.hex(),
            fingerprint_len: k.len,
            inode_bound: true,
            dev: 1,
            ino: 2,
            offset: 11,
            path: "/x".into(),
            stream: "/x".into(),
            seq: 0,
            last_seen: 0,
        };
        write_atomic(&p, &encode("x", vec![(k, e)]), true).unwrap();
        match load(&p).unwrap() {
            Loaded::Entries(v) => {
                assert_eq!(v.len(), 1);
                assert_eq!(v[0].key(), Some(k));
                assert_eq!(v[0].offset, 11);
            }
            other => panic!("{other:?}"),
        }
        fs::write(&p, b"{not json").unwrap();
        assert!(matches!(load(&p).unwrap(), Loaded::Corrupt { .. }));
        assert!(matches!(load(&p).unwrap(), Loaded::Missing));
    }
}
