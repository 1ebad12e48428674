//! Person names: dictionaries, capitalisation and context.
//!
//! A dictionary alone over-redacts (May, Will, Long are names and words), and
//! a dictionary alone misses most names a clinic sees (the 1990 Census lists
//! are English-centric). So the detector looks at *phrases* of capitalised
//! words and decides with three kinds of evidence:
//!
//! * a title or role word just before the phrase (`Dr.`, `Mrs.`, `patient`):
//!   every following capitalised word that is not an ordinary English word is
//!   part of the name, in the dictionary or not;
//! * two adjacent capitalised words where at least one is an unambiguous
//!   dictionary name and the other is a name or an unknown word ("Priya
//!   Patel"), never an ordinary English word ("Kafka Consumer");
//! * the `Last, First` form with both parts in the dictionary.
//!
//! Words are folded before lookup (Nguyễn → NGUYEN, O'Brien → OBRIEN), with no
//! allocation: folding writes into a fixed stack buffer.

use std::hash::BuildHasher;

use super::class;
use super::fold_table::FOLD;
use super::script::Scripts;

pub const FIRST: u8 = 1;
pub const LAST: u8 = 2;
pub const AMBIGUOUS: u8 = 4;
pub const ENGLISH: u8 = 8;

/// The longest word looked up; longer words are never names.
const MAX_WORD: usize = 24;
/// The most words in one name phrase.
const MAX_PHRASE: usize = 5;

/// Compiled dictionaries and title words.
#[derive(Debug)]
pub struct Names {
    pub rule: u32,
    words: WordMap,
    titles: Vec<Box<[u8]>>,
    /// Words after which one dictionary name alone is a name (`for`, `by`,
    /// `with`, `called`), folded.
    cues: Vec<Box<[u8]>>,
    /// Scripts whose words are names wherever they occur.
    pub scripts: Scripts,
}

/// A read-only map from folded words to their flags, packed for memory:
/// the entries lie end to end in one arena (length, flags, bytes), indexed
/// by an open-addressing table (linear probing, at most three quarters
/// full). A slot holds an entry's arena offset in its low bits and a tag
/// (the top bits of the word's hash) in its high bits; 0 is the empty slot,
/// so the arena starts with a pad byte. The tag settles nearly every probe
/// that is not the word without reading the arena: most words looked up
/// are in no list, and those probes cost no cache miss in the arena.
/// The built-in lists (~86,000 words) take ~1.3 MB this way (a 0.5 MiB
/// table and a 0.8 MB arena, each allocated once at its final size),
/// against ~6 MB as a `HashMap<Box<[u8]>, u8>` (a 24-byte bucket plus a
/// heap block per word), and a lookup costs one hash and, for a word in
/// the lists, one or two short compares.
struct WordMap {
    arena: Vec<u8>,
    slots: Vec<u32>,
    /// How many low bits of a slot hold the arena offset; the bits above
    /// them hold the tag.
    offset_bits: u32,
    len: usize,
}

impl WordMap {
    /// An empty map with room for `words` entries of `bytes` bytes in all.
    /// More may be added: the table and the offsets grow.
    fn with_capacity(words: usize, bytes: usize) -> WordMap {
        let size = 1 + 2 * words + bytes;
        let mut arena = Vec::with_capacity(size);
        arena.push(0);
        WordMap {
            arena,
            slots: vec![0; Self::slots_for(words)],
            offset_bits: Self::bits_for(size),
            len: 0,
        }
    }

    /// The table size for `words` entries: a power of two, at most three
    /// quarters full.
    fn slots_for(words: usize) -> usize {
        (words.max(1) * 4).div_ceil(3).next_power_of_two()
    }

    /// The offset bits for an arena of `size` bytes.
    fn bits_for(size: usize) -> u32 {
        (usize::BITS - size.leading_zeros()).clamp(1, 32)
    }

    fn offset_mask(&self) -> u32 {
        ((1u64 << self.offset_bits) - 1) as u32
    }

    /// The tag of a word whose hash is `hash`: the hash's top bits, placed
    /// above the offset (none when the offset takes all 32 bits).
    fn tag(&self, hash: u64) -> u32 {
        ((hash >> 32 >> self.offset_bits) << self.offset_bits) as u32
    }

    /// The slot holding `word`, or the empty slot where it would go.
    fn slot(&self, word: &[u8]) -> usize {
        self.probe(word, BuildFx.hash_one(word))
    }

