//! Street addresses in free text.
//!
//! A US street address has a fixed shape: a house number, one to four
//! words, and a street suffix from the USPS list (Publication 28, appendix
//! C1: `Street`, `Avenue`, `Crossing`, `Oval`, `Throughway`, ...), then
//! optionally a direction, a unit (`Apt. 908`, `Suite 412`, `#5`), a city,
//! a state and a ZIP code. The detector starts only at a short digit run
//! followed by a capitalised word, so a line without one costs nothing more
//! than the tokenizer already spends; the suffix is one hash lookup.
//!
//! A unit written first (`Flat 40 Cook Neck`, `Studio 79U Stanley Oval`) is
//! part of the address, and `+` joins words in form-encoded bodies.

use std::collections::HashSet;

use super::names::BuildFx;

#[derive(Debug)]
pub struct Streets {
    pub rule: u32,
    /// Street suffixes, upper case.
    suffixes: HashSet<Box<[u8]>, BuildFx>,
}

/// Words that introduce a unit.
fn is_unit_word(w: &[u8]) -> bool {
    let mut buf = [0u8; 12];
    if w.len() > buf.len() {
        return false;
    }
    for (d, c) in buf.iter_mut().zip(w) {
        *d = c.to_ascii_uppercase();
    }
    matches!(
        &buf[..w.len()],
        b"APT"
            | b"APT."
            | b"APARTMENT"
            | b"SUITE"
            | b"STE"
            | b"STE."
            | b"UNIT"
            | b"FLAT"
            | b"STUDIO"
            | b"ROOM"
            | b"RM"
            | b"FL"
            | b"FLOOR"
            | b"BLDG"
            | b"BUILDING"
            | b"LOT"
            | b"SPACE"
            | b"PISO"
    )
}

fn is_direction(w: &[u8]) -> bool {
    matches!(
        w,
        b"N" | b"S" | b"E" | b"W" | b"NE" | b"NW" | b"SE" | b"SW" | b"N." | b"S." | b"E." | b"W."
    )
}

/// Whether `b` separates the words of an address: a space, or a `+` in a
/// form-encoded body.
fn is_gap(b: u8) -> bool {
    b == b' ' || b == b'+'
}

/// The end of the word at `p` (letters, digits and `'`, `-`, `.`).
fn word_end(hay: &[u8], mut p: usize) -> usize {
    while p < hay.len()
        && (hay[p].is_ascii_alphanumeric()
            || hay[p] >= 0x80
            || matches!(hay[p], b'\'' | b'-' | b'.'))
    {
        p += 1;
    }
    // A sentence's full stop or a comma is not part of the word.
    while p > 0
        && matches!(hay[p - 1], b'.' | b'-' | b'\'')
        && p - 1 > 0
        && !hay[p - 2].is_ascii_uppercase()
    {
        p -= 1;
    }
    p
}

fn capitalised(w: &[u8]) -> bool {
    w.first()
        .is_some_and(|b| b.is_ascii_uppercase() || *b >= 0x80)
}

impl Streets {
    /// Builds the detector from a list of street suffixes (one per line,
    /// `#` comments; abbreviations included).
    pub fn new(rule: u32, suffixes: &str) -> Streets {
        let mut set = HashSet::with_hasher(BuildFx);
        for line in suffixes.lines() {
            let w = line.split('#').next().unwrap_or("").trim();
            if !w.is_empty() {
                set.insert(w.to_ascii_uppercase().into_bytes().into_boxed_slice());
            }
        }
        Streets {
            rule,
            suffixes: set,
        }
    }

    fn is_suffix(&self, w: &[u8]) -> bool {
        let w = w.strip_suffix(b".").unwrap_or(w);
        let mut buf = [0u8; 16];
        if w.len() > buf.len() || w.is_empty() {
            return false;
        }
        for (d, c) in buf.iter_mut().zip(w) {
            *d = c.to_ascii_uppercase();
        }
        self.suffixes.contains(&buf[..w.len()])
    }

