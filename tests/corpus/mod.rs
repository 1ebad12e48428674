//! A generated corpus of telehealth log lines with ground truth, for
//! measuring the redaction engine on text its authors have not seen.
//!
//! Use it from a test file with `mod corpus;`. [`generate`] is deterministic
//! (a seeded splitmix64, no crates): the same seed gives the same lines.
//! Every [`Line`] carries
//!
//! * `phi`: each PHI value that must not survive, with its category, a finer
//!   `kind`, the exact substring as it appears in the line (encoded the way the
//!   line encodes it: JSON, SQL, percent or plus encoding, upper case) and,
//!   for names and addresses, the tokens that must each be gone too;
//! * `keep`: operational tokens that must survive verbatim (record
//!   timestamps, trace and span ids, UUIDs, opaque ids, pods, hosts,
//!   versions, paths, status codes, durations, byte counts, epoch seconds,
//!   media-quality numbers, 10-digit numbers that are not phone numbers).
//!
//! [`evaluate`] runs an engine over the lines and scores them:
//!
//! * recall: a PHI value counts as redacted when its whole string is absent
//!   from the output and, for names and addresses, so is every token of three
//!   or more characters that is not a common word (street suffixes, name
//!   particles). Occurrences that the input also has outside any PHI span are
//!   allowed for.
//! * keep rate: a keep token survives when the output has at least as many
//!   occurrences of it as the input has outside PHI spans.
//! * clean-line rate: lines without PHI must come out byte-identical.
//!
//! The name lists under `tests/data/names/` are written for this corpus and
//! are independent of the engine's dictionaries.

#![allow(dead_code)]

use std::collections::BTreeMap;

use scrubs::{Category, Engine};

// ---- PRNG -------------------------------------------------------------------

/// splitmix64.
#[derive(Clone, Debug)]
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

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.index(xs.len())]
    }

    pub fn pick_w<'a, T>(&mut self, xs: &'a [(u32, T)]) -> &'a T {
        let total: u64 = xs.iter().map(|x| u64::from(x.0)).sum();
        let mut r = self.below(total);
        for (w, x) in xs {
            if r < u64::from(*w) {
                return x;
            }
            r -= u64::from(*w);
        }
        &xs[xs.len() - 1].1
    }

    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| (b'0' + self.below(10) as u8) as char)
            .collect()
    }

    pub fn chars_from(&mut self, n: usize, set: &[u8]) -> String {
        (0..n).map(|_| *self.pick(set) as char).collect()
    }

    pub fn hex(&mut self, n: usize) -> String {
        self.chars_from(n, b"0123456789abcdef")
    }

    pub fn upper(&mut self, n: usize) -> String {
        self.chars_from(n, b"ABCDEFGHJKLMNPRSTUVWXYZ")
    }

    pub fn base62(&mut self, n: usize) -> String {
        self.chars_from(
            n,
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        )
    }
}

// ---- ground truth -----------------------------------------------------------

/// One PHI value in a line.
#[derive(Clone, Debug)]
pub struct Phi {
    pub cat: Category,
    pub kind: &'static str,
    /// The exact substring in the line.
    pub value: String,
    /// For multi-token values (names, addresses): tokens that must be gone.
    pub tokens: Vec<String>,
    /// For names: the origin of the name list it came from.
    pub origin: Option<&'static str>,
    /// Byte span of `value` in the line.
    pub span: (usize, usize),
}

/// One operational token that must survive.
#[derive(Clone, Debug)]
pub struct Keep {
    pub kind: &'static str,
    pub value: String,
    pub span: (usize, usize),
}

#[derive(Clone, Debug)]
pub struct Line {
    pub text: String,
    pub format: &'static str,
    pub phi: Vec<Phi>,
    pub keep: Vec<Keep>,
}

// ---- encodings ----------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Enc {
    Raw,
    /// Inside a JSON string.
    Json,
    /// Inside a single-quoted SQL literal.
    Sql,
    /// A URL query value, spaces as `+`.
    QueryPlus,
    /// A URL query value, spaces as `%20`.
    QueryPct,
    /// Inside a Python repr string with the given quote.
    PySingle,
    /// Inside a logfmt double-quoted value.
    Logfmt,
    Upper,
    Lower,
}

fn encode(enc: Enc, s: &str) -> String {
    match enc {
        Enc::Raw => s.to_string(),
        Enc::Json | Enc::Logfmt => {
            let mut o = String::with_capacity(s.len());
            for c in s.chars() {
                match c {
                    '"' => o.push_str("\\\""),
                    '\\' => o.push_str("\\\\"),
                    '\n' => o.push_str("\\n"),
                    '\t' => o.push_str("\\t"),
                    c => o.push(c),
                }
            }
            o
        }
        Enc::Sql => s.replace('\'', "''"),
        Enc::PySingle => s.replace('\\', "\\\\").replace('\'', "\\'"),
        Enc::QueryPlus | Enc::QueryPct => {
            let mut o = String::new();
            for &b in s.as_bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    o.push(b as char);
                } else if b == b' ' {
                    o.push_str(if enc == Enc::QueryPlus { "+" } else { "%20" });
                } else {
                    o.push_str(&format!("%{b:02X}"));
                }
            }
            o
        }
        Enc::Upper => s.to_uppercase(),
        Enc::Lower => s.to_lowercase(),
    }
}

fn encode_all(encs: &[Enc], s: &str) -> String {
    let mut cur = s.to_string();
    for &e in encs {
        cur = encode(e, &cur);
    }
    cur
}

/// Common words that do not identify anyone on their own: street suffixes,
/// directions, unit words, name particles.
#[rustfmt::skip]
const COMMON: &[&str] = &[
    "street", "st", "avenue", "ave", "road", "rd", "boulevard", "blvd", "lane", "ln", "drive", "dr",
    "court", "ct", "way", "place", "pl", "terrace", "ter", "parkway", "pkwy", "circle", "cir",
    "highway", "hwy", "square", "sq", "trail", "trl", "north", "south", "east", "west", "apt",
    "apartment", "suite", "ste", "unit", "box", "po", "floor", "usa", "rue", "calle", "avenida",
    "av", "col", "flat", "road", "county", "route", "von", "van", "der", "den", "del", "de", "la",
    "las", "los", "da", "dos", "das", "bin", "al", "el", "thị", "văn", "thi", "mrs", "md", "jr",
    "sr", "iii", "the", "and", "phố", "pho", "straße", "strasse", "str", "platz", "weg",
];

fn is_common(tok: &str) -> bool {
    let l = tok.to_lowercase();
    COMMON.contains(&l.as_str())
}

/// Tokens of a multi-token value worth checking one by one.
fn tokens_of(raw: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in raw.split(|c: char| !c.is_alphanumeric()) {
        if t.chars().count() >= 3 && !is_common(t) && !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    out
}

// ---- line builder ---------------------------------------------------------------

/// A PHI value before it is written into a line.
#[derive(Clone, Debug)]
pub struct Val {
    pub cat: Category,
    pub kind: &'static str,
    /// The PHI text.
    pub raw: String,
    /// Non-PHI decoration written before and after (`Dr. `, ` MD`).
    pub pre: String,
    pub post: String,
    /// Check tokens one by one (names, addresses).
    pub multi: bool,
    pub origin: Option<&'static str>,
    /// Digits only: may be written as a JSON or SQL number.
    pub num: bool,
    /// Written without quotes in JSON and Python (an array).
    pub bare: bool,
    /// For dates: year, month, day.
    pub ymd: Option<(u32, u32, u32)>,
}

impl Val {
    fn new(cat: Category, kind: &'static str, raw: impl Into<String>) -> Val {
        let raw = raw.into();
        let num =
            !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) && !raw.starts_with('0');
        Val {
            cat,
            kind,
            raw,
            pre: String::new(),
            post: String::new(),
            multi: false,
            origin: None,
            num,
            bare: false,
            ymd: None,
        }
    }

    fn multi(mut self) -> Val {
        self.multi = true;
        self
    }

    fn origin(mut self, o: &'static str) -> Val {
        self.origin = Some(o);
        self
    }

    fn pre(mut self, p: impl Into<String>) -> Val {
        self.pre = p.into();
        self.num = false;
        self
    }

    fn post(mut self, p: impl Into<String>) -> Val {
        self.post = p.into();
        self.num = false;
        self
    }
}

#[derive(Default)]
struct B {
    s: String,
    phi: Vec<Phi>,
    keep: Vec<Keep>,
    /// The encoding of the surrounding container (JSON string, logfmt...).
    outer: Vec<Enc>,
}

impl B {
    fn encs(&self, inner: &[Enc]) -> Vec<Enc> {
        let mut v = inner.to_vec();
        v.extend(self.outer.iter().rev().copied());
        v
    }

    /// Structural text, written as is.
    fn raw(&mut self, x: &str) {
        self.s.push_str(x);
    }

    /// Plain text inside the current container.
    fn t(&mut self, x: &str) {
        let e = self.encs(&[]);
        let x = encode_all(&e, x);
        self.s.push_str(&x);
    }

    fn val(&mut self, v: &Val, inner: &[Enc]) {
        let e = self.encs(inner);
        let pre = encode_all(&e, &v.pre);
        self.s.push_str(&pre);
        let shown = encode_all(&e, &v.raw);
        let start = self.s.len();
        self.s.push_str(&shown);
        let end = self.s.len();
        let tokens = if v.multi {
            tokens_of(&v.raw)
                .iter()
                .map(|t| encode_all(&e, t))
                .filter(|t| shown.contains(t.as_str()))
                .collect()
        } else {
            Vec::new()
        };
        self.phi.push(Phi {
            cat: v.cat,
            kind: v.kind,
            value: shown,
            tokens,
            origin: v.origin,
            span: (start, end),
        });
        let post = encode_all(&e, &v.post);
        self.s.push_str(&post);
    }

    fn keep(&mut self, kind: &'static str, x: &str) {
        let e = self.encs(&[]);
        let x = encode_all(&e, x);
        let start = self.s.len();
        self.s.push_str(&x);
        self.keep.push(Keep {
            kind,
            value: x,
            span: (start, self.s.len()),
        });
    }

    fn finish(self, format: &'static str) -> Line {
        Line {
            text: self.s,
            format,
            phi: self.phi,
            keep: self.keep,
        }
    }
}

// ---- names ----------------------------------------------------------------------

const NAME_FILES: &[(&str, &str)] = &[
    ("english", include_str!("../data/names/english.txt")),
    ("spanish", include_str!("../data/names/spanish.txt")),
    ("vietnamese", include_str!("../data/names/vietnamese.txt")),
    ("south_asian", include_str!("../data/names/south_asian.txt")),
    ("french", include_str!("../data/names/french.txt")),
    ("german", include_str!("../data/names/german.txt")),
    (
        "west_african",
        include_str!("../data/names/west_african.txt"),
    ),
    ("east_asian", include_str!("../data/names/east_asian.txt")),
    ("arabic", include_str!("../data/names/arabic.txt")),
];

/// How often each origin is drawn.
const ORIGIN_WEIGHTS: &[(u32, &str)] = &[
    (16, "english"),
    (16, "spanish"),
    (12, "vietnamese"),
    (12, "south_asian"),
    (10, "french"),
    (10, "german"),
    (10, "west_african"),
    (7, "east_asian"),
    (7, "arabic"),
];

#[derive(Debug)]
pub struct NameList {
    pub origin: &'static str,
    pub first: Vec<&'static str>,
    pub last: Vec<&'static str>,
    pub middle: Vec<&'static str>,
}

pub fn name_lists() -> Vec<NameList> {
    NAME_FILES
        .iter()
        .map(|(origin, text)| {
            let mut l = NameList {
                origin,
                first: Vec::new(),
                last: Vec::new(),
                middle: Vec::new(),
            };
            let mut section = "";
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                if line.starts_with('[') {
                    section = line.trim_matches(|c| c == '[' || c == ']');
                    continue;
                }
                match section {
                    "first" | "given" => l.first.push(line),
                    "last" | "family" => l.last.push(line),
                    "middle" => l.middle.push(line),
                    s => panic!("{origin}: unknown section {s}"),
                }
            }
            assert!(
                !l.first.is_empty() && !l.last.is_empty(),
                "{origin}: empty list"
            );
            l
        })
        .collect()
}

#[derive(Clone, Debug)]
pub struct Person {
    pub origin: &'static str,
    pub first: String,
    pub middle: Option<String>,
    pub last: String,
}

impl Person {
    fn vietnamese(&self) -> bool {
        self.origin == "vietnamese"
    }

    /// The name in its natural order.
    fn natural(&self) -> String {
        if self.vietnamese() {
            match &self.middle {
                Some(m) => format!("{} {} {}", self.last, m, self.first),
                None => format!("{} {}", self.last, self.first),
            }
        } else {
            format!("{} {}", self.first, self.last)
        }
    }

    /// `Last, First` (for Vietnamese, the middle names go with the given name).
    fn last_first(&self) -> String {
        match (&self.middle, self.vietnamese()) {
            (Some(m), true) => format!("{}, {} {}", self.last, m, self.first),
            _ => format!("{}, {}", self.last, self.first),
        }
    }
}

/// Folds accents away, the way many US systems store names.
pub fn strip_accents(s: &str) -> String {
    const FOLD: &[(&str, &str)] = &[
        ("àáâãäåāăąạảấầẩẫậắằẳẵặ", "a"),
        ("ÀÁÂÃÄÅĀĂĄẠẢẤẦẨẪẬẮẰẲẴẶ", "A"),
        ("çćč", "c"),
        ("ÇĆČ", "C"),
        ("đ", "d"),
        ("Đ", "D"),
        ("èéêëēėęẹẻẽếềểễệ", "e"),
        ("ÈÉÊËĒĖĘẸẺẼẾỀỂỄỆ", "E"),
        ("ìíîïīịỉĩ", "i"),
        ("ÌÍÎÏĪỊỈĨ", "I"),
        ("ñ", "n"),
        ("Ñ", "N"),
        ("òóôõöøōọỏốồổỗộơớờởỡợ", "o"),
        ("ÒÓÔÕÖØŌỌỎỐỒỔỖỘƠỚỜỞỠỢ", "O"),
        ("ùúûüūụủũưứừửữự", "u"),
        ("ÙÚÛÜŪỤỦŨƯỨỪỬỮỰ", "U"),
        ("ýÿỳỵỷỹ", "y"),
        ("ÝŸỲỴỶỸ", "Y"),
        ("ß", "ss"),
    ];
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match FOLD.iter().find(|(set, _)| set.contains(c)) {
            Some((_, base)) => o.push_str(base),
            None => o.push(c),
        }
    }
    o
}

