//! The local, append-only audit spool and the chain-state journal.
//!
//! Files in `spool_dir` (created mode 0700; files mode 0600, since the spool
//! holds unredacted records):
//!
//! - `audit.spool`: sealed events that Kafka has not acknowledged yet, as
//!   frames appended in sealing order and fsynced before `send` resolves.
//!   A frame's body is `u64 LE seq | u16 LE stream length | stream | u32 LE
//!   key length | key | payload`. Without an encryption key a frame is
//!   `u32 LE body length | body | first 4 bytes of SHA-256(body)`. With
//!   `spool_encryption_key_file` (see [`SpoolCipher`]) it is `u32 LE
//!   (0x8000_0000 | sealed length) | key id (4 bytes) | nonce (24 bytes) |
//!   XChaCha20-Poly1305 ciphertext of the body | tag (16 bytes)`, the first
//!   8 bytes authenticated as associated data: a copied volume shows frame
//!   sizes and nothing else, not even which stream or patient key a frame
//!   belongs to. Both kinds can follow each other in one file (a spool
//!   written before the key was configured is still replayed). A torn tail
//!   (crash during an append) is cut off at start-up; bytes after a damaged
//!   frame (a checksum or tag that does not match) are moved aside to
//!   `audit.spool.damaged-<unix seconds>`, never silently deleted. A frame
//!   sealed under another key, or sealed when no key is configured, stops
//!   the sink from starting with an error naming both key ids: it is not
//!   damage, and the operator has the key it needs.
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
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::payload::{hex, parse_hex, stated_hash, ChainHead, SealedEvent};

pub(crate) const SPOOL_FILE: &str = "audit.spool";
pub(crate) const CURSOR_FILE: &str = "audit.spool.cursor";
/// When the spool's current contents started: see [`read_since`].
pub(crate) const SINCE_FILE: &str = "audit.spool.since";
pub(crate) const JOURNAL_FILE: &str = "chain.journal";
pub(crate) const INSTANCE_FILE: &str = "chain.id";
const JOURNAL_COMPACT_BYTES: u64 = 1 << 20;
const FRAME_OVERHEAD: usize = 4 + 8 + 2 + 4 + 4;
/// The high bit of a frame's length word marks an encrypted frame.
const SEALED_FLAG: u32 = 0x8000_0000;
const KEY_ID_BYTES: usize = 4;
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
/// What encryption adds to a body: key id, nonce and tag (the plain
/// frame's 4-byte checksum is not written).
const SEALED_EXTRA: usize = KEY_ID_BYTES + NONCE_BYTES + TAG_BYTES;
/// The shortest body: seq, stream length and key length.
const MIN_BODY: usize = 8 + 2 + 4;

/// The key that encrypts the spool at rest.
///
/// The key file holds at least 32 secret bytes (trailing newlines are not
/// part of it), for example `head -c 32 /dev/urandom`; a Kubernetes Secret
/// mounted as a file. Two keys are derived from it with HMAC-SHA256: the
/// XChaCha20-Poly1305 key, and a 4-byte key id written in every frame so
/// that a spool written under another key is recognised as such (and the
/// id, which reveals nothing about the key, can be logged to tell keys
/// apart). Every frame gets a random 192-bit nonce, so no counter has to
/// survive restarts and nonces never repeat in practice.
#[derive(Clone)]
pub(crate) struct SpoolCipher {
    aead: XChaCha20Poly1305,
    id: [u8; KEY_ID_BYTES],
}

impl fmt::Debug for SpoolCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpoolCipher(key id {})", self.key_id())
    }
}

impl SpoolCipher {
    /// The shortest key file accepted, in bytes.
    pub(crate) const MIN_KEY_BYTES: usize = 32;

