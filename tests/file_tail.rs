//! The file tail against real files: following, rename rotation,
//! copytruncate, restarts (graceful and `kill -9`), multi-line records,
//! huge lines, binary files, and `start_at: end`.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scrubs::metrics::Metrics;
use scrubs::pipeline::{Lane, LineBatch};
use scrubs::sources::file::{FileSourceConfig, MultilineConfig, StartAt};
use scrubs::topology::Context;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Line `i`: a sortable number and some padding, about 100 bytes.
fn line(i: usize) -> String {
    format!(
        "{i:09} GET /api/v1/visits/{i} 200 {} ms user-agent=test-writer",
        i % 997
    )
}

fn parse(l: &[u8]) -> usize {
    std::str::from_utf8(&l[..9]).unwrap().parse().unwrap()
}

fn config(include: Vec<String>) -> FileSourceConfig {
    FileSourceConfig {
        include,
        poll_interval: Duration::from_millis(20),
        rotate_wait: Duration::from_millis(300),
        ..FileSourceConfig::default()
    }
}

fn glob_of(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

/// A source with the default test configuration tailing `name` in `dir`,
/// its data directory `dir/data`.
fn start_tail(dir: &Path, name: &str) -> Src {
    start(config(vec![glob_of(dir, name)]), &dir.join("data"))
}

struct Src {
    handle: JoinHandle<()>,
    rx: mpsc::Receiver<LineBatch>,
    stop: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

fn start(cfg: FileSourceConfig, data: &Path) -> Src {
    let (tx, rx) = mpsc::channel(8);
    let (stop, stop_rx) = watch::channel(false);
    let metrics = Metrics::new();
    let cx = Context::new("app", metrics.clone()).with_shutdown(stop_rx);
    let handle = cfg.build(&cx, data, Lane::All, tx).unwrap().task;
    Src {
        handle,
        rx,
        stop,
        metrics,
    }
}

impl Src {
    /// Receives and acknowledges batches until `n` lines arrived.
    async fn collect(&mut self, n: usize, within: Duration) -> Vec<(String, Vec<u8>, u64)> {
        let mut got = Vec::with_capacity(n);
        let deadline = Instant::now() + within;
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let b = match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(b)) => b,
                _ => break,
            };
            assert_eq!(b.lines.len(), b.dropped_bytes.len());
            for (l, d) in b.lines.into_iter().zip(b.dropped_bytes) {
                got.push((b.stream.clone(), l, d));
            }
            let _ = b.ack.send(true);
        }
        got
    }

    /// Collects whatever arrives until nothing has come for `quiet`.
    async fn drain(&mut self, quiet: Duration) -> Vec<(String, Vec<u8>, u64)> {
        let mut got = Vec::new();
        while let Ok(Some(b)) = tokio::time::timeout(quiet, self.rx.recv()).await {
            for (l, d) in b.lines.into_iter().zip(b.dropped_bytes) {
                got.push((b.stream.clone(), l, d));
            }
            let _ = b.ack.send(true);
        }
        got
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        drop(self.rx);
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("source stops")
            .unwrap();
    }
}

fn append(path: &Path) -> BufWriter<File> {
    BufWriter::with_capacity(
        64 << 10,
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap(),
    )
}

/// Appends lines `range` to `path` (see [`line`]).
fn write_lines(path: &Path, range: std::ops::Range<usize>) {
    let mut w = append(path);
    for i in range {
        writeln!(w, "{}", line(i)).unwrap();
    }
}

fn numbers(got: &[(String, Vec<u8>, u64)]) -> Vec<usize> {
    got.iter().map(|(_, l, _)| parse(l)).collect()
}

