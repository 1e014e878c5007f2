//! Universal Logout requests: the genuine one as OKTA.md §7 describes it, and each
//! forgery wrong in exactly the intended way (checked with the independent verifier).

use std::collections::BTreeSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use super::{Forgery, LOGOUT_TYP, LogoutError, Subject};
use crate::okta_sim::OktaSim;
use crate::okta_sim::testkit::{Capture, split_jwt, verify_rs256};
use crate::okta_sim::upstream::Upstream;

const ENDPOINT: &str = "http://api.closedloop.localhost/api/okta/universal-logout";

/// Everything wrong with a logout JWT, judged as a careful endpoint would.
fn defects(
    jwt: &str,
    jwks: &Value,
    issuer: &str,
    client_id: &str,
    earlier_jtis: &[String],
    now: i64,
) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    let (header, claims, sig, _) = split_jwt(jwt).expect("three base64url JSON parts");
    if header["alg"] != "RS256" {
        out.insert("alg");
    } else {
        let kid = header["kid"].as_str().unwrap_or_default();
        let published = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid);
        if !published {
            out.insert("kid_unknown");
        } else if verify_rs256(jwt, jwks).is_err() {
            out.insert("signature");
        }
    }
    if header["alg"] == "none" {
        assert!(sig.is_empty(), "alg none carries no signature");
    }
    if header["typ"] != LOGOUT_TYP {
        out.insert("typ");
    }
    if claims["aud"] != ENDPOINT {
        out.insert("aud");
    }
    if claims["iss"] != issuer {
        out.insert("iss");
    }
    if claims["sub"] != client_id {
        out.insert("sub");
    }
    let int = |n: &str| {
        claims[n]
            .as_i64()
            .unwrap_or_else(|| panic!("{n} is an integer"))
    };
    if int("exp") <= now || int("nbf") > now {
        out.insert("expired");
    }
    let jti = claims["jti"].as_str().unwrap_or_default();
    if jti.is_empty() || earlier_jtis.iter().any(|j| j == jti) {
        out.insert("jti_reused");
    }
    out
}

#[tokio::test]
async fn the_genuine_request_is_as_okta_sends_it() {
    let sim = OktaSim::start().await.unwrap();
    let app = sim.app();
    let capture = Capture::start(|_, _| (204, vec![], String::new())).await;
    let endpoint = Upstream::via(ENDPOINT, &capture.url).unwrap();
    let sent = app
        .universal_logout(&endpoint, &Subject::Email("jane@acme.test".into()))
        .await
        .unwrap();
    assert_eq!(sent.status, 204);

    let req = &capture.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.uri, "/api/okta/universal-logout");
    assert_eq!(req.headers["host"], "api.closedloop.localhost");
    assert_eq!(req.headers["content-type"], "application/json");
    assert_eq!(
        req.headers["authorization"].to_str().unwrap(),
        format!("Bearer {}", sent.jwt)
    );
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body,
        json!({ "sub_id": { "format": "email", "email": "jane@acme.test" } })
    );

    let jwks = sim.keys().jwks();
    let (header, claims) = verify_rs256(&sent.jwt, &jwks).unwrap();
    assert_eq!(header["typ"], "global-token-revocation+jwt");
    assert_eq!(header["kid"], sim.keys().signing_kid());
    assert_eq!(claims["iss"], sim.issuer());
    assert_eq!(claims["sub"], app.client_id());
    assert_eq!(claims["aud"], ENDPOINT);
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 300);
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat - 300);
    assert!(
        defects(
            &sent.jwt,
            &jwks,
            sim.issuer(),
            app.client_id(),
            &[],
            sim.clock().now()
        )
        .is_empty()
    );

    // The other subject formats.
    for (subject, expected) in [
        (
            Subject::LegacyEmail("a@b.co".into()),
            json!({ "subject": { "format": "email", "email": "a@b.co" } }),
        ),
        (
            Subject::IssSub {
                iss: sim.issuer().into(),
                sub: "00u1".into(),
            },
            json!({ "sub_id": { "format": "iss_sub", "iss": sim.issuer(), "sub": "00u1" } }),
        ),
        (
            Subject::Opaque("x1".into()),
            json!({ "sub_id": { "format": "opaque", "id": "x1" } }),
        ),
    ] {
        assert_eq!(subject.body(), expected);
    }

    // A replay is the same request, byte for byte.
    let again = app.replay_last_logout().await.unwrap();
    assert_eq!(again.jwt, sent.jwt);
    let reqs = capture.requests();
    assert_eq!(reqs[1].body, reqs[0].body);
    assert_eq!(
        reqs[1].headers["authorization"],
        reqs[0].headers["authorization"]
    );
}