    /// [`WordMap::slot`] for a word whose hash is known.
    fn probe(&self, word: &[u8], hash: u64) -> usize {
        let (tag, offsets) = (self.tag(hash), self.offset_mask());
        let mut i = self.home(hash);
        loop {
            let v = self.slots[i];
            if v == 0 {
                return i;
            }
            if v & !offsets == tag {
                let off = (v & offsets) as usize;
                let len = usize::from(self.arena[off]);
                if class::same_short(&self.arena[off + 2..off + 2 + len], word) {
                    return i;
                }
            }
            i = self.next_slot(i);
        }
    }

    /// The slot a word whose hash is `hash` is looked for first.
    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        hash as usize & (self.slots.len() - 1)
    }

    /// The slot looked at after slot `i` (linear probing, wrapping).
    #[inline(always)]
    fn next_slot(&self, i: usize) -> usize {
        (i + 1) & (self.slots.len() - 1)
    }

    /// Adds `flag` to `word` (at most [`MAX_WORD`] bytes), inserting it if
    /// new. Grows the table if it would be more than three quarters full,
    /// and the offsets if the arena outgrows them.
    fn add(&mut self, word: &[u8], flag: u8) {
        debug_assert!(word.len() <= MAX_WORD);
        let hash = BuildFx.hash_one(word);
        let i = self.probe(word, hash);
        let v = self.slots[i];
        if v != 0 {
            let off = (v & self.offset_mask()) as usize;
            self.arena[off + 1] |= flag;
            return;
        }
        let off = u32::try_from(self.arena.len()).expect("dictionary under 4 GiB");
        let size = self.arena.len() + 2 + word.len();
        let (slots, bits) = (Self::slots_for(self.len + 1), Self::bits_for(size));
        if slots > self.slots.len() || bits > self.offset_bits {
            self.rebuild(slots.max(self.slots.len()), bits.max(self.offset_bits));
            return self.add(word, flag);
        }
        self.arena.push(word.len() as u8);
        self.arena.push(flag);
        self.arena.extend_from_slice(word);
        self.slots[i] = self.tag(hash) | off;
        self.len += 1;
    }

    /// Indexes the arena's entries again, in a table of `slots` slots with
    /// `offset_bits` offset bits.
    fn rebuild(&mut self, slots: usize, offset_bits: u32) {
        self.slots = vec![0; slots];
        self.offset_bits = offset_bits;
        let mut off = 1;
        while off < self.arena.len() {
            let len = usize::from(self.arena[off]);
            let word = &self.arena[off + 2..off + 2 + len];
            let hash = BuildFx.hash_one(word);
            let i = self.probe(word, hash);
            self.slots[i] = self.tag(hash) | off as u32;
            off += 2 + len;
        }
    }

    /// The flags of `word`, 0 if it is in no list.
    #[inline]
    fn get(&self, word: &[u8]) -> u8 {
        match self.slots[self.slot(word)] {
            0 => 0,
            v => self.arena[(v & self.offset_mask()) as usize + 1],
        }
    }
}

impl std::fmt::Debug for WordMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordMap")
            .field("words", &self.len)
            .field("arena_bytes", &self.arena.len())
            .field("slots", &self.slots.len())
            .finish()
    }
}

/// A tiny FxHash: dictionary keys are short ASCII words, and SipHash would
/// cost more than the rest of the lookup.
#[derive(Clone, Copy, Default, Debug)]
pub struct BuildFx;

impl std::hash::BuildHasher for BuildFx {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    /// Eight bytes a step; the last one to seven bytes in one more step
    /// read as one word (overlapping the word before, or two overlapping
    /// halves for a short string), not a multiply per byte: the keys and
    /// words hashed are mostly a few bytes long, and each step waits on
    /// the multiply before it.
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0xf135_7aea_2e62_a9c5;
        let step = |h: u64, v: u64| (h.rotate_left(5) ^ v).wrapping_mul(K);
        let u64_at = |i: usize| class::load_u64(bytes, i);
        let u32_at = |i: usize| class::load_u32(bytes, i);
        let n = bytes.len();
        let mut h = self.0;
        let mut i = 0;
        while i + 8 <= n {
            h = step(h, u64_at(i));
            i += 8;
        }
        if i < n {
            let tail = if n >= 8 {
                u64_at(n - 8)
            } else if n >= 4 {
                u64::from(u32_at(0)) << 32 | u64::from(u32_at(n - 4))
            } else {
                u64::from(bytes[0]) | u64::from(bytes[n / 2]) << 8 | u64::from(bytes[n - 1]) << 16
            };
            h = step(h, tail);
        }
        self.0 = h;
    }
    /// A bit of a product depends only on the bits below it, so the low
    /// bits of the state mix few of the word's bits, and tables take their
    /// slot from the low bits (the names table's linear probing ran 59
    /// slots deep for a missing word). The rotation brings the well-mixed
    /// high bits down, as rustc-hash 2 does.
    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