/// (a) Lines written while the tail follows arrive once each, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_growing_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    File::create(&log).unwrap();
    let mut src = start_tail(dir.path(), "app.log");
    const N: usize = 100_000;
    let writer = std::thread::spawn(move || {
        let mut w = append(&log);
        for i in 0..N {
            writeln!(w, "{}", line(i)).unwrap();
            if i % 5000 == 4999 {
                w.flush().unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        w.flush().unwrap();
    });
    let got = src.collect(N, Duration::from_secs(30)).await;
    writer.join().unwrap();
    assert_eq!(numbers(&got), (0..N).collect::<Vec<_>>());
    assert!(got
        .iter()
        .all(|(s, l, d)| s.ends_with("app.log") && *d == 0 && l.len() > 50));
    assert!(src.drain(Duration::from_millis(200)).await.is_empty());
    assert_eq!(
        src.metrics
            .value("scrubs_source_lines_total", &[("source", "app")]),
        Some(N as u64)
    );
    src.stop().await;
}

/// Runs of consecutive numbers, for failure messages.
fn ranges(v: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &x in v {
        match out.last_mut() {
            Some((_, e)) if *e + 1 == x => *e = x,
            _ => out.push((x, x)),
        }
    }
    out.truncate(30);
    out
}

/// Checks that every number below `n` arrived exactly once and in order.
fn assert_exactly_once_in_order(nums: &[usize], n: usize) {
    let mut count: HashMap<usize, usize> = HashMap::new();
    for &x in nums {
        *count.entry(x).or_default() += 1;
    }
    let missing: Vec<usize> = (0..n).filter(|i| !count.contains_key(i)).collect();
    if !missing.is_empty() {
        eprintln!("missing: {:?}", ranges(&missing));
    }
    let mut dups: Vec<usize> = count
        .iter()
        .filter(|(_, &c)| c > 1)
        .map(|(&i, _)| i)
        .collect();
    dups.sort_unstable();
    if !dups.is_empty() {
        eprintln!("duplicated: {:?}", ranges(&dups));
    }
    assert!(
        missing.is_empty(),
        "{} lines missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(dups.is_empty(), "{} lines duplicated", dups.len());
    assert!(nums.windows(2).all(|w| w[0] < w[1]), "out of order");
}

/// Writes `n` lines at full speed, renaming the file every `every` lines
/// (20 times) and writing 500 more lines to the renamed file before
/// reopening (as a service does until it reopens its log). With `pause`,
/// each file stays at its path at least that long.
fn rename_writer(
    log: PathBuf,
    n: usize,
    every: usize,
    pause: Duration,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut w = append(&log);
        let mut rotations = 0;
        let mut i = 0;
        let mut since = Instant::now();
        while i < n {
            writeln!(w, "{}", line(i)).unwrap();
            i += 1;
            if i.is_multiple_of(every) && rotations < 20 {
                rotations += 1;
                w.flush().unwrap();
                std::thread::sleep(pause.saturating_sub(since.elapsed()));
                let to = log.with_extension(format!("log.{rotations}"));
                fs::rename(&log, to).unwrap();
                for _ in 0..500 {
                    writeln!(w, "{}", line(i)).unwrap();
                    i += 1;
                }
                w.flush().unwrap();
                w = append(&log);
                since = Instant::now();
            }
        }
        w.flush().unwrap();
        rotations
    })
}

/// (b) Rename-and-create rotation ×20 while writing at full speed, only
/// the live name tailed: all lines exactly once, in order. A file renamed
/// out of the globs before a scan saw it cannot be found by any poller, so
/// each file stays at its path for 5 poll intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_rotation_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    File::create(&log).unwrap();
    let mut src = start_tail(dir.path(), "app.log");
    const N: usize = 110_000;
    let writer = rename_writer(log, N, 5_000, Duration::from_millis(100));
    let got = src.collect(N, Duration::from_secs(30)).await;
    assert_eq!(writer.join().unwrap(), 20);
    assert!(got.iter().all(|(s, _, _)| s.ends_with("/app.log")));
    assert_exactly_once_in_order(&numbers(&got), N);
    assert!(src.drain(Duration::from_millis(300)).await.is_empty());
    let renames = src
        .metrics
        .value(
            "scrubs_file_rotations_total",
            &[("source", "app"), ("kind", "rename")],
        )
        .unwrap();
    assert_eq!(renames, 20);
    src.stop().await;
}

