//! The audit payload (schema 1) and its hash chain.
//!
//! Every Kafka message on the audit topic carries one JSON object, written by
//! [`Sealer::seal`] with this exact member order and no whitespace:
//!
//! ```text
//! {"schema":1,"alg":"sha256","instance":"<32 hex>","source":"app","stream":"/var/log/app.log",
//!  "seq":41,"ts_unix_nano":1718000000000000000,"prev_hash":"<64 hex>","record":{...},"hash":"<64 hex>"}
//! ```
//!
//! - `schema`: always 1 for this format.
//! - `alg`: `sha256`, or `hmac-sha256` when a chain key is configured.
//! - `instance`: the scrubs instance's chain id, 32 hex digits generated
//!   once per spool directory (`spool_dir/chain.id`). Every sidecar of a
//!   fleet writes to the same topic, often with the same stream names
//!   (`/var/log/app.log`, `otlp`): a chain is identified by
//!   (`instance`, `stream`).
//! - `source`, `stream`: where the record came from.
//! - `seq`: 0 for the first event of a chain, then +1 per event, across
//!   scrubs restarts (the last sequence number and hash of each stream are
//!   persisted in the spool directory; a new spool directory is a new
//!   instance with new chains).
//! - `ts_unix_nano`: when the record was observed.
//! - `prev_hash`: the `hash` of the event with `seq - 1` of the same stream;
//!   64 zeros for `seq` 0.
//! - `record`: the audit record itself, unredacted.
//! - `hash`: lowercase hex of SHA-256 (or HMAC-SHA256 with the chain key) over
//!   the **hashed bytes**.
//!
//! The hashed bytes are the message value with its final `,"hash":"<64 hex>"`
//! member removed: `value[..len - 75] + "}"`. Those are exactly the bytes of
//! the object from `{"schema"` to the end of `record`, closed with `}`. No
//! canonical re-serialisation is involved, so any tool can check a message,
//! for example in Python:
//!
//! ```text
//! body = value[:-75] + b"}"
//! assert value[-75:-66] == b',"hash":"' and value.endswith(b'"}')
//! assert hashlib.sha256(body).hexdigest() == json.loads(value)["hash"]
//! # keyed: hmac.new(key, body, hashlib.sha256).hexdigest()
//! ```
//!
//! The Kafka message key (the event's key, or its stream) and the headers
//! (`scrubs-stream`, `scrubs-seq`) are routing aids and are not hashed.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::pipeline::AuditEvent;

/// The payload schema version written by this build.
pub const SCHEMA_VERSION: u32 = 1;

/// The `prev_hash` of the first event of a stream.
pub const ZERO_HASH: [u8; 32] = [0; 32];

/// Minimum chain key length in bytes.
pub const MIN_CHAIN_KEY_BYTES: usize = 32;

/// Length of the `,"hash":"<64 hex>"}` suffix of every payload.
pub(crate) const HASH_SUFFIX_LEN: usize = 75;
const HASH_MEMBER: &[u8] = b",\"hash\":\"";

/// The key of a keyed (HMAC-SHA256) hash chain. With it, someone who can
/// write to the topic but does not hold the key cannot recompute the chain
/// after altering, removing or inserting events.
#[derive(Clone)]
pub struct ChainKey(Vec<u8>);

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainKey({} bytes)", self.0.len())
    }
}

impl ChainKey {
    /// Reads a key file; trailing newlines are not part of the key. The error
    /// names the file, never the key.
    pub fn from_file(path: &Path) -> Result<ChainKey, String> {
        let mut key = std::fs::read(path)
            .map_err(|e| format!("cannot read chain key file {}: {e}", path.display()))?;
        while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            key.pop();
        }
        ChainKey::from_bytes(key).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A key from bytes, refused when shorter than [`MIN_CHAIN_KEY_BYTES`].
    pub fn from_bytes(key: Vec<u8>) -> Result<ChainKey, String> {
        if key.len() < MIN_CHAIN_KEY_BYTES {
            return Err(format!(
                "chain key is {} bytes; at least {MIN_CHAIN_KEY_BYTES} are required",
                key.len()
            ));
        }
        Ok(ChainKey(key))
    }
}

/// The `alg` value for a chain with or without a key.
pub fn alg_name(key: Option<&ChainKey>) -> &'static str {
    if key.is_some() {
        "hmac-sha256"
    } else {
        "sha256"
    }
}

