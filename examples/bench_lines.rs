//! The log lines of the whole-process sidecar benchmarks
//! (`scripts/bench-sidecar.sh`): about 200-byte JSON, logfmt, plain-text and
//! access-log lines in the shapes services write, some carrying PHI. Used as a
//! module by `loadgen` and `otlp_replay` (`#[path]`); run on its own, it
//! prints sample lines, to check what the engine does with them:
//!
//! ```text
//! cargo run --release --example bench_lines -- 2000 | target/release/scrubs redact
//! cargo run --release --example bench_lines -- --canaries     # the canary list
//! ```
//!
//! Every line ends with ` run=TAG seq=N gen_ns=T` (JSON: `"run":..,"seq":..,
//! "gen_ns":..`): the benchmark run, a sequence number and the wall-clock
//! time (Unix nanoseconds) the generator wrote it. The engine leaves these
//! tokens alone, so the vendor sink can measure latency and count lines.
//!
//! Kinds of line (per mille, configurable with [`Mix`]):
//!
//! * **audit** (default 50 ‰): `audit=true` / `"audit":"true"` with a
//!   `patient_id`, a patient name and an SSN or MRN: what the bench config's
//!   audit selector (`fields: {audit: ["true"]}`) forks to Kafka;
//! * **canary** (default 20 ‰): fixed PHI values ([`CANARIES`]) in contexts
//!   the engine redacts; the vendor sink counts every canary it receives
//!   (must be 0);
//! * **dense** (default 100 ‰): random PHI (names, SSNs, phones, emails,
//!   MRNs, dates of birth);
//! * **clean**: the rest, no PHI.

#![allow(dead_code)]

use std::io::Write;

/// PHI values planted in canary and audit lines. None may reach a vendor.
/// The random PHI of dense lines never produces them (phone exchanges avoid
/// 555, birth years are 1930 or later, names come from other lists).
pub const CANARIES: &[&str] = &[
    "Beatriz Okonkwo",
    "Okonkwo",
    "219-09-9999",
    "(415) 555-0132",
    "555-0132",
    "beatriz.okonkwo@clinic.example",
    "48213377",
    "1929-02-11",
];

/// The splitmix64 generator: tiny, fast, deterministic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
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

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The share of each kind of line, per mille; the rest are clean.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub audit: u64,
    pub canary: u64,
    pub dense: u64,
    /// Visit events of the telehealth preset's default schema (`event`,
    /// `visit_id`, media stats), for the cost of `signals:`.
    pub visit: u64,
}

impl Default for Mix {
    fn default() -> Mix {
        Mix {
            audit: 50,
            canary: 20,
            dense: 100,
            visit: 0,
        }
    }
}

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Clean,
    Dense,
    Canary,
    Audit,
    Visit,
}

/// How a line ends: JSON lines are left open for the trailer fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Json,
    Text,
}

