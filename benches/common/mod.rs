//! Deterministic log corpora for the engine bench, the allocation test and
//! the `gen_corpus` example.
//!
//! Two kinds of line, both about 200 bytes and both in the shapes real
//! services write (JSON lines, logfmt, combined access logs, Java and klog
//! text):
//!
//! * clean lines: timestamps, trace and span ids, UUIDs, `usr_` ids,
//!   durations, status codes, private addresses, user agents; no PHI at all,
//!   so every redaction on them is a false positive;
//! * PHI-dense lines: the same shapes carrying 1 to 3 planted identifiers
//!   (SSNs, phones, emails, person names, MRNs and dates of birth with their
//!   context word, Luhn-valid cards, MBIs, ICD-10 codes, public IPs).
//!
//! Everything comes from one seeded splitmix64 generator, so a seed and a size
//! always give the same bytes.

#![allow(dead_code)]

use std::io::{self, Write};
use std::ops::Range;

/// The splitmix64 generator (Steele, Lea and Flood): tiny, fast and good
/// enough for test data; no dependency on `rand`'s value-stability policy.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn pick<'a, T: ?Sized>(&mut self, items: &'a [&'a T]) -> &'a T {
        items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// A corpus: newline-terminated lines in one buffer, with each line's span
/// (without its newline).
#[derive(Debug, Clone)]
pub struct Corpus {
    pub text: Vec<u8>,
    pub lines: Vec<Range<usize>>,
    /// Identifiers planted by the generator (0 for a clean corpus).
    pub planted: usize,
}

impl Corpus {
    /// Bytes of input, newlines included: what a file of it would weigh.
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    pub fn line(&self, i: usize) -> &[u8] {
        &self.text[self.lines[i].clone()]
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.lines.iter().map(|r| &self.text[r.clone()])
    }

    /// Splits the lines into `n` runs of about equal bytes, for one thread each.
    pub fn split(&self, n: usize) -> Vec<&[Range<usize>]> {
        let per = self.text.len() / n.max(1) + 1;
        let mut parts = Vec::with_capacity(n);
        let mut start = 0;
        for k in 1..n {
            let cut = self
                .lines
                .partition_point(|r| r.end < per * k)
                .clamp(start, self.lines.len());
            parts.push(&self.lines[start..cut]);
            start = cut;
        }
        parts.push(&self.lines[start..]);
        parts
    }

    fn push_line(&mut self, line: &[u8]) {
        let s = self.text.len();
        self.text.extend_from_slice(line);
        self.lines.push(s..self.text.len());
        self.text.push(b'\n');
    }
}

/// What kind of lines to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Clean,
    Dense,
    /// One PHI-dense line in `n`, the rest clean.
    Mixed(u32),
}

/// A clean corpus of about `bytes` bytes.
pub fn clean(seed: u64, bytes: usize) -> Corpus {
    build(Kind::Clean, seed, bytes)
}

/// A PHI-dense corpus (1-3 identifiers a line) of about `bytes` bytes.
pub fn dense(seed: u64, bytes: usize) -> Corpus {
    build(Kind::Dense, seed, bytes)
}

pub fn build(kind: Kind, seed: u64, bytes: usize) -> Corpus {
    let mut g = LineGen::new(seed);
    let mut c = Corpus {
        text: Vec::with_capacity(bytes + 512),
        lines: Vec::with_capacity(bytes / 180),
        planted: 0,
    };
    let mut line = Vec::with_capacity(512);
    while c.text.len() < bytes {
        c.planted += g.line(kind, &mut line);
        c.push_line(&line);
    }
    c
}

/// Streams about `bytes` bytes of lines to `out`; returns (lines, planted).
pub fn write(kind: Kind, seed: u64, bytes: u64, out: &mut impl Write) -> io::Result<(u64, u64)> {
    let mut g = LineGen::new(seed);
    let mut line = Vec::with_capacity(512);
    let (mut written, mut lines, mut planted) = (0u64, 0u64, 0u64);
    while written < bytes {
        planted += g.line(kind, &mut line) as u64;
        line.push(b'\n');
        out.write_all(&line)?;
        written += line.len() as u64;
        lines += 1;
    }
    Ok((lines, planted))
}

