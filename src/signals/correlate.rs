//! Correlated durations: open keys, each a keyed hash of the key field's
//! value (never the value), with the start's time and series.

use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::registry::SeriesRef;

/// Keyed hashes of key values (visit and call ids): HMAC-SHA256 under the
/// build-time key, truncated to 128 bits. Collisions are negligible at the
/// open-key caps allowed, and the value cannot be recovered or tested for
/// without the key.
#[derive(Clone)]
pub(crate) struct KeyHasher {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHasher")
    }
}

impl KeyHasher {
    pub(crate) fn new(key: &[u8]) -> KeyHasher {
        KeyHasher {
            mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length"),
        }
    }

    pub(crate) fn hash(&self, value: &str) -> u128 {
        let mut m = self.mac.clone();
        m.update(value.as_bytes());
        let out = m.finalize().into_bytes();
        let mut b = [0u8; 16];
        b.copy_from_slice(&out[..16]);
        u128::from_le_bytes(b)
    }
}

struct Open {
    /// The start record's time.
    start_ns: i64,
    /// When it was observed (the caller's clock), for `tick`.
    seen_ns: i64,
    hist: SeriesRef,
    timeout: SeriesRef,
}

/// What became of a start.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Start {
    Opened,
    AlreadyOpen,
    CapHit,
}

/// What became of an end.
#[derive(Debug, PartialEq)]
pub(crate) enum End {
    /// Seconds, and the histogram series.
    Duration(f64, SeriesRef),
    /// Ended after the timeout: a failure, on this timeout series.
    TimedOut(SeriesRef),
    Unmatched,
}

/// The open keys of one duration signal.
pub(crate) struct Correlator {
    timeout_ns: i64,
    cap: usize,
    open: HashMap<u128, Open>,
}

impl fmt::Debug for Correlator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Correlator")
            .field("open", &self.open.len())
            .field("cap", &self.cap)
            .finish()
    }
}

impl Correlator {
    pub(crate) fn new(timeout_ns: i64, cap: usize) -> Correlator {
        Correlator {
            timeout_ns,
            cap,
            open: HashMap::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether a start for `key` would be tracked (not open, room left).
    pub(crate) fn check_start(&self, key: u128) -> Start {
        if self.open.contains_key(&key) {
            Start::AlreadyOpen
        } else if self.open.len() >= self.cap {
            Start::CapHit
        } else {
            Start::Opened
        }
    }

    /// Opens `key` (after `check_start` said `Opened`).
    pub(crate) fn open(
        &mut self,
        key: u128,
        start_ns: i64,
        now_ns: i64,
        hist: SeriesRef,
        timeout: SeriesRef,
    ) {
        self.open.insert(
            key,
            Open {
                start_ns,
                seen_ns: now_ns,
                hist,
                timeout,
            },
        );
    }

    pub(crate) fn end(&mut self, key: u128, end_ns: i64) -> End {
        let Some(o) = self.open.remove(&key) else {
            return End::Unmatched;
        };
        let d = end_ns.saturating_sub(o.start_ns).max(0);
        if d > self.timeout_ns {
            End::TimedOut(o.timeout)
        } else {
            End::Duration(d as f64 / 1e9, o.hist)
        }
    }

    /// Closes every key open longer than the timeout, by record time (the
    /// newest record time seen, `watermark_ns`) or by the caller's clock;
    /// `f` gets each one's timeout series.
    pub(crate) fn expire(&mut self, now_ns: i64, watermark_ns: i64, mut f: impl FnMut(SeriesRef)) {
        let t = self.timeout_ns;
        self.open.retain(|_, o| {
            let late =
                now_ns.saturating_sub(o.seen_ns) > t || watermark_ns.saturating_sub(o.start_ns) > t;
            if late {
                f(o.timeout);
            }
            !late
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed() {
        let a = KeyHasher::new(b"key one");
        let b = KeyHasher::new(b"key two");
        assert_eq!(a.hash("v-1"), a.hash("v-1"));
        assert_ne!(a.hash("v-1"), a.hash("v-2"));
        assert_ne!(a.hash("v-1"), b.hash("v-1"));
    }

    #[test]
    fn durations_timeouts_and_cap() {
        let s = (0, 0);
        let t = (1, 0);
        let mut c = Correlator::new(10_000_000_000, 2);
        assert_eq!(c.check_start(1), Start::Opened);
        c.open(1, 0, 0, s, t);
        assert_eq!(c.check_start(1), Start::AlreadyOpen);
        c.open(2, 0, 0, s, t);
        assert_eq!(c.check_start(3), Start::CapHit);
        assert_eq!(c.end(1, 4_000_000_000), End::Duration(4.0, s));
        assert_eq!(c.end(1, 5_000_000_000), End::Unmatched);
        assert_eq!(c.end(2, 11_000_000_000), End::TimedOut(t));
        c.open(3, 0, 0, s, t);
        let mut n = 0;
        c.expire(5_000_000_000, 0, |_| n += 1);
        assert_eq!((n, c.len()), (0, 1));
        c.expire(10_000_000_001, 0, |_| n += 1);
        assert_eq!((n, c.len()), (1, 0));
    }
}
