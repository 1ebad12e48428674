//! The load generator of the whole-process benchmarks
//! (`scripts/bench-sidecar.sh`): appends log lines to a file at a target
//! rate, or as fast as it can, the way a service writes its log.
//!
//! ```text
//! cargo run --release --example loadgen -- --out PATH [--rate LINES_PER_S] [--duration SECS]
//!     [--lines N] [--tag TAG] [--seed N] [--audit-pm 50] [--canary-pm 20] [--dense-pm 100] [--visit-pm 0]
//!     [--tick-ms 10] [--max-write-bytes 1048576] [--rotate-bytes N] [--report PATH]
//! ```
//!
//! * Lines come from `examples/bench_lines.rs`: about 200 bytes, JSON,
//!   logfmt, plain text and access logs; per mille `--audit-pm` audit lines
//!   (`audit=true`), `--canary-pm` lines with the fixed PHI canaries and
//!   `--dense-pm` lines with random PHI, `--visit-pm` visit events in the
//!   telehealth preset's default schema (`event`, `visit_id`, media stats). Each ends with `run=TAG seq=N
//!   gen_ns=T`, T the wall clock (Unix ns) when its batch was made.
//! * `--rate 0` (the default) writes as fast as it can. Otherwise every
//!   `--tick-ms` it writes the lines that are due since the start, in one
//!   `write(2)` per batch (at most `--max-write-bytes` a call).
//! * It stops after `--duration` seconds or `--lines` lines, whichever
//!   comes first.
//! * `--rotate-bytes N` renames the file to `PATH.1` (replacing it) once it
//!   holds N bytes and starts a new one, as logrotate does.
//! * At exit it prints (and writes to `--report`) one JSON object: lines,
//!   bytes and lines of each kind written, the achieved rate, and how long
//!   `write(2)` calls took (max, p99, p99.9, how many over 1 and 10 ms): the
//!   proof that the reader never blocks the writer.

#[path = "bench_lines.rs"]
mod lines;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

struct Args {
    out: PathBuf,
    rate: f64,
    duration: Duration,
    lines: u64,
    tag: String,
    seed: u64,
    mix: lines::Mix,
    tick: Duration,
    max_write: usize,
    rotate_bytes: u64,
    report: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: PathBuf::new(),
        rate: 0.0,
        duration: Duration::from_secs(60),
        lines: 0,
        tag: "run".into(),
        seed: 0x5C2B5,
        mix: lines::Mix::default(),
        tick: Duration::from_millis(10),
        max_write: 1 << 20,
        rotate_bytes: 0,
        report: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{k}: {e}"));
        match k.as_str() {
            "--out" => a.out = v.into(),
            "--rate" => a.rate = num(&v)?,
            "--duration" => a.duration = Duration::from_secs_f64(num(&v)?),
            "--lines" => a.lines = num(&v)? as u64,
            "--tag" => a.tag = v,
            "--seed" => a.seed = num(&v)? as u64,
            "--audit-pm" => a.mix.audit = num(&v)? as u64,
            "--canary-pm" => a.mix.canary = num(&v)? as u64,
            "--dense-pm" => a.mix.dense = num(&v)? as u64,
            "--visit-pm" => a.mix.visit = num(&v)? as u64,
            "--tick-ms" => a.tick = Duration::from_secs_f64(num(&v)? / 1000.0),
            "--max-write-bytes" => a.max_write = num(&v)? as usize,
            "--rotate-bytes" => a.rotate_bytes = num(&v)? as u64,
            "--report" => a.report = Some(v.into()),
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.out.as_os_str().is_empty() {
        return Err("--out is required".into());
    }
    if a.tag.is_empty()
        || !a
            .tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err("--tag must be letters, digits and _".into());
    }
    if a.mix.audit + a.mix.canary + a.mix.dense + a.mix.visit > 1000 {
        return Err(
            "--audit-pm + --canary-pm + --dense-pm + --visit-pm must not exceed 1000".into(),
        );
    }
    Ok(a)
}

