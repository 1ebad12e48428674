//! Byte classes for 64 bytes at a time: the one module of the crate allowed
//! `unsafe`, for the SSE2 intrinsics that classify 16 bytes per instruction.
//!
//! The engine's scanners walk the words of every line. Walking them byte by
//! byte costs a mispredicted branch at nearly every word end, because word
//! lengths vary; a bit mask of the word bytes of a 64-byte block gives word
//! starts and ends with a shift and a `trailing_zeros` instead. Building that
//! mask byte by byte cost more than it saved (tried in an earlier session);
//! with SSE2 it is about a dozen vector instructions per 16 bytes.
//!
//! SSE2 is part of the x86_64 baseline, so the vector path needs no run-time
//! detection there: `target_feature = "sse2"` is known at compile time. The
//! words of log lines are short (most under 16 bytes), so wider vectors
//! (AVX2) would save little on a 64-byte block; other targets use the scalar
//! path, which gives the same masks (a property test and the `simd_masks`
//! fuzz target compare the two on arbitrary bytes).

use super::class;

/// The class masks of up to 64 bytes: bit `k` stands for byte `at + k`.
/// Bits for bytes past the end of the input are 0 (as for a separator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Block {
    /// Word bytes for boundary checks ([`class::is_word`]): ASCII letters
    /// and digits, `_`, and bytes that occur in multi-byte UTF-8.
    pub word: u64,
    /// Token bytes ([`class::TOKEN`]): the same without `_`.
    pub token: u64,
    /// ASCII digits.
    pub digit: u64,
    /// ASCII letters.
    pub alpha: u64,
    /// `:`, which an IPv6 address has within its first five bytes, and
    /// which separates a key from its value.
    pub colon: u64,
    /// `=`, the other key-value separator.
    pub eq: u64,
    /// Where the tokenizer stops: token bytes, and `\`, `+` and `(`,
    /// which start an escape or a number (`+1 415...`, `(415) ...`).
    pub stop: u64,
}

/// The masks of `hay[at..at + 64]` (shorter at the end of `hay`).
#[inline(always)]
pub fn block(hay: &[u8], at: usize) -> Block {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        if let Some(chunk) = hay.get(at..at.saturating_add(64)) {
            let chunk: &[u8; 64] = chunk.try_into().expect("64 bytes");
            return sse2::block64(chunk);
        }
        block_tail(hay, at)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        block_scalar(hay, at)
    }
}

/// [`block`] for the last bytes of a line, copied into a zeroed block (zero
/// is a separator). Kept out of line so that the full-block path, inlined
/// into the scanners, stays small.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(never)]
fn block_tail(hay: &[u8], at: usize) -> Block {
    let mut buf = [0u8; 64];
    let tail = &hay[at.min(hay.len())..];
    buf[..tail.len()].copy_from_slice(tail);
    // Only the lanes that hold bytes of the line are classified: most OTLP
    // attribute values fit in one, and their masks above it stay 0.
    sse2::block_lanes(&buf, tail.len().div_ceil(16))
}

/// [`block`] one byte at a time: the fallback for targets without SSE2 and
/// the reference the vector path is tested against.
#[cfg_attr(
    all(
        target_arch = "x86_64",
        target_feature = "sse2",
        not(feature = "fuzzing")
    ),
    allow(dead_code)
)]
pub fn block_scalar(hay: &[u8], at: usize) -> Block {
    let mut m = Block::default();
    let end = hay.len().min(at.saturating_add(64));
    for (k, &b) in hay[at.min(end)..end].iter().enumerate() {
        let token = class::is(b, class::TOKEN);
        m.word |= u64::from(class::is_word(b)) << k;
        m.token |= u64::from(token) << k;
        m.digit |= u64::from(b.is_ascii_digit()) << k;
        m.alpha |= u64::from(b.is_ascii_alphabetic()) << k;
        m.colon |= u64::from(b == b':') << k;
        m.eq |= u64::from(b == b'=') << k;
        m.stop |= u64::from(token || matches!(b, b'\\' | b'+' | b'(')) << k;
    }
    m
}

