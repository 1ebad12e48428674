//! Checkpoints: `<data_dir>/checkpoints/<source>.json`, mapping each file's
//! fingerprint to the offset up to which the pipeline has acknowledged its
//! lines.
//!
//! # Three copies, so that a lane never waits for the disk
//!
//! - Two *live slots*, `<source>.json.live0` and `<source>.json.live1`,
//!   rewritten in place, alternately, after every acknowledgement and before
//!   the next batch may reach a sink ([`Writer::write_live`]). Rewriting a
//!   file that already has its blocks is a copy into the page cache: no
//!   block is allocated or freed and no directory changes, so it does not
//!   wait for the device however busy the device is. (Replacing a file by
//!   a rename frees the old file's blocks, and on a file system mounted
//!   with `discard` and without a journal that waits for the device to
//!   discard them: 0.2 to 0.5 s on a disk busy writing back the very log
//!   being tailed, measured in `scripts/bench-sidecar.sh tail`.) Each slot
//!   starts with a header giving the length and SHA-256 of the JSON that
//!   follows, so a slot torn by a crash in the middle of its write is
//!   recognised, and the other slot, one acknowledgement older, is used.
//! - The *durable copy*, `<source>.json`, written in the background at most
//!   every second and at shutdown ([`write_atomic`] with `sync`: temporary
//!   file, fsync, rename, fsync of the directory). It bounds what a power
//!   loss can take back, and it is the file operators read.
//!
//! Every copy carries a generation number, incremented at every write;
//! [`load`] takes the valid copy with the highest. Any copy is safe to
//! resume from: each records only acknowledged lines, so an older one means
//! lines read (and sent) again, never lines lost. To make a source read its
//! files again from their beginning, remove `<source>.json*` while scrubs
//! is stopped.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::reader::{hash, hex, Key};

/// The file format version.
const VERSION: u32 = 1;

/// The first word of a live slot's header line.
const SLOT_MAGIC: &str = "scrubs-checkpoint-slot";

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    source: String,
    /// Incremented at every write of any copy; 0 in files written before
    /// copies had one.
    #[serde(default)]
    generation: u64,
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
    /// The entries of the newest valid copy, and its generation.
    Entries(Vec<Entry>, u64),
    /// The file exists but cannot be read: it was moved aside to the path
    /// given, and every file is read from its beginning.
    Corrupt { moved_to: PathBuf, error: String },
}

/// The path of live slot `i` (0 or 1) of the checkpoint at `path`.
fn slot_path(path: &Path, i: usize) -> PathBuf {
    path.with_extension(format!("json.live{i}"))
}

/// Parses a checkpoint's JSON.
fn parse(bytes: &[u8]) -> Result<CheckpointFile, String> {
    match serde_json::from_slice::<CheckpointFile>(bytes) {
        Ok(f) if f.version == VERSION => Ok(f),
        Ok(f) => Err(format!("unsupported version {}", f.version)),
        Err(e) => Err(e.to_string()),
    }
}

/// Reads a file; `None` if it does not exist.
fn read_if_exists(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The JSON a live slot holds, if its header is whole and its checksum
/// matches (a slot torn by a crash, or never written, holds none).
fn slot_json(bytes: &[u8]) -> Option<&[u8]> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..nl]).ok()?;
    let mut words = header.split(' ');
    if words.next()? != SLOT_MAGIC {
        return None;
    }
    let len: usize = words.next()?.parse().ok()?;
    let sum = words.next()?;
    let json = bytes.get(nl + 1..)?.get(..len)?;
    (hex(&hash(json)) == sum).then_some(json)
}

/// What is on disk for one checkpoint.
struct Copies {
    /// The valid copies (durable copy first).
    valid: Vec<CheckpointFile>,
    /// The durable copy's error, if it exists and is not valid.
    durable_error: Option<String>,
    /// A live slot that holds something, but no valid checkpoint.
    bad_slot: Option<PathBuf>,
}

fn copies(path: &Path) -> io::Result<Copies> {
    let mut c = Copies {
        valid: Vec::new(),
        durable_error: None,
        bad_slot: None,
    };
    if let Some(bytes) = read_if_exists(path)? {
        match parse(&bytes) {
            Ok(f) => c.valid.push(f),
            Err(e) => c.durable_error = Some(e),
        }
    }
    for i in 0..2 {
        let p = slot_path(path, i);
        // An empty slot was created and never written: nothing was lost.
        if let Some(bytes) = read_if_exists(&p)?.filter(|b| !b.is_empty()) {
            match slot_json(&bytes).and_then(|j| parse(j).ok()) {
                Some(f) => c.valid.push(f),
                None => c.bad_slot = Some(p),
            }
        }
    }
    Ok(c)
}

