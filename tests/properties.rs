//! Property tests over arbitrary input: the engine never panics, keeps one
//! line out per line in, and never lets a matched value survive.

use proptest::prelude::*;
use scrubs::{Engine, RuleSet};
use std::sync::OnceLock;

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| Engine::builtin().expect("builtin pack compiles"))
}

/// Bytes that look like log lines often enough to reach every detector.
fn loggy() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        Just(b"ssn=".to_vec()),
        Just(b"{\"patientName\":\"".to_vec()),
        Just(b"\"}".to_vec()),
        Just(b"219-09-9999".to_vec()),
        Just(b"(415) 555-0132".to_vec()),
        Just(b"Maria Gonzalez".to_vec()),
        Just(b"Dr. ".to_vec()),
        Just(b"?q=a%20b&x=".to_vec()),
        Just("Nguyễn".as_bytes().to_vec()),
        Just(b"\\".to_vec()),
        Just(b"'".to_vec()),
        Just(b"[[{{".to_vec()),
        Just(b"DOB 03/14/1985".to_vec()),
        Just(b"x@y.org".to_vec()),
        Just(b" ".to_vec()),
        "[a-zA-Z0-9 :=,./-]{0,12}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// The `[TAG:value]` tokens scrubs writes.
fn own_tokens(s: &str) -> Vec<&str> {
    let mut v = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('[') {
        let tail = &rest[i..];
        match tail.find(']') {
            Some(j) => {
                let t = &tail[..=j];
                let inner = &t[1..t.len() - 1];
                if let Some((tag, val)) = inner.split_once(':') {
                    if !tag.is_empty()
                        && tag.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                        && !val.is_empty()
                        && val.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        v.push(t);
                    }
                }
                rest = &tail[1..];
            }
            None => break,
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let e = engine();
        let mut s = e.scratch();
        let _ = e.redact(&mut s, &bytes);
    }

    #[test]
    fn never_panics_on_log_shaped_bytes(bytes in loggy()) {
        let e = engine();
        let mut s = e.scratch();
        let out = String::from_utf8_lossy(e.redact(&mut s, &bytes)).into_owned();
        // A second pass leaves every replacement token of the first as it is:
        // labels and pseudonyms are not PHI and are never redacted again.
        let again = String::from_utf8_lossy(e.redact(&mut s, out.as_bytes())).into_owned();
        for token in own_tokens(&out) {
            prop_assert!(again.contains(token), "{} lost in {:?}", token, again);
        }
    }

    #[test]
    fn one_line_out_per_line_in(lines in proptest::collection::vec("[^\n]{0,80}", 1..20)) {
        let e = engine();
        let mut s = e.scratch();
        for l in &lines {
            let out = e.redact(&mut s, l.as_bytes());
            prop_assert!(!out.contains(&b'\n'));
        }
    }

    #[test]
    fn a_matched_value_never_survives(
        prefix in "[a-z ]{0,20}",
        suffix in "[a-z ]{0,20}",
        area in 100u32..899, group in 1u32..99, serial in 1u32..9999,
    ) {
        prop_assume!(area != 666);
        let ssn = format!("{area:03}-{group:02}-{serial:04}");
        let line = format!("{prefix} {ssn} {suffix}");
        let e = engine();
        let mut s = e.scratch();
        let out = String::from_utf8_lossy(e.redact(&mut s, line.as_bytes())).into_owned();
        prop_assert!(!out.contains(&ssn), "{} survived in {}", ssn, out);
    }

    #[test]
    fn keyed_values_never_survive_in_json(value in "[A-Za-z0-9 .,'-]{1,40}") {
        let line = format!("{{\"visit_id\":\"vis_1\",\"patientName\":{}}}", serde_json::to_string(&value).unwrap());
        let e = engine();
        let mut s = e.scratch();
        let out = String::from_utf8_lossy(e.redact(&mut s, line.as_bytes())).into_owned();
        let parsed: serde_json::Value = serde_json::from_str(&out).expect("output stays valid JSON");
        prop_assert_ne!(parsed["patientName"].as_str(), Some(value.as_str()));
        prop_assert_eq!(parsed["visit_id"].as_str(), Some("vis_1"));
    }
}