/// The class masks of a whole line, one [`Block`] per 64 bytes, computed
/// once and read by every scanner of the line: the literal scan and the
/// tokenizer used to classify the same bytes each on its own, the
/// tokenizer at whatever offset it had reached (a block every 48 bytes, and
/// the copy of the line's tail for the last one more than once).
#[derive(Default)]
pub struct LineMasks {
    /// The blocks of `hay[0..64]`, `hay[64..128]`, ..., then two blocks of
    /// zeros, so that the masks at any offset up to the line's length are
    /// two loads without a bounds branch.
    blocks: Vec<Block>,
    len: usize,
}

/// The masks are a picture of the line's digits and letters: `Debug` shows
/// only their size.
impl std::fmt::Debug for LineMasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineMasks")
            .field("len", &self.len)
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

impl LineMasks {
    /// Classifies `hay`. Allocates only when a line is longer than every
    /// line before it.
    pub fn classify(&mut self, hay: &[u8]) {
        self.blocks.clear();
        self.blocks
            .extend((0..hay.len().div_ceil(64)).map(|k| block(hay, k * 64)));
        self.blocks.extend([Block::default(); 2]);
        self.len = hay.len();
    }

    /// The length of the line classified last.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The 64-byte blocks of the line (the last one padded with zeros).
    pub fn blocks(&self) -> &[Block] {
        &self.blocks[..self.blocks.len() - 2]
    }

    /// The masks of the 64 bytes from `i` on (bit 0 is byte `i`; bits past
    /// the line's end are 0), for any `i` up to the line's length: two
    /// blocks funnel-shifted. Inlined, so only the fields a caller reads
    /// are computed.
    #[inline(always)]
    pub fn at(&self, i: usize) -> Block {
        let (j, r) = (i / 64, (i % 64) as u32);
        let (a, b) = (&self.blocks[j], &self.blocks[j + 1]);
        // `b << (64 - r)` without the shift by 64 when `r` is 0.
        let f = |lo: u64, hi: u64| (lo >> r) | ((hi << 1) << (63 - r));
        Block {
            word: f(a.word, b.word),
            token: f(a.token, b.token),
            digit: f(a.digit, b.digit),
            alpha: f(a.alpha, b.alpha),
            colon: f(a.colon, b.colon),
            eq: f(a.eq, b.eq),
            stop: f(a.stop, b.stop),
        }
    }

    /// The end of the word starting at or continuing through `at`: the
    /// first byte at or after `at` that is not a word byte, or the line's
    /// length.
    #[inline]
    pub fn word_end(&self, mut at: usize) -> usize {
        while at < self.len {
            let rest = !self.at(at).word;
            if rest != 0 {
                return (at + rest.trailing_zeros() as usize).min(self.len);
            }
            at += 64;
        }
        self.len
    }

    /// The first byte at or after `i` that stops the tokenizer (see
    /// [`Block::stop`]), or the line's length.
    #[inline]
    pub fn next_stop(&self, mut i: usize) -> usize {
        while i < self.len {
            let m = self.at(i).stop;
            if m != 0 {
                return (i + m.trailing_zeros() as usize).min(self.len);
            }
            i += 64;
        }
        self.len
    }

    /// The end of the run of token bytes starting at `i`, and whether it
    /// holds an ASCII digit and an ASCII letter.
    #[inline]
    pub fn token_run(&self, mut i: usize) -> (usize, bool, bool) {
        let (mut digit, mut alpha) = (false, false);
        while i < self.len {
            let m = self.at(i);
            let run = (!m.token).trailing_zeros() as usize;
            let low = if run >= 64 { !0 } else { (1u64 << run) - 1 };
            digit |= m.digit & low != 0;
            alpha |= m.alpha & low != 0;
            i += run;
            if run < 64 {
                break;
            }
        }
        (i.min(self.len), digit, alpha)
    }

