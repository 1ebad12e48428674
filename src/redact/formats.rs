//! Healthcare interchange formats: HL7 v2 segments and X12 EDI.
//!
//! These formats carry no keys: what a value is follows from its segment and
//! its position (`PID|...` field 5 is the patient's name, `NM1*IL*1*` element
//! 3 the insured's surname). The scanners here translate positions into the
//! key a JSON or logfmt record would have used (`patient_name`,
//! `date_of_birth`, `member_id`) and report the value with that key, so the
//! rule set's key rules decide what to do with it, as they do for every
//! other structured value.
//!
//! Real messages do not always put fields where the standard says (a
//! generator that counts from zero, a vendor's Z-profile), so in the segments
//! that describe a person the HL7 scanner also reads a field's *shape*: a
//! `FAMILY^GIVEN` name, a `street^^city^ST^zip` address, a date just after a
//! name. Both scanners work on bytes, allocate nothing, and cost one
//! `memchr` on a line without their separators.

use memchr::{memchr, memchr_iter};

use super::class;
use super::names::Names;
use super::structure::Pair;
use super::validate::Validator;

/// Key names the scanners report values under. They are ordinary keys, and
/// the rule set's `keys` (after normalisation) say what each one is.
mod key {
    pub const NAME: &[u8] = b"patient_name";
    pub const DOB: &[u8] = b"date_of_birth";
    pub const DEATH: &[u8] = b"date_of_death";
    pub const ADMIT: &[u8] = b"admission_date";
    pub const DISCHARGE: &[u8] = b"discharge_date";
    pub const SERVICE: &[u8] = b"date_of_service";
    pub const STREET: &[u8] = b"street_address";
    pub const CITY: &[u8] = b"city";
    pub const ZIP: &[u8] = b"zip_code";
    pub const PHONE: &[u8] = b"phone_number";
    pub const EMAIL: &[u8] = b"email";
    pub const SSN: &[u8] = b"ssn";
    pub const MRN: &[u8] = b"mrn";
    pub const MEMBER: &[u8] = b"member_id";
    pub const ACCOUNT: &[u8] = b"account_number";
    pub const LICENSE: &[u8] = b"drivers_license";
    pub const NPI: &[u8] = b"npi";
    pub const DEVICE: &[u8] = b"serial_number";
    pub const DIAGNOSIS: &[u8] = b"diagnosis";
    pub const NOTE: &[u8] = b"clinical_note";
    pub const CLAIM: &[u8] = b"claim_number";
}

type Lookup<'a> = &'a dyn Fn(&[u8]) -> Option<u32>;

fn emit(lookup: Lookup<'_>, out: &mut dyn FnMut(Pair), key: &[u8], s: usize, e: usize) {
    if e <= s {
        return;
    }
    if let Some(rule) = lookup(key) {
        out(Pair {
            rule: Some(rule),
            start: s,
            end: e,
            quote: false,
            query: false,
            bare: false,
        });
    }
}

// ---- HL7 v2 -------------------------------------------------------------

