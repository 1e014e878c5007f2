//! `jwt`: compact JWTs through `shared::jwt::verify`, with the expectations of both of
//! its callers in the worker: Okta ID tokens ([`Expectations::id_token`]) and Universal
//! Logout requests (`typ: global-token-revocation+jwt`; `jti`, `sub` and `iat`
//! required; the region's endpoint as audience).
//!
//! The first byte chooses the input's kind:
//! - `T`, then text: the text is the token, verified against the issuer's key set.
//!   `peek_kid` agrees with the header, and a token that verifies satisfies the model
//!   below in everything but the signature (which only a key holder can make: the
//!   seeds hold signed tokens for the mutations to start from).
//! - anything else: the bytes are *drawn* into a token built here ([`Case`]): header
//!   and claim variations (wrong types, wrong issuers and audiences, times around the
//!   leeway and at the `i64` limits, `crit`, embedded `jwk`, non-canonical base64url,
//!   oversized tokens), signed by the issuer's RSA, P-256 or P-384 key, by an
//!   attacker's key, by HMAC with the issuer's public key as the secret, not at all
//!   (`alg: none`), with another token's signature, or with garbage. Then:
//!   - `verify` accepts exactly when an independent model of the rules does;
//!   - a token the key set's owner did not sign never verifies, and is refused before
//!     any claim is looked at (the error is never about `iss`, `aud`, times, …);
//!   - an accepted token reports the header's `alg` and `kid` and the claims as sent.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value, json};
use shared::jwt::{Expectations, Jwks, JwtError, TypRule, peek_kid, verify};

use crate::draw::Draw;
use crate::jwt_keys as k;

/// The issuer every expectation names.
const ISS: &str = "https://acme.okta.com";
/// The OIDC client: the ID token's audience and authorized party.
const CLIENT: &str = "0oa1client";
/// The sign-in request's nonce.
const NONCE: &str = "n-0S6_WzA2Mj";
/// The Universal Logout endpoint: the logout JWT's audience.
const LOGOUT_AUD: &str = "https://api.closedloop.sh/okta/global-token-revocation";
/// The logout JWT's `typ`.
const LOGOUT_TYP: &str = "global-token-revocation+jwt";
/// The claims a logout JWT must carry besides `iss`, `aud` and `exp`.
const LOGOUT_REQUIRED: &[&str] = &["jti", "sub", "iat"];
/// The usual "now".
const NOW: i64 = 1_900_000_000;

/// The algorithms the model accepts, written out rather than taken from `shared`.
const MODEL_ALGORITHMS: [&str; 5] = ["RS256", "RS384", "RS512", "ES256", "ES384"];

/// The issuer's private keys, by what the model knows of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum IssuerKey {
    Rsa,
    P256,
    P384,
}

impl IssuerKey {
    /// Whether this key verifies `alg` at all (its type and curve).
    fn family_fits(self, alg: &str) -> bool {
        match self {
            IssuerKey::Rsa => matches!(alg, "RS256" | "RS384" | "RS512"),
            IssuerKey::P256 => alg == "ES256",
            IssuerKey::P384 => alg == "ES384",
        }
    }

    /// The algorithm it signs with when the header names none it can use.
    fn default_alg(self) -> &'static str {
        match self {
            IssuerKey::Rsa => "RS256",
            IssuerKey::P256 => "ES256",
            IssuerKey::P384 => "ES384",
        }
    }
}

/// The issuer's key set, as the model sees it: usable `kid`s, their key and pinned
/// `alg`. The set also holds an encryption key (`rsa-enc`), an HMAC key (`hmac`) and a
/// P-521 key (`ec-521`), which must all be skipped, so their `kid`s name nothing.
const MODEL_SET: [(&str, IssuerKey, Option<&str>); 5] = [
    ("rsa-1", IssuerKey::Rsa, Some("RS256")),
    ("rsa-any", IssuerKey::Rsa, None),
    ("ec-256", IssuerKey::P256, None),
    ("ec-384", IssuerKey::P384, Some("ES384")),
    ("ec-256-pinned-384", IssuerKey::P256, Some("ES384")),
];

