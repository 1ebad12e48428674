//! Reading one file: bounded line splitting, multi-line joining,
//! fingerprints, and verified reads that detect truncation.
//!
//! Everything here is synchronous and runs on a blocking thread; the async
//! driver in `mod.rs` moves a [`FileReader`] in and out.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::decode::container::{Decoder, LogFormat, Message};
use crate::lines::{safe_cut, LineBuf};
use crate::pipeline::LineMeta;

/// The identity of a file's content: the SHA-256 of its first `len` bytes.
/// A file shorter than the configured fingerprint length is identified by
/// its (shorter) prefix *and* its inode, since a short prefix is weak
/// evidence; so is a file whose full prefix collides with another live file.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub hash: [u8; 32],
    pub len: u32,
    pub inode: Option<(u64, u64)>,
}

impl Key {
    /// The key of a file whose first bytes are `prefix` (at most
    /// `fp_bytes` of them).
    pub fn of(prefix: &[u8], fp_bytes: usize, dev: u64, ino: u64) -> Key {
        let len = prefix.len().min(fp_bytes);
        Key {
            hash: hash(&prefix[..len]),
            len: len as u32,
            inode: (len < fp_bytes).then_some((dev, ino)),
        }
    }

    /// The same content, bound to an inode (for fingerprint collisions).
    pub fn bound(self, dev: u64, ino: u64) -> Key {
        Key {
            inode: Some((dev, ino)),
            ..self
        }
    }

    pub fn hex(&self) -> String {
        hex(&self.hash)
    }

    /// The checkpoint map key: `<hex>/<len>` or `<hex>/<len>@<dev>:<ino>`.
    pub fn id(&self) -> String {
        match self.inode {
            None => format!("{}/{}", self.hex(), self.len),
            Some((d, i)) => format!("{}/{}@{d}:{i}", self.hex(), self.len),
        }
    }

    pub fn from_hex(hex: &str, len: u32, inode: Option<(u64, u64)>) -> Option<Key> {
        let b = hex.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let mut hash = [0u8; 32];
        for (i, h) in hash.iter_mut().enumerate() {
            let hi = (b[2 * i] as char).to_digit(16)?;
            let lo = (b[2 * i + 1] as char).to_digit(16)?;
            *h = (hi * 16 + lo) as u8;
        }
        Some(Key { hash, len, inode })
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A content hash of the first bytes: short prefixes could be
        // enumerated, so only show a few hex digits.
        write!(f, "Key({}../{}", &self.hex()[..8], self.len)?;
        if let Some((d, i)) = self.inode {
            write!(f, "@{d}:{i}")?;
        }
        write!(f, ")")
    }
}

