//! Redaction engine throughput, with Vector's VRL `redact` beside it.
//!
//! ```text
//! cargo bench --bench engine -- --measurement-time 5 --warm-up-time 2
//! cargo bench --bench engine --features vrl-bench -- --measurement-time 5 --warm-up-time 2
//! ```
//!
//! Two deterministic corpora of about 8 MB (see `common/mod.rs`): clean ops
//! log lines and PHI-dense lines (1-3 identifiers a line). Before anything is
//! timed the engine runs over both and the redaction counts are checked: zero
//! on clean lines (any redaction is a false positive and is printed with its
//! rule ids), at least one per line on dense lines.
//!
//! Groups, each with decimal MB/s throughput over the corpus bytes (newlines
//! included):
//!
//! * `clean/1core`, `dense/1core`: one thread, one `Scratch`; with
//!   `--features vrl-bench` also `vrl_filters` (one VRL filter per rule, as a
//!   Vector config would list them) and `vrl_union` (all rules in one regex,
//!   VRL's best case);
//! * `clean/2cores`, `dense/2cores`: the corpus split in two halves, one
//!   thread each, one shared `Engine` and one `Scratch` per thread;
//!   aggregate bytes;
//! * `compile`: `Engine::new` over a loaded `RuleSet::builtin()`, and
//!   `Engine::builtin()` (load + compile).
//!
//! After criterion, a summary times each configuration again (median of
//! several whole-corpus passes, with min..max) and prints MB/s, lines/s and
//! the scrubs/VRL ratios. `SCRUBS_BENCH_SUMMARY=0` skips it;
//! `SCRUBS_BENCH_ALLOW_FALSE_POSITIVES=1` times a clean corpus that the
//! engine does not pass, after printing its findings.

mod common;

use std::hint::black_box;
use std::ops::Range;
use std::time::{Duration, Instant};

use common::Corpus;
use criterion::{Criterion, SamplingMode, Throughput};
use scrubs::{Engine, PseudonymKey, RuleSet, Scratch};

const SEED_CLEAN: u64 = 0x0005_C2B5_C1EA_0001;
const SEED_DENSE: u64 = 0x0005_C2B5_D3E5_0002;
/// Corpus size when benchmarking; `cargo test --benches` uses a small one.
const BENCH_BYTES: usize = 8_000_000;
const TEST_BYTES: usize = 200_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench_mode = args.iter().any(|a| a == "--bench");
    let listing = args.iter().any(|a| a == "--list");
    let bytes = if bench_mode { BENCH_BYTES } else { TEST_BYTES };

    let t = Instant::now();
    let clean = common::clean(SEED_CLEAN, bytes);
    let dense = common::dense(SEED_DENSE, bytes);
    let engine = Engine::builtin().expect("the built-in pack compiles");
    if !listing {
        eprintln!(
            "corpora: clean {} lines / {} bytes (avg {:.0} B/line), dense {} lines / {} bytes \
             (avg {:.0} B/line, {} identifiers planted); generated and compiled in {:.0?}",
            clean.lines.len(),
            clean.bytes(),
            avg_line(&clean),
            dense.lines.len(),
            dense.bytes(),
            avg_line(&dense),
            dense.planted,
            t.elapsed()
        );
        check_clean(&engine, &clean);
        check_dense(&engine, &dense);
    }
    #[cfg(feature = "vrl-bench")]
    let vrl = vrl_side::Side::new(&clean, &dense, !listing);

    let mut c = Criterion::default().configure_from_args();
    for (name, corpus) in [("clean", &clean), ("dense", &dense)] {
        let mut g = c.benchmark_group(format!("{name}/1core"));
        g.throughput(Throughput::BytesDecimal(corpus.bytes() as u64))
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10);
        let mut scratch = engine.scratch();
        g.bench_function("scrubs", |b| {
            b.iter(|| one_core(&engine, &mut scratch, corpus, &corpus.lines))
        });
        #[cfg(feature = "vrl-bench")]
        for (id, program) in vrl.programs() {
            let lines = vrl.lines(name);
            g.bench_function(id, |b| b.iter(|| vrl_side::run(program, lines)));
        }
        g.finish();
    }
    for (name, corpus) in [("clean", &clean), ("dense", &dense)] {
        let mut g = c.benchmark_group(format!("{name}/2cores"));
        g.throughput(Throughput::BytesDecimal(corpus.bytes() as u64))
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10);
        let halves = corpus.split(2);
        let mut scratches = [engine.scratch(), engine.scratch()];
        g.bench_function("scrubs", |b| {
            b.iter(|| two_cores(&engine, &mut scratches, corpus, &halves))
        });
        g.finish();
    }
    {
        let set = RuleSet::builtin().expect("the built-in pack loads");
        let mut g = c.benchmark_group("compile");
        g.sampling_mode(SamplingMode::Flat).sample_size(20);
        g.bench_function("builtin", |b| {
            b.iter(|| Engine::new(black_box(&set), PseudonymKey::ephemeral()).unwrap())
        });
        g.bench_function("load_and_compile", |b| {
            b.iter(|| Engine::builtin().unwrap())
        });
        g.finish();
    }
    c.final_summary();

    let summary_wanted = std::env::var("SCRUBS_BENCH_SUMMARY").map_or(true, |v| v != "0");
    if bench_mode && !listing && summary_wanted {
        #[cfg(not(feature = "vrl-bench"))]
        summary(&engine, &clean, &dense);
        #[cfg(feature = "vrl-bench")]
        summary(&engine, &clean, &dense, &vrl);
    }
}