#[tokio::test]
async fn each_forgery_is_wrong_in_exactly_the_intended_way() {
    let sim = OktaSim::start().await.unwrap();
    let app = sim.app();
    let capture = Capture::start(|_, _| (401, vec![], String::new())).await;
    let endpoint = Upstream::via(ENDPOINT, &capture.url).unwrap();
    let subject = Subject::Email("jane@acme.test".into());
    // Nothing to replay yet.
    assert!(matches!(
        app.logout_jwt(ENDPOINT, Some(Forgery::ReplayedJti)),
        Err(LogoutError::NothingToReplay)
    ));
    let genuine = app.universal_logout(&endpoint, &subject).await.unwrap();
    let jti_of = |jwt: &str| {
        split_jwt(jwt).unwrap().1["jti"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Every jti sent so far: a replay reuses the previous request's.
    let mut earlier = vec![jti_of(&genuine.jwt)];
    let jwks = sim.keys().jwks();

    for forgery in Forgery::ALL {
        let sent = app
            .forged_logout(&endpoint, &subject, forgery)
            .await
            .unwrap();
        assert_eq!(sent.status, 401);
        let found = defects(
            &sent.jwt,
            &jwks,
            sim.issuer(),
            app.client_id(),
            &earlier,
            sim.clock().now(),
        );
        earlier.push(jti_of(&sent.jwt));
        let expected: &[&str] = match forgery {
            Forgery::UnpublishedKey => &["kid_unknown"],
            Forgery::KidMismatch => &["signature"],
            Forgery::WrongAudience => &["aud"],
            Forgery::WrongIssuer => &["iss"],
            Forgery::Expired => &["expired"],
            Forgery::ReplayedJti => &["jti_reused"],
            Forgery::AlgNone | Forgery::Hs256WithPublicKey => &["alg"],
            Forgery::WrongTyp => &["typ"],
        };
        assert_eq!(found, expected.iter().copied().collect(), "{forgery:?}");
        // The body is the genuine one.
        assert_eq!(sent.request_body, subject.body());
    }

    // The HS256 forgery really is an HMAC keyed with the public key's PEM (what a
    // verifier confusing algorithms would accept).
    let hs = app
        .logout_jwt(ENDPOINT, Some(Forgery::Hs256WithPublicKey))
        .unwrap();
    let (header, _, _, _) = split_jwt(&hs).unwrap();
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], sim.keys().signing_kid());
    let pem = crate::okta_sim::lock(&sim.org.keys)
        .signing()
        .public_key_pem()
        .unwrap();
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&[ENDPOINT]);
    v.set_issuer(&[sim.issuer()]);
    assert!(
        jsonwebtoken::decode::<Value>(&hs, &DecodingKey::from_secret(pem.as_bytes()).unwrap(), &v)
            .is_ok()
    );

    // The wrong audience is the other region's endpoint.
    let wrong = app
        .logout_jwt(ENDPOINT, Some(Forgery::WrongAudience))
        .unwrap();
    assert_eq!(
        split_jwt(&wrong).unwrap().1["aud"],
        "http://eu.api.closedloop.localhost/api/okta/universal-logout"
    );
}
