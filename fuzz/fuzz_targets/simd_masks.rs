//! The engine's SSE2 byte-class masks (src/redact/simd.rs), the one module
//! with `unsafe` code, against byte-by-byte answers on arbitrary bytes: the
//! masks, word ends, token runs, tokenizer stops and the IPv6 colon check at
//! every offset.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    scrubs::fuzzing::simd_masks(data);
});
