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

use memchr::memchr;
use sha2::{Digest, Sha256};

use crate::lines::safe_cut;

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
        let mut s = String::with_capacity(64);
        for b in self.hash {
            s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        s
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

/// One line out of a [`LineBuf`].
#[derive(Debug)]
pub(crate) struct Line<'a> {
    /// The kept bytes, without the newline.
    pub bytes: &'a [u8],
    /// Bytes cut from the line (0 for most).
    pub dropped: u64,
    /// Bytes of input the line took, newline included.
    pub consumed: u64,
}

#[derive(Debug, Default)]
struct Long {
    kept: Vec<u8>,
    dropped: u64,
    consumed: u64,
    /// Skip this line entirely (the tail of a line whose start was not read).
    discard: bool,
}

/// A bounded line splitter over an owned buffer: the caller reads into
/// [`LineBuf::space`] and takes complete lines from [`LineBuf::next_line`].
/// A line longer than `max` keeps its first `max` bytes (cut back with
/// [`safe_cut`]) and the rest is counted and skipped as it arrives, so
/// memory stays below `max + chunk` whatever the input.
pub(crate) struct LineBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// No newline in `buf[start..scan]`.
    scan: usize,
    max: usize,
    chunk: usize,
    long: Option<Long>,
    out: Vec<u8>,
}

impl fmt::Debug for LineBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineBuf")
            .field("buffered", &(self.end - self.start))
            .field("long", &self.long.is_some())
            .finish()
    }
}

impl LineBuf {
    pub fn new(max: usize, chunk: usize) -> LineBuf {
        LineBuf {
            buf: Vec::new(),
            start: 0,
            end: 0,
            scan: 0,
            max: max.max(1),
            chunk: chunk.max(1),
            long: None,
            out: Vec::new(),
        }
    }

