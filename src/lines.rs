//! Line framing: bytes in, bounded lines out, with one set of rules for
//! every line source (stdin, the file tail, `scrubs redact`).
//!
//! * A line ends at `\n`. A `\r` before it is part of the line's bytes (a
//!   CRLF input keeps its `\r`, so `scrubs redact` writes CRLF back as it
//!   came, and a delimiter is a delimiter for [`safe_cut`]); it is counted
//!   in the line's `consumed` bytes like any other byte.
//! * A line longer than the limit is cut, never buffered whole: the framer
//!   keeps the first `max` bytes, moves the cut back to the last delimiter
//!   ([`safe_cut`]: a cut can split an identifier, `219-09-99|99`, and no
//!   partial token may survive it), and counts everything else as dropped
//!   as it arrives, so memory stays below `max + chunk` whatever the input.
//! * A final line without a newline is held until more bytes arrive; only
//!   the caller knows whether more will come (stdin at its end, a file that
//!   was rotated away, versus a file still being written), so it asks for
//!   that line with [`LineBuf::take_partial`].
//!
//! [`LineBuf`] is the framer, fed by its caller; [`LineReader`] drives it
//! from a [`BufRead`].

use std::fmt;
use std::io::{self, BufRead};

use memchr::memchr;

/// Reads `\n`-terminated lines of at most `max` bytes from a [`BufRead`],
/// framed by a [`LineBuf`].
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    lines: LineBuf,
}

/// How much [`LineReader`] hands its framer at a time.
const READER_CHUNK: usize = 64 << 10;

impl<R: BufRead> LineReader<R> {
    /// A reader that keeps at most `max` bytes of any line.
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader {
            inner,
            lines: LineBuf::new(max, READER_CHUNK),
        }
    }

    /// The next line, or `None` at end of input. A final line without a
    /// newline is still a line.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        loop {
            if let Some(found) = self.lines.advance() {
                return Ok(Some(self.lines.view(found)));
            }
            let avail = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                return Ok(self.lines.advance_partial().map(|f| self.lines.view(f)));
            }
            // The framer is handed input up to the end of one line, and the
            // rest stays in the reader's buffer: a caller can then tell from
            // that buffer whether another line is already waiting
            // (`scrubs redact` flushes its output when none is).
            let upto = memchr(b'\n', avail).map_or(avail.len(), |i| i + 1);
            let n = self.lines.fill_from(&avail[..upto]);
            self.inner.consume(n);
        }
    }

    /// The underlying reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Where a line found by [`LineBuf`] is: in its input buffer, or in the
/// buffer a long line was kept in.
#[derive(Clone, Copy, Debug)]
enum Span {
    Buf(usize, usize),
    Out,
}

/// A line found, before it is borrowed.
#[derive(Clone, Copy, Debug)]
struct Found {
    span: Span,
    dropped: u64,
    consumed: u64,
}

/// One line out of a [`LineBuf`].
#[derive(Debug)]
pub struct Line<'a> {
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
pub struct LineBuf {
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
    /// A framer that keeps at most `max` bytes of a line and reads input
    /// `chunk` bytes at a time.
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

    /// Copies as much of `input` as fits into [`LineBuf::space`] and
    /// commits it; returns how many bytes were taken. For a caller whose
    /// input is already in memory.
    pub fn fill_from(&mut self, input: &[u8]) -> usize {
        let space = self.space();
        let n = space.len().min(input.len());
        space[..n].copy_from_slice(&input[..n]);
        self.commit(n);
        n
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

    /// The next complete line, if one is buffered. A line without its
    /// newline yet is held (its bytes stay buffered, or, past `max`, are
    /// kept and counted as they arrive) until the newline or
    /// [`LineBuf::take_partial`].
    pub fn next_line(&mut self) -> Option<Line<'_>> {
        let found = self.advance()?;
        Some(self.view(found))
    }

