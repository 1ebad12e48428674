//! Keyed pseudonyms: HMAC-SHA256 over the category and the normalised value.
//!
//! A plain hash of an SSN or phone number is reversible by enumerating the
//! few billion candidates; a keyed hash is not without the key. The key is
//! read from a file, must be at least 32 bytes, and is never printed: its
//! `Debug` output says only how long it is.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::Error;

/// The minimum key length in bytes (the HMAC-SHA256 block security level).
pub const MIN_KEY_BYTES: usize = 32;

/// A pseudonym key.
///
/// Holds the HMAC state already keyed, not the key bytes: keying hashes the
/// key's inner and outer pads (two SHA-256 blocks), and doing that once here
/// instead of for every token halves the cost of a pseudonym.
#[derive(Clone)]
pub struct PseudonymKey {
    keyed: Hmac<Sha256>,
    len: usize,
    ephemeral: bool,
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PseudonymKey({} bytes{})",
            self.len,
            if self.ephemeral { ", ephemeral" } else { "" }
        )
    }
}

impl PseudonymKey {
    /// Reads a key file. Trailing newlines are not part of the key.
    pub fn from_file(path: &Path) -> Result<PseudonymKey, Error> {
        let mut key = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            key.pop();
        }
        PseudonymKey::from_bytes(key).map_err(|e| Error::key(format!("{}: {e}", path.display())))
    }

    /// A key from bytes, refused when shorter than [`MIN_KEY_BYTES`].
    pub fn from_bytes(key: Vec<u8>) -> Result<PseudonymKey, String> {
        if key.len() < MIN_KEY_BYTES {
            return Err(format!(
                "key is {} bytes; at least {MIN_KEY_BYTES} are required",
                key.len()
            ));
        }
        Ok(PseudonymKey::keyed(&key, false))
    }

    /// A random key for this process only: tokens correlate within one run
    /// and nowhere else. Used when no key file is configured.
    pub fn ephemeral() -> PseudonymKey {
        let mut key = vec![0u8; MIN_KEY_BYTES];
        rand::fill(&mut key[..]);
        PseudonymKey::keyed(&key, true)
    }

    fn keyed(key: &[u8], ephemeral: bool) -> PseudonymKey {
        PseudonymKey {
            keyed: <Hmac<Sha256> as Mac>::new_from_slice(key)
                .expect("HMAC accepts keys of any length"),
            len: key.len(),
            ephemeral,
        }
    }

    /// Whether this key was generated for this process.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// The first 4 bytes of HMAC(key, tag || 0 || value) as 8 hex digits.
    pub fn token(&self, tag: &str, value: &[u8]) -> [u8; 8] {
        let mut mac = self.keyed.clone();
        mac.update(tag.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        let out = mac.finalize().into_bytes();
        let mut hex = [0u8; 8];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for i in 0..4 {
            hex[2 * i] = HEX[usize::from(out[i] >> 4)];
            hex[2 * i + 1] = HEX[usize::from(out[i] & 0xf)];
        }
        hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_refused_and_debug_hides_the_key() {
        assert!(PseudonymKey::from_bytes(vec![7; 31]).is_err());
        let k =
            PseudonymKey::from_bytes(b"0123456789abcdef0123456789abcdefSECRET".to_vec()).unwrap();
        assert!(!format!("{k:?}").contains("SECRET"));
        assert_eq!(
            k.token("NAME", b"JOHN SMITH"),
            k.token("NAME", b"JOHN SMITH")
        );
        assert_ne!(
            k.token("NAME", b"JOHN SMITH"),
            k.token("NAME", b"JANE SMITH")
        );
        assert_ne!(k.token("NAME", b"X"), k.token("SSN", b"X"));
    }

    /// The token is HMAC-SHA256 as RFC 2104 defines it, so tokens made by
    /// another tool with the same key correlate with scrubs' (the expected
    /// value is Python's `hmac.new(key, b"NAME\x00JOHN SMITH", sha256)`).
    /// Pins the pre-keyed state against a change of the message layout.
    #[test]
    fn token_is_standard_hmac_sha256() {
        let k =
            PseudonymKey::from_bytes(b"0123456789abcdef0123456789abcdefSECRET".to_vec()).unwrap();
        assert_eq!(&k.token("NAME", b"JOHN SMITH"), b"6a51db40");
        // Cloning the keyed state must not carry one token's input into the next.
        assert_eq!(&k.token("NAME", b"JOHN SMITH"), b"6a51db40");
    }
}
