//! Validators: checksums and range rules that turn a candidate into a finding.
//!
//! Validators cut false positives far more cheaply than context: a random
//! 16-digit number passes Luhn one time in ten, and with an issuer prefix check
//! far less often. Every validator is a plain function of the matched bytes and
//! allocates nothing.

/// A named check on a candidate's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validator {
    /// Luhn mod-10 checksum over the digits.
    Luhn,
    /// A payment card: issuer prefix, length for that issuer, and Luhn.
    PaymentCard,
    /// SSA rules: area not 000, 666 or 900-999; group not 00; serial not 0000.
    Ssn,
    /// NPI: 10 digits, Luhn over `80840` followed by the number.
    Npi,
    /// DEA registration: two letters, seven digits, check digit.
    Dea,
    /// Medicare Beneficiary Identifier: the CMS 11-character format.
    Mbi,
    /// ABA routing number: 9 digits, 3-7-1 weighted checksum.
    AbaRouting,
    /// Vehicle identification number: 17 characters, check digit at 9.
    Vin,
    /// North American phone number: area and exchange start with 2-9.
    Nanp,
    /// A calendar date with a valid month and day, in any common order.
    Date,
    /// A date at least four years before the current year (and not before
    /// 1900): numeric as for `date`, or any text whose last four-digit run
    /// is the year (`December 23rd 2016`). A log record's own time is
    /// recent; an old full date in a log line is a person's.
    PastDate,
    /// An IPv4 address with every octet at most 255.
    Ipv4,
    /// An IPv4 address outside private, loopback, link-local and documentation
    /// ranges, which identify infrastructure rather than a person.
    PublicIpv4,
    /// IMEI: 15 digits with a Luhn check.
    Imei,
    /// A public IP address, v4 or v6, with or without a port (`1.2.3.4:443`,
    /// `[2001:db8::1]:443`): the address of a person's device, where a
    /// private, loopback or link-local one is infrastructure.
    PublicIp,
    /// An email address whose local part is not a machine id (a UUID or a
    /// long hex string, as in a `Message-ID`).
    Email,
    /// An IBAN: country code, check digits and account, ISO 13616 mod 97.
    Iban,
}

impl Validator {
    /// Every validator name accepted in rule files.
    pub const NAMES: &'static [&'static str] = &[
        "luhn",
        "payment_card",
        "ssn",
        "npi",
        "dea",
        "mbi",
        "aba_routing",
        "vin",
        "nanp",
        "date",
        "past_date",
        "ipv4",
        "public_ipv4",
        "imei",
        "public_ip",
        "email",
        "iban",
    ];

    /// Parses a rule-file validator name.
    pub fn parse(name: &str) -> Option<Validator> {
        Some(match name {
            "luhn" => Validator::Luhn,
            "payment_card" => Validator::PaymentCard,
            "ssn" => Validator::Ssn,
            "npi" => Validator::Npi,
            "dea" => Validator::Dea,
            "mbi" => Validator::Mbi,
            "aba_routing" => Validator::AbaRouting,
            "vin" => Validator::Vin,
            "nanp" => Validator::Nanp,
            "date" => Validator::Date,
            "past_date" => Validator::PastDate,
            "ipv4" => Validator::Ipv4,
            "public_ipv4" => Validator::PublicIpv4,
            "imei" => Validator::Imei,
            "public_ip" => Validator::PublicIp,
            "email" => Validator::Email,
            "iban" => Validator::Iban,
            _ => return None,
        })
    }

    /// Checks a candidate. `raw` is the matched text.
    pub fn check(self, raw: &[u8]) -> bool {
        let mut buf = [0u8; 40];
        let digits = collect_digits(raw, &mut buf);
        match self {
            Validator::Luhn => digits.len() >= 2 && luhn(digits),
            Validator::PaymentCard => payment_card(digits),
            Validator::Ssn => ssn(digits),
            Validator::Npi => npi(digits),
            Validator::Dea => dea(raw),
            Validator::Mbi => mbi(raw),
            Validator::AbaRouting => aba(digits),
            Validator::Vin => vin(raw),
            Validator::Nanp => nanp(digits),
            Validator::Date => date(raw),
            Validator::PastDate => past_date(raw),
            Validator::Ipv4 => ipv4(raw).is_some(),
            Validator::PublicIpv4 => ipv4(raw).is_some_and(is_public_v4),
            Validator::Imei => digits.len() == 15 && luhn(digits),
            Validator::PublicIp => public_ip(raw),
            Validator::Email => email(raw),
            Validator::Iban => iban(raw),
        }
    }
}