    /// The offsets of the line's key-value separators in order: every `=`,
    /// and every `:` unless `eq_only`. Read from the masks: the pair
    /// scanner used to call `memchr2` once per separator, some 60
    /// instructions a call on the short stretches between them.
    pub fn separators(&self, eq_only: bool) -> impl Iterator<Item = usize> + '_ {
        let colon = if eq_only { 0 } else { !0 };
        self.blocks()
            .iter()
            .enumerate()
            .flat_map(move |(k, b)| Bits(b.eq | (b.colon & colon)).map(move |i| k * 64 + i))
    }

    /// Whether a `:` lies 1 to 4 bytes after `i`, as after an IPv6
    /// address's first group.
    #[inline(always)]
    pub fn colon_soon(&self, i: usize) -> bool {
        (self.at(i).colon >> 1) & 0xF != 0
    }
}

/// The set bits of a mask, lowest first.
pub struct Bits(pub u64);

impl Iterator for Bits {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(i)
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_and_si128, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8,
        _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128,
    };

    use super::Block;

    /// The masks of one 16-byte lane, in the low 16 bits of each field.
    #[inline(always)]
    fn lane(chunk: &[u8; 64], k: usize) -> Block {
        let lane: &[u8] = &chunk[k * 16..k * 16 + 16];
        // SAFETY: SSE2 is enabled at compile time (the cfg on this module),
        // so every intrinsic here is available; `_mm_loadu_si128` reads 16
        // bytes with no alignment requirement, and `lane` is a slice of
        // exactly 16 bytes, so the read stays inside it.
        unsafe {
            let v = _mm_loadu_si128(lane.as_ptr().cast::<__m128i>());
            // Digits: `v - '0'` below 10, tested as a signed comparison
            // after moving the range to start at -128.
            let d = _mm_cmplt_epi8(
                _mm_add_epi8(v, _mm_set1_epi8(0x50)),
                _mm_set1_epi8(-118), // 0x8A: -128 + 10
            );
            // Letters: `(v | 0x20) - 'a'` below 26, the same way.
            let lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
            let l = _mm_cmplt_epi8(
                _mm_add_epi8(lower, _mm_set1_epi8(0x1F)),
                _mm_set1_epi8(-102), // 0x9A: -128 + 26
            );
            // Bytes of multi-byte UTF-8: at or above 0x80 (negative as i8)
            // but not 0xC0, 0xC1 or 0xF5..=0xFF, which UTF-8 never holds.
            let neg = _mm_cmplt_epi8(v, _mm_setzero_si128());
            let c0c1 = _mm_cmpeq_epi8(
                _mm_and_si128(v, _mm_set1_epi8(0xFEu8 as i8)),
                _mm_set1_epi8(0xC0u8 as i8),
            );
            let f5ff = _mm_cmpgt_epi8(v, _mm_set1_epi8(-12)); // >= 0xF5 among negatives
            let high = _mm_andnot_si128(_mm_or_si128(c0c1, f5ff), neg);
            let token = _mm_or_si128(_mm_or_si128(d, l), high);
            let word = _mm_or_si128(token, _mm_cmpeq_epi8(v, _mm_set1_epi8(b'_' as i8)));
            let colon = _mm_cmpeq_epi8(v, _mm_set1_epi8(b':' as i8));
            let eq = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'=' as i8));
            let stop = _mm_or_si128(
                _mm_or_si128(token, _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8))),
                _mm_or_si128(
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'+' as i8)),
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'(' as i8)),
                ),
            );
            let bits = |x: __m128i| u64::from(_mm_movemask_epi8(x) as u16);
            Block {
                word: bits(word),
                token: bits(token),
                digit: bits(d),
                alpha: bits(l),
                colon: bits(colon),
                eq: bits(eq),
                stop: bits(stop),
            }
        }
    }

    #[inline(always)]
    pub fn block64(chunk: &[u8; 64]) -> Block {
        block_lanes(chunk, 4)
    }

    /// The masks of the first `lanes` 16-byte lanes of `chunk` (at most 4);
    /// the bits of the others are 0.
    #[inline(always)]
    pub fn block_lanes(chunk: &[u8; 64], lanes: usize) -> Block {
        let mut m = Block::default();
        for k in 0..lanes.min(4) {
            let l = lane(chunk, k);
            let at = 16 * k;
            m.word |= l.word << at;
            m.token |= l.token << at;
            m.digit |= l.digit << at;
            m.alpha |= l.alpha << at;
            m.colon |= l.colon << at;
            m.eq |= l.eq << at;
            m.stop |= l.stop << at;
        }
        m
    }
}