const SERVICES: &[&str] = &[
    "visit-api",
    "scheduler",
    "billing",
    "notifier",
    "auth-gw",
    "video-bridge",
    "intake-api",
    "pharmacy-sync",
];
const LEVELS: &[&str] = &["info", "info", "info", "debug", "warn", "error"];
const LEVELS_UP: &[&str] = &["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
const MESSAGES: &[&str] = &[
    "request completed",
    "cache miss; loading from upstream",
    "retrying upstream call",
    "job finished",
    "consumer group rebalanced",
    "TLS handshake complete",
    "rate limit exceeded for client",
    "feature flag evaluated",
    "token refreshed",
    "queue depth above threshold",
    "health check passed",
    "circuit breaker half-open",
];
const PATHS: &[&str] = &[
    "/api/v1/visits/",
    "/api/v1/appointments/",
    "/api/v1/providers/",
    "/api/v2/sessions/",
    "/api/v1/invoices/",
];
const STATUS: &[&str] = &[
    "200", "200", "200", "201", "204", "304", "400", "404", "500",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const CLASSES: &[&str] = &[
    "c.e.visits.VisitService",
    "c.e.billing.InvoiceJob",
    "c.e.auth.TokenFilter",
    "o.a.k.c.c.KafkaConsumer",
];
const FIRST: &[&str] = &[
    "Maria", "James", "Priya", "Wei", "Fatima", "Robert", "Linda", "Carlos", "Aisha", "Michael",
];
const LAST: &[&str] = &[
    "Gonzalez", "Smith", "Patel", "Nguyen", "Johnson", "Williams", "Garcia", "Brown", "Miller",
    "Davis",
];
const EVENTS: &[&str] = &["chart.view", "chart.export", "rx.view", "note.read"];
/// The events of one visit, in order, in the telehealth preset's default
/// names.
const VISIT_STEPS: &[&str] = &[
    "scheduled",
    "checked_in",
    "waiting_room",
    "connect_attempt",
    "connected",
    "media_stats",
    "media_stats",
    "media_stats",
    "completed",
    "notes_signed",
];
/// Visits under way at once.
const VISITS_OPEN: usize = 64;
const PLATFORMS: &[&str] = &["ios", "android", "web", "desktop"];
const HEX: &[u8; 16] = b"0123456789abcdef";
const B36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Makes lines.
#[derive(Debug, Clone)]
pub struct Gen {
    rng: Rng,
    mix: Mix,
    /// Milliseconds since 2024-11-23T00:00:00Z, for the lines' own
    /// timestamps (the wall clock goes in `gen_ns`).
    clock_ms: u64,
    /// Visits under way: (id, index of the next event in `VISIT_STEPS`).
    visits: Vec<(u64, usize)>,
    /// With [`Gen::record_planted`]: every PHI value written since the last
    /// [`Gen::take_planted`], with its kind, so that a benchmark can count
    /// how many of them reach the vendor (`scripts/bench-vs-otelcol.sh`).
    planted: Option<Vec<(&'static str, String)>>,
}

impl Gen {
    pub fn new(seed: u64, mix: Mix) -> Gen {
        Gen {
            rng: Rng::new(seed),
            mix,
            clock_ms: 8 * 3_600_000,
            visits: Vec::new(),
            planted: None,
        }
    }

    /// Starts keeping the PHI values written (recording draws no random
    /// numbers, so the lines stay the same).
    pub fn record_planted(&mut self) {
        self.planted.get_or_insert_with(Vec::new);
    }

    /// The PHI values written since the last call, with their kinds
    /// (`name`, `ssn`, `phone`, `email`, `mrn`, `dob`).
    pub fn take_planted(&mut self) -> Vec<(&'static str, String)> {
        self.planted
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn plant(&mut self, kind: &'static str, value: &str) {
        if let Some(p) = &mut self.planted {
            p.push((kind, value.to_string()));
        }
    }

    fn plant_canaries(&mut self, values: &[(&'static str, &str)]) {
        for (k, v) in values {
            self.plant(k, v);
        }
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Appends one whole line (with the trailer and a newline) to `out`.
    pub fn line(&mut self, tag: &str, seq: u64, gen_ns: u64, out: &mut Vec<u8>) -> Kind {
        let (kind, style) = self.body_open(out);
        match style {
            Style::Json => write!(
                out,
                ",\"run\":\"{tag}\",\"seq\":{seq},\"gen_ns\":{gen_ns}}}"
            )
            .unwrap(),
            Style::Text => write!(out, " run={tag} seq={seq} gen_ns={gen_ns}").unwrap(),
        }
        out.push(b'\n');
        kind
    }

    /// Appends one line without trailer or newline (an OTLP log body).
    pub fn body(&mut self, out: &mut Vec<u8>) -> Kind {
        let (kind, style) = self.body_open(out);
        if style == Style::Json {
            out.push(b'}');
        }
        kind
    }

    /// Picks the kind by the mix.
    pub fn kind(&mut self) -> Kind {
        let r = self.rng.below(1000);
        let m = self.mix;
        if r < m.audit {
            Kind::Audit
        } else if r < m.audit + m.canary {
            Kind::Canary
        } else if r < m.audit + m.canary + m.dense {
            Kind::Dense
        } else if r < m.audit + m.canary + m.dense + m.visit {
            Kind::Visit
        } else {
            Kind::Clean
        }
    }

    fn body_open(&mut self, out: &mut Vec<u8>) -> (Kind, Style) {
        self.clock_ms += self.rng.below(20);
        let kind = self.kind();
        let style = match kind {
            Kind::Clean => self.clean(out),
            Kind::Dense => self.dense(out),
            Kind::Canary => self.canary(out),
            Kind::Audit => self.audit(out),
            Kind::Visit => self.visit(out),
        };
        (kind, style)
    }

    // ---- pieces ----

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

    fn usr(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"usr_");
        self.b36(out, 10);
    }

    fn path(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.rng.pick(PATHS).as_bytes());
        self.hex(out, 8);
    }

    fn json_head(&mut self, out: &mut Vec<u8>, level: Option<&str>) {
        out.extend_from_slice(b"{\"ts\":\"");
        self.iso_ts(out);
        let level = level.unwrap_or_else(|| self.rng.pick(LEVELS));
        let svc = self.rng.pick(SERVICES);
        write!(out, "\",\"level\":\"{level}\",\"svc\":\"{svc}\"").unwrap();
    }

    fn logfmt_head(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"ts=");
        self.iso_ts(out);
        let level = self.rng.pick(LEVELS);
        let svc = self.rng.pick(SERVICES);
        write!(out, " level={level} svc={svc}").unwrap();
    }

    fn plain_head(&mut self, out: &mut Vec<u8>) {
        self.text_ts(out);
        let level = self.rng.pick(LEVELS_UP);
        let (p, t) = (self.rng.range(1, 9), self.rng.range(1, 32));
        let class = self.rng.pick(CLASSES);
        write!(out, " {level} [pool-{p}-thread-{t}] {class} - ").unwrap();
    }

    // ---- kinds ----

    /// The next event of one of the visits under way: every visit goes
    /// through every step, and a new one starts when one ends.
    fn visit(&mut self, out: &mut Vec<u8>) -> Style {
        if self.visits.len() < VISITS_OPEN {
            let id = self.rng.next_u64();
            self.visits.push((id, 0));
        }
        let i = self.rng.below(self.visits.len() as u64) as usize;
        let (id, step) = self.visits[i];
        let event = VISIT_STEPS[step];
        if step + 1 == VISIT_STEPS.len() {
            self.visits.swap_remove(i);
        } else {
            self.visits[i].1 += 1;
        }
        self.json_head(out, Some("info"));
        let platform = PLATFORMS[(id % PLATFORMS.len() as u64) as usize];
        write!(
            out,
            ",\"event\":\"{event}\",\"visit_id\":\"v-{:012x}\",\"platform\":\"{platform}\"",
            id & 0xffff_ffff_ffff
        )
        .unwrap();
        if event == "media_stats" {
            let (loss, tenth) = (self.rng.below(5), self.rng.below(10));
            let (jitter, rtt) = (self.rng.range(2, 60), self.rng.range(20, 300));
            write!(
                out,
                ",\"packet_loss\":{loss}.{tenth},\"jitter\":{jitter},\"rtt\":{rtt}"
            )
            .unwrap();
        }
        Style::Json
    }

    fn clean(&mut self, out: &mut Vec<u8>) -> Style {
        match self.rng.below(10) {
            0..=3 => {
                self.json_head(out, None);
                let msg = self.rng.pick(MESSAGES);
                write!(out, ",\"msg\":\"{msg}\",\"path\":\"").unwrap();
                self.path(out);
                let status = self.rng.pick(STATUS);
                let (a, b) = (self.rng.below(900), self.rng.below(10));
                write!(out, "\",\"status\":{status},\"dur_ms\":{a}.{b}").unwrap();
                Style::Json
            }
            4..=6 => {
                self.logfmt_head(out);
                let msg = self.rng.pick(MESSAGES);
                let (a, b) = (self.rng.below(900), self.rng.below(10));
                write!(out, " msg=\"{msg}\" dur={a}.{b}ms user=").unwrap();
                self.usr(out);
                out.extend_from_slice(b" trace=");
                self.hex(out, 16);
                Style::Text
            }
            7..=8 => {
                self.plain_head(out);
                let msg = self.rng.pick(MESSAGES);
                let ms = self.rng.range(1, 2500);
                write!(out, "{msg} elapsed={ms}ms traceId=").unwrap();
                self.hex(out, 16);
                Style::Text
            }
            _ => {
                let (a, b, c) = (
                    self.rng.below(256),
                    self.rng.below(256),
                    self.rng.range(1, 254),
                );
                let t = self.clock_ms;
                let (h, m, s) = (t / 3_600_000 % 24, t / 60_000 % 60, t / 1000 % 60);
                let method = self.rng.pick(METHODS);
                write!(
                    out,
                    "10.{a}.{b}.{c} - - [23/Nov/2024:{h:02}:{m:02}:{s:02} +0000] \"{method} "
                )
                .unwrap();
                self.path(out);
                let status = self.rng.pick(STATUS);
                let (size, rt) = (self.rng.range(0, 48_000), self.rng.below(1000));
                write!(
                    out,
                    " HTTP/1.1\" {status} {size} \"-\" \"okhttp/4.12.0\" rt=0.{rt:03}"
                )
                .unwrap();
                Style::Text
            }
        }
    }

    /// A random identifier with the words around it that make it PHI.
    fn phi(&mut self, out: &mut Vec<u8>) {
        match self.rng.below(6) {
            0 => {
                let (f, l) = (self.rng.pick(FIRST), self.rng.pick(LAST));
                let cue = self
                    .rng
                    .pick(&["patient ", "seen by Dr. ", "check-in for "]);
                write!(out, "{cue}{f} {l}").unwrap();
                self.plant("name", &format!("{f} {l}"));
            }
            1 => {
                let (a, g, s) = (
                    self.rng.range(100, 665),
                    self.rng.range(1, 99),
                    self.rng.range(1, 9999),
                );
                write!(out, "SSN verification failed for {a:03}-{g:02}-{s:04}").unwrap();
                self.plant("ssn", &format!("{a:03}-{g:02}-{s:04}"));
            }
            2 => {
                let area = self.rng.range(2, 9) * 100 + self.rng.range(1, 8) * 10 + 2;
                // Exchange 555 is the canary's.
                let exch = self.rng.range(200, 554);
                let line = self.rng.below(10_000);
                write!(out, "callback ({area}) {exch}-{line:04}").unwrap();
                self.plant("phone", &format!("({area}) {exch}-{line:04}"));
            }
            3 => {
                let (f, l) = (self.rng.pick(FIRST), self.rng.pick(LAST));
                let email = format!(
                    "{}.{}@example.org",
                    f.to_ascii_lowercase(),
                    l.to_ascii_lowercase()
                );
                write!(out, "invite sent to {email}").unwrap();
                self.plant("email", &email);
            }
            4 => {
                // 8 digits starting with 5-9: never the canary MRN.
                let mrn = self.rng.range(50_000_000, 99_999_999);
                write!(out, "chart opened for MRN: {mrn}").unwrap();
                self.plant("mrn", &mrn.to_string());
            }
            _ => {
                let (y, m, d) = (
                    self.rng.range(1930, 2015),
                    self.rng.range(1, 12),
                    self.rng.range(1, 28),
                );
                write!(out, "DOB {m:02}/{d:02}/{y} did not match").unwrap();
                self.plant("dob", &format!("{m:02}/{d:02}/{y}"));
            }
        }
    }

    fn dense(&mut self, out: &mut Vec<u8>) -> Style {
        match self.rng.below(3) {
            0 => {
                self.json_head(out, None);
                out.extend_from_slice(b",\"msg\":\"");
                self.phi(out);
                out.extend_from_slice(b"\",\"user\":\"");
                self.usr(out);
                out.push(b'"');
                Style::Json
            }
            1 => {
                self.logfmt_head(out);
                out.extend_from_slice(b" msg=\"");
                self.phi(out);
                out.extend_from_slice(b"\" user=");
                self.usr(out);
                Style::Text
            }
            _ => {
                self.plain_head(out);
                self.phi(out);
                // Keeps the trailer's numbers out of the identifier's
                // context window (`MRN: 1234 seq=10006` would redact both).
                out.extend_from_slice(b" user=");
                self.usr(out);
                Style::Text
            }
        }
    }

    fn canary(&mut self, out: &mut Vec<u8>) -> Style {
        match self.rng.below(4) {
            0 => {
                self.json_head(out, Some("warn"));
                out.extend_from_slice(
                    b",\"msg\":\"identity check failed\",\"patient_name\":\"Beatriz Okonkwo\",\"ssn\":\"219-09-9999\"",
                );
                self.plant_canaries(&[("name", "Beatriz Okonkwo"), ("ssn", "219-09-9999")]);
                Style::Json
            }
            1 => {
                self.logfmt_head(out);
                out.extend_from_slice(
                    b" msg=\"sms sent to (415) 555-0132 for patient Beatriz Okonkwo\"",
                );
                self.plant_canaries(&[("phone", "(415) 555-0132"), ("name", "Beatriz Okonkwo")]);
                Style::Text
            }
            2 => {
                self.plain_head(out);
                out.extend_from_slice(b"invite sent to beatriz.okonkwo@clinic.example user=");
                self.plant("email", "beatriz.okonkwo@clinic.example");
                self.usr(out);
                Style::Text
            }
            _ => {
                self.logfmt_head(out);
                out.extend_from_slice(
                    b" msg=\"chart opened for MRN: 48213377\" dob=1929-02-11 user=",
                );
                self.plant_canaries(&[("mrn", "48213377"), ("dob", "1929-02-11")]);
                self.usr(out);
                Style::Text
            }
        }
    }

    fn audit(&mut self, out: &mut Vec<u8>) -> Style {
        let event = self.rng.pick(EVENTS);
        let pid = self.rng.below(1000);
        if self.rng.below(2) == 0 {
            out.extend_from_slice(b"{\"ts\":\"");
            self.iso_ts(out);
            write!(
                out,
                "\",\"audit\":\"true\",\"event\":\"{event}\",\"patient_id\":\"p-{pid:04}\",\"actor\":\""
            )
            .unwrap();
            self.usr(out);
            out.extend_from_slice(
                b"\",\"patient_name\":\"Beatriz Okonkwo\",\"ssn\":\"219-09-9999\"",
            );
            self.plant_canaries(&[("name", "Beatriz Okonkwo"), ("ssn", "219-09-9999")]);
            Style::Json
        } else {
            out.extend_from_slice(b"ts=");
            self.iso_ts(out);
            write!(
                out,
                " audit=true event={event} patient_id=p-{pid:04} patient_name=\"Beatriz Okonkwo\" mrn=48213377 actor="
            )
            .unwrap();
            self.plant_canaries(&[("name", "Beatriz Okonkwo"), ("mrn", "48213377")]);
            self.usr(out);
            Style::Text
        }
    }
}

/// Prints sample lines (`N`, default 1000) or, with `--canaries`, the
/// canary list, one a line.
fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if arg == "--canaries" {
        for c in CANARIES {
            writeln!(out, "{c}").unwrap();
        }
        return;
    }
    let n: u64 = arg.parse().unwrap_or(1000);
    let mut g = Gen::new(42, Mix::default());
    let mut buf = Vec::with_capacity(512);
    for seq in 0..n {
        buf.clear();
        g.line("sample", seq, 1_763_897_000_123_456_789 + seq, &mut buf);
        out.write_all(&buf).unwrap();
    }
}