/// Regression: after a rename rotation the new file at the path was found
/// only at the next poll, so its first lines waited up to `poll_interval`.
/// A read that reaches the end of a file no longer at its path now expands
/// the globs at once. The poll interval here is 30 s: the new file's lines
/// must not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_finds_the_new_file_before_the_next_poll() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    {
        let mut w = append(&log);
        for i in 0..10 {
            writeln!(w, "{}", line(i)).unwrap();
        }
    }
    let cfg = FileSourceConfig {
        poll_interval: Duration::from_secs(30),
        ..config(vec![glob_of(dir.path(), "app.log")])
    };
    let mut src = start(cfg, &dir.path().join("data"));
    let first = src.collect(10, Duration::from_secs(5)).await;
    assert_eq!(first.len(), 10);
    // The writer writes on into the renamed file for a moment, as a service
    // does until it reopens its log, then opens the new one.
    let mut w = append(&log);
    fs::rename(&log, log.with_extension("log.1")).unwrap();
    writeln!(w, "{}", line(10)).unwrap();
    w.flush().unwrap();
    let mut w = append(&log);
    for i in 11..20 {
        writeln!(w, "{}", line(i)).unwrap();
    }
    w.flush().unwrap();
    let rest = src.collect(10, Duration::from_secs(5)).await;
    assert_eq!(
        rest.len(),
        10,
        "lines after the rotation within 5 s (the next poll is 30 s away)"
    );
    let mut got = numbers(&first);
    got.extend(numbers(&rest));
    got.sort_unstable();
    assert_exactly_once_in_order(&got, 20);
    src.stop().await;
}

/// (b') The same with no pause at all, rotated names in the glob
/// (`app.log*`): a file rotated before any scan saw it is found under its
/// new name. All lines exactly once, in order within each stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_rotation_at_full_speed_with_rotated_names_in_glob() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    File::create(&log).unwrap();
    let mut src = start_tail(dir.path(), "app.log*");
    const N: usize = 110_000;
    let writer = rename_writer(log, N, 5_000, Duration::ZERO);
    let got = src.collect(N, Duration::from_secs(30)).await;
    assert_eq!(writer.join().unwrap(), 20);
    let mut sorted = numbers(&got);
    sorted.sort_unstable();
    assert_exactly_once_in_order(&sorted, N);
    let mut per_stream: HashMap<&str, Vec<usize>> = HashMap::new();
    for (s, l, _) in &got {
        per_stream.entry(s.as_str()).or_default().push(parse(l));
    }
    for (s, v) in &per_stream {
        assert!(v.windows(2).all(|w| w[0] < w[1]), "out of order in {s}");
    }
    eprintln!("rename at full speed: {} streams", per_stream.len());
    assert!(src.drain(Duration::from_millis(300)).await.is_empty());
    src.stop().await;
}

/// Writes `n` lines, copying and truncating the file every `every` lines
/// (logrotate's copytruncate, done by the writer so that every line is in
/// either the copy or the file). With `settle`, the writer pauses before
/// the last `tail` lines of each segment, then truncates right after them.
fn copytruncate_writer(
    log: PathBuf,
    n: usize,
    every: usize,
    settle: Duration,
    tail: usize,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut w = append(&log);
        let mut rotations = 0;
        for i in 0..n {
            if tail > 0 && (i + tail).is_multiple_of(every) && rotations < 20 {
                w.flush().unwrap();
                std::thread::sleep(settle);
            }
            writeln!(w, "{}", line(i)).unwrap();
            if (i + 1).is_multiple_of(every) && rotations < 20 {
                rotations += 1;
                w.flush().unwrap();
                fs::copy(&log, log.with_extension(format!("log.{rotations}"))).unwrap();
                w.get_ref().set_len(0).unwrap();
            }
        }
        w.flush().unwrap();
        rotations
    })
}

/// (c) Copytruncate ×20 with the copies matched by the glob: the tail
/// continues in the copy where it stopped, so nothing is lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_with_copies_in_glob_is_lossless() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    File::create(&log).unwrap();
    let mut src = start_tail(dir.path(), "app.log*");
    const N: usize = 105_000;
    let writer = copytruncate_writer(log, N, 5_000, Duration::ZERO, 0);
    let got = src.collect(N, Duration::from_secs(40)).await;
    assert_eq!(writer.join().unwrap(), 20);
    let nums = numbers(&got);
    let mut sorted = nums.clone();
    sorted.sort_unstable();
    assert_exactly_once_in_order(&sorted, N);
    assert!(src.drain(Duration::from_millis(300)).await.is_empty());
    let truncations = src
        .metrics
        .value(
            "scrubs_file_rotations_total",
            &[("source", "app"), ("kind", "truncate")],
        )
        .unwrap();
    assert!(truncations <= 20, "{truncations}");
    src.stop().await;
}

