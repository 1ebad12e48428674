//! A clean line costs no allocation: after warm-up, redacting clean ops log
//! lines allocates nothing (the engine returns the input slice and reuses its
//! `Scratch`), and the signals' prefilter allocates nothing on lines that no
//! signal wants. Allocations are counted per thread by a counting global
//! allocator, so the test harness's own threads do not disturb the count.

#[path = "../benches/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use scrubs::Engine;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a const-initialised thread-local `Cell`, which neither
// allocates nor has a destructor.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: `ptr` and `layout` come from this allocator, which is System.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, which is System.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCS.with(Cell::get)
}

/// The clean corpus lines that the engine leaves untouched. Redactions on a
/// clean corpus are false positives, which the engine bench reports; this
/// test is about the cost of lines that pass through.
fn passing_lines<'c>(engine: &Engine, clean: &'c common::Corpus) -> Vec<&'c [u8]> {
    let mut scratch = engine.scratch();
    let lines: Vec<&[u8]> = clean
        .iter()
        .filter(|line| std::ptr::eq(engine.redact(&mut scratch, line), *line))
        .collect();
    assert!(
        lines.len() * 10 >= clean.lines.len() * 9,
        "only {} of {} clean lines pass through unredacted",
        lines.len(),
        clean.lines.len()
    );
    lines
}

#[test]
fn clean_lines_do_not_allocate_after_warm_up() {
    let engine = Engine::builtin().unwrap();
    let clean = common::clean(0x0005_C2B5_C1EA_0001, 400_000);
    let dense = common::dense(0x0005_C2B5_D3E5_0002, 100_000);
    let lines = passing_lines(&engine, &clean);

    // Warm-up: grow every scratch buffer, dense lines included.
    let mut scratch = engine.scratch();
    for line in dense.iter().chain(clean.iter()) {
        std::hint::black_box(engine.redact(&mut scratch, line));
    }
    scratch.drain_counts(|_, _| {});

    let before = allocations();
    for line in &lines {
        std::hint::black_box(engine.redact(&mut scratch, line));
    }
    let allocated = allocations() - before;
    assert_eq!(
        allocated,
        0,
        "{allocated} allocations while redacting {} clean lines",
        lines.len()
    );
}

/// Not a requirement, a measurement: allocations per PHI-dense line after
/// warm-up, printed with `--nocapture`.
#[test]
fn dense_line_allocations_are_reported() {
    let engine = Engine::builtin().unwrap();
    let dense = common::dense(0x0005_C2B5_D3E5_0002, 100_000);
    let mut scratch = engine.scratch();
    for line in dense.iter() {
        std::hint::black_box(engine.redact(&mut scratch, line));
    }
    let before = allocations();
    for line in dense.iter() {
        std::hint::black_box(engine.redact(&mut scratch, line));
    }
    let allocated = allocations() - before;
    eprintln!(
        "dense lines after warm-up: {allocated} allocations for {} lines ({} identifiers)",
        dense.lines.len(),
        dense.planted
    );
}

/// Signals cost no allocation on lines that match none of them: the
/// prefilter answers from the raw line, before any parsing (issue 13).
#[test]
fn lines_matching_no_signal_do_not_allocate() {
    use scrubs::signals::{RecordView, SignalsConfig};

    let engine = std::sync::Arc::new(Engine::builtin().unwrap());
    let config = SignalsConfig::from_yaml(
        "preset: telehealth\nfields: { event: evt, visit_id: consult_id }\n",
    )
    .unwrap();
    let mut signals = config
        .build(engine, b"a test hash key of 32 bytes ....")
        .unwrap();
    let clean = common::clean(0x0005_C2B5_C1EA_0001, 400_000);
    let skipped: Vec<&[u8]> = clean
        .iter()
        .filter(|l| !signals.wants(&RecordView::auto(l, Some(1))))
        .collect();
    assert!(
        skipped.len() * 100 >= clean.lines.len() * 99,
        "only {} of {} ops lines skipped by the prefilter",
        skipped.len(),
        clean.lines.len()
    );
    eprintln!(
        "{} of {} ops lines skipped by the prefilter",
        skipped.len(),
        clean.lines.len()
    );
    // Warm-up (the regex's per-thread cache).
    for l in &skipped {
        signals.observe(&RecordView::auto(l, Some(1)), 1);
    }
    let before = allocations();
    for l in &skipped {
        signals.observe(&RecordView::auto(l, Some(1)), 1);
    }
    let allocated = allocations() - before;
    assert_eq!(
        allocated,
        0,
        "{allocated} allocations for {} lines",
        skipped.len()
    );
}
