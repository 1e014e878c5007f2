//! JWT verification against a JSON Web Key Set, without I/O: the ID tokens of Okta
//! sign-in (OKTA.md §8) and, with other expectations, the Universal Logout JWTs
//! (OKTA.md §7, `typ: global-token-revocation+jwt`).
//!
//! [`verify`] takes a compact JWT, a [`Jwks`] and the [`Expectations`] (issuer,
//! audience, nonce, `typ`, the current time and the allowed clock skew) and returns the
//! claims of a token that passes every check, or the first [`JwtError`] it meets.
//! Only the asymmetric algorithms Okta can use are accepted (RS256, RS384, RS512,
//! ES256, ES384): `none` and the HMAC family are refused before any key is looked at,
//! so a public key can never be used as an HMAC secret. A key is found by the token's
//! `kid`; [`JwtError::UnknownKey`] tells the caller (who owns the key cache) that a
//! refetch of the key set may help.
//!
//! The signature is checked with `jsonwebtoken`'s verifiers (pure-Rust crypto); the
//! header, the claims and the key set are parsed here, strictly, so that every claim
//! check is ours and the clock is the caller's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

/// The signature algorithms accepted, by their JOSE names.
pub const ALLOWED_ALGORITHMS: [&str; 5] = ["RS256", "RS384", "RS512", "ES256", "ES384"];

/// Longest compact JWT accepted: Okta's ID tokens are around 1 KiB; anything far
/// larger is not one and is refused before decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a token was refused. Each variant has a stable [`JwtError::reason`] for audit
/// records; none carries token material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON objects, or a claim of the wrong type.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// `alg` is `none`, an HMAC algorithm, or anything not in [`ALLOWED_ALGORITHMS`].
    #[error("the signature algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    /// No key of the set has the token's `kid` (or the token has none and the set has
    /// several keys): a refetch of the key set may find it.
    #[error("no key of the key set matches the token's key id")]
    UnknownKey,
    /// The key named by `kid` cannot verify this algorithm (wrong type or curve, or a
    /// key pinned to another `alg`, or meant for encryption).
    #[error("the key named by the token cannot verify {0}")]
    KeyMismatch(String),
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// The `typ` header is not the one expected.
    #[error("the token type is not the one expected")]
    WrongType,
    /// `iss` is not the expected issuer.
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    /// `aud` does not contain the expected audience.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// Several audiences and no `azp`, or an `azp` that is not the expected party.
    #[error("the token's authorized party is not this client")]
    WrongAuthorizedParty,
    /// `exp` is past (beyond the allowed skew).
    #[error("the token has expired")]
    Expired,
    /// `iat` is in the future (beyond the allowed skew).
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// `nbf` is in the future (beyond the allowed skew).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// A required claim is absent or empty.
    #[error("the token lacks the claim {0}")]
    MissingClaim(&'static str),
    /// `nonce` is absent or not the one of the request.
    #[error("the token's nonce is not the one of this sign-in")]
    WrongNonce,
}

impl JwtError {
    /// A short, stable code for audit records and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::Malformed(_) => "malformed",
            JwtError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            JwtError::UnknownKey => "unknown_key",
            JwtError::KeyMismatch(_) => "key_mismatch",
            JwtError::BadSignature => "bad_signature",
            JwtError::WrongType => "wrong_type",
            JwtError::WrongIssuer => "wrong_issuer",
            JwtError::WrongAudience => "wrong_audience",
            JwtError::WrongAuthorizedParty => "wrong_authorized_party",
            JwtError::Expired => "expired",
            JwtError::IssuedInFuture => "issued_in_future",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::MissingClaim(_) => "missing_claim",
            JwtError::WrongNonce => "wrong_nonce",
        }
    }
}

