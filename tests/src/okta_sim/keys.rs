//! RS256 signing keys, the published key set (`/oauth2/v1/keys`) and rotation on demand.
//!
//! Okta rotates its org keys about four times a year in three steps: it publishes the
//! new key, later signs with it, later retires the old one. [`KeysHandle`] does each
//! step when a test says so, so that a relying party's JWKS caching and unknown-`kid`
//! refetch can be exercised. The org also holds one key it never publishes, for tokens
//! that must fail signature lookup.
//!
//! RSA key generation is slow (a second or more for 2048 bits), so tests take key
//! material from a per-process pool ([`KeySource::Shared`]); each org still gets its
//! own random `kid`s, so keys never match across orgs by `kid`.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Org, lock};

/// RSA modulus size of every generated key, as Okta's.
pub const KEY_BITS: usize = 2048;

/// Where key material comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// Generate every key (the binary: a demo org must not share keys with anything).
    Fresh,
    /// Take keys from the per-process pool (tests: generation is slow).
    Shared,
}

/// A key operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// RSA key generation or construction failed.
    #[error("RSA: {0}")]
    Rsa(#[from] rsa::Error),
    /// A key could not be encoded or decoded (DER or PEM).
    #[error("key encoding: {0}")]
    Encoding(String),
    /// Signing failed.
    #[error("JWT: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    /// No published key has this `kid`.
    #[error("no published key has kid {0:?}")]
    UnknownKid(String),
    /// The signing key cannot be retired; activate another first.
    #[error("key {0:?} signs tokens now; activate another key before retiring it")]
    StillSigning(String),
    /// The blocking generation task died.
    #[error("key generation task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// One RSA key pair with its `kid`.
#[derive(Clone)]
pub struct SigningKey {
    /// The `kid` in token headers and the JWKS.
    kid: String,
    /// The private key, for forgeries that need raw material (the public key PEM).
    private: Arc<rsa::PrivateKey>,
    /// The same key, as jsonwebtoken signs with it.
    encoding: EncodingKey,
    /// The modulus, base64url, for the JWK.
    n: String,
    /// The public exponent, base64url, for the JWK.
    e: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn generate_private() -> Result<rsa::PrivateKey, KeyError> {
    Ok(rsa::PrivateKey::new(&mut getrandom::SysRng, KEY_BITS)?)
}

/// Key material of the per-process pool, slot by slot (generated on first use).
fn pooled(slot: usize) -> Result<Arc<rsa::PrivateKey>, KeyError> {
    static POOL: Mutex<Vec<Arc<rsa::PrivateKey>>> = Mutex::new(Vec::new());
    let mut pool = lock(&POOL);
    while pool.len() <= slot {
        pool.push(Arc::new(generate_private()?));
    }
    Ok(pool[slot].clone())
}

/// A fresh random `kid` (Okta's are opaque strings of this shape).
fn random_kid() -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(43)
        .map(char::from)
        .collect()
}

impl SigningKey {
    /// A fresh 2048-bit key with a random `kid` (blocking: seconds in debug builds of
    /// dependencies without the profile override).
    pub fn generate() -> Result<Self, KeyError> {
        Self::from_private(Arc::new(generate_private()?))
    }

    /// A key from `source`'s `slot` (for `Shared`, the pool's; for `Fresh`, new).
    pub fn from_source(source: KeySource, slot: usize) -> Result<Self, KeyError> {
        match source {
            KeySource::Fresh => Self::generate(),
            KeySource::Shared => Self::from_private(pooled(slot)?),
        }
    }

    /// Wraps existing key material under a random `kid`.
    pub fn from_private(private: Arc<rsa::PrivateKey>) -> Result<Self, KeyError> {
        let der = private
            .to_pkcs1_der()
            .map_err(|e| KeyError::Encoding(e.to_string()))?;
        let encoding = EncodingKey::from_rsa_der(der.as_bytes());
        let n = URL_SAFE_NO_PAD.encode(private.n_bytes());
        let e = URL_SAFE_NO_PAD.encode(private.e_bytes());
        Ok(Self {
            kid: random_kid(),
            private,
            encoding,
            n,
            e,
        })
    }

    /// A key from a PEM private key (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let private = rsa::PrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| rsa::PrivateKey::from_pkcs8_pem(pem))
            .map_err(|e| KeyError::Encoding(e.to_string()))?;
        Self::from_private(Arc::new(private))
    }

    /// The public key as jsonwebtoken verifies with it.
    pub fn decoding_key(&self) -> Result<DecodingKey, KeyError> {
        Ok(DecodingKey::from_rsa_components(&self.n, &self.e)?)
    }

    /// Its `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Its public JWK, as Okta publishes it.
    pub fn jwk(&self) -> Value {
        json!({ "kty": "RSA", "alg": "RS256", "kid": self.kid, "use": "sig", "e": self.e, "n": self.n })
    }

    /// The public key as SPKI PEM (the "secret" of the HS256 key-confusion forgery).
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        self.private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Encoding(e.to_string()))
    }

    /// Signs `claims` RS256 with this key and its `kid`; `typ` as given (`None` omits
    /// it, as Okta's ID tokens do).
    pub fn sign(&self, typ: Option<&str>, claims: &impl Serialize) -> Result<String, KeyError> {
        self.sign_claiming(&self.kid, typ, claims)
    }

    /// Signs with this key but puts `kid` in the header (a forgery: the header names a
    /// published key that did not make the signature).
    pub fn sign_claiming(
        &self,
        kid: &str,
        typ: Option<&str>,
        claims: &impl Serialize,
    ) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        header.typ = typ.map(str::to_owned);
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}