/// Copies the ASCII digits of `raw` into `buf`; more than `buf` holds fails
/// every validator because the slice is then truncated to empty.
fn collect_digits<'b>(raw: &[u8], buf: &'b mut [u8; 40]) -> &'b [u8] {
    let mut n = 0;
    for &b in raw {
        if b.is_ascii_digit() {
            if n == buf.len() {
                return &buf[..0];
            }
            buf[n] = b - b'0';
            n += 1;
        }
    }
    &buf[..n]
}

/// Luhn over digit values (0-9), rightmost digit is the check digit.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn prefix_num(digits: &[u8], n: usize) -> u32 {
    digits
        .iter()
        .take(n)
        .fold(0u32, |acc, &d| acc * 10 + u32::from(d))
}

fn payment_card(d: &[u8]) -> bool {
    let len = d.len();
    if !(13..=19).contains(&len) || !luhn(d) {
        return false;
    }
    let p1 = prefix_num(d, 1);
    let p2 = prefix_num(d, 2);
    let p3 = prefix_num(d, 3);
    let p4 = prefix_num(d, 4);
    let p6 = prefix_num(d, 6);
    match p1 {
        // Visa.
        4 => matches!(len, 13 | 16 | 19),
        // Mastercard 51-55 and 2221-2720.
        5 => (51..=55).contains(&p2) && len == 16,
        2 => (2221..=2720).contains(&p4) && len == 16,
        // Amex 34/37 (15), Diners 300-305/36/38 (14), JCB 3528-3589 (16-19).
        3 => {
            ((p2 == 34 || p2 == 37) && len == 15)
                || (((300..=305).contains(&p3) || p2 == 36 || p2 == 38) && len == 14)
                || ((3528..=3589).contains(&p4) && (16..=19).contains(&len))
        }
        // Discover 6011, 644-649, 65, 622126-622925; UnionPay 62.
        6 => {
            (p4 == 6011
                || (644..=649).contains(&p3)
                || p2 == 65
                || (622126..=622925).contains(&p6)
                || p2 == 62)
                && (16..=19).contains(&len)
        }
        _ => false,
    }
}

fn ssn(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let area = prefix_num(d, 3);
    let group = prefix_num(&d[3..], 2);
    let serial = prefix_num(&d[5..], 4);
    // Well-known advertising and placeholder numbers are not a person's.
    let all_same = d.iter().all(|&x| x == d[0]);
    let ascending = d == [1, 2, 3, 4, 5, 6, 7, 8, 9];
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 && !all_same && !ascending
}

fn npi(d: &[u8]) -> bool {
    if d.len() != 10 || !(d[0] == 1 || d[0] == 2) {
        return false;
    }
    let mut full = [0u8; 15];
    full[..5].copy_from_slice(&[8, 0, 8, 4, 0]);
    full[5..].copy_from_slice(d);
    luhn(&full)
}

fn dea(raw: &[u8]) -> bool {
    if raw.len() != 9 {
        return false;
    }
    let (letters, digits) = raw.split_at(2);
    if !letters.iter().all(u8::is_ascii_alphabetic) || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if !b"ABCDEFGHJKLMPRSTUX".contains(&letters[0].to_ascii_uppercase()) {
        return false;
    }
    let v = |i: usize| u32::from(digits[i] - b'0');
    let sum = v(0) + v(2) + v(4) + 2 * (v(1) + v(3) + v(5));
    sum % 10 == v(6)
}