pub(crate) fn hash(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// A [`hash`] in lowercase hex.
pub(crate) fn hex(hash: &[u8; 32]) -> String {
    let mut s = String::with_capacity(64);
    for b in hash {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// Reads up to `n` bytes at offset 0 (fewer if the file is shorter).
pub(crate) fn read_prefix(file: &File, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Lines collected for one batch.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub lines: Vec<Vec<u8>>,
    pub dropped: Vec<u64>,
    /// The runtime's time and stream per line: empty while no line had
    /// any, else one per line.
    pub meta: Vec<LineMeta>,
    pub bytes: usize,
    /// Lines (records) that were cut.
    pub cut: u64,
}

impl Batch {
    pub fn push(&mut self, line: Vec<u8>, dropped: u64) {
        self.push_with(line, dropped, LineMeta::default());
    }

    /// Adds a record with what the runtime said about it.
    pub fn push_with(&mut self, line: Vec<u8>, dropped: u64, meta: LineMeta) {
        self.bytes += line.len();
        if dropped > 0 {
            self.cut += 1;
        }
        if !meta.is_empty() && self.meta.len() < self.lines.len() {
            self.meta.resize(self.lines.len(), LineMeta::default());
        }
        if !meta.is_empty() || !self.meta.is_empty() {
            self.meta.push(meta);
        }
        self.lines.push(line);
        self.dropped.push(dropped);
    }

    pub fn is_full(&self, lim: &Limits) -> bool {
        self.lines.len() >= lim.max_lines || self.bytes >= lim.max_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Batch limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_lines: usize,
    pub max_bytes: usize,
}

/// Joins lines into records: a line matching the start pattern begins a new
/// record, any other line is appended with `\n`. With a container runtime's
/// format the lines are the decoded messages (the pattern never sees the
/// runtime's prefix), and a message of another stream also begins a new
/// record, so that a stack trace on stderr never takes in stdout lines the
/// runtime wrote between its frames. A record keeps its first message's
/// time and stream.
pub(crate) struct Multiline {
    re: regex::bytes::Regex,
    max_lines: usize,
    max_bytes: usize,
    timeout: Duration,
    rec: Vec<u8>,
    meta: LineMeta,
    lines: usize,
    dropped: u64,
    /// The input offset at which the pending record starts.
    start: u64,
    last: Instant,
    full: bool,
}

impl fmt::Debug for Multiline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multiline")
            .field("pending_lines", &self.lines)
            .finish()
    }
}

impl Multiline {
    pub fn new(
        re: regex::bytes::Regex,
        max_lines: usize,
        max_bytes: usize,
        timeout: Duration,
    ) -> Multiline {
        Multiline {
            re,
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(1),
            timeout,
            rec: Vec::new(),
            meta: LineMeta::default(),
            lines: 0,
            dropped: 0,
            start: 0,
            last: Instant::now(),
            full: false,
        }
    }

    /// The offset where the pending record starts, if one is pending.
    pub fn pending_start(&self) -> Option<u64> {
        (self.lines > 0).then_some(self.start)
    }

    /// Adds a line that starts at input offset `at`; completed records go
    /// to `out`.
    pub fn push(
        &mut self,
        line: &[u8],
        dropped: u64,
        at: u64,
        meta: LineMeta,
        now: Instant,
        out: &mut Batch,
    ) {
        if self.lines > 0 && (self.meta.stream != meta.stream || self.re.is_match(line)) {
            self.flush(out);
        }
        if self.lines == 0 {
            self.start = at;
            self.meta = meta;
            self.rec.clear();
            self.full = false;
            self.dropped = dropped;
            self.append(line);
        } else {
            self.dropped += dropped;
            if self.full {
                self.dropped += line.len() as u64 + 1;
            } else {
                self.append(b"\n");
                self.append(line);
            }
        }
        self.lines += 1;
        self.last = now;
        if self.lines >= self.max_lines {
            self.flush(out);
        }
    }

    fn append(&mut self, b: &[u8]) {
        let room = self.max_bytes - self.rec.len();
        if b.len() <= room {
            self.rec.extend_from_slice(b);
            return;
        }
        self.rec.extend_from_slice(&b[..room]);
        let keep = safe_cut(&self.rec);
        self.dropped += (b.len() - room + self.rec.len() - keep) as u64;
        self.rec.truncate(keep);
        self.full = true;
    }

    /// Emits the pending record if it has waited for `timeout`.
    pub fn flush_if_due(&mut self, now: Instant, out: &mut Batch) {
        if self.lines > 0 && now.duration_since(self.last) >= self.timeout {
            self.flush(out);
        }
    }

    /// Emits the pending record, if any.
    pub fn flush(&mut self, out: &mut Batch) {
        if self.lines == 0 {
            return;
        }
        let rec = std::mem::take(&mut self.rec);
        out.push_with(rec, self.dropped, self.meta);
        self.lines = 0;
        self.dropped = 0;
        self.full = false;
    }

    pub fn clear(&mut self) {
        self.rec = Vec::new();
        self.lines = 0;
        self.dropped = 0;
        self.full = false;
    }
}

/// What one [`FileReader::fill`] produced.
#[derive(Debug, Default)]
pub(crate) struct Fill {
    pub batch: Batch,
    /// The offset up to which this batch (and everything before it) covers
    /// the file: the end of the last complete record.
    pub end_offset: u64,
    /// No more data for now.
    pub eof: bool,
    /// The file was truncated or rewritten (its first bytes changed or it
    /// shrank below the read position). Data read before that is in `batch`.
    pub truncated: bool,
    /// The fingerprint was extended now that the file is long enough.
    pub new_key: Option<Key>,
    /// The file's size as last seen.
    pub size: u64,
}

/// The most bytes read by one `fill` when no line completes (a huge line).
const MAX_READ_PER_FILL: u64 = 32 << 20;

/// Reads one file from a position, in verified chunks.
pub(crate) struct FileReader {
    file: File,
    key: Key,
    fp_bytes: usize,
    /// The next byte to read.
    read_pos: u64,
    /// The offset just after the last complete line taken from `lines`.
    line_end: u64,
    lines: LineBuf,
    /// The container runtime's format, when the file may be in one (see
    /// [`crate::decode::container`]); `None` for `format: raw`.
    dec: Option<Decoder>,
    /// Bytes cut from physical lines whose parts wait in `dec`, added to
    /// the message they end up in.
    dec_dropped: u64,
    ml: Option<Multiline>,
    size: u64,
}

impl fmt::Debug for FileReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileReader")
            .field("key", &self.key)
            .field("read_pos", &self.read_pos)
            .field("line_end", &self.line_end)
            .finish()
    }
}