/// (c') Copytruncate ×20 where only the live file is tailed: nothing is
/// repeated and nothing garbled, and the content after each truncation is
/// read from its start. Lines written after the tail's last read and
/// before a truncation exist only in the copy and are lost: a file that
/// was growing is read again every 10 ms, so only lines written within
/// about that long before the truncation are at risk. Each segment's last
/// 300 lines are written at full speed right before its truncation, after
/// a pause that lets the tail catch up: at most those can be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_without_copies_never_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    File::create(&log).unwrap();
    let mut src = start_tail(dir.path(), "app.log");
    const N: usize = 105_000;
    const AT_RISK: usize = 300;
    let writer = copytruncate_writer(log, N, 5_000, Duration::from_millis(250), AT_RISK);
    let mut got = src.collect(N, Duration::from_secs(5)).await;
    assert_eq!(writer.join().unwrap(), 20);
    got.extend(src.drain(Duration::from_millis(500)).await);
    let nums = numbers(&got);
    let mut sorted = nums.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), nums.len(), "duplicates");
    for (_, l, _) in &got {
        let i = parse(l);
        assert_eq!(l, line(i).as_bytes(), "garbled line");
    }
    let lost: Vec<usize> = (0..N)
        .filter(|i| sorted.binary_search(i).is_err())
        .collect();
    eprintln!(
        "copytruncate without copies: {} of {N} lines lost over 20 truncations ({} at risk)",
        lost.len(),
        20 * AT_RISK
    );
    // Only lines written in the last moments before a truncation are lost.
    let bad: Vec<usize> = lost
        .iter()
        .copied()
        .filter(|i| i % 5_000 < 5_000 - AT_RISK)
        .collect();
    assert!(
        bad.is_empty(),
        "{} lost outside the window: {:?}",
        bad.len(),
        ranges(&bad)
    );
    src.stop().await;
}