fn ascii_slug(s: &str) -> String {
    strip_accents(s)
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

// ---- static data ------------------------------------------------------------------

#[rustfmt::skip]
const STREETS: &[&str] = &[
    "Maple", "Oak", "Elm", "Cedar", "Pine", "Washington", "Lincoln", "Jefferson",
    "Martin Luther King Jr", "El Camino Real", "Peachtree", "Sunset", "Mission", "Valencia",
    "César Chávez", "Bellaire", "Westheimer", "Camino del Sol", "Los Feliz", "Ponce de León",
    "Bissonnet", "Harbor View", "Whispering Pines", "Old Mill", "Hillcrest", "Riverside",
    "Lakeview", "Kingsley", "Briarwood", "Magnolia", "Dogwood", "Sycamore", "Willow Creek",
    "Fox Hollow", "Quail Run", "Cypress Point", "Bolsa", "Brookhurst", "Telegraph", "Euclid",
    "Ashford Dunwoody", "Buford", "Jonesboro", "Ridgewood", "Prospect", "Atlantic",
];

const SUFFIXES: &[(u32, &str)] = &[
    (12, "St"),
    (6, "Street"),
    (10, "Ave"),
    (4, "Avenue"),
    (6, "Rd"),
    (3, "Road"),
    (5, "Blvd"),
    (6, "Dr"),
    (2, "Drive"),
    (5, "Ln"),
    (3, "Ct"),
    (4, "Way"),
    (2, "Pl"),
    (2, "Ter"),
    (2, "Pkwy"),
    (2, "Cir"),
    (1, "Hwy"),
    (1, "Trl"),
];

const CITIES: &[(&str, &str)] = &[
    ("Springfield", "IL"),
    ("Houston", "TX"),
    ("San José", "CA"),
    ("Hialeah", "FL"),
    ("Garden Grove", "CA"),
    ("Westminster", "CA"),
    ("Edison", "NJ"),
    ("Fremont", "CA"),
    ("Dearborn", "MI"),
    ("Lowell", "MA"),
    ("Sugar Land", "TX"),
    ("Kissimmee", "FL"),
    ("Elizabeth", "NJ"),
    ("Yonkers", "NY"),
    ("Paterson", "NJ"),
    ("Santa Ana", "CA"),
    ("Brownsville", "TX"),
    ("Laredo", "TX"),
    ("Bellevue", "WA"),
    ("Plano", "TX"),
    ("Naperville", "IL"),
    ("Cary", "NC"),
    ("Irvine", "CA"),
    ("Decatur", "GA"),
    ("Tukwila", "WA"),
    ("Lewiston", "ME"),
    ("St. Paul", "MN"),
    ("Coeur d'Alene", "ID"),
    ("Española", "NM"),
    ("Cañon City", "CO"),
    ("Walla Walla", "WA"),
    ("Worcester", "MA"),
    ("Hamtramck", "MI"),
    ("Flushing", "NY"),
    ("Doraville", "GA"),
    ("Sacramento", "CA"),
];

#[rustfmt::skip]
const ICD10: &[&str] = &[
    "E11.9", "E11.65", "I10", "F32.A", "F32.1", "F33.1", "F41.1", "F41.9", "F43.10", "F90.0",
    "J45.909", "J44.9", "N18.3", "K21.9", "M54.5", "G43.909", "Z79.4", "Z34.90", "O09.521",
    "C50.911", "B20", "F11.20", "F10.20", "F17.210", "E66.9", "I25.10", "R07.9", "S72.001A",
    "T40.2X1A", "R45.851", "F20.9", "F31.9", "U07.1", "A41.9", "Z21", "F50.01", "O24.419",
    "K50.90", "G35", "A53.9",
];

const DX_TERMS: &[&str] = &[
    "type 2 diabetes mellitus",
    "major depressive disorder",
    "generalized anxiety disorder",
    "essential hypertension",
    "HIV infection",
    "opioid use disorder",
    "bipolar I disorder",
    "schizophrenia",
    "chronic kidney disease stage 3",
    "asthma",
    "COPD",
    "breast cancer",
    "hepatitis C",
    "PTSD",
    "suicidal ideation",
    "alcohol use disorder",
    "ADHD",
    "anorexia nervosa",
    "gestational diabetes",
    "migraine with aura",
    "atrial fibrillation",
    "congestive heart failure",
    "Crohn's disease",
    "multiple sclerosis",
    "postpartum depression",
    "panic disorder",
    "syphilis",
    "chlamydia",
    "erectile dysfunction",
    "endometriosis",
];

const MEDS: &[&str] = &[
    "sertraline 50 mg",
    "metformin 500 mg BID",
    "buprenorphine-naloxone 8-2 mg",
    "lisinopril 10mg",
    "Ozempic 0.5 mg weekly",
    "escitalopram 10 mg",
    "emtricitabine-tenofovir (Truvada)",
    "naltrexone 50 mg",
    "insulin glargine 20 units qHS",
    "methadone 60 mg",
    "Adderall XR 20mg",
    "quetiapine 100 mg",
    "lithium carbonate 300 mg",
    "medroxyprogesterone 150 mg IM",
    "Paxlovid",
];

const CHATS: &[&str] = &[
    "hi doctor, my chest has been hurting since last night and my left arm feels numb",
    "i ran out of my sertraline 3 days ago can you refill it please",
    "is it normal to still be bleeding 2 weeks after the procedure?",
    "my son has a fever of 103 and a rash on his back",
    "I think I'm having a panic attack again, can someone call me",
    "can you send a note to my employer, I was out Monday with the flu",
    "The new medication makes me dizzy when I stand up",
    "my blood sugar was 287 this morning even after insulin",
    "I haven't been sleeping and I keep thinking about hurting myself",
    "camera not working, can you call me instead? same number as on file",
    "my wife is pregnant and spotting, should we go to the ER",
    "the rash spread to my arms, it itches a lot",
    "I missed two doses of my PrEP last week, is that bad?",
    "could you check my last HIV test result",
    "pain is 8/10 today, the oxycodone isn't helping",
    "Hola doctora, tengo mucho dolor de cabeza desde ayer",
    "Tôi bị đau bụng và sốt từ tối qua",
    "I'm 9 weeks pregnant and have been vomiting all day",
];

const NOTES: &[&str] = &[
    "Pt presents w/ 3d hx of productive cough, afebrile. Plan: azithromycin, f/u 1wk",
    "S: 34yo F c/o anxiety, poor sleep. A: GAD, stable. P: cont escitalopram 10mg",
    "Reviewed A1c 8.2, increase metformin to 1000 mg BID, recheck in 3 mo",
    "Discussed PrEP adherence; HIV test negative, creatinine normal",
    "Safety plan reviewed; denies SI/HI today, follow up with therapist Thursday",
    "BP 162/98 on lisinopril, add amlodipine 5 mg, home BP log requested",
    "Postpartum visit: EPDS 16, started sertraline, referral to perinatal psych",
    "Wound healing well, sutures removed, no signs of infection",
    "Urine tox positive for fentanyl; counseled on naloxone, continue bup 16 mg",
    "Pt tearful discussing divorce, PHQ-9 of 19, discussed IOP",
];

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "Waiting Room", "Kafka", "Patient Portal", "Chrome Mobile", "Safari", "Twilio", "Epic",
    "Cerner", "Surescripts", "Stripe", "Redis", "Postgres", "Jitter Buffer", "Virtual Care",
    "Care Team", "Front Desk", "Grant Access", "Amazon Connect", "Microsoft Teams", "Apple Health",
    "Bluetooth", "Dexcom", "Medtronic", "Omnipod", "Availity", "Change Healthcare",
];

const FACILITIES: &[&str] = &[
    "Mayo Clinic",
    "Johns Hopkins",
    "Cedars-Sinai",
    "Kaiser Permanente",
    "Mass General Brigham",
    "Mount Sinai",
    "Cleveland Clinic",
    "Sutter Health",
    "Memorial Hermann",
    "Ochsner Health",
];

#[rustfmt::skip]
const SERVICES: &[&str] = &[
    "visit-svc", "waiting-room", "media-gateway", "ehr-bridge", "rx-router", "billing-api",
    "scheduler", "chat-svc", "notify-worker", "intake-api", "eligibility-svc", "identity-svc",
    "fax-gateway", "device-hub", "transport-svc", "lab-svc",
];

const OPS_PATHS: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/v1/visits/{visit}/join",
    "/api/v2/rooms/{room}/participants",
    "/api/v1/patients/{pat}/visits",
    "/api/patients/{uuid}/visits",
    "/api/v1/appointments/{appt_id}/reschedule",
    "/static/js/app.{hex8}.js",
    "/fhir/R4/Observation?patient=Patient/{pat}&_count=50",
    "/api/v1/chat/{room}/messages?limit=50",
    "/api/v1/users/{usr}/preferences",
    "/v1/webhooks/twilio/status",
    "/api/v1/claims?page=3&per_page=100",
];

// ---- the generator ------------------------------------------------------------------

/// Record timestamp of one line: 2024-05-01 .. 2024-06-28. PHI dates are
/// drawn from other ranges, so the two never collide.
#[derive(Clone, Copy, Debug)]
struct Ts {
    mon: u32,
    day: u32,
    h: u32,
    m: u32,
    s: u32,
    ms: u32,
}