/// How a field's components are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    /// XPN: family, given and middle names (components 1 to 3).
    Name,
    /// XCN: an id (an NPI when it has ten digits) then family, given,
    /// middle names.
    Clinician,
    /// XAD: street, other designation, city, state (kept), ZIP.
    Address,
    /// XTN: a number, or area code and local number, or an email.
    Phone,
    /// CX: an identifier in component 1; its type code (component 5) can
    /// make it an SSN, a licence or a plan id.
    Id(&'static [u8]),
    /// A date or date-time in component 1.
    Date(&'static [u8]),
    /// CWE: code and text (components 1, 2, 4, 5); coding-system names kept.
    Code(&'static [u8]),
    /// The whole field is free text.
    Text(&'static [u8]),
}

/// The standard's meaning of a field (HL7 v2.5.1, chapters 3, 6 and 7), for
/// the segments that carry a person's data.
fn hl7_field(seg: &[u8], i: usize) -> Option<Field> {
    use Field::*;
    Some(match (seg, i) {
        (b"PID", 2 | 3 | 4 | 21) => Id(key::MRN),
        (b"PID", 5 | 6 | 9) => Name,
        (b"PID", 7) => Date(key::DOB),
        (b"PID", 11) => Address,
        (b"PID", 13 | 14) => Phone,
        (b"PID", 18) => Id(key::ACCOUNT),
        (b"PID", 19) => Id(key::SSN),
        (b"PID", 20) => Id(key::LICENSE),
        (b"PID", 23) => Text(key::CITY),
        (b"PID", 29) => Date(key::DEATH),
        (b"PD1", 4) => Clinician,
        (b"NK1", 2 | 30) => Name,
        (b"NK1", 4 | 32) => Address,
        (b"NK1", 5 | 6 | 31) => Phone,
        (b"NK1", 16) => Date(key::DOB),
        (b"NK1", 33) => Id(key::MRN),
        (b"NK1", 37) => Id(key::SSN),
        (b"GT1", 2) => Id(key::ACCOUNT),
        (b"GT1", 3 | 4) => Name,
        (b"GT1", 5) => Address,
        (b"GT1", 6 | 7) => Phone,
        (b"GT1", 8) => Date(key::DOB),
        (b"GT1", 12) => Id(key::SSN),
        (b"IN1", 16) => Name,
        (b"IN1", 18) => Date(key::DOB),
        (b"IN1", 19) => Address,
        (b"IN1", 36 | 49) => Id(key::MEMBER),
        (b"IN2", 1 | 6 | 8) => Id(key::MEMBER),
        (b"IN2", 2) => Id(key::SSN),
        (b"PV1", 7 | 8 | 9 | 17 | 52) => Clinician,
        (b"PV1", 44) => Date(key::ADMIT),
        (b"PV1", 45) => Date(key::DISCHARGE),
        (b"DG1", 3) => Code(key::DIAGNOSIS),
        (b"DG1", 4) => Text(key::DIAGNOSIS),
        (b"DG1", 5) => Date(key::SERVICE),
        (b"DG1", 16) => Clinician,
        (b"OBX", 16) => Clinician,
        (b"OBX", 18) => Id(key::DEVICE),
        (b"NTE", 3) => Text(key::NOTE),
        (b"ORC", 10..=12) => Clinician,
        (b"OBR", 16 | 28 | 32..=34) => Clinician,
        (b"MRG", 1..=3) => Id(key::MRN),
        (b"MRG", 7) => Name,
        (b"EVN", 5) => Clinician,
        (b"AIP", 3) => Clinician,
        (b"FT1", 20 | 21) => Clinician,
        (b"RXA", 10) => Clinician,
        (b"RXE", 13) => Clinician,
        (b"PRD", 2) => Name,
        (b"PRD", 3) => Address,
        (b"PRD", 5) => Phone,
        _ => return None,
    })
}

/// Segments whose unmapped fields are read by shape: they describe a person.
fn person_segment(seg: &[u8]) -> bool {
    matches!(
        seg,
        b"PID" | b"NK1" | b"GT1" | b"IN1" | b"IN2" | b"MRG" | b"PD1" | b"PRD"
    )
}

/// Segment ids the scanner recognises. A three-character id followed by `|`
/// is common in other text (`CPU|`), so only these start a segment.
fn known_segment(seg: &[u8]) -> bool {
    matches!(
        seg,
        b"MSH"
            | b"EVN"
            | b"PID"
            | b"PD1"
            | b"NK1"
            | b"PV1"
            | b"PV2"
            | b"GT1"
            | b"IN1"
            | b"IN2"
            | b"IN3"
            | b"DG1"
            | b"PR1"
            | b"OBX"
            | b"OBR"
            | b"ORC"
            | b"NTE"
            | b"AL1"
            | b"MRG"
            | b"MSA"
            | b"ERR"
            | b"SCH"
            | b"AIP"
            | b"AIL"
            | b"AIS"
            | b"RXA"
            | b"RXE"
            | b"RXO"
            | b"FT1"
            | b"PRD"
            | b"ROL"
            | b"SPM"
            | b"TQ1"
    )
}

/// Whether a segment may start at `p` (just after a line start, a carriage
/// return or newline, their escaped forms, or white space after a prefix).
fn segment_boundary(hay: &[u8], p: usize) -> bool {
    if p == 0 {
        return true;
    }
    match hay[p - 1] {
        b'\r' | b'\n' | b' ' | b'\t' | b'"' | b'\'' | b'>' | b'[' => true,
        b'r' | b'n' => p >= 2 && hay[p - 2] == b'\\',
        _ => false,
    }
}

/// Finds HL7 v2 segments anywhere in the line and reports their values.
pub fn scan_hl7(hay: &[u8], lookup: Lookup<'_>, out: &mut dyn FnMut(Pair)) {
    if !class::has_byte(hay, b'|') {
        return;
    }
    let mut resume = 0;
    for bar in memchr_iter(b'|', hay) {
        if bar < 3 || bar < resume {
            continue;
        }
        let s = bar - 3;
        let seg = &hay[s..bar];
        if !known_segment(seg) || !segment_boundary(hay, s) {
            continue;
        }
        resume = segment(hay, s, lookup, out);
    }
}

/// The end of the segment starting at `s`: a carriage return, a newline,
/// their escaped forms, or the line's end.
fn segment_end(hay: &[u8], s: usize) -> usize {
    let mut p = s;
    while p < hay.len() {
        match hay[p] {
            b'\r' | b'\n' => return p,
            b'\\' if matches!(hay.get(p + 1), Some(b'r' | b'n')) => return p,
            b'"' => return p,
            _ => p += 1,
        }
    }
    p
}

/// Reads one segment; returns where it ends.
fn segment(hay: &[u8], s: usize, lookup: Lookup<'_>, out: &mut dyn FnMut(Pair)) -> usize {
    let end = segment_end(hay, s);
    let seg = &hay[s..s + 3];
    if seg == b"MSH" || seg == b"MSA" || seg == b"ERR" {
        return end;
    }
    // OBX-5 is free text only when OBX-2 says so.
    let mut obx_text = false;
    // The field index of the last field read as a name, for a date that
    // follows it (the person's birth date) when the field is off-standard.
    let mut last_name_field = 0;
    let mut i = 0;
    let mut fs = s + 4;
    while fs <= end {
        i += 1;
        let fe = memchr(b'|', &hay[fs..end]).map_or(end, |k| fs + k);
        let field = &hay[fs..fe];
        if seg == b"OBX" && i == 2 {
            obx_text = matches!(field, b"TX" | b"FT" | b"ST");
        }
        let kind = if seg == b"OBX" && i == 5 && obx_text {
            Some(Field::Text(key::NOTE))
        } else {
            // The standard's meaning, when the value has its shape; else,
            // in a person's segment, what the shape says.
            hl7_field(seg, i).filter(|&k| fits(k, field)).or_else(|| {
                if !person_segment(seg) || field.is_empty() {
                    None
                } else {
                    shape_of(seg, field, i, last_name_field)
                }
            })
        };
        if let Some(kind) = kind {
            if matches!(kind, Field::Name) {
                last_name_field = i;
            }
            read_field(hay, fs, fe, kind, lookup, out);
        }
        fs = fe + 1;
    }
    end
}

/// Whether a field's value has the shape its mapped kind expects. A field
/// that is not where the standard puts it (a name where a date should be)
/// is then read by its shape instead.
fn fits(kind: Field, field: &[u8]) -> bool {
    let c1 = field
        .split(|&b| b == b'^' || b == b'~')
        .next()
        .unwrap_or(b"");
    match kind {
        Field::Date(_) => {
            let digits = c1.iter().take_while(|b| b.is_ascii_digit()).count();
            (8..=14).contains(&digits) && plausible_date(c1)
        }
        Field::Name => is_name_part(c1) || (c1.is_empty() && field.len() > 1),
        Field::Address => field.contains(&b'^') || c1.first().is_some_and(u8::is_ascii_digit),
        Field::Phone | Field::Id(_) => field.iter().any(u8::is_ascii_digit),
        Field::Clinician | Field::Code(_) | Field::Text(_) => true,
    }
}

/// Reads a field in a person segment that the table does not map.
fn shape_of(seg: &[u8], field: &[u8], i: usize, last_name_field: usize) -> Option<Field> {
    let mut parts = field.split(|&b| b == b'^');
    let c1 = parts.next().unwrap_or(b"");
    let c2 = parts.next().unwrap_or(b"");
    let _other = parts.next();
    let c4 = parts.next().unwrap_or(b"");
    let c5 = parts.next().unwrap_or(b"");
    // street^other^city^ST^zip: a two-letter state and a ZIP.
    if c4.len() == 2
        && c4.iter().all(u8::is_ascii_uppercase)
        && (5..=10).contains(&c5.len())
        && c5.iter().all(|b| b.is_ascii_digit() || *b == b'-')
        && !c1.is_empty()
    {
        return Some(Field::Address);
    }
    // FAMILY^GIVEN: two words of letters. A code and its text (`FND^Friend`,
    // `SEL^Self`) is not a name.
    if is_name_part(c1) && is_name_part(c2) && (!is_code(c1) || all_caps(c2)) {
        return Some(Field::Name);
    }
    // An identifier: the segment's own kind of number (a plan's member id,
    // a patient's record number), unless it is a date.
    let id_like = c2.is_empty()
        && (6..=20).contains(&c1.len())
        && c1.iter().filter(|b| b.is_ascii_digit()).count() >= 5
        && c1.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && !(c1.len() == 8 && plausible_date(c1));
    if id_like && !(last_name_field > 0 && i <= last_name_field + 2) {
        let k = match seg {
            b"IN1" | b"IN2" => key::MEMBER,
            b"GT1" => key::ACCOUNT,
            _ => key::MRN,
        };
        return Some(Field::Id(k));
    }
    // A date a field or two after the name: the person's birth date.
    if c2.is_empty()
        && last_name_field > 0
        && i <= last_name_field + 2
        && matches!(c1.len(), 8 | 12 | 14)
        && c1.iter().all(u8::is_ascii_digit)
        && plausible_date(c1)
    {
        return Some(Field::Date(key::DOB));
    }
    None
}

fn is_name_part(c: &[u8]) -> bool {
    c.len() >= 2
        && c.iter().all(|&b| {
            b.is_ascii_alphabetic() || b >= 0x80 || matches!(b, b' ' | b'\'' | b'-' | b'.')
        })
        && c.iter().any(|&b| b.is_ascii_alphabetic() || b >= 0x80)
}

/// A table code: two or three capitals.
fn is_code(c: &[u8]) -> bool {
    (2..=3).contains(&c.len()) && c.iter().all(u8::is_ascii_uppercase)
}

fn all_caps(c: &[u8]) -> bool {
    !c.iter().any(u8::is_ascii_lowercase)
}

/// `YYYYMMDD...` with a year from 1800 to 2199, a month and a day.
fn plausible_date(d: &[u8]) -> bool {
    let n = |a: usize, b: usize| {
        d[a..b]
            .iter()
            .fold(0u32, |acc, &x| acc * 10 + u32::from(x - b'0'))
    };
    d.len() >= 8
        && (1800..2200).contains(&n(0, 4))
        && (1..=12).contains(&n(4, 6))
        && (1..=31).contains(&n(6, 8))
}

/// Reports the parts of field `[fs, fe)` that `kind` says are PHI, for each
/// repetition (`~`).
fn read_field(
    hay: &[u8],
    fs: usize,
    fe: usize,
    kind: Field,
    lookup: Lookup<'_>,
    out: &mut dyn FnMut(Pair),
) {
    if let Field::Text(k) = kind {
        emit(lookup, out, k, fs, fe);
        return;
    }
    let mut rs = fs;
    while rs <= fe {
        let re = memchr(b'~', &hay[rs..fe]).map_or(fe, |k| rs + k);
        let mut comps = [(0usize, 0usize); 7];
        let mut n = 0;
        let mut cs = rs;
        while cs <= re && n < comps.len() {
            let ce = memchr(b'^', &hay[cs..re]).map_or(re, |k| cs + k);
            comps[n] = (cs, ce);
            n += 1;
            cs = ce + 1;
        }
        let comps = &comps[..n];
        let c = |i: usize| comps.get(i).copied().unwrap_or((re, re));
        match kind {
            Field::Name => {
                for i in 0..3 {
                    let (s, e) = c(i);
                    emit(lookup, out, key::NAME, s, e);
                }
            }
            Field::Clinician => {
                let (s, e) = c(0);
                let id = &hay[s..e];
                if id.len() == 10 && id.iter().all(u8::is_ascii_digit) {
                    emit(lookup, out, key::NPI, s, e);
                }
                for i in 1..4 {
                    let (s, e) = c(i);
                    emit(lookup, out, key::NAME, s, e);
                }
            }
            Field::Address => {
                for (i, k) in [
                    (0, key::STREET),
                    (1, key::STREET),
                    (2, key::CITY),
                    (4, key::ZIP),
                ] {
                    let (s, e) = c(i);
                    emit(lookup, out, k, s, e);
                }
            }
            Field::Phone => {
                for (i, k) in [
                    (0, key::PHONE),
                    (3, key::EMAIL),
                    (5, key::PHONE),
                    (6, key::PHONE),
                ] {
                    let (s, e) = c(i);
                    emit(lookup, out, k, s, e);
                }
            }
            Field::Id(default) => {
                let (s, e) = c(0);
                let (ts, te) = c(4);
                let k = match &hay[ts..te] {
                    b"SS" | b"SSN" => key::SSN,
                    b"DL" => key::LICENSE,
                    b"MA" | b"MC" | b"MCD" | b"MCR" | b"MI" | b"SN" => key::MEMBER,
                    b"AN" | b"ANON" => key::ACCOUNT,
                    b"MR" | b"MRN" | b"PI" | b"PT" => key::MRN,
                    b"NPI" => key::NPI,
                    _ => default,
                };
                emit(lookup, out, k, s, e);
            }
            Field::Date(k) => {
                let (s, e) = c(0);
                emit(lookup, out, k, s, e);
            }
            Field::Code(k) => {
                for i in [0, 1, 3, 4] {
                    let (s, e) = c(i);
                    emit(lookup, out, k, s, e);
                }
            }
            Field::Text(_) => unreachable!("handled above"),
        }
        rs = re + 1;
    }
}

// ---- delimited records --------------------------------------------------

/// What a field of a delimited record holds, judged by its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    Name,
    Phone,
    Ssn,
    Email,
    Date,
    Zip,
    Id,
    Code,
    Skip,
}

/// The most fields a record is read with.
const MAX_CELLS: usize = 48;

/// Finds records without keys, a person's data by position: a whole line of
/// comma-separated values (a headerless CSV export) or a parenthesised tuple
/// of four or more values (`Failing row contains (...)`, a bound-parameter
/// tuple). Each field is judged by its shape (a phone number, an SSN, a date,
/// a ZIP, words of letters); the record counts as a person's only when it
/// holds a name with dictionary evidence and a phone, SSN, email or old
/// date, and then its fields are reported under the keys their shapes name.
pub fn scan_records(hay: &[u8], names: &Names, lookup: Lookup<'_>, out: &mut dyn FnMut(Pair)) {
    // A whole-line record: five or more commas, not JSON.
    let first = hay
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(hay.len());
    if first < hay.len()
        && !matches!(hay[first], b'{' | b'[')
        && class::has_byte(hay, b',')
        && memchr_iter(b',', hay).nth(4).is_some()
        && memchr(b'=', hay).is_none()
    {
        record(hay, first, hay.len(), names, lookup, out);
    }
    // Tuples: `(a, b, c, d)`.
    if !class::has_byte(hay, b'(') {
        return;
    }
    let mut from = 0;
    while let Some(i) = memchr(b'(', &hay[from..]) {
        let open = from + i;
        from = open + 1;
        let Some(close) = tuple_close(hay, open + 1) else {
            break;
        };
        if memchr_iter(b',', &hay[open + 1..close]).nth(2).is_some() {
            record(hay, open + 1, close, names, lookup, out);
            from = close + 1;
        }
    }
}

/// The `)` closing the tuple whose content starts at `p`, outside quotes;
/// `None` if another `(` or the line's end comes first.
fn tuple_close(hay: &[u8], mut p: usize) -> Option<usize> {
    let mut depth = 0;
    while p < hay.len() {
        match hay[p] {
            b'\'' | b'"' => {
                let q = hay[p];
                p += 1;
                while p < hay.len() && hay[p] != q {
                    p += 1;
                }
            }
            b'(' => depth += 1,
            b')' if depth == 0 => return Some(p),
            b')' => depth -= 1,
            _ => {}
        }
        p += 1;
    }
    None
}

fn record(
    hay: &[u8],
    s: usize,
    e: usize,
    names: &Names,
    lookup: Lookup<'_>,
    out: &mut dyn FnMut(Pair),
) {
    let mut cells = [(0usize, 0usize, Cell::Skip); MAX_CELLS];
    let mut n = 0;
    let mut p = s;
    let mut depth = 0usize;
    let mut fs = s;
    while p <= e {
        let b = if p < e { hay[p] } else { b',' };
        match b {
            b'\'' | b'"' if p == fs || hay[fs..p].iter().all(|&c| c == b' ') => {
                // A quoted field runs to its closing quote.
                let q = b;
                p += 1;
                while p < e && hay[p] != q {
                    p += 1;
                }
            }
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                if n == MAX_CELLS {
                    return;
                }
                let (cs, ce) = trim_cell(hay, fs, p.min(e));
                // A field longer than a value is prose, not a record.
                if ce - cs > 64 {
                    return;
                }
                cells[n] = (cs, ce, cell(&hay[cs..ce], names));
                n += 1;
                fs = p + 1;
            }
            _ => {}
        }
        p += 1;
    }
    let cells = &cells[..n];
    if n < 4 {
        return;
    }
    let name = cells
        .iter()
        .any(|&(cs, ce, c)| c == Cell::Name && names.has_name_evidence(&hay[cs..ce]));
    let strong = cells.iter().any(|&(cs, ce, c)| {
        matches!(c, Cell::Phone | Cell::Ssn | Cell::Email)
            || (c == Cell::Date && Validator::PastDate.check(&hay[cs..ce]))
    });
    if !(name && strong) {
        return;
    }
    for &(cs, ce, c) in cells {
        let k = match c {
            Cell::Name => key::NAME,
            Cell::Phone => key::PHONE,
            Cell::Ssn => key::SSN,
            Cell::Email => key::EMAIL,
            Cell::Date => key::DOB,
            Cell::Zip => key::ZIP,
            Cell::Id => key::MRN,
            Cell::Code => key::DIAGNOSIS,
            Cell::Skip => continue,
        };
        emit(lookup, out, k, cs, ce);
    }
}

/// A field without surrounding spaces and quotes.
fn trim_cell(hay: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && hay[s] == b' ' {
        s += 1;
    }
    while e > s && hay[e - 1] == b' ' {
        e -= 1;
    }
    if e - s >= 2 && matches!(hay[s], b'\'' | b'"') && hay[e - 1] == hay[s] {
        s += 1;
        e -= 1;
    }
    (s, e)
}

fn cell(v: &[u8], names: &Names) -> Cell {
    if v.is_empty() || v.eq_ignore_ascii_case(b"null") || v == b"None" {
        return Cell::Skip;
    }
    let digits = v.iter().filter(|b| b.is_ascii_digit()).count();
    let letters = v
        .iter()
        .filter(|b| b.is_ascii_alphabetic() || **b >= 0x80)
        .count();
    if memchr(b'@', v).is_some() && memchr(b'.', v).is_some() && !v.contains(&b' ') {
        return Cell::Email;
    }
    if letters == 0 {
        let punct_ok = v
            .iter()
            .all(|b| b.is_ascii_digit() || b" ()-.+/".contains(b));
        if !punct_ok {
            return Cell::Skip;
        }
        if matches!(v.len(), 9 | 11)
            && (Validator::Ssn.check(v))
            && (digits == 9)
            && !v.contains(&b'/')
            && !v.contains(&b'.')
        {
            return Cell::Ssn;
        }
        if v.contains(&b'/')
            || (v.len() == 10 && v.iter().filter(|b| **b == b'-').count() == 2 && v[4] == b'-')
            || (v.iter().filter(|b| **b == b'.').count() == 2 && digits >= 6)
        {
            return if Validator::Date.check(v) {
                Cell::Date
            } else {
                Cell::Skip
            };
        }
        if (digits == 10 || (digits == 11 && v.iter().find(|b| b.is_ascii_digit()) == Some(&b'1')))
            && Validator::Nanp.check(v)
        {
            return Cell::Phone;
        }
        if (v.len() == 5 && digits == 5) || (v.len() == 10 && digits == 9 && v[5] == b'-') {
            return Cell::Zip;
        }
        // A long number that is none of those: a member or record number
        // (`457642072-01`).
        if digits >= 8 && v.iter().all(|b| b.is_ascii_digit() || *b == b'-') {
            return Cell::Id;
        }
        return Cell::Skip;
    }
    if v.starts_with(b"datetime.date(") {
        return Cell::Date;
    }
    // An opaque id (`vis_8f3a`) is not derived from the person.
    if let Some(u) = memchr(b'_', v) {
        if (2..=6).contains(&u) && v[..u].iter().all(u8::is_ascii_lowercase) {
            return Cell::Skip;
        }
    }
    if digits > 0 {
        // ICD-10: a letter, two digits, optionally a dot and more.
        let icd = v.len() >= 3
            && v[0].is_ascii_uppercase()
            && v[1].is_ascii_digit()
            && v[2].is_ascii_alphanumeric()
            && v.len() <= 8
            && v[3..]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'.');
        if icd && v.len() <= 7 {
            return Cell::Code;
        }
        let id = (6..=20).contains(&v.len())
            && digits >= 4
            && v.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-');
        return if id { Cell::Id } else { Cell::Skip };
    }
    if letters >= 2 && names.looks_like_name(v) {
        return Cell::Name;
    }
    Cell::Skip
}

