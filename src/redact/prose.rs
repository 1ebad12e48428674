//! Human messages: patient texts, chat, visit transcripts and note text.
//!
//! A log's own messages are terse and impersonal (`request completed`,
//! `refill request received`). A person's message is not: it says *I* and
//! *you*, greets, asks, and talks about symptoms and medicines. The detector
//! here reads a candidate span (the value of a text key such as `body`,
//! `text` or `message`, or the words after a speaker in a transcript line)
//! and counts two kinds of evidence:
//!
//! * health words from the rule's term lists (symptoms, medicines,
//!   clinical shorthand), whole words or two-word phrases, case-insensitive;
//! * marks of a person writing: first and second person, greetings,
//!   apologies, a question.
//!
//! The span is clinical text when it has two health words, or one health
//! word in a sentence of six words or more, or a health word (a weak one,
//! with an operational meaning too, included) and a mark of a person, or
//! three marks of a person. Counting costs
//! one hash lookup per word and per word pair, and nothing is allocated.

use std::collections::HashMap;

use super::class;
use super::names::BuildFx;

/// The longest word or phrase in the term lists.
const MAX_TERM: usize = 32;

#[derive(Debug)]
pub struct Prose {
    pub rule: u32,
    /// Health words and phrases, lower case, each with its `TERM`, `WEAK`
    /// and `HEAD` flags: one lookup per word answers all three.
    terms: HashMap<Box<[u8]>, u8, BuildFx>,
    /// Whether `[hh:mm:ss] Speaker: words` lines are read as transcripts.
    pub transcripts: bool,
}

/// A health word or phrase.
const TERM: u8 = 1;
/// A health word that also has an operational meaning (`~` in the lists):
/// it counts only in a human message.
const WEAK: u8 = 2;
/// The first word of a phrase: only after such a word is a phrase looked
/// up, so most words cost one lookup, not three.
const HEAD: u8 = 4;

/// Words that show a person writing or speaking.
fn is_person_mark(w: &[u8]) -> bool {
    matches!(
        w,
        b"i" | b"i'm"
            | b"i've"
            | b"i'd"
            | b"i'll"
            | b"im"
            | b"ive"
            | b"me"
            | b"my"
            | b"mine"
            | b"myself"
            | b"you"
            | b"your"
            | b"you've"
            | b"you're"
            | b"we"
            | b"let's"
            | b"hi"
            | b"hello"
            | b"hey"
            | b"hola"
            | b"thanks"
            | b"thank"
            | b"sorry"
            | b"please"
            | b"morning"
            | b"doctor"
            | b"doc"
    )
}

impl Prose {
    /// Builds the detector from term lists (one word or phrase per line,
    /// `#` comments).
    pub fn new(rule: u32, lists: &[&str], transcripts: bool) -> Prose {
        let mut terms: HashMap<Box<[u8]>, u8, BuildFx> = HashMap::with_hasher(BuildFx);
        for list in lists {
            for line in list.lines() {
                let t = line.split('#').next().unwrap_or("").trim();
                let (flag, t) = match t.strip_prefix('~') {
                    Some(w) => (WEAK, w.trim()),
                    None => (TERM, t),
                };
                if t.is_empty() || t.len() > MAX_TERM {
                    continue;
                }
                let t = t.to_ascii_lowercase();
                if let Some((head, _)) = t.split_once(' ') {
                    *terms.entry(head.as_bytes().into()).or_default() |= HEAD;
                }
                *terms.entry(t.into_bytes().into_boxed_slice()).or_default() |= flag;
            }
        }
        Prose {
            rule,
            terms,
            transcripts,
        }
    }