fn avg_line(c: &Corpus) -> f64 {
    c.bytes() as f64 / c.lines.len() as f64
}

/// Redacts every line; returns the output bytes so nothing is optimised out.
fn one_core(
    engine: &Engine,
    scratch: &mut Scratch,
    corpus: &Corpus,
    lines: &[Range<usize>],
) -> usize {
    let mut n = 0;
    for r in lines {
        n += black_box(engine.redact(scratch, &corpus.text[r.clone()])).len();
    }
    n
}

fn two_cores(
    engine: &Engine,
    scratches: &mut [Scratch; 2],
    corpus: &Corpus,
    halves: &[&[Range<usize>]],
) -> usize {
    std::thread::scope(|s| {
        let handles: Vec<_> = scratches
            .iter_mut()
            .zip(halves)
            .map(|(scratch, lines)| s.spawn(move || one_core(engine, scratch, corpus, lines)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

/// Every redaction on a clean line is a false positive: show each with its
/// rule ids, then fail.
fn check_clean(engine: &Engine, clean: &Corpus) {
    let mut scratch = engine.scratch();
    let mut bad = 0usize;
    let mut by_rule: std::collections::BTreeMap<&str, u64> = Default::default();
    for line in clean.iter() {
        let out = engine.redact(&mut scratch, line);
        if std::ptr::eq(out, line) {
            continue;
        }
        bad += 1;
        let out = String::from_utf8_lossy(out).into_owned();
        let mut ids = Vec::new();
        scratch.drain_counts(|r, n| {
            let id = engine.rule(r).id;
            *by_rule.entry(id).or_default() += n;
            ids.push(format!("{id} x{n}"));
        });
        if bad <= 20 {
            eprintln!(
                "FALSE POSITIVE [{}]\n  in:  {}\n  out: {}",
                ids.join(", "),
                String::from_utf8_lossy(line),
                out
            );
        }
    }
    if bad == 0 {
        eprintln!(
            "check: clean corpus: 0 redactions in {} lines",
            clean.lines.len()
        );
        return;
    }
    eprintln!(
        "check: clean corpus: {bad} of {} lines redacted (false positives) by rule: {by_rule:?}",
        clean.lines.len()
    );
    if std::env::var("SCRUBS_BENCH_ALLOW_FALSE_POSITIVES").is_ok_and(|v| v == "1") {
        eprintln!("SCRUBS_BENCH_ALLOW_FALSE_POSITIVES=1: timing anyway");
    } else {
        panic!(
            "the engine redacted {bad} clean lines; fix the rules' precision \
             (or set SCRUBS_BENCH_ALLOW_FALSE_POSITIVES=1 to time anyway)"
        );
    }
}

/// At least one redaction per dense line in total; lines left untouched are
/// shown (missed identifiers) but only the total is asserted.
fn check_dense(engine: &Engine, dense: &Corpus) {
    let mut scratch = engine.scratch();
    let mut untouched = 0usize;
    for line in dense.iter() {
        let out = engine.redact(&mut scratch, line);
        if std::ptr::eq(out, line) {
            untouched += 1;
            if untouched <= 10 {
                eprintln!("MISSED (no redaction): {}", String::from_utf8_lossy(line));
            }
        }
    }
    let total = scratch.pending_total();
    let mut by_rule = Vec::new();
    scratch.drain_counts(|r, n| by_rule.push(format!("{}={n}", engine.rule(r).id)));
    eprintln!(
        "check: dense corpus: {total} redactions in {} lines ({} identifiers planted, \
         {untouched} lines untouched); by rule: {}",
        dense.lines.len(),
        dense.planted,
        by_rule.join(" ")
    );
    assert!(
        total as usize >= dense.lines.len(),
        "dense corpus: {total} redactions for {} lines; expected at least one a line",
        dense.lines.len()
    );

    // The two-thread split must see the same findings.
    let halves = dense.split(2);
    let mut scratches = [engine.scratch(), engine.scratch()];
    two_cores(engine, &mut scratches, dense, &halves);
    let mut split_total = 0;
    for s in &mut scratches {
        s.drain_counts(|_, n| split_total += n);
    }
    assert_eq!(
        split_total, total,
        "the two-thread run disagrees with one thread"
    );
}

// ---- summary ----------------------------------------------------------------

struct Timing {
    median: Duration,
    min: Duration,
    max: Duration,
}

/// Median, min and max of `passes` whole runs after one warm-up run.
fn time(passes: usize, mut f: impl FnMut() -> usize) -> Timing {
    black_box(f());
    let mut v: Vec<Duration> = (0..passes)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .collect();
    v.sort();
    Timing {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    }
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn report(label: &str, c: &Corpus, t: &Timing, threads: usize) -> f64 {
    let m = mbps(c.bytes(), t.median);
    let lps = c.lines.len() as f64 / t.median.as_secs_f64();
    println!(
        "{label:<28} {:>8.1} MB/s  ({:>6.1}..{:<6.1})  {:>10.0} lines/s  {:>8.1} MB/s/core",
        m,
        mbps(c.bytes(), t.max),
        mbps(c.bytes(), t.min),
        lps,
        m / threads as f64
    );
    m
}

fn summary(
    engine: &Engine,
    clean: &Corpus,
    dense: &Corpus,
    #[cfg(feature = "vrl-bench")] vrl: &vrl_side::Side,
) {
    const PASSES: usize = 7;
    println!("\nsummary: median of {PASSES} whole-corpus passes (min..max MB/s), decimal MB");
    let mut scratch = engine.scratch();
    let mut scratches = [engine.scratch(), engine.scratch()];
    for (name, corpus) in [("clean", clean), ("dense", dense)] {
        let t1 = time(PASSES, || {
            one_core(engine, &mut scratch, corpus, &corpus.lines)
        });
        let one = report(&format!("{name}/1core/scrubs"), corpus, &t1, 1);
        let halves = corpus.split(2);
        let t2 = time(PASSES, || {
            two_cores(engine, &mut scratches, corpus, &halves)
        });
        let two = report(&format!("{name}/2cores/scrubs"), corpus, &t2, 2);
        println!(
            "{:<28} {:>8.2}x",
            format!("{name}/2cores speed-up"),
            two / one
        );
        #[cfg(feature = "vrl-bench")]
        for (id, program) in vrl.programs() {
            let lines = vrl.lines(name);
            let passes = 3;
            let tv = time(passes, || vrl_side::run(program, lines));
            let v = report(&format!("{name}/1core/{id}"), corpus, &tv, 1);
            println!("{:<28} {:>8.1}x", format!("{name} scrubs/{id}"), one / v);
        }
    }
    let set = RuleSet::builtin().expect("the built-in pack loads");
    let tc = time(PASSES, || {
        Engine::new(&set, PseudonymKey::ephemeral())
            .unwrap()
            .rule_count()
    });
    let tl = time(PASSES, || Engine::builtin().unwrap().rule_count());
    println!(
        "compile/builtin (Engine::new)     {:>8.1} ms  ({:.1}..{:.1})",
        tc.median.as_secs_f64() * 1e3,
        tc.min.as_secs_f64() * 1e3,
        tc.max.as_secs_f64() * 1e3
    );
    println!(
        "compile/load_and_compile          {:>8.1} ms  ({:.1}..{:.1})",
        tl.median.as_secs_f64() * 1e3,
        tl.min.as_secs_f64() * 1e3,
        tl.max.as_secs_f64() * 1e3
    );
}

// ---- VRL ----------------------------------------------------------------------

/// Vector's `redact` function, compiled and run by the `vrl` crate as Vector
/// does, on an event `{"message": <line>}`.
#[cfg(feature = "vrl-bench")]
mod vrl_side {
    use std::collections::BTreeMap;

    use vrl::compiler::{state::RuntimeState, Context, Program, TargetValue, TimeZone};
    use vrl::prelude::Bytes;
    use vrl::value::{Secrets, Value};

    use super::Corpus;

    /// The pack's rules that a regex can express, one VRL filter each. VRL's
    /// `redact` only replaces regex matches: no validators (Luhn, SSA ranges,
    /// NANP, dates), no context words, no structured keys, no names. `'` is
    /// written `\x27` because VRL regex literals are quoted with it.
    pub const FILTERS: &[(&str, &str)] = &[
        ("ssn", r"\b\d{3}-\d{2}-\d{4}\b"),
        (
            "phone",
            r"(?:\+1[ .-]?)?(?:\(\d{3}\)[ -]?|\b\d{3}[-. ])\d{3}[-. ]\d{4}\b",
        ),
        (
            "email",
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
        ),
        ("card", r"\b(?:\d{4}[ -]?){3}\d{4}\b"),
        (
            "date",
            r"\b(?:\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})|\d{4}[/.-]\d{2}[/.-]\d{2})\b",
        ),
        (
            "date_textual",
            r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?,? \d{4}\b|\b\d{1,2}(?:st|nd|rd|th)? (?:of )?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?,? \d{4}\b",
        ),
        ("icd10", r"\b[A-TV-Z]\d[0-9AB]\.[0-9A-TV-Z]{1,4}\b"),
        (
            "mbi",
            r"\b[1-9][A-Za-z][A-Za-z0-9]\d-?[A-Za-z][A-Za-z0-9]\d-?[A-Za-z]{2}\d{2}\b",
        ),
        ("mrn", r"(?i)\b(?:mrn|medical record)[:#]? ?\d{5,12}\b"),
        (
            "ipv4",
            r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\b",
        ),
        (
            "ipv6",
            r"(?i)\b(?:[0-9a-f]{1,4}:){1,7}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?(?:\b|$)",
        ),
        (
            "address",
            r"\b\d{1,6}(?: [A-Z0-9][A-Za-z0-9.\x27-]*){1,4} (?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Trl)\b\.?",
        ),
        (
            "url_social",
            r"(?i)https?://(?:www\.|m\.)?(?:facebook|fb|instagram|twitter|x|linkedin|tiktok|youtube|threads|pinterest)\.com/(?:in/|@)?[a-z0-9_.-]+",
        ),
        (
            "url_person_path",
            r"(?i)/(?:patients?|members?|people|persons?|beneficiar(?:y|ies)|subscribers?|charts?|mrn)/(?:\d{3,}|[a-z]+(?:[-.][a-z]+){1,3})(?:[/?#\s\x22\x27]|$)",
        ),
    ];

    /// The VRL program: one `redact` call with every filter listed, or with
    /// all of them joined into one alternation.
    pub fn source(union: bool) -> String {
        let filters = if union {
            let joined: Vec<String> = FILTERS.iter().map(|(_, re)| format!("(?:{re})")).collect();
            format!("r'{}'", joined.join("|"))
        } else {
            let list: Vec<String> = FILTERS.iter().map(|(_, re)| format!("r'{re}'")).collect();
            list.join(", ")
        };
        format!(".message = redact(string!(.message), filters: [{filters}])")
    }

    pub fn compile(union: bool) -> Program {
        let src = source(union);
        match vrl::compiler::compile(&src, &vrl::stdlib::all()) {
            Ok(r) => r.program,
            Err(d) => panic!("VRL program does not compile: {d:?}\n{src}"),
        }
    }

    /// The compiled programs and each corpus's lines as VRL byte values.
    pub struct Side {
        filters: Program,
        union: Program,
        clean: Vec<Bytes>,
        dense: Vec<Bytes>,
    }

    impl Side {
        pub fn new(clean: &Corpus, dense: &Corpus, check: bool) -> Side {
            let lines = |c: &Corpus| {
                let all = Bytes::copy_from_slice(&c.text);
                c.lines
                    .iter()
                    .map(|r| all.slice(r.clone()))
                    .collect::<Vec<_>>()
            };
            let side = Side {
                filters: compile(false),
                union: compile(true),
                clean: lines(clean),
                dense: lines(dense),
            };
            if check {
                for (id, p) in side.programs() {
                    for name in ["clean", "dense"] {
                        let lines = side.lines(name);
                        let (changed, marks) = count(p, lines);
                        eprintln!(
                            "check: {id} on {name}: {marks} redactions, {changed} of {} lines changed",
                            lines.len()
                        );
                        if name == "dense" {
                            assert!(changed > 0, "{id} redacted nothing on the dense corpus");
                        }
                    }
                }
            }
            side
        }

        pub fn programs(&self) -> [(&'static str, &Program); 2] {
            [("vrl_filters", &self.filters), ("vrl_union", &self.union)]
        }

        pub fn lines(&self, name: &str) -> &[Bytes] {
            if name == "clean" {
                &self.clean
            } else {
                &self.dense
            }
        }
    }

    fn target() -> TargetValue {
        let mut map = BTreeMap::new();
        map.insert("message".into(), Value::Bytes(Bytes::new()));
        TargetValue {
            value: Value::Object(map),
            metadata: Value::Object(BTreeMap::new()),
            secrets: Secrets::default(),
        }
    }

    /// Runs the program on each line as an event; returns output bytes.
    pub fn run(program: &Program, lines: &[Bytes]) -> usize {
        each(program, lines, |_| {})
    }

    /// (lines changed, `[REDACTED]` marks) over a corpus.
    fn count(program: &Program, lines: &[Bytes]) -> (usize, usize) {
        let (mut changed, mut marks) = (0, 0);
        let mut i = 0;
        each(program, lines, |out| {
            if out != &lines[i][..] {
                changed += 1;
                marks += out.windows(10).filter(|w| w == b"[REDACTED]").count();
            }
            i += 1;
        });
        (changed, marks)
    }

    fn each(program: &Program, lines: &[Bytes], mut seen: impl FnMut(&[u8])) -> usize {
        let mut target = target();
        let mut state = RuntimeState::default();
        let tz = TimeZone::default();
        let mut n = 0;
        for line in lines {
            if let Value::Object(map) = &mut target.value {
                *map.get_mut("message").expect("message field") = Value::Bytes(line.clone());
            }
            let mut ctx = Context::new(&mut target, &mut state, &tz);
            program
                .resolve(&mut ctx)
                .expect("the program is infallible");
            // `redact` returns a UTF-8 `Value::String`; other programs may
            // leave `Value::Bytes`.
            let out: &[u8] = match &target.value {
                Value::Object(map) => match map.get("message") {
                    Some(Value::Bytes(b)) => b,
                    Some(Value::String(s)) => s.as_bytes(),
                    other => panic!("message is not text after the program: {other:?}"),
                },
                _ => panic!("the event is no longer an object"),
            };
            n += out.len();
            seen(out);
        }
        n
    }
}
