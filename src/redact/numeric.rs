//! The digit-run scanner: SSNs, phone numbers, cards, dates and IPs without
//! regex.
//!
//! A numeric token is a run of digit groups joined by single separators
//! (`-`, `.`, `/`, space), optionally led by `+` or an area code in
//! parentheses, with a non-alphanumeric byte on both sides. Its *shape* maps
//! each digit to `d` and keeps the separators: `(415) 555-0132` has the shape
//! `(ddd) ddd-dddd`. Rules name the shapes they accept, so matching a token is
//! one hash lookup, and validators (Luhn, SSA ranges) decide the rest.

use std::collections::HashMap;

use super::names::BuildFx;

/// The longest shape the scanner builds; longer tokens are not identifiers.
// `exact_lens` is a u64 bitmap of shape lengths, so shapes stay under 64.
pub const MAX_SHAPE: usize = 48;
/// The most space-separated segments tracked in one token.
const MAX_SEGMENTS: usize = 8;

/// Rules keyed by exact shape, and rules that accept a digit count in any
/// grouping.
#[derive(Debug)]
pub struct NumericMatcher {
    exact: HashMap<Box<[u8]>, Vec<u32>, BuildFx>,
    /// Bit `n` is set when some exact shape is `n` bytes long: most digit
    /// runs in ops logs (times, counts, ports) have no shape of their length
    /// and skip the hash lookup.
    exact_lens: u64,
    loose: Vec<Loose>,
    /// For each digit count, bit `k` set when `loose[k]` accepts it: a
    /// digit run looks up its few candidates instead of testing every loose
    /// rule's range (most runs in ops logs, times and counts, have none).
    /// Loose rules past the 64th are tested one by one.
    loose_by_digits: Box<[u64; MAX_SHAPE + 1]>,
}

#[derive(Debug)]
struct Loose {
    rule: u32,
    min: usize,
    max: usize,
    prefix: Option<u8>,
}

impl Default for NumericMatcher {
    fn default() -> NumericMatcher {
        NumericMatcher {
            exact: HashMap::default(),
            exact_lens: 0,
            loose: Vec::new(),
            loose_by_digits: Box::new([0; MAX_SHAPE + 1]),
        }
    }
}

impl NumericMatcher {
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.loose.is_empty()
    }

    /// Adds a rule's shape templates; returns an error message naming the
    /// offending template.
    pub fn add_shapes(&mut self, rule: u32, templates: &[String]) -> Result<(), String> {
        for t in templates {
            for shape in expand_template(t)? {
                self.exact_lens |= 1 << shape.len();
                let entry = self.exact.entry(shape.into_boxed_slice()).or_default();
                if !entry.contains(&rule) {
                    entry.push(rule);
                }
            }
        }
        Ok(())
    }

    pub fn add_digits(&mut self, rule: u32, min: usize, max: usize, prefix: Option<u8>) {
        if let Some(bit) = 1u64.checked_shl(self.loose.len() as u32) {
            for d in min..=max.min(MAX_SHAPE) {
                self.loose_by_digits[d] |= bit;
            }
        }
        self.loose.push(Loose {
            rule,
            min,
            max,
            prefix,
        });
    }

    /// Calls `f` with each rule whose shape or digit count fits; `digits`
    /// is the number of `d` in `shape`.
    pub fn candidates(&self, shape: &[u8], digits: usize, mut f: impl FnMut(u32)) {
        debug_assert_eq!(digits, shape.iter().filter(|&&b| b == b'd').count());
        if self.exact_lens & (1 << shape.len()) != 0 {
            if let Some(rules) = self.exact.get(shape) {
                rules.iter().for_each(|&r| f(r));
            }
        }
        let fits = |l: &Loose| {
            (l.min..=l.max).contains(&digits) && l.prefix.is_none_or(|p| shape.first() == Some(&p))
        };
        let mut bits = self.loose_by_digits[digits.min(MAX_SHAPE)];
        while bits != 0 {
            let l = &self.loose[bits.trailing_zeros() as usize];
            bits &= bits - 1;
            if fits(l) {
                f(l.rule);
            }
        }
        for l in self.loose.iter().skip(64) {
            if fits(l) {
                f(l.rule);
            }
        }
    }
}