fn open(path: &PathBuf) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let mut file = open(&args.out).unwrap_or_else(|e| {
        eprintln!("loadgen: {}: {e}", args.out.display());
        std::process::exit(1)
    });
    let mut file_bytes = file.metadata().map_or(0, |m| m.len());
    let mut gen = lines::Gen::new(args.seed, args.mix);
    let mut buf: Vec<u8> = Vec::with_capacity(args.max_write + 1024);
    let mut kinds = [0u64; 5];
    let (mut written, mut bytes, mut rotations) = (0u64, 0u64, 0u64);
    let mut write_us: Vec<u32> = Vec::new();
    let mut max_behind = 0u64;
    let limit = if args.lines == 0 {
        u64::MAX
    } else {
        args.lines
    };
    let start = Instant::now();
    let start_ns = now_ns();
    loop {
        let elapsed = start.elapsed();
        if elapsed >= args.duration || written >= limit {
            break;
        }
        let due = if args.rate > 0.0 {
            ((args.rate * elapsed.as_secs_f64()) as u64).min(limit)
        } else {
            limit
        };
        if due <= written {
            let next = Duration::from_secs_f64((written + 1) as f64 / args.rate);
            let wait = next
                .saturating_sub(elapsed)
                .min(args.tick)
                .max(args.tick / 4);
            std::thread::sleep(wait);
            continue;
        }
        if args.rate > 0.0 {
            max_behind = max_behind.max(due - written);
        }
        // One batch: the lines due, up to one write's worth.
        buf.clear();
        let gen_ns = now_ns();
        while written < due && buf.len() < args.max_write {
            let k = gen.line(&args.tag, written, gen_ns, &mut buf);
            kinds[k as usize] += 1;
            written += 1;
        }
        let mut off = 0;
        while off < buf.len() {
            let t1 = Instant::now();
            match file.write(&buf[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("loadgen: write {}: {e}", args.out.display());
                    std::process::exit(1);
                }
            }
            write_us.push(t1.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        }
        bytes += buf.len() as u64;
        file_bytes += buf.len() as u64;
        if args.rotate_bytes > 0 && file_bytes >= args.rotate_bytes {
            let rotated = args.out.with_extension(match args.out.extension() {
                Some(e) => format!("{}.1", e.to_string_lossy()),
                None => "1".into(),
            });
            if let Err(e) = std::fs::rename(&args.out, &rotated) {
                eprintln!("loadgen: rotate: {e}");
                std::process::exit(1);
            }
            file = open(&args.out).unwrap_or_else(|e| {
                eprintln!("loadgen: {}: {e}", args.out.display());
                std::process::exit(1)
            });
            file_bytes = 0;
            rotations += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let end_ns = now_ns();
    let mut sorted = write_us.clone();
    sorted.sort_unstable();
    let pct = |p: f64| -> u32 {
        if sorted.is_empty() {
            return 0;
        }
        let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[i.clamp(1, sorted.len()) - 1]
    };
    let mean = if write_us.is_empty() {
        0.0
    } else {
        write_us.iter().map(|&v| f64::from(v)).sum::<f64>() / write_us.len() as f64
    };
    let report = json!({
        "tag": args.tag,
        "file": args.out,
        "offered_rate": args.rate,
        "lines": written,
        "bytes": bytes,
        "avg_line_bytes": if written > 0 { bytes as f64 / written as f64 } else { 0.0 },
        "clean_lines": kinds[lines::Kind::Clean as usize],
        "dense_lines": kinds[lines::Kind::Dense as usize],
        "canary_lines": kinds[lines::Kind::Canary as usize],
        "audit_lines": kinds[lines::Kind::Audit as usize],
        "visit_lines": kinds[lines::Kind::Visit as usize],
        "seconds": secs,
        "rate_lines_s": written as f64 / secs,
        "mb_s": bytes as f64 / secs / 1e6,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "writes": write_us.len(),
        "write_us": {
            "mean": (mean * 10.0).round() / 10.0,
            "p50": pct(50.0),
            "p99": pct(99.0),
            "p999": pct(99.9),
            "max": sorted.last().copied().unwrap_or(0),
        },
        "writes_over_1ms": write_us.iter().filter(|&&v| v > 1_000).count(),
        "writes_over_10ms": write_us.iter().filter(|&&v| v > 10_000).count(),
        "max_behind_lines": max_behind,
        "rotations": rotations,
    });
    let text = report.to_string();
    println!("{text}");
    if let Some(p) = &args.report {
        if let Err(e) = std::fs::write(p, format!("{text}\n")) {
            eprintln!("loadgen: {}: {e}", p.display());
            std::process::exit(1);
        }
    }
}