// ---- vocabulary -----------------------------------------------------------

const SERVICES: &[&str] = &[
    "visit-api",
    "scheduler",
    "billing-worker",
    "notifier",
    "auth-gateway",
    "video-bridge",
    "search-indexer",
    "checkout",
    "intake-api",
    "pharmacy-sync",
];
const LEVELS_JSON: &[&str] = &["info", "info", "info", "debug", "warn", "error"];
const LEVELS_UP: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE", "PATCH"];
const STATUS: &[&str] = &[
    "200", "200", "200", "200", "201", "204", "301", "304", "400", "401", "403", "404", "409",
    "429", "500", "502", "503",
];
const MESSAGES: &[&str] = &[
    "request completed",
    "cache miss; loading from upstream",
    "retrying upstream call",
    "connection pool exhausted, waiting for a free connection",
    "job finished",
    "consumer group rebalanced",
    "GC pause exceeded budget",
    "TLS handshake complete",
    "rate limit exceeded for client",
    "feature flag evaluated",
    "websocket closed by peer",
    "scheduled sync started",
    "token refreshed",
    "queue depth above threshold",
    "Kafka producer flushed batch",
    "Redis connection re-established",
    "Postgres statement timeout, retrying",
    "health check passed",
    "deadline exceeded calling inventory",
    "circuit breaker half-open",
];
const JOBS: &[&str] = &[
    "sync_calendars",
    "expire_sessions",
    "rebuild_search_index",
    "send_reminders",
    "rotate_keys",
    "compact_segments",
    "reconcile_invoices",
];
const JAVA_CLASSES: &[&str] = &[
    "c.e.visits.VisitService",
    "c.e.billing.InvoiceJob",
    "o.a.k.clients.consumer.KafkaConsumer",
    "c.z.hikari.pool.HikariPool",
    "c.e.auth.TokenFilter",
    "o.s.web.servlet.DispatcherServlet",
];
const GO_FILES: &[&str] = &[
    "controller.go",
    "reconciler.go",
    "server.go",
    "leaderelection.go",
    "watcher.go",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "okhttp/4.12.0",
    "kube-probe/1.28",
    "Go-http-client/1.1",
    "curl/8.4.0",
    "python-requests/2.31.0",
];
const PATHS: &[&str] = &[
    "/api/v1/visits/{uuid}",
    "/api/v1/visits/{uuid}/notes",
    "/api/v2/appointments?page={n}&per_page=50",
    "/api/v1/users/{usr}/preferences",
    "/healthz",
    "/metrics",
    "/api/v1/providers/{uuid}/availability?from=2024-11-23",
    "/api/v1/patients/{uuid}/visits",
    "/static/js/app.{hex8}.js",
    "/api/v1/sessions/{uuid}/refresh",
];

// PHI vocabulary: common census names (in the engine's dictionaries).
const FIRST: &[&str] = &[
    "Maria", "James", "Priya", "Wei", "Fatima", "Robert", "Linda", "Carlos", "Aisha", "Michael",
    "Jennifer", "David", "Sofia", "Daniel", "Emily", "Ahmed", "Olivia", "Jose", "Grace", "Thomas",
];
const LAST: &[&str] = &[
    "Gonzalez",
    "Smith",
    "Patel",
    "Nguyen",
    "Johnson",
    "Williams",
    "Garcia",
    "Brown",
    "Okafor",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
];
const DOMAINS: &[&str] = &[
    "example.org",
    "example.com",
    "mail.example.net",
    "clinic.example",
];
const ICD10: &[&str] = &[
    "E11.9", "I10.0", "F32.A", "J45.909", "M54.5", "K21.9", "S72.001A", "E78.5",
];
const STREETS: &[&str] = &["Elm Street", "Oak Ave", "Maple Rd", "Cedar Lane", "Main St"];

