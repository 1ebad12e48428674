//! Words in scripts other than Latin.
//!
//! Operational log lines are written in ASCII: service names, keys, paths,
//! messages. A run of letters in Han, Hangul, Kana, Arabic, Cyrillic,
//! Devanagari and the other scripts listed here comes from a person: a name
//! typed into a form, a message, an address. The names detector takes such a
//! run as a name wherever it occurs, with no dictionary (a dictionary of
//! every name in every script does not exist, and capitalisation, which
//! carries the Latin-script evidence, does not exist in most of them).
//!
//! The check costs nothing on ASCII lines: it starts only at a byte of 0x80
//! or above, where the tokenizer already is.

/// A set of scripts, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scripts(u32);

/// The script names accepted in rule files, with their bits.
const NAMES: &[(&str, u32)] = &[
    ("arabic", 1 << 0),
    ("armenian", 1 << 1),
    ("bengali", 1 << 2),
    ("cyrillic", 1 << 3),
    ("devanagari", 1 << 4),
    ("ethiopic", 1 << 5),
    ("georgian", 1 << 6),
    ("greek", 1 << 7),
    ("gujarati", 1 << 8),
    ("gurmukhi", 1 << 9),
    ("han", 1 << 10),
    ("hangul", 1 << 11),
    ("hebrew", 1 << 12),
    ("kana", 1 << 13),
    ("khmer", 1 << 14),
    ("lao", 1 << 15),
    ("malayalam", 1 << 16),
    ("myanmar", 1 << 17),
    ("sinhala", 1 << 18),
    ("tamil", 1 << 19),
    ("telugu", 1 << 20),
    ("kannada", 1 << 21),
    ("thai", 1 << 22),
    ("oriya", 1 << 23),
];

/// Scripts written without spaces between syllables, where one character
/// can be a whole given name (`俊`, `준`).
const DENSE: u32 = (1 << 10) | (1 << 11) | (1 << 13);

