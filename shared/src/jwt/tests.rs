//! Unit tests of JWT verification: every check, every forgery we know of (`none`,
//! HMAC with the public key as secret, a `kid` naming another key, a signature over
//! other claims), and both key families, with fixed test keys.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use super::*;

/// A 2048-bit RSA test key (PKCS#1 DER), generated for these tests only.
const RSA_DER: &str = "MIIEowIBAAKCAQEAtjbf5mHji/72p5eUP/G5pWxYtFBp+0vaQzp44WlmUAK6kkBl2EJtCc/2MU6J0k5280sAD4LTPe4qSKS717h9VP80NH0mz0QGBVjHG3GjGfOVNwGnMEX3CDLOKGRTyEMZCvwCVrtPkOEkMkZTpV9k/NKEFYX8LoTN/yQUTyCzfihCoCeNcX6TvaYaYMHdSfY2UaT3qznFsQzd8tq4qrcb/qhlgFyriDKGyrfxo1CehmP6C31h1kFgbaHVfs1/3k91avj48XV6RFEKraFDL6ce5vAcqY/MT7MLQsdJdLBdBqNVJ3vBNFUtaOUtO/2c5XALCeEakl5pVmyxSlaNamkjiwIDAQABAoIBAALNl/khnVTOY01hGOjXfWqtfSj+S1DNNSmaE1eyGRuw2bj13vCNUHpkEfJCI/9NAMKADdJHpVKP6FfCUQCxIRx1b9Wu4RlkHb2AFCDQ56rC6tAn6TYjL6/4ymXGlJNf6jTOMiTrbSMRDX/5QY/IAHoXxUGNOPixR0bwYyZztlVE9IZvis4gi0fvhWGwnbTeXpFQQ6FOxsZFguGVJrSlYLD1islyGGTcYtEEy7GbMpDvIbJyoy0MP1BvUpF3/op/U1oU9fJLyJxqBsdTrq/Mc9FBAvDurvV8+0vBIs8g8vP4//W2/ZqkDAW880BtnZ+Pt/tFhczWUUK7jXo+2ZEcuYECgYEA6VPY/y7Y/V75R2Ofq5C7pIQHhg/ittEIfsVmDM7HNpC+BnGaXZByVgTHiX5/b+bdiwxfFgn9EB5IfxdDyXUi0s0lnPLcA8syBvn2OJebY+dky58RKcSiirpQQn9+R2q4IgKFxOlQysMrwfvwOsbH7oX25M8Y40fyQOsfEFfe8HECgYEAx+uO59hb6Ea/f1jcHtKNnJKRHNuWZXlP9wjJSV2JQ1e6miCfsPKFzFkFaPwiAYNIoZKxsIbpZBA9P5F/XBunWm+a9SoHJMgPvgzPYoJzkpEC7IbqCNdy+BmMn98bBHJu0fcigodxKSu9ngXXaw8ISCfhO2ca3UiZ0sZlAAIYEbsCgYEAsgMWexny0tuys5R+LRavEkTouI9GGNRB9vYDdaIMusSTNbdWXivmD1p2IaAw+d7ZB0zY/qeAOtvf05acUQbdGpcJK0TeNsa/1DLAd0yzcPUJIZCqN4OdvtmGgjVi0nnJIalrBWA8E3Xz3HuqPC2MO55ZTxfxlPU/DehUOtPPcwECgYBQCSjr/n1E71Xo6K0vFcIlxbOcpvh95WQzFOxol67FLBEDdT4ZO+5+0cDNt+rxShrAvJawgkJbkfjDQz+Go3eLSBT0Q4AapJFQ15YK7QjRy4YtJRH6ui5HzwqyUkJhtGJTYqoJMaoG/oDqC5KjRKBfKsAL5QonPtJ+RHjY2P3D0wKBgE+SDtGxpQziN3PiAoEZ+bKZswNu1kZA66Qwi0J4lE8O3s5cJjpwyId4OCQ6BWRwNDwPsVEQ+oy3xsPHUHPGNE6o3Rtn3TgS7+6gOgzzsMmuUCw1Y7aX2T5U468PPFe52ZE6zuC31D3ENgs8NUbafTMg3GDd+oJf+38Z1ER2DWGU";
/// Its modulus, base64url.
const RSA_N: &str = "tjbf5mHji_72p5eUP_G5pWxYtFBp-0vaQzp44WlmUAK6kkBl2EJtCc_2MU6J0k5280sAD4LTPe4qSKS717h9VP80NH0mz0QGBVjHG3GjGfOVNwGnMEX3CDLOKGRTyEMZCvwCVrtPkOEkMkZTpV9k_NKEFYX8LoTN_yQUTyCzfihCoCeNcX6TvaYaYMHdSfY2UaT3qznFsQzd8tq4qrcb_qhlgFyriDKGyrfxo1CehmP6C31h1kFgbaHVfs1_3k91avj48XV6RFEKraFDL6ce5vAcqY_MT7MLQsdJdLBdBqNVJ3vBNFUtaOUtO_2c5XALCeEakl5pVmyxSlaNamkjiw";
/// A P-256 test key (PKCS#8 DER), generated for these tests only.
const EC_DER: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg6P+M5wjLusovOZG4drW4x93WqIPOX668+LEwdx7XhhuhRANCAARQj6Pb9JPcNbl+q7DWujVJjhJ++9cp2T/Xw2tXt7YmVOIkUpToBsJfLCOxnvXSDDQHDgizW26h1A4AAg/VZEeX";
/// Its public point.
const EC_X: &str = "UI-j2_ST3DW5fquw1ro1SY4SfvvXKdk_18NrV7e2JlQ";
const EC_Y: &str = "4iRSlOgGwl8sI7Ge9dIMNAcOCLNbbqHUDgACD9VkR5c";