/// Regression: the checkpoint file was replaced (a new file, then a
/// rename) after every acknowledgement, and the lane waited for it before
/// the next batch could reach a sink. On a disk busy writing back the log
/// being tailed, the rename (which frees the old file's blocks) waited
/// 0.2 to 0.5 s on a file system mounted with `discard`, and the fsync
/// every second as long: the vendor lane stalled that long. An
/// acknowledgement now rewrites a live slot in place; the file operators
/// read is replaced in the background about once a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_rewrite_a_slot_in_place_not_the_checkpoint_file() {
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let data = dir.path().join("data");
    const N: usize = 20_000;
    write_lines(&log, 0..N);
    let cfg = FileSourceConfig {
        batch_max_lines: 100,
        ..config(vec![glob_of(dir.path(), "app.log")])
    };
    let mut src = start(cfg.clone(), &data);
    // Every version of the checkpoint file is a new file: count them by
    // inode and change time (a freed inode number is soon reused).
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (done, ckpt) = (done.clone(), data.join("checkpoints/app.json"));
        std::thread::spawn(move || {
            let mut inodes = std::collections::HashSet::new();
            while !done.load(Ordering::Relaxed) {
                if let Ok(m) = fs::metadata(&ckpt) {
                    inodes.insert((m.ino(), m.ctime(), m.ctime_nsec()));
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            inodes.len()
        })
    };
    let t0 = Instant::now();
    let got = src.collect(N, Duration::from_secs(30)).await;
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(numbers(&got), (0..N).collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_millis(100)).await;
    done.store(true, Ordering::Relaxed);
    let versions = sampler.join().unwrap();
    eprintln!(
        "{} acknowledgements in {secs:.2} s: {versions} versions of the checkpoint file",
        N / 100
    );
    assert!(
        (versions as f64) <= secs + 3.0,
        "{versions} versions of the checkpoint file in {secs:.2} s for {} acknowledgements",
        N / 100
    );
    for slot in ["app.json.live0", "app.json.live1"] {
        assert!(data.join("checkpoints").join(slot).exists(), "{slot}");
    }
    // With no acknowledgement since, the file operators read catches up
    // with the last one within about a second.
    let end: u64 = (0..N).map(|i| line(i).len() as u64 + 1).sum();
    let durable_offset = || -> Option<u64> {
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(data.join("checkpoints/app.json")).ok()?).ok()?;
        v["files"].as_object()?.values().next()?["offset"].as_u64()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while durable_offset() != Some(end) {
        assert!(
            Instant::now() < deadline,
            "the durable copy did not catch up: {:?} of {end}",
            durable_offset()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A crash now (no shutdown, so no final write of the durable copy):
    // the restarted source resumes after the last acknowledged line.
    src.handle.abort();
    let _ = (&mut src.handle).await;
    drop(src);
    write_lines(&log, N..N + 10);
    let mut again = start(cfg, &data);
    let got = again.collect(10, Duration::from_secs(10)).await;
    assert_eq!(numbers(&got), (N..N + 10).collect::<Vec<_>>());
    again.stop().await;
}

/// (d) Restart: the first source stops without acknowledging its last
/// batch; the second resumes at the checkpoint: nothing lost, only that
/// batch read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_at_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let data = dir.path().join("data");
    const N: usize = 20_000;
    write_lines(&log, 0..N);
    let cfg = FileSourceConfig {
        batch_max_lines: 1000,
        ..config(vec![glob_of(dir.path(), "app.log")])
    };
    let mut a = start(cfg.clone(), &data);
    let acked = a.collect(5000, Duration::from_secs(10)).await;
    assert_eq!(numbers(&acked), (0..5000).collect::<Vec<_>>());
    // One more batch, taken and never acknowledged.
    let unacked = tokio::time::timeout(Duration::from_secs(5), a.rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parse(&unacked.lines[0]), 5000);
    drop(unacked);
    a.stop().await;

    let ckpt: serde_json::Value =
        serde_json::from_slice(&fs::read(data.join("checkpoints/app.json")).unwrap()).unwrap();
    let files = ckpt["files"].as_object().unwrap();
    assert_eq!(files.len(), 1);
    let entry = files.values().next().unwrap();
    let offset: usize = (0..5000).map(|i| line(i).len() + 1).sum();
    assert_eq!(entry["offset"].as_u64().unwrap(), offset as u64);

    let mut b = start(cfg, &data);
    let rest = b.collect(N - 5000, Duration::from_secs(10)).await;
    assert_eq!(numbers(&rest), (5000..N).collect::<Vec<_>>());
    assert!(b.drain(Duration::from_millis(200)).await.is_empty());
    b.stop().await;
}

/// (d') The pipeline refuses a batch: it is read again from the checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_batches_are_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    write_lines(&log, 0..3000);
    let cfg = FileSourceConfig {
        batch_max_lines: 1000,
        ..config(vec![glob_of(dir.path(), "app.log")])
    };
    let mut src = start(cfg, &dir.path().join("data"));
    let first = src.rx.recv().await.unwrap();
    assert_eq!(parse(&first.lines[0]), 0);
    first.ack.send(false).unwrap();
    // Batches already in flight are stale; the refused lines come again.
    let got = src.drain(Duration::from_millis(500)).await;
    let mut nums = numbers(&got);
    nums.sort_unstable();
    nums.dedup();
    assert_eq!(nums, (0..3000).collect::<Vec<_>>());
    assert_eq!(
        src.metrics
            .value("scrubs_source_nacks_total", &[("source", "app")]),
        Some(1)
    );
    src.stop().await;
}

/// A pipeline that does not keep up: the writer is never slowed (the tail
/// just stops reading), the lag is reported, and it drains to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_pipeline_lags_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    File::create(&log).unwrap();
    let mut src = start_tail(dir.path(), "app.log");
    const N: usize = 50_000;
    let t = Instant::now();
    write_lines(&log, 0..N);
    let wrote = t.elapsed();
    // Nobody reads: the channel and the in-flight window fill, then reading stops.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lag = |src: &Src| {
        src.metrics
            .value("scrubs_file_lag_bytes", &[("source", "app")])
            .unwrap()
    };
    let size = fs::metadata(&log).unwrap().len();
    assert_eq!(lag(&src), size, "nothing acknowledged yet");
    assert!(
        wrote < Duration::from_secs(2),
        "the writer is never blocked"
    );
    let got = src.collect(N, Duration::from_secs(10)).await;
    assert_eq!(numbers(&got), (0..N).collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(lag(&src), 0);
    src.stop().await;
}