fn mbi(raw: &[u8]) -> bool {
    // Dashes may separate positions 4|5 and 7|8.
    let mut buf = [0u8; 11];
    let mut n = 0;
    for &b in raw {
        if b == b'-' {
            continue;
        }
        if n == 11 {
            return false;
        }
        buf[n] = b.to_ascii_uppercase();
        n += 1;
    }
    if n != 11 {
        return false;
    }
    // Letters exclude S, L, O, I, B and Z.
    let alpha = |c: u8| c.is_ascii_uppercase() && !b"SLOIBZ".contains(&c);
    let num = |c: u8| c.is_ascii_digit();
    let an = |c: u8| alpha(c) || num(c);
    (b'1'..=b'9').contains(&buf[0])
        && alpha(buf[1])
        && an(buf[2])
        && num(buf[3])
        && alpha(buf[4])
        && an(buf[5])
        && num(buf[6])
        && alpha(buf[7])
        && alpha(buf[8])
        && num(buf[9])
        && num(buf[10])
}

fn aba(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let w = [3u32, 7, 1];
    let sum: u32 = d
        .iter()
        .enumerate()
        .map(|(i, &x)| u32::from(x) * w[i % 3])
        .sum();
    let first2 = prefix_num(d, 2);
    sum.is_multiple_of(10)
        && sum > 0
        && ((0..=12).contains(&first2)
            || (21..=32).contains(&first2)
            || (61..=72).contains(&first2)
            || first2 == 80)
}

fn vin(raw: &[u8]) -> bool {
    if raw.len() != 17 {
        return false;
    }
    let value = |c: u8| -> Option<u32> {
        let c = c.to_ascii_uppercase();
        Some(match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A' | b'J' => 1,
            b'B' | b'K' | b'S' => 2,
            b'C' | b'L' | b'T' => 3,
            b'D' | b'M' | b'U' => 4,
            b'E' | b'N' | b'V' => 5,
            b'F' | b'W' => 6,
            b'G' | b'P' | b'X' => 7,
            b'H' | b'Y' => 8,
            b'R' | b'Z' => 9,
            _ => return None,
        })
    };
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let mut sum = 0;
    let mut letters = 0;
    let mut digits = 0;
    for (i, &c) in raw.iter().enumerate() {
        let Some(v) = value(c) else { return false };
        if c.is_ascii_digit() {
            digits += 1;
        } else {
            letters += 1;
        }
        sum += v * WEIGHTS[i];
    }
    let check = match sum % 11 {
        10 => b'X',
        r => b'0' + r as u8,
    };
    letters >= 2 && digits >= 4 && raw[8].to_ascii_uppercase() == check
}

fn nanp(d: &[u8]) -> bool {
    let d = match d.len() {
        10 => d,
        11 if d[0] == 1 => &d[1..],
        _ => return false,
    };
    // Area and exchange codes start with 2-9; N11 area codes are service codes.
    d[0] >= 2 && d[3] >= 2 && !(d[1] == 1 && d[2] == 1)
}

/// The latest year [`Validator::PastDate`] accepts: four years before the
/// current one, read from the clock once.
fn past_year_limit() -> u32 {
    static LIMIT: std::sync::LazyLock<u32> = std::sync::LazyLock::new(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Days to a civil year (Howard Hinnant's algorithm, years only).
        let days = (secs / 86_400) as i64 + 719_468;
        let era = days.div_euclid(146_097);
        let doe = days - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let year = yoe + era * 400 + i64::from(mp >= 10);
        (year.clamp(1970, 9999) as u32).saturating_sub(4)
    });
    *LIMIT
}