    /// Reads a key file. The error names the file, never its content.
    pub(crate) fn from_file(path: &Path) -> Result<SpoolCipher, String> {
        let mut key = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            key.pop();
        }
        SpoolCipher::from_bytes(&key).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A cipher from key bytes, refused when shorter than
    /// [`SpoolCipher::MIN_KEY_BYTES`].
    pub(crate) fn from_bytes(key: &[u8]) -> Result<SpoolCipher, String> {
        if key.len() < Self::MIN_KEY_BYTES {
            return Err(format!(
                "key is {} bytes; at least {} are required",
                key.len(),
                Self::MIN_KEY_BYTES
            ));
        }
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
                .expect("HMAC accepts keys of any length");
            mac.update(label);
            mac.finalize().into_bytes().into()
        };
        let enc = derive(b"scrubs audit spool encryption key v1");
        let id = derive(b"scrubs audit spool key id v1");
        let aead = XChaCha20Poly1305::new_from_slice(&enc).expect("the key is 32 bytes");
        Ok(SpoolCipher {
            aead,
            id: [id[0], id[1], id[2], id[3]],
        })
    }

    /// The key id as 8 hex digits (safe to log).
    pub(crate) fn key_id(&self) -> String {
        hex_bytes(&self.id)
    }

    /// Appends the encrypted frame of one plain body.
    fn seal(&self, body: &[u8], out: &mut Vec<u8>) {
        let sealed_len = (SEALED_EXTRA + body.len()) as u32;
        let start = out.len();
        out.extend_from_slice(&(SEALED_FLAG | sealed_len).to_le_bytes());
        out.extend_from_slice(&self.id);
        let nonce: [u8; NONCE_BYTES] = rand::random();
        out.extend_from_slice(&nonce);
        let aad = out[start..start + 4 + KEY_ID_BYTES].to_vec();
        let ciphertext = self
            .aead
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any length the spool writes");
        out.extend_from_slice(&ciphertext);
    }

    /// The plain body of an encrypted frame (`frame` is the whole frame,
    /// length word included), or `None` when the tag does not match.
    fn open(&self, frame: &[u8]) -> Option<Vec<u8>> {
        let header = 4 + KEY_ID_BYTES;
        let nonce: [u8; NONCE_BYTES] = frame[header..header + NONCE_BYTES].try_into().ok()?;
        self.aead
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &frame[header + NONCE_BYTES..],
                    aad: &frame[..header],
                },
            )
            .ok()
    }
}

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

/// The size of an event's frame on disk: exact for a plain frame, an upper
/// bound (by 40 bytes) when frames are encrypted, which is what the spool's
/// size limit needs.
pub(crate) fn frame_len(ev: &SealedEvent) -> usize {
    plain_frame_len(ev) + SEALED_EXTRA - 4
}

/// The size of an event's plain frame, as [`encode_frame`] writes it.
fn plain_frame_len(ev: &SealedEvent) -> usize {
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

/// Lower-case hex of a few bytes (key ids).
fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why [`decode_frames`] stopped before the end of its buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// At the end of the buffer or of the frames asked for, or before an
    /// incomplete frame (a torn tail, or more to read).
    End,
    /// At a frame whose checksum or tag does not match, or whose length or
    /// fields are impossible.
    Damaged,
    /// At an encrypted frame this process cannot open: written under
    /// another key, or no key is configured. The message names the key ids.
    Locked(String),
}

/// Decodes the frames in `buf`, which starts at file offset `base`. Returns
/// the frames, how many bytes they cover, and why it stopped.
pub(crate) fn decode_frames(
    buf: &[u8],
    base: u64,
    max: usize,
    cipher: Option<&SpoolCipher>,
) -> (Vec<Frame>, usize, Stop) {
    let mut frames = Vec::new();
    let mut pos = 0usize;
    while frames.len() < max {
        let rest = &buf[pos..];
        if rest.len() < 4 {
            return (frames, pos, Stop::End);
        }
        let word = u32::from_le_bytes(rest[..4].try_into().unwrap());
        let opened;
        let (body, frame_len) = if word & SEALED_FLAG != 0 {
            let sealed_len = (word & !SEALED_FLAG) as usize;
            if sealed_len < SEALED_EXTRA + MIN_BODY {
                return (frames, pos, Stop::Damaged);
            }
            if rest.len() < 4 + sealed_len {
                return (frames, pos, Stop::End);
            }
            let frame = &rest[..4 + sealed_len];
            let id = &frame[4..4 + KEY_ID_BYTES];
            let Some(cipher) = cipher.filter(|c| c.id == id) else {
                let have = cipher.map_or("none configured".to_string(), |c| {
                    format!("the configured key has id {}", c.key_id())
                });
                let msg = format!(
                    "the audit spool holds events encrypted with key id {} at offset {} ({have}); configure audit.kafka.spool_encryption_key_file with the key they were written with",
                    hex_bytes(id),
                    base + pos as u64
                );
                return (frames, pos, Stop::Locked(msg));
            };
            match cipher.open(frame) {
                Some(b) => opened = b,
                None => return (frames, pos, Stop::Damaged),
            }
            (&opened[..], 4 + sealed_len)
        } else {
            let body_len = word as usize;
            if body_len < MIN_BODY {
                return (frames, pos, Stop::Damaged);
            }
            if rest.len() < 4 + body_len + 4 {
                return (frames, pos, Stop::End);
            }
            let body = &rest[4..4 + body_len];
            let sum = &rest[4 + body_len..4 + body_len + 4];
            if &Sha256::digest(body)[..4] != sum {
                return (frames, pos, Stop::Damaged);
            }
            (body, 4 + body_len + 4)
        };
        let Some((seq, stream, key, payload)) = split_body(body) else {
            return (frames, pos, Stop::Damaged);
        };
        pos += frame_len;
        frames.push(Frame {
            stream,
            seq,
            key,
            payload,
            end: base + pos as u64,
        });
    }
    (frames, pos, Stop::End)
}