/// Expands `d`, `d{n}` and `d{m,n}` into concrete shapes.
fn expand_template(t: &str) -> Result<Vec<Vec<u8>>, String> {
    let b = t.as_bytes();
    let mut out: Vec<Vec<u8>> = vec![Vec::new()];
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'd' {
            let (lo, hi, next) = if b.get(i + 1) == Some(&b'{') {
                let close = t[i..]
                    .find('}')
                    .ok_or_else(|| format!("shape '{t}': unclosed '{{'"))?
                    + i;
                let inner = &t[i + 2..close];
                let parse = |s: &str| {
                    s.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("shape '{t}': bad count '{inner}'"))
                };
                let (lo, hi) = match inner.split_once(',') {
                    Some((a, z)) => (parse(a)?, parse(z)?),
                    None => (parse(inner)?, parse(inner)?),
                };
                if lo == 0 || lo > hi || hi > 32 {
                    return Err(format!("shape '{t}': count must be 1..=32"));
                }
                (lo, hi, close + 1)
            } else {
                (1, 1, i + 1)
            };
            let mut next_out = Vec::new();
            for prefix in &out {
                for n in lo..=hi {
                    let mut s = prefix.clone();
                    s.extend(std::iter::repeat_n(b'd', n));
                    next_out.push(s);
                }
            }
            out = next_out;
            i = next;
        } else if b"-./ ()+".contains(&c) {
            out.iter_mut().for_each(|s| s.push(c));
            i += 1;
        } else {
            return Err(format!(
                "shape '{t}': character '{}' is not a digit placeholder (d) or a separator (- . / space ( ) +)",
                c as char
            ));
        }
        if out.len() > 10_000 {
            return Err(format!("shape '{t}' expands to more than 10000 shapes"));
        }
    }
    if out.iter().any(|s| s.len() > MAX_SHAPE) {
        return Err(format!("shape '{t}' is longer than {MAX_SHAPE} characters"));
    }
    Ok(out)
}

/// One scanned numeric token.
pub struct NumToken {
    pub start: usize,
    pub end: usize,
    pub shape: [u8; MAX_SHAPE],
    pub len: usize,
    /// `(shape index, byte offset, digits before it)` where each
    /// space-separated segment starts.
    seg_starts: [(usize, usize, usize); MAX_SEGMENTS],
    segs: usize,
    /// The digits in the whole shape.
    digits: usize,
}

impl NumToken {
    pub fn new() -> NumToken {
        NumToken {
            start: 0,
            end: 0,
            shape: [0; MAX_SHAPE],
            len: 0,
            seg_starts: [(0, 0, 0); MAX_SEGMENTS],
            segs: 0,
            digits: 0,
        }
    }

    /// The number of space-separated segments.
    pub fn segments(&self) -> usize {
        self.segs
    }

    /// The shape, byte span and digit count of segments `i..=j`.
    pub fn sub(&self, i: usize, j: usize) -> (&[u8], usize, usize, usize) {
        let (s_shape, s_byte, s_digits) = self.seg_starts[i];
        let (e_shape, e_byte, e_digits) = if j + 1 < self.segs {
            let (sh, by, d) = self.seg_starts[j + 1];
            // Exclude the separating space.
            (sh - 1, by - 1, d)
        } else {
            (self.len, self.end, self.digits)
        };
        (
            &self.shape[s_shape..e_shape],
            s_byte,
            e_byte,
            e_digits - s_digits,
        )
    }
}