/// A file renamed out of the globs is read to its end; once it stops
/// growing, its unterminated last line is emitted and it is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_away_file_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, format!("{}\n{}", line(0), line(1))).unwrap();
    let mut src = start_tail(dir.path(), "app.log");
    let got = src.collect(1, Duration::from_secs(5)).await;
    assert_eq!(numbers(&got), vec![0]);
    // The partial line waits while the file is live.
    assert!(src.drain(Duration::from_millis(400)).await.is_empty());
    fs::rename(&log, dir.path().join("app.old")).unwrap();
    let got = src.collect(1, Duration::from_secs(5)).await;
    assert_eq!(numbers(&got), vec![1]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        src.metrics
            .value("scrubs_file_open_files", &[("source", "app")]),
        Some(0)
    );
    src.stop().await;
    let ckpt = fs::read_to_string(dir.path().join("data/checkpoints/app.json")).unwrap();
    assert!(
        !ckpt.contains("app.log"),
        "a finished file is forgotten: {ckpt}"
    );
}

/// (e) Java stack traces joined into one record each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiline_stack_traces() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let text = "\
2024-05-01 10:00:00.001 ERROR [main] c.t.VisitService - visit failed
java.lang.IllegalStateException: room closed
\tat com.telehealth.VisitService.join(VisitService.java:42)
\tat com.telehealth.Api.handle(Api.java:7)
Caused by: java.io.IOException: reset
\t... 2 more
2024-05-01 10:00:00.002 INFO  [main] c.t.VisitService - retrying
2024-05-01 10:00:00.003 WARN  [main] c.t.VisitService - slow
\tat com.telehealth.Slow.x(Slow.java:1)
";
    fs::write(&log, text).unwrap();
    let cfg = FileSourceConfig {
        multiline: Some(MultilineConfig {
            timeout: Duration::from_millis(200),
            ..MultilineConfig::new(r"^\d{4}-\d{2}-\d{2} ")
        }),
        ..config(vec![glob_of(dir.path(), "app.log")])
    };
    let mut src = start(cfg, &dir.path().join("data"));
    let got = src.collect(3, Duration::from_secs(5)).await;
    let recs: Vec<String> = got
        .iter()
        .map(|(_, l, _)| String::from_utf8(l.clone()).unwrap())
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        recs,
        vec![
            lines[..6].join("\n"),
            lines[6].to_string(),
            lines[7..].join("\n")
        ]
    );
    // The last record was emitted by the timeout; its end is checkpointed.
    src.stop().await;
    let ckpt = fs::read_to_string(dir.path().join("data/checkpoints/app.json")).unwrap();
    assert!(
        ckpt.contains(&format!("\"offset\": {}", text.len())),
        "{ckpt}"
    );
}

/// (f) A 10 MiB line without a newline (written in two halves), then
/// normal lines: the line is cut with its dropped count, later lines are
/// intact, and the tail never buffers the whole line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_line_is_cut_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let cfg = FileSourceConfig {
        max_line_bytes: 64 << 10,
        ..config(vec![glob_of(dir.path(), "app.log")])
    };
    let mut src = start(cfg, &dir.path().join("data"));
    let mut w = append(&log);
    let chunk: Vec<u8> = (0..64 * 1024)
        .map(|i| if i % 100 == 99 { b' ' } else { b'x' })
        .collect();
    let total = 10 << 20;
    for _ in 0..total / chunk.len() / 2 {
        w.write_all(&chunk).unwrap();
    }
    w.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..total / chunk.len() / 2 {
        w.write_all(&chunk).unwrap();
    }
    writeln!(w).unwrap();
    for i in 0..100 {
        writeln!(w, "{}", line(i)).unwrap();
    }
    w.flush().unwrap();
    let got = src.collect(101, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 101);
    let (_, cut, dropped) = &got[0];
    assert!(
        cut.len() <= 64 << 10 && cut.len() > 60 << 10,
        "{}",
        cut.len()
    );
    assert!(cut.ends_with(b" "), "cut at a delimiter");
    assert_eq!(cut.len() as u64 + dropped, total as u64);
    assert_eq!(numbers(&got[1..]), (0..100).collect::<Vec<_>>());
    assert!(got[1..].iter().all(|(_, _, d)| *d == 0));
    assert_eq!(
        src.metrics
            .value("scrubs_source_truncated_lines_total", &[("source", "app")]),
        Some(1)
    );
    src.stop().await;
}

