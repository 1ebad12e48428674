//! The heap the redaction engine holds: live bytes after compiling the
//! built-in pack, and the peak while compiling it, counted by a global
//! allocator that tracks every allocation's size.
//!
//! `cargo run --release --example engine_heap`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use scrubs::{Engine, PseudonymKey, RuleSet};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are atomics, which neither allocate nor block.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: `ptr` and `layout` come from this allocator, which is System.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Relaxed);
        grew(new_size);
        // SAFETY: `ptr` and `layout` come from this allocator, which is System.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn report(what: &str) {
    println!(
        "{what:<32} live {:>6} KiB, peak so far {:>6} KiB",
        LIVE.load(Relaxed) / 1024,
        PEAK.load(Relaxed) / 1024
    );
}

fn main() {
    report("start");
    let rules = RuleSet::builtin().expect("the built-in pack compiles");
    report("built-in rule set parsed");
    let engine = Engine::new(&rules, PseudonymKey::ephemeral()).expect("the engine builds");
    report("engine compiled");
    drop(rules);
    report("rule set dropped");
    let mut scratch = engine.scratch();
    let out = engine.redact_str(&mut scratch, "callback 415-555-0132 for SSN 219-09-9999");
    assert_eq!(out, "callback [REDACTED:PHONE] for SSN [REDACTED:SSN]");
    report("after one line");
}