// ---- X12 ----------------------------------------------------------------

/// Finds X12 segments (`NM1*IL*1*DOE*JANE****MI*W123~`) and reports their
/// values. Elements are separated by `*` and segments end with `~`, as in
/// nearly every interchange; an `ISA` header's own separators are used when
/// the line has one.
pub fn scan_x12(hay: &[u8], lookup: Lookup<'_>, out: &mut dyn FnMut(Pair)) {
    if !class::has_byte(hay, b'~') {
        return;
    }
    let (el, comp) = match memchr::memmem::find(hay, b"ISA") {
        Some(i) if hay.len() > i + 3 && !hay[i + 3].is_ascii_alphanumeric() => {
            // ISA16, the component separator, is the byte before the first
            // segment terminator after the 16th element.
            let el = hay[i + 3];
            let comp = memchr_iter(el, &hay[i..])
                .nth(15)
                .and_then(|k| hay.get(i + k + 1).copied())
                .unwrap_or(b':');
            (el, comp)
        }
        _ => (b'*', b':'),
    };
    // A segment starts at the line's start, after `~`, or after white space.
    let mut s = 0;
    // The entity of the last NM1: names and ids of a person follow it.
    let mut person = false;
    while s < hay.len() {
        while s < hay.len() && matches!(hay[s], b' ' | b'\t' | b'\r' | b'\n') {
            s += 1;
        }
        let e = memchr(b'~', &hay[s..]).map_or(hay.len(), |k| s + k);
        x12_segment(hay, s, e, el, comp, &mut person, lookup, out);
        s = e + 1;
    }
}