/// The chain hash of the hashed bytes (see the module documentation).
pub fn chain_hash(key: Option<&ChainKey>, body: &[u8]) -> [u8; 32] {
    match key {
        Some(k) => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&k.0)
                .expect("HMAC accepts keys of any length");
            mac.update(body);
            mac.finalize().into_bytes().into()
        }
        None => Sha256::digest(body).into(),
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8; 32]) -> String {
    let mut s = String::with_capacity(64);
    push_hex(&mut s, bytes);
    s
}

fn push_hex(s: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
}

/// Parses 64 lowercase or uppercase hex digits.
pub fn parse_hex(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The chain position of a stream: the last sealed event's sequence number
/// and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// The sequence number of the last sealed event.
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; 32],
}

/// An event with its sequence number and hash, ready for Kafka or the spool.
#[derive(Clone)]
pub struct SealedEvent {
    /// The stream (chain) it belongs to.
    pub stream: String,
    /// Its sequence number in the stream.
    pub seq: u64,
    /// Its hash (the `hash` member of the payload).
    pub hash: [u8; 32],
    /// The Kafka message key.
    pub key: Vec<u8>,
    /// The Kafka message value (the JSON payload).
    pub payload: Vec<u8>,
}

impl fmt::Debug for SealedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key and payload are patient data.
        f.debug_struct("SealedEvent")
            .field("stream", &self.stream)
            .field("seq", &self.seq)
            .field("payload_bytes", &self.payload.len())
            .finish()
    }
}

/// Assigns sequence numbers and hashes: one chain per stream.
pub struct Sealer {
    key: Option<ChainKey>,
    instance: String,
    heads: HashMap<String, ChainHead>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("keyed", &self.key.is_some())
            .field("instance", &self.instance)
            .field("streams", &self.heads.len())
            .finish()
    }
}

impl Sealer {
    /// A sealer for an instance's chains, continuing the given heads
    /// (empty: every stream starts at seq 0).
    pub fn new(key: Option<ChainKey>, instance: &str, heads: HashMap<String, ChainHead>) -> Sealer {
        Sealer {
            key,
            instance: instance.to_string(),
            heads,
        }
    }

    /// The head of a stream's chain, if it has sealed anything.
    pub fn head(&self, stream: &str) -> Option<ChainHead> {
        self.heads.get(stream).copied()
    }

    /// Every stream's head.
    pub fn heads(&self) -> &HashMap<String, ChainHead> {
        &self.heads
    }

    /// Sets (or, with `None`, forgets) a stream's head; used to roll back
    /// events that were sealed but could not be recorded.
    pub fn set_head(&mut self, stream: &str, head: Option<ChainHead>) {
        match head {
            Some(h) => {
                self.heads.insert(stream.to_string(), h);
            }
            None => {
                self.heads.remove(stream);
            }
        }
    }

    /// Seals an event: the next sequence number of its stream, the previous
    /// hash, and the payload.
    pub fn seal(&mut self, ev: &AuditEvent) -> SealedEvent {
        let record = serde_json::to_vec(&ev.record).expect("a JSON value serialises");
        self.seal_raw(ev, &record)
    }