/// A date whose year is from 1900 to [`past_year_limit`]. Numeric dates must
/// also be valid dates; in text the last run of four digits is the year.
fn past_date(raw: &[u8]) -> bool {
    let textual = raw.iter().any(u8::is_ascii_alphabetic);
    if !textual && !date(raw) {
        return false;
    }
    // The last run of exactly four digits.
    let mut year = None;
    let mut i = 0;
    while i < raw.len() {
        if raw[i].is_ascii_digit() {
            let s = i;
            while i < raw.len() && raw[i].is_ascii_digit() {
                i += 1;
            }
            if i - s == 4 {
                year = Some(
                    raw[s..i]
                        .iter()
                        .fold(0u32, |a, &b| a * 10 + u32::from(b - b'0')),
                );
            } else if i - s == 8 && !textual && s == 0 && i == raw.len() {
                // YYYYMMDD.
                year = Some(
                    raw[..4]
                        .iter()
                        .fold(0u32, |a, &b| a * 10 + u32::from(b - b'0')),
                );
            }
        } else {
            i += 1;
        }
    }
    year.is_some_and(|y| (1900..=past_year_limit()).contains(&y))
}

/// Accepts `Y-M-D`, `M/D/Y`, `D.M.Y`, `YYYYMMDD` and two-digit years; any
/// separator.
fn date(raw: &[u8]) -> bool {
    if raw.len() == 8 && raw.iter().all(u8::is_ascii_digit) {
        let n = |a: usize, b: usize| {
            raw[a..b]
                .iter()
                .fold(0u32, |x, &d| x * 10 + u32::from(d - b'0'))
        };
        return (1870..=2100).contains(&n(0, 4))
            && (1..=12).contains(&n(4, 6))
            && (1..=31).contains(&n(6, 8));
    }
    let mut parts = [0u32; 3];
    let mut lens = [0usize; 3];
    let mut i = 0;
    for &b in raw {
        if b.is_ascii_digit() {
            if lens[i] == 4 {
                return false;
            }
            parts[i] = parts[i] * 10 + u32::from(b - b'0');
            lens[i] += 1;
        } else {
            i += 1;
            if i == 3 {
                return false;
            }
        }
    }
    if i != 2 {
        return false;
    }
    let valid_md = |m: u32, d: u32| (1..=12).contains(&m) && (1..=31).contains(&d);
    let year_ok = |y: u32, len: usize| len == 2 || (1870..=2100).contains(&y);
    if lens[0] == 4 {
        year_ok(parts[0], 4) && valid_md(parts[1], parts[2])
    } else if lens[2] == 4 || lens[2] == 2 {
        year_ok(parts[2], lens[2]) && (valid_md(parts[0], parts[1]) || valid_md(parts[1], parts[0]))
    } else {
        false
    }
}

/// See [`Validator::PublicIp`].
fn public_ip(raw: &[u8]) -> bool {
    // `%3A` is an encoded `:` (a query value).
    let mut buf = [0u8; 64];
    let raw = if raw.windows(3).any(|w| w.eq_ignore_ascii_case(b"%3a")) && raw.len() <= 192 {
        let mut n = 0;
        let mut k = 0;
        while k < raw.len() && n < buf.len() {
            if raw[k] == b'%'
                && raw
                    .get(k + 1..k + 3)
                    .is_some_and(|h| h.eq_ignore_ascii_case(b"3a"))
            {
                buf[n] = b':';
                k += 3;
            } else {
                buf[n] = raw[k];
                k += 1;
            }
            n += 1;
        }
        &buf[..n]
    } else {
        raw
    };
    let v = trim_brackets(raw);
    // The first address of a list (`X-Forwarded-For: a, b`).
    let v = v
        .split(|&b| b == b',' || b == b' ')
        .find(|p| !p.is_empty())
        .unwrap_or(b"");
    let v = trim_brackets(v);
    if v.contains(&b'.') && v.iter().filter(|&&b| b == b':').count() <= 1 {
        // IPv4, perhaps with a port.
        let host = v.split(|&b| b == b':').next().unwrap_or(b"");
        return ipv4(host).is_some_and(is_public_v4);
    }
    // IPv6: `[addr]:port` or the bare address.
    let host = match v.iter().position(|&b| b == b']') {
        Some(i) => &v[..i],
        None => v,
    };
    let host = host.strip_prefix(b"[").unwrap_or(host);
    match std::str::from_utf8(host)
        .ok()
        .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
    {
        Some(a) => {
            let seg0 = a.segments()[0];
            !(a.is_loopback()
                || a.is_unspecified()
                || seg0 & 0xffc0 == 0xfe80 // link-local
                || seg0 & 0xfe00 == 0xfc00) // unique local
        }
        None => false,
    }
}