    /// Room to read into, at least `chunk` bytes: compacts the buffer and
    /// grows it when needed.
    pub fn space(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.scan = 0;
        }
        if self.buf.len() - self.end < self.chunk {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.scan -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < self.chunk {
                self.buf.resize(self.end + self.chunk, 0);
            }
        }
        let hi = (self.end + self.chunk).min(self.buf.len());
        &mut self.buf[self.end..hi]
    }

    /// Marks `n` bytes of [`LineBuf::space`] as filled.
    pub fn commit(&mut self, n: usize) {
        self.end += n;
        debug_assert!(self.end <= self.buf.len());
    }

    /// Skips input up to and including the next newline (used when starting
    /// in the middle of a line).
    pub fn discard_first_line(&mut self) {
        self.long = Some(Long {
            discard: true,
            ..Long::default()
        });
    }

    /// Forgets everything buffered.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.scan = 0;
        self.long = None;
    }

    /// Releases memory while idle, keeping any buffered partial line.
    pub fn shrink(&mut self) {
        let len = self.end - self.start;
        if self.buf.len() > len.max(4096) * 2 {
            let mut b = self.buf[self.start..self.end].to_vec();
            b.shrink_to_fit();
            self.buf = b;
            self.scan -= self.start;
            self.start = 0;
            self.end = len;
        }
        if self.out.capacity() > 4096 {
            self.out = Vec::new();
        }
    }

    /// The next complete line, if one is buffered.
    pub fn next_line(&mut self) -> Option<Line<'_>> {
        loop {
            match memchr(b'\n', &self.buf[self.scan..self.end]) {
                Some(rel) => {
                    let nl = self.scan + rel;
                    let s = self.start;
                    let len = nl - s;
                    self.start = nl + 1;
                    self.scan = nl + 1;
                    if let Some(mut long) = self.long.take() {
                        long.consumed += len as u64 + 1;
                        if long.discard {
                            continue;
                        }
                        let room = self.max - long.kept.len();
                        let take = room.min(len);
                        long.kept.extend_from_slice(&self.buf[s..s + take]);
                        long.dropped += (len - take) as u64;
                        let keep = safe_cut(&long.kept);
                        long.dropped += (long.kept.len() - keep) as u64;
                        long.kept.truncate(keep);
                        self.out = long.kept;
                        return Some(Line {
                            bytes: &self.out,
                            dropped: long.dropped,
                            consumed: long.consumed,
                        });
                    }
                    if len > self.max {
                        let keep = safe_cut(&self.buf[s..s + self.max]);
                        return Some(Line {
                            bytes: &self.buf[s..s + keep],
                            dropped: (len - keep) as u64,
                            consumed: len as u64 + 1,
                        });
                    }
                    return Some(Line {
                        bytes: &self.buf[s..nl],
                        dropped: 0,
                        consumed: len as u64 + 1,
                    });
                }
                None => {
                    self.scan = self.end;
                    let len = self.end - self.start;
                    if let Some(long) = &mut self.long {
                        if !long.discard {
                            let room = self.max - long.kept.len();
                            let take = room.min(len);
                            long.kept
                                .extend_from_slice(&self.buf[self.start..self.start + take]);
                            long.dropped += (len - take) as u64;
                        }
                        long.consumed += len as u64;
                        self.start = self.end;
                    } else if len > self.max {
                        let mut kept = Vec::with_capacity(self.max);
                        kept.extend_from_slice(&self.buf[self.start..self.start + self.max]);
                        self.long = Some(Long {
                            kept,
                            dropped: (len - self.max) as u64,
                            consumed: len as u64,
                            discard: false,
                        });
                        self.start = self.end;
                    }
                    return None;
                }
            }
        }
    }

    /// The unterminated rest as a final line (end of input), if any.
    pub fn take_partial(&mut self) -> Option<Line<'_>> {
        // Absorb what is buffered into the long line, if there is one.
        let _ = self.next_line_absorb();
        let s = self.start;
        let len = self.end - s;
        self.start = self.end;
        self.scan = self.end;
        if let Some(long) = self.long.take() {
            if long.discard {
                return None;
            }
            let mut long = long;
            let keep = safe_cut(&long.kept);
            long.dropped += (long.kept.len() - keep) as u64;
            long.kept.truncate(keep);
            self.out = long.kept;
            return Some(Line {
                bytes: &self.out,
                dropped: long.dropped,
                consumed: long.consumed,
            });
        }
        if len == 0 {
            return None;
        }
        if len > self.max {
            let keep = safe_cut(&self.buf[s..s + self.max]);
            return Some(Line {
                bytes: &self.buf[s..s + keep],
                dropped: (len - keep) as u64,
                consumed: len as u64,
            });
        }
        Some(Line {
            bytes: &self.buf[s..self.end],
            dropped: 0,
            consumed: len as u64,
        })
    }

    /// Moves buffered bytes into the long line, if one is being built.
    fn next_line_absorb(&mut self) -> Option<()> {
        let long = self.long.as_mut()?;
        let len = self.end - self.start;
        if !long.discard {
            let room = self.max - long.kept.len();
            let take = room.min(len);
            long.kept
                .extend_from_slice(&self.buf[self.start..self.start + take]);
            long.dropped += (len - take) as u64;
        }
        long.consumed += len as u64;
        self.start = self.end;
        self.scan = self.end;
        Some(())
    }
}

/// Lines collected for one batch.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub lines: Vec<Vec<u8>>,
    pub dropped: Vec<u64>,
    pub bytes: usize,
    /// Lines (records) that were cut.
    pub cut: u64,
}