/// Scans a numeric token at `start`, which holds a digit, `+` or `(`, with a
/// non-word byte (or nothing) before it. Returns false when the run is not a
/// standalone number (for example `2024-01-02T10`, `12ms`, or too long).
pub fn scan(hay: &[u8], start: usize, tok: &mut NumToken) -> bool {
    let n = hay.len();
    let mut p = start;
    tok.start = start;
    tok.len = 0;
    tok.segs = 1;
    tok.digits = 0;
    tok.seg_starts[0] = (0, start, 0);
    let push = |tok: &mut NumToken, c: u8| -> bool {
        if tok.len == MAX_SHAPE {
            return false;
        }
        tok.shape[tok.len] = c;
        tok.len += 1;
        true
    };
    if hay[p] == b'+' {
        push(tok, b'+');
        p += 1;
    }
    let mut open = false;
    if p < n && hay[p] == b'(' {
        push(tok, b'(');
        p += 1;
        open = true;
    }
    let mut any = false;
    loop {
        if p >= n || !hay[p].is_ascii_digit() {
            break;
        }
        while p < n && hay[p].is_ascii_digit() {
            if !push(tok, b'd') {
                return false;
            }
            tok.digits += 1;
            p += 1;
            any = true;
        }
        if open && p < n && hay[p] == b')' {
            push(tok, b')');
            p += 1;
            open = false;
            if p + 1 < n && hay[p] == b' ' && hay[p + 1].is_ascii_digit() {
                push(tok, b' ');
                p += 1;
            }
            continue;
        }
        if p + 1 < n && matches!(hay[p], b'-' | b'.' | b'/' | b' ') && hay[p + 1].is_ascii_digit() {
            if hay[p] == b' ' {
                if tok.segs == MAX_SEGMENTS {
                    break;
                }
                if !push(tok, b' ') {
                    return false;
                }
                tok.seg_starts[tok.segs] = (tok.len, p + 1, tok.digits);
                tok.segs += 1;
            } else if !push(tok, hay[p]) {
                return false;
            }
            p += 1;
            continue;
        }
        break;
    }
    tok.end = p;
    any && !open && (p >= n || !super::class::is_word(hay[p]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(s: &str) -> Option<String> {
        let mut t = NumToken::new();
        scan(s.as_bytes(), 0, &mut t).then(|| String::from_utf8(t.shape[..t.len].to_vec()).unwrap())
    }

    #[test]
    fn shapes() {
        assert_eq!(
            shape_of("(415) 555-0132 x").as_deref(),
            Some("(ddd) ddd-dddd")
        );
        assert_eq!(
            shape_of("+1 415 555 0132").as_deref(),
            Some("+d ddd ddd dddd")
        );
        assert_eq!(shape_of("123-45-6789.").as_deref(), Some("ddd-dd-dddd"));
        assert_eq!(shape_of("2024-01-02T10:00"), None);
        assert_eq!(shape_of("12ms"), None);
        assert_eq!(shape_of("10.0.0.1:80").as_deref(), Some("dd.d.d.d"));
    }

    #[test]
    fn templates() {
        assert_eq!(expand_template("d{1,3}.d").unwrap().len(), 3);
        assert!(expand_template("ddd-x").is_err());
        assert!(expand_template("d{40}").is_err());
    }

    #[test]
    fn segments() {
        let mut t = NumToken::new();
        assert!(scan(b"200 555 123 4567", 0, &mut t));
        assert_eq!(t.segments(), 4);
        let (shape, s, e, digits) = t.sub(1, 3);
        assert_eq!(shape, b"ddd ddd dddd");
        assert_eq!((s, e, digits), (4, 16, 10));
        assert_eq!(t.sub(0, 0).3, 3);
        assert_eq!(t.sub(0, 3).3, 13);
    }

    #[test]
    fn loose_candidates_are_the_rules_whose_range_and_prefix_fit() {
        // More loose rules than the per-count bitmap holds: the rest are
        // tested one by one.
        let mut m = NumericMatcher::default();
        let rules: Vec<(u32, usize, usize, Option<u8>)> = (0..70u32)
            .map(|r| {
                let min = (r as usize * 7) % 20 + 1;
                let prefix = (r % 5 == 0).then_some(b'+');
                (r, min, min + (r as usize % 9), prefix)
            })
            .collect();
        for &(r, lo, hi, prefix) in &rules {
            m.add_digits(r, lo, hi, prefix);
        }
        for digits in 0..=MAX_SHAPE {
            for lead in [&b""[..], b"+"] {
                let mut shape = lead.to_vec();
                shape.extend(std::iter::repeat_n(b'd', digits));
                shape.truncate(MAX_SHAPE);
                let digits = shape.iter().filter(|&&b| b == b'd').count();
                let mut got = Vec::new();
                m.candidates(&shape, digits, |r| got.push(r));
                got.sort_unstable();
                let want: Vec<u32> = rules
                    .iter()
                    .filter(|&&(_, lo, hi, p)| {
                        (lo..=hi).contains(&digits) && p.is_none_or(|p| shape.first() == Some(&p))
                    })
                    .map(|&(r, ..)| r)
                    .collect();
                assert_eq!(got, want, "{digits} digits, lead {lead:?}");
            }
        }
    }
}