    /// Like [`Sealer::seal`] with the record already serialised as JSON.
    pub fn seal_raw(&mut self, ev: &AuditEvent, record_json: &[u8]) -> SealedEvent {
        let (seq, prev) = match self.heads.get(&ev.stream) {
            Some(h) => (h.seq + 1, h.hash),
            None => (0, ZERO_HASH),
        };
        let mut body = Vec::with_capacity(record_json.len() + ev.stream.len() + 256);
        body.extend_from_slice(b"{\"schema\":");
        body.extend_from_slice(SCHEMA_VERSION.to_string().as_bytes());
        body.extend_from_slice(b",\"alg\":\"");
        body.extend_from_slice(alg_name(self.key.as_ref()).as_bytes());
        body.extend_from_slice(b"\",\"instance\":");
        serde_json::to_writer(&mut body, &self.instance).expect("a string serialises");
        body.extend_from_slice(b",\"source\":");
        serde_json::to_writer(&mut body, &ev.source).expect("a string serialises");
        body.extend_from_slice(b",\"stream\":");
        serde_json::to_writer(&mut body, &ev.stream).expect("a string serialises");
        body.extend_from_slice(b",\"seq\":");
        body.extend_from_slice(seq.to_string().as_bytes());
        body.extend_from_slice(b",\"ts_unix_nano\":");
        body.extend_from_slice(ev.time_unix_nano.to_string().as_bytes());
        body.extend_from_slice(b",\"prev_hash\":\"");
        body.extend_from_slice(hex(&prev).as_bytes());
        body.extend_from_slice(b"\",\"record\":");
        body.extend_from_slice(record_json);
        body.push(b'}');
        let hash = chain_hash(self.key.as_ref(), &body);
        // The payload is the body with the hash member inserted before `}`.
        body.pop();
        body.extend_from_slice(HASH_MEMBER);
        body.extend_from_slice(hex(&hash).as_bytes());
        body.extend_from_slice(b"\"}");
        self.heads
            .insert(ev.stream.clone(), ChainHead { seq, hash });
        let key = match &ev.key {
            Some(k) => k.as_bytes().to_vec(),
            None => ev.stream.as_bytes().to_vec(),
        };
        SealedEvent {
            stream: ev.stream.clone(),
            seq,
            hash,
            key,
            payload: body,
        }
    }
}

/// The upper bound of a payload's size beyond its record's JSON.
pub(crate) fn payload_overhead(ev: &AuditEvent) -> usize {
    // Fixed members, instance and hashes (~300 bytes) plus the escaped strings.
    400 + 2 * (ev.source.len() + ev.stream.len())
}

/// The stated hash at the end of a payload, if it has the expected suffix.
pub fn stated_hash(payload: &[u8]) -> Option<[u8; 32]> {
    let n = payload.len();
    if n < HASH_SUFFIX_LEN + 2 || !payload.ends_with(b"\"}") {
        return None;
    }
    if &payload[n - HASH_SUFFIX_LEN..n - HASH_SUFFIX_LEN + HASH_MEMBER.len()] != HASH_MEMBER {
        return None;
    }
    parse_hex(&payload[n - 66..n - 2])
}