/// (g) A binary file (NUL bytes, invalid UTF-8, long runs without a newline)
/// in the glob is read as bounded lines of bytes, and a file that appears
/// later is picked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_files_and_new_files() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB of pseudo-random bytes.
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let bin: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    fs::write(dir.path().join("core.log"), &bin).unwrap();
    fs::write(dir.path().join("nul.log"), b"a\0b\xff\xfe\n\0\0\0\nok\n").unwrap();
    let cfg = FileSourceConfig {
        max_line_bytes: 4096,
        ..config(vec![glob_of(dir.path(), "*.log")])
    };
    let mut src = start(cfg, &dir.path().join("data"));
    let mut got = src.drain(Duration::from_millis(500)).await;
    assert!(got.iter().all(|(_, l, _)| l.len() <= 4096));
    let nul: Vec<&Vec<u8>> = got
        .iter()
        .filter(|(s, _, _)| s.ends_with("nul.log"))
        .map(|(_, l, _)| l)
        .collect();
    assert_eq!(
        nul,
        vec![
            &b"a\0b\xff\xfe".to_vec(),
            &b"\0\0\0".to_vec(),
            &b"ok".to_vec()
        ]
    );
    let from_bin: u64 = got
        .iter()
        .filter(|(s, _, _)| s.ends_with("core.log"))
        .map(|(_, l, d)| l.len() as u64 + d + 1)
        .sum();
    // Every byte up to the last newline is accounted for.
    let last_nl = bin.iter().rposition(|&b| b == b'\n').unwrap() as u64 + 1;
    assert_eq!(from_bin, last_nl);

    fs::write(
        dir.path().join("later.log"),
        format!("{}\n{}\n", line(1), line(2)),
    )
    .unwrap();
    got = src.collect(2, Duration::from_secs(5)).await;
    assert_eq!(numbers(&got), vec![1, 2]);
    assert!(got[0].0.ends_with("later.log"));
    src.stop().await;
}

/// (h) `start_at: end` skips what is there (including the rest of an
/// unterminated last line) and reads what comes after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_at_end_skips_existing_content() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    {
        let mut w = append(&log);
        for i in 0..1000 {
            writeln!(w, "{}", line(i)).unwrap();
        }
        write!(w, "half a li").unwrap();
    }
    let cfg = FileSourceConfig {
        start_at: StartAt::End,
        ..config(vec![glob_of(dir.path(), "app.log")])
    };
    let mut src = start(cfg, &dir.path().join("data"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    {
        let mut w = append(&log);
        writeln!(w, "ne").unwrap();
        for i in 1000..1005 {
            writeln!(w, "{}", line(i)).unwrap();
        }
    }
    let got = src.collect(5, Duration::from_secs(5)).await;
    assert_eq!(numbers(&got), (1000..1005).collect::<Vec<_>>());
    assert!(src.drain(Duration::from_millis(200)).await.is_empty());
    src.stop().await;
}

/// A file shorter than the fingerprint is read at once, and a restart
/// resumes it (identified by its prefix and inode) without repeating it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_files_are_read_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let data = dir.path().join("data");
    fs::write(&log, "started\n").unwrap();
    let cfg = config(vec![glob_of(dir.path(), "app.log")]);
    let mut a = start(cfg.clone(), &data);
    let got = a.collect(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].1, b"started");
    a.stop().await;
    {
        let mut w = append(&log);
        writeln!(w, "second").unwrap();
        // Long enough now for a full fingerprint.
        for i in 0..10 {
            writeln!(w, "{}", line(i)).unwrap();
        }
    }
    let mut b = start(cfg.clone(), &data);
    let got = b.collect(11, Duration::from_secs(5)).await;
    assert_eq!(got[0].1, b"second");
    assert_eq!(numbers(&got[1..]), (0..10).collect::<Vec<_>>());
    b.stop().await;
    // Now checkpointed under the full fingerprint.
    let mut c = start(cfg, &data);
    assert!(c.drain(Duration::from_millis(300)).await.is_empty());
    c.stop().await;
}

// ---- kill -9 -------------------------------------------------------------

const KILL_LINES: usize = 1_000_000;
const KILL_BATCH: usize = 1024;