impl FileReader {
    /// A reader of `file`, whose content is identified by `key`, starting at
    /// `offset` (a record boundary), decoding `format`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        file: File,
        key: Key,
        fp_bytes: usize,
        offset: u64,
        max_line: usize,
        chunk: usize,
        format: LogFormat,
        ml: Option<Multiline>,
    ) -> FileReader {
        FileReader {
            file,
            key,
            fp_bytes,
            read_pos: offset,
            line_end: offset,
            lines: LineBuf::new(max_line, chunk),
            dec: (format != LogFormat::Raw).then(|| Decoder::new(format, max_line)),
            dec_dropped: 0,
            ml,
            size: offset,
        }
    }

    /// Lines that did not read under the file's runtime format since the
    /// last call, with the reason to count them under.
    pub fn take_malformed(&mut self) -> Option<(u64, &'static str)> {
        let d = self.dec.as_mut()?;
        let n = d.take_malformed();
        (n > 0).then(|| (n, d.malformed_reason()))
    }

    /// The offset of the next byte to read.
    pub fn read_pos(&self) -> u64 {
        self.read_pos
    }

    /// Starts reading at the next line start (for `start_at: end` when the
    /// file does not end with a newline).
    pub fn discard_first_line(&mut self) {
        self.lines.discard_first_line();
    }

    /// Continues with another file holding the same content (a copy made by
    /// copytruncate), at the same position.
    pub fn switch_file(&mut self, file: File) {
        self.file = file;
    }

    /// Goes back to `offset` (a record boundary), dropping buffered state.
    pub fn rewind(&mut self, offset: u64) {
        self.read_pos = offset;
        self.line_end = offset;
        self.lines.clear();
        // The parts waiting for their continuation start at or after
        // `offset` (the checkpoint never passes them): they are read again.
        if let Some(d) = &mut self.dec {
            d.reset();
        }
        self.dec_dropped = 0;
        if let Some(ml) = &mut self.ml {
            ml.clear();
        }
    }

    pub fn shrink(&mut self) {
        self.lines.shrink();
    }

    /// Replaces the key (a checkpoint stored under a shorter fingerprint).
    pub fn set_key(&mut self, key: Key) {
        self.key = key;
    }

    /// Whether the file still starts with the bytes its key names.
    pub fn verify(&self) -> io::Result<bool> {
        verify(&self.file, &self.key)
    }

    /// The file's current size.
    pub fn stat_size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// The file's link count (0 once deleted).
    pub fn nlink(&self) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        Ok(self.file.metadata()?.nlink())
    }

    /// True when a multi-line record waits for its timeout.
    pub fn multiline_pending(&self) -> bool {
        self.ml
            .as_ref()
            .is_some_and(|m| m.pending_start().is_some())
    }

    /// Whether the byte before `size` is a newline (or the file is empty).
    pub fn ends_with_newline(&self, size: u64) -> bool {
        if size == 0 {
            return true;
        }
        let mut b = [0u8; 1];
        matches!(self.file.read_at(&mut b, size - 1), Ok(1) if b[0] == b'\n')
    }

    /// Whether `other` starts with the same `n` bytes as this file (a copy).
    pub fn same_prefix(&self, other: &File, n: usize) -> bool {
        match (read_prefix(&self.file, n), read_prefix(other, n)) {
            (Ok(a), Ok(b)) => a.len() == n && a == b,
            _ => false,
        }
    }

    /// Emits the messages whose parts wait for their continuation and the
    /// pending multi-line record, and forgets any unterminated line (the
    /// file's content is gone).
    pub fn flush_pending(&mut self, out: &mut Batch) {
        self.flush_decoder(Instant::now(), out);
        if let Some(ml) = &mut self.ml {
            ml.flush(out);
        }
        self.lines.clear();
        self.line_end = self.read_pos;
    }

    /// Hands out, as they are, the messages whose final part never came
    /// (the file ends: rotated away and idle, or truncated).
    fn flush_decoder(&mut self, now: Instant, out: &mut Batch) {
        let Some(d) = &mut self.dec else { return };
        while let Some(m) = d.flush() {
            let dropped = std::mem::take(&mut self.dec_dropped);
            emit(&mut self.ml, m, dropped, now, out);
        }
    }

    /// Where a checkpoint of what was emitted so far may go: the end of the
    /// last complete physical line, held back to the first physical line of
    /// a message still being assembled (its parts in the decoder, or its
    /// lines in the multi-line record). It is always the start of a
    /// physical line, so a restart (or a rewind after a refused batch) in
    /// the middle of a partial message reads all of its parts again rather
    /// than resuming after the ones already read. The price: a line of the
    /// other stream that the runtime wrote between those parts, and that
    /// was already delivered, is delivered again.
    fn end_offset(&self) -> u64 {
        let ml = self.ml.as_ref().and_then(|m| m.pending_start());
        let dec = self.dec.as_ref().and_then(|d| d.pending_start());
        [ml, dec]
            .into_iter()
            .flatten()
            .fold(self.line_end, u64::min)
    }

    fn take_line(&mut self, now: Instant, out: &mut Batch) -> bool {
        let at = self.line_end;
        let Some(line) = self.lines.next_line() else {
            return false;
        };
        self.line_end += line.consumed;
        push_line(
            &mut self.dec,
            &mut self.dec_dropped,
            &mut self.ml,
            line.bytes,
            line.dropped,
            at,
            now,
            out,
        );
        true
    }

    /// Reads up to one batch. `finish` also emits the unterminated last
    /// line and any pending record (the file will not grow any more).
    pub fn fill(&mut self, lim: &Limits, now: Instant, finish: bool) -> io::Result<Fill> {
        let mut f = Fill::default();
        let meta = self.file.metadata()?;
        self.size = meta.len();
        if self.size < self.read_pos {
            f.truncated = true;
        }
        let mut read = 0u64;
        'outer: while !f.truncated {
            while !f.batch.is_full(lim) {
                if !self.take_line(now, &mut f.batch) {
                    break;
                }
            }
            if f.batch.is_full(lim) || read >= MAX_READ_PER_FILL {
                break;
            }
            let pos = self.read_pos;
            let space = self.lines.space();
            let n = loop {
                match self.file.read_at(space, pos) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                // Same size is no proof of same content: a file truncated
                // and rewritten to exactly the read position is caught here.
                if verify(&self.file, &self.key)? {
                    f.eof = true;
                } else {
                    f.truncated = true;
                }
                break 'outer;
            }
            // Check after the read: if the first bytes are still those of the
            // key, the file was not truncated before this point, so what was
            // read is the content the key names.
            if !verify(&self.file, &self.key)? {
                f.truncated = true;
                break;
            }
            self.lines.commit(n);
            self.read_pos += n as u64;
            read += n as u64;
            self.size = self.size.max(self.read_pos);
            if (self.key.len as usize) < self.fp_bytes && self.read_pos >= self.fp_bytes as u64 {
                let prefix = read_prefix(&self.file, self.fp_bytes)?;
                if prefix.len() < self.fp_bytes
                    || hash(&prefix[..self.key.len as usize]) != self.key.hash
                {
                    f.truncated = true;
                    break;
                }
                let (dev, ino) = self.key.inode.unwrap_or((0, 0));
                let k = Key::of(&prefix, self.fp_bytes, dev, ino);
                self.key = k;
                f.new_key = Some(k);
            }
        }
        if finish || f.truncated {
            while !f.batch.is_full(lim) && self.take_line(now, &mut f.batch) {}
        }
        if finish && !f.batch.is_full(lim) {
            let at = self.line_end;
            if let Some(line) = self.lines.take_partial() {
                self.line_end += line.consumed;
                push_line(
                    &mut self.dec,
                    &mut self.dec_dropped,
                    &mut self.ml,
                    line.bytes,
                    line.dropped,
                    at,
                    now,
                    &mut f.batch,
                );
            }
            if !f.batch.is_full(lim) {
                self.flush_decoder(now, &mut f.batch);
            }
        }
        if let Some(ml) = &mut self.ml {
            if finish {
                if !f.batch.is_full(lim) {
                    ml.flush(&mut f.batch);
                }
            } else if f.eof {
                ml.flush_if_due(now, &mut f.batch);
            }
        }
        f.end_offset = self.end_offset();
        f.size = self.size;
        Ok(f)
    }
}