/// The hashed bytes of a payload (see the module documentation).
pub fn hashed_bytes(payload: &[u8]) -> Option<Vec<u8>> {
    stated_hash(payload)?;
    let mut body = payload[..payload.len() - HASH_SUFFIX_LEN].to_vec();
    body.push(b'}');
    Some(body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    schema: u32,
    alg: String,
    instance: String,
    #[allow(dead_code)]
    source: String,
    stream: String,
    seq: u64,
    #[allow(dead_code)]
    ts_unix_nano: u64,
    prev_hash: String,
    #[allow(dead_code)]
    record: serde::de::IgnoredAny,
    hash: String,
}

/// What [`check_payload`] found in a message value.
#[derive(Debug, Clone)]
pub struct CheckedPayload {
    /// The instance (chain id).
    pub instance: String,
    /// The stream.
    pub stream: String,
    /// The sequence number.
    pub seq: u64,
    /// The `alg` member.
    pub alg: String,
    /// The stated previous hash.
    pub prev_hash: [u8; 32],
    /// The stated hash.
    pub hash: [u8; 32],
    /// Whether the stated hash matches the content: `Some(false)` means the
    /// event was altered; `None` means it could not be checked (a keyed
    /// chain without the key).
    pub hash_ok: Option<bool>,
}

/// Parses and checks one message value. `Err` means it is not a schema-1
/// scrubs audit payload at all (the reason names no content).
pub fn check_payload(payload: &[u8], key: Option<&ChainKey>) -> Result<CheckedPayload, String> {
    let env: Envelope = serde_json::from_slice(payload).map_err(|e| {
        // serde_json errors quote field names and positions, not values.
        format!("not a scrubs audit payload: {}", describe_json_error(&e))
    })?;
    if env.schema != SCHEMA_VERSION {
        return Err(format!("unknown schema version {}", env.schema));
    }
    let prev_hash = parse_hex(env.prev_hash.as_bytes())
        .ok_or_else(|| "prev_hash is not 64 hex digits".to_string())?;
    let hash =
        parse_hex(env.hash.as_bytes()).ok_or_else(|| "hash is not 64 hex digits".to_string())?;
    let hash_ok = match hashed_bytes(payload) {
        // The hash member is not last, or written differently than scrubs
        // writes it: the message was re-serialised or edited.
        None => Some(false),
        Some(body) => match (env.alg.as_str(), key) {
            ("sha256", None) => Some(chain_hash(None, &body) == hash),
            // A keyed verifier refuses unkeyed events: an attacker without
            // the key could otherwise downgrade and recompute.
            ("sha256", Some(_)) => Some(false),
            ("hmac-sha256", Some(k)) => Some(chain_hash(Some(k), &body) == hash),
            ("hmac-sha256", None) => None,
            _ => Some(false),
        },
    };
    Ok(CheckedPayload {
        instance: env.instance,
        stream: env.stream,
        seq: env.seq,
        alg: env.alg,
        prev_hash,
        hash,
        hash_ok,
    })
}

fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => "I/O error".into(),
        Category::Syntax | Category::Eof => format!("invalid JSON at column {}", e.column()),
        // Data errors name fields ("missing field `seq`"), not values;
        // a type error can quote a string value, so only keep its shape.
        Category::Data => {
            let s = e.to_string();
            if s.starts_with("missing field")
                || s.starts_with("unknown field")
                || s.starts_with("duplicate field")
            {
                s.split(" at line").next().unwrap_or("").to_string()
            } else {
                "a member has the wrong type".into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(stream: &str, n: u64) -> AuditEvent {
        AuditEvent {
            source: "app".into(),
            stream: stream.into(),
            key: Some(format!("patient-{n}")),
            time_unix_nano: 1_700_000_000_000_000_000 + n,
            record: serde_json::json!({"line": format!("opened chart {n}"), "n": n}),
        }
    }

    #[test]
    fn seals_a_chain_and_checks_it() {
        let mut s = Sealer::new(None, "i1", HashMap::new());
        let a = s.seal(&ev("s1", 0));
        let b = s.seal(&ev("s1", 1));
        let c = s.seal(&ev("s2", 2));
        assert_eq!((a.seq, b.seq, c.seq), (0, 1, 0));
        let ca = check_payload(&a.payload, None).unwrap();
        let cb = check_payload(&b.payload, None).unwrap();
        assert_eq!(ca.prev_hash, ZERO_HASH);
        assert_eq!(cb.prev_hash, ca.hash);
        assert_eq!(ca.hash_ok, Some(true));
        assert_eq!(cb.hash_ok, Some(true));
        assert_eq!(a.key, b"patient-0");
        let v: serde_json::Value = serde_json::from_slice(&a.payload).unwrap();
        assert_eq!(v["record"]["n"], 0);
        assert_eq!(v["schema"], 1);
        assert_eq!(v["instance"], "i1");
        assert_eq!(ca.instance, "i1");
        // The documented hashed bytes reproduce the hash.
        let body = hashed_bytes(&a.payload).unwrap();
        assert_eq!(
            hex(&Sha256::digest(&body).into()),
            v["hash"].as_str().unwrap()
        );
    }

    #[test]
    fn detects_edits_and_keys() {
        let key = ChainKey::from_bytes(vec![7; 32]).unwrap();
        let mut s = Sealer::new(Some(key.clone()), "i1", HashMap::new());
        let a = s.seal(&ev("s1", 0));
        assert_eq!(
            check_payload(&a.payload, Some(&key)).unwrap().hash_ok,
            Some(true)
        );
        assert_eq!(check_payload(&a.payload, None).unwrap().hash_ok, None);
        let other = ChainKey::from_bytes(vec![8; 32]).unwrap();
        assert_eq!(
            check_payload(&a.payload, Some(&other)).unwrap().hash_ok,
            Some(false)
        );
        let edited = String::from_utf8(a.payload.clone())
            .unwrap()
            .replace("opened chart 0", "opened chart 9");
        assert_eq!(
            check_payload(edited.as_bytes(), Some(&key))
                .unwrap()
                .hash_ok,
            Some(false)
        );
        assert!(ChainKey::from_bytes(vec![1; 8]).is_err());
        assert!(!format!("{key:?}").contains('7'));
    }

    #[test]
    fn errors_name_no_content() {
        let e = check_payload(br#"{"schema":1,"seq":"secret-value"}"#, None).unwrap_err();
        assert!(!e.contains("secret-value"), "{e}");
        assert!(check_payload(b"garbage", None).is_err());
    }
}