const ISS: &str = "https://acme.okta.com";
const CLIENT: &str = "0oa1client";
const NONCE: &str = "n-0S6_WzA2Mj";
const NOW: i64 = 1_900_000_000;

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_der(&STANDARD.decode(RSA_DER).unwrap())
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_der(&STANDARD.decode(EC_DER).unwrap())
}

fn jwks() -> Value {
    json!({ "keys": [
        { "kty": "RSA", "alg": "RS256", "kid": "rsa-1", "use": "sig", "e": "AQAB", "n": RSA_N },
        { "kty": "EC", "crv": "P-256", "kid": "ec-1", "x": EC_X, "y": EC_Y },
        { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
        { "kty": "RSA", "kid": "enc", "use": "enc", "e": "AQAB", "n": RSA_N },
    ]})
}

fn keys() -> Jwks {
    Jwks::parse(jwks().to_string().as_bytes()).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Signs `claims` under `header` with `key` and `alg` (the header is taken as given,
/// so tests can lie in it).
fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{sig}")
}

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": CLIENT, "sub": "00u1", "iat": NOW - 10, "exp": NOW + 3600,
        "nonce": NONCE, "email": "jane@acme.test"
    })
}

fn rs256(claims: &Value) -> String {
    sign(
        &json!({ "alg": "RS256", "kid": "rsa-1" }),
        claims,
        &rsa_key(),
        Algorithm::RS256,
    )
}

fn expect() -> Expectations<'static> {
    Expectations::id_token(ISS, CLIENT, NONCE, NOW)
}

fn with(f: impl FnOnce(&mut Value)) -> Value {
    let mut c = claims();
    f(&mut c);
    c
}

#[test]
fn a_good_rs256_id_token_verifies() {
    let v = verify(&rs256(&claims()), &keys(), &expect()).unwrap();
    assert_eq!(v.kid.as_deref(), Some("rsa-1"));
    assert_eq!(v.alg, "RS256");
    assert_eq!(v.str_claim("email"), Some("jane@acme.test"));
    assert_eq!(v.time_claim("iat"), Some(NOW - 10));
}

#[test]
fn a_good_es256_token_verifies() {
    let t = sign(
        &json!({ "alg": "ES256", "kid": "ec-1", "typ": "JWT" }),
        &claims(),
        &ec_key(),
        Algorithm::ES256,
    );
    assert_eq!(verify(&t, &keys(), &expect()).unwrap().alg, "ES256");
}