    /// The span of a street address whose house number starts at `start`
    /// (or whose unit word comes just before it), if there is one.
    pub fn address(&self, hay: &[u8], start: usize) -> Option<(usize, usize)> {
        // Not inside a word, a version or a path. This is called at every
        // number, so the cheap refusals come first.
        if start > 0
            && (hay[start - 1].is_ascii_alphanumeric()
                || matches!(hay[start - 1], b'.' | b'-' | b'_' | b'/' | b':'))
        {
            return None;
        }
        // The house number: one to six digits, then perhaps a letter (`79U`).
        let mut p = start;
        while p < hay.len() && hay[p].is_ascii_digit() {
            p += 1;
        }
        let digits = p - start;
        if digits == 0 || digits > 6 {
            return None;
        }
        if p < hay.len()
            && hay[p].is_ascii_alphabetic()
            && hay.get(p + 1).is_some_and(|&b| is_gap(b))
        {
            p += 1;
        }
        // The street's first word follows a gap and starts with a capital or
        // a digit (checked again in the loop below; this is the fast exit).
        if !hay.get(p).is_some_and(|&b| is_gap(b))
            || !hay
                .get(p + 1)
                .is_some_and(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b >= 0x80)
        {
            return None;
        }
        let mut begin = start;
        // `Flat 40 Cook Neck`: a unit word just before the number.
        if start >= 2 && is_gap(hay[start - 1]) {
            let ws = hay[..start - 1]
                .iter()
                .rposition(|&b| !(b.is_ascii_alphabetic()))
                .map_or(0, |i| i + 1);
            if ws < start - 1 && is_unit_word(&hay[ws..start - 1]) {
                begin = ws;
            }
        }
        // One to four words, the last a suffix (not the first word).
        let mut words = 0;
        let mut end = None;
        let mut q = p;
        while words < 5 {
            if q >= hay.len() || !is_gap(hay[q]) {
                break;
            }
            let ws = q + 1;
            let we = word_end(hay, ws);
            if we == ws {
                break;
            }
            let w = &hay[ws..we];
            if !(capitalised(w) || w[0].is_ascii_digit()) {
                break;
            }
            words += 1;
            if words >= 2 && self.is_suffix(w) {
                end = Some(we);
            }
            q = we;
            if end.is_some() && (q >= hay.len() || !is_gap(hay[q])) {
                break;
            }
        }
        let mut end = end?;
        // A direction, then a unit.
        let next_word = |from: usize| -> Option<(usize, usize)> {
            let mut s = from;
            if hay.get(s) == Some(&b',') {
                s += 1;
            }
            if !hay.get(s).is_some_and(|&b| is_gap(b)) {
                return None;
            }
            let ws = s + 1;
            let we = word_end(hay, ws);
            (we > ws).then_some((ws, we))
        };
        if let Some((ws, we)) = next_word(end) {
            if is_direction(&hay[ws..we]) {
                end = we;
            }
        }
        if let Some((ws, we)) = next_word(end) {
            let w = &hay[ws..we];
            if is_unit_word(w) {
                if let Some((ns, ne)) = next_word(we) {
                    if hay[ns..ne].iter().any(u8::is_ascii_digit) {
                        end = ne;
                    }
                }
            } else if w.first() == Some(&b'#') || (hay.get(ws) == Some(&b'#')) {
                end = we;
            }
        }
        // `, City[, ST] 12345[-6789]`: the city and ZIP belong to it.
        let mut c = end;
        if hay.get(c) == Some(&b',') && hay.get(c + 1).is_some_and(|&b| is_gap(b)) {
            c += 2;
            let mut city_end = None;
            let mut k = c;
            for _ in 0..4 {
                let we = word_end(hay, k);
                if we == k || !capitalised(&hay[k..we]) {
                    break;
                }
                city_end = Some(we);
                if !hay.get(we).is_some_and(|&b| is_gap(b))
                    || !hay.get(we + 1).is_some_and(|b| b.is_ascii_uppercase())
                {
                    break;
                }
                k = we + 1;
            }
            if let Some(ce) = city_end {
                let mut z = ce;
                // `, ST`
                if hay.get(z) == Some(&b',')
                    && hay.get(z + 1).is_some_and(|&b| is_gap(b))
                    && hay.get(z + 2).is_some_and(u8::is_ascii_uppercase)
                    && hay.get(z + 3).is_some_and(u8::is_ascii_uppercase)
                    && !hay.get(z + 4).is_some_and(u8::is_ascii_alphanumeric)
                {
                    z += 4;
                }
                // ` 12345` or ` 12345-6789`
                if hay.get(z).is_some_and(|&b| is_gap(b)) {
                    let zs = z + 1;
                    let mut ze = zs;
                    while ze < hay.len() && hay[ze].is_ascii_digit() {
                        ze += 1;
                    }
                    if ze - zs == 5 {
                        if hay.get(ze) == Some(&b'-')
                            && hay
                                .get(ze + 1..ze + 5)
                                .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
                        {
                            ze += 5;
                        }
                        if !hay.get(ze).is_some_and(u8::is_ascii_alphanumeric) {
                            end = ze;
                        }
                    }
                }
                if end < ce && z > ce {
                    end = z;
                }
            }
        }
        Some((begin, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streets() -> Streets {
        Streets::new(0, "STREET\nST\nAVENUE\nAVE\nCROSSING\nOVAL\nMISSION\nNECK\nCREEK\nWAY\nTHROUGHWAY\nLOCKS\nROADS\n")
    }

    fn find(s: &str) -> Option<&str> {
        let st = streets();
        let h = s.as_bytes();
        (0..h.len())
            .filter(|&i| h[i].is_ascii_digit() && (i == 0 || !h[i - 1].is_ascii_digit()))
            .find_map(|i| st.address(h, i))
            .map(|(a, b)| &s[a..b])
    }

    #[test]
    fn addresses() {
        assert_eq!(
            find(r#"pickup "4307 Chang Course Apt. 908, West Michael, CA 17806-9839" dpv=S"#),
            None,
            "Course is not in this test's list"
        );
        assert_eq!(
            find(r#"input="7815 Michael Throughway, Port Taylorport, TN 13946" dpv=S"#),
            Some("7815 Michael Throughway, Port Taylorport, TN 13946")
        );
        assert_eq!(
            find("line1: '9277 Hale Creek', zip"),
            Some("9277 Hale Creek")
        );
        assert_eq!(
            find("addr1=Flat+40+Cook+Neck&city=X"),
            Some("Flat+40+Cook+Neck")
        );
        assert_eq!(
            find("at 260 Jones Locks Suite 651 today"),
            Some("260 Jones Locks Suite 651")
        );
        assert_eq!(
            find("ship to 42 Elm Street Apt 3B"),
            Some("42 Elm Street Apt 3B")
        );
        assert_eq!(
            find(r#"pickup "484 James Mission, Jenniferport 06824" driver"#),
            Some("484 James Mission, Jenniferport 06824")
        );
    }

    #[test]
    fn not_addresses() {
        for s in [
            "retry 3 times on the way",
            "took 200 Way",
            "v1.2 Main Street",
            "build 42 passed",
            "version 2 Street",
            "at 10:15 Main St",
            "42",
        ] {
            assert_eq!(find(s), None, "{s}");
        }
    }
}