/// The newest of `copies` (the first of equal generations: the durable
/// copy).
fn newest(copies: Vec<CheckpointFile>) -> Option<CheckpointFile> {
    copies.into_iter().reduce(|best, c| {
        if c.generation > best.generation {
            c
        } else {
            best
        }
    })
}

/// Moves an unreadable copy aside, to `<its name>.corrupt-<secs>`.
fn move_aside(p: &Path) -> io::Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = p.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".corrupt-{secs}"));
    let to = p.with_file_name(name);
    fs::rename(p, &to)?;
    Ok(to)
}

/// Loads the newest valid copy of the checkpoint at `path`. A durable copy
/// that cannot be read is moved aside (`<source>.json.corrupt-<secs>`).
/// When no valid copy is left but one existed (a durable copy or a live
/// slot that cannot be read), every file is read from its beginning
/// (`Corrupt`), whatever `start_at` says: lines may be read again, none
/// skipped.
pub(crate) fn load(path: &Path) -> io::Result<Loaded> {
    let Copies {
        valid,
        durable_error,
        bad_slot,
    } = copies(path)?;
    let durable_corrupt = match durable_error {
        Some(error) => Some(Loaded::Corrupt {
            moved_to: move_aside(path)?,
            error,
        }),
        None => None,
    };
    if let Some(f) = newest(valid) {
        let mut v: Vec<Entry> = f
            .files
            .into_values()
            .filter(|e| e.key().is_some())
            .collect();
        v.sort_by_key(|e| e.seq);
        return Ok(Loaded::Entries(v, f.generation));
    }
    if let Some(corrupt) = durable_corrupt {
        return Ok(corrupt);
    }
    match bad_slot {
        Some(slot) => Ok(Loaded::Corrupt {
            moved_to: move_aside(&slot)?,
            error: "a live slot of the checkpoint does not match its checksum".into(),
        }),
        None => Ok(Loaded::Missing),
    }
}

/// Whether any copy of the checkpoint at `path` exists.
pub(crate) fn exists(path: &Path) -> bool {
    path.exists() || (0..2).any(|i| slot_path(path, i).exists())
}

/// Writes the newest valid copy of the checkpoint at `from` as the
/// durable copy at `to` (a new vendor lane starts where the source is).
/// Does nothing if `from` has no valid copy.
pub(crate) fn copy(from: &Path, to: &Path) -> io::Result<()> {
    match newest(copies(from)?.valid) {
        Some(f) => {
            let bytes = serde_json::to_vec_pretty(&f).map_err(io::Error::other)?;
            write_atomic(to, &bytes, true)
        }
        None => Ok(()),
    }
}