/// The org's keys.
#[derive(Debug)]
pub(crate) struct KeySet {
    /// Published keys, oldest first: the JWKS.
    published: Vec<Arc<SigningKey>>,
    /// The key new tokens are signed with (always published).
    signing: Arc<SigningKey>,
    /// A key never published, for tokens whose `kid` no JWKS lists.
    unpublished: Arc<SigningKey>,
    /// The next pool slot a rotation takes.
    next_slot: usize,
}

impl KeySet {
    /// One published signing key and the unpublished one.
    pub(crate) async fn new(source: KeySource) -> Result<Self, KeyError> {
        let (signing, unpublished) = tokio::task::spawn_blocking(move || {
            Ok::<_, KeyError>((
                SigningKey::from_source(source, 0)?,
                SigningKey::from_source(source, 1)?,
            ))
        })
        .await??;
        let signing = Arc::new(signing);
        Ok(Self {
            published: vec![signing.clone()],
            signing,
            unpublished: Arc::new(unpublished),
            next_slot: 2,
        })
    }

    /// Seeds the set with `key` as the only published and signing key.
    pub(crate) fn replace_signing(&mut self, key: SigningKey) {
        let key = Arc::new(key);
        self.published = vec![key.clone()];
        self.signing = key;
    }

    /// The JWKS document.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": self.published.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
    }

    /// The key new tokens are signed with.
    pub(crate) fn signing(&self) -> Arc<SigningKey> {
        self.signing.clone()
    }

    /// The never-published key.
    pub(crate) fn unpublished(&self) -> Arc<SigningKey> {
        self.unpublished.clone()
    }

    /// The published key with `kid`.
    pub(crate) fn published(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.published.iter().find(|k| k.kid == kid).cloned()
    }
}

/// Rotation and inspection of an org's keys.
#[derive(Debug, Clone)]
pub struct KeysHandle {
    /// The org.
    org: Arc<Org>,
}

impl KeysHandle {
    pub(crate) fn new(org: Arc<Org>) -> Self {
        Self { org }
    }

    /// Step 1 of a rotation: generates a key and publishes it beside the current one
    /// (tokens are still signed with the current key). Returns its `kid`.
    pub async fn publish_new(&self) -> Result<String, KeyError> {
        let slot = {
            let mut keys = lock(&self.org.keys);
            keys.next_slot += 1;
            keys.next_slot - 1
        };
        let source = self.org.key_source;
        let key =
            tokio::task::spawn_blocking(move || SigningKey::from_source(source, slot)).await??;
        let kid = key.kid.clone();
        lock(&self.org.keys).published.push(Arc::new(key));
        Ok(kid)
    }