/// One physical line, starting at input offset `at`, through the decoder
/// (when the file may be in a runtime's format) and the multi-line joiner.
#[allow(clippy::too_many_arguments)]
fn push_line(
    dec: &mut Option<Decoder>,
    dec_dropped: &mut u64,
    ml: &mut Option<Multiline>,
    bytes: &[u8],
    dropped: u64,
    at: u64,
    now: Instant,
    out: &mut Batch,
) {
    let Some(d) = dec else {
        match ml {
            Some(ml) => ml.push(bytes, dropped, at, LineMeta::default(), now, out),
            None => out.push(bytes.to_vec(), dropped),
        }
        return;
    };
    match d.push(bytes, at) {
        Some(m) => {
            let dropped = dropped + std::mem::take(dec_dropped);
            emit(ml, m, dropped, now, out);
        }
        None => *dec_dropped += dropped,
    }
}

/// A decoded message to the multi-line joiner or the batch.
fn emit(ml: &mut Option<Multiline>, m: Message<'_>, dropped: u64, now: Instant, out: &mut Batch) {
    let meta = LineMeta {
        time_unix_nano: m.time_unix_nano.unwrap_or(0),
        stream: m.stream,
    };
    let dropped = dropped + m.cut;
    match ml {
        Some(ml) => ml.push(m.text, dropped, m.start, meta, now, out),
        None => out.push_with(m.text.to_vec(), dropped, meta),
    }
}