#[test]
fn the_key_set_skips_keys_it_cannot_use() {
    let k = keys();
    assert_eq!(k.kids(), vec![Some("rsa-1"), Some("ec-1")]);
    assert!(k.contains("ec-1") && !k.contains("hmac") && !k.contains("enc"));
    assert!(Jwks::parse(b"{}").is_err());
    assert!(Jwks::parse(b"nope").is_err());
    assert!(Jwks::parse(br#"{"keys":[]}"#).unwrap().is_empty());
}

#[test]
fn none_and_hmac_are_refused_before_any_key_is_used() {
    let unsigned = format!("{}.{}.", b64(&json!({ "alg": "none" })), b64(&claims()));
    assert_eq!(
        verify(&unsigned, &keys(), &expect()),
        Err(JwtError::UnsupportedAlgorithm("none".into()))
    );
    // Key confusion: the RSA public key's bytes as an HMAC secret.
    let secret = URL_SAFE_NO_PAD.decode(RSA_N).unwrap();
    let forged = sign(
        &json!({ "alg": "HS256", "kid": "rsa-1" }),
        &claims(),
        &EncodingKey::from_secret(&secret).unwrap(),
        Algorithm::HS256,
    );
    assert_eq!(
        verify(&forged, &keys(), &expect()),
        Err(JwtError::UnsupportedAlgorithm("HS256".into()))
    );
    let ps = sign(
        &json!({ "alg": "PS256", "kid": "rsa-1" }),
        &claims(),
        &rsa_key(),
        Algorithm::PS256,
    );
    assert!(matches!(
        verify(&ps, &keys(), &expect()),
        Err(JwtError::UnsupportedAlgorithm(_))
    ));
}

#[test]
fn signatures_bind_key_and_content() {
    // An unknown kid: the caller may refetch.
    let t = sign(
        &json!({ "alg": "RS256", "kid": "rotated" }),
        &claims(),
        &rsa_key(),
        Algorithm::RS256,
    );
    assert_eq!(verify(&t, &keys(), &expect()), Err(JwtError::UnknownKey));
    // No kid and several keys: which one is unknowable.
    let t = sign(
        &json!({ "alg": "RS256" }),
        &claims(),
        &rsa_key(),
        Algorithm::RS256,
    );
    assert_eq!(verify(&t, &keys(), &expect()), Err(JwtError::UnknownKey));
    // Signed by the EC key but naming the RSA key.
    let t = sign(
        &json!({ "alg": "ES256", "kid": "rsa-1" }),
        &claims(),
        &ec_key(),
        Algorithm::ES256,
    );
    assert_eq!(
        verify(&t, &keys(), &expect()),
        Err(JwtError::KeyMismatch("ES256".into()))
    );
    // The RSA key is pinned to RS256.
    let t = sign(
        &json!({ "alg": "RS384", "kid": "rsa-1" }),
        &claims(),
        &rsa_key(),
        Algorithm::RS384,
    );
    assert_eq!(
        verify(&t, &keys(), &expect()),
        Err(JwtError::KeyMismatch("RS384".into()))
    );
    // Claims swapped after signing.
    let good = rs256(&claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let other = b64(&with(|c| c["email"] = json!("mallory@evil.test")));
    parts[1] = &other;
    assert_eq!(
        verify(&parts.join("."), &keys(), &expect()),
        Err(JwtError::BadSignature)
    );
    // A signature that is not base64url.
    let broken = format!("{}.{}.!!!", parts[0], b64(&claims()));
    assert_eq!(
        verify(&broken, &keys(), &expect()),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn malformed_tokens_are_refused() {
    for bad in [
        "",
        "a.b",
        "a.b.c.d",
        "!!.!!.!!",
        &format!("{}.e30.", b64(&json!("x"))),
    ] {
        assert!(
            matches!(verify(bad, &keys(), &expect()), Err(JwtError::Malformed(_))),
            "{bad:?}"
        );
    }
    let crit = sign(
        &json!({ "alg": "RS256", "kid": "rsa-1", "crit": ["exp"] }),
        &claims(),
        &rsa_key(),
        Algorithm::RS256,
    );
    assert!(matches!(
        verify(&crit, &keys(), &expect()),
        Err(JwtError::Malformed(_))
    ));
    assert!(matches!(
        verify(&"a".repeat(MAX_TOKEN_LEN + 1), &keys(), &expect()),
        Err(JwtError::Malformed(_))
    ));
}

#[test]
fn every_claim_is_checked() {
    let cases: Vec<(Value, JwtError)> = vec![
        (
            with(|c| c["iss"] = json!("https://acme.okta.com/oauth2/default")),
            JwtError::WrongIssuer,
        ),
        (
            with(|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
            JwtError::MissingClaim("iss"),
        ),
        (
            with(|c| c["aud"] = json!("0oa-other")),
            JwtError::WrongAudience,
        ),
        (
            with(|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            JwtError::MissingClaim("aud"),
        ),
        (
            with(|c| c["aud"] = json!([CLIENT, "other"])),
            JwtError::WrongAuthorizedParty,
        ),
        // RFC 7519 §4.1.3: an array of strings; found by the jwt fuzz target.
        (
            with(|c| c["aud"] = json!([CLIENT, 5])),
            JwtError::Malformed("aud holds something other than strings"),
        ),
        (
            with(|c| c["azp"] = json!("other")),
            JwtError::WrongAuthorizedParty,
        ),
        (with(|c| c["exp"] = json!(NOW - 61)), JwtError::Expired),
        (
            with(|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            JwtError::MissingClaim("exp"),
        ),
        (
            with(|c| c["iat"] = json!(NOW + 61)),
            JwtError::IssuedInFuture,
        ),
        (
            with(|c| {
                c.as_object_mut().unwrap().remove("iat");
            }),
            JwtError::MissingClaim("iat"),
        ),
        (with(|c| c["nbf"] = json!(NOW + 61)), JwtError::NotYetValid),
        (with(|c| c["nonce"] = json!("other")), JwtError::WrongNonce),
        (
            with(|c| {
                c.as_object_mut().unwrap().remove("nonce");
            }),
            JwtError::WrongNonce,
        ),
        (
            with(|c| c["sub"] = json!("")),
            JwtError::MissingClaim("sub"),
        ),
        (
            with(|c| c["exp"] = json!("tomorrow")),
            JwtError::Malformed("a time claim is not a number"),
        ),
    ];
    for (claims, want) in cases {
        assert_eq!(
            verify(&rs256(&claims), &keys(), &expect()),
            Err(want.clone()),
            "{claims}"
        );
        assert!(!want.reason().is_empty());
    }
    // Within the leeway, and several audiences with the right azp.
    let ok = with(|c| {
        c["exp"] = json!(NOW - 30);
        c["iat"] = json!(NOW + 30);
        c["aud"] = json!(["other", CLIENT]);
        c["azp"] = json!(CLIENT);
    });
    assert!(verify(&rs256(&ok), &keys(), &expect()).is_ok());
}

#[test]
fn the_typ_rule_is_configurable() {
    let gtr = |typ: Option<&str>| {
        let mut h = json!({ "alg": "RS256", "kid": "rsa-1" });
        if let Some(t) = typ {
            h["typ"] = json!(t);
        }
        sign(&h, &claims(), &rsa_key(), Algorithm::RS256)
    };
    let logout = Expectations {
        typ: TypRule::Exactly("global-token-revocation+jwt"),
        required: &["jti", "iat", "nbf"],
        ..Expectations::new(ISS, CLIENT, NOW)
    };
    assert_eq!(
        verify(&gtr(None), &keys(), &logout),
        Err(JwtError::WrongType)
    );
    assert_eq!(
        verify(&gtr(Some("JWT")), &keys(), &logout),
        Err(JwtError::WrongType)
    );
    assert_eq!(
        verify(
            &gtr(Some("application/Global-Token-Revocation+JWT")),
            &keys(),
            &logout
        ),
        Err(JwtError::MissingClaim("jti"))
    );
    // ID tokens: absent or JWT, never another type.
    assert!(verify(&gtr(None), &keys(), &expect()).is_ok());
    assert!(verify(&gtr(Some("jwt")), &keys(), &expect()).is_ok());
    assert_eq!(
        verify(
            &gtr(Some("global-token-revocation+jwt")),
            &keys(),
            &expect()
        ),
        Err(JwtError::WrongType)
    );
    assert_eq!(peek_kid(&gtr(None)).as_deref(), Some("rsa-1"));
}

#[test]
fn a_single_key_without_kid_verifies_tokens_without_kid() {
    let only = json!({ "keys": [{ "kty": "RSA", "e": "AQAB", "n": RSA_N }] });
    let k = Jwks::parse(only.to_string().as_bytes()).unwrap();
    let t = sign(
        &json!({ "alg": "RS256" }),
        &claims(),
        &rsa_key(),
        Algorithm::RS256,
    );
    assert!(verify(&t, &k, &expect()).is_ok());
}