    /// [`LineBuf::next_line`] without borrowing the line, so that a caller
    /// can read more input in a loop and return the line once found.
    fn advance(&mut self) -> Option<Found> {
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
                        return Some(Found {
                            span: Span::Out,
                            dropped: long.dropped,
                            consumed: long.consumed,
                        });
                    }
                    if len > self.max {
                        let keep = safe_cut(&self.buf[s..s + self.max]);
                        return Some(Found {
                            span: Span::Buf(s, s + keep),
                            dropped: (len - keep) as u64,
                            consumed: len as u64 + 1,
                        });
                    }
                    return Some(Found {
                        span: Span::Buf(s, nl),
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

    /// The unterminated rest as a final line (end of input), if any. Call
    /// it only when no more input will come (stdin's end, a file rotated
    /// away or finished): until then a partial line is held.
    pub fn take_partial(&mut self) -> Option<Line<'_>> {
        let found = self.advance_partial()?;
        Some(self.view(found))
    }

    fn advance_partial(&mut self) -> Option<Found> {
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
            return Some(Found {
                span: Span::Out,
                dropped: long.dropped,
                consumed: long.consumed,
            });
        }
        if len == 0 {
            return None;
        }
        if len > self.max {
            let keep = safe_cut(&self.buf[s..s + self.max]);
            return Some(Found {
                span: Span::Buf(s, s + keep),
                dropped: (len - keep) as u64,
                consumed: len as u64,
            });
        }
        Some(Found {
            span: Span::Buf(s, self.end),
            dropped: 0,
            consumed: len as u64,
        })
    }

    fn view(&self, found: Found) -> Line<'_> {
        let bytes = match found.span {
            Span::Buf(s, e) => &self.buf[s..e],
            Span::Out => &self.out[..],
        };
        Line {
            bytes,
            dropped: found.dropped,
            consumed: found.consumed,
        }
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

/// How far back from the end of a cut line [`safe_cut`] looks for a
/// delimiter.
const CUT_LOOKBACK: usize = 4096;

/// The length to keep of a line that was cut at its end: up to and including
/// the last delimiter (white space or punctuation that separates values)
/// within the last 4 KiB, so that a partial identifier is dropped rather than
/// left unrecognisable. With no delimiter there, the whole tail is one long
/// token and is dropped back to the lookback.
pub fn safe_cut(line: &[u8]) -> usize {
    let lo = line.len().saturating_sub(CUT_LOOKBACK);
    match line[lo..]
        .iter()
        .rposition(|b| b.is_ascii_whitespace() || b",;&|\"'<>(){}[]=".contains(b))
    {
        Some(i) => lo + i + 1,
        None => lo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(Vec<u8>, u64)> {
        let mut r = LineReader::new(io::BufReader::with_capacity(7, input), max);
        let mut v = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            v.push((l.bytes.to_vec(), l.dropped));
        }
        v
    }

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

    /// A CRLF line keeps its `\r` (the newline alone ends a line), in
    /// both framers, and the final partial line is a line at the end.
    #[test]
    fn crlf_and_final_partial_line() {
        let want = vec![
            (b"a\r".to_vec(), 0, 3),
            (b"\r".to_vec(), 0, 2),
            (b"b\r".to_vec(), 0, 2),
        ];
        for chunk in [1, 2, 64] {
            assert_eq!(split(b"a\r\n\r\nb\r", 100, chunk), want, "chunk {chunk}");
        }
        assert_eq!(
            lines(b"a\r\n\r\nb\r", 100),
            vec![
                (b"a\r".to_vec(), 0),
                (b"\r".to_vec(), 0),
                (b"b\r".to_vec(), 0)
            ]
        );
    }

    #[test]
    fn splits_and_bounds() {
        assert_eq!(
            lines(b"ab\n\ncd", 100),
            vec![(b"ab".to_vec(), 0), (b"".to_vec(), 0), (b"cd".to_vec(), 0)]
        );
        // The cut at 12 would split "219-09-99|99"; the partial token goes.
        assert_eq!(
            lines(b"ssn 219-09-9999 tail\nx\n", 12),
            vec![(b"ssn ".to_vec(), 16), (b"x".to_vec(), 0)]
        );
    }
}