/// The keys, parsed once.
struct Fixture {
    /// The issuer's key set (several keys: a token must name one by `kid`).
    issuer_set: Jwks,
    /// A set of one P-256 key without `kid` (a token without `kid` uses it).
    single_set: Jwks,
    rsa: EncodingKey,
    p256: EncodingKey,
    p384: EncodingKey,
    rogue_rsa: EncodingKey,
    rogue_p256: EncodingKey,
    /// HMAC keyed with the issuer's public RSA key: the key-confusion forgery.
    hmac_public_pem: EncodingKey,
}

fn der(b64: &str) -> Vec<u8> {
    STANDARD.decode(b64).expect("a fixed test key")
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rsa = |kid: &str, extra: Value| {
            let mut jwk =
                json!({ "kty": "RSA", "kid": kid, "n": k::TRUSTED_RSA_N, "e": k::TRUSTED_RSA_E });
            if let (Some(o), Value::Object(e)) = (jwk.as_object_mut(), extra) {
                o.extend(e);
            }
            jwk
        };
        let p256 =
            json!({ "kty": "EC", "crv": "P-256", "x": k::TRUSTED_P256_X, "y": k::TRUSTED_P256_Y });
        let with = |mut jwk: Value, extra: Value| {
            if let (Some(o), Value::Object(e)) = (jwk.as_object_mut(), extra) {
                o.extend(e);
            }
            jwk
        };
        let issuer = json!({ "keys": [
            rsa("rsa-1", json!({ "alg": "RS256", "use": "sig" })),
            rsa("rsa-any", json!({})),
            rsa("rsa-enc", json!({ "use": "enc" })),
            with(p256.clone(), json!({ "kid": "ec-256" })),
            with(p256.clone(), json!({ "kid": "ec-256-pinned-384", "alg": "ES384" })),
            { "kty": "EC", "crv": "P-384", "kid": "ec-384", "alg": "ES384",
              "x": k::TRUSTED_P384_X, "y": k::TRUSTED_P384_Y },
            { "kty": "EC", "crv": "P-521", "kid": "ec-521",
              "x": k::TRUSTED_P384_X, "y": k::TRUSTED_P384_Y },
            { "kty": "oct", "kid": "hmac", "k": URL_SAFE_NO_PAD.encode(k::TRUSTED_RSA_PUBLIC_PEM) },
        ]});
        let issuer_set = Jwks::parse(issuer.to_string().as_bytes()).expect("the issuer's set");
        let model_kids: Vec<Option<&str>> = MODEL_SET.iter().map(|(kid, ..)| Some(*kid)).collect();
        let mut kids = issuer_set.kids();
        kids.sort_unstable();
        let mut want = model_kids;
        want.sort_unstable();
        assert_eq!(kids, want, "the key set skips exactly the unusable keys");
        let single = json!({ "keys": [p256] });
        Fixture {
            issuer_set,
            single_set: Jwks::parse(single.to_string().as_bytes()).expect("the single set"),
            rsa: EncodingKey::from_rsa_der(&der(k::TRUSTED_RSA_DER)),
            p256: EncodingKey::from_ec_der(&der(k::TRUSTED_P256_DER)),
            p384: EncodingKey::from_ec_der(&der(k::TRUSTED_P384_DER)),
            rogue_rsa: EncodingKey::from_rsa_der(&der(k::ROGUE_RSA_DER)),
            rogue_p256: EncodingKey::from_ec_der(&der(k::ROGUE_P256_DER)),
            hmac_public_pem: EncodingKey::from_secret(k::TRUSTED_RSA_PUBLIC_PEM.as_bytes())
                .expect("an HMAC secret"),
        }
    })
}

/// Which set a token is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    Issuer,
    Single,
}