/// What the dictionaries say about one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// A dictionary name that is not an ordinary word.
    Name,
    /// A dictionary name that is also an ordinary word.
    Ambiguous,
    /// An ordinary English word, not a name.
    English,
    /// In no list: a name from outside the dictionary, a product, a code.
    Unknown,
}

#[derive(Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
    flags: u8,
    class: Class,
}

/// The word lists of the names detector, one word per line.
#[derive(Clone, Copy, Debug)]
pub struct NameLists<'a> {
    /// Given names.
    pub first: &'a str,
    /// Surnames.
    pub last: &'a str,
    /// Names that are also ordinary words.
    pub ambiguous: Option<&'a str>,
    /// Ordinary English words.
    pub english: Option<&'a str>,
}

impl Names {
    /// Builds the dictionaries. Each list is one word per line; `#` starts a
    /// comment.
    pub fn new(
        rule: u32,
        lists: NameLists<'_>,
        titles: &[String],
        cues: &[String],
        scripts: Scripts,
    ) -> Names {
        let NameLists {
            first,
            last,
            ambiguous,
            english,
        } = lists;
        // Sized once from the line counts (an upper bound on the words) and
        // the lists' lengths (about the arena's), so that building leaves no
        // freed tables behind in the heap.
        let lists = [Some(first), Some(last), ambiguous, english];
        let lines = lists.iter().flatten().map(|l| l.lines().count()).sum();
        let bytes = lists.iter().flatten().map(|l| l.len()).sum();
        let mut words = WordMap::with_capacity(lines, bytes);
        let mut add = |list: &str, flag: u8| {
            for line in list.lines() {
                let w = line.split('#').next().unwrap_or("").trim();
                let mut buf = [0u8; MAX_WORD];
                if let Some(n) = fold(w.as_bytes(), &mut buf) {
                    if n > 0 {
                        words.add(&buf[..n], flag);
                    }
                }
            }
        };
        add(first, FIRST);
        add(last, LAST);
        if let Some(a) = ambiguous {
            add(a, AMBIGUOUS);
        }
        if let Some(e) = english {
            add(e, ENGLISH);
        }
        // The lists' comments and repeated words left part of the arena
        // unused.
        words.arena.shrink_to_fit();
        let titles = titles
            .iter()
            .filter_map(|t| {
                let mut buf = [0u8; MAX_WORD];
                let n = fold(t.trim_end_matches('.').as_bytes(), &mut buf)?;
                Some(buf[..n].into())
            })
            .collect();
        let cues = cues
            .iter()
            .filter_map(|t| {
                let mut buf = [0u8; MAX_WORD];
                let n = fold(t.trim_end_matches('.').as_bytes(), &mut buf)?;
                Some(buf[..n].into())
            })
            .collect();
        Names {
            rule,
            words,
            titles,
            cues,
            scripts,
        }
    }

    fn classify(&self, word: &[u8]) -> (u8, Class) {
        if word.len() == 1 {
            // "I", "A": a pronoun or an initial, never a name on its own.
            return (0, Class::English);
        }
        let mut buf = [0u8; MAX_WORD];
        let mut flags = match fold(word, &mut buf) {
            Some(n) => self.words.get(&buf[..n]),
            None => 0,
        };
        if flags == 0 && word.iter().any(|&b| b == b'-' || b == b'\'') {
            // "García-López" or a quote glued to a name ("Gonzalez'x"):
            // the parts speak for the whole.
            for part in word.split(|&b| b == b'-' || b == b'\'') {
                if part.len() > 1 {
                    if let Some(n) = fold(part, &mut buf) {
                        flags |= self.words.get(&buf[..n]);
                    }
                }
            }
        }
        let class = if flags & (FIRST | LAST) != 0 {
            if flags & (AMBIGUOUS | ENGLISH) != 0 {
                Class::Ambiguous
            } else {
                Class::Name
            }
        } else if flags & ENGLISH != 0 {
            Class::English
        } else {
            Class::Unknown
        };
        (flags, class)
    }

