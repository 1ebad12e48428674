//! Bounded line reading: constant memory whatever the input.
//!
//! A line longer than the limit is cut, never buffered whole: the reader
//! keeps the first `max` bytes and counts the rest as dropped. Because a cut
//! can split an identifier (`219-09-99|99`), [`safe_cut`] moves the cut back
//! to the last delimiter so that no partial token survives the cut.

use std::io::{self, BufRead};

use memchr::memchr;

/// Reads `\n`-terminated lines of at most `max` bytes.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    max: usize,
}

/// One line: its bytes (without the newline) and how many bytes past the
/// limit were dropped.
#[derive(Debug)]
pub struct Line<'a> {
    pub bytes: &'a [u8],
    pub dropped: u64,
}

impl<R: BufRead> LineReader<R> {
    /// A reader that keeps at most `max` bytes of any line.
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader {
            inner,
            buf: Vec::new(),
            max: max.max(1),
        }
    }

    /// The next line, or `None` at end of input. A final line without a
    /// newline is still a line.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let mut dropped = 0u64;
        let mut any = false;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let (chunk, done) = match memchr(b'\n', avail) {
                Some(i) => (&avail[..i], Some(i + 1)),
                None => (avail, None),
            };
            let room = self.max - self.buf.len();
            let take = chunk.len().min(room);
            self.buf.extend_from_slice(&chunk[..take]);
            dropped += (chunk.len() - take) as u64;
            let used = done.unwrap_or(chunk.len());
            self.inner.consume(used);
            if done.is_some() {
                break;
            }
        }
        let cut = if dropped > 0 {
            let keep = safe_cut(&self.buf);
            dropped += (self.buf.len() - keep) as u64;
            keep
        } else {
            self.buf.len()
        };
        Ok(Some(Line {
            bytes: &self.buf[..cut],
            dropped,
        }))
    }

    /// The underlying reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
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