impl Ts {
    fn epoch(&self) -> u64 {
        let days = if self.mon == 6 { 31 } else { 0 } + u64::from(self.day) - 1;
        1_714_521_600 + days * 86_400 + u64::from(self.h * 3600 + self.m * 60 + self.s)
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

pub struct Gen {
    rng: Rng,
    lists: Vec<NameList>,
    person: Person,
    rel: Person,
    doc: Person,
    ts: Ts,
}

impl Gen {
    pub fn new(seed: u64) -> Gen {
        let mut rng = Rng::new(seed);
        let lists = name_lists();
        let p = Person {
            origin: "english",
            first: String::new(),
            middle: None,
            last: String::new(),
        };
        let ts = Ts {
            mon: 5,
            day: 1,
            h: 0,
            m: 0,
            s: 0,
            ms: 0,
        };
        let _ = rng.next_u64();
        Gen {
            rng,
            lists,
            person: p.clone(),
            rel: p.clone(),
            doc: p,
            ts,
        }
    }

    fn new_person(&mut self) -> Person {
        let origin = *self.rng.pick_w(ORIGIN_WEIGHTS);
        let l = self
            .lists
            .iter()
            .find(|l| l.origin == origin)
            .expect("origin");
        let first = self.rng.pick(&l.first).to_string();
        let mut last = self.rng.pick(&l.last).to_string();
        let middle = if origin == "vietnamese" {
            let m1 = self.rng.pick(&l.middle).to_string();
            if self.rng.chance(0.3) {
                let m2 = self.rng.pick(&l.middle).to_string();
                if m2 != m1 {
                    Some(format!("{m1} {m2}"))
                } else {
                    Some(m1)
                }
            } else {
                Some(m1)
            }
        } else {
            None
        };
        if origin == "spanish" && self.rng.chance(0.35) {
            let second = self.rng.pick(&l.last).to_string();
            if second != last {
                last = format!("{last} {second}");
            }
        }
        Person {
            origin,
            first,
            middle,
            last,
        }
    }

    fn start_line(&mut self) {
        self.person = self.new_person();
        self.rel = self.new_person();
        self.doc = self.new_person();
        self.ts = Ts {
            mon: self.rng.range(5, 6) as u32,
            day: self.rng.range(1, 28) as u32,
            h: self.rng.range(0, 23) as u32,
            m: self.rng.range(0, 59) as u32,
            s: self.rng.range(0, 59) as u32,
            ms: self.rng.range(0, 999) as u32,
        };
    }

    // -- names --

    fn name_form(&mut self, p: &Person) -> String {
        let r = self.rng.below(100);
        let natural = p.natural();
        match r {
            0..=54 => natural,
            55..=66 => p.last_first(),
            67..=75 => {
                if self.rng.chance(0.5) {
                    natural.to_uppercase()
                } else {
                    p.last_first().to_uppercase()
                }
            }
            76..=84 => strip_accents(&natural),
            85..=91 if !p.vietnamese() => {
                let initial = self.rng.upper(1);
                format!("{} {}. {}", p.first, initial, p.last)
            }
            _ if p.vietnamese() => format!("{} {}", p.first, p.last),
            _ => natural,
        }
    }

    fn name_val(&mut self, which: u8, kind: &'static str) -> Val {
        let p = match which {
            0 => self.person.clone(),
            1 => self.rel.clone(),
            _ => self.doc.clone(),
        };
        let raw = self.name_form(&p);
        Val::new(Category::Name, kind, raw).multi().origin(p.origin)
    }

    fn first_val(&mut self) -> Val {
        let p = self.person.clone();
        Val::new(Category::Name, "name.first", p.first.clone())
            .multi()
            .origin(p.origin)
    }

    fn last_val(&mut self) -> Val {
        let p = self.person.clone();
        Val::new(Category::Name, "name.last", p.last.clone())
            .multi()
            .origin(p.origin)
    }

    fn doclast_val(&mut self) -> Val {
        let p = self.doc.clone();
        Val::new(Category::Name, "name.provider", p.last.clone())
            .multi()
            .origin(p.origin)
    }

    // -- dates --

    fn ymd(&mut self, y0: u32, y1: u32) -> (u32, u32, u32) {
        (
            self.rng.range(u64::from(y0), u64::from(y1)) as u32,
            self.rng.range(1, 12) as u32,
            self.rng.range(1, 28) as u32,
        )
    }

    fn fmt_date(&mut self, (y, m, d): (u32, u32, u32), style: u32) -> String {
        let mon = MONTHS[(m - 1) as usize];
        match style {
            0 => format!("{m:02}/{d:02}/{y}"),
            1 => format!("{m}/{d}/{y}"),
            2 => format!("{y}-{m:02}-{d:02}"),
            3 => format!("{d:02}.{m:02}.{y}"),
            4 => format!("{mon} {d}, {y}"),
            5 => format!("{d} {} {y}", &mon[..3]),
            6 => format!("{} {d} {y}", &mon[..3]),
            7 => format!("{m:02}-{d:02}-{y}"),
            8 => format!("{y}{m:02}{d:02}"),
            9 => format!("{m}/{d}/{:02}", y % 100),
            _ => format!("{d:02}/{m:02}/{y}"),
        }
    }

    /// A date value in a random style (`text`: styles usual in free text).
    fn date_val(&mut self, kind: &'static str, text: bool) -> Val {
        let ymd = match kind {
            "dob" => self.ymd(1932, 2021),
            "admit" | "discharge" | "death" => {
                let y = self.rng.range(2023, 2024) as u32;
                let m = if y == 2024 {
                    self.rng.range(1, 4)
                } else {
                    self.rng.range(1, 12)
                } as u32;
                (y, m, self.rng.range(1, 28) as u32)
            }
            _ => (
                2024,
                self.rng.range(7, 9) as u32,
                self.rng.range(1, 28) as u32,
            ),
        };
        let style = if text {
            *self.rng.pick_w(&[
                (30, 0),
                (8, 1),
                (14, 2),
                (4, 3),
                (14, 4),
                (6, 5),
                (4, 6),
                (4, 7),
                (6, 9),
                (4, 10),
            ])
        } else {
            *self
                .rng
                .pick_w(&[(50, 2), (25, 0), (5, 3), (5, 7), (8, 8), (4, 4), (3, 10)])
        };
        let raw = self.fmt_date(ymd, style);
        let mut v = Val::new(Category::Date, kind, raw);
        v.num = false;
        v.ymd = Some(ymd);
        v
    }

    fn date_iso(&mut self, kind: &'static str) -> Val {
        let mut v = self.date_val(kind, false);
        let ymd = v.ymd.expect("date");
        v.raw = self.fmt_date(ymd, 2);
        v
    }

    // -- numbers and identifiers --

    fn nanp(&mut self) -> (String, String, String) {
        let area = loop {
            let a = self.rng.range(201, 989);
            // Not an N11 service code, not an N9X expansion code.
            if a % 100 != 11 && (a / 10) % 10 != 9 {
                break a;
            }
        };
        let exch = loop {
            let e = self.rng.range(200, 999);
            if e % 100 != 11 {
                break e;
            }
        };
        (area.to_string(), exch.to_string(), self.rng.digits(4))
    }

    fn phone_str(&mut self) -> String {
        let (a, e, l) = self.nanp();
        match self.rng.below(12) {
            0..=2 => format!("({a}) {e}-{l}"),
            3..=5 => format!("{a}-{e}-{l}"),
            6 => format!("{a}.{e}.{l}"),
            7 => format!("+1 {a} {e} {l}"),
            8 => format!("+1{a}{e}{l}"),
            9 => format!("{a}{e}{l}"),
            10 => format!("1-{a}-{e}-{l}"),
            _ => format!("{a} {e} {l}"),
        }
    }

    fn intl_phone(&mut self) -> String {
        match self.rng.below(8) {
            0 => format!("+44 20 {} {}", self.rng.digits(4), self.rng.digits(4)),
            1 => format!("+44 7700 {}", self.rng.digits(6)),
            2 => format!("+52 55 {} {}", self.rng.digits(4), self.rng.digits(4)),
            3 => format!("+91 9{} {}", self.rng.digits(4), self.rng.digits(5)),
            4 => format!("+84 90 {} {}", self.rng.digits(3), self.rng.digits(4)),
            5 => format!(
                "+33 6 {} {} {} {}",
                self.rng.digits(2),
                self.rng.digits(2),
                self.rng.digits(2),
                self.rng.digits(2)
            ),
            6 => format!("+49 30 {}", self.rng.digits(8)),
            _ => format!("+234 803 {} {}", self.rng.digits(3), self.rng.digits(4)),
        }
    }

    fn ssn_str(&mut self) -> String {
        let area = loop {
            let a = self.rng.range(1, 899);
            if a != 666 {
                break a;
            }
        };
        let group = self.rng.range(1, 99);
        let serial = self.rng.range(1, 9999);
        match self.rng.below(20) {
            0..=11 => format!("{area:03}-{group:02}-{serial:04}"),
            12..=16 => format!("{area:03}{group:02}{serial:04}"),
            _ => format!("{area:03} {group:02} {serial:04}"),
        }
    }

    fn luhn_complete(&mut self, prefix: &str, len: usize) -> String {
        let mut d: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
        while d.len() < len - 1 {
            d.push(self.rng.below(10) as u8);
        }
        d.push(0);
        let check = luhn_check_digit(&d[..len - 1]);
        d[len - 1] = check;
        d.iter().map(|x| (b'0' + x) as char).collect()
    }

    fn card_str(&mut self) -> String {
        let (num, amex) = match self.rng.below(10) {
            0..=3 => (self.luhn_complete("4", 16), false),
            4..=5 => {
                let p = self.rng.range(51, 55).to_string();
                (self.luhn_complete(&p, 16), false)
            }
            6 => {
                let p = self.rng.range(2221, 2720).to_string();
                (self.luhn_complete(&p, 16), false)
            }
            7..=8 => {
                let p = if self.rng.chance(0.5) { "34" } else { "37" };
                (self.luhn_complete(p, 15), true)
            }
            _ => (self.luhn_complete("6011", 16), false),
        };
        let sep = *self.rng.pick(&["", " ", "-", " "]);
        if sep.is_empty() {
            return num;
        }
        if amex {
            format!("{}{sep}{}{sep}{}", &num[..4], &num[4..10], &num[10..])
        } else {
            format!(
                "{}{sep}{}{sep}{}{sep}{}",
                &num[..4],
                &num[4..8],
                &num[8..12],
                &num[12..]
            )
        }
    }

    fn routing_str(&mut self) -> String {
        loop {
            let first2 = *self
                .rng
                .pick(&[1u64, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 21, 22, 26, 31, 32]);
            let mut d: Vec<u32> = format!("{first2:02}")
                .bytes()
                .map(|b| u32::from(b - b'0'))
                .collect();
            for _ in 0..6 {
                d.push(self.rng.below(10) as u32);
            }
            let w = [3, 7, 1, 3, 7, 1, 3, 7];
            let s: u32 = d.iter().zip(w).map(|(a, b)| a * b).sum();
            // 1 * check must make the total a multiple of 10.
            let check = (10 - s % 10) % 10;
            d.push(check);
            let out: String = d.iter().map(|x| char::from(b'0' + *x as u8)).collect();
            if out != "000000000" {
                return out;
            }
        }
    }

    fn dea_str(&mut self) -> String {
        let first = *self.rng.pick(&['A', 'B', 'F', 'G', 'M', 'P', 'R']);
        let second = self
            .doc
            .last
            .chars()
            .next()
            .map(|c| strip_accents(&c.to_string()));
        let second = second
            .filter(|s| s.len() == 1 && s.as_bytes()[0].is_ascii_alphabetic())
            .unwrap_or_else(|| "K".into())
            .to_uppercase();
        let d: Vec<u32> = (0..6).map(|_| self.rng.below(10) as u32).collect();
        let check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10;
        let digits: String = d.iter().map(|x| char::from(b'0' + *x as u8)).collect();
        format!("{first}{second}{digits}{check}")
    }

    fn npi_str(&mut self) -> String {
        let mut d: Vec<u8> = vec![if self.rng.chance(0.8) { 1 } else { 2 }];
        for _ in 0..8 {
            d.push(self.rng.below(10) as u8);
        }
        let mut full = vec![8, 0, 8, 4, 0];
        full.extend_from_slice(&d);
        d.push(luhn_check_digit(&full));
        d.iter().map(|x| (b'0' + x) as char).collect()
    }

    fn mbi_str(&mut self) -> String {
        const ALPHA: &[u8] = b"ACDEFGHJKMNPQRTUVWXY";
        const AN: &[u8] = b"ACDEFGHJKMNPQRTUVWXY0123456789";
        let r = &mut self.rng;
        let s = format!(
            "{}{}{}{}{}{}{}{}{}{}{}",
            r.range(1, 9),
            r.chars_from(1, ALPHA),
            r.chars_from(1, AN),
            r.digits(1),
            r.chars_from(1, ALPHA),
            r.chars_from(1, AN),
            r.digits(1),
            r.chars_from(1, ALPHA),
            r.chars_from(1, ALPHA),
            r.digits(1),
            r.digits(1)
        );
        if self.rng.chance(0.4) {
            format!("{}-{}-{}", &s[..4], &s[4..7], &s[7..])
        } else {
            s
        }
    }

    fn vin_str(&mut self) -> String {
        const SET: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789";
        let wmi = *self.rng.pick(&[
            "1HG", "JTD", "WVW", "5YJ", "1FT", "3VW", "2T1", "KMH", "1C4", "WBA",
        ]);
        loop {
            let mut v: Vec<u8> = wmi.bytes().collect();
            v.extend(self.rng.chars_from(5, SET).bytes());
            v.push(b'0');
            v.extend(
                self.rng
                    .chars_from(1, b"ABCDEFGHJKLMNPRSTVWXY123456789")
                    .bytes(),
            );
            v.extend(self.rng.chars_from(1, SET).bytes());
            v.extend(self.rng.digits(6).bytes());
            v[8] = vin_check(&v);
            let letters = v.iter().filter(|b| b.is_ascii_alphabetic()).count();
            if letters >= 2 {
                return String::from_utf8(v).expect("ascii");
            }
        }
    }

    fn imei_str(&mut self) -> String {
        let tac = *self.rng.pick(&["35", "86", "49", "01", "99"]);
        self.luhn_complete(tac, 15)
    }

    fn public_ipv4(&mut self) -> String {
        loop {
            let a = self.rng.range(1, 223) as u8;
            let b = self.rng.range(0, 255) as u8;
            let c = self.rng.range(0, 255) as u8;
            let d = self.rng.range(1, 254) as u8;
            let private = a == 10
                || a == 127
                || a == 0
                || (a == 100 && (64..=127).contains(&b))
                || (a == 169 && b == 254)
                || (a == 172 && (16..=31).contains(&b))
                || (a == 192 && b == 168)
                || (a == 192 && b == 0)
                || (a == 198 && (b == 18 || b == 19 || (b == 51 && c == 100)))
                || (a == 203 && b == 0 && c == 113);
            if !private {
                return format!("{a}.{b}.{c}.{d}");
            }
        }
    }

    fn ipv6(&mut self) -> String {
        let p = *self.rng.pick(&[
            "2a02:c7f",
            "2600:1700",
            "2607:fb90",
            "2001:4860",
            "2a01:e0a",
            "2405:201",
        ]);
        let groups: Vec<String> = (0..6)
            .map(|_| format!("{:x}", self.rng.range(1, 0xffff)))
            .collect();
        match self.rng.below(3) {
            0 => format!("{p}:{}:{}::{}", groups[0], groups[1], groups[2]),
            1 => format!("{p}:{}::{}:{}", groups[0], groups[1], groups[2]),
            _ => format!("{p}:{}", groups.join(":")),
        }
    }

    fn mrn_str(&mut self) -> String {
        match self.rng.below(9) {
            0..=2 => format!("00{}", self.rng.digits(6)),
            3 => self.rng.range(1_000_000, 99_999_999).to_string(),
            4 => format!("E{}", self.rng.digits(7)),
            5 => format!("MR-{}", self.rng.digits(7)),
            6 => format!("MRN{}", self.rng.digits(8)),
            7 => format!(
                "{}-{}-{}",
                self.rng.digits(3),
                self.rng.digits(3),
                self.rng.digits(3)
            ),
            _ => format!("A{}", self.rng.digits(8)),
        }
    }

    fn member_str(&mut self) -> String {
        match self.rng.below(6) {
            0 => format!("{}{}", self.rng.upper(3), self.rng.digits(9)),
            1 => format!("W{}", self.rng.digits(9)),
            2 => format!("{}{}", self.rng.upper(3), self.rng.digits(7)),
            3 => format!("MEM{}", self.rng.digits(8)),
            4 => self.rng.range(100_000_000, 999_999_999).to_string(),
            _ => format!("{} {}", self.rng.digits(9), self.rng.digits(2)),
        }
    }

    fn medicaid_str(&mut self) -> String {
        match self.rng.below(3) {
            0 => format!(
                "{}{}{}",
                self.rng.upper(2),
                self.rng.digits(5),
                self.rng.upper(1)
            ),
            1 => format!("9{}{}", self.rng.digits(7), self.rng.upper(1)),
            _ => self.rng.range(100_000_000, 999_999_999).to_string(),
        }
    }

    fn dl_str(&mut self) -> String {
        match self.rng.below(6) {
            0 | 1 => format!("{}{}", self.rng.upper(1), self.rng.digits(7)),
            2 => format!(
                "{} {} {}",
                self.rng.digits(3),
                self.rng.digits(3),
                self.rng.digits(3)
            ),
            3 => self.rng.range(10_000_000, 99_999_999).to_string(),
            4 => format!(
                "{}{}-{}-{}-{}",
                self.rng.upper(1),
                self.rng.digits(3),
                self.rng.digits(4),
                self.rng.digits(4),
                self.rng.digits(1)
            ),
            _ => format!("WDL{}{}", self.rng.upper(4), self.rng.digits(5)),
        }
    }

    fn serial_str(&mut self) -> String {
        match self.rng.below(6) {
            0 => format!("{}{}", self.rng.upper(3), self.rng.digits(7)),
            1 => format!(
                "{}{}{}",
                self.rng.upper(2),
                self.rng.digits(7),
                self.rng.upper(1)
            ),
            2 => self
                .rng
                .chars_from(10, b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789"),
            3 => format!("HA-{}-{}", self.rng.digits(4), self.rng.digits(5)),
            4 => format!(
                "C02{}",
                self.rng
                    .chars_from(9, b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789")
            ),
            _ => format!("SN{}", self.rng.digits(10)),
        }
    }

    fn mac_str(&mut self) -> String {
        let parts: Vec<String> = (0..6)
            .map(|_| format!("{:02X}", self.rng.below(256)))
            .collect();
        match self.rng.below(3) {
            0 => parts.join(":"),
            1 => parts.join(":").to_lowercase(),
            _ => parts.join("-"),
        }
    }

    fn plate_str(&mut self) -> String {
        match self.rng.below(4) {
            0 => format!(
                "{}{}{}",
                self.rng.range(1, 9),
                self.rng.upper(3),
                self.rng.digits(3)
            ),
            1 => format!("{}-{}", self.rng.upper(3), self.rng.digits(4)),
            2 => format!("{} {}", self.rng.upper(3), self.rng.digits(3)),
            _ => format!(
                "{}{}{}",
                self.rng.digits(3),
                self.rng.upper(3),
                self.rng.digits(1)
            ),
        }
    }

    fn address_val(&mut self) -> Val {
        let num = self.rng.range(1, 19999).to_string();
        let street = *self.rng.pick(STREETS);
        let suffix = *self.rng.pick_w(SUFFIXES);
        let (city, st) = *self.rng.pick(CITIES);
        let zip = format!("{:05}", self.rng.range(1001, 99950));
        let unit = match self.rng.below(6) {
            0 => format!(", Apt {}{}", self.rng.range(1, 30), self.rng.upper(1)),
            1 => format!(" #{}", self.rng.range(100, 2400)),
            2 => format!(", Unit {}", self.rng.range(1, 40)),
            _ => String::new(),
        };
        let dir = match self.rng.below(8) {
            0 => " NW",
            1 => " SE",
            _ => "",
        };
        let raw = match self.rng.below(20) {
            0..=8 => format!("{num} {street} {suffix}{dir}{unit}, {city}, {st} {zip}"),
            9..=11 => format!("{num} {street} {suffix}{unit}"),
            12 => format!("{num} {street} {suffix} {city} {st} {zip}").to_uppercase(),
            13 => format!("PO Box {}, {city}, {st} {zip}", self.rng.range(10, 9999)),
            14 => format!(
                "{num} W {}th St, {city}, {st} {zip}",
                self.rng.range(4, 199)
            ),
            15 => format!("{num} County Road {}, {city}, {st}", self.rng.range(2, 900)),
            16 => format!(
                "{} rue de la Paix, {} Paris",
                self.rng.range(1, 120),
                75000 + self.rng.range(1, 20)
            ),
            17 => format!(
                "Hauptstraße {}, {} München",
                self.rng.range(1, 200),
                self.rng.range(80331, 81929)
            ),
            18 => format!(
                "Av. Insurgentes Sur {}, Col. Del Valle, {:05} Ciudad de México",
                self.rng.range(100, 3000),
                self.rng.range(3100, 3940)
            ),
            _ => format!(
                "Flat {}B, {} MG Road, Bengaluru {}",
                self.rng.range(1, 20),
                self.rng.range(1, 200),
                self.rng.range(560001, 560100)
            ),
        };
        Val::new(Category::Geographic, "address", raw).multi()
    }

    fn city_val(&mut self) -> Val {
        let (city, _) = *self.rng.pick(CITIES);
        Val::new(Category::Geographic, "city", city).multi()
    }

    fn zip_val(&mut self) -> Val {
        let z = format!("{:05}", self.rng.range(1001, 99950));
        let raw = if self.rng.chance(0.2) {
            format!("{z}-{}", self.rng.digits(4))
        } else {
            z
        };
        let mut v = Val::new(Category::Geographic, "zip", raw);
        v.num = false;
        v
    }

    fn email_val(&mut self) -> Val {
        let p = self.person.clone();
        let f = ascii_slug(&p.first);
        let l = ascii_slug(&p.last);
        let local = match self.rng.below(7) {
            0 | 1 => format!("{f}.{l}"),
            2 => format!("{}{l}", &f[..1]),
            3 => format!("{f}_{l}{}", self.rng.range(1, 99)),
            4 => format!("{f}.{l}+portal"),
            5 => format!("{l}.{f}{}", self.rng.range(50, 99)),
            _ => format!("{f}{}", self.rng.range(1960, 2005)),
        };
        let domain = *self.rng.pick(&[
            "gmail.com",
            "yahoo.com",
            "outlook.com",
            "hotmail.com",
            "icloud.com",
            "orange.fr",
            "web.de",
            "gmx.de",
            "yahoo.com.vn",
            "rediffmail.com",
            "proton.me",
            "comcast.net",
            "aol.com",
        ]);
        Val::new(Category::Email, "email", format!("{local}@{domain}")).origin(p.origin)
    }

    fn social_val(&mut self) -> Val {
        let p = self.person.clone();
        let f = ascii_slug(&p.first);
        let l = ascii_slug(&p.last);
        let (pre, raw) = match self.rng.below(5) {
            0 => (
                "https://www.facebook.com/",
                format!("{f}.{l}.{}", self.rng.range(1, 99)),
            ),
            1 => (
                "https://www.linkedin.com/in/",
                format!("{f}-{l}-{}", self.rng.hex(6)),
            ),
            2 => ("https://x.com/", format!("{f}_{}", &l[..l.len().min(5)])),
            3 => ("https://www.instagram.com/", format!("{f}.{l}")),
            _ => (
                "https://www.tiktok.com/@",
                format!("{f}{}", self.rng.range(1, 999)),
            ),
        };
        Val::new(Category::Url, "social_url", raw).pre(pre)
    }

    fn patient_path_val(&mut self) -> Val {
        let raw = match self.rng.below(4) {
            0 | 1 => format!("00{}", self.rng.digits(6)),
            2 => {
                let p = self.person.clone();
                format!("{}-{}", ascii_slug(&p.first), ascii_slug(&p.last))
            }
            _ => format!("E{}", self.rng.digits(7)),
        };
        let mut v = Val::new(Category::Url, "patient_url", raw);
        v.num = false;
        v
    }

    fn bio_val(&mut self) -> Val {
        if self.rng.chance(0.3) {
            let xs: Vec<String> = (0..8)
                .map(|_| {
                    let x = self.rng.range(0, 9999) as f64 / 10000.0;
                    if self.rng.chance(0.5) {
                        format!("-{x:.4}")
                    } else {
                        format!("{x:.4}")
                    }
                })
                .collect();
            let mut v = Val::new(
                Category::Biometric,
                "biometric",
                format!("[{}]", xs.join(", ")),
            );
            v.bare = true;
            v
        } else {
            let n = self.rng.range(32, 72) as usize;
            let b64 = self.rng.chars_from(
                n,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            );
            Val::new(Category::Biometric, "biometric", format!("{b64}=="))
        }
    }

    fn photo_val(&mut self) -> Val {
        if self.rng.chance(0.5) {
            let b = self.rng.chars_from(
                40,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            );
            Val::new(Category::Photo, "photo", format!("/9j/4AAQSkZJRgABAQ{b}"))
                .pre("data:image/jpeg;base64,")
        } else {
            let raw = format!(
                "https://cdn.example-health.com/ids/{}/selfie_{}.jpg",
                self.rng.range(10000, 99999),
                self.rng.digits(6)
            );
            Val::new(Category::Photo, "photo", raw)
        }
    }

    /// A PHI value of `kind`. `text`: for free text rather than a field.
    pub fn phi(&mut self, kind: &str, text: bool) -> Val {
        use Category as C;
        match kind {
            "name" => self.name_val(0, "name"),
            "first" => self.first_val(),
            "last" => self.last_val(),
            "rel" => self.name_val(1, "name.relative"),
            "doc" => {
                let p = self.doc.clone();
                Val::new(C::Name, "name.provider", p.natural())
                    .multi()
                    .origin(p.origin)
            }
            "doclast" => self.doclast_val(),
            "addr" => self.address_val(),
            "street" => {
                let num = self.rng.range(1, 19999);
                let street = *self.rng.pick(STREETS);
                let suffix = *self.rng.pick_w(SUFFIXES);
                Val::new(C::Geographic, "address", format!("{num} {street} {suffix}")).multi()
            }
            "city" => self.city_val(),
            "zip" => self.zip_val(),
            "dob" => self.date_val("dob", text),
            "dob_iso" => self.date_iso("dob"),
            "appt_iso" => {
                let mut v = self.date_val("appt", false);
                v.raw = self.fmt_date(v.ymd.expect("date"), 2);
                v
            }
            "dob_compact" => {
                let mut v = self.date_val("dob", false);
                v.raw = self.fmt_date(v.ymd.expect("date"), 8);
                v
            }
            "admit" | "discharge" | "death" | "appt" => {
                let k = match kind {
                    "admit" => "admit",
                    "discharge" => "discharge",
                    "death" => "death",
                    _ => "appt",
                };
                self.date_val(k, text)
            }
            "phone" => Val::new(C::Phone, "phone", self.phone_str()),
            "phone_e164" => {
                let (a, e, l) = self.nanp();
                Val::new(C::Phone, "phone", format!("+1{a}{e}{l}"))
            }
            "intl" => Val::new(C::Phone, "phone.intl", self.intl_phone()),
            "fax" => Val::new(C::Fax, "fax", self.phone_str()),
            "email" => self.email_val(),
            "ssn" => Val::new(C::Ssn, "ssn", self.ssn_str()),
            "mrn" => Val::new(C::MedicalRecordNumber, "mrn", self.mrn_str()),
            "member" => Val::new(C::HealthPlanNumber, "member_id", self.member_str()),
            "mbi" => Val::new(C::HealthPlanNumber, "mbi", self.mbi_str()),
            "medicaid" => Val::new(C::HealthPlanNumber, "medicaid", self.medicaid_str()),
            "card" => Val::new(C::AccountNumber, "card", self.card_str()),
            "acct" => {
                let n = self.rng.range(8, 12) as usize;
                Val::new(C::AccountNumber, "bank_account", self.rng.digits(n))
            }
            "routing" => Val::new(C::AccountNumber, "routing", self.routing_str()),
            "pacct" => {
                let raw = if self.rng.chance(0.5) {
                    self.rng.range(1_000_000, 99_999_999).to_string()
                } else {
                    format!("HAR{}", self.rng.digits(8))
                };
                Val::new(C::AccountNumber, "patient_account", raw)
            }
            "dea" => Val::new(C::LicenseNumber, "dea", self.dea_str()),
            "npi" => Val::new(C::LicenseNumber, "npi", self.npi_str()),
            "dl" => Val::new(C::LicenseNumber, "drivers_license", self.dl_str()),
            "medlic" => {
                let raw = match self.rng.below(3) {
                    0 => format!("A{}", self.rng.digits(6)),
                    1 => format!("MD{}", self.rng.digits(6)),
                    _ => format!("{}{}", self.rng.upper(1), self.rng.digits(5)),
                };
                Val::new(C::LicenseNumber, "medical_license", raw)
            }
            "passport" => {
                let raw = if self.rng.chance(0.5) {
                    format!("{}{}", self.rng.upper(1), self.rng.digits(8))
                } else {
                    self.rng.range(100_000_000, 999_999_999).to_string()
                };
                Val::new(C::LicenseNumber, "passport", raw)
            }
            "vin" => Val::new(C::VehicleIdentifier, "vin", self.vin_str()),
            "plate" => Val::new(C::VehicleIdentifier, "plate", self.plate_str()),
            "serial" => Val::new(C::DeviceIdentifier, "serial", self.serial_str()),
            "imei" => Val::new(C::DeviceIdentifier, "imei", self.imei_str()),
            "mac" => Val::new(C::DeviceIdentifier, "mac", self.mac_str()),
            "devid" => {
                let raw = if self.rng.chance(0.5) {
                    self.rng.hex(16)
                } else {
                    format!(
                        "0000{}-00{}",
                        self.rng.digits(4),
                        self.rng.hex(14).to_uppercase()
                    )
                };
                Val::new(C::DeviceIdentifier, "device_id", raw)
            }
            "social" => self.social_val(),
            "ppath" => self.patient_path_val(),
            "ip" => Val::new(C::IpAddress, "ipv4", self.public_ipv4()),
            "ip6" => Val::new(C::IpAddress, "ipv6", self.ipv6()),
            "bio" => self.bio_val(),
            "photo" => self.photo_val(),
            "claim" => {
                let raw = if self.rng.chance(0.5) {
                    format!("CLM-2024-{}", self.rng.digits(8))
                } else {
                    format!("2024{}", self.rng.digits(7))
                };
                Val::new(C::OtherIdentifier, "claim", raw)
            }
            "case" => Val::new(
                C::OtherIdentifier,
                "case",
                format!("CASE-{}", self.rng.digits(8)),
            ),
            "accession" => {
                let raw = if self.rng.chance(0.5) {
                    format!("S24-{}", self.rng.digits(5))
                } else {
                    format!("ACC24{}", self.rng.digits(7))
                };
                Val::new(C::OtherIdentifier, "accession", raw)
            }
            "pa" => Val::new(
                C::OtherIdentifier,
                "prior_auth",
                format!("PA{}", self.rng.digits(8)),
            ),
            "icd" => Val::new(C::Diagnosis, "icd10", *self.rng.pick(ICD10)),
            "icd_nodot" => {
                let c = self.rng.pick(ICD10).replace('.', "");
                Val::new(C::Diagnosis, "icd10", c)
            }
            "dx" => Val::new(C::Diagnosis, "dx_term", *self.rng.pick(DX_TERMS)),
            "med" => Val::new(C::Diagnosis, "medication", *self.rng.pick(MEDS)),
            "chat" => Val::new(C::ClinicalText, "chat", *self.rng.pick(CHATS)),
            "note" => Val::new(C::ClinicalText, "note", *self.rng.pick(NOTES)),
            other => panic!("unknown PHI kind {other}"),
        }
    }

    // -- keep tokens --

    fn ts_str(&mut self, style: u32) -> String {
        let Ts {
            mon,
            day,
            h,
            m,
            s,
            ms,
        } = self.ts;
        let mname = &MONTHS[(mon - 1) as usize][..3];
        match style {
            0 => format!("2024-{mon:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z"),
            1 => format!("2024-{mon:02}-{day:02}T{h:02}:{m:02}:{s:02}+02:00"),
            2 => format!("2024-{mon:02}-{day:02} {h:02}:{m:02}:{s:02},{ms:03}"),
            3 => format!("2024/{mon:02}/{day:02} {h:02}:{m:02}:{s:02}"),
            4 => format!("{mname} {day:>2} {h:02}:{m:02}:{s:02}"),
            5 => format!("{day:02}/{mname}/2024:{h:02}:{m:02}:{s:02} +0000"),
            6 => format!("{day:02}-{mname}-2024 {h:02}:{m:02}:{s:02}.{ms:03}"),
            _ => format!("2024-{mon:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"),
        }
    }

    fn pod(&mut self) -> String {
        let svc = *self.rng.pick(SERVICES);
        format!(
            "{svc}-{}-{}",
            self.rng.chars_from(10, b"bcdfghjklmnpqrstvwxz2456789"),
            self.rng.chars_from(5, b"bcdfghjklmnpqrstvwxz2456789")
        )
    }

    fn host(&mut self) -> String {
        match self.rng.below(4) {
            0 => format!(
                "ip-10-{}-{}-{}.ec2.internal",
                self.rng.range(0, 255),
                self.rng.range(0, 255),
                self.rng.range(1, 254)
            ),
            1 => format!(
                "gke-prod-pool-a-{}-{}",
                self.rng.hex(8),
                self.rng
                    .chars_from(4, b"abcdefghijklmnopqrstuvwxyz0123456789")
            ),
            2 => format!("web-{:02}.prod.example-health.net", self.rng.range(1, 40)),
            _ => format!("ehr-db-replica-{}.internal", self.rng.range(1, 6)),
        }
    }

    fn version(&mut self) -> String {
        match self.rng.below(6) {
            0 => format!(
                "v{}.{}.{}",
                self.rng.range(1, 4),
                self.rng.range(0, 30),
                self.rng.range(0, 20)
            ),
            1 => format!(
                "{}.{}.{}",
                self.rng.range(1, 4),
                self.rng.range(0, 30),
                self.rng.range(0, 20)
            ),
            2 => format!(
                "node v20.{}.{}",
                self.rng.range(0, 18),
                self.rng.range(0, 3)
            ),
            3 => format!(
                "twilio-video 2.{}.{}",
                self.rng.range(20, 30),
                self.rng.range(0, 3)
            ),
            4 => format!(
                "2024.{:02}.{}-rc{}",
                self.rng.range(1, 6),
                self.rng.range(1, 4),
                self.rng.range(1, 3)
            ),
            _ => format!("openssl 3.0.{}", self.rng.range(2, 14)),
        }
    }

    fn user_agent(&mut self) -> String {
        match self.rng.below(4) {
            0 => format!(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.{}.{} Safari/537.36",
                self.rng.range(6000, 6400),
                self.rng.range(10, 200)
            ),
            1 => format!(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{} Mobile/15E148 Safari/604.1",
                self.rng.range(0, 5),
                self.rng.range(0, 5)
            ),
            2 => format!("TelehealthApp/{}.{}.{} (Android 14; Pixel 7)", self.rng.range(3, 6), self.rng.range(0, 20), self.rng.range(0, 9)),
            _ => format!("okhttp/4.{}.{}", self.rng.range(9, 12), self.rng.range(0, 3)),
        }
    }

    fn opaque(&mut self, prefix: &str) -> String {
        let n = self.rng.range(10, 16) as usize;
        format!("{prefix}{}", self.rng.base62(n))
    }

    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-{}{}-{}",
            self.rng.hex(8),
            self.rng.hex(4),
            self.rng.hex(3),
            self.rng.pick(&['8', '9', 'a', 'b']),
            self.rng.hex(3),
            self.rng.hex(12)
        )
    }

    /// A 10-digit number shaped like a NANP number that is not one.
    fn num10(&mut self) -> String {
        format!(
            "{}{}{}{}",
            self.rng.range(2, 9),
            self.rng.digits(2),
            self.rng.range(2, 9),
            self.rng.digits(6)
        )
    }

    fn ops_path(&mut self) -> String {
        let tpl = *self.rng.pick(OPS_PATHS);
        let mut out = String::new();
        let mut rest = tpl;
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            let j = rest[i..].find('}').expect("closing brace") + i;
            let name = &rest[i + 1..j];
            let v = match name {
                "hex8" => self.rng.hex(8),
                other => self.keep_val(other).1,
            };
            out.push_str(&v);
            rest = &rest[j + 1..];
        }
        out.push_str(rest);
        out
    }

    /// A keep token: (kind, text).
    pub fn keep_val(&mut self, name: &str) -> (&'static str, String) {
        match name {
            "ts" => {
                let st = *self.rng.pick(&[0, 0, 1, 2, 3, 7]);
                ("timestamp", self.ts_str(st))
            }
            "clf" => ("timestamp", self.ts_str(5)),
            "syslog_ts" => ("timestamp", self.ts_str(4)),
            "epoch" => ("epoch", self.ts.epoch().to_string()),
            "epoch_ms" => ("epoch", format!("{}{:03}", self.ts.epoch(), self.ts.ms)),
            "trace" => ("trace_id", self.rng.hex(32)),
            "span" => ("span_id", self.rng.hex(16)),
            "uuid" => ("uuid", self.uuid()),
            "usr" => ("opaque_id", self.opaque("usr_")),
            "room" => ("opaque_id", self.opaque("rm_")),
            "visit" => ("opaque_id", self.opaque("vis_")),
            "appt_id" => ("opaque_id", self.opaque("appt_")),
            "pat" => ("opaque_id", self.opaque("pat_")),
            "sess" => ("opaque_id", self.opaque("sess_")),
            "pod" => ("pod_host", self.pod()),
            "host" => ("pod_host", self.host()),
            "ver" => ("version", self.version()),
            "ua" => ("version", self.user_agent()),
            "path" => ("path", self.ops_path()),
            "status" => (
                "status",
                self.rng
                    .pick(&[
                        "200", "200", "200", "201", "204", "301", "400", "401", "403", "404",
                        "409", "429", "500", "502", "503",
                    ])
                    .to_string(),
            ),
            "dur" => {
                let s = match self.rng.below(4) {
                    0 => format!("{}ms", self.rng.range(1, 3000)),
                    1 => format!("{}.{:03}s", self.rng.range(0, 30), self.rng.range(0, 999)),
                    2 => format!("{} ms", self.rng.range(1, 3000)),
                    _ => format!("{}.{}ms", self.rng.range(0, 900), self.rng.range(0, 9)),
                };
                ("duration", s)
            }
            "ms" => (
                "duration",
                format!("{}.{:03}", self.rng.range(0, 9000), self.rng.range(0, 999)),
            ),
            "ms_int" => ("duration", self.rng.range(1, 30000).to_string()),
            "bytes" => ("bytes", self.rng.range(100, 50_000_000).to_string()),
            "num10" => ("number10", self.num10()),
            "jitter" => (
                "media",
                format!("{}.{}", self.rng.range(0, 80), self.rng.range(0, 9)),
            ),
            "loss" => (
                "media",
                format!("{}.{:02}", self.rng.range(0, 9), self.rng.range(0, 99)),
            ),
            "rtt" => ("media", self.rng.range(8, 900).to_string()),
            "fps" => (
                "media",
                self.rng
                    .pick(&["15", "24", "25", "29.97", "30"])
                    .to_string(),
            ),
            "res" => (
                "media",
                self.rng
                    .pick(&["1280x720", "640x360", "1920x1080", "320x180", "960x540"])
                    .to_string(),
            ),
            "kbps" => ("media", self.rng.range(80, 4500).to_string()),
            "mos" => (
                "media",
                format!("{}.{}", self.rng.range(1, 4), self.rng.range(0, 9)),
            ),
            "pip" => {
                let ip = match self.rng.below(3) {
                    0 => format!(
                        "10.{}.{}.{}",
                        self.rng.range(0, 255),
                        self.rng.range(0, 255),
                        self.rng.range(1, 254)
                    ),
                    1 => format!(
                        "172.{}.{}.{}",
                        self.rng.range(16, 31),
                        self.rng.range(0, 255),
                        self.rng.range(1, 254)
                    ),
                    _ => format!(
                        "192.168.{}.{}",
                        self.rng.range(0, 255),
                        self.rng.range(1, 254)
                    ),
                };
                ("private_ip", ip)
            }
            "rdate" => {
                let (mon, day) = (self.ts.mon, self.ts.day);
                ("record_date", format!("2024-{mon:02}-{day:02}"))
            }
            "word" => ("word", self.rng.pick(WORDS).to_string()),
            "facility" => ("word", self.rng.pick(FACILITIES).to_string()),
            "svc" => ("service", self.rng.pick(SERVICES).to_string()),
            other => panic!("unknown keep kind {other}"),
        }
    }

    /// Plain filler (no truth).
    fn plain(&mut self, name: &str) -> Option<String> {
        Some(match name {
            "n" => self.rng.range(2, 60).to_string(),
            "hex8" => self.rng.hex(8),
            "thread" => format!("http-nio-8080-exec-{}", self.rng.range(1, 40)),
            "state" => self.rng.pick(CITIES).1.to_string(),
            "lvl" => self
                .rng
                .pick(&["INFO", "INFO", "WARN", "ERROR", "DEBUG"])
                .to_string(),
            _ => return None,
        })
    }

    // -- templates --

    /// Renders a template: `{placeholder}` or `{placeholder|mod}`; `{{` and
    /// `}}` are literal braces.
    fn template(&mut self, b: &mut B, tpl: &str, text: bool) {
        let bytes = tpl.as_bytes();
        let mut i = 0;
        let mut lit = String::new();
        while i < bytes.len() {
            let c = bytes[i];
            if c == b'{' && bytes.get(i + 1) == Some(&b'{') {
                lit.push('{');
                i += 2;
                continue;
            }
            if c == b'}' && bytes.get(i + 1) == Some(&b'}') {
                lit.push('}');
                i += 2;
                continue;
            }
            if c == b'{' {
                let j = tpl[i..].find('}').expect("unclosed placeholder") + i;
                let spec = &tpl[i + 1..j];
                let (name, modifier) = match spec.split_once('|') {
                    Some((n, m)) => (n, Some(m)),
                    None => (spec, None),
                };
                b.t(&lit);
                lit.clear();
                self.placeholder(b, name, modifier, text);
                i = j + 1;
                continue;
            }
            let ch = tpl[i..].chars().next().expect("char");
            lit.push(ch);
            i += ch.len_utf8();
        }
        b.t(&lit);
    }

    fn placeholder(&mut self, b: &mut B, name: &str, modifier: Option<&str>, text: bool) {
        let inner: Vec<Enc> = modifier
            .map(|m| {
                m.split('|')
                    .map(|m| match m {
                        "q" => Enc::QueryPlus,
                        "pct" => Enc::QueryPct,
                        "upper" => Enc::Upper,
                        "lower" => Enc::Lower,
                        "sql" => Enc::Sql,
                        m => panic!("unknown modifier {m}"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let inner = &inner[..];
        if let Some(p) = self.plain(name) {
            b.t(&p);
            return;
        }
        if is_keep_name(name) {
            let (kind, v) = self.keep_val(name);
            let v = encode_all(inner, &v);
            b.keep(kind, &v);
            return;
        }
        let v = self.phi(name, text);
        b.val(&v, inner);
    }
}

fn is_keep_name(n: &str) -> bool {
    matches!(
        n,
        "ts" | "clf"
            | "syslog_ts"
            | "epoch"
            | "epoch_ms"
            | "trace"
            | "span"
            | "uuid"
            | "usr"
            | "room"
            | "visit"
            | "appt_id"
            | "pat"
            | "sess"
            | "pod"
            | "host"
            | "ver"
            | "ua"
            | "path"
            | "status"
            | "dur"
            | "ms"
            | "ms_int"
            | "bytes"
            | "num10"
            | "jitter"
            | "loss"
            | "rtt"
            | "fps"
            | "res"
            | "kbps"
            | "mos"
            | "pip"
            | "rdate"
            | "word"
            | "facility"
            | "svc"
    )
}

pub fn luhn_check_digit(payload: &[u8]) -> u8 {
    // Double every second digit from the right of the payload (the check
    // digit will sit to its right).
    let mut sum = 0u32;
    for (i, &d) in payload.iter().rev().enumerate() {
        let mut x = u32::from(d);
        if i % 2 == 0 {
            x *= 2;
            if x > 9 {
                x -= 9;
            }
        }
        sum += x;
    }
    ((10 - sum % 10) % 10) as u8
}

pub fn vin_check(v: &[u8]) -> u8 {
    const W: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let val = |c: u8| -> u32 {
        match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A' | b'J' => 1,
            b'B' | b'K' | b'S' => 2,
            b'C' | b'L' | b'T' => 3,
            b'D' | b'M' | b'U' => 4,
            b'E' | b'N' | b'V' => 5,
            b'F' | b'W' => 6,
            b'G' | b'P' | b'X' => 7,
            b'H' | b'Y' => 8,
            b'R' | b'Z' => 9,
            _ => 0,
        }
    };
    let s: u32 = v.iter().zip(W).map(|(&c, w)| val(c) * w).sum();
    match s % 11 {
        10 => b'X',
        r => b'0' + r as u8,
    }
}

// ---- free-text templates -------------------------------------------------------------

/// Free-text messages with PHI (wrapped in a log prefix when used).
const TEXT: &[&str] = &[
    "Patient {name} joined waiting room {room} (visit {visit}, waited {dur})",
    "Dr. {doclast} admitted {name} from the waiting room; queue_depth={n} wait={dur}",
    "Visit {visit} connected: provider Dr. {doclast}, patient {first} {last}, rtt_ms={rtt}",
    "Sent visit link to {email} for appointment {appt_id}",
    "SMS reminder queued to {phone} for visit on {appt}: Hi {first}, your visit with Dr. {doclast} starts soon",
    "No-show: {name} (DOB {dob}) did not join {visit} after {dur}",
    "Check-in complete for {name}, born {dob}, MRN {mrn}",
    "Identity verification passed for {name} using driver's license {dl}",
    "Interpreter requested (Vietnamese) for {name} in room {room}",
    "Caregiver {rel} added to visit {visit} as guest; invite sent to {phone}",
    "EHR lookup for MRN {mrn} returned 1 match ({dur})",
    "Merged duplicate charts {mrn} and {mrn} for {name}",
    "Chart note saved for {name}: dx {icd} ({dx}), plan reviewed",
    "Patient {name} admitted on {admit} to 4 West, attending Dr. {doclast}",
    "Discharge summary generated for MRN {mrn}: discharged {discharge}, follow-up in 2 weeks",
    "Death certificate workflow started for {name}, date of death {death}",
    "FHIR Patient/{uuid} updated: birthDate={dob_iso} address={addr}",
    "ADT A08 for {name}: address changed to {addr}",
    "Problem list updated for MRN {mrn}: added {icd} {dx}",
    "e-Rx sent: {med} for {name} (DOB {dob}) to pharmacy NCPDP 0312345, prescriber DEA {dea}",
    "Prescriber NPI {npi} not found in PECOS, retrying in {dur}",
    "PDMP query for {name} returned 3 controlled fills; prescriber DEA# {dea}",
    "Refill request from {phone}: {med}",
    "Charge failed for card {card} ({status}): insufficient funds, user {usr}",
    "Card {card} tokenized as tok_{hex8} for {usr}",
    "ACH refund to routing {routing} account {acct} for {name}",
    "Claim {claim} denied by payer: member id {member} not eligible on {appt}",
    "Eligibility 271 for MBI {mbi}: active, Part B, checked in {dur}",
    "Medicaid ID {medicaid} verified for {name}",
    "Statement mailed to {name}, {addr}",
    "Collections: patient account number {pacct} is 90 days past due",
    "Appointment booked for {first} {last} on {appt} at 10:30 with Dr. {doclast}",
    "Reschedule request from {email}: appointment {appt_id} moved to {appt}",
    "Waitlist: {name} ({phone}) wants an earlier slot",
    "chat message from {first}: {chat}",
    "Patient message flagged for triage: {chat}",
    "Referral for {name} faxed to {fax} (pages={n}, status=delivered)",
    "Inbound fax from {fax} matched to MRN {mrn}",
    "Paired Bluetooth glucometer serial {serial} to {usr}",
    "Remote monitoring: pacemaker serial {serial} transmitted, battery {n}%",
    "Push token registered for device IMEI {imei}",
    "CGM {serial} reading 287 mg/dL for {name}",
    "Curbside check-in: vehicle plate {plate} for {name}",
    "NEMT ride booked, vehicle VIN {vin}, pickup at {addr}",
    "Login from {ip} for {usr} ({ua})",
    "Suspicious login: {email} from {ip} (geo {city})",
    "Password reset requested for {email} from {ip6}",
    "candidate:842163049 1 udp 1677729535 {ip} 54400 typ srflx raddr {pip} rport 54400",
    "Patient shared profile link {social} in intake form",
    "Redirecting to https://portal.example-health.com/patients/{ppath}/records",
    "Voice enrolment for {usr}: voiceprint={bio}",
    "Lab accession {accession} resulted for {name}: HbA1c 8.2%",
    "Prior auth {pa} approved for {med}",
    "Case {case} opened for a complaint by {name}",
    "Credit check requires SSN {ssn} for {name}",
    "Patient SSN on file: {ssn}",
    "Identity match on social security number {ssn} and DOB {dob}",
    "Uploaded ID photo {photo} for {usr}",
    "Hi {first}, this is Dr. {doclast}'s office confirming your appointment",
    "Mrs. {last} called about her husband's lab results",
    "Message to {name}: your results are ready in the portal",
    "Patient {name} left the visit early ({dur})",
    "{name} checked in at front desk kiosk",
    "Emergency contact: {rel} ({phone})",
    "Guardian {rel} consented for minor {first}",
    "Translator joined for {name} and {rel}",
    "Coverage lookup: zip {zip} is outside the service area",
    "Patient relocated to {city}, {state}; license state check required",
    "Pharmacy search near {zip} returned {n} results ({dur})",
    "DOB mismatch: entered {dob}, EHR has {dob}",
    "admitted {admit}, discharged {discharge}, LOS {n} days",
    "Dx: {icd} - {dx}",
    "Screening positive for {dx}; referral placed",
    "ICD-10 {icd_nodot} submitted on claim {claim}",
    "Call back {name} at {phone} re: {dx}",
    "Patient {name} reachable on WhatsApp {intl}",
    "International patient {name}, phone {intl}, passport {passport}",
    "Provider credentialing: Dr. {doc}, NPI {npi}, state license {medlic}",
    "Dr. {doc} signed prescription, DEA {dea}, NPI {npi}",
    "Transport for {name}: driver's license {dl}, plate {plate}",
    "IMEI {imei} of patient phone blacklisted after theft report",
    "BLE device {mac} (hearing aid) paired for {name}",
    "Android ID {devid} linked to {usr}",
    "Portal login by {email} from {ip}",
    "{name}, {dob}, {phone}",
    "patient: {name} dob: {dob} mrn: {mrn}",
    "Called {first} at home, left voicemail on {phone}",
    "Fax cover sheet: To Dr. {doclast}, fax {fax}, Re: {name}",
    "Insurance card scanned: member {member}, subscriber {rel}",
    "Medicare beneficiary {name}, MBI {mbi}, DOB {dob}",
    "Payment by {name} with card {card} approved",
    "Autopay enabled: acct {acct}, routing {routing}",
    "Patient address {addr} failed USPS validation",
    "Pickup address: {street}, {city}",
    "Ambulance dispatched to {addr} for {name}",
    "Deceased patient {name} (died {death}) removed from reminder list",
    "Surgery scheduled {appt} for {name}",
    "seen on {appt} by Dr. {doclast}",
    "DOB {dob}, {n}yo, presents with {dx}",
    "Patient {name} ({icd}) missed {n} doses of {med}",
    "Texted {phone}: Your code is 482913",
    "Home health visit for {name} at {addr}, phone {phone}",
    "SMS to {intl} failed: unsupported region for {usr}",
    "Voice login for {usr}: voiceprint match 0.97, template {bio}",
    "Face match enrolled: face_embedding={bio} for {name}",
    "Selfie {photo} attached to identity check {sess}",
    "Profile picture updated for {name}: {photo}",
    "Caller {name} verified by voiceprint {bio}",
];

/// Java exception messages with PHI.
const JAVA: &[&str] = &[
    "java.lang.IllegalStateException: Duplicate patient record for MRN {mrn} (name={name}, dob={dob_iso})",
    "org.springframework.dao.DataIntegrityViolationException: could not execute statement; constraint [uk_patient_ssn]; Detail: Key (ssn)=({ssn}) already exists.",
    "com.acme.ehr.PatientNotFoundException: No patient matching {last}, {first} born {dob}",
    "javax.validation.ConstraintViolationException: updatePatient.phoneNumber: invalid phone number '{phone}'",
    "java.lang.NullPointerException: Cannot invoke \"Address.getZip()\" because the return value of \"Patient[name={name}, mrn={mrn}]\" is null",
    "Caused by: com.stripe.exception.CardException: Your card was declined. card={card}",
    "com.acme.rx.PrescriberValidationException: DEA number {dea} does not match prescriber {doc}",
    "com.acme.billing.EligibilityException: member {member} not found at payer for DOB {dob_iso}",
    "org.hibernate.exception.ConstraintViolationException: Detail: Key (email)=({email}) already exists.",
    "com.acme.fax.DeliveryException: fax to {fax} failed after 3 attempts (busy)",
    "java.net.SocketTimeoutException: Read timed out while fetching /api/patients/{ppath}/chart",
    "com.acme.identity.MismatchException: expected DOB {dob_iso} for {name}, got {dob_iso}",
];

/// Python exception lines with PHI.
const PYTHON: &[&str] = &[
    "KeyError: '{name}'",
    "ValueError: invalid date of birth '{dob}' for patient {mrn}",
    "psycopg2.errors.UniqueViolation: duplicate key value violates unique constraint \"patients_email_key\" DETAIL:  Key (email)=({email}) already exists.",
    "DETAIL:  Key (mrn)=({mrn}) already exists.",
    "requests.exceptions.HTTPError: 404 Client Error: Not Found for url: https://ehr.internal/api/patients/{ppath}/chart",
    "  Input should be a valid date [type=date_type, input_value='{dob}', input_type=str]",
    "  Value error, invalid phone number [type=value_error, input_value='{phone}', input_type=str]",
    "LookupError: no coverage for member {member} ({name})",
    "AssertionError: expected zip {zip} to match county",
    "twilio.base.exceptions.TwilioRestException: Unable to create record: The 'To' number {phone_e164} is not a valid phone number.",
    "smtplib.SMTPRecipientsRefused: {{'{email}': (550, b'5.1.1 user unknown')}}",
];

/// Access-log lines with PHI.
const ACCESS: &[&str] = &[
    "{ip} - - [{clf}] \"GET /api/v1/patients/search?last_name={last|q}&dob={dob_iso}&page=2 HTTP/1.1\" {status} {bytes} \"-\" \"{ua}\"",
    "{ip} - - [{clf}] \"GET /fhir/R4/Patient?family={last|pct}&given={first|pct}&birthdate={dob_iso} HTTP/1.1\" {status} {bytes}",
    "{pip} - - [{clf}] \"GET /api/v1/providers/search?npi={npi} HTTP/1.1\" {status} {bytes} \"-\" \"{ua}\" rt={ms}",
    "{ip} - - [{clf}] \"GET /api/v1/eligibility?member_id={member|q}&dob={dob_iso} HTTP/2.0\" {status} {bytes}",
    "{ip} - - [{clf}] \"GET /api/patients/{ppath}/chart HTTP/1.1\" {status} {bytes} \"-\" \"{ua}\"",
    "{pip} - - [{clf}] \"POST /intake?name={name|q}&phone={phone|pct}&email={email|pct} HTTP/1.1\" {status} {bytes}",
    "{ip} - - [{clf}] \"GET /unsubscribe?email={email|pct}&token={hex8} HTTP/1.1\" {status} {bytes}",
    "{ip} - - [{clf}] \"POST /api/v1/visits/{visit}/join HTTP/1.1\" {status} {bytes} \"-\" \"{ua}\"",
    "{ip} - {email} [{clf}] \"POST /api/v1/login HTTP/1.1\" {status} {bytes}",
    "{pip} - - [{clf}] \"GET /api/v1/search?q={name|q}&type=patient HTTP/1.1\" {status} {bytes} rt={ms}",
    "{pip} - - [{clf}] \"GET /api/v1/patients?ssn={ssn} HTTP/1.1\" {status} {bytes}",
    "{pip} - - [{clf}] \"GET /api/v1/patients/lookup?mrn={mrn}&zip={zip} HTTP/1.1\" {status} {bytes}",
    "{ip} - - [{clf}] \"GET /api/v1/members/{member}/claims HTTP/1.1\" {status} {bytes}",
    "{pip} - - [{clf}] \"GET /api/v1/appointments?patient_name={name|pct}&date={appt_iso} HTTP/1.1\" {status} {bytes}",
    "{ip6} - - [{clf}] \"GET /api/v1/visits/{visit} HTTP/2.0\" {status} {bytes} \"-\" \"{ua}\"",
    "{pip} - - [{clf}] \"GET /redirect?next=https%3A%2F%2Fwww.facebook.com%2F{first|lower|pct}.{last|lower|pct} HTTP/1.1\" {status} {bytes}",
];

/// SQL statements with PHI.
const SQL: &[&str] = &[
    "LOG:  duration: {ms} ms  statement: SELECT * FROM patients WHERE last_name = '{last|sql}' AND date_of_birth = '{dob_iso}'",
    "UPDATE patients SET phone = '{phone}', email = '{email}' WHERE id = 88213",
    "INSERT INTO patients (first_name, last_name, dob, ssn, mrn) VALUES ('{first|sql}', '{last|sql}', '{dob_iso}', '{ssn}', '{mrn}')",
    "SELECT * FROM claims WHERE member_id = '{member}' AND status = 'denied'",
    "Slow query ({ms} ms): SELECT p.* FROM patients p JOIN addresses a ON a.patient_id = p.id WHERE a.zip = '{zip}' AND p.last_name ILIKE '{last|sql}%'",
    "SELECT id FROM patients WHERE UPPER(full_name) = '{name|upper}' LIMIT 1",
    "INSERT INTO payment_methods (user_id, pan, exp) VALUES ('{usr}', '{card}', '04/27')",
    "UPDATE prescriptions SET dea_number = '{dea}', npi = '{npi}' WHERE rx_id = 'rx_{hex8}'",
    "SELECT * FROM visits WHERE patient_email = '{email}' ORDER BY started_at DESC",
    "DELETE FROM devices WHERE imei = '{imei}'",
    "INSERT INTO addresses (patient_id, line1, city, zip) VALUES ('{pat}', '{street}', '{city|sql}', '{zip}')",
    "UPDATE patients SET dx_codes = '{icd}', notes = '{note|sql}' WHERE mrn = '{mrn}'",
];

/// HL7 v2 segments with PHI.
const HL7: &[&str] = &[
    "PID|1||{mrn}^^^HOSP^MR||{last|upper}^{first|upper}||{dob_compact}|F|||{street|upper}^^{city|upper}^{state}^{zip}^USA||{phone}",
    "NK1|1|{rel|upper}|SPO|||{phone}",
    "PV1|1|I|4W^412^A||||{npi}^{doclast|upper}^^^^MD|||||||||||{pacct}",
    "IN1|1|BCBS01|00123|BLUE CROSS||||||||||||{name|upper}|SEL|{dob_compact}||||||||||||||||||{member}",
    "DG1|1||{icd}^{dx}^I10||",
];

/// Clean lines: no PHI, only tokens that must survive.
const CLEAN: &[&str] = &[
    "GET {path} {status} {dur}",
    "Health check ok: {pod} on {host} ({ver})",
    "webrtc stats visit={visit} room={room} jitter_ms={jitter} packet_loss_pct={loss} rtt_ms={rtt} fps={fps} res={res} bitrate_kbps={kbps}",
    "Kafka consumer group visit-events lag={n} partition={n} offset={num10}",
    "Will retry in 5s (attempt 3/5) trace_id={trace}",
    "Released {ver} to production on {rdate}",
    "Nightly discharge-summary export for {rdate} finished: {n} records in {dur}",
    "Cron job backup-ehr-db completed at {epoch} ({bytes} bytes)",
    "GC pause {ms}ms heap_used={bytes}",
    "{word} queue depth {n} (p95 wait {dur})",
    "May release notes published for {word}",
    "Patient Portal deploy {ver} started by {usr}",
    "Upstream {pip}:8080 marked healthy after {dur}",
    "TLS certificate for api.example-health.com expires {rdate}",
    "order_id={num10} status=fulfilled bytes={bytes}",
    "Processed batch {uuid} with {n} events in {dur}",
    "Span {span} of trace {trace} exceeded SLO ({dur})",
    "Autoscaler: {pod} scheduled on {host}",
    "Twilio callback accepted for {sess} status={status}",
    "ICE connection state changed: checking -> connected ({dur}) for {room}",
    "Grant Access clicked by {usr} in {word}",
    "Chrome Mobile {ver} on Android 14 joined {room}",
    "Consumer rebalanced: {n} partitions assigned to {pod}",
    "Epic FHIR token refreshed, expires_in=3600, took {dur}",
    "Rate limit exceeded for {usr}: 429 after {n} requests",
    "Metrics flushed: {n} series, {bytes} bytes, {dur}",
    "Visit {visit} ended: duration {dur}, mos {mos}, frames_dropped {n}",
    "Synced schedule with {facility} in {dur} ({n} slots)",
    "Referral routed to {facility} intake queue, trace {trace}",
    "Room {room} closed at {epoch_ms}, participants={n}",
    "Appointment {appt_id} reminder job ran at {epoch}",
    "Wrote {bytes} bytes to s3://telehealth-recordings/{uuid}.webm in {dur}",
    "Kafka producer sent {n} records, last offset {num10}, took {dur}",
    "Disk usage on {host}: {bytes} bytes free",
    "Connection pool: active={n} idle={n} wait_ms={ms_int} ({pod})",
    "User {usr} switched camera to {res} at {fps} fps",
    "Audio level dropped below threshold for {usr} in {room} (rtt {rtt} ms, jitter {jitter} ms)",
    "Transcoding job {uuid} finished: {bytes} bytes, bitrate {kbps} kbps",
    "Feature flag waiting_room_v2 enabled for {n}% of users ({ver})",
    "Request {uuid} from {pip} completed with {status} in {dur}",
    "Scheduled job claim-sync ran for {rdate}, seq {num10}",
    "checksum={num10} verified for build {ver}",
    "ingest_seq {num10} committed at {ts}",
    "{svc} stopped after {dur}, exit code 0",
    "Provider dashboard loaded for {usr} in {dur} ({word})",
    "Visit funnel: scheduled={n} checked_in={n} connected={n} completed={n}",
    "Dexcom webhook {uuid} deduplicated ({dur})",
    "Waiting Room heartbeat {sess} ok rtt_ms={rtt}",
    "SLO burn rate 2.1 for connect_success over 1h; budget remaining {n}%",
    "\tat com.acme.telehealth.visit.VisitService.join(VisitService.java:{n})",
    "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)",
    "\t... {n} common frames omitted",
    "Traceback (most recent call last):",
    "  File \"/app/ehr/lookup.py\", line {n}, in find_patient",
    "{pip} - - [{clf}] \"GET {path} HTTP/1.1\" {status} {bytes} \"-\" \"kube-probe/1.29\"",
    "{pip} - - [{clf}] \"POST /v1/traces HTTP/1.1\" {status} {bytes} \"-\" \"{ua}\" rt={ms}",
    "LOG:  duration: {ms} ms  statement: SELECT count(*) FROM visits WHERE status = 'connected'",
    "DELETE FROM sessions WHERE user_id = '{usr}' AND created_at < {epoch}",
    "MSH|^~\\&|EPIC|UCSF|TELEHEALTH|ACME|20240514093211||ADT^A04|MSG{hex8}|P|2.5.1",
    "{{\"ts\":\"{ts}\",\"event\":\"webrtc.stats\",\"visit_id\":\"{visit}\",\"stats\":{{\"inbound-rtp\":{{\"jitter_ms\":{jitter},\"packetsLost\":{n},\"framesPerSecond\":{fps},\"frameSize\":\"{res}\"}},\"candidate-pair\":{{\"roundTripTimeMs\":{rtt},\"availableOutgoingBitrateKbps\":{kbps}}}}}}}",
    "{{\"resource\":{{\"service.name\":\"{svc}\",\"k8s.pod.name\":\"{pod}\",\"host.name\":\"{host}\"}},\"name\":\"GET /api/v1/patients/{{patient_id}}/visits\",\"trace_id\":\"{trace}\",\"span_id\":\"{span}\",\"attributes\":{{\"http.route\":\"/api/v1/patients/{{patient_id}}/visits\",\"http.status_code\":{status},\"user.id\":\"{usr}\"}},\"duration_ms\":{ms_int}}}",
    "{{\"kind\":\"Event\",\"reason\":\"Pulled\",\"message\":\"Successfully pulled image registry.example-health.net/waiting-room:{ver} in {dur}\",\"involvedObject\":{{\"name\":\"{pod}\",\"namespace\":\"telehealth\"}},\"lastTimestamp\":\"{ts}\"}}",
    "{{\"ts\":{epoch},\"level\":\"info\",\"msg\":\"room stats\",\"room\":{{\"id\":\"{room}\",\"participants\":{n},\"mos\":{mos},\"bytes_sent\":{bytes}}},\"request_id\":\"{uuid}\"}}",
];

// ---- structured lines ---------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Camel,
    Snake,
    UpperKebab,
    Pascal,
    Dotted,
}

fn key_str(words: &[&str], st: Style) -> String {
    let words: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let cap = |w: &str| {
        let mut c = w.chars();
        match c.next() {
            Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
            None => String::new(),
        }
    };
    match st {
        Style::Camel => {
            let mut s = words[0].clone();
            for w in &words[1..] {
                s.push_str(&cap(w));
            }
            s
        }
        Style::Pascal => words.iter().map(|w| cap(w)).collect(),
        Style::Snake => words.join("_"),
        Style::UpperKebab => words.join("-").to_uppercase(),
        Style::Dotted => words.join("."),
    }
}

/// Key spellings for each PHI kind, as words.
#[rustfmt::skip]
fn phi_keys(kind: &str) -> &'static [&'static [&'static str]] {
    match kind {
        "name" => &[&["patient", "name"], &["patient", "full", "name"], &["full", "name"],
            &["pt", "name"], &["name"], &["member", "name"], &["patient", "display", "name"],
            &["participant", "name"], &["legal", "name"], &["subscriber", "name"],
            &["cardholder", "name"]],
        "rel" => &[&["emergency", "contact", "name"], &["guardian", "name"], &["next", "of", "kin"],
            &["caregiver"], &["spouse", "name"]],
        "doc" => &[&["provider", "name"], &["attending"], &["prescriber", "name"], &["clinician"]],
        "addr" => &[&["address"], &["street", "address"], &["address", "line1"],
            &["home", "address"], &["patient", "address"], &["mailing", "address"], &["addr"]],
        "city" => &[&["city"], &["patient", "city"], &["address", "city"], &["home", "city"]],
        "zip" => &[&["zip"], &["zip", "code"], &["postal", "code"], &["patient", "zip"],
            &["address", "zip"]],
        "dob" => &[&["dob"], &["date", "of", "birth"], &["birth", "date"], &["patient", "dob"],
            &["birthdate"], &["birth", "dt"]],
        "admit" => &[&["admit", "date"], &["admission", "date"], &["admitted", "at"]],
        "discharge" => &[&["discharge", "date"], &["discharged", "at"]],
        "death" => &[&["date", "of", "death"], &["death", "date"], &["deceased", "date"]],
        "appt" => &[&["appointment", "date"], &["appt", "date"], &["visit", "date"],
            &["scheduled", "for"]],
        "phone" => &[&["phone"], &["phone", "number"], &["mobile"], &["cell", "phone"],
            &["home", "phone"], &["contact", "phone"], &["callback", "number"],
            &["patient", "phone"], &["tel"], &["to"], &["sms", "to"]],
        "intl" => &[&["phone"], &["mobile"], &["whatsapp"], &["contact", "number"]],
        "fax" => &[&["fax"], &["fax", "number"], &["recipient", "fax"], &["fax", "to"]],
        "email" => &[&["email"], &["email", "address"], &["patient", "email"],
            &["contact", "email"], &["user", "email"], &["recipient"], &["login"]],
        "ssn" => &[&["ssn"], &["social", "security", "number"], &["patient", "ssn"], &["tax", "id"]],
        "mrn" => &[&["mrn"], &["medical", "record", "number"], &["patient", "mrn"],
            &["mr", "number"], &["chart", "number"], &["emr", "id"], &["epic", "mrn"]],
        "member" => &[&["member", "id"], &["subscriber", "id"], &["insurance", "member", "id"],
            &["policy", "number"], &["insurance", "id"], &["payer", "member", "id"]],
        "mbi" => &[&["mbi"], &["medicare", "id"], &["medicare", "beneficiary", "id"]],
        "medicaid" => &[&["medicaid", "id"], &["medicaid", "number"]],
        "card" => &[&["card", "number"], &["pan"], &["credit", "card"], &["cc", "number"],
            &["payment", "card"]],
        "acct" => &[&["account", "number"], &["bank", "account"], &["acct", "no"]],
        "routing" => &[&["routing", "number"], &["aba"]],
        "pacct" => &[&["billing", "account"], &["patient", "account", "number"],
            &["guarantor", "account"]],
        "dea" => &[&["dea"], &["dea", "number"], &["prescriber", "dea"]],
        "npi" => &[&["npi"], &["provider", "npi"], &["prescriber", "npi"], &["rendering", "npi"]],
        "dl" => &[&["drivers", "license"], &["dl", "number"], &["license", "number"],
            &["id", "document", "number"]],
        "medlic" => &[&["medical", "license"], &["state", "license"], &["license", "no"]],
        "passport" => &[&["passport"], &["passport", "number"]],
        "vin" => &[&["vin"], &["vehicle", "vin"], &["vehicle", "id"]],
        "plate" => &[&["license", "plate"], &["plate"], &["vehicle", "plate"]],
        "serial" => &[&["serial", "number"], &["device", "serial"], &["pump", "serial"],
            &["implant", "serial"], &["cgm", "serial"], &["sn"]],
        "imei" => &[&["imei"], &["device", "imei"]],
        "mac" => &[&["mac", "address"], &["mac"], &["bt", "addr"]],
        "devid" => &[&["udid"], &["android", "id"], &["idfa"]],
        "social" => &[&["profile", "url"], &["facebook"], &["social", "link"], &["website"]],
        "ppath" => &[&["url"], &["link"], &["redirect"], &["referer"]],
        "ip" | "ip6" => &[&["client", "ip"], &["remote", "addr"], &["ip"],
            &["x", "forwarded", "for"], &["user", "ip"], &["caller", "ip"]],
        "bio" => &[&["voiceprint"], &["fingerprint", "template"], &["face", "embedding"],
            &["biometric", "template"], &["face", "vector"], &["voice", "signature"]],
        "photo" => &[&["photo"], &["selfie"], &["profile", "photo"], &["id", "photo", "url"]],
        "claim" => &[&["claim", "id"], &["claim", "number"]],
        "case" => &[&["case", "number"], &["case", "id"]],
        "accession" => &[&["accession", "number"], &["accession"], &["specimen", "id"]],
        "pa" => &[&["prior", "auth", "number"], &["authorization", "number"]],
        "icd" => &[&["icd10"], &["dx"], &["diagnosis", "code"], &["icd", "code"], &["diagnosis"]],
        "dx" => &[&["diagnosis"], &["condition"], &["chief", "complaint"],
            &["reason", "for", "visit"], &["problem"], &["visit", "reason"]],
        "med" => &[&["medication"], &["rx"], &["drug"], &["prescription"], &["med", "name"]],
        "chat" => &[&["chat", "message"], &["message"], &["text"], &["body"], &["chat", "text"],
            &["content"]],
        "note" => &[&["note"], &["notes"], &["clinical", "note"], &["visit", "note"],
            &["assessment"], &["soap", "note"], &["triage", "note"]],
        other => panic!("no keys for {other}"),
    }
}

/// Keys for keep fields.
fn keep_key(name: &str) -> &'static [&'static str] {
    match name {
        "trace" => &["trace", "id"],
        "span" => &["span", "id"],
        "uuid" => &["request", "id"],
        "usr" => &["user", "id"],
        "visit" => &["visit", "id"],
        "room" => &["room", "id"],
        "pat" => &["patient", "id"],
        "appt_id" => &["appointment", "id"],
        "sess" => &["session", "id"],
        "ms_int" => &["duration", "ms"],
        "status" => &["status"],
        "bytes" => &["bytes"],
        "pod" => &["pod"],
        "host" => &["host"],
        "ver" => &["version"],
        "path" => &["path"],
        "epoch" => &["ts", "epoch"],
        "num10" => &["offset"],
        "jitter" => &["jitter", "ms"],
        "loss" => &["packet", "loss", "pct"],
        "rtt" => &["rtt", "ms"],
        "fps" => &["fps"],
        "res" => &["resolution"],
        "kbps" => &["bitrate", "kbps"],
        "mos" => &["mos"],
        "pip" => &["upstream", "addr"],
        _ => panic!("no key for {name}"),
    }
}

fn keep_is_num(name: &str) -> bool {
    matches!(
        name,
        "ms_int"
            | "status"
            | "bytes"
            | "epoch"
            | "num10"
            | "jitter"
            | "loss"
            | "rtt"
            | "fps"
            | "kbps"
            | "mos"
    )
}

struct Scenario {
    svc: &'static str,
    msgs: &'static [&'static str],
    table: &'static str,
    class: &'static str,
    path: &'static str,
    phi: &'static [&'static str],
    keep: &'static [&'static str],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        svc: "visit-svc",
        msgs: &[
            "participant joined",
            "visit connected",
            "waiting room entered",
        ],
        table: "visit_participants",
        class: "Participant",
        path: "/api/v1/visits/join",
        phi: &[
            "name", "dob", "phone", "email", "ip", "ip6", "name", "zip", "intl",
        ],
        keep: &["visit", "room", "usr", "trace", "ms_int", "status"],
    },
    Scenario {
        svc: "ehr-bridge",
        msgs: &["patient lookup", "chart fetched", "patient upserted"],
        table: "patients",
        class: "Patient",
        path: "/api/v1/patients/search",
        phi: &[
            "name", "dob", "mrn", "ssn", "addr", "city", "zip", "phone", "mrn", "name",
        ],
        keep: &["trace", "pat", "ms_int", "span"],
    },
    Scenario {
        svc: "rx-router",
        msgs: &[
            "prescription routed",
            "refill requested",
            "pharmacy rejected rx",
        ],
        table: "prescriptions",
        class: "Prescription",
        path: "/api/v1/rx/route",
        phi: &[
            "name", "dob", "med", "dea", "npi", "phone", "addr", "icd", "doc",
        ],
        keep: &["trace", "pat", "status", "ms_int"],
    },
    Scenario {
        svc: "billing-api",
        msgs: &[
            "charge created",
            "payment failed",
            "refund issued",
            "statement generated",
        ],
        table: "payments",
        class: "PaymentRequest",
        path: "/api/v1/payments",
        phi: &[
            "name", "card", "acct", "routing", "pacct", "addr", "zip", "email", "member", "claim",
            "card",
        ],
        keep: &["trace", "status", "ms_int", "usr", "uuid"],
    },
    Scenario {
        svc: "eligibility-svc",
        msgs: &["eligibility checked", "coverage inactive", "270 sent"],
        table: "eligibility_checks",
        class: "EligibilityRequest",
        path: "/api/v1/eligibility",
        phi: &[
            "name", "dob", "member", "mbi", "medicaid", "ssn", "member", "mbi",
        ],
        keep: &["trace", "ms_int", "pat"],
    },
    Scenario {
        svc: "scheduler",
        msgs: &[
            "appointment booked",
            "appointment rescheduled",
            "reminder sent",
        ],
        table: "appointments",
        class: "Appointment",
        path: "/api/v1/appointments",
        phi: &["name", "appt", "phone", "email", "doc", "dx", "appt"],
        keep: &["appt_id", "visit", "usr", "trace"],
    },
    Scenario {
        svc: "chat-svc",
        msgs: &["chat message sent", "message delivered", "message flagged"],
        table: "chat_messages",
        class: "ChatMessage",
        path: "/api/v1/chat/send",
        phi: &["chat", "chat", "name", "chat"],
        keep: &["room", "visit", "usr", "uuid"],
    },
    Scenario {
        svc: "intake-api",
        msgs: &["intake form submitted", "intake validated", "intake saved"],
        table: "intake_forms",
        class: "IntakeForm",
        path: "/api/v1/intake",
        phi: &[
            "name", "dob", "addr", "city", "zip", "phone", "email", "ssn", "dx", "med", "dl",
            "rel", "intl",
        ],
        keep: &["sess", "usr", "ms_int"],
    },
    Scenario {
        svc: "notes-svc",
        msgs: &["note saved", "note signed", "assessment updated"],
        table: "clinical_notes",
        class: "ClinicalNote",
        path: "/api/v1/notes",
        phi: &["note", "icd", "dx", "doc", "admit", "discharge", "note"],
        keep: &["visit", "pat", "trace"],
    },
    Scenario {
        svc: "device-hub",
        msgs: &["device paired", "reading received", "device registered"],
        table: "devices",
        class: "Device",
        path: "/api/v1/devices",
        phi: &["serial", "imei", "mac", "devid", "name", "serial"],
        keep: &["usr", "ver", "ms_int"],
    },
    Scenario {
        svc: "identity-svc",
        msgs: &["identity verified", "liveness check", "document scanned"],
        table: "identity_checks",
        class: "IdentityCheck",
        path: "/api/v1/identity/verify",
        phi: &[
            "name", "dob", "dl", "passport", "photo", "bio", "ip", "email", "bio", "photo",
        ],
        keep: &["usr", "sess", "status"],
    },
    Scenario {
        svc: "identity-svc",
        msgs: &["biometric login", "voice match", "face match"],
        table: "biometric_enrolments",
        class: "BiometricEnrolment",
        path: "/api/v1/biometrics",
        phi: &["bio", "photo", "name", "ip"],
        keep: &["usr", "sess", "ms_int"],
    },
    Scenario {
        svc: "transport-svc",
        msgs: &["ride booked", "driver assigned", "curbside arrival"],
        table: "rides",
        class: "Ride",
        path: "/api/v1/rides",
        phi: &["name", "plate", "vin", "addr", "phone", "plate", "vin"],
        keep: &["usr", "uuid", "ms_int"],
    },
    Scenario {
        svc: "fax-gateway",
        msgs: &["fax queued", "fax delivered", "fax failed"],
        table: "faxes",
        class: "FaxJob",
        path: "/api/v1/fax/send",
        phi: &["fax", "name", "dob", "doc", "npi", "fax"],
        keep: &["trace", "uuid", "status"],
    },
    Scenario {
        svc: "lab-svc",
        msgs: &["lab order placed", "result received", "specimen collected"],
        table: "lab_orders",
        class: "LabOrder",
        path: "/api/v1/labs",
        phi: &[
            "accession",
            "name",
            "dob",
            "icd",
            "pa",
            "case",
            "claim",
            "accession",
        ],
        keep: &["pat", "trace", "ms_int"],
    },
    Scenario {
        svc: "ehr-bridge",
        msgs: &[
            "ADT event",
            "patient admitted",
            "patient discharged",
            "patient deceased",
        ],
        table: "encounters",
        class: "Encounter",
        path: "/api/v1/adt",
        phi: &[
            "name",
            "admit",
            "discharge",
            "death",
            "mrn",
            "addr",
            "admit",
        ],
        keep: &["trace", "pat"],
    },
    Scenario {
        svc: "profile-svc",
        msgs: &["profile updated", "avatar uploaded"],
        table: "profiles",
        class: "Profile",
        path: "/api/v1/profile",
        phi: &["social", "email", "photo", "name", "ppath", "social"],
        keep: &["usr", "status"],
    },
    Scenario {
        svc: "credentialing-svc",
        msgs: &["provider credentialed", "license verified"],
        table: "providers",
        class: "Provider",
        path: "/api/v1/providers",
        phi: &["doc", "npi", "dea", "medlic", "npi", "dea"],
        keep: &["usr", "uuid"],
    },
];

