//! The local, append-only audit spool and the chain-state journal.
//!
//! Files in `spool_dir` (created mode 0700; files mode 0600, since the spool
//! holds unredacted records):
//!
//! - `audit.spool`: sealed events that Kafka has not acknowledged yet, as
//!   frames appended in sealing order and fsynced before `send` resolves.
//!   A frame is `u32 LE body length | body | first 4 bytes of SHA-256(body)`
//!   with body `u64 LE seq | u16 LE stream length | stream | u32 LE key length
//!   | key | payload`. A torn tail (crash during an append) is cut off at
//!   start-up; bytes after a damaged frame are moved aside to
//!   `audit.spool.damaged-<unix seconds>`, never silently deleted.
//! - `audit.spool.cursor`: the byte offset up to which the spool has been
//!   replayed to Kafka (decimal). The spool is truncated to zero once it has
//!   been replayed completely.
//! - `chain.id`: this instance's chain id (32 hex digits, random, created
//!   with the directory; see the `instance` member of the payload).
//! - `chain.journal`: one JSON line `{"stream":..,"seq":N,"hash":".."}` per
//!   stream and batch, written and fsynced *before* the events of a batch are
//!   handed to Kafka or the spool, so a restart continues every chain after
//!   the last sequence number that may have left the process. Compacted to
//!   one line per stream when it grows past 1 MiB.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::payload::{hex, parse_hex, stated_hash, ChainHead, SealedEvent};

pub(crate) const SPOOL_FILE: &str = "audit.spool";
pub(crate) const CURSOR_FILE: &str = "audit.spool.cursor";
pub(crate) const JOURNAL_FILE: &str = "chain.journal";
pub(crate) const INSTANCE_FILE: &str = "chain.id";
const JOURNAL_COMPACT_BYTES: u64 = 1 << 20;
const FRAME_OVERHEAD: usize = 4 + 8 + 2 + 4 + 4;

/// Creates the spool directory (mode 0700) if needed; warns when an
/// existing one is open to other users (it holds unredacted records).
pub(crate) fn ensure_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            spool_dir = %dir.display(),
            mode = format!("{:o}", mode & 0o777),
            "the audit spool directory is accessible to other users; it holds unredacted audit records (chmod 700)"
        );
    }
    Ok(())
}

