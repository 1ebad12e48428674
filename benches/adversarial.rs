//! The engine's cost on hostile lines: one line, up to the file source's
//! 1 MiB line limit, made of one shape repeated (`key=` chains, nested JSON,
//! context words next to numbers, ...; the shapes are data, in
//! `adversarial.jsonl`). Each shape is timed at 64 KiB and at 1 MiB; the
//! engine's cost must grow with the line's length, not with its square:
//! the bench fails when a byte of the long line costs more than
//! `MAX_SLOWDOWN` times a byte of the short one.
//!
//! ```text
//! cargo bench --bench adversarial
//! ```
//!
//! Regression: the first version of this bench found lines of 256 KB that
//! took from 5 s to more than 30 s each (a refused value read again for
//! every pair inside it, a line-wide search per key, every literal hit
//! visited per number), enough to stall a sidecar's pipeline.

use std::hint::black_box;
use std::time::{Duration, Instant};

use scrubs::Engine;
use serde::Deserialize;

/// Bytes per byte the long line may cost relative to the short one; linear
/// work gives about 1, quadratic work 16.
const MAX_SLOWDOWN: f64 = 3.0;
const SHORT: usize = 64 << 10;
const LONG: usize = 1 << 20;

#[derive(Deserialize)]
struct Shape {
    name: String,
    open: String,
    close: String,
}

fn line(shape: &Shape, bytes: usize) -> Vec<u8> {
    let unit = shape.open.len() + shape.close.len();
    let k = (bytes / unit).max(1);
    let mut v = shape.open.repeat(k).into_bytes();
    v.extend_from_slice(shape.close.repeat(k).as_bytes());
    v
}

/// The median time of `runs` redactions of `line`, and the redactions made.
fn time(engine: &Engine, line: &[u8], runs: usize) -> (Duration, u64) {
    let mut scratch = engine.scratch();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        black_box(engine.redact(&mut scratch, black_box(line)));
        times.push(t.elapsed());
    }
    let mut redactions = 0;
    scratch.drain_counts(|_, n| redactions += n);
    times.sort_unstable();
    (times[runs / 2], redactions / runs as u64)
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let engine = Engine::builtin().expect("the built-in pack compiles");
    let shapes: Vec<Shape> = include_str!("adversarial.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a shape"))
        .collect();
    // `cargo test --benches` runs each shape once at the short length: the
    // shapes parse and the engine takes them.
    let (runs, long) = if bench_mode { (5, LONG) } else { (1, SHORT) };
    println!(
        "{:<24} {:>12} {:>12} {:>9} {:>11}",
        "shape", "64 KiB MB/s", "1 MiB MB/s", "slowdown", "redactions"
    );
    let mut worst: Option<(f64, &str)> = None;
    for shape in &shapes {
        let short = line(shape, SHORT);
        let long_line = line(shape, long);
        let (ts, _) = time(&engine, &short, runs * 4);
        let (tl, redactions) = time(&engine, &long_line, runs);
        let per_byte = |t: Duration, n: usize| t.as_secs_f64() / n as f64;
        let slowdown = per_byte(tl, long_line.len()) / per_byte(ts, short.len()).max(1e-12);
        let mbps = |t: Duration, n: usize| n as f64 / t.as_secs_f64().max(1e-9) / 1e6;
        println!(
            "{:<24} {:>12.1} {:>12.1} {:>8.2}x {:>11}",
            shape.name,
            mbps(ts, short.len()),
            mbps(tl, long_line.len()),
            slowdown,
            redactions
        );
        if worst.is_none_or(|(w, _)| slowdown > w) {
            worst = Some((slowdown, &shape.name));
        }
    }
    if let Some((w, name)) = worst.filter(|_| bench_mode) {
        assert!(
            w <= MAX_SLOWDOWN,
            "{name}: a byte of a 1 MiB line costs {w:.1}x a byte of a 64 KiB one (limit {MAX_SLOWDOWN}x)"
        );
    }
}
