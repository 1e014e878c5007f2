//! Sealing secrets at rest under the region key (DESIGN.md, Stores): AES-256-GCM with a
//! fresh 96-bit random nonce per message, stored as `nonce ‖ ciphertext ‖ tag`.
//!
//! Every sealed value is bound to what it belongs to by the associated data (a
//! [`Purpose`] and the row it lives in, e.g. the workspace's `team_id`), so a ciphertext
//! copied into another row or used for another purpose does not open. The key id
//! stored beside each ciphertext ([`RegionKey::id`], derived from the key) names the key
//! that sealed it, so that keys can be rotated by re-sealing row by row: during a
//! rotation the region holds its current key (which seals) and its previous keys (which
//! only open), and `region-worker keys reencrypt` ([`crate::rekey`]) moves every row to
//! the current key.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Length of the random nonce prepended to every ciphertext.
const NONCE_LEN: usize = 12;
/// Length of the GCM tag appended to every ciphertext.
const TAG_LEN: usize = 16;

/// What a sealed value is, part of its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A workspace's Okta client secret (`okta_settings.client_secret_sealed`).
    OktaClientSecret,
    /// The ID token kept with a browser session for the sign-out `id_token_hint`.
    SessionIdToken,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::OktaClientSecret => "okta-client-secret",
            Purpose::SessionIdToken => "session-id-token",
        }
    }
}

/// Why a key could not be used or a value could not be opened. Neither carries key or
/// plaintext material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The configured key is not 32 bytes in hex or base64.
    #[error("the region encryption key must be 32 bytes, written as 64 hex digits or in base64")]
    BadKey,
    /// The value was sealed under another key (its key id differs).
    #[error("the value was sealed under key {0}, which this worker does not hold")]
    UnknownKey(String),
    /// The ciphertext is corrupt, truncated, or bound to another row or purpose.
    #[error("the sealed value does not open")]
    Open,
}

/// The region's data-encryption key. `Debug` never prints it.
#[derive(Clone)]
pub struct RegionKey {
    /// The cipher, keyed.
    cipher: Aes256Gcm,
    /// `k1-` and the first 8 bytes of `SHA-256("closedloop-region-key-id" ‖ key)` in hex:
    /// names the key without revealing anything about it.
    id: String,
    /// Keys the region sealed with before a rotation, by id: they still open what they
    /// sealed until every row is re-sealed, but never seal anything new.
    previous: Vec<(String, Aes256Gcm)>,
}

impl fmt::Debug for RegionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegionKey")
            .field("id", &self.id)
            .field(
                "previous",
                &self.previous.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .field("key", &"[redacted]")
            .finish()
    }
}

impl RegionKey {
    /// Parses a key written as 64 hex digits or as base64 (standard or URL-safe,
    /// padded or not) of exactly 32 bytes. Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| CryptoError::BadKey)?
        } else {
            [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or(CryptoError::BadKey)?
        };
        Self::from_bytes(&bytes)
    }

    /// A key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        let cipher = Aes256Gcm::new_from_slice(bytes).map_err(|_| CryptoError::BadKey)?;
        let mut h = Sha256::new();
        h.update(b"closedloop-region-key-id\n");
        h.update(bytes);
        let id = format!("k1-{}", hex::encode(&h.finalize()[..8]));
        Ok(Self {
            cipher,
            id,
            previous: Vec::new(),
        })
    }

    /// This key, also able to open values sealed under `previous` keys (a rotation in
    /// progress). A previous key equal to the current one is ignored.
    pub fn with_previous(mut self, previous: impl IntoIterator<Item = RegionKey>) -> Self {
        for key in previous {
            if !self.holds(&key.id) {
                self.previous.push((key.id, key.cipher));
            }
        }
        self
    }

    /// The key id stored beside every value this key seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether a value sealed under `key_id` opens: the current or a previous key.
    pub fn holds(&self, key_id: &str) -> bool {
        key_id == self.id || self.previous.iter().any(|(id, _)| id == key_id)
    }

    /// Seals `plaintext` for `purpose` in the row named by `context` (e.g. a team id).
    pub fn seal(&self, purpose: Purpose, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce_bytes = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce_bytes);
        let nonce = Nonce::from(nonce_bytes);
        let aad = associated_data(purpose, context);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            // AES-GCM encryption fails only for messages over 64 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a value sealed with [`RegionKey::seal`] under the key `key_id` (the current
    /// or a previous one), for the same `purpose` and `context`.
    pub fn open(
        &self,
        key_id: &str,
        purpose: Purpose,
        context: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let cipher = if key_id == self.id {
            &self.cipher
        } else {
            self.previous
                .iter()
                .find(|(id, _)| id == key_id)
                .map(|(_, cipher)| cipher)
                .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?
        };
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Open);
        }
        let (nonce_bytes, body) = sealed.split_at(NONCE_LEN);
        let nonce_array: [u8; NONCE_LEN] = nonce_bytes.try_into().map_err(|_| CryptoError::Open)?;
        let aad = associated_data(purpose, context);
        cipher
            .decrypt(
                &Nonce::from(nonce_array),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Open)
    }
}

