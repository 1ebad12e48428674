//! Durations and byte sizes as operators write them in configuration.

use std::time::Duration;

/// Parses a duration such as `"200ms"`, `"10s"`, `"1m"`, `"1.5s"` or
/// `"1m30s"`. Units: `ns`, `us`, `ms`, `s`, `m`, `h`, `d`. A bare number
/// other than `0` is refused (the unit is not guessed).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err("empty duration; write e.g. \"10s\" or \"200ms\"".into());
    }
    let mut rest = t;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() {
            return Err(format!("invalid duration {t:?}: expected a number"));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let secs_per_unit = match unit.trim() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => {
                return Err(format!(
                    "invalid duration {t:?}: missing unit (ns, us, ms, s, m, h, d), e.g. \"{num}s\""
                ))
            }
            other => {
                return Err(format!(
                    "invalid duration {t:?}: unknown unit {other:?} (use ns, us, ms, s, m, h, d)"
                ))
            }
        };
        let n: f64 = num
            .parse()
            .map_err(|_| format!("invalid duration {t:?}: bad number {num:?}"))?;
        let part = Duration::try_from_secs_f64(n * secs_per_unit)
            .map_err(|_| format!("invalid duration {t:?}: out of range"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("invalid duration {t:?}: out of range"))?;
        rest = after;
    }
    Ok(total)
}

/// Parses a byte size: a number of bytes, or a number with a unit `B`,
/// `KiB`, `MiB`, `GiB` (powers of 1024) or `KB`, `MB`, `GB` (powers of
/// 1000), e.g. `"1MiB"`, `"512 KiB"`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let num_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_len);
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "invalid size {t:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {t:?}: expected a number"))?;
    let v = n * mult;
    if !(0.0..1.8e19).contains(&v) {
        return Err(format!("invalid size {t:?}: out of range"));
    }
    Ok(v.round() as u64)
}