/// The end of an IPv6 address that starts at `i`, if one does: a run of hex
/// digits, `:` and `.` (an embedded IPv4 tail) that parses as an address
/// and has at least three groups, at a word boundary. Times (`12:30:45`)
/// and MAC addresses (six groups) do not parse.
///
/// The engine calls this at the start of every word, so the refusal of an
/// ordinary word (no colon after one to four hex digits) is inlined at the
/// call and the rest of the check is not.
#[inline]
pub fn ipv6_at(hay: &[u8], i: usize) -> Option<usize> {
    if i > 0 && (hay[i - 1].is_ascii_alphanumeric() || matches!(hay[i - 1], b':' | b'_' | b'.')) {
        return None;
    }
    let mut k = i;
    while k < hay.len() && k - i < 4 && hay[k].is_ascii_hexdigit() {
        k += 1;
    }
    if k == i || hay.get(k) != Some(&b':') {
        return None;
    }
    ipv6_from(hay, i)
}

/// [`ipv6_at`] once a first group and a colon are found at `i`.
#[inline(never)]
fn ipv6_from(hay: &[u8], i: usize) -> Option<usize> {
    let mut e = i;
    while e < hay.len()
        && (hay[e].is_ascii_hexdigit() || hay[e] == b':' || hay[e] == b'.')
        && e - i < 46
    {
        e += 1;
    }
    // Not part of a longer word, and no trailing punctuation.
    while e > i && matches!(hay[e - 1], b':' | b'.') {
        if e >= i + 2 && hay[e - 1] == b':' && hay[e - 2] == b':' {
            break;
        }
        e -= 1;
    }
    if hay
        .get(e)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return None;
    }
    let text = &hay[i..e];
    let shape = Ipv6Shape::of(text);
    if shape.nonempty_groups < 3 {
        return None;
    }
    // Bytes written in hex pairs (`06:C1:37:0D:BB:0B:1C:CB`, a certificate
    // serial or a fingerprint) are not an address.
    if !shape.dot && shape.all_pairs {
        return None;
    }
    // The parser costs about a thousand instructions, and it was asked
    // about every time of day written after a year (`2024:08:00:00`): 1.4%
    // of the engine's instructions on ordinary lines.
    if !shape.could_be_address() {
        return None;
    }
    std::str::from_utf8(text)
        .ok()?
        .parse::<std::net::Ipv6Addr>()
        .ok()?;
    Some(e)
}

/// The groups of a run of hex digits, colons and dots, in one pass.
#[derive(Debug, Default)]
struct Ipv6Shape {
    /// Groups between colons, empty ones included.
    groups: usize,
    nonempty_groups: usize,
    /// Every group two bytes long.
    all_pairs: bool,
    dot: bool,
    /// A `::` somewhere.
    elided: bool,
    /// A group of more than four bytes without a dot.
    long_hex_group: bool,
    /// The last group has a dot (an IPv4 tail).
    ipv4_tail: bool,
}

