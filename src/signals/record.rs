//! What a signal sees of a record: its time, its line, and its fields
//! (parsed from a JSON or logfmt line here, or looked up by the caller, e.g.
//! in OTLP attributes).

use std::collections::HashSet;
use std::fmt;

/// Field names are compared in the engine's normal form (see
/// [`crate::keys`]): ASCII letters and digits, lower case (`visit_id`,
/// `visitId`, `VISIT-ID` and `visit.id` are the same). A name without one
/// (empty, or longer than [`crate::keys::MAX_KEY`] after normalising)
/// becomes the empty string, which no configured field is.
pub(crate) fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    normalise_into(name, &mut out);
    out
}

fn normalise_into(name: &str, out: &mut String) {
    out.clear();
    let mut buf = [0u8; crate::keys::MAX_KEY];
    if let Some(n) = crate::keys::normalise_key(name.as_bytes(), &mut buf) {
        // Only ASCII letters and digits are kept, so the bytes are UTF-8.
        out.extend(buf[..n].iter().map(|&b| char::from(b)));
    }
}

/// Fields supplied by the caller, e.g. backed by OTLP attributes.
pub trait FieldLookup {
    /// Calls `f` with every field: its name as written and its value as
    /// text (numbers and booleans written out).
    fn for_each_field(&self, f: &mut dyn FnMut(&str, &str));
}

impl<F: Fn(&mut dyn FnMut(&str, &str))> FieldLookup for F {
    fn for_each_field(&self, f: &mut dyn FnMut(&str, &str)) {
        self(f)
    }
}

#[derive(Clone, Copy)]
enum Source<'a> {
    /// Only the raw line (line conditions).
    Raw,
    /// A JSON object line.
    Json,
    /// A logfmt line.
    Logfmt,
    /// JSON when the line starts with `{`, logfmt otherwise.
    Auto,
    /// The caller's fields.
    Lookup(&'a dyn FieldLookup),
}

/// One record as signals see it. Cheap to make: JSON and logfmt lines are
/// parsed only if the line may match a signal.
#[derive(Clone, Copy)]
pub struct RecordView<'a> {
    time_unix_nano: Option<i64>,
    line: &'a [u8],
    source: Source<'a>,
}

impl fmt::Debug for RecordView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match self.source {
            Source::Raw => "raw",
            Source::Json => "json",
            Source::Logfmt => "logfmt",
            Source::Auto => "auto",
            Source::Lookup(_) => "lookup",
        };
        f.debug_struct("RecordView")
            .field("has_time", &self.time_unix_nano.is_some())
            .field("line_bytes", &self.line.len())
            .field("source", &source)
            .finish()
    }
}

impl<'a> RecordView<'a> {
    /// A line with no fields: only `line_contains`/`line_matches` apply.
    pub fn raw(line: &'a [u8], time_unix_nano: Option<i64>) -> Self {
        RecordView {
            time_unix_nano,
            line,
            source: Source::Raw,
        }
    }

    /// A JSON object line; nested keys are joined by dots.
    pub fn json(line: &'a [u8], time_unix_nano: Option<i64>) -> Self {
        RecordView {
            time_unix_nano,
            line,
            source: Source::Json,
        }
    }

    /// A logfmt line (`evt=connected visit_id=v1 msg="a b"`).
    pub fn logfmt(line: &'a [u8], time_unix_nano: Option<i64>) -> Self {
        RecordView {
            time_unix_nano,
            line,
            source: Source::Logfmt,
        }
    }

    /// JSON if the line starts with `{` (after spaces), logfmt otherwise.
    pub fn auto(line: &'a [u8], time_unix_nano: Option<i64>) -> Self {
        RecordView {
            time_unix_nano,
            line,
            source: Source::Auto,
        }
    }

    /// Fields from the caller (OTLP attributes); `line` is the body, for
    /// line conditions.
    pub fn with_fields(
        line: &'a [u8],
        time_unix_nano: Option<i64>,
        fields: &'a dyn FieldLookup,
    ) -> Self {
        RecordView {
            time_unix_nano,
            line,
            source: Source::Lookup(fields),
        }
    }

    /// The record's time, if it has one.
    pub fn time_unix_nano(&self) -> Option<i64> {
        self.time_unix_nano
    }

