//! The per-thread working memory of redaction: [`Scratch`], its cache of
//! recent structured-key lookups ([`KeyCache`]), and their hand-written
//! `Debug`, which shows sizes only because the buffers hold event content.

use std::cell::{Cell, RefCell};
use std::hash::BuildHasher as _;

use regex_automata::meta;

use super::{Engine, State};
use crate::redact::class;
use crate::redact::names::BuildFx;
use crate::redact::numeric::NumToken;
use crate::redact::structure::Frame;

/// Reusable scratch space for redaction: one per thread. Holding on to it
/// between lines is what makes a clean line allocation-free. Its buffers
/// hold raw and decoded event content, so its `Debug` shows sizes only.
pub struct Scratch {
    pub(super) main: State,
    pub(super) sub: State,
    pub(super) stack: Vec<Frame>,
    pub(super) decoded: Vec<u8>,
    /// A second decoding buffer, for encoded values inside a decoded one.
    pub(super) inner: Vec<u8>,
    pub(super) out: Vec<u8>,
    pub(super) norm: Vec<u8>,
    pub(super) num: NumToken,
    pub(super) regex_cache: Option<meta::Cache>,
    pub(super) counts: Vec<u64>,
    pub(super) keys: RefCell<KeyCache>,
    /// Per line: whether it mentions each context-key rule's words (slots
    /// in `Rule::mention_slot`), found at the first key that asks.
    pub(super) mentions: Box<[Cell<Mention>]>,
}

/// Whether a line mentions one rule's context words, once looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mention {
    Unknown,
    Yes,
    No,
}

/// Remembers recent structured-key lookups. Log lines repeat the same few
/// dozen keys (`ts`, `level`, `trace_id`), and a lookup that normalises the
/// key, hashes it and splits it into words costs far more than one hash and
/// one compare. Two-way set-associative and fixed in size: a key may sit in
/// either slot of its pair, the one used last first, and a miss overwrites
/// the other; so two frequent keys whose hashes share a pair do not evict
/// each other on every line (direct-mapped, one such pair in the corpus
/// made 1,295 lookups of 98,089 miss), and the cache never allocates after
/// it is made, whatever keys arrive.
pub(super) struct KeyCache {
    slots: Box<[KeySlot]>,
}

const KEY_CACHE_SLOTS: usize = 512;
/// Keys longer than this are looked up every time.
const KEY_CACHE_KEY: usize = 30;

#[derive(Clone, Copy)]
struct KeySlot {
    /// 0 marks an empty slot (an empty key is never cached).
    len: u8,
    key: [u8; KEY_CACHE_KEY],
    /// The rule, or `u32::MAX` for none.
    rule: u32,
}

impl KeyCache {
    pub(super) fn new() -> KeyCache {
        let empty = KeySlot {
            len: 0,
            key: [0; KEY_CACHE_KEY],
            rule: u32::MAX,
        };
        KeyCache {
            slots: vec![empty; KEY_CACHE_SLOTS].into_boxed_slice(),
        }
    }

    /// The first slot of `raw`'s pair.
    fn pair(raw: &[u8]) -> usize {
        ((BuildFx.hash_one(raw) as usize) % KEY_CACHE_SLOTS) & !1
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The buffers hold raw lines, decoded values and the rewritten line:
        // event content. Capacities and counts only.
        f.debug_struct("Scratch")
            .field("findings", &self.main.findings.len())
            .field("decoded_capacity", &self.decoded.capacity())
            .field("out_capacity", &self.out.capacity())
            .field("rules_counted", &self.counts.len())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys come from events; show only how full the cache is.
        let used = self.slots.iter().filter(|s| s.len > 0).count();
        write!(f, "KeyCache {{ used: {used} }}")
    }
}

impl std::fmt::Debug for NumToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token's bytes are event content; show nothing of them.
        f.write_str("NumToken")
    }
}