    /// Whether a structured value under a person key (`name`, `display`,
    /// `first`, `from`) looks like a person's name: one to six capitalised
    /// words of letters (lower-case particles inside, initials, one comma for
    /// `Last, First`), no digits or code punctuation, and at least one word
    /// that is not an ordinary English word. `checkout`, `Video Visit`,
    /// `ValidationError` and `pat_8f3a` are not names.
    pub fn looks_like_name(&self, v: &[u8]) -> bool {
        let v = trim_value(v);
        if v.len() < 2 || v.len() > 96 {
            return false;
        }
        let mut words = 0;
        let mut commas = 0;
        let mut evidence = false;
        let mut i = 0;
        while i < v.len() {
            match v[i] {
                b' ' => {
                    i += 1;
                    continue;
                }
                b',' => {
                    commas += 1;
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let s = i;
            while i < v.len() && v[i] != b' ' && v[i] != b',' {
                i += 1;
            }
            let w = &v[s..i];
            words += 1;
            if words > 6 || commas > 1 || !name_shaped(w, words == 1) {
                return false;
            }
            let letters = w
                .iter()
                .filter(|b| b.is_ascii_alphabetic() || **b >= 0x80)
                .count();
            if letters >= 2
                && (w.iter().any(|&b| b >= 0x80 || b == b'\\')
                    || self.classify(w).1 != Class::English)
            {
                evidence = true;
            }
        }
        words > 0 && evidence
    }

    /// Whether one of the words of `v` is a dictionary name that is not an
    /// ordinary English word, or is written in letters outside ASCII: the
    /// evidence that a record's text field holds a person.
    pub fn has_name_evidence(&self, v: &[u8]) -> bool {
        trim_value(v)
            .split(|&b| b == b' ' || b == b',')
            .filter(|w| w.len() >= 2)
            .any(|w| w.iter().any(|&b| b >= 0x80) || self.classify(w).1 == Class::Name)
    }

    fn is_title(&self, word: &[u8]) -> bool {
        let mut buf = [0u8; MAX_WORD];
        match fold(word, &mut buf) {
            Some(n) => self.titles.iter().any(|t| **t == buf[..n]),
            None => false,
        }
    }

    fn is_cue(&self, word: &[u8]) -> bool {
        let mut buf = [0u8; MAX_WORD];
        match fold(word, &mut buf) {
            Some(n) => self.cues.iter().any(|t| **t == buf[..n]),
            None => false,
        }
    }

    /// Looks for a name phrase starting at the capitalised word `[start, end)`.
    /// `prev` is the word before it, if any, with the bytes between. Returns
    /// the span of the name and the offset where scanning should resume.
    pub fn phrase(
        &self,
        hay: &[u8],
        start: usize,
        end: usize,
        prev: Option<(usize, usize)>,
    ) -> Option<(usize, usize)> {
        // `ValidationError`, `HttpClient`: code, not a name.
        if !name_shaped(&hay[start..end], true) {
            return None;
        }
        let near = |(_, pe): (usize, usize)| {
            let gap = &hay[pe..start];
            !gap.is_empty() && gap.len() <= 3 && gap.iter().all(|b| b" .:=,'\"\t".contains(b))
        };
        let titled = prev.is_some_and(|p| near(p) && self.is_title(&hay[p.0..p.1]));
        let cued = prev.is_some_and(|p| near(p) && self.is_cue(&hay[p.0..p.1]));
        let mut words = [Word {
            start: 0,
            end: 0,
            flags: 0,
            class: Class::Unknown,
        }; MAX_PHRASE];
        let caps = all_caps(&hay[start..end]);
        let mut n = 0;
        let mut s = start;
        let mut e = end;
        loop {
            let (flags, class) = self.classify(&hay[s..e]);
            words[n] = Word {
                start: s,
                end: e,
                flags,
                class,
            };
            n += 1;
            if n == MAX_PHRASE {
                break;
            }
            match next_capitalised(hay, e, caps) {
                Some((ns, ne)) => {
                    s = ns;
                    e = ne;
                }
                None => break,
            }
        }
        let words = &words[..n];

        if titled {
            // After a title, take words until the first ordinary English word
            // (initials inside the name are kept).
            let k = words
                .iter()
                .enumerate()
                .take_while(|(i, w)| w.class != Class::English || (*i > 0 && w.end - w.start == 1))
                .count();
            if k > 0 {
                return Some((words[0].start, words[k - 1].end));
            }
            return None;
        }

        // Last, First: the surname part (one or more words, none an ordinary
        // English word) then a given name, one of the two in the dictionary.
        if let Some((fs, fe)) = comma_first(hay, words[n - 1].end, caps) {
            let (fflags, fclass) = self.classify(&hay[fs..fe]);
            let surname_ok = words
                .iter()
                .all(|w| w.class != Class::English || w.end - w.start == 1);
            let dictionary = words.iter().any(|w| w.class == Class::Name)
                || fclass == Class::Name
                || (words[n - 1].flags & LAST != 0 && fflags & FIRST != 0);
            let both_ambiguous =
                words.iter().all(|w| w.class == Class::Ambiguous) && fclass == Class::Ambiguous;
            if surname_ok && fclass != Class::English && dictionary && !both_ambiguous {
                return Some((words[0].start, fe));
            }
        }

        // Adjacent pairs, skipping initials ("John A. Smith"): find the first
        // pair that is a name, then extend over following non-English words.
        let mut prev: Option<usize> = None;
        for i in 0..n {
            if words[i].end - words[i].start == 1 {
                continue;
            }
            if let Some(p) = prev {
                if pair_is_name(words[p], words[i]) {
                    let mut j = i;
                    while j + 1 < n
                        && (words[j + 1].class != Class::English
                            || words[j + 1].end - words[j + 1].start == 1)
                    {
                        j += 1;
                    }
                    // A trailing initial is not part of the name.
                    while j > i && words[j].end - words[j].start == 1 {
                        j -= 1;
                    }
                    return Some((words[p].start, words[j].end));
                }
            }
            prev = Some(i);
        }
        // After a cue (`for`, `by`, `with`), or with an initial after it
        // (`Charlotte A.`), a given name from the dictionary is a name alone.
        if words[0].class == Class::Name && words[0].flags & FIRST != 0 {
            let initial = n >= 2
                && words[1].end - words[1].start == 1
                && hay.get(words[1].end) == Some(&b'.');
            let lower_initial = hay.get(words[0].end) == Some(&b' ')
                && hay
                    .get(words[0].end + 1)
                    .is_some_and(u8::is_ascii_lowercase)
                && hay.get(words[0].end + 2) == Some(&b'.')
                && !hay
                    .get(words[0].end + 3)
                    .is_some_and(u8::is_ascii_alphanumeric);
            if initial {
                return Some((words[0].start, words[1].end));
            }
            if lower_initial {
                return Some((words[0].start, words[0].end + 2));
            }
            if cued && n == 1 {
                return Some((words[0].start, words[0].end));
            }
        }
        // After a cue, a given name then a surname is a name even when both
        // are also words (`for Heather Gray`, `by Rosa Long`).
        if cued
            && n >= 2
            && words[0].flags & FIRST != 0
            && words[1].flags & LAST != 0
            && words[0].class != Class::English
            && words[1].class != Class::English
        {
            return Some((words[0].start, words[1].end));
        }
        None
    }
}

/// A structured value without its quotes, brackets and outer spaces.
fn trim_value(v: &[u8]) -> &[u8] {
    let strip = |b: &u8| matches!(b, b' ' | b'"' | b'\'' | b'[' | b']' | b'(' | b')');
    let s = v.iter().position(|b| !strip(b)).unwrap_or(v.len());
    let e = v.iter().rposition(|b| !strip(b)).map_or(s, |e| e + 1);
    &v[s..e]
}

/// Whether `w` can be one word of a name: letters (any script; `\u00e9`
/// JSON escapes count as letters), `'`, `-` or a final `.` (an initial);
/// capitalised, or a lower-case particle after the first word; an upper-case
/// letter after a lower-case one only behind a surname prefix (McDonald,
/// DeShawn, LaToya), never as in `ValidationError`.
fn name_shaped(w: &[u8], first: bool) -> bool {
    let Some(&b0) = w.first() else {
        return false;
    };
    if b0.is_ascii_lowercase() {
        return !first && is_particle(w);
    }
    if !(b0.is_ascii_uppercase() || b0 >= 0x80 || b0 == b'\\') {
        return false;
    }
    let mut prev_lower = false;
    let mut i = 0;
    while i < w.len() {
        let b = w[i];
        if b == b'\\' {
            // A JSON escape of a letter: \uXXXX.
            if w.get(i + 1) != Some(&b'u')
                || w.len() < i + 6
                || !w[i + 2..i + 6].iter().all(u8::is_ascii_hexdigit)
            {
                return false;
            }
            i += 6;
            prev_lower = true;
            continue;
        }
        if b.is_ascii_uppercase() && prev_lower {
            let prefix = &w[..i];
            if !matches!(
                prefix,
                b"Mc"
                    | b"Mac"
                    | b"De"
                    | b"Di"
                    | b"Da"
                    | b"La"
                    | b"Le"
                    | b"Van"
                    | b"Von"
                    | b"St"
                    | b"Du"
            ) && !prefix.ends_with(b"'")
            {
                return false;
            }
        } else if !(b.is_ascii_alphabetic()
            || b >= 0x80
            || b == b'\''
            || b == b'-'
            || (b == b'.' && i == w.len() - 1))
        {
            return false;
        }
        // A non-ASCII byte leaves the case as it was: `ÉLÉONORE` is all
        // capitals, `Nguyễn` all small after its first letter.
        if b < 0x80 {
            prev_lower = b.is_ascii_lowercase();
        }
        i += 1;
    }
    true
}

fn pair_is_name(a: Word, b: Word) -> bool {
    use Class::*;
    match (a.class, b.class) {
        (Name, Name) => true,
        // A word that is also an ordinary word counts only in the place a
        // name has it: a given name first ("Hope Akinwale"), a surname second
        // ("Maria Long"). Two surnames in a row are a firm's name ("Wells
        // Fargo").
        (Ambiguous, Name) => a.flags & FIRST != 0,
        (Name, Ambiguous) => b.flags & LAST != 0,
        (Name, Unknown) | (Unknown, Name) => true,
        // "Hope Long" and "Will Grant" stay: two ambiguous words are only a
        // name as first-then-last with context, which the title path covers.
        _ => false,
    }
}

fn all_caps(w: &[u8]) -> bool {
    w.len() >= 2 && w.iter().all(|b| !b.is_ascii_lowercase())
}

/// Whether a word starts with a capital: ASCII upper case, or a non-ASCII
/// letter whose first char is upper case (É, Ñ, Đ).
///
/// Inlined for the ASCII case: the value pass asks it of every word.
#[inline]
pub fn is_capitalised(w: &[u8]) -> bool {
    match w.first() {
        Some(b) if b.is_ascii_uppercase() => true,
        Some(b) if *b >= 0x80 => starts_upper_non_ascii(w),
        _ => false,
    }
}

#[inline(never)]
fn starts_upper_non_ascii(w: &[u8]) -> bool {
    std::str::from_utf8(&w[..utf8_len(w[0]).min(w.len())])
        .ok()
        .and_then(|s| s.chars().next())
        .is_some_and(char::is_uppercase)
}

fn utf8_len(b: u8) -> usize {
    match b {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// The end of the word starting at `start`: letters (ASCII or not), and `'`
/// or `-` between letters.
pub fn word_end(hay: &[u8], start: usize) -> usize {
    let mut p = start;
    while p < hay.len() {
        let c = class::of(hay[p]);
        if c & class::WORD != 0
            || (c & class::WORD_JOIN != 0
                && p + 1 < hay.len()
                && class::is(hay[p + 1], class::WORD))
        {
            p += 1;
        } else {
            break;
        }
    }
    p
}

/// The next capitalised word after `end`, joined by one space, by an initial
/// (`J. `), or by a lower-case particle (`van`, `de`, `bin`).
fn next_capitalised(hay: &[u8], end: usize, caps: bool) -> Option<(usize, usize)> {
    let mut p = end;
    // An initial's dot: "John A. Smith".
    if p < hay.len() && hay[p] == b'.' && end >= 1 && is_initial(hay, end) {
        p += 1;
    }
    if p >= hay.len() || hay[p] != b' ' {
        return None;
    }
    p += 1;
    let s = p;
    let e = word_end(hay, s);
    if e == s {
        return None;
    }
    let w = &hay[s..e];
    // A word that runs on into digits (`WBAJA7C5X...`, a VIN) is part of a
    // token, not a name: taking its letters would leave the rest behind.
    if hay.get(e).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    // A phrase keeps its style: "Mac OS" (Titlecase then capitals) is not
    // one name, "JOHN SMITH" and "John A. Smith" are.
    if is_capitalised(w) && (all_caps(w) == caps || e - s == 1) {
        return Some((s, e));
    }
    if is_particle(w) {
        // The particle lies inside the phrase's span, between its neighbours.
        return next_capitalised(hay, e, caps);
    }
    None
}

fn is_initial(hay: &[u8], end: usize) -> bool {
    end >= 1
        && hay[end - 1].is_ascii_uppercase()
        && (end == 1 || !hay[end - 2].is_ascii_alphabetic())
}

fn is_particle(w: &[u8]) -> bool {
    matches!(
        w,
        b"van"
            | b"von"
            | b"dela"
            | b"du"
            | b"des"
            | b"ibn"
            | b"bint"
            | b"abu"
            | b"zu"
            | b"de"
            | b"del"
            | b"della"
            | b"der"
            | b"da"
            | b"di"
            | b"dos"
            | b"das"
            | b"la"
            | b"le"
            | b"bin"
            | b"binti"
            | b"al"
            | b"el"
            | b"y"
            | b"ten"
            | b"ter"
    )
}

/// `, First` after a surname.
fn comma_first(hay: &[u8], end: usize, caps: bool) -> Option<(usize, usize)> {
    if hay.get(end) != Some(&b',') || hay.get(end + 1) != Some(&b' ') {
        return None;
    }
    let s = end + 2;
    let e = word_end(hay, s);
    let w = &hay[s..e];
    (e > s && is_capitalised(w) && (!caps || all_caps(w))).then_some((s, e))
}

/// Folds a word to upper-case ASCII in `out`: accents removed, apostrophes,
/// hyphens and dots dropped. Returns `None` for a word that is too long or
/// holds a character with no ASCII base.
pub fn fold(word: &[u8], out: &mut [u8; MAX_WORD]) -> Option<usize> {
    let mut n = 0;
    let mut push = |c: u8, n: &mut usize| -> Option<()> {
        if *n == MAX_WORD {
            return None;
        }
        out[*n] = c;
        *n += 1;
        Some(())
    };
    let mut i = 0;
    while i < word.len() {
        let b = word[i];
        if b.is_ascii_alphabetic() {
            push(b.to_ascii_uppercase(), &mut n)?;
            i += 1;
        } else if b == b'\'' || b == b'-' || b == b'.' {
            i += 1;
        } else if b >= 0x80 {
            let len = utf8_len(b);
            let s = std::str::from_utf8(word.get(i..i + len)?).ok()?;
            let c = s.chars().next()?;
            // A right single quote is an apostrophe; a combining mark
            // (decomposed input) belongs to the letter before it.
            if c == '\u{2019}' || ('\u{0300}'..='\u{036F}').contains(&c) {
                i += len;
                continue;
            }
            let base = FOLD
                .binary_search_by(|(k, _)| k.cmp(&c))
                .ok()
                .map(|idx| FOLD[idx].1)?;
            for &x in base.as_bytes() {
                push(x, &mut n)?;
            }
            i += len;
        } else {
            return None;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_map_merges_flags_grows_and_misses() {
        // Capacity 1 forces several doublings while inserting.
        let mut m = WordMap::with_capacity(1, 1);
        let words: Vec<String> = (0..5000).map(|i| format!("W{i}")).collect();
        for w in &words {
            m.add(w.as_bytes(), FIRST);
        }
        m.add(b"W17", LAST);
        m.add(b"W17", LAST);
        assert_eq!(m.len, 5000);
        assert!(m.slots.len() * 3 >= 4 * m.len);
        // The offsets grew with the arena: every entry is still found.
        assert!(m.offset_bits > 1);
        for w in &words {
            let want = if w == "W17" { FIRST | LAST } else { FIRST };
            assert_eq!(m.get(w.as_bytes()), want, "{w}");
        }
        // Prefixes, extensions and absent words are misses.
        for miss in [&b"W"[..], b"W50000", b"W1 ", b"", b"X17"] {
            assert_eq!(m.get(miss), 0);
        }
    }

    /// Regression: the Fx hash's low bits, which pick the slot, depend on
    /// few of the word's bits; with the built-in lists the table held runs
    /// of 2,258 occupied slots, and a word in no list (most words looked
    /// up) probed 59 slots on average. The hash's finish now moves its
    /// well-mixed high bits down.
    #[test]
    fn builtin_names_table_probes_few_slots_for_a_missing_word() {
        let n = Names::new(
            0,
            NameLists {
                first: include_str!("../../rules/hipaa/names/first.txt"),
                last: include_str!("../../rules/hipaa/names/last.txt"),
                ambiguous: Some(include_str!("../../rules/hipaa/names/ambiguous.txt")),
                english: Some(include_str!("../../rules/hipaa/names/english.txt")),
            },
            &[],
            &[],
            Scripts::default(),
        );
        let m = &n.words;
        assert!(m.len > 80_000, "{} words", m.len);
        let (mut probes, mut longest) = (0usize, 0usize);
        let misses = 20_000;
        for i in 0..misses {
            // Folded words in no list: upper-case letters, as looked up.
            let w = format!("QX{}", i * 7919 % 100_003)
                .bytes()
                .map(|b| {
                    if b.is_ascii_digit() {
                        b'A' + (b - b'0')
                    } else {
                        b
                    }
                })
                .collect::<Vec<u8>>();
            let mut at = m.home(BuildFx.hash_one(&w[..]));
            let mut k = 1;
            while m.slots[at] != 0 {
                at = m.next_slot(at);
                k += 1;
            }
            assert_eq!(m.get(&w), 0);
            probes += k;
            longest = longest.max(k);
        }
        let mean = probes as f64 / misses as f64;
        // Linear probing at this load (~0.68) expects about 5.4 probes for
        // a miss with a uniform hash.
        assert!(mean < 10.0, "mean probes {mean:.1}, longest {longest}");
    }

    fn names() -> Names {
        Names::new(
            0,
            NameLists {
                first: "JOHN\nMARIA\nWILL\nMAY\nHOPE\nANH\n",
                last: "SMITH\nNGUYEN\nPATEL\nLONG\nGRANT\nKAFKA\n",
                ambiguous: Some("WILL\nMAY\nHOPE\nLONG\nGRANT\n"),
                english: Some("consumer\nportal\naccess\n"),
            },
            &["patient".into(), "dr".into(), "mrs".into(), "name".into()],
            &["for".into(), "by".into()],
            Scripts::default(),
        )
    }

    fn find(text: &str) -> Option<&str> {
        let n = names();
        let h = text.as_bytes();
        let mut i = 0;
        let mut prev = None;
        while i < h.len() {
            if h[i].is_ascii_alphabetic() || h[i] >= 0x80 {
                let e = word_end(h, i);
                if is_capitalised(&h[i..e]) {
                    if let Some((s, e2)) = n.phrase(h, i, e, prev) {
                        return Some(&text[s..e2]);
                    }
                }
                prev = Some((i, e));
                i = e;
            } else {
                i += 1;
            }
        }
        None
    }

    #[test]
    fn fold_accents() {
        let mut b = [0; MAX_WORD];
        let n = fold("Nguyễn".as_bytes(), &mut b).unwrap();
        assert_eq!(&b[..n], b"NGUYEN");
        let n = fold("O'Brien".as_bytes(), &mut b).unwrap();
        assert_eq!(&b[..n], b"OBRIEN");
    }

    #[test]
    fn phrases() {
        assert_eq!(find("seen by John Smith today"), Some("John Smith"));
        assert_eq!(find("called Nguyễn Anh"), Some("Nguyễn Anh"));
        assert_eq!(find("msg from Priya Patel"), Some("Priya Patel"));
        assert_eq!(
            find("patient Zbigniew Qwerty arrived"),
            Some("Zbigniew Qwerty")
        );
        assert_eq!(find("Dr. Okonkwo signed"), Some("Okonkwo"));
        assert_eq!(find("SMITH, JOHN admitted"), Some("SMITH, JOHN"));
        assert_eq!(find("Kafka Consumer lag"), None);
        assert_eq!(find("Will Grant Access"), None);
        assert_eq!(find("You May Hope"), None);
        assert_eq!(find("open the Patient Portal"), None);
        assert_eq!(find("seen by John A. Smith"), Some("John A. Smith"));
        // A VIN after a name is not part of it (regression: the name took
        // the VIN's letters and its digits were left behind).
        assert_eq!(find("MARIA WBAJA7C5XKW123456 towed"), None);
        assert_eq!(find("from patient: I have pain"), None);
        assert_eq!(
            find("Patient[name=Siddharth Venkataraman, x"),
            Some("Siddharth Venkataraman")
        );
    }
}