impl Ipv6Shape {
    fn of(text: &[u8]) -> Ipv6Shape {
        let mut s = Ipv6Shape {
            all_pairs: true,
            ..Ipv6Shape::default()
        };
        let (mut len, mut group_dot, mut after_colon) = (0usize, false, false);
        let close = |s: &mut Ipv6Shape, len: usize, group_dot: bool| {
            s.groups += 1;
            s.nonempty_groups += usize::from(len > 0);
            s.all_pairs &= len == 2;
            s.long_hex_group |= len > 4 && !group_dot;
        };
        for &b in text {
            if b == b':' {
                close(&mut s, len, group_dot);
                s.elided |= after_colon;
                (len, group_dot, after_colon) = (0, false, true);
            } else {
                len += 1;
                group_dot |= b == b'.';
                s.dot |= b == b'.';
                after_colon = false;
            }
        }
        close(&mut s, len, group_dot);
        s.ipv4_tail = group_dot;
        s
    }

    /// What every IPv6 address in text form has: hex groups of at most four
    /// digits, and without `::` exactly eight groups, or seven with an IPv4
    /// tail. A quick refusal before the parser, never a reason to accept.
    fn could_be_address(&self) -> bool {
        !self.long_hex_group && (self.elided || self.groups == if self.ipv4_tail { 7 } else { 8 })
    }
}

/// [`Ipv6Shape::could_be_address`] of `text`.
#[cfg(test)]
fn could_be_ipv6(text: &[u8]) -> bool {
    Ipv6Shape::of(text).could_be_address()
}

fn trim_brackets(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'"' | b'\''))
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'"' | b'\''))
        .map_or(s, |e| e + 1);
    &v[s..e]
}

/// See [`Validator::Iban`]: move the first four characters to the end,
/// letters become 10..35, and the number mod 97 is 1.
fn iban(raw: &[u8]) -> bool {
    let v: Vec<u8> = raw.iter().copied().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&v.len())
        || !v[..2].iter().all(u8::is_ascii_uppercase)
        || !v[2..4].iter().all(u8::is_ascii_digit)
        || !v.iter().all(u8::is_ascii_alphanumeric)
    {
        return false;
    }
    let mut rem = 0u32;
    for &b in v[4..].iter().chain(&v[..4]) {
        let d = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b.to_ascii_uppercase() - b'A') + 10
        };
        rem = if d >= 10 {
            (rem * 100 + d) % 97
        } else {
            (rem * 10 + d) % 97
        };
    }
    rem == 1
}

/// See [`Validator::Email`].
fn email(raw: &[u8]) -> bool {
    // `%40` is an encoded `@`.
    let at = raw
        .iter()
        .position(|&b| b == b'@')
        .or_else(|| raw.windows(3).position(|w| w == b"%40"));
    let Some(at) = at else {
        return false;
    };
    let local = &raw[..at];
    let hex = local.iter().filter(|b| b.is_ascii_hexdigit()).count();
    let machine = (local.len() >= 16
        && hex + local.iter().filter(|&&b| b == b'-').count() == local.len())
        || (local.len() == 36 && local.iter().filter(|&&b| b == b'-').count() == 4);
    !machine
}

fn ipv4(raw: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut n = 0;
    for part in raw.split(|&b| b == b'.') {
        if n == 4 || part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = part.iter().fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
        if v > 255 {
            return None;
        }
        out[n] = v as u8;
        n += 1;
    }
    (n == 4).then_some(out)
}

fn is_public_v4(ip: [u8; 4]) -> bool {
    let [a, b, c, d] = ip;
    // `N.0.0.0` is a network address, and the shape of reduced browser
    // versions (`Chrome/120.0.0.0`), never a person's host.
    !((b, c, d) == (0, 0, 0)
        || a == 0
        || a == 10
        || a == 127
        || (a == 169 && b == 254)
        || (a == 172 && (16..=31).contains(&b))
        || (a == 192 && b == 168)
        || (a == 100 && (64..=127).contains(&b))
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224)
}

#[cfg(test)]
mod tests {
    use super::Validator::*;

