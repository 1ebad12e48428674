//! Field keys: how a key is normalised, and how a record's attributes are
//! looked up by a normalised key.
//!
//! Three stages compare keys: the redaction engine (a key says what its value
//! is), the audit classifier (a configured field selects audit-grade records)
//! and the classifier's OTLP attribute lookups (record, then resource). They must
//! agree on which spellings are the same key, or a field the engine treats as
//! `patient_id` would be missed by the classifier under another spelling. So
//! there is one rule, [`normalise_key`], and everything else here is written
//! in terms of it.
//!
//! The rule: keep ASCII letters and digits, lower-cased, and drop every other
//! byte, so `patient_id`, `Patient-ID`, `patientId` and `PATIENT.ID` are all
//! `patientid`. A key that keeps no byte, or more than [`MAX_KEY`] bytes, has
//! no normal form and matches nothing.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;

/// Keys longer than this (after normalisation) are never rule keys.
pub const MAX_KEY: usize = 48;

/// Normalises a key for lookup: ASCII letters and digits only, lower case.
/// `patientName`, `patient_name`, `patient.name` and `PATIENT-NAME` all
/// become `patientname`. Returns `None` for an over-long or empty key.
///
/// This writes into a stack buffer and allocates nothing: the engine calls it
/// for every key of every line.
pub fn normalise_key(key: &[u8], out: &mut [u8; MAX_KEY]) -> Option<usize> {
    let mut n = 0;
    for b in folded(key) {
        if n == MAX_KEY {
            return None;
        }
        out[n] = b;
        n += 1;
    }
    (n > 0).then_some(n)
}

/// The bytes a key is compared by: its ASCII letters and digits, lower
/// case; everything else is dropped. [`normalise_key`], [`matches`] and the
/// audit selector's mention test all fold this one way.
pub fn folded(key: &[u8]) -> impl Iterator<Item = u8> + '_ {
    key.iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(u8::to_ascii_lowercase)
}

/// [`normalise_key`] as an owned string, for keys kept beyond one lookup
/// (the selector's configured fields, a resource's attribute keys).
pub fn normalised(key: &str) -> Option<String> {
    let mut buf = [0u8; MAX_KEY];
    let n = normalise_key(key.as_bytes(), &mut buf)?;
    // Only ASCII letters and digits are kept, so the bytes are UTF-8.
    Some(buf[..n].iter().map(|&b| char::from(b)).collect())
}

/// Whether `raw` normalises to `norm`. `norm` must itself be a normal form
/// (from [`normalised`]); a raw key without one equals nothing.
pub fn matches(raw: &str, norm: &str) -> bool {
    // Compared as the raw key is folded, stopping at the first byte that
    // differs: this runs for every attribute of every OTLP log record when a
    // selector is set, and most attributes differ from a field name in
    // their first letter. Same answer as normalising `raw` whole and
    // comparing (the property test below).
    let norm = norm.as_bytes();
    if norm.len() > MAX_KEY {
        return false;
    }
    let mut n = 0;
    for b in folded(raw.as_bytes()) {
        if norm.get(n) != Some(&b) {
            return false;
        }
        n += 1;
    }
    n > 0 && n == norm.len()
}

/// The text of the first attribute whose key normalises to `norm_key`.
pub fn attr_lookup(attrs: &[KeyValue], norm_key: &str) -> Option<String> {
    // Compared in a stack buffer, without building a String per attribute:
    // this runs for every log record when a selector is set.
    attrs
        .iter()
        .find_map(|kv| matches(&kv.key, norm_key).then(|| attr_text(kv)).flatten())
}

/// Attributes with their keys normalised beforehand, for attributes read
/// many times (every log record of a resource falls back to the resource's
/// attributes, so their keys are normalised once per resource rather than
/// once per record). Attributes whose key has no normal form are left out:
/// they match nothing.
pub fn normalised_keys(attrs: &[KeyValue]) -> Vec<(String, &KeyValue)> {
    attrs
        .iter()
        .filter_map(|kv| Some((normalised(&kv.key)?, kv)))
        .collect()
}