    /// Step 2: signs new tokens with the published key `kid`.
    pub fn activate(&self, kid: &str) -> Result<(), KeyError> {
        let mut keys = lock(&self.org.keys);
        let key = keys
            .published(kid)
            .ok_or_else(|| KeyError::UnknownKid(kid.to_owned()))?;
        keys.signing = key;
        Ok(())
    }

    /// Step 3: removes the key `kid` from the JWKS (not the signing key).
    pub fn retire(&self, kid: &str) -> Result<(), KeyError> {
        let mut keys = lock(&self.org.keys);
        if keys.signing.kid == kid {
            return Err(KeyError::StillSigning(kid.to_owned()));
        }
        let before = keys.published.len();
        keys.published.retain(|k| k.kid != kid);
        if keys.published.len() == before {
            return Err(KeyError::UnknownKid(kid.to_owned()));
        }
        Ok(())
    }

    /// Steps 1 and 2 at once (an abrupt rotation, as after a key compromise): returns
    /// the new `kid`; the old key stays published until [`KeysHandle::retire`].
    pub async fn rotate(&self) -> Result<String, KeyError> {
        let kid = self.publish_new().await?;
        self.activate(&kid)?;
        Ok(kid)
    }

    /// The `kid` new tokens are signed with.
    pub fn signing_kid(&self) -> String {
        lock(&self.org.keys).signing.kid.clone()
    }

    /// The published `kid`s, oldest first.
    pub fn published_kids(&self) -> Vec<String> {
        lock(&self.org.keys)
            .published
            .iter()
            .map(|k| k.kid.clone())
            .collect()
    }

    /// The `kid` of the never-published key.
    pub fn unpublished_kid(&self) -> String {
        lock(&self.org.keys).unpublished.kid.clone()
    }

    /// The JWKS document as `/oauth2/v1/keys` serves it.
    pub fn jwks(&self) -> Value {
        lock(&self.org.keys).jwks()
    }

    /// Signs arbitrary `claims` with the current signing key (for tests that need a
    /// token the endpoints would not mint).
    pub fn sign(&self, typ: Option<&str>, claims: &impl Serialize) -> Result<String, KeyError> {
        let key = lock(&self.org.keys).signing();
        key.sign(typ, claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::okta_sim::testkit::verify_rs256;

    #[test]
    fn a_signed_token_verifies_independently_against_its_jwk() {
        let key = SigningKey::from_source(KeySource::Shared, 0).unwrap();
        let jwks = json!({ "keys": [key.jwk()] });
        let jwt = key.sign(None, &json!({ "sub": "00u1", "iat": 1 })).unwrap();
        let (header, claims) = verify_rs256(&jwt, &jwks).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], key.kid());
        assert!(header.get("typ").is_none(), "ID tokens carry no typ");
        assert_eq!(claims["sub"], "00u1");
        // The JWK is a well-formed RSA signing key.
        let jwk = key.jwk();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["n"].as_str().unwrap())
                .unwrap()
                .len(),
            256
        );
    }

    #[test]
    fn a_token_claiming_another_kid_fails_verification() {
        let a = SigningKey::from_source(KeySource::Shared, 0).unwrap();
        let b = SigningKey::from_source(KeySource::Shared, 1).unwrap();
        let jwks = json!({ "keys": [a.jwk()] });
        let forged = b
            .sign_claiming(a.kid(), None, &json!({ "sub": "x" }))
            .unwrap();
        assert!(verify_rs256(&forged, &jwks).is_err());
    }

    #[test]
    fn pem_round_trip() {
        let key = SigningKey::from_source(KeySource::Shared, 0).unwrap();
        let pem = key
            .private
            .to_pkcs1_pem(LineEnding::LF)
            .map(|p| p.to_string())
            .unwrap();
        let again = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(again.n, key.n);
        assert!(SigningKey::from_pem("not a key").is_err());
    }
}