fn associated_data(purpose: Purpose, context: &str) -> Vec<u8> {
    format!("closedloop-seal-v1\n{}\n{context}", purpose.label()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn keys_parse_from_hex_and_base64_and_nothing_else() {
        let a = RegionKey::parse(HEX).unwrap();
        let raw = hex::decode(HEX).unwrap();
        for text in [
            STANDARD.encode(&raw),
            URL_SAFE_NO_PAD.encode(&raw),
            format!("  {}\n", STANDARD.encode(&raw)),
        ] {
            assert_eq!(RegionKey::parse(&text).unwrap().id(), a.id(), "{text}");
        }
        for bad in [
            "",
            "00",
            &HEX[..62],
            &STANDARD.encode([0u8; 16]),
            "not a key at all!",
        ] {
            assert_eq!(
                RegionKey::parse(bad).unwrap_err(),
                CryptoError::BadKey,
                "{bad}"
            );
        }
        assert!(a.id().starts_with("k1-") && a.id().len() == 19);
        assert!(!format!("{a:?}").contains("0001"));
    }

    #[test]
    fn sealed_values_open_only_for_their_key_purpose_and_row() {
        let key = RegionKey::parse(HEX).unwrap();
        let sealed = key.seal(Purpose::OktaClientSecret, "team-1", b"s3cret");
        assert_eq!(sealed.len(), NONCE_LEN + 6 + TAG_LEN);
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        let open = |k: &RegionKey, p, ctx, s: &[u8]| k.open(&key.id, p, ctx, s);
        assert_eq!(
            open(&key, Purpose::OktaClientSecret, "team-1", &sealed).unwrap(),
            b"s3cret"
        );
        assert_eq!(
            open(&key, Purpose::OktaClientSecret, "team-2", &sealed),
            Err(CryptoError::Open)
        );
        assert_eq!(
            open(&key, Purpose::SessionIdToken, "team-1", &sealed),
            Err(CryptoError::Open)
        );
        let mut flipped = sealed.clone();
        flipped[NONCE_LEN] ^= 1;
        assert_eq!(
            open(&key, Purpose::OktaClientSecret, "team-1", &flipped),
            Err(CryptoError::Open)
        );
        assert_eq!(
            open(&key, Purpose::OktaClientSecret, "team-1", &sealed[..10]),
            Err(CryptoError::Open)
        );
        let other = RegionKey::from_bytes(&[7u8; 32]).unwrap();
        assert!(matches!(
            other.open(key.id(), Purpose::OktaClientSecret, "team-1", &sealed),
            Err(CryptoError::UnknownKey(_))
        ));
        // A fresh nonce per message.
        assert_ne!(
            key.seal(Purpose::OktaClientSecret, "team-1", b"s3cret"),
            sealed
        );
    }

    #[test]
    fn previous_keys_open_but_never_seal() {
        let old = RegionKey::from_bytes(&[1u8; 32]).unwrap();
        let sealed_old = old.seal(Purpose::OktaClientSecret, "team-1", b"old");
        let current = RegionKey::from_bytes(&[2u8; 32])
            .unwrap()
            .with_previous([old.clone(), RegionKey::from_bytes(&[2u8; 32]).unwrap()]);
        assert!(current.holds(old.id()) && current.holds(current.id()));
        assert_eq!(
            current
                .open(old.id(), Purpose::OktaClientSecret, "team-1", &sealed_old)
                .unwrap(),
            b"old"
        );
        // New values are sealed under the current key only.
        let sealed_new = current.seal(Purpose::OktaClientSecret, "team-1", b"new");
        assert_eq!(
            old.open(old.id(), Purpose::OktaClientSecret, "team-1", &sealed_new),
            Err(CryptoError::Open)
        );
        assert!(format!("{current:?}").contains(old.id()));
    }
}
