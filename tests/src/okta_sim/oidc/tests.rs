//! The org authorization server against the OIDC rules and Okta's behaviour; every ID
//! token is checked with the independent verifier.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::okta_sim::directory::{NewUser, UserId};
use crate::okta_sim::faults::{IdTokenFault, TokenFault};
use crate::okta_sim::keys::KeyError;
use crate::okta_sim::oidc::token::s256;
use crate::okta_sim::testkit::{split_jwt, verify_rs256};
use crate::okta_sim::{AppHandle, OktaSim, SimConfig};

const CALLBACK: &str = "http://api.closedloop.localhost/api/okta/oidc/callback";
const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";

struct Rp {
    sim: OktaSim,
    app: AppHandle,
    jane: UserId,
    http: reqwest::Client,
}

impl Rp {
    async fn start() -> Self {
        let sim = OktaSim::start().await.unwrap();
        let jane = sim
            .add_user(NewUser::new("jane@acme.test", "Jane", "Doe").with_password("pw"))
            .unwrap();
        let app = sim.app();
        app.assign(&jane).await.unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            sim,
            app,
            jane,
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// The authorize URL with the standard parameters, `extra` replacing or adding.
    fn authorize_url(&self, extra: &[(&str, &str)]) -> String {
        let mut params = vec![
            ("client_id", self.app.client_id().to_owned()),
            ("redirect_uri", CALLBACK.to_owned()),
            ("response_type", "code".to_owned()),
            ("scope", "openid email profile".to_owned()),
            ("state", "st-1".to_owned()),
            ("nonce", "n-1".to_owned()),
            ("code_challenge", s256(VERIFIER)),
            ("code_challenge_method", "S256".to_owned()),
        ];
        for (k, v) in extra {
            params.retain(|(p, _)| p != k);
            if !v.is_empty() {
                params.push((k, (*v).to_owned()));
            }
        }
        let mut url = url::Url::parse(&self.url("/oauth2/v1/authorize")).unwrap();
        for (k, v) in params {
            url.query_pairs_mut().append_pair(k, &v);
        }
        url.to_string()
    }

    async fn get(&self, url: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(url);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().await.unwrap()
    }

    /// The query of a redirect's `Location`.
    fn location(r: &reqwest::Response) -> url::Url {
        url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap()
    }

    fn param(url: &url::Url, name: &str) -> Option<String> {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// A code for jane, signed in by cookie.
    async fn code(&self, extra: &[(&str, &str)]) -> String {
        let cookie = self.sim.session_cookie(&self.jane);
        let r = self.get(&self.authorize_url(extra), Some(&cookie)).await;
        assert_eq!(r.status(), 302);
        let loc = Self::location(&r);
        assert!(loc.as_str().starts_with(CALLBACK), "{loc}");
        assert_eq!(Self::param(&loc, "state").as_deref(), Some("st-1"));
        Self::param(&loc, "code").expect("a code")
    }

    async fn token(
        &self,
        form: &[(&str, &str)],
        basic: bool,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.post(self.url("/oauth2/v1/token")).form(form);
        if basic {
            req = req.basic_auth(self.app.client_id(), Some(self.app.client_secret()));
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    async fn exchange(&self, code: &str) -> (u16, Value) {
        let (s, _, v) = self
            .token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", CALLBACK),
                    ("code_verifier", VERIFIER),
                ],
                true,
            )
            .await;
        (s, v)
    }

    async fn jwks(&self) -> Value {
        self.get(&self.url("/oauth2/v1/keys"), None)
            .await
            .json()
            .await
            .unwrap()
    }

    /// A full sign-in; returns the token response.
    async fn sign_in(&self) -> Value {
        let code = self.code(&[]).await;
        let (s, body) = self.exchange(&code).await;
        assert_eq!(s, 200, "{body}");
        body
    }
}

#[tokio::test]
async fn discovery_document_follows_the_oidc_discovery_rules() {
    let rp = Rp::start().await;
    let r = rp
        .get(&rp.url("/.well-known/openid-configuration"), None)
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: Value = r.json().await.unwrap();
    // OIDC Discovery §3: REQUIRED fields.
    for field in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(!doc[field].is_null(), "{field} missing");
    }
    // §4.3: the issuer is exactly the URL the document was fetched under.
    assert_eq!(doc["issuer"], rp.sim.base_url());
    assert!(!rp.sim.base_url().ends_with('/'));
    let issuer = url::Url::parse(doc["issuer"].as_str().unwrap()).unwrap();
    assert!(issuer.query().is_none() && issuer.fragment().is_none());
    // Okta's org server: endpoints under /oauth2/v1.
    for (field, path) in [
        ("authorization_endpoint", "/oauth2/v1/authorize"),
        ("token_endpoint", "/oauth2/v1/token"),
        ("userinfo_endpoint", "/oauth2/v1/userinfo"),
        ("jwks_uri", "/oauth2/v1/keys"),
        ("end_session_endpoint", "/oauth2/v1/logout"),
    ] {
        assert_eq!(
            doc[field],
            format!("{}{path}", rp.sim.base_url()),
            "{field}"
        );
    }
    let list = |f: &str| -> Vec<String> {
        doc[f]
            .as_array()
            .unwrap_or_else(|| panic!("{f} is an array"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert!(list("response_types_supported").contains(&"code".to_owned()));
    assert!(
        list("subject_types_supported")
            .iter()
            .all(|s| s == "public" || s == "pairwise")
    );
    let algs = list("id_token_signing_alg_values_supported");
    assert!(algs.contains(&"RS256".to_owned()), "RS256 is required");
    assert!(!algs.contains(&"none".to_owned()));
    assert!(list("scopes_supported").contains(&"openid".to_owned()));
    assert_eq!(list("code_challenge_methods_supported"), ["S256"]);
    let methods = list("token_endpoint_auth_methods_supported");
    assert!(methods.contains(&"client_secret_basic".to_owned()));
    assert!(methods.contains(&"client_secret_post".to_owned()));
    // The JWKS it names is served.
    let jwks = rp.jwks().await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);

    // A configured base URL is the issuer, exactly.
    let config = SimConfig {
        base_url: Some("https://acme.okta.test".into()),
        ..SimConfig::default()
    };
    let sim = OktaSim::start_with(config).await.unwrap();
    let doc: Value = rp
        .http
        .get(format!(
            "http://{}/.well-known/openid-configuration",
            sim.addr()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], "https://acme.okta.test");
    assert_eq!(doc["jwks_uri"], "https://acme.okta.test/oauth2/v1/keys");
}

#[tokio::test]
async fn authorization_code_flow_with_pkce_yields_a_verifiable_id_token() {
    let rp = Rp::start().await;
    let code = rp.code(&[]).await;
    let (status, headers, body) = rp
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", VERIFIER),
            ],
            true,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "openid email profile");

    let jwks = rp.jwks().await;
    let id_token = body["id_token"].as_str().unwrap();
    let (header, claims) = verify_rs256(id_token, &jwks).expect("verifies independently");
    assert_eq!(header["kid"], rp.sim.keys().signing_kid());
    assert_eq!(claims["iss"], rp.sim.issuer());
    assert_eq!(claims["aud"], rp.app.client_id());
    assert_eq!(claims["sub"], rp.jane.as_str());
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["email"], "jane@acme.test");
    assert_eq!(claims["preferred_username"], "jane@acme.test");
    assert_eq!(claims["name"], "Jane Doe");
    assert_eq!(claims["ver"], 1);
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 3600);
    assert!((iat - rp.sim.clock().now()).abs() <= 5);
    let access = body["access_token"].as_str().unwrap();
    let digest = Sha256::digest(access.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));

    // The access token reads userinfo.
    let info: Value = rp
        .http
        .get(rp.url("/oauth2/v1/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], rp.jane.as_str());
    assert_eq!(info["email"], "jane@acme.test");

    // A code works once.
    let (status, again) = rp.exchange(&code).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn token_endpoint_client_authentication_and_grant_errors() {
    let rp = Rp::start().await;
    // client_secret_post, without PKCE.
    let code = rp
        .code(&[("code_challenge", ""), ("code_challenge_method", "")])
        .await;
    let secret = rp.app.client_secret();
    let (s, _, body) = rp
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("client_id", rp.app.client_id()),
                ("client_secret", &secret),
            ],
            false,
        )
        .await;
    assert_eq!(s, 200, "{body}");

    let err = |v: &Value| v["error"].as_str().map(str::to_owned);
    // Both methods at once.
    let code = rp.code(&[]).await;
    let (s, _, body) = rp
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", VERIFIER),
                ("client_secret", &secret),
            ],
            true,
        )
        .await;
    assert_eq!((s, err(&body).as_deref()), (400, Some("invalid_request")));
    // Wrong secret by Basic: 401 with a challenge.
    let r = rp
        .http
        .post(rp.url("/oauth2/v1/token"))
        .basic_auth(rp.app.client_id(), Some("wrong"))
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(
        err(&r.json().await.unwrap()).as_deref(),
        Some("invalid_client")
    );
    // No credentials.
    let (s, _, body) = rp
        .token(
            &[("grant_type", "authorization_code"), ("code", "x")],
            false,
        )
        .await;
    assert_eq!((s, err(&body).as_deref()), (401, Some("invalid_client")));

    let with = |code: &str, verifier: Option<&str>, redirect: &str| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", redirect.to_owned()),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v.to_owned()));
        }
        form
    };
    let send = |form: Vec<(&'static str, String)>| {
        let req = rp
            .http
            .post(rp.url("/oauth2/v1/token"))
            .basic_auth(rp.app.client_id(), Some(rp.app.client_secret()))
            .form(&form);
        async move {
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (s, v["error"].as_str().unwrap_or_default().to_owned())
        }
    };
    // A wrong verifier, a missing verifier, a different redirect URI.
    let wrong = "b-verifier-of-at-least-forty-three-characters-0123456789";
    let code = rp.code(&[]).await;
    assert_eq!(
        send(with(&code, Some(wrong), CALLBACK)).await,
        (400, "invalid_grant".into())
    );
    let code = rp.code(&[]).await;
    assert_eq!(
        send(with(&code, None, CALLBACK)).await,
        (400, "invalid_request".into())
    );
    let code = rp.code(&[]).await;
    assert_eq!(
        send(with(
            &code,
            Some(VERIFIER),
            "http://eu.api.closedloop.localhost/api/okta/oidc/callback"
        ))
        .await,
        (400, "invalid_grant".into())
    );
    // An expired code (five minutes).
    let code = rp.code(&[]).await;
    rp.sim.clock().advance(Duration::from_secs(301));
    assert_eq!(
        send(with(&code, Some(VERIFIER), CALLBACK)).await,
        (400, "invalid_grant".into())
    );
    // Other grant types, and a body that is not a form.
    let form = vec![("grant_type", "password".to_owned())];
    assert_eq!(send(form).await, (400, "unsupported_grant_type".into()));
    let r = rp
        .http
        .post(rp.url("/oauth2/v1/token"))
        .basic_auth(rp.app.client_id(), Some(rp.app.client_secret()))
        .json(&serde_json::json!({ "grant_type": "authorization_code" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A repeated parameter.
    let r = rp
        .http
        .post(rp.url("/oauth2/v1/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=authorization_code&grant_type=authorization_code")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_login_page_signs_a_configured_user_in() {
    let rp = Rp::start().await;
    let url = rp.authorize_url(&[]);
    let page = rp.get(&url, None).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\" action=\"/sim/login\">"));
    assert!(html.contains("jane@acme.test"));
    let query = url.split_once('?').unwrap().1.to_owned();

    let login = |password: &'static str| {
        rp.http
            .post(rp.url("/sim/login"))
            .form(&[
                ("username", "JANE@acme.test"),
                ("password", password),
                ("authorize", &query),
            ])
            .send()
    };
    let refused = login("wrong").await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.text().await.unwrap().contains("id=\"error\""));
    let ok = login("pw").await.unwrap();
    assert_eq!(ok.status(), 303);
    let cookie = ok.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("sid="));
    let back = ok.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(back, url);
    let r = rp.get(&back, Some(&cookie)).await;
    assert_eq!(r.status(), 302);
    assert!(Rp::param(&Rp::location(&r), "code").is_some());

    // prompt=none without a session: login_required.
    let r = rp.get(&rp.authorize_url(&[("prompt", "none")]), None).await;
    let loc = Rp::location(&r);
    assert_eq!(Rp::param(&loc, "error").as_deref(), Some("login_required"));
    // prompt=login ignores the session.
    let r = rp
        .get(&rp.authorize_url(&[("prompt", "login")]), Some(&cookie))
        .await;
    assert_eq!(r.status(), 200);
    // Auto sign-in for flows that cannot carry a cookie.
    rp.sim.set_auto_sign_in(Some(&rp.jane));
    let r = rp.get(&rp.authorize_url(&[]), None).await;
    assert!(Rp::param(&Rp::location(&r), "code").is_some());
    // A malformed form is an error page, not a panic.
    let r = rp
        .http
        .post(rp.url("/sim/login"))
        .body(vec![0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn authorize_refuses_like_okta() {
    let rp = Rp::start().await;
    let cookie = rp.sim.session_cookie(&rp.jane);
    // No redirect to an untrusted place: unknown client, unregistered redirect URI.
    for extra in [
        [("client_id", "0oaunknown")],
        [("redirect_uri", "https://evil.test/cb")],
    ] {
        let r = rp.get(&rp.authorize_url(&extra), Some(&cookie)).await;
        assert_eq!(r.status(), 400, "{extra:?}");
        assert!(r.headers().get("location").is_none());
    }
    // Later errors redirect with the state.
    for (extra, error) in [
        (vec![("scope", "email profile")], "invalid_scope"),
        (vec![("scope", "openid scim.write")], "invalid_scope"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge", "short")], "invalid_request"),
    ] {
        let r = rp.get(&rp.authorize_url(&extra), Some(&cookie)).await;
        assert_eq!(r.status(), 302, "{extra:?}");
        let loc = Rp::location(&r);
        assert!(loc.as_str().starts_with(CALLBACK));
        assert_eq!(
            Rp::param(&loc, "error").as_deref(),
            Some(error),
            "{extra:?}"
        );
        assert_eq!(Rp::param(&loc, "state").as_deref(), Some("st-1"));
    }
    // A signed-in user who is not assigned.
    let bob = rp
        .sim
        .add_user(NewUser::new("bob@acme.test", "Bob", "B"))
        .unwrap();
    let r = rp
        .get(&rp.authorize_url(&[]), Some(&rp.sim.session_cookie(&bob)))
        .await;
    let loc = Rp::location(&r);
    assert_eq!(Rp::param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(
        Rp::param(&loc, "error_description").as_deref(),
        Some("User is not assigned to the client application.")
    );
    // The access_denied fault.
    rp.sim.faults().deny_authorize(true);
    let r = rp.get(&rp.authorize_url(&[]), Some(&cookie)).await;
    assert_eq!(
        Rp::param(&Rp::location(&r), "error").as_deref(),
        Some("access_denied")
    );
    rp.sim.faults().clear();
    let r = rp.get(&rp.authorize_url(&[]), Some(&cookie)).await;
    assert!(Rp::param(&Rp::location(&r), "code").is_some());
    // A deactivated user's session is gone.
    rp.sim.deactivate_user(&rp.jane).await.unwrap();
    let r = rp.get(&rp.authorize_url(&[]), Some(&cookie)).await;
    assert_eq!(r.status(), 200, "back to the login page");
    // Unknown paths are Okta-shaped 404s.
    let r = rp.get(&rp.url("/api/v1/users"), None).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn key_rotation_publishes_then_signs_then_retires() {
    let rp = Rp::start().await;
    let keys = rp.sim.keys();
    let old = keys.signing_kid();
    let r = rp.get(&rp.url("/oauth2/v1/keys"), None).await;
    assert_eq!(
        r.headers()["cache-control"],
        "max-age=3600, must-revalidate"
    );
    let before = rp.sign_in().await["id_token"].as_str().unwrap().to_owned();

    // 1. Publish: both keys listed, tokens still signed with the old one.
    let new = keys.publish_new().await.unwrap();
    assert_ne!(new, old);
    assert_eq!(keys.published_kids(), [old.clone(), new.clone()]);
    let jwks = rp.jwks().await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let t = rp.sign_in().await;
    assert_eq!(
        verify_rs256(t["id_token"].as_str().unwrap(), &jwks)
            .unwrap()
            .0["kid"],
        old.as_str()
    );

    // 2. Sign with the new key; old tokens still verify.
    keys.activate(&new).unwrap();
    let t = rp.sign_in().await;
    let (h, _) = verify_rs256(t["id_token"].as_str().unwrap(), &rp.jwks().await).unwrap();
    assert_eq!(h["kid"], new.as_str());
    assert!(verify_rs256(&before, &rp.jwks().await).is_ok());

    // 3. Retire the old key: gone from the JWKS, old tokens no longer verify.
    assert!(matches!(keys.retire(&new), Err(KeyError::StillSigning(_))));
    keys.retire(&old).unwrap();
    let jwks = rp.jwks().await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [new.as_str()]);
    assert!(verify_rs256(&before, &jwks).is_err());
    assert!(matches!(keys.retire(&old), Err(KeyError::UnknownKid(_))));

    // The JWKS with ?client_id=: the app's → the same keys; another → 400.
    let by_client: Value = rp
        .get(
            &rp.url(&format!("/oauth2/v1/keys?client_id={}", rp.app.client_id())),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_client, jwks);
    let r = rp
        .get(&rp.url("/oauth2/v1/keys?client_id=0oanobody"), None)
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn each_id_token_fault_spoils_exactly_one_thing() {
    let rp = Rp::start().await;
    let jwks = rp.jwks().await;
    for fault in [
        IdTokenFault::WrongAudience,
        IdTokenFault::WrongIssuer,
        IdTokenFault::WrongNonce,
        IdTokenFault::Expired,
        IdTokenFault::UnpublishedKey,
    ] {
        rp.sim.faults().id_token(Some(fault));
        let token = rp.sign_in().await;
        let id_token = token["id_token"].as_str().unwrap();
        let now = rp.sim.clock().now();
        let (header, claims) = match fault {
            IdTokenFault::UnpublishedKey => {
                assert!(verify_rs256(id_token, &jwks).is_err());
                let (h, c, _, _) = split_jwt(id_token).unwrap();
                assert_eq!(h["kid"], rp.sim.keys().unpublished_kid());
                (h, c)
            }
            _ => verify_rs256(id_token, &jwks).expect("signature is fine"),
        };
        assert_eq!(header["alg"], "RS256");
        let aud_ok = claims["aud"] == rp.app.client_id();
        let iss_ok = claims["iss"] == rp.sim.issuer();
        let nonce_ok = claims["nonce"] == "n-1";
        let exp_ok = claims["exp"].as_i64().unwrap() > now;
        let expected = match fault {
            IdTokenFault::WrongAudience => (false, true, true, true),
            IdTokenFault::WrongIssuer => (true, false, true, true),
            IdTokenFault::WrongNonce => (true, true, false, true),
            IdTokenFault::Expired => (true, true, true, false),
            IdTokenFault::UnpublishedKey => (true, true, true, true),
        };
        assert_eq!((aud_ok, iss_ok, nonce_ok, exp_ok), expected, "{fault:?}");
    }
    rp.sim.faults().id_token(None);
    let t = rp.sign_in().await;
    assert!(verify_rs256(t["id_token"].as_str().unwrap(), &jwks).is_ok());
}

#[tokio::test]
async fn token_endpoint_faults_fail_delay_and_hang() {
    let rp = Rp::start().await;
    let faults = rp.sim.faults();
    faults.token_endpoint(TokenFault::Fail {
        status: 503,
        error: "temporarily_unavailable".into(),
    });
    let code = rp.code(&[]).await;
    let (s, body) = rp.exchange(&code).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );

    let delay = Duration::from_millis(50);
    faults.token_endpoint(TokenFault::Delay(delay));
    let code = rp.code(&[]).await;
    let started = Instant::now();
    let (s, _) = rp.exchange(&code).await;
    assert_eq!(s, 200);
    assert!(started.elapsed() >= delay);

    faults.token_endpoint(TokenFault::Hang);
    let code = rp.code(&[]).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = impatient
        .post(rp.url("/oauth2/v1/token"))
        .basic_auth(rp.app.client_id(), Some(rp.app.client_secret()))
        .form(&[("grant_type", "authorization_code"), ("code", &code)])
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
}

#[tokio::test]
async fn userinfo_refuses_missing_and_expired_tokens() {
    let rp = Rp::start().await;
    let t = rp.sign_in().await;
    let userinfo = |token: Option<&str>| {
        let mut req = rp.http.get(rp.url("/oauth2/v1/userinfo"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let r = userinfo(None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(userinfo(Some("forged")).await.unwrap().status(), 401);
    rp.sim.clock().advance(Duration::from_secs(3601));
    assert_eq!(
        userinfo(t["access_token"].as_str()).await.unwrap().status(),
        401
    );
}

#[tokio::test]
async fn logout_ends_the_session_and_returns_to_a_registered_uri() {
    let rp = Rp::start().await;
    let cookie = rp.sim.session_cookie(&rp.jane);
    let r = rp.get(&rp.authorize_url(&[]), Some(&cookie)).await;
    let code = Rp::param(&Rp::location(&r), "code").unwrap();
    let (_, t) = rp.exchange(&code).await;
    let hint = t["id_token"].as_str().unwrap();
    let back = "http://app.closedloop.localhost/auth";
    let logout = |hint: &str, uri: &str| {
        let mut url = url::Url::parse(&rp.url("/oauth2/v1/logout")).unwrap();
        url.query_pairs_mut()
            .append_pair("id_token_hint", hint)
            .append_pair("post_logout_redirect_uri", uri)
            .append_pair("state", "bye");
        url.to_string()
    };
    // Refusals first: an unregistered URI, a hint not from this org, no hint.
    let r = rp
        .get(&logout(hint, "https://evil.test/"), Some(&cookie))
        .await;
    assert_eq!(r.status(), 400);
    let forged = rp.sim.keys().jwks().to_string();
    assert_eq!(
        rp.get(&logout(&forged, back), Some(&cookie)).await.status(),
        400
    );
    assert_eq!(
        rp.get(&rp.url("/oauth2/v1/logout"), None).await.status(),
        400
    );
    assert!(rp.sim.logouts().is_empty());

    let r = rp.get(&logout(hint, back), Some(&cookie)).await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        "http://app.closedloop.localhost/auth?state=bye"
    );
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let events = rp.sim.logouts();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].user, rp.jane.as_str());
    assert_eq!(events[0].client_id, rp.app.client_id());
    // The session is over: authorize asks again.
    let r = rp.get(&rp.authorize_url(&[]), Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    // An expired hint is still accepted, as by Okta.
    rp.sim.clock().advance(Duration::from_secs(7200));
    assert_eq!(rp.get(&logout(hint, back), None).await.status(), 302);
}