/// Why a key set document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the key set is not a JWKS document: {0}")]
pub struct JwksError(&'static str);

/// One usable verification key of a set.
#[derive(Clone)]
struct Key {
    /// Its `kid`, if it has one.
    kid: Option<String>,
    /// `RSA` or `EC`.
    kty: KeyType,
    /// The `alg` the key is pinned to, if any.
    alg: Option<String>,
    /// The key as the verifier takes it.
    decoding: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Rsa,
    /// With its curve's algorithm: P-256 → ES256, P-384 → ES384.
    Ec(&'static str),
}

/// A JSON Web Key Set: the verification keys of an issuer. Keys of other types, keys
/// meant for encryption and malformed keys are skipped, so that one odd entry does not
/// make a whole set unusable.
#[derive(Clone, Default)]
pub struct Jwks {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self
            .keys
            .iter()
            .map(|k| k.kid.as_deref().unwrap_or("-"))
            .collect();
        f.debug_struct("Jwks").field("kids", &kids).finish()
    }
}

impl Jwks {
    /// Parses a JWKS document (`{"keys":[…]}`).
    pub fn parse(document: &[u8]) -> Result<Self, JwksError> {
        let doc: Value = serde_json::from_slice(document).map_err(|_| JwksError("not JSON"))?;
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError("no \"keys\" array"))?;
        Ok(Self {
            keys: list.iter().filter_map(parse_key).collect(),
        })
    }

    /// The `kid`s of the usable keys, in document order (keys without one show as
    /// `None`).
    pub fn kids(&self) -> Vec<Option<&str>> {
        self.keys.iter().map(|k| k.kid.as_deref()).collect()
    }

    /// Whether a key with this `kid` is in the set.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token's `kid`: by `kid` when the token names one; a token without
    /// `kid` only when the set holds exactly one key.
    fn find(&self, kid: Option<&str>) -> Option<&Key> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

fn parse_key(jwk: &Value) -> Option<Key> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    if text("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let kty = match text("kty")? {
        "RSA" => KeyType::Rsa,
        "EC" => KeyType::Ec(match text("crv")? {
            "P-256" => "ES256",
            "P-384" => "ES384",
            _ => return None,
        }),
        _ => return None,
    };
    let decoding = match kty {
        KeyType::Rsa => DecodingKey::from_rsa_components(text("n")?, text("e")?).ok()?,
        KeyType::Ec(_) => DecodingKey::from_ec_components(text("x")?, text("y")?).ok()?,
    };
    Some(Key {
        kid: text("kid").map(str::to_owned),
        kty,
        alg: text("alg").map(str::to_owned),
        decoding,
    })
}

/// What the `typ` header must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypRule<'a> {
    /// Absent, or `JWT` (any case): ID tokens (Okta sends none; others send `JWT`).
    AbsentOrJwt,
    /// Exactly this media type, compared case-insensitively, with or without the
    /// `application/` prefix (RFC 7515 §4.1.9): e.g. `global-token-revocation+jwt`.
    Exactly(&'a str),
}

impl TypRule<'_> {
    fn accepts(&self, typ: Option<&str>) -> bool {
        match (self, typ) {
            (TypRule::AbsentOrJwt, None) => true,
            (TypRule::AbsentOrJwt, Some(t)) => {
                t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("application/jwt")
            }
            (TypRule::Exactly(_), None) => false,
            (TypRule::Exactly(want), Some(t)) => {
                let t = strip_prefix_ci(t, "application/");
                t.eq_ignore_ascii_case(strip_prefix_ci(want, "application/"))
            }
        }
    }
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> &'s str {
    match s.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &s[prefix.len()..],
        _ => s,
    }
}

/// What a token must satisfy. Build one with [`Expectations::id_token`] (OIDC Core
/// §3.1.3.7) or [`Expectations::new`] and adjust the fields.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    /// `iss` must equal this exactly.
    pub issuer: &'a str,
    /// `aud` (a string or an array) must contain this.
    pub audience: &'a str,
    /// When set, `azp` must equal this if present, and must be present when `aud` has
    /// several values (ID tokens: the client id).
    pub authorized_party: Option<&'a str>,
    /// When set, `nonce` must equal this.
    pub nonce: Option<&'a str>,
    /// The `typ` header rule.
    pub typ: TypRule<'a>,
    /// The current time, Unix seconds (the caller's clock).
    pub now: i64,
    /// Allowed clock skew, seconds, applied to `exp`, `iat` and `nbf`.
    pub leeway: i64,
    /// Claims that must be present and non-empty besides `iss`, `aud` and `exp`
    /// (which always are): e.g. `sub`, `iat`, `jti`, `nbf`.
    pub required: &'a [&'static str],
}

impl<'a> Expectations<'a> {
    /// The checks every token gets: issuer, audience, `exp`, `typ` absent or `JWT`,
    /// a leeway of 60 s.
    pub fn new(issuer: &'a str, audience: &'a str, now: i64) -> Self {
        Self {
            issuer,
            audience,
            authorized_party: None,
            nonce: None,
            typ: TypRule::AbsentOrJwt,
            now,
            leeway: 60,
            required: &[],
        }
    }

    /// An OIDC ID token for `client_id` from `issuer` in answer to a request that sent
    /// `nonce`: `sub` and `iat` required, `azp` checked.
    pub fn id_token(issuer: &'a str, client_id: &'a str, nonce: &'a str, now: i64) -> Self {
        Self {
            authorized_party: Some(client_id),
            nonce: Some(nonce),
            required: &["sub", "iat"],
            ..Self::new(issuer, client_id, now)
        }
    }
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The `kid` of the key that verified it.
    pub kid: Option<String>,
    /// The algorithm.
    pub alg: String,
    /// Every claim, as sent.
    pub claims: Map<String, Value>,
}

impl Verified {
    /// A string claim, if present and a string.
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A numeric-date claim, if present and an integer (or a float, truncated).
    pub fn time_claim(&self, name: &str) -> Option<i64> {
        numeric_date(self.claims.get(name)?)
    }
}

fn numeric_date(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// The parts of a compact JWT, decoded but not verified.
struct Parts<'t> {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signing_input: &'t str,
    signature: &'t str,
}