/// Whether `file` still starts with the bytes `key` was taken from.
pub(crate) fn verify(file: &File, key: &Key) -> io::Result<bool> {
    let p = read_prefix(file, key.len as usize)?;
    Ok(p.len() == key.len as usize && hash(&p) == key.hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_joins_and_bounds() {
        let re = regex::bytes::Regex::new(r"^\d").unwrap();
        let mut ml = Multiline::new(re, 3, 1000, Duration::from_secs(1));
        let mut b = Batch::default();
        let now = Instant::now();
        for (i, l) in ["1 a", "  x", "2 b", " y", " z", " w", "3 c"]
            .iter()
            .enumerate()
        {
            ml.push(l.as_bytes(), 0, i as u64, LineMeta::default(), now, &mut b);
        }
        assert_eq!(
            b.lines,
            vec![
                b"1 a\n  x".to_vec(),
                b"2 b\n y\n z".to_vec(),
                b" w".to_vec()
            ]
        );
        assert_eq!(ml.pending_start(), Some(6));
        ml.flush_if_due(now + Duration::from_secs(2), &mut b);
        assert_eq!(b.lines.last().unwrap(), b"3 c");
    }

    fn reader_in(path: &std::path::Path, format: LogFormat, ml: Option<Multiline>) -> FileReader {
        let file = File::open(path).unwrap();
        let key = Key::of(&read_prefix(&file, 16).unwrap(), 16, 0, 0);
        FileReader::new(file, key, 16, 0, 1 << 20, 4096, format, ml)
    }

    fn reader_of(content: &[u8], format: LogFormat, ml: Option<Multiline>) -> FileReader {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, content).unwrap();
        // The open file stays readable once the directory is removed.
        reader_in(&path, format, ml)
    }

    const LIM: Limits = Limits {
        max_lines: 100,
        max_bytes: 1 << 20,
    };

    #[test]
    fn cri_partials_hold_the_checkpoint_at_their_first_part() {
        use std::io::Write;
        let l1 = "2026-12-06T07:00:00.000000001Z stdout P patient ssn 219-0\n";
        let l2 = "2026-12-06T07:00:00.000000002Z stderr F boom\n";
        let l3 = "2026-12-06T07:00:00.000000003Z stdout F 9-9999 seen\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, format!("{l1}{l2}")).unwrap();
        let mut r = reader_in(&path, LogFormat::Auto, None);
        let f = r.fill(&LIM, Instant::now(), false).unwrap();
        assert_eq!(f.batch.lines, vec![b"boom".to_vec()]);
        assert_eq!(
            f.batch.meta,
            vec![LineMeta {
                time_unix_nano: 1_796_540_400_000_000_002,
                stream: Some(crate::decode::container::Stream::Stderr),
            }]
        );
        // The stdout message is not complete: the checkpoint stays at its
        // first part.
        assert_eq!(f.end_offset, 0);
        // A refused batch (or a restart) reads from there again, and the
        // parts are joined once the final one is written.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(l3.as_bytes())
            .unwrap();
        r.rewind(0);
        let f = r.fill(&LIM, Instant::now(), false).unwrap();
        assert_eq!(
            f.batch.lines,
            vec![b"boom".to_vec(), b"patient ssn 219-09-9999 seen".to_vec()]
        );
        assert_eq!(f.batch.meta[1].time_unix_nano, 1_796_540_400_000_000_001);
        assert_eq!(f.end_offset, (l1.len() + l2.len() + l3.len()) as u64);
    }

    #[test]
    fn multiline_sees_the_message_and_keeps_streams_apart() {
        let re = regex::bytes::Regex::new(r"^\d{4}-").unwrap();
        let ml = Multiline::new(re, 100, 1 << 20, Duration::from_secs(60));
        let content = concat!(
            "2026-12-06T07:00:00Z stderr F 2026-12-06 ERROR failed\n",
            "2026-12-06T07:00:00Z stderr F \tat a.b(C.java:1)\n",
            "2026-12-06T07:00:01Z stdout F GET /x 200\n",
            "2026-12-06T07:00:01Z stderr F \tat d.e(F.java:2)\n",
            "2026-12-06T07:00:02Z stdout F 2026-12-06 INFO next\n",
        );
        let mut r = reader_of(content.as_bytes(), LogFormat::Cri, Some(ml));
        let f = r.fill(&LIM, Instant::now(), true).unwrap();
        let got: Vec<String> = f
            .batch
            .lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        assert_eq!(
            got,
            vec![
                "2026-12-06 ERROR failed\n\tat a.b(C.java:1)",
                "GET /x 200",
                "\tat d.e(F.java:2)",
                "2026-12-06 INFO next",
            ]
        );
    }

    #[test]
    fn raw_format_passes_a_cri_looking_line_unchanged() {
        let line = "2026-12-06T07:00:00Z stdout F hello\n";
        let mut r = reader_of(line.as_bytes(), LogFormat::Raw, None);
        let f = r.fill(&LIM, Instant::now(), false).unwrap();
        assert_eq!(f.batch.lines, vec![line.trim_end().as_bytes().to_vec()]);
        assert!(f.batch.meta.is_empty());
    }

    #[test]
    fn malformed_lines_are_passed_on_and_reported() {
        let content = "2026-12-06T07:00:00Z stdout F ok\nnot a cri line\n";
        let mut r = reader_of(content.as_bytes(), LogFormat::Auto, None);
        let f = r.fill(&LIM, Instant::now(), false).unwrap();
        assert_eq!(f.batch.lines[1], b"not a cri line");
        assert_eq!(f.batch.meta[1], LineMeta::default());
        assert_eq!(r.take_malformed(), Some((1, "not_cri")));
        assert_eq!(r.take_malformed(), None);
    }
}