    /// The raw line.
    pub fn line(&self) -> &'a [u8] {
        self.line
    }

    /// Whether every field value appears verbatim in the line (true for
    /// JSON and logfmt lines, barring escapes), so that a line containing
    /// none of the configured literals cannot match.
    pub(crate) fn fields_in_line(&self) -> bool {
        !matches!(self.source, Source::Lookup(_))
    }

    /// Fills `out` with the fields whose normalised names are in `wanted`.
    pub(crate) fn fields_into(&self, wanted: &HashSet<String>, out: &mut Fields) {
        out.clear();
        match self.source {
            Source::Raw => {}
            Source::Json => parse_json(self.line, wanted, out),
            Source::Logfmt => parse_logfmt(self.line, wanted, out),
            Source::Auto => {
                if self.line.trim_ascii_start().first() == Some(&b'{') {
                    parse_json(self.line, wanted, out)
                } else {
                    parse_logfmt(self.line, wanted, out)
                }
            }
            Source::Lookup(l) => l.for_each_field(&mut |k, v| out.push(wanted, k, v)),
        }
    }
}

/// The fields of one record, by normalised name. Reused across records.
#[derive(Default)]
pub(crate) struct Fields {
    pairs: Vec<(String, String)>,
    len: usize,
    key: String,
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fields").field("len", &self.len).finish()
    }
}

impl Fields {
    fn clear(&mut self) {
        self.len = 0;
    }

    fn push(&mut self, wanted: &HashSet<String>, key: &str, value: &str) {
        normalise_into(key, &mut self.key);
        if !wanted.contains(&self.key) {
            return;
        }
        if self.len == self.pairs.len() {
            self.pairs.push((String::new(), String::new()));
        }
        let (k, v) = &mut self.pairs[self.len];
        k.clear();
        k.push_str(&self.key);
        v.clear();
        v.push_str(value);
        self.len += 1;
    }