/// Clean structured events: keep fields and plain fields only.
const CLEAN_SCENARIOS: &[(&str, &[&str])] = &[
    (
        "webrtc stats",
        &[
            "visit", "room", "jitter", "loss", "rtt", "fps", "res", "kbps", "mos",
        ],
    ),
    (
        "http request",
        &["trace", "span", "path", "status", "ms_int", "bytes", "pod"],
    ),
    (
        "visit connected",
        &["visit", "room", "usr", "pat", "ms_int"],
    ),
    ("kafka commit", &["num10", "pod", "host", "epoch"]),
    ("deploy", &["ver", "pod", "host", "usr"]),
    ("upstream health", &["pip", "status", "ms_int", "host"]),
    (
        "appointment reminder job",
        &["appt_id", "epoch", "uuid", "ms_int"],
    ),
];

enum FV {
    Phi(Val),
    Keep(&'static str, String, bool),
    Plain(String, bool),
}

/// A field inside a nested JSON group: its inner key words and its index.
type Member<'a> = (Vec<&'a str>, usize);

struct Field {
    key: Vec<&'static str>,
    v: FV,
}

impl Gen {
    fn phi_field(&mut self, kind: &str) -> Vec<Field> {
        // Names are sometimes split into first and last fields.
        if kind == "name" && self.rng.chance(0.3) {
            let (kf, kl): (&[&str], &[&str]) = *self.rng.pick(&[
                (&["first", "name"][..], &["last", "name"][..]),
                (&["given", "name"][..], &["family", "name"][..]),
                (
                    &["patient", "first", "name"][..],
                    &["patient", "last", "name"][..],
                ),
                (&["fname"][..], &["lname"][..]),
            ]);
            let mut f = self.first_val();
            let mut l = self.last_val();
            if self.rng.chance(0.15) {
                f.raw = f.raw.to_uppercase();
                l.raw = l.raw.to_uppercase();
            }
            return vec![
                Field {
                    key: kf.to_vec(),
                    v: FV::Phi(f),
                },
                Field {
                    key: kl.to_vec(),
                    v: FV::Phi(l),
                },
            ];
        }
        let keys = phi_keys(kind);
        let key = self.rng.pick(keys).to_vec();
        let mut v = match kind {
            "doc" => {
                let mut v = self.phi("doc", false);
                if self.rng.chance(0.5) {
                    v = v.pre("Dr. ");
                } else if self.rng.chance(0.3) {
                    v.raw = format!("{}, {}", self.doc.last, self.doc.first);
                    v = v.post(" MD");
                }
                v
            }
            "social" => {
                // As a field, the whole URL.
                let v = self.social_val();
                let mut w = Val::new(Category::Url, "social_url", v.raw);
                w.pre = v.pre;
                w
            }
            "ppath" => {
                let v = self.patient_path_val();
                v.pre("https://portal.example-health.com/patients/")
                    .post("/records")
            }
            k => self.phi(k, false),
        };
        if v.cat == Category::Name && self.rng.chance(0.08) {
            v.raw = v.raw.to_lowercase();
        }
        vec![Field { key, v: FV::Phi(v) }]
    }