impl Set {
    fn jwks(self) -> &'static Jwks {
        match self {
            Set::Issuer => &fixture().issuer_set,
            Set::Single => &fixture().single_set,
        }
    }

    /// The model's key lookup: the key a `kid` (or its absence) selects, and its pin.
    fn find(self, kid: Option<&str>) -> Option<(IssuerKey, Option<&'static str>)> {
        match (self, kid) {
            (Set::Issuer, Some(kid)) => MODEL_SET
                .iter()
                .find(|(k, ..)| *k == kid)
                .map(|&(_, key, pin)| (key, pin)),
            (Set::Issuer, None) | (Set::Single, Some(_)) => None,
            (Set::Single, None) => Some((IssuerKey::P256, None)),
        }
    }
}

/// Runs every check on `data`.
pub fn check(data: &[u8]) {
    match data.split_first() {
        Some((b'T', token)) => check_text(&String::from_utf8_lossy(token)),
        _ => check_built(&mut Draw::new(data)),
    }
}

/// The expectations of the two callers, in the model's terms too.
#[derive(Debug, Clone, Copy)]
struct Expect {
    logout: bool,
    now: i64,
    leeway: i64,
}

impl Expect {
    fn shared(&self) -> Expectations<'static> {
        if self.logout {
            Expectations {
                typ: TypRule::Exactly(LOGOUT_TYP),
                leeway: self.leeway,
                required: LOGOUT_REQUIRED,
                ..Expectations::new(ISS, LOGOUT_AUD, self.now)
            }
        } else {
            Expectations {
                leeway: self.leeway,
                ..Expectations::id_token(ISS, CLIENT, NONCE, self.now)
            }
        }
    }
}

fn check_text(token: &str) {
    if let Some(kid) = peek_kid(token) {
        let header = token.split('.').next().and_then(decode_object);
        assert_eq!(
            header
                .as_ref()
                .and_then(|h| h.get("kid"))
                .and_then(Value::as_str),
            Some(kid.as_str()),
            "peek_kid disagrees with the header"
        );
    }
    for logout in [false, true] {
        let expect = Expect {
            logout,
            now: NOW,
            leeway: 60,
        };
        if let Ok(v) = verify(token, Set::Issuer.jwks(), &expect.shared()) {
            assert!(
                model_accepts(token, Set::Issuer, Signature::Unknown, &expect),
                "verified a token the model refuses: {token:?} {v:?}"
            );
        }
    }
}

/// Decodes one part as the model reads JWTs: canonical unpadded base64url of a JSON
/// object.
fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    if URL_SAFE_NO_PAD.encode(&bytes) != part {
        return None;
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// Who made a token's signature, as far as the model knows.
#[derive(Debug, Clone, Copy)]
enum Signature<'a> {
    /// Unknown (a token read as text): the model takes a well-formed signature as good
    /// and judges everything else.
    Unknown,
    /// The issuer's `key` signed the signing input with `alg`, giving `bytes`.
    Genuine {
        key: IssuerKey,
        alg: &'a str,
        bytes: &'a [u8],
    },
    /// Nobody holding the set's keys.
    Forged,
}

/// The model's verdict on `token`: whether it must verify against `set` under
/// `expect`, given who signed it.
fn model_accepts(token: &str, set: Set, signature: Signature<'_>, expect: &Expect) -> bool {
    if token.len() > 16 * 1024 {
        return false;
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [h, c, s] = parts[..] else {
        return false;
    };
    let (Some(header), Some(claims)) = (decode_object(h), decode_object(c)) else {
        return false;
    };
    let Some(Value::String(alg)) = header.get("alg") else {
        return false;
    };
    if !MODEL_ALGORITHMS.contains(&alg.as_str()) || header.contains_key("crit") {
        return false;
    }
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(t)) => Some(t.to_ascii_lowercase()),
        Some(_) => return false,
    };
    let typ = typ
        .as_deref()
        .map(|t| t.strip_prefix("application/").unwrap_or(t));
    let typ_ok = if expect.logout {
        typ == Some(LOGOUT_TYP)
    } else {
        typ.is_none_or(|t| t == "jwt")
    };
    if !typ_ok {
        return false;
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return false,
    };
    let Some((key, pin)) = set.find(kid) else {
        return false;
    };
    if !key.family_fits(alg) || pin.is_some_and(|p| p != alg) {
        return false;
    }
    // The signature part must be canonical base64url: other text for the same bytes
    // would make tokens malleable.
    let Some(sig) = URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .filter(|b| URL_SAFE_NO_PAD.encode(b) == s)
    else {
        return false;
    };
    let signed = match signature {
        Signature::Unknown => true,
        Signature::Genuine {
            key: signer,
            alg: signed_alg,
            bytes,
        } => signer == key && signed_alg == alg && bytes == sig.as_slice(),
        Signature::Forged => false,
    };
    signed && claims_ok(&claims, expect)
}

