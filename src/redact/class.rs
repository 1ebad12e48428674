//! Byte classes for the tokenizers.
//!
//! Every scanner in the engine asks the same questions of each byte (is it a
//! digit, a letter, a joiner inside a token?). `u8::is_ascii_alphanumeric`
//! and friends compile to a chain of range checks; one load from a 256-byte
//! table answers all of them at once, which matters because the tokenizer
//! looks at every byte of every line.

/// An ASCII digit.
pub const DIGIT: u8 = 1;
/// An ASCII letter.
pub const ALPHA: u8 = 2;
/// An ASCII upper-case letter (also has `ALPHA`).
pub const UPPER: u8 = 4;
/// A byte that can be part of a multi-byte UTF-8 sequence: treated as a
/// letter by the tokenizers, so accented names stay whole. Bytes that never
/// occur in UTF-8 (0xC0, 0xC1, 0xF5 to 0xFF) are not: they are separators,
/// so an identifier next to binary garbage (`\xff219-09-9999`) is still a
/// standalone value and is redacted.
pub const HIGH: u8 = 8;
/// `.`, `-` or `_`: joins two token parts (`usr_8f3a`, `v1.2.3`).
pub const TOKEN_JOIN: u8 = 16;
/// `'` or `-`: joins two parts of a word (`O'Brien`, `Smith-Jones`).
pub const WORD_JOIN: u8 = 32;
/// Any byte of 0x80 or above, valid in UTF-8 or not. The prose scan counts
/// words of a message and takes every such byte as part of one; the
/// tokenizers use [`HIGH`], which leaves out the bytes UTF-8 never uses.
pub const NON_ASCII: u8 = 64;

/// A byte that is part of a token: a letter, a digit or a non-ASCII byte.
pub const TOKEN: u8 = DIGIT | ALPHA | HIGH;
/// A byte that is part of a word: a letter or a non-ASCII byte.
pub const WORD: u8 = ALPHA | HIGH;

static TABLE: [u8; 256] = build();

const fn build() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        t[b] = classify(b as u8);
        b += 1;
    }
    t
}

/// The class bits of one byte: what [`of`] looks up. A `const fn`, so that
/// other tables built at compile time share these definitions.
pub const fn classify(c: u8) -> u8 {
    let mut k = 0;
    if c.is_ascii_digit() {
        k |= DIGIT;
    }
    if c.is_ascii_alphabetic() {
        k |= ALPHA;
    }
    if c.is_ascii_uppercase() {
        k |= UPPER;
    }
    if c >= 0x80 && !matches!(c, 0xC0 | 0xC1 | 0xF5..=0xFF) {
        k |= HIGH;
    }
    if c == b'.' || c == b'-' || c == b'_' {
        k |= TOKEN_JOIN;
    }
    if c == b'\'' || c == b'-' {
        k |= WORD_JOIN;
    }
    if c >= 0x80 {
        k |= NON_ASCII;
    }
    k
}

/// [`is_word`] for tables built at compile time.
pub const fn is_word_byte(b: u8) -> bool {
    classify(b) & TOKEN != 0 || b == b'_'
}

/// Whether `b` is part of a word for boundary checks: a token byte or `_`.
#[inline(always)]
pub fn is_word(b: u8) -> bool {
    is(b, TOKEN) || b == b'_'
}

/// The class bits of `b`.
#[inline(always)]
pub fn of(b: u8) -> u8 {
    TABLE[b as usize]
}

/// Whether `b` has any of the class bits in `mask`.
#[inline(always)]
pub fn is(b: u8, mask: u8) -> bool {
    of(b) & mask != 0
}

/// Whether `hay` holds `b`. Most OTLP attribute values are a few bytes
/// long, and each is asked for the separators of every format (`|`, `~`,
/// `)`, `=`, ...): on so short a value `memchr`'s set-up and dispatch cost
/// several times the plain loop (five calls were 17% of the engine's
/// instructions on a short value). Longer lines go to `memchr`.
#[inline]
pub fn has_byte(hay: &[u8], b: u8) -> bool {
    if hay.len() <= SHORT {
        hay.contains(&b)
    } else {
        memchr::memchr(b, hay).is_some()
    }
}

/// The longest value [`has_byte`] searches with a plain loop.
const SHORT: usize = 32;

/// The eight bytes of `s` at `i`, little-endian. Panics unless `s` holds
/// them (the callers' loops keep `i + 8 <= s.len()`).
#[inline(always)]
pub fn load_u64(s: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"))
}

/// The four bytes of `s` at `i`, little-endian.
#[inline(always)]
pub fn load_u32(s: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(s[i..i + 4].try_into().expect("4 bytes"))
}

/// Whether two short byte strings of the same length are equal, compared
/// inline with (overlapping) word loads. A slice `==` calls `memcmp`, whose
/// call and dispatch cost more than the comparison for the keys and words
/// the engine looks up (a few to 30 bytes): `memcmp` was 3.3% of the
/// engine's cycles on clean lines.
#[inline(always)]
pub fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if load_u64(a, i) != load_u64(b, i) {
                return false;
            }
            i += 8;
        }
        load_u64(a, n - 8) == load_u64(b, n - 8)
    } else if n >= 4 {
        load_u32(a, 0) == load_u32(b, 0) && load_u32(a, n - 4) == load_u32(b, n - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The inline comparison agrees with `==` on every length it is
        /// used for, equal or differing in any one byte.
        #[test]
        fn same_short_is_slice_equality(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            at in 0usize..40,
            flip in 1u8..=255,
        ) {
            let mut b = a.clone();
            proptest::prop_assert!(same_short(&a, &b));
            if !b.is_empty() {
                let at = at % b.len();
                b[at] ^= flip;
                proptest::prop_assert!(!same_short(&a, &b));
            }
            proptest::prop_assert_eq!(same_short(&a, &a[..a.len().saturating_sub(1)]), a.is_empty());
        }
    }

    proptest::proptest! {
        #[test]
        fn has_byte_is_contains(
            hay in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            b in proptest::prelude::any::<u8>(),
        ) {
            proptest::prop_assert_eq!(has_byte(&hay, b), hay.contains(&b));
        }
    }

    #[test]
    fn table_agrees_with_std() {
        for b in 0..=255u8 {
            // The bytes std::str::from_utf8 rejects wherever they appear.
            let utf8 = b >= 0x80 && std::str::from_utf8(&[0xC3, b]).is_ok()
                || [0xC2..=0xDF, 0xE0..=0xEF, 0xF0..=0xF4]
                    .iter()
                    .any(|r| r.contains(&b));
            assert_eq!(is(b, DIGIT), b.is_ascii_digit(), "{b}");
            assert_eq!(is(b, ALPHA), b.is_ascii_alphabetic(), "{b}");
            assert_eq!(is(b, UPPER), b.is_ascii_uppercase(), "{b}");
            assert_eq!(is(b, HIGH), utf8, "{b}");
            assert_eq!(is(b, TOKEN), b.is_ascii_alphanumeric() || utf8, "{b}");
            assert_eq!(is(b, WORD), b.is_ascii_alphabetic() || utf8, "{b}");
            assert_eq!(is(b, TOKEN_JOIN), matches!(b, b'.' | b'-' | b'_'), "{b}");
            assert_eq!(is(b, WORD_JOIN), matches!(b, b'\'' | b'-'), "{b}");
            assert_eq!(is(b, NON_ASCII), !b.is_ascii(), "{b}");
        }
    }
}