#[test]
fn custom_rule_values_never_survive() {
    // Any value a rule matches is gone, whatever rule matched it.
    let set = RuleSet::from_yaml(
        "inline.yaml",
        r#"
rules:
  - id: ticket
    category: other_identifier
    detector:
      regex: 'TCK-\d{4}'
      requires: ["tck-"]
    action: {mask: {keep_last: 2}}
"#,
    )
    .unwrap();
    let e = Engine::new(&set, scrubs::PseudonymKey::ephemeral()).unwrap();
    let mut s = e.scratch();
    assert_eq!(e.redact_str(&mut s, "see TCK-1234 now"), "see ***-**34 now");
}

/// Frames `input` with a [`scrubs::lines::LineBuf`] fed in pieces that end
/// at `cuts` (offsets into the input), `chunk` bytes of buffer at a time.
/// Each line is (kept bytes, dropped bytes, consumed bytes).
fn frame_in_pieces(
    input: &[u8],
    max: usize,
    chunk: usize,
    cuts: &[usize],
) -> Vec<(Vec<u8>, u64, u64)> {
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    bounds.push(input.len());
    bounds.sort_unstable();
    let mut lb = scrubs::lines::LineBuf::new(max, chunk);
    let mut out = Vec::new();
    let mut pos = 0;
    for end in bounds {
        while pos < end {
            pos += lb.fill_from(&input[pos..end]);
            while let Some(l) = lb.next_line() {
                out.push((l.bytes.to_vec(), l.dropped, l.consumed));
            }
        }
    }
    if let Some(l) = lb.take_partial() {
        out.push((l.bytes.to_vec(), l.dropped, l.consumed));
    }
    out
}

/// Frames `input` as `scrubs redact` does: a [`scrubs::lines::LineReader`]
/// over a reader with a `cap`-byte buffer.
fn frame_with_reader(input: &[u8], max: usize, cap: usize) -> Vec<(Vec<u8>, u64, u64)> {
    let mut r = scrubs::lines::LineReader::new(std::io::BufReader::with_capacity(cap, input), max);
    let mut out = Vec::new();
    while let Some(l) = r.next_line().unwrap() {
        out.push((l.bytes.to_vec(), l.dropped, l.consumed));
    }
    out
}

/// Bytes with many line ends, carriage returns and delimiters, so that
/// short lines, empty lines, CRLF, cut lines and a final partial line all
/// occur.
fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => Just(b'\n'),
        2 => Just(b'\r'),
        2 => Just(b' '),
        1 => Just(b'-'),
        6 => Just(b'a'),
        2 => any::<u8>(),
    ];
    proptest::collection::vec(byte, 0..400)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Where the input's chunks happen to end (a read of stdin, a read of a
    /// growing file) never changes the lines: framing a stream split at
    /// arbitrary boundaries, with any buffer size, gives the lines (and cut
    /// and consumed counts) of framing it whole, and so does the reader
    /// `scrubs redact` uses.
    #[test]
    fn framing_does_not_depend_on_chunk_boundaries(
        input in line_bytes(),
        max in 1usize..48,
        chunk in 1usize..32,
        cap in 1usize..32,
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = frame_in_pieces(&input, max, input.len().max(1), &[]);
        prop_assert_eq!(&frame_in_pieces(&input, max, chunk, &cuts), &whole);
        prop_assert_eq!(&frame_with_reader(&input, max, cap), &whole);

        // And the lines are the input's: every byte is consumed once, a
        // line keeps at most `max` bytes, and what it kept plus what it
        // dropped is all of it but its newline.
        let consumed: u64 = whole.iter().map(|l| l.2).sum();
        prop_assert_eq!(consumed, input.len() as u64);
        let newlines = input.iter().filter(|&&b| b == b'\n').count();
        prop_assert_eq!(whole.len(), newlines + usize::from(!input.ends_with(b"\n") && !input.is_empty()));
        for (i, (bytes, dropped, consumed)) in whole.iter().enumerate() {
            prop_assert!(bytes.len() <= max);
            let terminated = i < newlines;
            prop_assert_eq!(bytes.len() as u64 + dropped + u64::from(terminated), *consumed);
        }
        // Lines that fit are passed through as they are, `\r` included.
        let mut at = 0usize;
        for (bytes, dropped, consumed) in &whole {
            if *dropped == 0 {
                prop_assert_eq!(&bytes[..], &input[at..at + bytes.len()]);
            }
            at += *consumed as usize;
        }
    }
}
