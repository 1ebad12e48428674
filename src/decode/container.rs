//! The container runtime's log files: CRI and Docker json-file.
//!
//! On a Kubernetes node the runtime, not the application, writes the files
//! under `/var/log/pods/`. Each physical line carries a prefix and may be
//! one part of a longer message:
//!
//! * CRI (containerd, CRI-O): `<RFC 3339 time> <stdout|stderr> <P|F> <message>`.
//!   A `P` (partial) part is continued by the next part of the same stream,
//!   up to an `F` (full) part. containerd splits at 16 KiB by default.
//! * Docker json-file: `{"log":"<message>\n","stream":"stdout","time":"<RFC 3339>"}`,
//!   with the message JSON-escaped. A part without the trailing `\n` is
//!   partial (Docker splits at 16 KiB).
//!
//! [`Decoder`] turns physical lines into messages: the prefix is stripped,
//! the parts of one message are joined before detection (an identifier split
//! across two parts is still one identifier), the runtime's time is kept as
//! the record's time and the stream as an attribute. It is per file, plain
//! and synchronous; a line it cannot read under the file's format is passed
//! on whole rather than lost.

use std::ops::Range;

use serde::Deserialize;

/// How a file source reads its lines (`format:` in a file source).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// CRI or Docker if the file's first line is one, else raw; decided once
    /// per file. The default: a raw line is never taken for a CRI line
    /// unless it starts with a full RFC 3339 time, a stream name and a tag.
    #[default]
    Auto,
    /// The CRI format of containerd and CRI-O.
    Cri,
    /// Docker's json-file format.
    Docker,
    /// Lines as the application wrote them.
    Raw,
}

impl LogFormat {
    /// The name used in the configuration and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Cri => "cri",
            LogFormat::Docker => "docker",
            LogFormat::Raw => "raw",
        }
    }
}

/// The stream a container wrote a line to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`, the attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn parse(b: &[u8]) -> Option<Stream> {
        match b {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// One message, decoded.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    /// The message without the runtime's prefix, parts joined.
    pub text: &'a [u8],
    /// The runtime's time for the message (its first part), in nanoseconds
    /// since the Unix epoch; `None` for a raw line.
    pub time_unix_nano: Option<u64>,
    /// The stream, `None` for a raw line.
    pub stream: Option<Stream>,
    /// Bytes cut because the joined message was over the line limit.
    pub cut: u64,
    /// The input offset of the physical line holding the message's first
    /// part (as given to [`Decoder::push`]).
    pub start: u64,
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The text is event content: its length only.
        f.debug_struct("Message")
            .field("bytes", &self.text.len())
            .field("time_unix_nano", &self.time_unix_nano)
            .field("stream", &self.stream)
            .field("cut", &self.cut)
            .field("start", &self.start)
            .finish()
    }
}

/// A CRI line's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriLine {
    pub time_unix_nano: u64,
    pub stream: Stream,
    pub partial: bool,
    /// Where the message is in the line.
    pub message: Range<usize>,
}

/// Reads `<time> <stream> <P|F> <message>`. The message may be empty
/// (`... stdout F ` or `... stdout F`).
pub fn parse_cri(line: &[u8]) -> Option<CriLine> {
    let sp1 = memchr::memchr(b' ', line)?;
    let time_unix_nano = parse_rfc3339(&line[..sp1])?;
    let rest = sp1 + 1;
    let sp2 = rest + memchr::memchr(b' ', &line[rest..])?;
    let stream = Stream::parse(&line[rest..sp2])?;
    let tag_at = sp2 + 1;
    // The tag is `P` or `F`, possibly followed by `:`-separated extra tags
    // (the CRI format reserves them); the message follows one space.
    let tag_end = memchr::memchr(b' ', &line[tag_at..]).map_or(line.len(), |k| tag_at + k);
    let tag = &line[tag_at..tag_end];
    let partial = match tag.split(|&b| b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return None,
    };
    let start = (tag_end + 1).min(line.len());
    Some(CriLine {
        time_unix_nano,
        stream,
        partial,
        message: start..line.len(),
    })
}