const HEX: &[u8; 16] = b"0123456789abcdef";
const B36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

// ---- line generator ---------------------------------------------------------

/// Makes one line at a time into a caller's buffer.
#[derive(Debug)]
pub struct LineGen {
    rng: SplitMix64,
    /// Milliseconds since 2024-11-23T00:00:00Z; advances a little per line.
    clock_ms: u64,
    /// With [`LineGen::record_planted`]: every identifier planted since the
    /// last [`LineGen::take_planted`], with its kind, so that a benchmark
    /// can count how many reach a vendor (`scripts/bench-vs-otelcol.sh`).
    planted: Option<Vec<(&'static str, String)>>,
}

impl LineGen {
    pub fn new(seed: u64) -> LineGen {
        LineGen {
            rng: SplitMix64::new(seed),
            clock_ms: 8 * 3_600_000,
            planted: None,
        }
    }

    /// Starts keeping the identifiers planted (recording draws no random
    /// numbers, so the lines stay the same).
    pub fn record_planted(&mut self) {
        self.planted.get_or_insert_with(Vec::new);
    }

    /// The identifiers planted since the last call, with their kinds.
    pub fn take_planted(&mut self) -> Vec<(&'static str, String)> {
        self.planted
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Writes one line (no newline) into `out`; returns identifiers planted.
    pub fn line(&mut self, kind: Kind, out: &mut Vec<u8>) -> usize {
        out.clear();
        self.clock_ms += self.rng.below(40);
        match kind {
            Kind::Clean => {
                self.clean_line(out);
                0
            }
            Kind::Dense => self.dense_line(out),
            Kind::Mixed(n) => {
                if self.rng.below(u64::from(n.max(1))) == 0 {
                    self.dense_line(out)
                } else {
                    self.clean_line(out);
                    0
                }
            }
        }
    }

    // -- pieces --

    fn hex(&mut self, out: &mut Vec<u8>, n: usize) {
        for _ in 0..n {
            out.push(HEX[self.rng.below(16) as usize]);
        }
    }

    fn b36(&mut self, out: &mut Vec<u8>, n: usize) {
        for _ in 0..n {
            out.push(B36[self.rng.below(36) as usize]);
        }
    }

    fn num(&mut self, out: &mut Vec<u8>, lo: u64, hi: u64) {
        let v = self.rng.range(lo, hi);
        write!(out, "{v}").unwrap();
    }

    fn digits(&mut self, out: &mut Vec<u8>, n: usize) {
        for _ in 0..n {
            out.push(b'0' + self.rng.below(10) as u8);
        }
    }

    fn uuid(&mut self, out: &mut Vec<u8>) {
        self.hex(out, 8);
        out.push(b'-');
        self.hex(out, 4);
        out.extend_from_slice(b"-4");
        self.hex(out, 3);
        out.push(b'-');
        out.push(b"89ab"[self.rng.below(4) as usize]);
        self.hex(out, 3);
        out.push(b'-');
        self.hex(out, 12);
    }

    fn usr(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"usr_");
        self.b36(out, 12);
    }

    fn iso_ts(&mut self, out: &mut Vec<u8>) {
        let t = self.clock_ms;
        let (h, m, s, ms) = (t / 3_600_000 % 24, t / 60_000 % 60, t / 1000 % 60, t % 1000);
        write!(out, "2024-11-23T{h:02}:{m:02}:{s:02}.{ms:03}Z").unwrap();
    }

    fn text_ts(&mut self, out: &mut Vec<u8>) {
        let t = self.clock_ms;
        let (h, m, s, ms) = (t / 3_600_000 % 24, t / 60_000 % 60, t / 1000 % 60, t % 1000);
        write!(out, "2024-11-23 {h:02}:{m:02}:{s:02}.{ms:03}").unwrap();
    }

    fn clf_ts(&mut self, out: &mut Vec<u8>) {
        let t = self.clock_ms;
        let (h, m, s) = (t / 3_600_000 % 24, t / 60_000 % 60, t / 1000 % 60);
        write!(out, "[23/Nov/2024:{h:02}:{m:02}:{s:02} +0000]").unwrap();
    }