#[allow(clippy::too_many_arguments)]
fn x12_segment(
    hay: &[u8],
    s: usize,
    e: usize,
    el: u8,
    comp: u8,
    person: &mut bool,
    lookup: Lookup<'_>,
    out: &mut dyn FnMut(Pair),
) {
    // The segment id: the last two or three capitals or digits before the
    // first separator (a log prefix may come before the first segment).
    let Some(sep) = memchr(el, &hay[s..e]).map(|k| s + k) else {
        return;
    };
    let mut id_start = sep;
    while id_start > s && hay[id_start - 1].is_ascii_alphanumeric() && sep - id_start < 3 {
        id_start -= 1;
    }
    let id = &hay[id_start..sep];
    let mut els = [(0usize, 0usize); 12];
    let mut n = 0;
    let mut p = sep + 1;
    while p <= e && n < els.len() {
        let q = memchr(el, &hay[p..e]).map_or(e, |k| p + k);
        els[n] = (p, q);
        n += 1;
        p = q + 1;
    }
    let els = &els[..n];
    let at = |i: usize| els.get(i - 1).copied().unwrap_or((e, e));
    let val = |i: usize| {
        let (a, b) = at(i);
        &hay[a..b]
    };
    let mut put = |k: &[u8], i: usize| {
        let (a, b) = at(i);
        emit(lookup, out, k, a, b);
    };
    match id {
        b"NM1" | b"NM" => {
            // NM102 1 is a person, 2 an organisation (payer, clinic).
            *person = val(2) == b"1";
            if *person {
                put(key::NAME, 3);
                put(key::NAME, 4);
                put(key::NAME, 5);
            }
            let k = match val(8) {
                b"MI" | b"II" | b"N" | b"HN" | b"ZZ" if *person => Some(key::MEMBER),
                b"XX" => Some(key::NPI),
                b"34" | b"SY" => Some(key::SSN),
                b"MR" => Some(key::MRN),
                _ => None,
            };
            if let Some(k) = k {
                put(k, 9);
            }
        }
        b"N3" if *person => {
            put(key::STREET, 1);
            put(key::STREET, 2);
        }
        b"N4" if *person => {
            put(key::CITY, 1);
            put(key::ZIP, 3);
        }
        b"DMG" => put(key::DOB, 2),
        b"DTP" => {
            let k = match val(1) {
                b"435" => key::ADMIT,
                b"096" => key::DISCHARGE,
                _ => key::SERVICE,
            };
            put(k, 3);
        }
        b"REF" => {
            let k = match val(1) {
                b"SY" => Some(key::SSN),
                b"0F" | b"1W" | b"23" | b"IG" | b"3H" | b"HJ" | b"N6" | b"Q4" => Some(key::MEMBER),
                b"EJ" => Some(key::ACCOUNT),
                b"EA" => Some(key::MRN),
                b"0B" | b"1G" => Some(key::LICENSE),
                b"D9" | b"G1" | b"9F" | b"F8" => Some(key::CLAIM),
                _ => None,
            };
            if let Some(k) = k {
                put(k, 2);
            }
        }
        b"CLM" => put(key::ACCOUNT, 1),
        b"PAT" => put(key::DOB, 6),
        b"HI" => {
            // Each element is `qualifier:code`; diagnosis qualifiers only.
            for i in 1..=els.len() {
                let (a, b) = at(i);
                let Some(c) = memchr(comp, &hay[a..b]).map(|k| a + k) else {
                    continue;
                };
                if matches!(
                    &hay[a..c],
                    b"ABK"
                        | b"ABF"
                        | b"ABJ"
                        | b"ABN"
                        | b"APR"
                        | b"BK"
                        | b"BF"
                        | b"BJ"
                        | b"BN"
                        | b"PR"
                        | b"DR"
                ) {
                    let ce = memchr(comp, &hay[c + 1..b]).map_or(b, |k| c + 1 + k);
                    emit(lookup, out, key::DIAGNOSIS, c + 1, ce);
                }
            }
        }
        b"PER" => {
            put(key::NAME, 2);
            for q in [3, 5, 7] {
                let k = match val(q) {
                    b"TE" | b"CP" | b"HP" | b"WP" | b"FX" | b"BN" => Some(key::PHONE),
                    b"EM" => Some(key::EMAIL),
                    _ => None,
                };
                if let Some(k) = k {
                    put(k, q + 1);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a scanner with every reported key accepted, and returns
    /// (key, value) for each report.
    fn run(scan: fn(&[u8], Lookup<'_>, &mut dyn FnMut(Pair)), line: &str) -> Vec<(String, String)> {
        let keys = std::cell::RefCell::new(Vec::<Vec<u8>>::new());
        let lookup = |k: &[u8]| {
            let mut ks = keys.borrow_mut();
            ks.push(k.to_vec());
            Some(ks.len() as u32 - 1)
        };
        let mut got = Vec::new();
        scan(line.as_bytes(), &lookup, &mut |p: Pair| {
            let k = keys.borrow()[p.rule.unwrap() as usize].clone();
            got.push((
                String::from_utf8(k).unwrap(),
                line[p.start..p.end].to_string(),
            ));
        });
        got
    }

    fn has(got: &[(String, String)], k: &str, v: &str) -> bool {
        got.iter().any(|(gk, gv)| gk == k && gv == v)
    }

    #[test]
    fn pid_fields_by_position() {
        let line = "PID|1||MRN58806021^^^CAREBRIDGE^MR~875-23-5515^^^SSA^SS||ONTIVEROS GARRIDO^RAQUEL||19860324|F|||5322 HOLMES RUE^^NORTH LISAMOUTH^FL^36175^USA^H||(912) 234-7306^PRN^PH|||S|||093131087";
        let got = run(scan_hl7, line);
        for (k, v) in [
            ("mrn", "MRN58806021"),
            ("ssn", "875-23-5515"),
            ("patient_name", "ONTIVEROS GARRIDO"),
            ("patient_name", "RAQUEL"),
            ("date_of_birth", "19860324"),
            ("street_address", "5322 HOLMES RUE"),
            ("city", "NORTH LISAMOUTH"),
            ("zip_code", "36175"),
            ("phone_number", "(912) 234-7306"),
            ("ssn", "093131087"),
        ] {
            assert!(has(&got, k, v), "{k}={v} not in {got:?}");
        }
        // Type codes, the assigning authority, the state and sex stay.
        for v in ["CAREBRIDGE", "MR", "SS", "FL", "USA", "F", "PRN"] {
            assert!(!got.iter().any(|(_, gv)| gv == v), "{v} reported: {got:?}");
        }
    }

    #[test]
    fn off_standard_in1_read_by_shape() {
        // Insured's name, birth date and address two fields later than the
        // standard puts them.
        let line = "IN1|1|MCD|MEDICAL|CALIFORNIA MEDI-CAL|PO BOX 3297^^NORTH SAMANTHA^NC^36205||||GRP444134||||20240101|||||MCCOY^BRADLEY|01|19521120|20322 DEBORAH COURTS^^NEW LISA^NV^53361";
        let got = run(scan_hl7, line);
        assert!(has(&got, "patient_name", "MCCOY"), "{got:?}");
        assert!(has(&got, "patient_name", "BRADLEY"), "{got:?}");
        assert!(has(&got, "date_of_birth", "19521120"), "{got:?}");
        assert!(
            has(&got, "street_address", "20322 DEBORAH COURTS"),
            "{got:?}"
        );
        assert!(has(&got, "zip_code", "53361"), "{got:?}");
        // The plan's effective date is not the person's.
        assert!(!got.iter().any(|(_, v)| v == "20240101"), "{got:?}");
    }

    #[test]
    fn codes_and_clinicians() {
        let got = run(
            scan_hl7,
            "DG1|2|I10|F42.2^MIXED OBSESSIONAL THOUGHTS AND ACTS^I10|||A",
        );
        assert!(has(&got, "diagnosis", "F42.2"), "{got:?}");
        assert!(
            has(&got, "diagnosis", "MIXED OBSESSIONAL THOUGHTS AND ACTS"),
            "{got:?}"
        );
        assert!(!got.iter().any(|(_, v)| v == "I10"), "{got:?}");
        let got = run(scan_hl7, "PV1|1|O|TELE^^^CAREBRIDGE||||2400198570^HILLIARD^GRAEME^^^DR|||MED||||||||TELE|V68285763");
        assert!(
            has(&got, "npi", "2400198570") && has(&got, "patient_name", "GRAEME"),
            "{got:?}"
        );
        // A relationship code and its text is not a name.
        let got = run(
            scan_hl7,
            "NK1|1|GLASS^JAY|FND^Friend|3228 DAVIS COMMON^^HAYSMOUTH^NY^83771|(404)867-4000",
        );
        assert!(has(&got, "patient_name", "GLASS"), "{got:?}");
        assert!(
            !got.iter().any(|(_, v)| v == "FND" || v == "Friend"),
            "{got:?}"
        );
    }

    #[test]
    fn segments_only_at_boundaries() {
        assert!(run(scan_hl7, "CPU|PID|x").is_empty());
        assert!(run(scan_hl7, "status OK|ONE|TWO").is_empty());
        let got = run(scan_hl7, r"msg=MSH|^~\&|A|B\rPID|1||123^^^X^MR||DOE^JANE");
        assert!(has(&got, "patient_name", "DOE"), "{got:?}");
    }

    #[test]
    fn x12_person_segments() {
        let line = "ISA*00*          *00*          *ZZ*AVAILITY      *ZZ*CAREBRIDGE     *240902*0354*^*00501*729589161*0*P*:~NM1*IL*1*HARDIN*CHARLES****MI*W787475322~N3*32429 LISA CIRCLES~N4*EAST PATRICK*KY*57542~DMG*D8*20171103*M~EB*I**30*MC~";
        let got = run(scan_x12, line);
        for (k, v) in [
            ("patient_name", "HARDIN"),
            ("patient_name", "CHARLES"),
            ("member_id", "W787475322"),
            ("street_address", "32429 LISA CIRCLES"),
            ("city", "EAST PATRICK"),
            ("zip_code", "57542"),
            ("date_of_birth", "20171103"),
        ] {
            assert!(has(&got, k, v), "{k}={v} not in {got:?}");
        }
        assert!(
            !got.iter().any(|(_, v)| v == "729589161" || v == "KY"),
            "{got:?}"
        );
        let got = run(scan_x12, "CLM*A381704885*237.00***02:B:1*Y~HI*ABK:C50911*ABF:F4310~NM1*82*1*RADHA*WATIKA****XX*1450119841~NM1*PR*2*AETNA*****PI*60054~");
        assert!(has(&got, "account_number", "A381704885"), "{got:?}");
        assert!(
            has(&got, "diagnosis", "C50911") && has(&got, "diagnosis", "F4310"),
            "{got:?}"
        );
        assert!(
            has(&got, "npi", "1450119841") && has(&got, "patient_name", "RADHA"),
            "{got:?}"
        );
        // An organisation's name and payer id stay.
        assert!(
            !got.iter().any(|(_, v)| v == "AETNA" || v == "60054"),
            "{got:?}"
        );
    }

    #[test]
    fn no_panic_on_fragments() {
        for s in [
            "PID|",
            "|",
            "~",
            "NM1*",
            "ISA*",
            "PID|1|^^^^|~~|",
            "NM1~*~",
            "x~ISA",
        ] {
            run(scan_hl7, s);
            run(scan_x12, s);
        }
    }
}