/// A numeric date as the model reads it: an integer, or a float truncated; both
/// clamped to `i64`.
fn model_time(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i)
            } else if n.as_u64().is_some() {
                Some(i64::MAX)
            } else {
                n.as_f64().map(|f| f as i64)
            }
        }
        _ => None,
    }
}

fn claims_ok(c: &Map<String, Value>, e: &Expect) -> bool {
    let present = |name: &str| match c.get(name) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    let required: &[&str] = if e.logout {
        LOGOUT_REQUIRED
    } else {
        &["sub", "iat"]
    };
    if !required.iter().all(|n| present(n)) {
        return false;
    }
    if c.get("iss") != Some(&Value::String(ISS.into())) {
        return false;
    }
    let audience = if e.logout { LOGOUT_AUD } else { CLIENT };
    let audiences: Vec<&str> = match c.get("aud") {
        Some(Value::String(a)) => vec![a],
        // RFC 7519 §4.1.3: an array of strings only.
        Some(Value::Array(l)) => match l.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
            Some(all) => all,
            None => return false,
        },
        _ => return false,
    };
    if !audiences.contains(&audience) {
        return false;
    }
    if !e.logout {
        let azp_ok = match c.get("azp") {
            Some(Value::String(azp)) => azp == CLIENT,
            Some(_) => false,
            None => audiences.len() <= 1,
        };
        if !azp_ok {
            return false;
        }
        if c.get("nonce") != Some(&Value::String(NONCE.into())) {
            return false;
        }
    }
    let leeway = e.leeway.max(0);
    let time = |name: &str| c.get(name).map(model_time);
    let Some(Some(exp)) = time("exp") else {
        return false;
    };
    if e.now >= exp.saturating_add(leeway) {
        return false;
    }
    for name in ["iat", "nbf"] {
        match time(name) {
            None => {}
            Some(None) => return false,
            Some(Some(t)) if t > e.now.saturating_add(leeway) => return false,
            Some(Some(_)) => {}
        }
    }
    true
}

/// Who signs a built token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    /// The issuer's key that the `kid` names (P-256 when it names none).
    IssuerByKid,
    /// One of the issuer's keys, whatever the `kid` says.
    Issuer(IssuerKey),
    /// An attacker's RSA key.
    RogueRsa,
    /// An attacker's P-256 key.
    RogueP256,
    /// HMAC-SHA256 keyed with the issuer's public key (PEM).
    HmacPublicKey,
    /// No signature (`alg: none` style).
    Unsigned,
    /// The issuer's signature over other claims.
    Foreign,
    /// Random bytes.
    Garbage,
}

const SIGNERS: [Signer; 13] = [
    Signer::IssuerByKid,
    Signer::IssuerByKid,
    Signer::IssuerByKid,
    Signer::IssuerByKid,
    Signer::Issuer(IssuerKey::Rsa),
    Signer::Issuer(IssuerKey::P256),
    Signer::Issuer(IssuerKey::P384),
    Signer::RogueRsa,
    Signer::RogueP256,
    Signer::HmacPublicKey,
    Signer::Unsigned,
    Signer::Foreign,
    Signer::Garbage,
];

/// How the compact form is bent after the parts are made (and before signing, so the
/// signature covers the bent text unless the shape changes the signature part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Plain,
    PadHeader,
    PadSignature,
    SignatureTrailingBits,
    ClaimsTrailingBits,
    TrailingNewline,
    FourParts,
    TwoParts,
}