    /// Whether `text` reads as a person's message about their health (see
    /// the module docs). Percent- and plus-encoding should be decoded first.
    pub fn is_clinical(&self, text: &[u8]) -> bool {
        let mut health = 0;
        let mut weak = 0;
        let mut person = 0;
        let mut words = 0;
        // The two words before this one, for phrases of two and three words,
        // when they can start one.
        let mut prev: Option<(usize, usize)> = None;
        let mut prev2: Option<(usize, usize)> = None;
        let mut prev_head = false;
        let mut prev2_head = false;
        let mut buf = [0u8; MAX_TERM];
        let mut i = 0;
        while i < text.len() {
            let b = text[i];
            if b == b'?' {
                person += 1;
            }
            if !is_word_byte(b) {
                i += 1;
                continue;
            }
            let s = i;
            while i < text.len()
                && (is_word_byte(text[i])
                    || (matches!(text[i], b'\'' | b'/' | b'-')
                        && text.get(i + 1).is_some_and(|&c| is_word_byte(c))))
            {
                i += 1;
            }
            let w = &text[s..i];
            words += 1;
            if w.len() <= MAX_TERM {
                let n = w.len();
                for (d, c) in buf.iter_mut().zip(w) {
                    *d = c.to_ascii_lowercase();
                }
                let lw = &buf[..n];
                if is_person_mark(lw) {
                    person += 1;
                }
                let flags = self.terms.get(lw).copied().unwrap_or(0);
                let mut hit = flags & TERM != 0;
                // Phrases of two and three words (`chest pain`, `shortness
                // of breath`), joined by one space whatever separated them.
                for (first, head) in [(prev, prev_head), (prev2, prev2_head)] {
                    if let (Some(first), true) = (first, head) {
                        hit |= self.phrase(text, first, (s, i));
                    }
                }
                if hit {
                    health += 1;
                } else if flags & WEAK != 0 {
                    weak += 1;
                }
                prev2_head = prev_head;
                prev_head = flags & HEAD != 0;
            } else {
                prev2_head = prev_head;
                prev_head = false;
            }
            prev2 = prev;
            prev = Some((s, i));
        }
        words >= 2
            && (health >= 2
                || (health >= 1 && words >= 6)
                || (health + weak >= 1 && person >= 1)
                || person >= 3)
    }

    /// Whether the words from `first` to `last` (two or three of them) are a
    /// term, lower-cased and joined by single spaces.
    fn phrase(&self, text: &[u8], first: (usize, usize), last: (usize, usize)) -> bool {
        let mut buf = [0u8; MAX_TERM];
        let mut n = 0;
        let mut p = first.0;
        let mut space = false;
        while p < last.1 {
            let b = text[p];
            if is_word_byte(b) || (matches!(b, b'\'' | b'/' | b'-') && p > first.0) {
                if space {
                    if n == MAX_TERM {
                        return false;
                    }
                    buf[n] = b' ';
                    n += 1;
                    space = false;
                }
                if n == MAX_TERM {
                    return false;
                }
                buf[n] = b.to_ascii_lowercase();
                n += 1;
            } else {
                space = n > 0;
            }
            p += 1;
        }
        self.terms.get(&buf[..n]).is_some_and(|f| f & TERM != 0)
    }
}

/// ASCII letters and digits and every byte of a multi-byte character:
/// one table load, the scan's test for every byte of a message.
#[inline(always)]
fn is_word_byte(b: u8) -> bool {
    class::is(b, class::DIGIT | class::ALPHA | class::NON_ASCII)
}