    fn keep_field(&mut self, name: &str) -> Field {
        let (kind, v) = self.keep_val(name);
        Field {
            key: keep_key(name).to_vec(),
            v: FV::Keep(kind, v, keep_is_num(name)),
        }
    }

    fn structured(&mut self, clean: bool) -> Line {
        let mut fields: Vec<Field> = Vec::new();
        let (svc, msg, table, class, path);
        if clean {
            let (m, keeps) = *self.rng.pick(CLEAN_SCENARIOS);
            msg = m.to_string();
            svc = *self.rng.pick(SERVICES);
            table = "events";
            class = "Event";
            path = "/api/v1/events";
            for k in keeps.iter() {
                if self.rng.chance(0.8) {
                    let f = self.keep_field(k);
                    fields.push(f);
                }
            }
            if fields.is_empty() {
                let f = self.keep_field("trace");
                fields.push(f);
            }
        } else {
            let sc = self.rng.pick(SCENARIOS);
            svc = sc.svc;
            msg = self.rng.pick(sc.msgs).to_string();
            table = sc.table;
            class = sc.class;
            path = sc.path;
            let mut distinct: Vec<&str> = sc.phi.to_vec();
            distinct.sort_unstable();
            distinct.dedup();
            let n =
                (*self.rng.pick_w(&[(30, 1usize), (35, 2), (25, 3), (10, 4)])).min(distinct.len());
            let mut kinds: Vec<&str> = Vec::new();
            while kinds.len() < n {
                let k = *self.rng.pick(sc.phi);
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
            for k in kinds {
                let f = self.phi_field(k);
                fields.extend(f);
            }
            let nk = self.rng.range(1, 3) as usize;
            for _ in 0..nk {
                let k = *self.rng.pick(sc.keep);
                if !fields.iter().any(|f| f.key == keep_key(k)) {
                    let f = self.keep_field(k);
                    fields.push(f);
                }
            }
            // Shuffle the PHI and keep fields together.
            for i in (1..fields.len()).rev() {
                let j = self.rng.index(i + 1);
                fields.swap(i, j);
            }
        }
        let fmt = *self.rng.pick_w(&[
            (22, "json"),
            (16, "json_nested"),
            (16, "logfmt"),
            (8, "pydict"),
            (10, "tostring"),
            (10, "sql"),
            (8, "access"),
        ]);
        let style = match fmt {
            "pydict" | "sql" => Style::Snake,
            "tostring" => Style::Camel,
            "logfmt" => *self
                .rng
                .pick(&[Style::Snake, Style::Snake, Style::Dotted, Style::Camel]),
            "access" => *self.rng.pick(&[Style::Snake, Style::Camel]),
            _ => *self.rng.pick(&[
                Style::Camel,
                Style::Camel,
                Style::Snake,
                Style::Snake,
                Style::Pascal,
                Style::UpperKebab,
                Style::Dotted,
            ]),
        };
        let mut b = B::default();
        match fmt {
            "json" => self.render_json(&mut b, &fields, style, svc, &msg, false),
            "json_nested" => self.render_json(&mut b, &fields, style, svc, &msg, true),
            "logfmt" => self.render_logfmt(&mut b, &fields, style, svc, &msg),
            "pydict" => self.render_pydict(&mut b, &fields, svc),
            "tostring" => self.render_tostring(&mut b, &fields, class),
            "sql" => self.render_sql(&mut b, &fields, table),
            _ => self.render_access(&mut b, &mut fields, style, path),
        }
        b.finish(fmt)
    }

    fn json_value(&mut self, b: &mut B, v: &FV) {
        match v {
            FV::Phi(val) => {
                if val.bare || (val.num && self.rng.chance(0.3)) {
                    b.val(val, &[]);
                } else {
                    b.raw("\"");
                    b.outer.push(Enc::Json);
                    b.val(val, &[]);
                    b.outer.pop();
                    b.raw("\"");
                }
            }
            FV::Keep(kind, s, num) => {
                if *num {
                    b.keep(kind, s);
                } else {
                    b.raw("\"");
                    b.keep(kind, s);
                    b.raw("\"");
                }
            }
            FV::Plain(s, num) => {
                if *num {
                    b.raw(s);
                } else {
                    b.raw("\"");
                    b.outer.push(Enc::Json);
                    b.t(s);
                    b.outer.pop();
                    b.raw("\"");
                }
            }
        }
    }

    fn render_json(
        &mut self,
        b: &mut B,
        fields: &[Field],
        style: Style,
        svc: &str,
        msg: &str,
        nested: bool,
    ) {
        let tskey = *self.rng.pick(&["ts", "timestamp", "@timestamp", "time"]);
        b.raw(&format!("{{\"{tskey}\":\""));
        let ts = self.keep_val("ts").1;
        b.keep("timestamp", &ts);
        b.raw("\",");
        if nested {
            b.raw("\"log\":{\"level\":\"info\"},\"service\":{\"name\":\"");
            b.keep("service", svc);
            b.raw("\"},");
        } else {
            b.raw("\"level\":\"info\",\"service\":\"");
            b.keep("service", svc);
            b.raw("\",");
        }
        b.raw(&format!(
            "\"{}\":\"",
            if nested { "message" } else { "msg" }
        ));
        b.t(msg);
        b.raw("\"");
        const GROUPS: &[&str] = &[
            "patient",
            "address",
            "insurance",
            "contact",
            "chat",
            "visit",
            "device",
            "provider",
            "card",
            "emergency",
            "vehicle",
            "medicare",
        ];
        if !nested {
            for f in fields {
                b.raw(",\"");
                b.raw(&key_str(&f.key, style));
                b.raw("\":");
                self.json_value(b, &f.v);
            }
        } else {
            // Group fields by their first key word.
            let mut groups: Vec<(&str, Vec<Member<'_>>)> = Vec::new();
            let mut loose: Vec<usize> = Vec::new();
            for (i, f) in fields.iter().enumerate() {
                let mut key = f.key.clone();
                if key.len() == 1 && matches!(f.v, FV::Phi(_)) && self.rng.chance(0.5) {
                    key.insert(0, "patient");
                }
                if key.len() >= 2 && GROUPS.contains(&key[0]) {
                    let g = key[0];
                    let inner = key[1..].to_vec();
                    match groups.iter_mut().find(|(n, _)| *n == g) {
                        Some((_, v)) => v.push((inner, i)),
                        None => groups.push((g, vec![(inner, i)])),
                    }
                } else {
                    loose.push(i);
                }
            }
            for i in loose {
                b.raw(",\"");
                b.raw(&key_str(&fields[i].key, style));
                b.raw("\":");
                self.json_value(b, &fields[i].v);
            }
            for (g, members) in groups {
                b.raw(&format!(",\"{g}\":{{"));
                for (k, (inner, i)) in members.iter().enumerate() {
                    if k > 0 {
                        b.raw(",");
                    }
                    b.raw("\"");
                    b.raw(&key_str(inner, style));
                    b.raw("\":");
                    self.json_value(b, &fields[*i].v);
                }
                b.raw("}");
            }
        }
        b.raw("}");
    }

    fn render_logfmt(&mut self, b: &mut B, fields: &[Field], style: Style, svc: &str, msg: &str) {
        b.raw("ts=");
        let ts = self.keep_val("ts").1;
        b.keep("timestamp", &ts);
        b.raw(" level=info svc=");
        b.keep("service", svc);
        b.raw(" msg=\"");
        b.t(msg);
        b.raw("\"");
        for f in fields {
            b.raw(" ");
            b.raw(&key_str(&f.key, style));
            b.raw("=");
            match &f.v {
                FV::Phi(v) => {
                    let whole = format!("{}{}{}", v.pre, v.raw, v.post);
                    if whole.contains(' ')
                        || whole.contains('"')
                        || whole.contains('=')
                        || whole.is_empty()
                    {
                        b.raw("\"");
                        b.outer.push(Enc::Logfmt);
                        b.val(v, &[]);
                        b.outer.pop();
                        b.raw("\"");
                    } else {
                        b.val(v, &[]);
                    }
                }
                FV::Keep(kind, s, _) if s.contains(' ') => {
                    b.raw("\"");
                    b.keep(kind, s);
                    b.raw("\"");
                }
                FV::Keep(kind, s, _) => b.keep(kind, s),
                FV::Plain(s, _) => b.t(s),
            }
        }
    }

    fn render_pydict(&mut self, b: &mut B, fields: &[Field], svc: &str) {
        let prefix = match self.rng.below(3) {
            0 => format!("DEBUG:{}:payload=", svc.replace('-', "_")),
            1 => "INFO worker.tasks: upserting record ".to_string(),
            _ => format!("[{}] sending ", svc),
        };
        b.raw(&prefix);
        b.raw("{");
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                b.raw(", ");
            }
            b.raw(&format!("'{}': ", key_str(&f.key, Style::Snake)));
            match &f.v {
                FV::Phi(v) => {
                    if let (Some((y, m, d)), true) = (v.ymd, self.rng.chance(0.4)) {
                        let mut w = v.clone();
                        w.raw = format!("{y}, {m}, {d}");
                        w.pre = "datetime.date(".into();
                        w.post = ")".into();
                        b.val(&w, &[]);
                        // Month and day must go, whatever happens to the year.
                        if let Some(p) = b.phi.last_mut() {
                            p.tokens.push(format!("{m}, {d}"));
                        }
                    } else if v.bare || (v.num && self.rng.chance(0.4)) {
                        b.val(v, &[]);
                    } else {
                        b.raw("'");
                        b.outer.push(Enc::PySingle);
                        b.val(v, &[]);
                        b.outer.pop();
                        b.raw("'");
                    }
                }
                FV::Keep(kind, s, num) => {
                    if *num {
                        b.keep(kind, s);
                    } else {
                        b.raw("'");
                        b.keep(kind, s);
                        b.raw("'");
                    }
                }
                FV::Plain(s, _) => {
                    b.raw("'");
                    b.t(s);
                    b.raw("'");
                }
            }
        }
        b.raw("}");
    }