const SHAPES: [Shape; 12] = [
    Shape::Plain,
    Shape::Plain,
    Shape::Plain,
    Shape::Plain,
    Shape::Plain,
    Shape::PadHeader,
    Shape::PadSignature,
    Shape::SignatureTrailingBits,
    Shape::ClaimsTrailingBits,
    Shape::TrailingNewline,
    Shape::FourParts,
    Shape::TwoParts,
];

/// JSON literals for the header's `alg` (`None`: absent).
const ALGS: [Option<&str>; 20] = [
    Some(r#""RS256""#),
    Some(r#""RS384""#),
    Some(r#""RS512""#),
    Some(r#""ES256""#),
    Some(r#""ES384""#),
    Some(r#""ES512""#),
    Some(r#""PS256""#),
    Some(r#""HS256""#),
    Some(r#""HS512""#),
    Some(r#""none""#),
    Some(r#""None""#),
    Some(r#""NONE""#),
    Some(r#""rs256""#),
    Some(r#""RS256 ""#),
    Some(r#""""#),
    Some("256"),
    Some("null"),
    Some(r#"["RS256"]"#),
    Some(r#""\u0052S256""#),
    None,
];

const KIDS: [Option<&str>; 14] = [
    Some(r#""rsa-1""#),
    Some(r#""rsa-any""#),
    Some(r#""ec-256""#),
    Some(r#""ec-384""#),
    Some(r#""ec-256-pinned-384""#),
    Some(r#""rsa-enc""#),
    Some(r#""hmac""#),
    Some(r#""ec-521""#),
    Some(r#""RSA-1""#),
    Some(r#""""#),
    Some("1"),
    Some("null"),
    None,
    None,
];

const TYPS: [Option<&str>; 14] = [
    None,
    None,
    Some(r#""JWT""#),
    Some(r#""jwt""#),
    Some(r#""application/jwt""#),
    Some(r#""global-token-revocation+jwt""#),
    Some(r#""application/global-token-revocation+jwt""#),
    Some(r#""Application/Global-Token-Revocation+JWT""#),
    Some(r#""global-token-revocation""#),
    Some(r#""at+jwt""#),
    Some(r#""application/""#),
    Some(r#""JWT ""#),
    Some(r#""""#),
    Some("5"),
];

/// Other header members: `crit`, and keys or key URLs an attacker might embed (the
/// attacker's own key as `jwk` is added in [`build`]).
const HEADER_EXTRAS: [&str; 8] = [
    "",
    "",
    "",
    "",
    r#","crit":["exp"]"#,
    r#","jku":"https://evil.example/keys""#,
    r#","x5u":"https://evil.example/cert""#,
    r#","cty":"JWT""#,
];

const ISSUERS: [Option<&str>; 8] = [
    Some(r#""https://acme.okta.com""#),
    Some(r#""https://acme.okta.com""#),
    Some(r#""https://acme.okta.com/""#),
    Some(r#""https://ACME.okta.com""#),
    Some(r#""https://evil.okta.com""#),
    Some(r#""""#),
    Some("42"),
    None,
];

const AUDIENCES: [Option<&str>; 14] = [
    Some(r#""0oa1client""#),
    Some(r#""0oa1client""#),
    Some(r#""https://api.closedloop.sh/okta/global-token-revocation""#),
    Some(r#""https://api.closedloop.sh/okta/global-token-revocation""#),
    Some(r#"["0oa1client"]"#),
    Some(r#"["0oa1client","other"]"#),
    Some(r#"["https://api.closedloop.sh/okta/global-token-revocation"]"#),
    Some(r#"["other"]"#),
    Some(r#"["0oa1client",5]"#),
    Some("[]"),
    Some(r#""0OA1CLIENT""#),
    Some(r#""https://eu.api.closedloop.sh/okta/global-token-revocation""#),
    Some("5"),
    None,
];

const AZPS: [Option<&str>; 5] = [
    None,
    None,
    Some(r#""0oa1client""#),
    Some(r#""other""#),
    Some("7"),
];

const SUBS: [Option<&str>; 6] = [
    Some(r#""00u1""#),
    Some(r#""0oa1client""#),
    Some(r#""""#),
    Some("null"),
    Some("1"),
    None,
];

const NONCES: [Option<&str>; 6] = [
    Some(r#""n-0S6_WzA2Mj""#),
    Some(r#""n-0S6_WzA2Mj""#),
    Some(r#""n-0S6_WzA2Mk""#),
    Some(r#""""#),
    Some("5"),
    None,
];

const JTIS: [Option<&str>; 5] = [
    Some(r#""j-1""#),
    Some(r#""j-1""#),
    Some(r#""""#),
    Some("null"),
    None,
];

/// Offsets from "now" around the leeways in use.
const OFFSETS: [i64; 18] = [
    -1_000_000, -3601, -301, -300, -299, -61, -60, -59, -1, 0, 1, 59, 60, 61, 299, 300, 301, 3600,
];

/// A time claim: absent, relative to `now`, or one of the odd values.
fn time_claim(d: &mut Draw<'_>, now: i64) -> Option<String> {
    match d.byte() % 8 {
        0 => None,
        1 => Some(
            d.pick(&[
                "9223372036854775807",
                "-9223372036854775808",
                "18446744073709551615",
                "1e300",
                "-1e300",
                "1900000000.9",
                "\"1900003600\"",
                "true",
                "null",
                "[1900003600]",
            ])
            .to_owned(),
        ),
        2 => Some(d.i64().to_string()),
        3 => Some(format!("{}.5", now.saturating_add(d.pick(&OFFSETS)))),
        _ => Some(now.saturating_add(d.pick(&OFFSETS)).to_string()),
    }
}

/// Writes `{"a":…,"b":…}` from the members present.
fn object(members: &[(&str, Option<String>)], extra: &str) -> String {
    let body: Vec<String> = members
        .iter()
        .filter_map(|(name, v)| v.as_ref().map(|v| format!("\"{name}\":{v}")))
        .collect();
    format!("{{{}{}}}", body.join(","), extra)
}

/// One built token and what the model needs to judge it.
#[derive(Debug)]
struct Case {
    token: String,
    set: Set,
    /// `Some(key, alg, signature)`: the issuer's `key` signed the signing input with
    /// `alg`; `None`: nobody holding the set's keys did.
    signed_by: Option<(IssuerKey, String, Vec<u8>)>,
}

fn build(d: &mut Draw<'_>, now: i64) -> Case {
    let set = if d.one_in(6) {
        Set::Single
    } else {
        Set::Issuer
    };
    let alg = d.pick(&ALGS);
    let kid = d.pick(&KIDS);
    let typ = d.pick(&TYPS);
    let extra = if d.one_in(8) {
        format!(
            r#","jwk":{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            k::ROGUE_P256_X,
            k::ROGUE_P256_Y
        )
    } else {
        d.pick(&HEADER_EXTRAS).to_owned()
    };
    let header = match d.byte() % 32 {
        0 => "[]".to_owned(),
        1 => "{".to_owned(),
        _ => object(
            &[
                ("alg", alg.map(str::to_owned)),
                ("kid", kid.map(str::to_owned)),
                ("typ", typ.map(str::to_owned)),
            ],
            if alg.is_none() && kid.is_none() && typ.is_none() {
                extra.trim_start_matches(',')
            } else {
                &extra
            },
        ),
    };
    let pad = match d.byte() % 16 {
        0 => 12_000,
        1 => d.byte().into(),
        _ => 0,
    };
    let claim_extra = if pad > 0 {
        format!(",\"pad\":\"{}\"", "x".repeat(pad))
    } else {
        String::new()
    };
    let members = [
        ("iss", d.pick(&ISSUERS).map(str::to_owned)),
        ("aud", d.pick(&AUDIENCES).map(str::to_owned)),
        ("azp", d.pick(&AZPS).map(str::to_owned)),
        ("sub", d.pick(&SUBS).map(str::to_owned)),
        ("nonce", d.pick(&NONCES).map(str::to_owned)),
        ("jti", d.pick(&JTIS).map(str::to_owned)),
        ("exp", time_claim(d, now)),
        ("iat", time_claim(d, now)),
        (
            "nbf",
            if d.one_in(3) {
                time_claim(d, now)
            } else {
                None
            },
        ),
    ];
    let claims = match d.byte() % 32 {
        0 => "null".to_owned(),
        1 => "[1]".to_owned(),
        _ => {
            let all_absent = members.iter().all(|(_, v)| v.is_none());
            object(
                &members,
                if all_absent {
                    claim_extra.trim_start_matches(',')
                } else {
                    &claim_extra
                },
            )
        }
    };
    let shape = d.pick(&SHAPES);
    let signer = d.pick(&SIGNERS);

    let mut h = URL_SAFE_NO_PAD.encode(&header);
    let mut c = URL_SAFE_NO_PAD.encode(&claims);
    match shape {
        Shape::PadHeader => h.push('='),
        Shape::ClaimsTrailingBits => bend_last(&mut c),
        _ => {}
    }
    let input = format!("{h}.{c}");

    // The issuer's key a signer uses, and the algorithm: the header's when the key can
    // sign it, else the key's default.
    let header_alg = serde_json::from_str::<Value>(&header)
        .ok()
        .and_then(|v| v.get("alg").and_then(Value::as_str).map(str::to_owned));
    let header_kid = serde_json::from_str::<Value>(&header)
        .ok()
        .and_then(|v| v.get("kid").and_then(Value::as_str).map(str::to_owned));
    let issuer_key = match signer {
        Signer::IssuerByKid => Some(
            set.find(header_kid.as_deref())
                .map_or(IssuerKey::P256, |(key, _)| key),
        ),
        Signer::Issuer(key) => Some(key),
        _ => None,
    };
    let alg_for = |key: IssuerKey| {
        header_alg
            .as_deref()
            .filter(|a| key.family_fits(a))
            .unwrap_or(key.default_alg())
            .to_owned()
    };
    let (signature, signed_by) = match (signer, issuer_key) {
        (_, Some(key)) => {
            let alg = alg_for(key);
            let signature = sign(&input, Private::Issuer(key), &alg);
            let bytes = URL_SAFE_NO_PAD
                .decode(&signature)
                .expect("jsonwebtoken writes base64url");
            (signature, Some((key, alg, bytes)))
        }
        (Signer::RogueRsa, None) => {
            let alg = alg_for(IssuerKey::Rsa);
            (sign(&input, Private::RogueRsa, &alg), None)
        }
        (Signer::RogueP256, None) => (sign(&input, Private::RogueP256, "ES256"), None),
        (Signer::HmacPublicKey, None) => (sign(&input, Private::HmacPublicPem, "HS256"), None),
        (Signer::Foreign, None) => {
            // The right key and algorithm, over the same header and other claims.
            let key = set
                .find(header_kid.as_deref())
                .map_or(IssuerKey::P256, |(k, _)| k);
            let other = format!("{h}.{}", URL_SAFE_NO_PAD.encode(format!("{claims} ")));
            (sign(&other, Private::Issuer(key), &alg_for(key)), None)
        }
        (Signer::Garbage, None) => (URL_SAFE_NO_PAD.encode(d.text(300)), None),
        (_, None) => (String::new(), None),
    };
    let mut s = signature;
    match shape {
        Shape::PadSignature => s.push('='),
        Shape::SignatureTrailingBits => bend_last(&mut s),
        _ => {}
    }
    let token = match shape {
        Shape::TrailingNewline => format!("{input}.{s}\n"),
        Shape::FourParts => format!("{input}.{s}.{s}"),
        Shape::TwoParts => input,
        _ => format!("{input}.{s}"),
    };
    Case {
        token,
        set,
        signed_by,
    }
}

/// Sets the lowest bit of the last base64url character: the same bytes when that bit
/// is unused (non-canonical text), other bytes otherwise.
fn bend_last(part: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if let Some(last) = part.pop() {
        let i = ALPHABET
            .iter()
            .position(|&a| char::from(a) == last)
            .unwrap_or(0);
        part.push(char::from(ALPHABET[i | 1]));
    }
}

/// A private key of the fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Private {
    Issuer(IssuerKey),
    RogueRsa,
    RogueP256,
    HmacPublicPem,
}

/// Signs `input`. Every algorithm here is deterministic (RSA PKCS#1 v1.5, ECDSA with
/// RFC 6979 nonces, HMAC), so signatures are cached: an RSA-2048 signature costs
/// milliseconds in pure-Rust crypto, and mutations often rebuild a token already seen.
fn sign(input: &str, key: Private, alg: &str) -> String {
    type Cache = HashMap<(Private, String, String), String>;
    thread_local! {
        static CACHE: RefCell<Cache> = RefCell::new(HashMap::new());
    }
    let cache_key = (key, alg.to_owned(), input.to_owned());
    if let Some(hit) = CACHE.with(|c| c.borrow().get(&cache_key).cloned()) {
        return hit;
    }
    let fx = fixture();
    let encoding = match key {
        Private::Issuer(IssuerKey::Rsa) => &fx.rsa,
        Private::Issuer(IssuerKey::P256) => &fx.p256,
        Private::Issuer(IssuerKey::P384) => &fx.p384,
        Private::RogueRsa => &fx.rogue_rsa,
        Private::RogueP256 => &fx.rogue_p256,
        Private::HmacPublicPem => &fx.hmac_public_pem,
    };
    let algorithm = match alg {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        _ => Algorithm::HS256,
    };
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), encoding, algorithm)
        .expect("signing with a test key");
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 4096 {
            c.clear();
        }
        c.insert(cache_key, signature.clone());
    });
    signature
}

/// Errors that may only come after the signature verified.
fn is_claims_error(e: &JwtError) -> bool {
    matches!(
        e,
        JwtError::WrongIssuer
            | JwtError::WrongAudience
            | JwtError::WrongAuthorizedParty
            | JwtError::Expired
            | JwtError::IssuedInFuture
            | JwtError::NotYetValid
            | JwtError::MissingClaim(_)
            | JwtError::WrongNonce
    ) || *e == JwtError::Malformed("a time claim is not a number")
        || *e == JwtError::Malformed("aud is neither a string nor an array")
        || *e == JwtError::Malformed("aud holds something other than strings")
}

fn check_built(d: &mut Draw<'_>) {
    let now = match d.byte() % 16 {
        0 => i64::MAX,
        1 => i64::MIN,
        2 => 0,
        3 => d.i64(),
        _ => NOW,
    };
    let leeway = match d.byte() % 16 {
        0 => 0,
        1 => -5,
        2 => i64::MAX,
        3 => i64::MIN,
        4 | 5 => 300,
        _ => 60,
    };
    let case = build(d, now);
    let signature = match &case.signed_by {
        Some((key, alg, bytes)) => Signature::Genuine {
            key: *key,
            alg,
            bytes,
        },
        None => Signature::Forged,
    };
    for logout in [false, true] {
        let expect = Expect {
            logout,
            now,
            leeway,
        };
        let got = verify(&case.token, case.set.jwks(), &expect.shared());
        let want = model_accepts(&case.token, case.set, signature, &expect);
        assert_eq!(
            got.is_ok(),
            want,
            "verify says {got:?}, the model says {want} for {case:?} ({})",
            if logout { "logout" } else { "ID token" }
        );
        match got {
            Ok(v) => {
                let header = case.token.split('.').next().and_then(decode_object);
                let claims = case.token.split('.').nth(1).and_then(decode_object);
                let header = header.expect("an accepted header decodes");
                assert_eq!(Some(&Value::String(v.alg.clone())), header.get("alg"));
                if case.set == Set::Issuer {
                    assert_eq!(v.kid.as_deref(), header.get("kid").and_then(Value::as_str));
                }
                assert_eq!(Some(v.claims), claims);
            }
            Err(e) if case.signed_by.is_none() => {
                assert!(
                    !is_claims_error(&e),
                    "claims were judged before the signature: {e:?} for {case:?}"
                );
            }
            Err(_) => {}
        }
    }
}