/// This spool directory's chain id, created on first use.
pub(crate) fn instance_id(dir: &Path) -> io::Result<String> {
    let path = dir.join(INSTANCE_FILE);
    match fs::read_to_string(&path) {
        Ok(s) => {
            let id = s.trim();
            if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(id.to_ascii_lowercase())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not 32 hex digits", path.display()),
                ))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let bytes: [u8; 16] = rand::random();
            let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            write_atomic(dir, INSTANCE_FILE, format!("{id}\n").as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

fn open_rw(path: &Path, append: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(!append)
        .append(append)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dir/name` atomically (temporary file, fsync, rename,
/// directory fsync).
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Appends the frame of one sealed event to `out`.
pub(crate) fn encode_frame(ev: &SealedEvent, out: &mut Vec<u8>) {
    let stream = ev.stream.as_bytes();
    let stream_len = stream.len().min(u16::MAX as usize);
    let body_len = 8 + 2 + stream_len + 4 + ev.key.len() + ev.payload.len();
    out.reserve(body_len + 8);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    let start = out.len();
    out.extend_from_slice(&ev.seq.to_le_bytes());
    out.extend_from_slice(&(stream_len as u16).to_le_bytes());
    out.extend_from_slice(&stream[..stream_len]);
    out.extend_from_slice(&(ev.key.len() as u32).to_le_bytes());
    out.extend_from_slice(&ev.key);
    out.extend_from_slice(&ev.payload);
    let sum = Sha256::digest(&out[start..]);
    out.extend_from_slice(&sum[..4]);
}

/// The size of an event's frame.
pub(crate) fn frame_len(ev: &SealedEvent) -> usize {
    FRAME_OVERHEAD + ev.stream.len().min(u16::MAX as usize) + ev.key.len() + ev.payload.len()
}

/// One decoded spool frame.
pub(crate) struct Frame {
    pub stream: String,
    pub seq: u64,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    /// The offset just past this frame in the spool file.
    pub end: u64,
}

/// Decodes the frames in `buf`, which starts at file offset `base`. Returns
/// the frames and how many bytes they cover; stops at the first incomplete
/// or damaged frame (`damaged` says which).
pub(crate) fn decode_frames(buf: &[u8], base: u64, max: usize) -> (Vec<Frame>, usize, bool) {
    let mut frames = Vec::new();
    let mut pos = 0usize;
    while frames.len() < max {
        let rest = &buf[pos..];
        if rest.len() < 4 {
            return (frames, pos, false);
        }
        let body_len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        if body_len < 14 {
            return (frames, pos, true);
        }
        if rest.len() < 4 + body_len + 4 {
            return (frames, pos, false);
        }
        let body = &rest[4..4 + body_len];
        let sum = &rest[4 + body_len..4 + body_len + 4];
        if &Sha256::digest(body)[..4] != sum {
            return (frames, pos, true);
        }
        let seq = u64::from_le_bytes(body[..8].try_into().unwrap());
        let slen = u16::from_le_bytes(body[8..10].try_into().unwrap()) as usize;
        if 10 + slen + 4 > body.len() {
            return (frames, pos, true);
        }
        let stream = match std::str::from_utf8(&body[10..10 + slen]) {
            Ok(s) => s.to_string(),
            Err(_) => return (frames, pos, true),
        };
        let k = 10 + slen;
        let klen = u32::from_le_bytes(body[k..k + 4].try_into().unwrap()) as usize;
        if k + 4 + klen > body.len() {
            return (frames, pos, true);
        }
        let key = body[k + 4..k + 4 + klen].to_vec();
        let payload = body[k + 4 + klen..].to_vec();
        pos += 4 + body_len + 4;
        frames.push(Frame {
            stream,
            seq,
            key,
            payload,
            end: base + pos as u64,
        });
    }
    (frames, pos, false)
}

/// The append side of the spool, owned by the sink's writer task.
pub(crate) struct SpoolFile {
    dir: PathBuf,
    file: File,
    len: u64,
}

/// What start-up found in the spool.
pub(crate) struct Recovered {
    /// The last sequence number and hash per stream found in the spool.
    pub heads: HashMap<String, ChainHead>,
    /// Frames not yet replayed.
    pub pending_frames: u64,
    /// The replay cursor.
    pub cursor: u64,
}

impl SpoolFile {
    /// Opens (or creates) the spool, cuts off a torn tail and reads the
    /// chain heads and the replay cursor.
    pub(crate) fn open(dir: &Path) -> io::Result<(SpoolFile, Recovered)> {
        let path = dir.join(SPOOL_FILE);
        let mut file = open_rw(&path, true)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let (frames, good, damaged) = decode_frames(&buf, 0, usize::MAX);
        if good < buf.len() {
            if damaged {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let aside = format!("{SPOOL_FILE}.damaged-{secs}");
                write_atomic(dir, &aside, &buf[good..])?;
                let aside = dir.join(aside);
                tracing::error!(
                    spool = %path.display(),
                    offset = good,
                    bytes = buf.len() - good,
                    aside = %aside.display(),
                    "audit spool has a damaged frame; the bytes after it were moved aside"
                );
            } else {
                tracing::warn!(
                    spool = %path.display(),
                    offset = good,
                    bytes = buf.len() - good,
                    "audit spool ends in an incomplete frame (interrupted write); cutting it off"
                );
            }
            file.set_len(good as u64)?;
            file.sync_all()?;
        }
        let mut cursor = read_cursor(dir);
        if cursor > good as u64 || !frames.iter().any(|f| f.end == cursor) && cursor != 0 {
            // Not a frame boundary (the spool was truncated after a crash):
            // everything left is unreplayed.
            cursor = 0;
        }
        let mut heads: HashMap<String, ChainHead> = HashMap::new();
        let mut pending_frames = 0;
        for f in &frames {
            if f.end > cursor {
                pending_frames += 1;
            }
            if let Some(hash) = stated_hash(&f.payload) {
                let newer = heads.get(&f.stream).is_none_or(|h| h.seq < f.seq);
                if newer {
                    heads.insert(f.stream.clone(), ChainHead { seq: f.seq, hash });
                }
            }
        }
        let spool = SpoolFile {
            dir: dir.to_path_buf(),
            file,
            len: good as u64,
        };
        Ok((
            spool,
            Recovered {
                heads,
                pending_frames,
                cursor,
            },
        ))
    }

    /// The spool's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends frames and fsyncs.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if let Err(e) = self
            .file
            .write_all(bytes)
            .and_then(|_| self.file.sync_data())
        {
            // Cut off whatever part of the write landed, so the spool stays
            // a sequence of whole frames.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Empties the spool after a complete replay, then resets the cursor.
    pub(crate) fn truncate(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.len = 0;
        write_cursor(&self.dir, 0)
    }
}

/// The read side of the spool, owned by the replay task.
pub(crate) struct SpoolReader {
    file: File,
}

impl SpoolReader {
    pub(crate) fn open(dir: &Path) -> io::Result<SpoolReader> {
        Ok(SpoolReader {
            file: File::open(dir.join(SPOOL_FILE))?,
        })
    }

    /// Reads up to `max_frames` whole frames from `from`, not past `end`,
    /// reading about `max_bytes` (more when a single frame is larger).
    pub(crate) fn read(
        &self,
        from: u64,
        end: u64,
        max_frames: usize,
        max_bytes: u64,
    ) -> io::Result<Vec<Frame>> {
        if from >= end {
            return Ok(Vec::new());
        }
        let mut want = (end - from).min(max_bytes.max(4096));
        loop {
            let mut buf = vec![0u8; want as usize];
            self.file.read_exact_at(&mut buf, from)?;
            let (frames, _, damaged) = decode_frames(&buf, from, max_frames);
            if !frames.is_empty() {
                return Ok(frames);
            }
            // The first frame is larger than what was read: read it whole.
            let first = 8 + u64::from(u32::from_le_bytes(buf[..4].try_into().unwrap_or([0; 4])));
            if damaged || first <= want || from + first > end {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("damaged audit spool frame at offset {from}"),
                ));
            }
            want = first;
        }
    }
}

/// Reads the replay cursor (0 when absent or unreadable).
pub(crate) fn read_cursor(dir: &Path) -> u64 {
    fs::read_to_string(dir.join(CURSOR_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Persists the replay cursor.
pub(crate) fn write_cursor(dir: &Path, offset: u64) -> io::Result<()> {
    write_atomic(dir, CURSOR_FILE, format!("{offset}\n").as_bytes())
}

/// The chain-state journal (see the module documentation).
pub(crate) struct Journal {
    dir: PathBuf,
    file: File,
    bytes: u64,
    heads: HashMap<String, ChainHead>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct JournalLine {
    stream: String,
    seq: u64,
    hash: String,
}

impl Journal {
    /// Opens the journal and reads the last head of every stream.
    pub(crate) fn open(dir: &Path) -> io::Result<Journal> {
        let path = dir.join(JOURNAL_FILE);
        let text = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut heads = HashMap::new();
        let mut torn = false;
        for line in text.split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<JournalLine>(line)
                .ok()
                .and_then(|l| parse_hex(l.hash.as_bytes()).map(|h| (l.stream, l.seq, h)))
            {
                Some((stream, seq, hash)) => {
                    heads.insert(stream, ChainHead { seq, hash });
                }
                None => torn = true,
            }
        }
        if torn {
            tracing::warn!(
                journal = %path.display(),
                "audit chain journal has an unreadable line (interrupted write); it was skipped"
            );
        }
        let mut j = Journal {
            dir: dir.to_path_buf(),
            file: open_rw(&path, true)?,
            bytes: 0,
            heads,
        };
        // Start from a compact, clean file.
        j.compact()?;
        Ok(j)
    }

    /// The heads read at start-up and written since.
    pub(crate) fn heads(&self) -> &HashMap<String, ChainHead> {
        &self.heads
    }

    fn compact(&mut self) -> io::Result<()> {
        let mut out = Vec::new();
        let mut streams: Vec<_> = self.heads.iter().collect();
        streams.sort_by(|a, b| a.0.cmp(b.0));
        for (stream, head) in streams {
            line(&mut out, stream, head);
        }
        write_atomic(&self.dir, JOURNAL_FILE, &out)?;
        self.file = open_rw(&self.dir.join(JOURNAL_FILE), true)?;
        self.bytes = out.len() as u64;
        Ok(())
    }

    /// Records new heads and fsyncs.
    pub(crate) fn append(&mut self, heads: &[(String, ChainHead)]) -> io::Result<()> {
        if heads.is_empty() {
            return Ok(());
        }
        let mut out = Vec::with_capacity(heads.len() * 128);
        for (stream, head) in heads {
            line(&mut out, stream, head);
        }
        self.file.write_all(&out)?;
        self.file.sync_data()?;
        self.bytes += out.len() as u64;
        for (stream, head) in heads {
            self.heads.insert(stream.clone(), *head);
        }
        if self.bytes > JOURNAL_COMPACT_BYTES {
            self.compact()?;
        }
        Ok(())
    }
}

fn line(out: &mut Vec<u8>, stream: &str, head: &ChainHead) {
    let l = JournalLine {
        stream: stream.to_string(),
        seq: head.seq,
        hash: hex(&head.hash),
    };
    serde_json::to_writer(&mut *out, &l).expect("a journal line serialises");
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::AuditEvent;
    use crate::sinks::audit::payload::Sealer;

    fn sealed(s: &mut Sealer, stream: &str, n: u64) -> SealedEvent {
        s.seal(&AuditEvent {
            source: "app".into(),
            stream: stream.into(),
            key: None,
            time_unix_nano: n,
            record: serde_json::json!({"line": format!("l{n}")}),
        })
    }

    #[test]
    fn frames_round_trip_and_torn_tails_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sealer::new(None, "i", HashMap::new());
        let evs: Vec<_> = (0..5)
            .map(|n| sealed(&mut s, if n % 2 == 0 { "a" } else { "b" }, n))
            .collect();
        let mut buf = Vec::new();
        for e in &evs {
            encode_frame(e, &mut buf);
        }
        assert_eq!(buf.len(), evs.iter().map(frame_len).sum::<usize>());
        {
            let (mut sp, rec) = SpoolFile::open(dir.path()).unwrap();
            assert_eq!(rec.pending_frames, 0);
            sp.append(&buf).unwrap();
            // A torn write.
            sp.append(&buf[..10]).unwrap();
        }
        let (sp, rec) = SpoolFile::open(dir.path()).unwrap();
        assert_eq!(sp.len(), buf.len() as u64);
        assert_eq!(rec.pending_frames, 5);
        assert_eq!(rec.heads["a"].seq, 2);
        assert_eq!(rec.heads["b"].seq, 1);
        assert_eq!(rec.heads["b"].hash, evs[3].hash);
        let r = SpoolReader::open(dir.path()).unwrap();
        let frames = r.read(0, sp.len(), 3, 1 << 20).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2].payload, evs[2].payload);
        let rest = r.read(frames[2].end, sp.len(), 100, 1 << 20).unwrap();
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[1].end, sp.len());
        write_cursor(dir.path(), frames[2].end).unwrap();
        drop(sp);
        let (_, rec) = SpoolFile::open(dir.path()).unwrap();
        assert_eq!(rec.pending_frames, 2);
        assert_eq!(rec.cursor, frames[2].end);
    }

    #[test]
    fn damaged_frames_are_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sealer::new(None, "i", HashMap::new());
        let mut buf = Vec::new();
        for n in 0..3 {
            encode_frame(&sealed(&mut s, "a", n), &mut buf);
        }
        let second = frame_len(&sealed(&mut Sealer::new(None, "i", HashMap::new()), "a", 0));
        buf[second + 20] ^= 0xff;
        fs::write(dir.path().join(SPOOL_FILE), &buf).unwrap();
        let (sp, rec) = SpoolFile::open(dir.path()).unwrap();
        assert_eq!(rec.pending_frames, 1);
        assert_eq!(sp.len(), second as u64);
        let aside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
            .collect();
        assert_eq!(aside.len(), 1);
    }

    #[test]
    fn instance_id_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = instance_id(dir.path()).unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(instance_id(dir.path()).unwrap(), a);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(instance_id(other.path()).unwrap(), a);
    }

    #[test]
    fn journal_keeps_last_heads() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(dir.path()).unwrap();
            for batch in 0..15u64 {
                let heads: Vec<_> = (0..1000)
                    .map(|n| {
                        let seq = batch * 1000 + n;
                        (
                            "s".to_string(),
                            ChainHead {
                                seq,
                                hash: [seq as u8; 32],
                            },
                        )
                    })
                    .collect();
                j.append(&heads).unwrap();
            }
            j.append(&[(
                "t".into(),
                ChainHead {
                    seq: 3,
                    hash: [9; 32],
                },
            )])
            .unwrap();
        }
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.heads()["s"].seq, 14_999);
        assert_eq!(
            j.heads()["t"],
            ChainHead {
                seq: 3,
                hash: [9; 32]
            }
        );
        let len = fs::metadata(dir.path().join(JOURNAL_FILE)).unwrap().len();
        assert!(len < 1000, "compacted: {len}");
    }
}