    fn private_ip(&mut self, out: &mut Vec<u8>) {
        match self.rng.below(3) {
            0 => write!(
                out,
                "10.{}.{}.{}",
                self.rng.below(256),
                self.rng.below(256),
                self.rng.range(1, 254)
            ),
            1 => write!(
                out,
                "172.{}.{}.{}",
                self.rng.range(16, 31),
                self.rng.below(256),
                self.rng.range(1, 254)
            ),
            _ => write!(
                out,
                "192.168.{}.{}",
                self.rng.below(256),
                self.rng.range(1, 254)
            ),
        }
        .unwrap();
    }

    fn path(&mut self, out: &mut Vec<u8>) {
        let p = self.rng.pick(PATHS);
        let mut rest = p;
        while let Some(i) = rest.find('{') {
            out.extend_from_slice(&rest.as_bytes()[..i]);
            let j = rest[i..].find('}').unwrap() + i;
            match &rest[i + 1..j] {
                "uuid" => self.uuid(out),
                "usr" => self.usr(out),
                "hex8" => self.hex(out, 8),
                _ => self.num(out, 1, 40),
            }
            rest = &rest[j + 1..];
        }
        out.extend_from_slice(rest.as_bytes());
    }

    fn duration(&mut self, out: &mut Vec<u8>) {
        let ms = self.rng.range(1, 2500);
        if ms > 1000 {
            write!(out, "{}.{:03}s", ms / 1000, ms % 1000).unwrap();
        } else {
            write!(out, "{}.{}ms", ms, self.rng.below(10)).unwrap();
        }
    }

    fn pod(&mut self, out: &mut Vec<u8>, service: &str) {
        out.extend_from_slice(service.as_bytes());
        out.push(b'-');
        self.hex(out, 9);
        out.push(b'-');
        self.b36(out, 5);
    }

    // -- clean lines --

    fn clean_line(&mut self, out: &mut Vec<u8>) {
        match self.rng.below(10) {
            0..=3 => self.json_line(out, None),
            4..=5 => self.logfmt_line(out, None),
            6..=7 => self.access_line(out),
            8 => self.java_line(out, None),
            _ => self.klog_line(out),
        }
    }

    /// `{"ts":..,"level":..,..}`; `phi` goes into the message when given.
    fn json_line(&mut self, out: &mut Vec<u8>, phi: Option<&[u8]>) {
        let svc = self.rng.pick(SERVICES);
        out.extend_from_slice(b"{\"ts\":\"");
        self.iso_ts(out);
        write!(
            out,
            "\",\"level\":\"{}\",\"service\":\"{svc}\",\"msg\":\"",
            self.rng.pick(LEVELS_JSON)
        )
        .unwrap();
        match phi {
            Some(p) => out.extend_from_slice(p),
            None => out.extend_from_slice(self.rng.pick(MESSAGES).as_bytes()),
        }
        if self.rng.chance(600) {
            write!(
                out,
                "\",\"method\":\"{}\",\"path\":\"",
                self.rng.pick(METHODS)
            )
            .unwrap();
            self.path(out);
            write!(out, "\",\"status\":{}", self.rng.pick(STATUS)).unwrap();
        } else {
            write!(
                out,
                "\",\"job\":\"{}\",\"attempt\":{}",
                self.rng.pick(JOBS),
                self.rng.range(1, 5)
            )
            .unwrap();
        }
        write!(
            out,
            ",\"duration_ms\":{}.{}",
            self.rng.range(0, 900),
            self.rng.below(10)
        )
        .unwrap();
        out.extend_from_slice(b",\"trace_id\":\"");
        self.hex(out, 32);
        if self.rng.chance(400) {
            out.extend_from_slice(b"\",\"span_id\":\"");
            self.hex(out, 16);
        }
        if self.rng.chance(600) {
            out.extend_from_slice(b"\",\"user_id\":\"");
            self.usr(out);
        }
        out.extend_from_slice(b"\"}");
    }