/// The span of the utterance in a transcript or chat line: after a clock
/// time without a date (`[09:19:11]`, `00:21:15.713`) and a speaker label
/// (`Dr. Fukuda:`, `PATIENT (Colm Mulligan):`, `Paul:`), the rest of the
/// line. A log line's own time carries a date, so ordinary `Logger: message`
/// lines are not taken.
pub fn utterance(hay: &[u8]) -> Option<(usize, usize)> {
    let mut p = 0;
    while p < hay.len() && hay[p] == b' ' {
        p += 1;
    }
    let bracket = hay.get(p) == Some(&b'[');
    if bracket {
        p += 1;
    }
    // hh:mm:ss, then optional .fff
    let clock = |p: usize| -> Option<usize> {
        let d = |i: usize| hay.get(i).is_some_and(u8::is_ascii_digit);
        if d(p)
            && d(p + 1)
            && hay.get(p + 2) == Some(&b':')
            && d(p + 3)
            && d(p + 4)
            && hay.get(p + 5) == Some(&b':')
            && d(p + 6)
            && d(p + 7)
        {
            let mut e = p + 8;
            if hay.get(e) == Some(&b'.') {
                e += 1;
                while hay.get(e).is_some_and(u8::is_ascii_digit) {
                    e += 1;
                }
            }
            Some(e)
        } else {
            None
        }
    };
    p = clock(p)?;
    if bracket {
        if hay.get(p) != Some(&b']') {
            return None;
        }
        p += 1;
    }
    if hay.get(p) != Some(&b' ') {
        return None;
    }
    p += 1;
    // The speaker: up to 60 bytes of words, initials and a parenthesised
    // name, ending in `: `.
    let label_start = p;
    let colon = hay[p..].iter().take(64).position(|&b| b == b':')? + p;
    if hay.get(colon + 1) != Some(&b' ') || colon == label_start {
        return None;
    }
    let label = &hay[label_start..colon];
    // A speaker is a name or a role (`Dr. Fukuda`, `PATIENT (...)`, `結衣`),
    // so it has a capital or a letter outside ASCII; `waiting room:` is a
    // log's own label.
    if !label.iter().any(|&b| b.is_ascii_uppercase() || b >= 0x80) {
        return None;
    }
    if !label.iter().all(|&b| {
        b.is_ascii_alphabetic()
            || b >= 0x80
            || matches!(b, b' ' | b'.' | b'(' | b')' | b'-' | b'\'')
    }) {
        return None;
    }
    let s = colon + 2;
    (hay.len() > s).then_some((s, hay.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prose() -> Prose {
        Prose::new(
            0,
            &["rash\n~fever\nzoloft\nchest pain\nblood sugar\n~pills\n~pt\ndenies\n~exhausted\n"],
            true,
        )
    }

    #[test]
    fn messages_that_are_clinical() {
        let p = prose();
        for t in [
            "hi, can you refill my Zoloft? I only have 5 pills left",
            "how long have you had the rash?",
            "Pt reports dysuria x7d. Denies n/v.",
            "sorry to bother you but my blood sugar was 273",
            "I have chest pain since Monday",
            "camera not working, can you call me instead? same number as on file",
        ] {
            assert!(p.is_clinical(t.as_bytes()), "{t}");
        }
    }

    #[test]
    fn operational_messages_are_not() {
        let p = prose();
        for t in [
            "request completed",
            "refill request received",
            "message flagged",
            "profile updated",
            "fever alert threshold changed",
            "connection pool exhausted, waiting for a free connection",
            "user not found",
            "",
        ] {
            assert!(!p.is_clinical(t.as_bytes()), "{t}");
        }
    }

    #[test]
    fn transcript_utterances() {
        let u = |s: &'static str| utterance(s.as_bytes()).map(|(a, b)| &s[a..b]);
        assert_eq!(u("[17:09:47] Dr. Fukuda: how long?"), Some("how long?"));
        assert_eq!(
            u("00:21:15.713 PATIENT (Colm Mulligan): hola, a UTI again"),
            Some("hola, a UTI again")
        );
        assert_eq!(u("[09:19:11] 結衣: Good morning"), Some("Good morning"));
        // A log line's time has a date; a logger is not a speaker.
        assert_eq!(u("2024-06-01 12:00:00 Kafka Consumer: rebalancing"), None);
        assert_eq!(u("12:00:00 GET /x: 200"), None);
        assert_eq!(u("12:00"), None);
        assert_eq!(u("06:31:07 waiting room: Ana is waiting"), None);
    }
}