impl Batch {
    pub fn push(&mut self, line: Vec<u8>, dropped: u64) {
        self.bytes += line.len();
        if dropped > 0 {
            self.cut += 1;
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
/// record, any other line is appended with `\n`.
pub(crate) struct Multiline {
    re: regex::bytes::Regex,
    max_lines: usize,
    max_bytes: usize,
    timeout: Duration,
    rec: Vec<u8>,
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
    pub fn push(&mut self, line: &[u8], dropped: u64, at: u64, now: Instant, out: &mut Batch) {
        if self.lines > 0 && self.re.is_match(line) {
            self.flush(out);
        }
        if self.lines == 0 {
            self.start = at;
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
        out.push(rec, self.dropped);
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
    /// `offset` (a record boundary).
    pub fn new(
        file: File,
        key: Key,
        fp_bytes: usize,
        offset: u64,
        max_line: usize,
        chunk: usize,
        ml: Option<Multiline>,
    ) -> FileReader {
        FileReader {
            file,
            key,
            fp_bytes,
            read_pos: offset,
            line_end: offset,
            lines: LineBuf::new(max_line, chunk),
            ml,
            size: offset,
        }
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

    /// Emits the pending multi-line record and forgets any unterminated
    /// line (the file's content is gone).
    pub fn flush_pending(&mut self, out: &mut Batch) {
        if let Some(ml) = &mut self.ml {
            ml.flush(out);
        }
        self.lines.clear();
        self.line_end = self.read_pos;
    }

    fn end_offset(&self) -> u64 {
        self.ml
            .as_ref()
            .and_then(|m| m.pending_start())
            .unwrap_or(self.line_end)
    }

    fn take_line(&mut self, now: Instant, out: &mut Batch) -> bool {
        let at = self.line_end;
        let Some(line) = self.lines.next_line() else {
            return false;
        };
        self.line_end += line.consumed;
        match &mut self.ml {
            Some(ml) => ml.push(line.bytes, line.dropped, at, now, out),
            None => out.push(line.bytes.to_vec(), line.dropped),
        }
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
                match &mut self.ml {
                    Some(ml) => ml.push(line.bytes, line.dropped, at, now, &mut f.batch),
                    None => f.batch.push(line.bytes.to_vec(), line.dropped),
                }
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

/// Whether `file` still starts with the bytes `key` was taken from.
pub(crate) fn verify(file: &File, key: &Key) -> io::Result<bool> {
    let p = read_prefix(file, key.len as usize)?;
    Ok(p.len() == key.len as usize && hash(&p) == key.hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8], max: usize, chunk: usize) -> Vec<(Vec<u8>, u64, u64)> {
        let mut lb = LineBuf::new(max, chunk);
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let space = lb.space();
            let n = space.len().min(input.len() - pos);
            space[..n].copy_from_slice(&input[pos..pos + n]);
            lb.commit(n);
            pos += n;
            while let Some(l) = lb.next_line() {
                out.push((l.bytes.to_vec(), l.dropped, l.consumed));
            }
        }
        if let Some(l) = lb.take_partial() {
            out.push((l.bytes.to_vec(), l.dropped, l.consumed));
        }
        out
    }

    #[test]
    fn splits_like_line_reader() {
        for chunk in [1, 3, 7, 64] {
            assert_eq!(
                split(b"ab\n\ncd", 100, chunk),
                vec![
                    (b"ab".to_vec(), 0, 3),
                    (b"".to_vec(), 0, 1),
                    (b"cd".to_vec(), 0, 2)
                ]
            );
            assert_eq!(
                split(b"ssn 219-09-9999 tail\nx\n", 12, chunk),
                vec![(b"ssn ".to_vec(), 16, 21), (b"x".to_vec(), 0, 2)],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn long_line_is_bounded() {
        let mut input = vec![b'a'; 100_000];
        input.extend_from_slice(b" b\nnext\n");
        let mut lb = LineBuf::new(1000, 4096);
        let mut got = Vec::new();
        for c in input.chunks(4096) {
            let s = lb.space();
            s[..c.len()].copy_from_slice(c);
            lb.commit(c.len());
            while let Some(l) = lb.next_line() {
                got.push((l.bytes.len(), l.dropped, l.consumed));
            }
            assert!(lb.buf.len() <= 1000 + 4096 * 2);
        }
        // No delimiter in the last 4 KiB of the kept part: dropped back to it.
        assert_eq!(got, vec![(0, 100_002, 100_003), (4, 0, 5)]);
    }

    #[test]
    fn discard_first_line() {
        let mut lb = LineBuf::new(100, 8);
        lb.discard_first_line();
        let s = lb.space();
        s[..8].copy_from_slice(b"tail\nok\n");
        lb.commit(8);
        let l = lb.next_line().unwrap();
        assert_eq!((l.bytes, l.consumed), (&b"ok"[..], 3));
    }

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
            ml.push(l.as_bytes(), 0, i as u64, now, &mut b);
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
}