impl Scratch {
    /// Calls `f(rule index, count)` for every rule that redacted something
    /// since the last call, and resets the counts.
    pub fn drain_counts(&mut self, mut f: impl FnMut(usize, u64)) {
        for (i, c) in self.counts.iter_mut().enumerate() {
            if *c > 0 {
                f(i, *c);
                *c = 0;
            }
        }
    }

    /// The total number of redactions since the last drain.
    pub fn pending_total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Replaces this scratch space with a fresh one from `engine`, the
    /// engine that made it, keeping the per-rule counts. After a caught
    /// panic the buffers may be inconsistent, but the counts of what was
    /// redacted before it are true, and whoever drains this scratch next
    /// must still report them.
    pub(in crate::redact) fn renew(&mut self, engine: &Engine) {
        let counts = std::mem::take(&mut self.counts);
        *self = engine.scratch();
        self.counts = counts;
    }
}

impl Engine {
    /// [`Engine::lookup_key`] through the scratch's cache.
    pub(super) fn lookup_key_cached(&self, cache: &RefCell<KeyCache>, raw: &[u8]) -> Option<u32> {
        if raw.is_empty() || raw.len() > KEY_CACHE_KEY {
            return self.lookup_key(raw);
        }
        let i = KeyCache::pair(raw);
        let mut cache = cache.borrow_mut();
        let pair = &mut cache.slots[i..i + 2];
        let holds = |s: &KeySlot| {
            usize::from(s.len) == raw.len() && class::same_short(&s.key[..raw.len()], raw)
        };
        if !holds(&pair[0]) {
            if holds(&pair[1]) {
                pair.swap(0, 1);
            } else {
                let rule = self.lookup_key(raw);
                let mut slot = KeySlot {
                    len: raw.len() as u8,
                    key: [0; KEY_CACHE_KEY],
                    rule: rule.unwrap_or(u32::MAX),
                };
                slot.key[..raw.len()].copy_from_slice(raw);
                pair[1] = pair[0];
                pair[0] = slot;
                return rule;
            }
        }
        (pair[0].rule != u32::MAX).then_some(pair[0].rule)
    }
}

#[cfg(test)]
mod tests {
    use super::{KeyCache, KEY_CACHE_SLOTS};
    use crate::Engine;

    #[test]
    fn two_keys_sharing_a_pair_both_stay_cached() {
        let engine = Engine::builtin().expect("builtin rules");
        let scratch = engine.scratch();
        // Two keys whose hashes pick the same pair of slots: one a rule's
        // key (`dob`), the other no rule's.
        let first = b"dob".to_vec();
        let pair = KeyCache::pair(&first);
        let second = (0..100_000)
            .map(|i| format!("k{i}").into_bytes())
            .find(|k| KeyCache::pair(k) == pair)
            .expect("a key in the same pair");
        let want = (engine.lookup_key(&first), engine.lookup_key(&second));
        assert!(want.0.is_some() && want.1.is_none());
        for _ in 0..3 {
            assert_eq!(engine.lookup_key_cached(&scratch.keys, &first), want.0);
            assert_eq!(engine.lookup_key_cached(&scratch.keys, &second), want.1);
        }
        // Both are held, whichever was used last.
        let cache = scratch.keys.borrow();
        let held = |k: &[u8]| {
            cache.slots[pair..pair + 2]
                .iter()
                .any(|s| &s.key[..usize::from(s.len)] == k)
        };
        assert!(held(&first) && held(&second));
        assert_eq!(cache.slots.len(), KEY_CACHE_SLOTS);
    }

    #[test]
    fn renew_keeps_the_counts() {
        let engine = Engine::builtin().expect("builtin rules");
        let mut scratch = engine.scratch();
        engine.redact(&mut scratch, b"callback 415-555-0132 for SSN 219-09-9999");
        let before = scratch.pending_total();
        assert_eq!(before, 2);
        scratch.renew(&engine);
        assert_eq!(scratch.pending_total(), before);
    }
}