impl Scripts {
    /// The set named by `names`; the first unknown name is the error.
    pub fn parse(names: &[String]) -> Result<Scripts, String> {
        let mut bits = 0;
        for n in names {
            match NAMES.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)) {
                Some((_, b)) => bits |= b,
                None => {
                    let known: Vec<&str> = NAMES.iter().map(|(k, _)| *k).collect();
                    return Err(format!(
                        "unknown script '{n}' (expected some of: {})",
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(Scripts(bits))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The end of the phrase of words in these scripts that starts at
    /// `start`, or `None` when no such word starts there. Words are joined by
    /// one space or a middle dot (`・`, `·`); combining marks and zero-width
    /// joiners belong to the word they are in. A word in a script with
    /// spaces must have two letters: a lone `α` or `я` is a symbol more often
    /// than a name.
    pub fn phrase_end(self, hay: &[u8], start: usize) -> Option<usize> {
        let mut p = start;
        let mut end = None;
        loop {
            let (e, letters, dense) = self.word(hay, p);
            if letters == 0 || (letters < 2 && !dense) {
                break;
            }
            end = Some(e);
            // A joiner, then another word in one of the scripts.
            let next = match hay.get(e) {
                Some(b' ') => e + 1,
                Some(_) => match decode(hay, e) {
                    Some(('\u{30FB}' | '\u{00B7}', n)) => e + n,
                    _ => break,
                },
                None => break,
            };
            p = next;
        }
        end
    }

    /// One word at `p`: its end, its number of letters, and whether it is in
    /// a script where one letter can be a name.
    fn word(self, hay: &[u8], mut p: usize) -> (usize, usize, bool) {
        let mut letters = 0;
        let mut dense = false;
        while let Some((c, n)) = decode(hay, p) {
            match script_bit(c) {
                Some(bit) if self.0 & bit != 0 => {
                    letters += 1;
                    dense |= bit & DENSE != 0;
                }
                // Marks and joiners continue a word; they never start one.
                _ if letters > 0 && is_mark_or_joiner(c) => {}
                _ => break,
            }
            p += n;
        }
        (p, letters, dense)
    }
}

/// The character at `i` and its length in bytes, if it is a non-ASCII
/// character. Invalid UTF-8 is `None`.
fn decode(hay: &[u8], i: usize) -> Option<(char, usize)> {
    let b = *hay.get(i)?;
    let len = match b {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let s = std::str::from_utf8(hay.get(i..i + len)?).ok()?;
    s.chars().next().map(|c| (c, len))
}

fn is_mark_or_joiner(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}' // combining diacritics
        | '\u{200C}' | '\u{200D}' // zero-width non-joiner and joiner (Persian, Indic)
        | '\u{0640}' // Arabic tatweel
        | '\u{3099}'..='\u{309C}' // kana voicing marks
    )
}

/// The bit of the script a letter belongs to. Ranges are the Unicode blocks;
/// a block's marks (Devanagari vowel signs, Arabic harakat) count as letters
/// of their script, which keeps words whole.
fn script_bit(c: char) -> Option<u32> {
    let bit = |name: &str| NAMES.iter().find(|(k, _)| *k == name).map(|(_, b)| *b);
    let name = match c as u32 {
        0x0370..=0x03FF | 0x1F00..=0x1FFF => {
            // Greek letters, not its symbols (µ-like signs, punctuation).
            if !c.is_alphabetic() {
                return None;
            }
            "greek"
        }
        0x0400..=0x052F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => "cyrillic",
        0x0531..=0x058F => "armenian",
        0x0591..=0x05F4 | 0xFB1D..=0xFB4F => "hebrew",
        0x0600..=0x06FF | 0x0750..=0x077F | 0x08A0..=0x08FF | 0xFB50..=0xFDFF | 0xFE70..=0xFEFF => {
            // Arabic letters and marks, not its digits or punctuation
            // (U+060C comma, U+061F question mark, U+0660-0669 digits).
            if matches!(c as u32, 0x060C | 0x061B | 0x061F | 0x0660..=0x066D | 0x06D4 | 0x06F0..=0x06F9)
            {
                return None;
            }
            "arabic"
        }
        0x0900..=0x097F => {
            if matches!(c as u32, 0x0964..=0x096F) {
                return None; // danda and digits
            }
            "devanagari"
        }
        0x0980..=0x09FF => "bengali",
        0x0A00..=0x0A7F => "gurmukhi",
        0x0A80..=0x0AFF => "gujarati",
        0x0B00..=0x0B7F => "oriya",
        0x0B80..=0x0BFF => "tamil",
        0x0C00..=0x0C7F => "telugu",
        0x0C80..=0x0CFF => "kannada",
        0x0D00..=0x0D7F => "malayalam",
        0x0D80..=0x0DFF => "sinhala",
        0x0E00..=0x0E7F => "thai",
        0x0E80..=0x0EFF => "lao",
        0x1000..=0x109F => "myanmar",
        0x10A0..=0x10FF | 0x2D00..=0x2D2F => "georgian",
        0x1100..=0x11FF | 0x3130..=0x318F | 0xA960..=0xA97F | 0xAC00..=0xD7AF | 0xD7B0..=0xD7FF => {
            "hangul"
        }
        0x1200..=0x139F => "ethiopic",
        0x1780..=0x17FF => "khmer",
        0x3040..=0x309F | 0x30A0..=0x30FA | 0x30FC..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F => {
            "kana"
        }
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F => "han",
        _ => return None,
    };
    bit(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Scripts {
        let names: Vec<String> = NAMES.iter().map(|(k, _)| k.to_string()).collect();
        Scripts::parse(&names).unwrap()
    }

    fn phrase(s: &str) -> Option<&str> {
        let start = s.find(|c: char| !c.is_ascii()).unwrap();
        all().phrase_end(s.as_bytes(), start).map(|e| &s[start..e])
    }

    #[test]
    fn phrases_in_each_script() {
        assert_eq!(phrase("for 王荣 at"), Some("王荣"));
        assert_eq!(phrase("徐, 俊"), Some("徐"));
        assert_eq!(phrase("by 김민준 ok"), Some("김민준"));
        assert_eq!(
            phrase("for كامل مرازيق البقوم sys=1"),
            Some("كامل مرازيق البقوم")
        );
        assert_eq!(phrase("x Гедеон Гордеева is"), Some("Гедеон Гордеева"));
        assert_eq!(phrase("| सिद्धार्थ ताम्बे|"), Some("सिद्धार्थ ताम्बे"));
        assert_eq!(phrase("to ミラー・ジョン."), Some("ミラー・ジョン"));
        assert_eq!(phrase("נועה כהן"), Some("נועה כהן"));
        assert_eq!(phrase("'آوا'"), Some("آوا"));
    }

    #[test]
    fn symbols_and_latin_are_not_names() {
        let s = all();
        for text in [
            "µs", "≥ 5", "— dash", "é", "Nguyễn", "α ", "x·y", "€12", "،",
        ] {
            let start = text.find(|c: char| !c.is_ascii()).unwrap();
            assert_eq!(s.phrase_end(text.as_bytes(), start), None, "{text}");
        }
        // Invalid UTF-8 never panics and is not a name.
        assert_eq!(s.phrase_end(b"\xff\xfe\xd0", 0), None);
        assert_eq!(s.phrase_end(b"\xd0", 0), None);
    }

    #[test]
    fn unknown_script_names_the_problem() {
        let e = Scripts::parse(&["klingon".to_string()]).unwrap_err();
        assert!(e.contains("klingon") && e.contains("han"), "{e}");
    }
}