    /// The value of a field by normalised name (the first, if repeated).
    pub(crate) fn get(&self, norm: &str) -> Option<&str> {
        self.pairs[..self.len]
            .iter()
            .find(|(k, _)| k == norm)
            .map(|(_, v)| v.as_str())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

fn parse_json(line: &[u8], wanted: &HashSet<String>, out: &mut Fields) {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(line.trim_ascii()) else {
        return;
    };
    let mut path = String::new();
    for (k, v) in &map {
        flatten(&mut path, k, v, wanted, out, 0);
    }
}

fn flatten(
    path: &mut String,
    key: &str,
    v: &serde_json::Value,
    wanted: &HashSet<String>,
    out: &mut Fields,
    depth: usize,
) {
    use serde_json::Value;
    let len = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
    match v {
        Value::Null => {}
        Value::String(s) => out.push(wanted, path, s),
        Value::Bool(b) => out.push(wanted, path, if *b { "true" } else { "false" }),
        Value::Number(n) => out.push(wanted, path, &n.to_string()),
        Value::Object(m) if depth < 8 => {
            for (k, v) in m {
                flatten(path, k, v, wanted, out, depth + 1);
            }
        }
        Value::Array(a) if depth < 8 => {
            for (i, v) in a.iter().enumerate() {
                flatten(path, &i.to_string(), v, wanted, out, depth + 1);
            }
        }
        _ => {}
    }
    path.truncate(len);
}

/// logfmt: `key=value` pairs separated by spaces; a value may be quoted
/// (`msg="a \"b\" c"`, with `\"`, `\\`, `\n`, `\t` escapes). A key without
/// `=` has no value and is skipped.
fn parse_logfmt(line: &[u8], wanted: &HashSet<String>, out: &mut Fields) {
    let Ok(s) = std::str::from_utf8(line) else {
        return;
    };
    let b = s.as_bytes();
    let mut i = 0;
    let mut value = String::new();
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() && b[i] != b'"' {
            i += 1;
        }
        let key = &s[ks..i];
        if i >= b.len() || b[i] != b'=' {
            // A bare key (or a stray quote): skip to the next space.
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            continue;
        }
        i += 1; // '='
        if i < b.len() && b[i] == b'"' {
            i += 1;
            value.clear();
            let mut closed = false;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i += 1;
                        closed = true;
                        break;
                    }
                    b'\\' if i + 1 < b.len() => {
                        value.push(match b[i + 1] {
                            b'n' => '\n',
                            b't' => '\t',
                            b'r' => '\r',
                            c => char::from(c),
                        });
                        i += 2;
                    }
                    // A backslash ending the line: the value is unterminated.
                    b'\\' => i += 1,
                    _ => {
                        let start = i;
                        while i < b.len() && b[i] != b'"' && b[i] != b'\\' {
                            i += 1;
                        }
                        value.push_str(&s[start..i]);
                    }
                }
            }
            if closed && !key.is_empty() {
                out.push(wanted, key, &value);
            }
        } else {
            let vs = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            if !key.is_empty() {
                out.push(wanted, key, &s[vs..i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(names: &[&str]) -> HashSet<String> {
        names.iter().map(|n| normalise(n)).collect()
    }

    #[test]
    fn normalises_names() {
        assert_eq!(normalise("visit_id"), "visitid");
        assert_eq!(normalise("visitId"), "visitid");
        assert_eq!(normalise("VISIT-ID"), "visitid");
        assert_eq!(normalise("visit.id"), "visitid");
    }

    #[test]
    fn parses_json_with_nested_keys() {
        let w = wanted(&["evt", "visit.id", "stats.loss", "tags.1", "ok"]);
        let mut f = Fields::default();
        let line = br#"{"evt":"connected","visit":{"id":"v-1"},"stats":{"loss":1.5},"tags":["a","b"],"ok":true,"other":"x"}"#;
        RecordView::json(line, None).fields_into(&w, &mut f);
        assert_eq!(f.get("evt"), Some("connected"));
        assert_eq!(f.get("visitid"), Some("v-1"));
        assert_eq!(f.get("statsloss"), Some("1.5"));
        assert_eq!(f.get("tags1"), Some("b"));
        assert_eq!(f.get("ok"), Some("true"));
        assert_eq!(f.get("other"), None);
        assert_eq!(f.len(), 5);
        // Not an object: no fields.
        RecordView::json(b"[1,2]", None).fields_into(&w, &mut f);
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn parses_logfmt_with_quotes() {
        let w = wanted(&["evt", "msg", "visitId", "empty", "q"]);
        let mut f = Fields::default();
        let line = br#"ts=1 evt=connected msg="a \"b\" c" bare visit_id=v-2 empty= q="x=y""#;
        RecordView::logfmt(line, None).fields_into(&w, &mut f);
        assert_eq!(f.get("evt"), Some("connected"));
        assert_eq!(f.get("msg"), Some("a \"b\" c"));
        assert_eq!(f.get("visitid"), Some("v-2"));
        assert_eq!(f.get("empty"), Some(""));
        assert_eq!(f.get("q"), Some("x=y"));
        // An unterminated quote yields no value.
        RecordView::logfmt(br#"evt="open"#, None).fields_into(&w, &mut f);
        assert_eq!(f.get("evt"), None);
        RecordView::logfmt(br#"q=1 evt="open\"#, None).fields_into(&w, &mut f);
        assert_eq!((f.get("q"), f.get("evt")), (Some("1"), None));
        // Odd shapes end.
        for odd in [
            &b"=x"[..],
            b"\"=",
            b"a==b",
            b"\\",
            b"k=\"\\\"",
            b"  ",
            b"x=\"\xff\"",
        ] {
            RecordView::logfmt(odd, None).fields_into(&w, &mut f);
        }
    }

    #[test]
    fn lookup_fields_are_filtered_and_normalised() {
        let w = wanted(&["visit_id"]);
        let attrs = |f: &mut dyn FnMut(&str, &str)| {
            f("Visit-Id", "v-3");
            f("unrelated", "z");
        };
        let mut f = Fields::default();
        RecordView::with_fields(b"", None, &attrs).fields_into(&w, &mut f);
        assert_eq!(f.get("visitid"), Some("v-3"));
        assert_eq!(f.len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn logfmt_round_trips(pairs in proptest::collection::vec(("[a-z][a-z_]{0,7}", "\\PC{0,12}"), 1..6)) {
            let mut line = String::new();
            for (k, v) in &pairs {
                let bare = !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || c == '"' || c == '=' || c == '\\');
                if bare {
                    line.push_str(&format!("{k}={v} "));
                } else {
                    let q = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                    line.push_str(&format!("{k}=\"{q}\" "));
                }
            }
            let w: HashSet<String> = pairs.iter().map(|(k, _)| normalise(k)).collect();
            let mut f = Fields::default();
            RecordView::logfmt(line.as_bytes(), None).fields_into(&w, &mut f);
            for (k, v) in &pairs {
                // The first occurrence of a key wins.
                let first = &pairs.iter().find(|(k2, _)| normalise(k2) == normalise(k)).unwrap().1;
                proptest::prop_assert_eq!(f.get(&normalise(k)), Some(first.as_str()), "{} in {:?}", v, line);
            }
        }

        #[test]
        fn any_bytes_parse_without_panic(line in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let w: HashSet<String> = ["a", "b"].iter().map(|k| normalise(k)).collect();
            let mut f = Fields::default();
            RecordView::logfmt(&line, None).fields_into(&w, &mut f);
            RecordView::auto(&line, None).fields_into(&w, &mut f);
        }
    }
}
