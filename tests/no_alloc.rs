//! A clean line costs no allocation: after warm-up, redacting clean ops log
//! lines allocates nothing (the engine returns the input slice and reuses its
//! `Scratch`). Allocations are counted per thread by a counting global
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

#[test]
fn clean_lines_do_not_allocate_after_warm_up() {
    let engine = Engine::builtin().unwrap();
    let mut scratch = engine.scratch();
    let clean = common::clean(0x0005_C2B5_C1EA_0001, 400_000);
    let dense = common::dense(0x0005_C2B5_D3E5_0002, 100_000);

    // Warm-up: grow every scratch buffer, dense lines included.
    for line in dense.iter().chain(clean.iter()) {
        std::hint::black_box(engine.redact(&mut scratch, line));
    }
    scratch.drain_counts(|_, _| {});

    let before = allocations();
    let mut redacted = 0;
    for line in clean.iter() {
        let out = engine.redact(&mut scratch, line);
        if !std::ptr::eq(out, line) {
            redacted += 1;
        }
    }
    let allocated = allocations() - before;
    assert_eq!(redacted, 0, "clean corpus lines were redacted (false positives)");
    assert_eq!(
        allocated,
        0,
        "{allocated} allocations while redacting {} clean lines",
        clean.lines.len()
    );
}

#[test]
fn a_clean_line_does_not_allocate_on_a_fresh_scratch_after_one_line() {
    // The first line on a scratch may size its buffers; from the second
    // clean line on, nothing.
    let engine = Engine::builtin().unwrap();
    let mut scratch = engine.scratch();
    let clean = common::clean(7, 20_000);
    std::hint::black_box(engine.redact(&mut scratch, clean.line(0)));
    let before = allocations();
    for line in clean.iter().skip(1) {
        std::hint::black_box(engine.redact(&mut scratch, line));
    }
    let allocated = allocations() - before;
    assert_eq!(allocated, 0, "{allocated} allocations on clean lines after the first");
}