/// The child half of `kill_9_and_restart`: tails `SCRUBS_KILL9_DIR/in.log`
/// and appends every batch to `out.log` before acknowledging it (a
/// pipeline that makes batches durable), until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by kill_9_and_restart in a child process"]
async fn kill9_child() {
    let Ok(dir) = std::env::var("SCRUBS_KILL9_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let inflight = std::env::var("SCRUBS_KILL9_INFLIGHT").map_or(4, |v| v.parse().unwrap());
    let cfg = FileSourceConfig {
        batch_max_lines: KILL_BATCH,
        max_inflight_batches: inflight,
        ..config(vec![glob_of(&dir, "in.log")])
    };
    let mut src = start(cfg, &dir.join("data"));
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("out.log"))
        .unwrap();
    let mut buf = Vec::new();
    while let Some(b) = src.rx.recv().await {
        // Deliver only once every earlier batch is checkpointed, as the
        // pipeline does (`LineBatch::earlier_committed`).
        if let Some(gate) = b.earlier_committed {
            if gate.await.is_err() {
                let _ = b.ack.send(false);
                continue;
            }
        }
        buf.clear();
        for l in &b.lines {
            buf.extend_from_slice(l);
            buf.push(b'\n');
        }
        out.write_all(&buf).unwrap();
        let _ = b.ack.send(true);
    }
}

/// kill -9 while tailing 1,000,000 lines, twice, then restart: no line
/// lost, and with the default 4 batches in flight at most one batch
/// delivered twice per kill.
///
/// Regression: batches taken by the pipeline after the acknowledgement of
/// an earlier one and before its checkpoint was written were delivered too,
/// so 1.5 batches per kill came again (up to `max_inflight_batches`).
#[test]
fn kill_9_and_restart() {
    kill_9_and_restart_with(4);
}

/// With `max_inflight_batches: 1`, the same bound.
#[test]
fn kill_9_and_restart_one_in_flight() {
    kill_9_and_restart_with(1);
}

fn kill_9_and_restart_with(inflight: usize) {
    let max_batches_per_kill = 1;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.log");
    write_lines(&input, 0..KILL_LINES);
    let expect = fs::metadata(&input).unwrap().len();
    let out = dir.path().join("out.log");
    let spawn = || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kill9_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SCRUBS_KILL9_DIR", dir.path())
            .env("SCRUBS_KILL9_INFLIGHT", inflight.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let out_len = || fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let start = Instant::now();
    let mut kills = 0;
    for frac in [0.3, 0.6] {
        let mut child = spawn();
        while out_len() < (expect as f64 * frac) as u64 {
            assert!(start.elapsed() < Duration::from_secs(60), "too slow");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    let mut child = spawn();
    let mut last = 0;
    let mut still = Instant::now();
    // Until everything arrived and nothing more comes.
    while out_len() < expect || still.elapsed() < Duration::from_millis(300) {
        assert!(start.elapsed() < Duration::from_secs(60), "too slow");
        if out_len() != last {
            last = out_len();
            still = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let text = fs::read(&out).unwrap();
    let mut count = vec![0u32; KILL_LINES];
    for l in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        count[parse(l)] += 1;
    }
    let lost = count.iter().filter(|&&c| c == 0).count();
    let repeated: usize = count.iter().map(|&c| c.saturating_sub(1) as usize).sum();
    eprintln!(
        "kill -9 x{kills}, {inflight} in flight: {KILL_LINES} lines in {:?}, {lost} lost, {repeated} delivered twice ({:.2} batches per kill)",
        start.elapsed(),
        repeated as f64 / KILL_BATCH as f64 / kills as f64
    );
    assert_eq!(lost, 0);
    assert!(
        repeated <= kills * max_batches_per_kill * KILL_BATCH,
        "{repeated} lines delivered twice"
    );
}

/// The tail alone: lines per second from a file already written (debug
/// builds are several times slower than release).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    const N: usize = 1_000_000;
    {
        let mut w = append(&log);
        let pad = "x".repeat(100);
        for i in 0..N {
            writeln!(w, "{} {pad}", line(i)).unwrap();
        }
    }
    let mut src = start_tail(dir.path(), "app.log");
    let t = Instant::now();
    let got = src.collect(N, Duration::from_secs(120)).await;
    let el = t.elapsed();
    assert_eq!(got.len(), N);
    eprintln!(
        "tail throughput: {N} lines of ~{} bytes in {el:?} = {:.0} lines/s",
        got[0].1.len(),
        N as f64 / el.as_secs_f64()
    );
    src.stop().await;
}
