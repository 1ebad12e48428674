//! The line redactor on arbitrary bytes: what `scrubs redact` and the file
//! and stdin sources do to every line.

#![no_main]

use std::cell::RefCell;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use scrubs::{Engine, Scratch};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::builtin().expect("the built-in pack compiles"))
}

thread_local! {
    // One scratch for the whole run, as a source keeps one per thread: state
    // left behind by one line must not change the next line's result.
    static SCRATCH: RefCell<Scratch> = RefCell::new(engine().scratch());
}

fuzz_target!(|data: &[u8]| {
    let e = engine();
    SCRATCH.with_borrow_mut(|s| {
        let out = e.redact(s, data).to_vec();
        // One line in, one line out: a replacement never adds a line break.
        if !data.contains(&b'\n') {
            assert!(!out.contains(&b'\n'), "redaction added a line break");
        }
        // The result depends on the line only: the same line again, now
        // after itself rather than after the previous input, gives the same
        // output (pseudonyms are keyed, not random per call).
        let twice = e.redact(s, data);
        assert!(twice == &out[..], "same line, different output");
        // Redacted output is itself a line a later stage may redact again
        // (a pipeline of two sidecars); that must not panic either.
        let again = e.redact(s, &out);
        if !out.contains(&b'\n') {
            assert!(!again.contains(&b'\n'), "second pass added a line break");
        }
    });
});