/// The fields of a frame body: seq, stream, key, payload.
fn split_body(body: &[u8]) -> Option<(u64, String, Vec<u8>, Vec<u8>)> {
    let seq = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let slen = u16::from_le_bytes(body.get(8..10)?.try_into().ok()?) as usize;
    let stream = std::str::from_utf8(body.get(10..10 + slen)?)
        .ok()?
        .to_string();
    let k = 10 + slen;
    let klen = u32::from_le_bytes(body.get(k..k + 4)?.try_into().ok()?) as usize;
    let key = body.get(k + 4..k + 4 + klen)?.to_vec();
    let payload = body.get(k + 4 + klen..)?.to_vec();
    Some((seq, stream, key, payload))
}

/// Re-frames plain frames (as [`encode_frame`] wrote them) as encrypted
/// frames.
fn seal_frames(plain: &[u8], cipher: &SpoolCipher) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + plain.len() / 8 + 64);
    let mut pos = 0;
    while pos + 4 <= plain.len() {
        let body_len = u32::from_le_bytes(plain[pos..pos + 4].try_into().unwrap()) as usize;
        let end = (pos + 4 + body_len).min(plain.len());
        cipher.seal(&plain[pos + 4..end], &mut out);
        pos = end + 4;
    }
    out
}

/// The append side of the spool, owned by the sink's writer task.
pub(crate) struct SpoolFile {
    dir: PathBuf,
    file: File,
    len: u64,
    cipher: Option<SpoolCipher>,
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
    /// chain heads and the replay cursor. New frames are encrypted with
    /// `cipher` when there is one; frames already there are read whether
    /// plain or encrypted with `cipher`'s key, and one encrypted with another
    /// key (or with no key configured) is an error of kind `PermissionDenied`
    /// that names the key ids.
    pub(crate) fn open(
        dir: &Path,
        cipher: Option<SpoolCipher>,
    ) -> io::Result<(SpoolFile, Recovered)> {
        let path = dir.join(SPOOL_FILE);
        let mut file = open_rw(&path, true)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let (frames, good, stop) = decode_frames(&buf, 0, usize::MAX, cipher.as_ref());
        if let Stop::Locked(msg) = stop {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, msg));
        }
        if good < buf.len() {
            if stop == Stop::Damaged {
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
            cipher,
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

    /// Appends frames (plain, as [`encode_frame`] wrote them; encrypted here
    /// when the spool has a key) and fsyncs.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let sealed;
        let bytes = match &self.cipher {
            Some(c) => {
                sealed = seal_frames(bytes, c);
                &sealed[..]
            }
            None => bytes,
        };
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
    cipher: Option<SpoolCipher>,
}

impl SpoolReader {
    /// Opens the spool for replay; `cipher` as in [`SpoolFile::open`].
    pub(crate) fn open(dir: &Path, cipher: Option<SpoolCipher>) -> io::Result<SpoolReader> {
        Ok(SpoolReader {
            file: File::open(dir.join(SPOOL_FILE))?,
            cipher,
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
            let (frames, _, stop) = decode_frames(&buf, from, max_frames, self.cipher.as_ref());
            if !frames.is_empty() {
                return Ok(frames);
            }
            if let Stop::Locked(msg) = stop {
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, msg));
            }
            // The first frame is larger than what was read: read it whole.
            let word = u32::from_le_bytes(buf[..4].try_into().unwrap_or([0; 4]));
            let first = if word & SEALED_FLAG != 0 {
                4 + u64::from(word & !SEALED_FLAG)
            } else {
                8 + u64::from(word)
            };
            if stop == Stop::Damaged || first <= want || from + first > end {
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

/// Reads the time (Unix milliseconds) before which no event in the spool
/// can have been handed to Kafka; `None` when absent (a spool written
/// before this file existed).
pub(crate) fn read_since(dir: &Path) -> Option<i64> {
    fs::read_to_string(dir.join(SINCE_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Persists the time before which no spooled event can have been handed to
/// Kafka; written when an empty spool takes its first frames.
pub(crate) fn write_since(dir: &Path, unix_ms: i64) -> io::Result<()> {
    write_atomic(dir, SINCE_FILE, format!("{unix_ms}\n").as_bytes())
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
        assert_eq!(buf.len(), evs.iter().map(plain_frame_len).sum::<usize>());
        {
            let (mut sp, rec) = SpoolFile::open(dir.path(), None).unwrap();
            assert_eq!(rec.pending_frames, 0);
            sp.append(&buf).unwrap();
            // A torn write.
            sp.append(&buf[..10]).unwrap();
        }
        let (sp, rec) = SpoolFile::open(dir.path(), None).unwrap();
        assert_eq!(sp.len(), buf.len() as u64);
        assert_eq!(rec.pending_frames, 5);
        assert_eq!(rec.heads["a"].seq, 2);
        assert_eq!(rec.heads["b"].seq, 1);
        assert_eq!(rec.heads["b"].hash, evs[3].hash);
        let r = SpoolReader::open(dir.path(), None).unwrap();
        let frames = r.read(0, sp.len(), 3, 1 << 20).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2].payload, evs[2].payload);
        let rest = r.read(frames[2].end, sp.len(), 100, 1 << 20).unwrap();
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[1].end, sp.len());
        write_cursor(dir.path(), frames[2].end).unwrap();
        drop(sp);
        let (_, rec) = SpoolFile::open(dir.path(), None).unwrap();
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
        let second = plain_frame_len(&sealed(&mut Sealer::new(None, "i", HashMap::new()), "a", 0));
        buf[second + 20] ^= 0xff;
        fs::write(dir.path().join(SPOOL_FILE), &buf).unwrap();
        let (sp, rec) = SpoolFile::open(dir.path(), None).unwrap();
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

    /// An event whose record, stream and key are all recognisable PHI.
    fn phi_event(s: &mut Sealer, n: u64) -> SealedEvent {
        s.seal(&AuditEvent {
            source: "app".into(),
            stream: "/var/log/pods/clinic_maria-gonzalez/app/0.log".into(),
            key: Some("patient-219-09-9999".into()),
            time_unix_nano: n,
            record: serde_json::json!({"line": format!("Maria Gonzalez SSN 219-09-9999 visit {n}")}),
        })
    }

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    #[test]
    fn encrypted_frames_hold_no_plaintext_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cipher = SpoolCipher::from_bytes(&[7u8; 32]).unwrap();
        let mut s = Sealer::new(None, "i", HashMap::new());
        let evs: Vec<_> = (0..4).map(|n| phi_event(&mut s, n)).collect();
        let mut buf = Vec::new();
        for e in &evs {
            encode_frame(e, &mut buf);
        }
        {
            let (mut sp, _) = SpoolFile::open(dir.path(), Some(cipher.clone())).unwrap();
            sp.append(&buf).unwrap();
            let on_disk = sp.len() as usize;
            assert!(on_disk <= evs.iter().map(frame_len).sum::<usize>());
            assert!(on_disk > buf.len(), "frames carry key id, nonce and tag");
        }
        let raw = fs::read(dir.path().join(SPOOL_FILE)).unwrap();
        for needle in [
            "Maria Gonzalez",
            "219-09-9999",
            "maria-gonzalez",
            "visit",
            "\"line\"",
            "prev_hash",
        ] {
            assert!(
                !contains(&raw, needle),
                "{needle} readable in the spool file"
            );
        }
        let (sp, rec) = SpoolFile::open(dir.path(), Some(cipher.clone())).unwrap();
        assert_eq!(rec.pending_frames, 4);
        assert_eq!(rec.heads[&evs[3].stream].hash, evs[3].hash);
        let r = SpoolReader::open(dir.path(), Some(cipher)).unwrap();
        let frames = r.read(0, sp.len(), 1, 1 << 20).unwrap();
        assert_eq!(frames.len(), 1);
        let rest = r.read(frames[0].end, sp.len(), 100, 1 << 20).unwrap();
        let all: Vec<_> = frames.iter().chain(&rest).collect();
        assert_eq!(all.len(), 4);
        for (f, e) in all.iter().zip(&evs) {
            assert_eq!(f.payload, e.payload);
            assert_eq!(f.key, e.key);
            assert_eq!(f.stream, e.stream);
            assert_eq!(f.seq, e.seq);
        }
        assert_eq!(all[3].end, sp.len());
    }

    #[test]
    fn another_key_or_no_key_is_refused_not_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let right = SpoolCipher::from_bytes(&[1u8; 40]).unwrap();
        let wrong = SpoolCipher::from_bytes(&[2u8; 40]).unwrap();
        assert_ne!(right.key_id(), wrong.key_id());
        let mut s = Sealer::new(None, "i", HashMap::new());
        let mut buf = Vec::new();
        encode_frame(&phi_event(&mut s, 0), &mut buf);
        {
            let (mut sp, _) = SpoolFile::open(dir.path(), Some(right.clone())).unwrap();
            sp.append(&buf).unwrap();
        }
        let len = fs::metadata(dir.path().join(SPOOL_FILE)).unwrap().len();
        for (cipher, says) in [
            (Some(wrong.clone()), format!("has id {}", wrong.key_id())),
            (None, "none configured".to_string()),
        ] {
            let err = SpoolFile::open(dir.path(), cipher).err().expect("refused");
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
            let msg = err.to_string();
            assert!(
                msg.contains(&right.key_id()) && msg.contains(&says),
                "{msg}"
            );
        }
        // Nothing was cut off or moved aside; the right key still reads it.
        assert_eq!(
            fs::metadata(dir.path().join(SPOOL_FILE)).unwrap().len(),
            len
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let (_, rec) = SpoolFile::open(dir.path(), Some(right)).unwrap();
        assert_eq!(rec.pending_frames, 1);
    }

    #[test]
    fn a_tampered_encrypted_frame_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let cipher = SpoolCipher::from_bytes(&[3u8; 32]).unwrap();
        let mut s = Sealer::new(None, "i", HashMap::new());
        let mut buf = Vec::new();
        for n in 0..3 {
            encode_frame(&phi_event(&mut s, n), &mut buf);
        }
        {
            let (mut sp, _) = SpoolFile::open(dir.path(), Some(cipher.clone())).unwrap();
            sp.append(&buf).unwrap();
        }
        let path = dir.path().join(SPOOL_FILE);
        let mut raw = fs::read(&path).unwrap();
        let first = 4 + (u32::from_le_bytes(raw[..4].try_into().unwrap()) & !SEALED_FLAG) as usize;
        // One bit of the second frame's ciphertext.
        raw[first + 40] ^= 1;
        fs::write(&path, &raw).unwrap();
        let (sp, rec) = SpoolFile::open(dir.path(), Some(cipher)).unwrap();
        assert_eq!(rec.pending_frames, 1);
        assert_eq!(sp.len(), first as u64);
        let aside = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
            .count();
        assert_eq!(aside, 1);
    }

    #[test]
    fn a_plain_spool_from_before_the_key_is_still_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let cipher = SpoolCipher::from_bytes(&[4u8; 32]).unwrap();
        let mut s = Sealer::new(None, "i", HashMap::new());
        let evs: Vec<_> = (0..4).map(|n| phi_event(&mut s, n)).collect();
        let (mut plain, mut sealed) = (Vec::new(), Vec::new());
        encode_frame(&evs[0], &mut plain);
        encode_frame(&evs[1], &mut plain);
        encode_frame(&evs[2], &mut sealed);
        encode_frame(&evs[3], &mut sealed);
        {
            let (mut sp, _) = SpoolFile::open(dir.path(), None).unwrap();
            sp.append(&plain).unwrap();
        }
        let (mut sp, rec) = SpoolFile::open(dir.path(), Some(cipher.clone())).unwrap();
        assert_eq!(rec.pending_frames, 2);
        sp.append(&sealed).unwrap();
        let r = SpoolReader::open(dir.path(), Some(cipher)).unwrap();
        let frames = r.read(0, sp.len(), 100, 1 << 20).unwrap();
        let payloads: Vec<_> = frames.iter().map(|f| f.payload.clone()).collect();
        let want: Vec<_> = evs.iter().map(|e| e.payload.clone()).collect();
        assert_eq!(payloads, want);
    }

    #[test]
    fn spool_keys_are_checked_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.key");
        fs::write(&short, b"too short\n").unwrap();
        let err = SpoolCipher::from_file(&short).unwrap_err();
        assert!(err.contains("short.key") && err.contains("32"), "{err}");
        assert!(!err.contains("too short"), "{err}");
        let good = dir.path().join("good.key");
        fs::write(&good, "k3y-material-that-is-long-enough-0123456789\n").unwrap();
        let c = SpoolCipher::from_file(&good).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("k3y-material"), "{shown}");
        assert!(shown.contains(&c.key_id()), "{shown}");
        // The trailing newline is not part of the key.
        let same = SpoolCipher::from_bytes(b"k3y-material-that-is-long-enough-0123456789").unwrap();
        assert_eq!(same.key_id(), c.key_id());
    }
}