    fn render_tostring(&mut self, b: &mut B, fields: &[Field], class: &str) {
        let ts = self.keep_val("ts").1;
        let (open, close, quote) = match self.rng.below(3) {
            0 => ("(", ")", ""),
            1 => ("[", "]", ""),
            _ => ("{", "}", "'"),
        };
        b.keep("timestamp", &ts);
        b.raw(&format!(
            " DEBUG 1 --- [{}] c.a.t.{}Service : loaded ",
            self.plain("thread").unwrap_or_default(),
            class
        ));
        let cname = if quote.is_empty() {
            class.to_string()
        } else {
            format!("{class}DTO")
        };
        b.raw(&cname);
        b.raw(open);
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                b.raw(", ");
            }
            b.raw(&key_str(&f.key, Style::Camel));
            b.raw("=");
            b.raw(quote);
            match &f.v {
                FV::Phi(v) => b.val(v, &[]),
                FV::Keep(kind, s, _) => b.keep(kind, s),
                FV::Plain(s, _) => b.t(s),
            }
            b.raw(quote);
        }
        b.raw(close);
    }

    fn render_sql(&mut self, b: &mut B, fields: &[Field], table: &str) {
        let lit = |this: &mut Gen, b: &mut B, v: &FV| match v {
            FV::Phi(val) => {
                if val.num && this.rng.chance(0.3) {
                    b.val(val, &[]);
                } else {
                    b.raw("'");
                    b.outer.push(Enc::Sql);
                    b.val(val, &[]);
                    b.outer.pop();
                    b.raw("'");
                }
            }
            FV::Keep(kind, s, num) => {
                if *num {
                    b.keep(kind, s);
                } else {
                    b.raw("'");
                    b.keep(kind, s);
                    b.raw("'");
                }
            }
            FV::Plain(s, _) => {
                b.raw("'");
                b.t(s);
                b.raw("'");
            }
        };
        if self.rng.chance(0.3) {
            b.raw("LOG:  duration: ");
            let ms = self.keep_val("ms").1;
            b.keep("duration", &ms);
            b.raw(" ms  statement: ");
        }
        match self.rng.below(3) {
            0 => {
                b.raw(&format!("SELECT * FROM {table} WHERE "));
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        b.raw(" AND ");
                    }
                    b.raw(&key_str(&f.key, Style::Snake));
                    b.raw(" = ");
                    lit(self, b, &f.v);
                }
                b.raw(" LIMIT 50");
            }
            1 => {
                b.raw(&format!("UPDATE {table} SET "));
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        b.raw(", ");
                    }
                    b.raw(&key_str(&f.key, Style::Snake));
                    b.raw(" = ");
                    lit(self, b, &f.v);
                }
                b.raw(&format!(" WHERE id = {}", self.rng.range(1000, 999_999)));
            }
            _ => {
                let cols: Vec<String> = fields
                    .iter()
                    .map(|f| key_str(&f.key, Style::Snake))
                    .collect();
                b.raw(&format!(
                    "INSERT INTO {table} ({}) VALUES (",
                    cols.join(", ")
                ));
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        b.raw(", ");
                    }
                    lit(self, b, &f.v);
                }
                b.raw(")");
            }
        }
    }

    fn render_access(&mut self, b: &mut B, fields: &mut Vec<Field>, style: Style, path: &str) {
        // A public client address, if any, goes first as the client.
        let client = fields.iter().position(|f| match &f.v {
            FV::Phi(v) => v.cat == Category::IpAddress,
            _ => false,
        });
        match client {
            Some(i) => {
                let f = fields.remove(i);
                if let FV::Phi(v) = f.v {
                    b.val(&v, &[]);
                }
            }
            None => {
                let ip = self.keep_val("pip").1;
                b.keep("private_ip", &ip);
            }
        }
        b.raw(" - - [");
        let ts = self.keep_val("clf").1;
        b.keep("timestamp", &ts);
        b.raw("] \"GET ");
        b.raw(path);
        let plus = self.rng.chance(0.5);
        for (i, f) in fields.iter().enumerate() {
            b.raw(if i == 0 { "?" } else { "&" });
            b.raw(&key_str(&f.key, style));
            b.raw("=");
            let enc = if plus { Enc::QueryPlus } else { Enc::QueryPct };
            match &f.v {
                FV::Phi(v) => b.val(v, &[enc]),
                FV::Keep(kind, s, _) => {
                    let s = encode(enc, s);
                    b.keep(kind, &s);
                }
                FV::Plain(s, _) => b.t(&encode(enc, s)),
            }
        }
        b.raw(" HTTP/1.1\" ");
        let st = self.keep_val("status").1;
        b.keep("status", &st);
        b.raw(" ");
        let by = self.keep_val("bytes").1;
        b.keep("bytes", &by);
        b.raw(" \"-\" \"");
        let ua = self.keep_val("ua").1;
        b.keep("version", &ua);
        b.raw("\"");
    }

    /// A Java exception as a logback JSON line with an escaped stack trace.
    fn json_stack_line(&mut self, tpl: &str) -> Line {
        let mut b = B::default();
        b.raw("{\"@timestamp\":\"");
        let ts = self.ts_str(0);
        b.keep("timestamp", &ts);
        b.raw("\",\"level\":\"ERROR\",\"logger_name\":\"c.a.t.web.GlobalExceptionHandler\",\"thread_name\":\"");
        let th = self.plain("thread").unwrap_or_default();
        b.raw(&th);
        b.raw("\",\"message\":\"Request failed\",\"stack_trace\":\"");
        b.outer.push(Enc::Json);
        self.template(&mut b, tpl, true);
        let n = self.rng.range(40, 400);
        b.t(&format!(
            "\n\tat com.acme.telehealth.ehr.PatientService.lookup(PatientService.java:{n})\n\tat jdk.internal.reflect.GeneratedMethodAccessor{}.invoke(Unknown Source)\n\t... {} common frames omitted",
            self.rng.range(10, 300),
            self.rng.range(5, 90)
        ));
        b.outer.pop();
        b.raw("\",\"trace_id\":\"");
        let t = self.keep_val("trace").1;
        b.keep("trace_id", &t);
        b.raw("\"}");
        b.finish("json_stack")
    }

    /// A free-text line from a template, in a log wrapper.
    fn text_line(&mut self, tpl: &str, format: &'static str, wrap: bool) -> Line {
        if format == "java" && self.rng.chance(0.4) {
            return self.json_stack_line(tpl);
        }
        let mut b = B::default();
        if !wrap {
            self.template(&mut b, tpl, true);
            return b.finish(format);
        }
        let w = self.rng.below(7);
        let fmt = match w {
            5 => "logfmt_msg",
            6 => "json_msg",
            _ => format,
        };
        match w {
            0 => {
                let ts = self.ts_str(2);
                b.keep("timestamp", &ts);
                let lvl = self.plain("lvl").unwrap_or_default();
                let th = self.plain("thread").unwrap_or_default();
                b.raw(&format!(" {lvl:<5} [{th}] c.a.telehealth.VisitService - "));
            }
            1 => {
                let ts = self.ts_str(0);
                b.keep("timestamp", &ts);
                b.raw(" [info] ");
                let svc = *self.rng.pick(SERVICES);
                b.keep("service", svc);
                b.raw(": ");
            }
            2 => {
                let ts = self.ts_str(4);
                b.keep("timestamp", &ts);
                b.raw(" ");
                let h = self.host();
                b.keep("pod_host", &h);
                b.raw(&format!(
                    " {}[{}]: ",
                    self.rng.pick(SERVICES),
                    self.rng.range(100, 65000)
                ));
            }
            3 => {
                let ts = self.ts_str(6);
                b.keep("timestamp", &ts);
                b.raw(" INFO ");
            }
            4 => {}
            5 => {
                b.raw("ts=");
                let ts = self.ts_str(0);
                b.keep("timestamp", &ts);
                b.raw(" level=info msg=\"");
                b.outer.push(Enc::Logfmt);
                self.template(&mut b, tpl, true);
                b.outer.pop();
                b.raw("\" trace_id=");
                let t = self.keep_val("trace").1;
                b.keep("trace_id", &t);
                return b.finish(fmt);
            }
            _ => {
                b.raw("{\"ts\":\"");
                let ts = self.ts_str(0);
                b.keep("timestamp", &ts);
                b.raw("\",\"level\":\"info\",\"msg\":\"");
                b.outer.push(Enc::Json);
                self.template(&mut b, tpl, true);
                b.outer.pop();
                b.raw("\",\"span_id\":\"");
                let s = self.keep_val("span").1;
                b.keep("span_id", &s);
                b.raw("\"}");
                return b.finish(fmt);
            }
        }
        self.template(&mut b, tpl, true);
        b.finish(fmt)
    }

    /// One line.
    pub fn line(&mut self) -> Line {
        self.start_line();
        let clean = self.rng.chance(0.4);
        if clean {
            if self.rng.chance(0.3) {
                return self.structured(true);
            }
            let tpl = *self.rng.pick(CLEAN);
            let wrap = !(tpl.starts_with('\t')
                || tpl.starts_with("Traceback")
                || tpl.starts_with("  File")
                || tpl.starts_with('{')
                || tpl.starts_with("LOG:")
                || tpl.starts_with("DELETE")
                || tpl.starts_with("MSH"));
            return self.text_line(tpl, "text", wrap);
        }
        if self.rng.chance(0.5) {
            return self.structured(false);
        }
        let (set, fmt, wrap): (&[&str], &'static str, bool) = *self.rng.pick_w(&[
            (60, (TEXT, "text", true)),
            (9, (JAVA, "java", false)),
            (9, (PYTHON, "python", false)),
            (11, (ACCESS, "access", false)),
            (7, (SQL, "sql", false)),
            (4, (HL7, "hl7", false)),
        ]);
        let tpl = *self.rng.pick(set);
        self.text_line(tpl, fmt, wrap)
    }
}