/// Serialises a checkpoint of generation `generation`.
pub(crate) fn encode(source: &str, generation: u64, entries: Vec<(Key, Entry)>) -> Vec<u8> {
    let f = CheckpointFile {
        version: VERSION,
        source: source.to_string(),
        generation,
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

/// Writes the live slots of one checkpoint (see the module doc).
#[derive(Debug)]
pub(crate) struct Writer {
    path: PathBuf,
    slots: [Option<File>; 2],
    /// Each slot file's length: a slot is padded to it and never shrinks,
    /// so that rewriting it never frees a block.
    lens: [u64; 2],
    next: usize,
}

impl Writer {
    /// The writer of the live slots beside `path`; opens nothing yet.
    pub(crate) fn new(path: &Path) -> Writer {
        Writer {
            path: path.to_path_buf(),
            slots: [None, None],
            lens: [0, 0],
            next: 0,
        }
    }

    /// Writes `json` (a checkpoint from [`encode`]) into the next slot, in
    /// place. Costs a copy into the page cache once the slot has its
    /// blocks; allocates them on a slot's first write and when the
    /// checkpoint grows.
    pub(crate) fn write_live(&mut self, json: &[u8]) -> io::Result<()> {
        let i = self.next;
        let file = match &mut self.slots[i] {
            Some(f) => f,
            slot => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(slot_path(&self.path, i))?;
                self.lens[i] = f.metadata()?.len();
                slot.insert(f)
            }
        };
        let mut buf = format!("{SLOT_MAGIC} {} {}\n", json.len(), hex(&hash(json))).into_bytes();
        buf.extend_from_slice(json);
        buf.push(b'\n');
        // Pad with spaces (after the JSON, outside its length) to the
        // slot's length rather than truncating it.
        let len = (buf.len() as u64).max(self.lens[i]);
        buf.resize(len as usize, b' ');
        file.write_all_at(&buf, 0)?;
        self.lens[i] = len;
        self.next = 1 - i;
        Ok(())
    }
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
        let (k, e) = entry(11);
        write_atomic(&p, &encode("x", 7, vec![(k, e)]), true).unwrap();
        match load(&p).unwrap() {
            Loaded::Entries(v, generation) => {
                assert_eq!(generation, 7);
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

    fn entry(offset: u64) -> (Key, Entry) {
        let k = Key::of(b"hello world", 256, 1, 2);
        let e = Entry {
            fingerprint: k.hex(),
            fingerprint_len: k.len,
            inode_bound: true,
            dev: 1,
            ino: 2,
            offset,
            path: "/x".into(),
            stream: "/x".into(),
            seq: 0,
            last_seen: 0,
        };
        (k, e)
    }

    fn loaded_offset(p: &Path) -> (u64, u64) {
        match load(p).unwrap() {
            Loaded::Entries(v, generation) => (v[0].offset, generation),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_newest_valid_copy_wins_and_a_torn_slot_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "app");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut w = Writer::new(&p);
        // A long first checkpoint, then shorter ones: the slots are padded,
        // never shortened.
        let mut long = entry(1);
        long.1.path = "/a/very/long/path/".repeat(20);
        w.write_live(&encode("app", 1, vec![long])).unwrap();
        w.write_live(&encode("app", 2, vec![entry(2)])).unwrap();
        w.write_live(&encode("app", 3, vec![entry(3)])).unwrap();
        let len0 = fs::metadata(slot_path(&p, 0)).unwrap().len();
        assert!(len0 > 360, "slot 0 kept its length: {len0}");
        assert_eq!(loaded_offset(&p), (3, 3));

        // The durable copy is older: the slots win; newer: it wins.
        write_atomic(&p, &encode("app", 2, vec![entry(20)]), true).unwrap();
        assert_eq!(loaded_offset(&p), (3, 3));
        write_atomic(&p, &encode("app", 4, vec![entry(40)]), true).unwrap();
        assert_eq!(loaded_offset(&p), (40, 4));
        fs::remove_file(&p).unwrap();

        // Slot 0 (generation 3) torn in the middle of its JSON: slot 1
        // (generation 2) is used.
        let mut bytes = fs::read(slot_path(&p, 0)).unwrap();
        let at = bytes.iter().position(|&b| b == b'\n').unwrap() + 20;
        bytes[at] ^= 0x20;
        fs::write(slot_path(&p, 0), &bytes).unwrap();
        assert_eq!(loaded_offset(&p), (2, 2));

        // A new vendor lane's copy takes the newest valid copy.
        let lane = lane_path(dir.path(), "app", "v");
        fs::create_dir_all(lane.parent().unwrap()).unwrap();
        assert!(!exists(&lane));
        copy(&p, &lane).unwrap();
        assert!(exists(&lane));
        assert_eq!(loaded_offset(&lane), (2, 2));

        // Neither slot valid and no durable copy: every file is read from
        // its beginning (not as a new source, which `start_at: end` would
        // skip), and the bad slot is moved aside.
        fs::write(slot_path(&p, 1), b"scrubs-checkpoint-slot 5 00\n{}").unwrap();
        match load(&p).unwrap() {
            Loaded::Corrupt { moved_to, .. } => {
                assert!(
                    moved_to.to_string_lossy().contains(".json.live"),
                    "{moved_to:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Empty slots (created, never written) hold nothing to lose.
        fs::write(slot_path(&p, 0), b"").unwrap();
        fs::write(slot_path(&p, 1), b"").unwrap();
        assert!(matches!(load(&p).unwrap(), Loaded::Missing));
    }

    #[test]
    fn slot_headers_that_do_not_match_hold_nothing() {
        let json = br#"{"a":1}"#;
        let sum = hex(&hash(json));
        let good = format!("{SLOT_MAGIC} {} {sum}\n{{\"a\":1}}\n   ", json.len());
        assert_eq!(slot_json(good.as_bytes()), Some(&json[..]));
        for bad in [
            String::new(),
            format!("{SLOT_MAGIC} {} {sum}", json.len()),
            format!("other {} {sum}\n{{\"a\":1}}", json.len()),
            format!("{SLOT_MAGIC} 99 {sum}\n{{\"a\":1}}"),
            format!("{SLOT_MAGIC} x {sum}\n{{\"a\":1}}"),
            format!("{SLOT_MAGIC} {} {sum}\n{{\"a\":2}}", json.len()),
        ] {
            assert_eq!(slot_json(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