    fn logfmt_line(&mut self, out: &mut Vec<u8>, phi: Option<&[u8]>) {
        let svc = self.rng.pick(SERVICES);
        out.extend_from_slice(b"ts=");
        self.iso_ts(out);
        write!(
            out,
            " level={} service={svc} msg=\"",
            self.rng.pick(LEVELS_JSON)
        )
        .unwrap();
        match phi {
            Some(p) => out.extend_from_slice(p),
            None => out.extend_from_slice(self.rng.pick(MESSAGES).as_bytes()),
        }
        out.push(b'"');
        if self.rng.chance(500) {
            out.extend_from_slice(b" pod=");
            self.pod(out, svc);
        }
        out.extend_from_slice(b" duration=");
        self.duration(out);
        out.extend_from_slice(b" trace_id=");
        self.hex(out, 32);
        out.extend_from_slice(b" user=");
        self.usr(out);
        write!(
            out,
            " queue_depth={} retries={}",
            self.rng.below(500),
            self.rng.below(4)
        )
        .unwrap();
    }

    fn access_line(&mut self, out: &mut Vec<u8>) {
        self.private_ip(out);
        out.extend_from_slice(b" - - ");
        self.clf_ts(out);
        write!(out, " \"{} ", self.rng.pick(METHODS)).unwrap();
        self.path(out);
        write!(
            out,
            " HTTP/1.1\" {} {} \"-\" \"{}\" rt=0.{:03} req_id=",
            self.rng.pick(STATUS),
            self.rng.range(0, 48_000),
            self.rng.pick(AGENTS),
            self.rng.below(1000)
        )
        .unwrap();
        self.uuid(out);
    }

    fn java_line(&mut self, out: &mut Vec<u8>, phi: Option<&[u8]>) {
        self.text_ts(out);
        write!(
            out,
            " {} [pool-{}-thread-{}] {} - ",
            self.rng.pick(LEVELS_UP),
            self.rng.range(1, 9),
            self.rng.range(1, 32),
            self.rng.pick(JAVA_CLASSES)
        )
        .unwrap();
        match phi {
            Some(p) => out.extend_from_slice(p),
            None => out.extend_from_slice(self.rng.pick(MESSAGES).as_bytes()),
        }
        out.extend_from_slice(b" upstream=scheduling-svc:8443 attempt=");
        self.num(out, 1, 5);
        out.extend_from_slice(b" elapsed=");
        self.duration(out);
        out.extend_from_slice(b" traceId=");
        self.hex(out, 32);
        if self.rng.chance(500) {
            out.extend_from_slice(b" visit=");
            self.uuid(out);
        }
    }

    fn klog_line(&mut self, out: &mut Vec<u8>) {
        let t = self.clock_ms;
        let (h, m, s) = (t / 3_600_000 % 24, t / 60_000 % 60, t / 1000 % 60);
        write!(
            out,
            "I1123 {h:02}:{m:02}:{s:02}.{:06} {:>7} {}:{}] ",
            self.rng.below(1_000_000),
            self.rng.range(1, 99_999),
            self.rng.pick(GO_FILES),
            self.rng.range(20, 900)
        )
        .unwrap();
        let svc = self.rng.pick(SERVICES);
        out.extend_from_slice(b"Reconciling deployment \"");
        out.extend_from_slice(svc.as_bytes());
        out.extend_from_slice(b"\" namespace=\"prod\" generation=");
        self.num(out, 1, 400);
        out.extend_from_slice(b" replicas=");
        self.num(out, 1, 12);
        out.extend_from_slice(b" pod=\"");
        self.pod(out, svc);
        out.extend_from_slice(b"\" node=\"ip-");
        let mut ip = Vec::new();
        self.private_ip(&mut ip);
        for b in &mut ip {
            if *b == b'.' {
                *b = b'-';
            }
        }
        out.extend_from_slice(&ip);
        out.extend_from_slice(b".ec2.internal\" uid=");
        self.uuid(out);
    }

    // -- PHI-dense lines --