fn json_object(part: &str, what: &'static str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed(what))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(JwtError::Malformed(what)),
    }
}

fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed("too long"));
    }
    let mut it = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(JwtError::Malformed("not three parts"));
    };
    let header = json_object(h, "header")?;
    let claims = json_object(c, "claims")?;
    Ok(Parts {
        header,
        claims,
        signing_input: &token[..h.len() + 1 + c.len()],
        signature: s,
    })
}

fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        _ => return None,
    })
}

/// Reads the header of a token without verifying anything: its `kid`, for a caller
/// that must decide which key set to load. `None` for malformed tokens.
pub fn peek_kid(token: &str) -> Option<String> {
    let parts = split(token).ok()?;
    parts
        .header
        .get("kid")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Verifies `token` against `keys` and `expect`. Checks, in order: shape, algorithm,
/// `typ`, key (by `kid`), signature, then the claims. Claims are never looked at
/// before the signature verifies.
pub fn verify(token: &str, keys: &Jwks, expect: &Expectations<'_>) -> Result<Verified, JwtError> {
    let parts = split(token)?;
    let alg_name = match parts.header.get("alg") {
        Some(Value::String(a)) => a.as_str(),
        _ => return Err(JwtError::Malformed("no alg")),
    };
    let alg =
        algorithm(alg_name).ok_or_else(|| JwtError::UnsupportedAlgorithm(alg_name.to_owned()))?;
    if parts.header.contains_key("crit") {
        // No critical extension is understood here (RFC 7515 §4.1.11).
        return Err(JwtError::Malformed("unsupported crit header"));
    }
    let typ = match parts.header.get("typ") {
        None => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(_) => return Err(JwtError::Malformed("typ is not a string")),
    };
    if !expect.typ.accepts(typ) {
        return Err(JwtError::WrongType);
    }
    let kid = match parts.header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(JwtError::Malformed("kid is not a string")),
    };
    let key = keys.find(kid).ok_or(JwtError::UnknownKey)?;
    let fits = match key.kty {
        KeyType::Rsa => alg_name.starts_with("RS"),
        KeyType::Ec(curve_alg) => curve_alg == alg_name,
    } && key.alg.as_deref().is_none_or(|a| a == alg_name);
    if !fits {
        return Err(JwtError::KeyMismatch(alg_name.to_owned()));
    }
    let ok = jsonwebtoken::crypto::verify(
        parts.signature,
        parts.signing_input.as_bytes(),
        &key.decoding,
        alg,
    )
    .map_err(|_| JwtError::BadSignature)?;
    if !ok {
        return Err(JwtError::BadSignature);
    }
    check_claims(&parts.claims, expect)?;
    Ok(Verified {
        kid: key.kid.clone(),
        alg: alg_name.to_owned(),
        claims: parts.claims,
    })
}

fn check_claims(claims: &Map<String, Value>, expect: &Expectations<'_>) -> Result<(), JwtError> {
    let present = |name: &str| match claims.get(name) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    for name in expect.required {
        if !present(name) {
            return Err(JwtError::MissingClaim(name));
        }
    }
    let time = |name: &'static str| -> Result<Option<i64>, JwtError> {
        match claims.get(name) {
            None => Ok(None),
            Some(v) => numeric_date(v)
                .map(Some)
                .ok_or(JwtError::Malformed("a time claim is not a number")),
        }
    };
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == expect.issuer => {}
        None => return Err(JwtError::MissingClaim("iss")),
        _ => return Err(JwtError::WrongIssuer),
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<_>>>()
            .ok_or(JwtError::Malformed(
                "aud holds something other than strings",
            ))?,
        None => return Err(JwtError::MissingClaim("aud")),
        Some(_) => return Err(JwtError::Malformed("aud is neither a string nor an array")),
    };
    if !audiences.contains(&expect.audience) {
        return Err(JwtError::WrongAudience);
    }
    if let Some(party) = expect.authorized_party {
        match claims.get("azp") {
            Some(Value::String(azp)) if azp == party => {}
            Some(_) => return Err(JwtError::WrongAuthorizedParty),
            None if audiences.len() > 1 => return Err(JwtError::WrongAuthorizedParty),
            None => {}
        }
    }
    let now = expect.now;
    let leeway = expect.leeway.max(0);
    match time("exp")? {
        None => return Err(JwtError::MissingClaim("exp")),
        Some(exp) if now >= exp.saturating_add(leeway) => return Err(JwtError::Expired),
        Some(_) => {}
    }
    if let Some(iat) = time("iat")?
        && iat > now.saturating_add(leeway)
    {
        return Err(JwtError::IssuedInFuture);
    }
    if let Some(nbf) = time("nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(JwtError::NotYetValid);
    }
    if let Some(nonce) = expect.nonce {
        match claims.get("nonce") {
            Some(Value::String(n)) if constant_time_eq(n.as_bytes(), nonce.as_bytes()) => {}
            _ => return Err(JwtError::WrongNonce),
        }
    }
    Ok(())
}

/// Equality without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
