//! Durations and byte sizes as operators write them in configuration.
//!
//! Every duration and byte size in the configuration is read by the two
//! serde functions here, [`deserialize_duration`] and [`deserialize_bytes`]
//! (with [`deserialize_bytes_usize`] for sizes held as `usize`), so one rule
//! holds for every field:
//!
//! * a duration is a string with a unit (`"250ms"`, `"30s"`, `"1m30s"`, see
//!   [`parse_duration`]) or a whole number of seconds (`30`); a number
//!   with a fraction, a negative number, or a unitless number written as a
//!   string (`"30"`) is refused, as a guess at its unit could be wrong by a
//!   factor of a thousand;
//! * a byte size is a whole number of bytes (`1048576`) or a string with a
//!   unit (`"1MiB"`, `"512 KiB"`, see [`parse_bytes`]).
//!
//! Errors say what was expected and what kind of value was found, never the
//! value itself; serde names the field.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// Parses a duration such as `"200ms"`, `"10s"`, `"1m"`, `"1.5s"` or
/// `"1m30s"`. Units: `ns`, `us`, `ms`, `s`, `m`, `h`, `d`. A number without
/// a unit other than `0` is refused (the unit is not guessed; configuration
/// writes a whole number of seconds as a YAML number, see
/// [`deserialize_duration`]). Errors describe the text, never repeat it.
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
            return Err("invalid duration: expected a number before each unit".into());
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
                return Err(
                    "invalid duration: missing unit after a number (ns, us, ms, s, m, h, d), \
                     e.g. \"10s\"; a whole number of seconds is written without quotes"
                        .into(),
                )
            }
            _ => return Err("invalid duration: unknown unit (use ns, us, ms, s, m, h, d)".into()),
        };
        let n: f64 = num
            .parse()
            .map_err(|_| "invalid duration: a malformed number".to_string())?;
        let part = Duration::try_from_secs_f64(n * secs_per_unit)
            .map_err(|_| "invalid duration: out of range".to_string())?;
        total = total
            .checked_add(part)
            .ok_or_else(|| "invalid duration: out of range".to_string())?;
        rest = after;
    }
    Ok(total)
}

/// Parses a byte size: a number of bytes, or a number with a unit `B`,
/// `KiB`, `MiB`, `GiB` (powers of 1024) or `KB`, `MB`, `GB` (powers of
/// 1000), e.g. `"1MiB"`, `"512 KiB"`. Errors describe the text, never
/// repeat it.
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
        _ => return Err("invalid size: unknown unit (use B, KiB, MiB, GiB, KB, MB, GB)".into()),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| "invalid size: expected a number before the unit".to_string())?;
    let v = n * mult;
    if !(0.0..1.8e19).contains(&v) {
        return Err("invalid size: out of range".into());
    }
    Ok(v.round() as u64)
}

/// What a configured number was, for errors that describe a value without
/// repeating it.
fn shape_of_float(v: f64) -> &'static str {
    if v < 0.0 {
        "a negative number"
    } else {
        "a number with a fraction"
    }
}

/// A serde `deserialize_with` for every duration in the configuration: a
/// string for [`parse_duration`], or a whole number of seconds.
pub fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "a duration: a string with a unit (ns, us, ms, s, m, h, d) such as \"10s\" \
                 or \"250ms\", or a whole number of seconds",
            )
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v).map(Duration::from_secs).map_err(|_| {
                E::custom(format!(
                    "invalid duration: a negative number; expected {}",
                    Expecting(&self)
                ))
            })
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "invalid duration: {}; write it with a unit, e.g. \"1500ms\"",
                shape_of_float(v)
            )))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

/// A serde `deserialize_with` for every byte size in the configuration: a
/// whole number of bytes, or a string for [`parse_bytes`].
pub fn deserialize_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "a byte size: a whole number of bytes, or a string with a unit (B, KiB, MiB, \
                 GiB, KB, MB, GB) such as \"1MiB\"",
            )
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| {
                E::custom(format!(
                    "invalid size: a negative number; expected {}",
                    Expecting(&self)
                ))
            })
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
            Err(E::custom(format!(
                "invalid size: {}; write a whole number of bytes or a unit, e.g. \"1536KiB\"",
                shape_of_float(v)
            )))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            parse_bytes(v).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

/// [`deserialize_bytes`] for a size held as `usize` (a buffer length).
pub fn deserialize_bytes_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = deserialize_bytes(d)?;
    usize::try_from(n).map_err(|_| de::Error::custom("invalid size: too large for this platform"))
}

/// A visitor's `expecting` text, for custom errors.
struct Expecting<'a, T>(&'a T);

impl<T: for<'de> Visitor<'de>> fmt::Display for Expecting<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Cfg {
        #[serde(default, deserialize_with = "deserialize_duration")]
        wait: Duration,
        #[serde(default, deserialize_with = "deserialize_bytes")]
        size: u64,
        #[serde(default, deserialize_with = "deserialize_bytes_usize")]
        buffer: usize,
    }

    fn read(yaml: &str) -> Result<Cfg, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn durations_take_a_unit_or_whole_seconds() {
        for (yaml, want) in [
            ("wait: 250ms", Duration::from_millis(250)),
            ("wait: 1m30s", Duration::from_secs(90)),
            ("wait: '1.5s'", Duration::from_millis(1500)),
            ("wait: 30", Duration::from_secs(30)),
            ("wait: 0", Duration::ZERO),
            ("wait: '0'", Duration::ZERO),
        ] {
            assert_eq!(read(yaml).unwrap().wait, want, "{yaml}");
        }
    }

    #[test]
    fn refused_durations_name_the_field_and_shape_not_the_value() {
        for (yaml, shape) in [
            ("wait: 1.5", "a number with a fraction"),
            ("wait: -3", "a negative number"),
            ("wait: '30'", "missing unit"),
            ("wait: 9 parsecs", "unknown unit"),
            ("wait: Maria Gonzalez", "expected a number"),
            ("wait: [1]", "a duration"),
        ] {
            let e = read(yaml).unwrap_err();
            assert!(e.starts_with("wait: "), "{yaml}: {e}");
            assert!(e.contains(shape), "{yaml}: {e}");
            for secret in ["1.5", "-3", "30", "parsecs", "Maria"] {
                assert!(!e.contains(secret), "{yaml}: {e}");
            }
        }
    }

    #[test]
    fn sizes_take_whole_bytes_or_a_unit() {
        let c = read("size: 1048576\nbuffer: 64KiB").unwrap();
        assert_eq!((c.size, c.buffer), (1 << 20, 64 << 10));
        assert_eq!(read("size: '2 MB'").unwrap().size, 2_000_000);
        for (yaml, shape) in [
            ("size: 1.5", "a number with a fraction"),
            ("size: -1", "a negative number"),
            ("buffer: 3 furlongs", "unknown unit"),
        ] {
            let e = read(yaml).unwrap_err();
            assert!(e.contains(shape) && !e.contains("furlongs"), "{yaml}: {e}");
            assert!(
                e.starts_with(yaml.split(':').next().unwrap()),
                "{yaml}: {e}"
            );
        }
    }
}