    fn dense_line(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.rng.range(1, 3) as usize;
        let mut msg = Vec::with_capacity(160);
        for k in 0..n {
            if k > 0 {
                msg.extend_from_slice(self.rng.pick(&[", ", "; ", " and ", " / "]).as_bytes());
            }
            self.identifier(&mut msg);
        }
        match self.rng.below(3) {
            0 => self.json_line(out, Some(&msg)),
            1 => self.logfmt_line(out, Some(&msg)),
            _ => self.java_line(out, Some(&msg)),
        }
        n
    }

    /// One identifier with the words a real line would carry around it.
    fn identifier(&mut self, out: &mut Vec<u8>) {
        // Where the identifier starts (after its context words), and its kind.
        let at;
        let kind = match self.rng.below(12) {
            0 => {
                out.extend_from_slice(
                    self.rng
                        .pick(&["ssn ", "SSN verification failed for ", "applicant ssn="])
                        .as_bytes(),
                );
                at = out.len();
                self.ssn(out);
                "ssn"
            }
            1 => {
                out.extend_from_slice(
                    self.rng
                        .pick(&["callback ", "patient called from ", "sms sent to "])
                        .as_bytes(),
                );
                at = out.len();
                self.phone(out);
                "phone"
            }
            2 => {
                out.extend_from_slice(
                    self.rng
                        .pick(&["invite sent to ", "email bounced: ", "reset link for "])
                        .as_bytes(),
                );
                at = out.len();
                self.email(out);
                "email"
            }
            3 => {
                out.extend_from_slice(
                    self.rng
                        .pick(&["patient ", "seen by Dr. ", "msg from ", "check-in for "])
                        .as_bytes(),
                );
                at = out.len();
                out.extend_from_slice(self.rng.pick(FIRST).as_bytes());
                out.push(b' ');
                out.extend_from_slice(self.rng.pick(LAST).as_bytes());
                "name"
            }
            4 => {
                out.extend_from_slice(
                    self.rng
                        .pick(&["MRN: ", "mrn ", "medical record "])
                        .as_bytes(),
                );
                at = out.len();
                self.digits(out, 8);
                "mrn"
            }
            5 => {
                out.extend_from_slice(
                    self.rng
                        .pick(&["DOB: ", "date of birth ", "born "])
                        .as_bytes(),
                );
                at = out.len();
                self.dob(out);
                "dob"
            }
            6 => {
                out.extend_from_slice(
                    self.rng
                        .pick(&["card ", "payment declined for card ", "pan "])
                        .as_bytes(),
                );
                at = out.len();
                self.card(out);
                "card"
            }
            7 => {
                out.extend_from_slice(
                    self.rng
                        .pick(&["eligibility check ", "medicare mbi "])
                        .as_bytes(),
                );
                at = out.len();
                self.mbi(out);
                "mbi"
            }
            8 => {
                out.extend_from_slice(self.rng.pick(&["dx ", "diagnosis code "]).as_bytes());
                at = out.len();
                out.extend_from_slice(self.rng.pick(ICD10).as_bytes());
                "icd10"
            }
            9 => {
                out.extend_from_slice(b"login from ");
                at = out.len();
                write!(
                    out,
                    "{}.{}.{}.{}",
                    self.rng.pick(&["81", "93", "151", "185", "212"]),
                    self.rng.below(256),
                    self.rng.below(256),
                    self.rng.range(1, 254)
                )
                .unwrap();
                "ip"
            }
            10 => {
                out.extend_from_slice(b"ship to ");
                at = out.len();
                self.num(out, 2, 9999);
                out.push(b' ');
                out.extend_from_slice(self.rng.pick(STREETS).as_bytes());
                "address"
            }
            _ => {
                out.extend_from_slice(b"born on ");
                at = out.len();
                out.extend_from_slice(self.rng.pick(MONTHS).as_bytes());
                write!(
                    out,
                    " {}, {}",
                    self.rng.range(1, 28),
                    self.rng.range(1935, 2015)
                )
                .unwrap();
                "dob"
            }
        };
        if let Some(p) = &mut self.planted {
            p.push((kind, String::from_utf8_lossy(&out[at..]).into_owned()));
        }
    }