/// [`attr_lookup`] over attributes from [`normalised_keys`].
pub fn attr_lookup_normalised(attrs: &[(String, &KeyValue)], norm_key: &str) -> Option<String> {
    attrs
        .iter()
        .find_map(|(k, kv)| if k == norm_key { attr_text(kv) } else { None })
}

/// The string form of a scalar attribute value; `None` for arrays, maps,
/// bytes and an absent value.
pub fn attr_text(kv: &KeyValue) -> Option<String> {
    match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;

    const SPELLINGS: [&str; 4] = ["patient_id", "Patient-ID", "patientId", "PATIENT.ID"];

    fn attr(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn engine_form(key: &str) -> Option<Vec<u8>> {
        let mut buf = [0u8; MAX_KEY];
        normalise_key(key.as_bytes(), &mut buf).map(|n| buf[..n].to_vec())
    }

    /// The engine, the classifier's selector and the router's attribute
    /// lookups were three implementations; they must now agree on every
    /// spelling of a key.
    #[test]
    fn engine_classifier_and_router_agree_on_spellings() {
        for raw in SPELLINGS {
            assert_eq!(
                engine_form(raw).as_deref(),
                Some(&b"patientid"[..]),
                "{raw}"
            );
            assert_eq!(normalised(raw).as_deref(), Some("patientid"), "{raw}");
            let attrs = [attr("other", "x"), attr(raw, "p-1")];
            assert_eq!(
                attr_lookup(&attrs, "patientid").as_deref(),
                Some("p-1"),
                "{raw}"
            );
            let keys = normalised_keys(&attrs);
            assert_eq!(
                attr_lookup_normalised(&keys, "patientid").as_deref(),
                Some("p-1"),
                "{raw}"
            );
            // The selector's configured field, spelt any of the ways, finds
            // an attribute spelt any other way.
            for configured in SPELLINGS {
                let norm = normalised(configured).unwrap();
                assert_eq!(attr_lookup(&attrs, &norm).as_deref(), Some("p-1"));
            }
        }
    }

    /// A key with no normal form (empty after normalisation, or longer than
    /// the engine reads) matches nothing, in any of the lookups; before, the
    /// classifier and router normalised it to an empty or long string and
    /// matched it.
    #[test]
    fn keys_without_a_normal_form_match_nothing() {
        let long = "a".repeat(MAX_KEY + 1);
        for raw in ["", "__", "-.-", long.as_str()] {
            assert_eq!(engine_form(raw), None, "{raw}");
            assert_eq!(normalised(raw), None, "{raw}");
            let attrs = [attr(raw, "v")];
            assert!(normalised_keys(&attrs).is_empty());
            assert_eq!(attr_lookup(&attrs, ""), None);
            assert_eq!(attr_lookup(&attrs, &long), None);
        }
        let longest = "a".repeat(MAX_KEY);
        assert_eq!(normalised(&longest).as_deref(), Some(longest.as_str()));
    }

    proptest::proptest! {
        /// `matches` stops at the first difference; it must answer as
        /// normalising the raw key whole and comparing does.
        #[test]
        fn matches_is_normalise_then_compare(
            raw in "[a-zA-Z0-9_.\\- ]{0,80}",
            norm in "[a-z0-9]{0,70}",
            same in proptest::bool::ANY,
        ) {
            let norm = match engine_form(&raw) {
                Some(form) if same => String::from_utf8(form).unwrap(),
                _ => norm,
            };
            let mut buf = [0u8; MAX_KEY];
            let whole = normalise_key(raw.as_bytes(), &mut buf)
                .is_some_and(|n| &buf[..n] == norm.as_bytes());
            proptest::prop_assert_eq!(matches(&raw, &norm), whole);
        }
    }

    #[test]
    fn non_scalar_attributes_have_no_text() {
        let kv = KeyValue {
            key: "k".into(),
            value: Some(AnyValue {
                value: Some(Value::IntValue(7)),
            }),
            ..Default::default()
        };
        assert_eq!(attr_text(&kv).as_deref(), Some("7"));
        let kv = KeyValue {
            key: "k".into(),
            value: Some(AnyValue {
                value: Some(Value::BytesValue(vec![1])),
            }),
            ..Default::default()
        };
        assert_eq!(attr_text(&kv), None);
    }
}