/// `n` lines from `seed`.
pub fn generate(seed: u64, n: usize) -> Vec<Line> {
    let mut g = Gen::new(seed);
    (0..n).map(|_| g.line()).collect()
}

// ---- evaluation ---------------------------------------------------------------------

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Byte offsets where `needle` occurs in `hay` on word boundaries (a needle
/// edge that is not a word character needs no boundary).
pub fn occurrences(hay: &str, needle: &str) -> Vec<usize> {
    let mut out = Vec::new();
    if needle.is_empty() {
        return out;
    }
    let first = needle.chars().next().expect("non-empty");
    let last = needle.chars().next_back().expect("non-empty");
    let mut from = 0;
    while let Some(i) = hay[from..].find(needle) {
        let s = from + i;
        let e = s + needle.len();
        let before_ok = !is_word_char(first)
            || hay[..s]
                .chars()
                .next_back()
                .is_none_or(|c| !is_word_char(c));
        let after_ok =
            !is_word_char(last) || hay[e..].chars().next().is_none_or(|c| !is_word_char(c));
        if before_ok && after_ok {
            out.push(s);
        }
        from = s + first.len_utf8();
    }
    out
}

fn overlaps(s: usize, e: usize, spans: &[(usize, usize)]) -> bool {
    spans.iter().any(|&(a, b)| s < b && a < e)
}

/// Whether a PHI value leaked: `Some(piece)` names what is still there.
pub fn leaked(line: &Line, out: &str, p: &Phi) -> Option<String> {
    let spans: Vec<(usize, usize)> = line.phi.iter().map(|x| x.span).collect();
    let allowed = |needle: &str| {
        occurrences(&line.text, needle)
            .into_iter()
            .filter(|&s| !overlaps(s, s + needle.len(), &spans))
            .count()
    };
    let check = |needle: &str| occurrences(out, needle).len() > allowed(needle);
    if check(&p.value) {
        return Some(p.value.clone());
    }
    p.tokens.iter().find(|t| check(t)).cloned()
}

/// Non-overlapping plain occurrences.
fn count_plain(hay: &str, needle: &str, skip: &[(usize, usize)]) -> usize {
    let mut n = 0;
    let mut from = 0;
    while let Some(i) = hay[from..].find(needle) {
        let s = from + i;
        if !overlaps(s, s + needle.len(), skip) {
            n += 1;
        }
        from = s + needle.len();
    }
    n
}

/// Whether a keep token survived.
pub fn kept(line: &Line, out: &str, k: &Keep) -> bool {
    let spans: Vec<(usize, usize)> = line.phi.iter().map(|x| x.span).collect();
    count_plain(out, &k.value, &[]) >= count_plain(&line.text, &k.value, &spans)
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Stat {
    pub total: usize,
    pub ok: usize,
}

impl Stat {
    pub fn add(&mut self, ok: bool) {
        self.total += 1;
        self.ok += usize::from(ok);
    }

    pub fn rate(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.ok as f64 / self.total as f64
        }
    }
}

#[derive(Clone, Debug)]
pub struct Miss {
    pub line: usize,
    pub kind: &'static str,
    pub origin: Option<&'static str>,
    pub value: String,
    pub left: String,
}

#[derive(Clone, Debug)]
pub struct KeepFail {
    pub line: usize,
    pub value: String,
}

/// Results of running an engine over a corpus.
#[derive(Debug, Default)]
pub struct Eval {
    pub outputs: Vec<String>,
    /// Rule ids that fired, per line.
    pub rules: Vec<Vec<String>>,
    pub by_cat: BTreeMap<Category, Stat>,
    pub by_kind: BTreeMap<(Category, &'static str), Stat>,
    pub by_origin: BTreeMap<&'static str, Stat>,
    pub by_format: BTreeMap<&'static str, Stat>,
    pub keep_by_kind: BTreeMap<&'static str, Stat>,
    pub keep_by_format: BTreeMap<&'static str, Stat>,
    pub clean: Stat,
    pub clean_by_format: BTreeMap<&'static str, Stat>,
    pub misses: BTreeMap<Category, Vec<Miss>>,
    pub keep_fails: BTreeMap<&'static str, Vec<KeepFail>>,
    /// Clean lines that changed.
    pub clean_changed: Vec<usize>,
    /// Rules that fired on clean lines, with counts.
    pub clean_rules: BTreeMap<String, usize>,
}

pub fn evaluate(engine: &Engine, lines: &[Line]) -> Eval {
    let mut ev = Eval::default();
    let mut scratch = engine.scratch();
    for (i, line) in lines.iter().enumerate() {
        let out = engine.redact_str(&mut scratch, &line.text).into_owned();
        let mut fired = Vec::new();
        scratch.drain_counts(|r, _| fired.push(engine.rule(r).id.to_string()));
        for p in &line.phi {
            let leak = leaked(line, &out, p);
            let ok = leak.is_none();
            ev.by_cat.entry(p.cat).or_default().add(ok);
            ev.by_kind.entry((p.cat, p.kind)).or_default().add(ok);
            ev.by_format.entry(line.format).or_default().add(ok);
            if p.cat == Category::Name {
                ev.by_origin
                    .entry(p.origin.unwrap_or("?"))
                    .or_default()
                    .add(ok);
            }
            if let Some(left) = leak {
                ev.misses.entry(p.cat).or_default().push(Miss {
                    line: i,
                    kind: p.kind,
                    origin: p.origin,
                    value: p.value.clone(),
                    left,
                });
            }
        }
        for k in &line.keep {
            let ok = kept(line, &out, k);
            ev.keep_by_kind.entry(k.kind).or_default().add(ok);
            ev.keep_by_format.entry(line.format).or_default().add(ok);
            if !ok {
                ev.keep_fails.entry(k.kind).or_default().push(KeepFail {
                    line: i,
                    value: k.value.clone(),
                });
            }
        }
        if line.phi.is_empty() {
            let same = out == line.text;
            ev.clean.add(same);
            ev.clean_by_format.entry(line.format).or_default().add(same);
            if !same {
                ev.clean_changed.push(i);
                for r in &fired {
                    *ev.clean_rules.entry(r.clone()).or_default() += 1;
                }
            }
        }
        ev.outputs.push(out);
        ev.rules.push(fired);
    }
    ev
}

fn pct(s: &Stat) -> String {
    format!("{:6.2}%", 100.0 * s.rate())
}

impl Eval {
    /// The summary tables.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(o, "PHI recall by category");
        let _ = writeln!(
            o,
            "  {:<24} {:>9} {:>9} {:>8}",
            "category", "instances", "redacted", "recall"
        );
        let mut all = Stat::default();
        for c in Category::ALL {
            if let Some(s) = self.by_cat.get(&c) {
                all.total += s.total;
                all.ok += s.ok;
                let _ = writeln!(
                    o,
                    "  {:<24} {:>9} {:>9} {}",
                    c.as_str(),
                    s.total,
                    s.ok,
                    pct(s)
                );
            } else {
                let _ = writeln!(o, "  {:<24} {:>9}", c.as_str(), 0);
            }
        }
        let _ = writeln!(
            o,
            "  {:<24} {:>9} {:>9} {}",
            "ALL",
            all.total,
            all.ok,
            pct(&all)
        );
        let _ = writeln!(o, "\nPHI recall by kind");
        for ((c, k), s) in &self.by_kind {
            let _ = writeln!(
                o,
                "  {:<24} {:<18} {:>6} {}",
                c.as_str(),
                k,
                s.total,
                pct(s)
            );
        }
        let _ = writeln!(o, "\nName recall by origin");
        for (k, s) in &self.by_origin {
            let _ = writeln!(o, "  {:<24} {:>6} {}", k, s.total, pct(s));
        }
        let _ = writeln!(o, "\nPHI recall by line format");
        for (k, s) in &self.by_format {
            let _ = writeln!(o, "  {:<24} {:>6} {}", k, s.total, pct(s));
        }
        let _ = writeln!(o, "\nKeep rate by token kind");
        let mut allk = Stat::default();
        for (k, s) in &self.keep_by_kind {
            allk.total += s.total;
            allk.ok += s.ok;
            let _ = writeln!(o, "  {:<24} {:>6} {:>6} {}", k, s.total, s.ok, pct(s));
        }
        let _ = writeln!(
            o,
            "  {:<24} {:>6} {:>6} {}",
            "ALL",
            allk.total,
            allk.ok,
            pct(&allk)
        );
        let _ = writeln!(o, "\nKeep rate by line format");
        for (k, s) in &self.keep_by_format {
            let _ = writeln!(o, "  {:<24} {:>6} {}", k, s.total, pct(s));
        }
        let _ = writeln!(
            o,
            "\nClean lines (no PHI) unchanged: {}/{} = {}",
            self.clean.ok,
            self.clean.total,
            pct(&self.clean)
        );
        for (k, s) in &self.clean_by_format {
            let _ = writeln!(o, "  {:<24} {:>6} {}", k, s.total, pct(s));
        }
        if !self.clean_rules.is_empty() {
            let _ = writeln!(o, "  rules firing on clean lines:");
            for (r, n) in &self.clean_rules {
                let _ = writeln!(o, "    {r:<28} {n}");
            }
        }
        o
    }

    /// Up to `per` examples per category of PHI that got through, spread
    /// over kinds; then keep-token losses and changed clean lines.
    pub fn miss_report(&self, lines: &[Line], per: usize) -> String {
        use std::fmt::Write;
        let clip = |s: &str| -> String {
            if s.len() > 700 {
                let mut e = 700;
                while !s.is_char_boundary(e) {
                    e -= 1;
                }
                format!("{}…", &s[..e])
            } else {
                s.to_string()
            }
        };
        let mut o = String::new();
        for c in Category::ALL {
            let Some(ms) = self.misses.get(&c) else {
                continue;
            };
            let total = self.by_cat.get(&c).map_or(0, |s| s.total);
            let _ = writeln!(
                o,
                "\n=== {} — {} missed of {} ===",
                c.as_str(),
                ms.len(),
                total
            );
            // Round-robin over kinds so every kind shows up.
            let mut kinds: Vec<&str> = ms.iter().map(|m| m.kind).collect();
            kinds.sort_unstable();
            kinds.dedup();
            let mut picked: Vec<&Miss> = Vec::new();
            let mut cursor: Vec<usize> = vec![0; kinds.len()];
            while picked.len() < per.min(ms.len()) {
                let mut progressed = false;
                for (ki, k) in kinds.iter().enumerate() {
                    if picked.len() >= per {
                        break;
                    }
                    if let Some((pos, m)) = ms
                        .iter()
                        .enumerate()
                        .skip(cursor[ki])
                        .find(|(_, m)| m.kind == *k)
                    {
                        cursor[ki] = pos + 1;
                        picked.push(m);
                        progressed = true;
                    }
                }
                if !progressed {
                    break;
                }
            }
            for m in picked {
                let l = &lines[m.line];
                let origin = m.origin.map(|x| format!(" ({x})")).unwrap_or_default();
                let left = if m.left == m.value {
                    String::new()
                } else {
                    format!(" — still there: {:?}", m.left)
                };
                let _ = writeln!(
                    o,
                    "- [{}] {}{}: {:?}{}",
                    l.format, m.kind, origin, m.value, left
                );
                let _ = writeln!(o, "    in : {}", clip(&l.text));
                let _ = writeln!(o, "    out: {}", clip(&self.outputs[m.line]));
                if !self.rules[m.line].is_empty() {
                    let _ = writeln!(o, "    rules fired: {}", self.rules[m.line].join(", "));
                }
            }
        }
        for (k, fails) in &self.keep_fails {
            let _ = writeln!(o, "\n=== keep token lost: {k} — {} ===", fails.len());
            for f in fails.iter().take(per.min(15)) {
                let l = &lines[f.line];
                let _ = writeln!(o, "- [{}] {:?}", l.format, f.value);
                let _ = writeln!(o, "    in : {}", clip(&l.text));
                let _ = writeln!(o, "    out: {}", clip(&self.outputs[f.line]));
                let _ = writeln!(o, "    rules fired: {}", self.rules[f.line].join(", "));
            }
        }
        let _ = writeln!(
            o,
            "\n=== clean lines changed — {} ===",
            self.clean_changed.len()
        );
        for &i in self.clean_changed.iter().take(per) {
            let l = &lines[i];
            let _ = writeln!(o, "- [{}]", l.format);
            let _ = writeln!(o, "    in : {}", clip(&l.text));
            let _ = writeln!(o, "    out: {}", clip(&self.outputs[i]));
            let _ = writeln!(o, "    rules fired: {}", self.rules[i].join(", "));
        }
        o
    }
}