    #[test]
    fn checksums() {
        assert!(PaymentCard.check(b"4111 1111 1111 1111"));
        assert!(!PaymentCard.check(b"4111 1111 1111 1112"));
        assert!(!PaymentCard.check(b"1234567890123456789"));
        assert!(Ssn.check(b"219-09-9999"));
        assert!(!Ssn.check(b"666-12-3456"));
        assert!(!Ssn.check(b"123-00-4567"));
        assert!(Npi.check(b"1234567893"));
        assert!(!Npi.check(b"1234567890"));
        assert!(Dea.check(b"AB1234563"));
        assert!(!Dea.check(b"AB1234564"));
        assert!(Mbi.check(b"1EG4-TE5-MK73"));
        assert!(!Mbi.check(b"1EG4-TE5-MK7"));
        assert!(AbaRouting.check(b"011000015"));
        assert!(!AbaRouting.check(b"011000016"));
        assert!(Vin.check(b"1M8GDM9AXKP042788"));
        assert!(!Vin.check(b"1M8GDM9A1KP042788"));
        assert!(Nanp.check(b"(415) 555-0132"));
        assert!(!Nanp.check(b"015-555-0132"));
        assert!(Date.check(b"1985-03-14"));
        assert!(Date.check(b"03/14/1985"));
        assert!(!Date.check(b"13/14/1985"));
        assert!(PublicIpv4.check(b"8.8.4.4"));
        assert!(!PublicIpv4.check(b"10.1.2.3"));
        assert!(!Ipv4.check(b"1.2.3.256"));
        assert!(!PublicIpv4.check(b"120.0.0.0"));
        assert!(Imei.check(b"490154203237518"));
    }

    mod ipv6 {
        use super::super::{could_be_ipv6, ipv6_at};
        use proptest::prelude::*;
        use std::net::{Ipv4Addr, Ipv6Addr};

        proptest! {
            /// The quick refusal never refuses an address, in any of the
            /// forms it is written in: compressed (`::`), full, full with
            /// leading zeros, and with an IPv4 tail.
            #[test]
            fn the_quick_refusal_passes_every_address(groups: [u16; 8], v4: [u8; 4], zeros: bool) {
                let a = Ipv6Addr::from(groups);
                let full = groups
                    .iter()
                    .map(|g| if zeros { format!("{g:04x}") } else { format!("{g:x}") })
                    .collect::<Vec<_>>()
                    .join(":");
                let tail = format!(
                    "{}:{}",
                    groups[..6].iter().map(|g| format!("{g:X}")).collect::<Vec<_>>().join(":"),
                    Ipv4Addr::from(v4)
                );
                for text in [a.to_string(), full, tail] {
                    prop_assert!(text.parse::<Ipv6Addr>().is_ok(), "{}", text);
                    prop_assert!(could_be_ipv6(text.as_bytes()), "{}", text);
                }
            }

            /// On any run of hex digits, colons and dots, the quick refusal
            /// agrees with the parser whenever the parser accepts.
            #[test]
            fn the_quick_refusal_agrees_with_the_parser(text in "[0-9a-fA-F:.]{1,46}") {
                if text.parse::<Ipv6Addr>().is_ok() {
                    prop_assert!(could_be_ipv6(text.as_bytes()), "{}", text);
                }
            }
        }

        #[test]
        fn addresses_and_times() {
            for (text, want) in [
                ("2001:db8::8a2e:370:7334 up", Some(23)),
                ("fe80:0:0:0:0:0:0:1", Some(18)),
                ("64:ff9b:0:0:0:0:10.0.0.1,", Some(24)),
                ("2024:08:00:00 ok", None),
                ("12:30:45", None),
                ("1:2:3:4:5:6:7", None),
                ("12345:1:2:3:4:5:6:7", None),
                ("06:C1:37:0D:BB:0B:1C:CB", None),
                ("0:0:0:0:0:0:0:1", Some(15)),
                ("a:b::c", Some(6)),
            ] {
                assert_eq!(ipv6_at(text.as_bytes(), 0), want, "{text}");
            }
        }
    }
}