/// A Docker json-file line's parts; the message is unescaped into `out`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerLine {
    pub time_unix_nano: u64,
    pub stream: Stream,
    pub partial: bool,
}

#[derive(Deserialize)]
struct DockerRecord<'a> {
    #[serde(borrow)]
    log: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    stream: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    time: std::borrow::Cow<'a, str>,
}

/// Reads `{"log":"...","stream":"...","time":"..."}` (other fields, such as
/// `attrs`, are ignored) and appends the message, without its final newline,
/// to `out`.
pub fn parse_docker(line: &[u8], out: &mut Vec<u8>) -> Option<DockerLine> {
    if line.first() != Some(&b'{') {
        return None;
    }
    let rec: DockerRecord<'_> = serde_json::from_slice(line).ok()?;
    let stream = Stream::parse(rec.stream.as_bytes())?;
    let time_unix_nano = parse_rfc3339(rec.time.as_bytes())?;
    let log = rec.log.as_bytes();
    let (text, partial) = match log.strip_suffix(b"\n") {
        Some(t) => (t.strip_suffix(b"\r").unwrap_or(t), false),
        None => (log, true),
    };
    out.extend_from_slice(text);
    Some(DockerLine {
        time_unix_nano,
        stream,
        partial,
    })
}

/// Parses an RFC 3339 time (`2026-12-06T07:21:10.123456789Z`,
/// `2026-12-06T08:21:10+01:00`) into nanoseconds since the Unix epoch.
/// Times before 1970 are refused (no runtime writes them).
pub fn parse_rfc3339(s: &[u8]) -> Option<u64> {
    let digits = |r: Range<usize>| -> Option<u64> {
        let b = s.get(r)?;
        b.iter().try_fold(0u64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
        })
    };
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || !matches!(s[10], b'T' | b't' | b' ') {
        return None;
    }
    if s[13] != b':' || s[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, min, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut p = 19;
    let mut nanos = 0u64;
    if s[p] == b'.' {
        p += 1;
        let start = p;
        while p < s.len() && s[p].is_ascii_digit() {
            if p - start < 9 {
                nanos = nanos * 10 + u64::from(s[p] - b'0');
            }
            p += 1;
        }
        if p == start {
            return None;
        }
        for _ in (p - start)..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match s.get(p..)? {
        b"Z" | b"z" => 0,
        tz if tz.len() == 6 && matches!(tz[0], b'+' | b'-') && tz[3] == b':' => {
            let h = digits(p + 1..p + 3)? as i64;
            let m = digits(p + 4..p + 6)? as i64;
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if tz[0] == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let secs = days * 86_400 + (hour * 3600 + min * 60 + sec.min(59)) as i64 - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The message being joined on one stream.
#[derive(Default)]
struct Pending {
    text: Vec<u8>,
    time_unix_nano: u64,
    cut: u64,
    /// The input offset of the first part's physical line.
    start: u64,
    open: bool,
}

/// Turns the physical lines of one file into messages.
///
/// Memory: one pending message per stream, each at most `max_bytes`; parts
/// past the limit are cut and counted in [`Message::cut`].
pub struct Decoder {
    format: LogFormat,
    max_bytes: usize,
    pending: [Pending; 2],
    /// The message handed out last (a joined one, or a Docker line's
    /// unescaped text).
    out: Vec<u8>,
    /// Lines that did not read under the file's format, passed on whole.
    malformed: u64,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("format", &self.format)
            .field(
                "pending_bytes",
                &(self.pending[0].text.len() + self.pending[1].text.len()),
            )
            .field("malformed", &self.malformed)
            .finish()
    }
}

impl Decoder {
    /// A decoder for one file. `max_bytes` bounds a joined message.
    pub fn new(format: LogFormat, max_bytes: usize) -> Decoder {
        Decoder {
            format,
            max_bytes: max_bytes.max(1),
            pending: Default::default(),
            out: Vec::new(),
            malformed: 0,
        }
    }

    /// The format in force: `Auto` until the first line has decided it.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Lines that did not read under the file's format (passed on whole),
    /// since the last call; the file source counts them.
    pub fn take_malformed(&mut self) -> u64 {
        std::mem::take(&mut self.malformed)
    }

    /// Whether a part of a message waits for its continuation.
    pub fn has_pending(&self) -> bool {
        self.pending.iter().any(|p| p.open)
    }

    /// The input offset of the earliest physical line whose part waits for
    /// its continuation: a checkpoint must not pass it, so that a restart
    /// reads the message's parts again.
    pub fn pending_start(&self) -> Option<u64> {
        self.pending
            .iter()
            .filter(|p| p.open)
            .map(|p| p.start)
            .min()
    }

    /// Forgets the parts waiting for their continuation (the reader goes
    /// back to an earlier offset and will read them again). The format
    /// decided for the file is kept.
    pub fn reset(&mut self) {
        for p in &mut self.pending {
            p.open = false;
            p.text.clear();
            p.cut = 0;
        }
    }

    /// Feeds one physical line (without its newline) that starts at input
    /// offset `at`. Returns a message when one is complete; a partial part
    /// returns `None` and is kept.
    pub fn push<'a>(&'a mut self, line: &'a [u8], at: u64) -> Option<Message<'a>> {
        if self.format == LogFormat::Auto {
            self.format = if parse_cri(line).is_some() {
                LogFormat::Cri
            } else if line.starts_with(b"{\"log\":") && {
                self.out.clear();
                parse_docker(line, &mut self.out).is_some()
            } {
                LogFormat::Docker
            } else {
                LogFormat::Raw
            };
        }
        match self.format {
            LogFormat::Cri => match parse_cri(line) {
                Some(c) => {
                    let text = &line[c.message.clone()];
                    self.part(c.stream, c.time_unix_nano, c.partial, at, text, None)
                }
                None => self.malformed(line, at),
            },
            LogFormat::Docker => {
                self.out.clear();
                match parse_docker(line, &mut self.out) {
                    Some(d) => {
                        // The unescaped text is in `out`; move it aside so that
                        // `part` can use `out` for a joined message.
                        let text = std::mem::take(&mut self.out);
                        self.part(d.stream, d.time_unix_nano, d.partial, at, &[], Some(text))
                    }
                    None => self.malformed(line, at),
                }
            }
            LogFormat::Raw | LogFormat::Auto => Some(Message {
                text: line,
                time_unix_nano: None,
                stream: None,
                cut: 0,
                start: at,
            }),
        }
    }

    /// Ends the file (rotation, or shutdown): pending parts are handed out
    /// as they are, stdout first. Call until it returns `None`.
    pub fn flush(&mut self) -> Option<Message<'_>> {
        let stream = [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .find(|s| self.pending[s.index()].open)?;
        Some(self.finish(stream))
    }

    /// Hands out the message pending on `stream`, as it is, and closes it.
    fn finish(&mut self, stream: Stream) -> Message<'_> {
        let p = &mut self.pending[stream.index()];
        p.open = false;
        self.out.clear();
        self.out.append(&mut p.text);
        Message {
            text: &self.out,
            time_unix_nano: Some(p.time_unix_nano),
            stream: Some(stream),
            cut: std::mem::take(&mut p.cut),
            start: p.start,
        }
    }

    /// Which format a malformed line failed to read as: `cri` or `docker`
    /// (the metric's reason).
    pub fn malformed_reason(&self) -> &'static str {
        match self.format {
            LogFormat::Docker => "not_docker",
            _ => "not_cri",
        }
    }

    fn malformed<'a>(&mut self, line: &'a [u8], at: u64) -> Option<Message<'a>> {
        self.malformed += 1;
        Some(Message {
            text: line,
            time_unix_nano: None,
            stream: None,
            cut: 0,
            start: at,
        })
    }

    /// One part of a message on `stream`: `text`, or `owned` (a Docker
    /// line's unescaped text, whose buffer is reused).
    fn part<'a>(
        &'a mut self,
        stream: Stream,
        time: u64,
        partial: bool,
        at: u64,
        text: &'a [u8],
        owned: Option<Vec<u8>>,
    ) -> Option<Message<'a>> {
        let max = self.max_bytes;
        let p = &mut self.pending[stream.index()];
        let part: &[u8] = owned.as_deref().unwrap_or(text);
        if !p.open && !partial {
            // A whole message in one part: no copy for CRI.
            let cut = part.len().saturating_sub(max) as u64;
            return match owned {
                None => Some(Message {
                    text: &text[..text.len().min(max)],
                    time_unix_nano: Some(time),
                    stream: Some(stream),
                    cut,
                    start: at,
                }),
                Some(mut o) => {
                    o.truncate(max);
                    self.out = o;
                    Some(Message {
                        text: &self.out,
                        time_unix_nano: Some(time),
                        stream: Some(stream),
                        cut,
                        start: at,
                    })
                }
            };
        }
        if !p.open {
            p.open = true;
            p.start = at;
            p.time_unix_nano = time;
            p.text.clear();
            p.cut = 0;
        }
        let room = max.saturating_sub(p.text.len());
        let take = part.len().min(room);
        p.text.extend_from_slice(&part[..take]);
        p.cut += (part.len() - take) as u64;
        if let Some(o) = owned {
            // Keep the allocation for the next Docker line.
            self.out = o;
        }
        if partial {
            return None;
        }
        Some(self.finish(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(d: &mut Decoder, lines: &[&str]) -> Vec<(String, Option<&'static str>, u64)> {
        let mut out = Vec::new();
        for l in lines {
            if let Some(m) = d.push(l.as_bytes(), 0) {
                out.push((
                    String::from_utf8_lossy(m.text).into_owned(),
                    m.stream.map(Stream::as_str),
                    m.cut,
                ));
            }
        }
        while let Some(m) = d.flush() {
            out.push((
                String::from_utf8_lossy(m.text).into_owned(),
                m.stream.map(Stream::as_str),
                m.cut,
            ));
        }
        out
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339(b"2016-10-06T00:17:09.669794202Z"),
            Some(1_475_713_029_669_794_202)
        );
        assert_eq!(
            parse_rfc3339(b"2016-10-06T02:17:09.5+02:00"),
            Some(1_475_713_029_500_000_000)
        );
        assert_eq!(
            parse_rfc3339(b"2024-02-29T12:00:00Z"),
            Some(1_709_208_000_000_000_000)
        );
        for bad in [
            &b"2023-02-29T12:00:00Z"[..],
            b"2024-13-01T00:00:00Z",
            b"2024-01-01T00:00:00",
            b"2024-01-01T00:00:00.Z",
            b"2024-01-01T24:00:00Z",
            b"1969-12-31T23:59:59Z",
            b"not a time at all!!!",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn cri_lines_are_parsed_and_partials_joined_per_stream() {
        let mut d = Decoder::new(LogFormat::Auto, 1 << 20);
        let got = texts(
            &mut d,
            &[
                "2026-12-06T07:00:00.000000001Z stdout P patient ssn 219-0",
                "2026-12-06T07:00:00.000000002Z stderr F boom",
                "2026-12-06T07:00:00.000000003Z stdout F 9-9999 seen",
                "2026-12-06T07:00:00.000000004Z stdout F ",
            ],
        );
        assert_eq!(d.format(), LogFormat::Cri);
        assert_eq!(
            got,
            vec![
                ("boom".to_string(), Some("stderr"), 0),
                (
                    "patient ssn 219-09-9999 seen".to_string(),
                    Some("stdout"),
                    0
                ),
                (String::new(), Some("stdout"), 0),
            ]
        );
    }

    #[test]
    fn joined_message_keeps_the_time_of_its_first_part() {
        let mut d = Decoder::new(LogFormat::Cri, 1 << 20);
        assert!(d.push(b"2026-12-06T07:00:01Z stdout P a", 0).is_none());
        let m = d.push(b"2026-12-06T07:00:02Z stdout F b", 0).unwrap();
        assert_eq!(m.text, b"ab");
        assert_eq!(m.time_unix_nano, parse_rfc3339(b"2026-12-06T07:00:01Z"));
    }

    #[test]
    fn docker_lines_are_unescaped_and_partials_joined() {
        let mut d = Decoder::new(LogFormat::Auto, 1 << 20);
        let got = texts(
            &mut d,
            &[
                r#"{"log":"{\"msg\":\"hi\"}\n","stream":"stdout","time":"2026-12-06T07:00:00.1Z"}"#,
                r#"{"log":"call 415-555","stream":"stdout","time":"2026-12-06T07:00:00.2Z"}"#,
                r#"{"log":"-0132 now\r\n","stream":"stdout","time":"2026-12-06T07:00:00.3Z"}"#,
                r#"{"log":"oops\n","stream":"stderr","time":"2026-12-06T07:00:00.4Z","attrs":{"a":"b"}}"#,
            ],
        );
        assert_eq!(d.format(), LogFormat::Docker);
        assert_eq!(
            got,
            vec![
                (r#"{"msg":"hi"}"#.to_string(), Some("stdout"), 0),
                ("call 415-555-0132 now".to_string(), Some("stdout"), 0),
                ("oops".to_string(), Some("stderr"), 0),
            ]
        );
    }

    #[test]
    fn raw_lines_pass_unchanged_and_auto_does_not_take_them_for_cri() {
        let mut d = Decoder::new(LogFormat::Auto, 1 << 20);
        let got = texts(
            &mut d,
            &["2026-12-06 07:00:00 INFO stdout F started", "next"],
        );
        assert_eq!(d.format(), LogFormat::Raw);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "2026-12-06 07:00:00 INFO stdout F started");
        assert_eq!(got[0].1, None);
    }

    #[test]
    fn a_malformed_line_is_passed_on_whole_and_counted() {
        let mut d = Decoder::new(LogFormat::Cri, 1 << 20);
        let got = texts(
            &mut d,
            &["garbage line", "2026-12-06T07:00:00Z stdout F ok"],
        );
        assert_eq!(got[0].0, "garbage line");
        assert_eq!(got[1].0, "ok");
        assert_eq!(d.take_malformed(), 1);
        assert_eq!(d.take_malformed(), 0);
    }

    #[test]
    fn joined_messages_are_bounded_and_the_cut_counted() {
        let mut d = Decoder::new(LogFormat::Cri, 8);
        assert!(d.push(b"2026-12-06T07:00:00Z stdout P 123456", 0).is_none());
        let m = d.push(b"2026-12-06T07:00:00Z stdout F 7890ab", 0).unwrap();
        assert_eq!(m.text, b"12345678");
        assert_eq!(m.cut, 4);
        let m = d
            .push(b"2026-12-06T07:00:00Z stdout F 0123456789", 0)
            .unwrap();
        assert_eq!((m.text, m.cut), (&b"01234567"[..], 2));
    }

    #[test]
    fn flush_hands_out_an_unfinished_message() {
        let mut d = Decoder::new(LogFormat::Cri, 1 << 20);
        assert!(d.push(b"2026-12-06T07:00:00Z stderr P half", 0).is_none());
        assert!(d.has_pending());
        let m = d.flush().unwrap();
        assert_eq!((m.text, m.stream), (&b"half"[..], Some(Stream::Stderr)));
        assert!(d.flush().is_none());
    }

    #[test]
    fn debug_shows_no_content() {
        let mut d = Decoder::new(LogFormat::Cri, 1 << 20);
        let _ = d.push(b"2026-12-06T07:00:00Z stdout P Maria Gonzalez", 0);
        assert!(!format!("{d:?}").contains("Maria"));
        let m = d
            .push(b"2026-12-06T07:00:00Z stdout F  Gonzalez", 0)
            .unwrap();
        assert!(!format!("{m:?}").contains("Gonzalez"));
    }
}
