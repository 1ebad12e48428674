//! Signals cost no allocation on lines that match none of them: the
//! prefilter answers from the raw line, before any parsing (issue 13).
//! Allocations are counted per thread by a counting global allocator, as in
//! `tests/no_alloc.rs`.

#[path = "../benches/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use scrubs::signals::{RecordView, SignalsConfig};
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

#[test]
fn lines_matching_no_signal_do_not_allocate() {
    let engine = Arc::new(Engine::builtin().unwrap());
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