/// Checks every function of this module against byte-by-byte answers at
/// every offset of `hay` (and one past its end): the property the vector
/// path must keep on any input. Panics on the first difference. Used by the
/// property test and the `simd_masks` fuzz target.
#[cfg(any(test, feature = "fuzzing"))]
pub fn check_against_scalar(hay: &[u8]) {
    let stop_byte = |b: u8| class::is(b, class::TOKEN) || matches!(b, b'\\' | b'+' | b'(');
    let mut masks = LineMasks::default();
    masks.classify(hay);
    assert_eq!(masks.blocks().len(), hay.len().div_ceil(64));
    for at in 0..=hay.len() {
        assert_eq!(block(hay, at), block_scalar(hay, at), "masks at {at}");
        let rest = &hay[at..];
        let first = |f: &dyn Fn(u8) -> bool| {
            rest.iter()
                .position(|&b| f(b))
                .map_or(hay.len(), |i| at + i)
        };
        let word_end = first(&|b| !class::is_word(b));
        assert_eq!(masks.word_end(at), word_end, "line word end at {at}");
        assert_eq!(masks.at(at), block_scalar(hay, at), "line masks at {at}");
        let stop = first(&stop_byte);
        let end = first(&|b| !class::is(b, class::TOKEN));
        let run = &hay[at..end];
        let token = (
            end,
            run.iter().any(u8::is_ascii_digit),
            run.iter().any(u8::is_ascii_alphabetic),
        );
        let colon = (1..=4).any(|k| hay.get(at + k) == Some(&b':'));
        assert_eq!(masks.colon_soon(at), colon, "colon at {at}");
        assert_eq!(masks.token_run(at), token, "token run at {at}");
        assert_eq!(masks.next_stop(at), stop, "stop at {at}");
    }
    for eq_only in [false, true] {
        let want: Vec<usize> = (0..hay.len())
            .filter(|&i| hay[i] == b'=' || (!eq_only && hay[i] == b':'))
            .collect();
        let got: Vec<usize> = masks.separators(eq_only).collect();
        assert_eq!(got, want, "separators, eq_only {eq_only}");
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn every_byte_value_in_every_position() {
        for b in 0..=255u8 {
            for k in [0usize, 1, 15, 16, 17, 31, 32, 47, 48, 63] {
                let mut hay = [b' '; 64];
                hay[k] = b;
                assert_eq!(block(&hay, 0), block_scalar(&hay, 0), "byte {b} at {k}");
            }
        }
    }

    /// The masks picture where a line's digits and letters are: `Debug`
    /// shows their size only.
    #[test]
    fn debug_shows_no_masks() {
        let mut m = LineMasks::default();
        m.classify(b"SSN 219-09-9999");
        assert_eq!(format!("{m:?}"), "LineMasks { len: 15, blocks: 3 }");
    }

    #[test]
    fn word_ends() {
        let mut m = LineMasks::default();
        let hay = b"ab_c9 x\xc3\xa9y";
        m.classify(hay);
        assert_eq!(m.word_end(0), 5);
        assert_eq!(m.word_end(5), 5);
        assert_eq!(m.word_end(6), hay.len());
        let long = [b'a'; 200];
        m.classify(&long);
        assert_eq!(m.word_end(3), 200);
    }

    proptest! {
        #[test]
        fn vector_and_scalar_agree(hay in proptest::collection::vec(any::<u8>(), 0..=200)) {
            check_against_scalar(&hay);
        }

        /// Lines made of the bytes the masks tell apart, so that runs and
        /// boundaries fall on every lane and block position.
        #[test]
        fn vector_and_scalar_agree_on_text(
            hay in proptest::collection::vec(
                proptest::sample::select(b"aZ09_ :=\\+(.-'\x80\xc0\xc3\xa9\xf5\xff".to_vec()),
                0..=200,
            )
        ) {
            check_against_scalar(&hay);
        }
    }
}