    fn ssn(&mut self, out: &mut Vec<u8>) {
        let mut area = self.rng.range(1, 899);
        if area == 666 {
            area = 665;
        }
        write!(
            out,
            "{area:03}-{:02}-{:04}",
            self.rng.range(1, 99),
            self.rng.range(1, 9999)
        )
        .unwrap();
    }

    fn phone(&mut self, out: &mut Vec<u8>) {
        let area = self.rng.range(2, 9) * 100 + self.rng.range(0, 8) * 10 + self.rng.range(2, 9);
        let exch = self.rng.range(200, 999);
        let line = self.rng.below(10_000);
        match self.rng.below(4) {
            0 => write!(out, "({area}) {exch}-{line:04}"),
            1 => write!(out, "{area}-{exch}-{line:04}"),
            2 => write!(out, "{area}.{exch}.{line:04}"),
            _ => write!(out, "+1 {area} {exch} {line:04}"),
        }
        .unwrap();
    }

    fn email(&mut self, out: &mut Vec<u8>) {
        let first = self.rng.pick(FIRST).to_ascii_lowercase();
        let last = self.rng.pick(LAST).to_ascii_lowercase();
        match self.rng.below(3) {
            0 => write!(out, "{first}.{last}@"),
            1 => write!(out, "{}{last}{}@", &first[..1], self.rng.below(100)),
            _ => write!(out, "{first}+portal@"),
        }
        .unwrap();
        out.extend_from_slice(self.rng.pick(DOMAINS).as_bytes());
    }

    fn dob(&mut self, out: &mut Vec<u8>) {
        let (y, m, d) = (
            self.rng.range(1930, 2015),
            self.rng.range(1, 12),
            self.rng.range(1, 28),
        );
        match self.rng.below(3) {
            0 => write!(out, "{m:02}/{d:02}/{y}"),
            1 => write!(out, "{y}-{m:02}-{d:02}"),
            _ => write!(out, "{d:02}.{m:02}.{y}"),
        }
        .unwrap();
    }

    /// A 16-digit Visa or Mastercard number with a valid Luhn digit.
    fn card(&mut self, out: &mut Vec<u8>) {
        let mut d = [0u8; 16];
        if self.rng.chance(500) {
            d[0] = 4;
        } else {
            d[0] = 5;
            d[1] = self.rng.range(1, 5) as u8;
        }
        let from = if d[0] == 4 { 1 } else { 2 };
        for x in &mut d[from..15] {
            *x = self.rng.below(10) as u8;
        }
        d[15] = luhn_check_digit(&d[..15]);
        let sep: &[u8] = self.rng.pick(&[" ", "-", ""]).as_bytes();
        for (i, x) in d.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.extend_from_slice(sep);
            }
            out.push(b'0' + x);
        }
    }

    /// A Medicare Beneficiary Identifier in the CMS format, dashed or not.
    fn mbi(&mut self, out: &mut Vec<u8>) {
        const ALPHA: &[u8] = b"ACDEFGHJKMNPQRTUVWXY";
        const NUM: &[u8] = b"0123456789";
        let an: Vec<u8> = [ALPHA, NUM].concat();
        let dashed = self.rng.chance(500);
        let classes: [&[u8]; 11] = [
            b"123456789",
            ALPHA,
            &an,
            NUM,
            ALPHA,
            &an,
            NUM,
            ALPHA,
            ALPHA,
            NUM,
            NUM,
        ];
        for (i, c) in classes.iter().enumerate() {
            if dashed && (i == 4 || i == 7) {
                out.push(b'-');
            }
            out.push(c[self.rng.below(c.len() as u64) as usize]);
        }
    }
}

/// The digit that makes `body` followed by it pass Luhn.
pub fn luhn_check_digit(body: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, &d) in body.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    ((10 - sum % 10) % 10) as u8
}
