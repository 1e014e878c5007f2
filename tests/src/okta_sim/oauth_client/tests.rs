//! The SCIM OAuth client against a recording token endpoint, and against the real SCIM
//! API through a provisioning job.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::{ClientAuth, OAuthClient, OAuthClientConfig, OAuthError, okta_callback};
use crate::okta_sim::OktaSim;
use crate::okta_sim::clock::Clock;
use crate::okta_sim::directory::NewUser;
use crate::okta_sim::oidc::token::s256;
use crate::okta_sim::provisioning::{Provisioned, ScimAuth, ScimSettings};
use crate::okta_sim::testkit::{Capture, Captured, Reply, ScimSetup};
use crate::okta_sim::upstream::Upstream;
use crate::region::Region;
use crate::web::hidden;

const AUTHORIZE: &str = "http://api.closedloop.localhost/api/okta/scim/oauth/authorize";
const TOKEN: &str = "http://api.closedloop.localhost/api/okta/scim/oauth/token";

fn form(c: &Captured) -> HashMap<String, String> {
    url::form_urlencoded::parse(&c.body).into_owned().collect()
}

/// A token endpoint that answers codes with `at1`/`rt1` and refreshes with `at{n}`
/// (no new refresh token), `expires_in` as given.
fn token_endpoint(
    access: &str,
    expires_in: i64,
) -> impl Fn(&Captured, usize) -> Reply + Send + Sync + use<> {
    let access = access.to_owned();
    move |c, i| {
        let f = form(c);
        let body = match f.get("grant_type").map(String::as_str) {
            Some("authorization_code") if f.get("code").map(String::as_str) == Some("bad") => {
                return (
                    400,
                    vec![],
                    json!({ "error": "invalid_grant", "error_description": "nope" }).to_string(),
                );
            }
            Some("authorization_code") => json!({
                "access_token": access, "token_type": "Bearer", "expires_in": expires_in,
                "refresh_token": "rt1", "scope": "scim.read scim.write entitlements.read"
            }),
            Some("refresh_token") => json!({
                "access_token": if access == "at1" { format!("at{}", i + 1) } else { access.clone() },
                "token_type": "bearer", "expires_in": expires_in
            }),
            _ => {
                return (
                    400,
                    vec![],
                    json!({ "error": "unsupported_grant_type" }).to_string(),
                );
            }
        };
        (
            200,
            vec![("content-type", "application/json".to_owned())],
            body.to_string(),
        )
    }
}

fn config(capture: &Capture, auth: ClientAuth) -> OAuthClientConfig {
    let mut c = OAuthClientConfig::okta(
        AUTHORIZE,
        Upstream::via(TOKEN, &capture.url).unwrap(),
        "cl-scim-us",
        "s3cret/+=",
    )
    .unwrap();
    c.client_auth = auth;
    c
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn the_authorize_url_carries_what_okta_sends() {
    let capture = Capture::start(token_endpoint("at1", 3600)).await;
    let mut client = OAuthClient::new(config(&capture, ClientAuth::Basic), Clock::new()).unwrap();
    let req = client.authorize_url();
    let url = &req.url;
    assert!(url.as_str().starts_with(AUTHORIZE));
    assert_eq!(param(url, "response_type").as_deref(), Some("code"));
    assert_eq!(param(url, "client_id").as_deref(), Some("cl-scim-us"));
    assert_eq!(
        param(url, "redirect_uri").as_deref(),
        Some("https://system-admin.okta.com/admin/app/cpc/closedloop/oauth/callback")
    );
    assert_eq!(
        okta_callback("x"),
        "https://system-admin.okta.com/admin/app/cpc/x/oauth/callback"
    );
    assert_eq!(
        param(url, "scope").as_deref(),
        Some("scim.read scim.write entitlements.read")
    );
    assert_eq!(param(url, "state"), Some(req.state.clone()));
    assert_eq!(param(url, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param(url, "code_challenge").unwrap().len(), 43);
    // A new authorization, a new state; no PKCE when turned off.
    let mut plain = config(&capture, ClientAuth::Basic);
    plain.pkce = false;
    let mut client2 = OAuthClient::new(plain, Clock::new()).unwrap();
    let req2 = client2.authorize_url();
    assert_ne!(req2.state, req.state);
    assert!(param(&req2.url, "code_challenge").is_none());
}

#[tokio::test]
async fn code_exchange_by_basic_or_post_then_refresh_when_expired() {
    let capture = Capture::start(token_endpoint("at1", 3600)).await;
    let clock = Clock::new();
    let mut client = OAuthClient::new(config(&capture, ClientAuth::Basic), clock.clone()).unwrap();
    let req = client.authorize_url();
    let challenge = param(&req.url, "code_challenge").unwrap();
    let callback = format!(
        "{}?code=c1&state={}",
        okta_callback("closedloop"),
        req.state
    );
    client.complete(&callback).await.unwrap();

    let sent = &capture.requests()[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.uri, "/api/okta/scim/oauth/token");
    assert_eq!(sent.headers["host"], "api.closedloop.localhost");
    // RFC 6749 §2.3.1: each part form-encoded, then base64.
    let expected = format!("Basic {}", STANDARD.encode("cl-scim-us:s3cret%2F%2B%3D"));
    assert_eq!(sent.headers["authorization"].to_str().unwrap(), expected);
    let f = form(sent);
    assert_eq!(f["grant_type"], "authorization_code");
    assert_eq!(f["code"], "c1");
    assert_eq!(f["redirect_uri"], okta_callback("closedloop"));
    assert_eq!(s256(&f["code_verifier"]), challenge);
    assert!(!f.contains_key("client_secret"));

    // The token is used as is until it nears expiry, then refreshed once.
    assert_eq!(client.access_token().await.unwrap(), "at1");
    assert_eq!(capture.requests().len(), 1);
    clock.advance(Duration::from_secs(3600 - 29));
    let refreshed = client.access_token().await.unwrap();
    assert_eq!(refreshed, "at2");
    let f = form(&capture.requests()[1]);
    assert_eq!(f["grant_type"], "refresh_token");
    assert_eq!(f["refresh_token"], "rt1");
    assert_eq!(
        client
            .tokens()
            .unwrap()
            .refresh_token
            .as_ref()
            .unwrap()
            .expose(),
        "rt1",
        "kept when the refresh answer has none"
    );
    assert_eq!(client.access_token().await.unwrap(), "at2");
    assert_eq!(capture.requests().len(), 2);

    // client_secret_post.
    let mut post = OAuthClient::new(config(&capture, ClientAuth::Post), clock).unwrap();
    let req = post.authorize_url();
    post.exchange_code("c2", &req.state).await.unwrap();
    let sent = capture.requests().pop().unwrap();
    assert!(sent.headers.get("authorization").is_none());
    let f = form(&sent);
    assert_eq!(f["client_id"], "cl-scim-us");
    assert_eq!(f["client_secret"], "s3cret/+=");
}

#[tokio::test]
async fn callback_and_endpoint_errors_are_reported() {
    let capture = Capture::start(token_endpoint("at1", 60)).await;
    let mut client = OAuthClient::new(config(&capture, ClientAuth::Basic), Clock::new()).unwrap();
    assert!(matches!(
        client.access_token().await,
        Err(OAuthError::NotAuthorized)
    ));
    assert!(matches!(
        client.exchange_code("c", "s").await,
        Err(OAuthError::NoPendingAuthorization)
    ));
    let req = client.authorize_url();
    let cb = okta_callback("closedloop");
    assert!(matches!(
        client.complete(&format!("{cb}?code=c&state=other")).await,
        Err(OAuthError::StateMismatch)
    ));
    assert!(matches!(
        client.complete(&format!("{cb}?state={}", req.state)).await,
        Err(OAuthError::MissingCode)
    ));
    match client
        .complete(&format!(
            "{cb}?error=access_denied&error_description=no&state={}",
            req.state
        ))
        .await
    {
        Err(OAuthError::Denied { error, description }) => {
            assert_eq!(
                (error.as_str(), description.as_deref()),
                ("access_denied", Some("no"))
            );
        }
        other => panic!("{other:?}"),
    }
    let req = client.authorize_url();
    match client.exchange_code("bad", &req.state).await {
        Err(OAuthError::Endpoint { status, error, .. }) => {
            assert_eq!((status, error.as_str()), (400, "invalid_grant"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        capture.requests().len() == 1,
        "the state mismatch sent nothing"
    );
}

#[tokio::test]
async fn a_provisioning_job_refreshes_an_expired_token_first() {
    let setup = ScimSetup::start().await;
    // The token endpoint hands out the operator's real SCIM token (our OAuth server does
    // not exist yet), valid one minute.
    let capture = Capture::start(token_endpoint(&setup.scim.token, 60)).await;
    let sim = OktaSim::start().await.unwrap();
    let mut client =
        OAuthClient::new(config(&capture, ClientAuth::Basic), sim.clock().clone()).unwrap();
    let req = client.authorize_url();
    client.exchange_code("c1", &req.state).await.unwrap();
    let app = sim.app();
    app.connect_scim(ScimSettings::new(
        setup.upstream(),
        ScimAuth::OAuth(Box::new(client)),
    ))
    .unwrap();

    let a = sim.add_user(NewUser::new("a@acme.test", "A", "A")).unwrap();
    assert!(matches!(
        app.assign(&a).await.unwrap(),
        Provisioned::Created(_)
    ));
    assert_eq!(capture.requests().len(), 1, "no refresh while valid");
    sim.clock().advance(Duration::from_secs(60));
    let b = sim.add_user(NewUser::new("b@acme.test", "B", "B")).unwrap();
    assert!(matches!(
        app.assign(&b).await.unwrap(),
        Provisioned::Created(_)
    ));
    let reqs = capture.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(form(&reqs[1])["grant_type"], "refresh_token");
}

fn path_of(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    format!("{}?{}", u.path(), u.query().unwrap_or_default())
}

#[tokio::test]
async fn obtains_and_refreshes_the_scim_token_through_our_oauth_server() {
    use crate::harness::{TestStack, US_API, US_APP, US_SCIM_CLIENT_ID, US_SCIM_CLIENT_SECRET};
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let admin_cookie = stack.sign_in_with_link(Region::Us, &ws).await;
    let sim = OktaSim::start().await.unwrap();
    let mut config = OAuthClientConfig::okta(
        &format!("http://{US_API}/api/okta/scim/oauth/authorize"),
        Upstream::via(
            &format!("http://{US_API}/api/okta/scim/oauth/token"),
            &stack.gateway.url(),
        )
        .unwrap(),
        US_SCIM_CLIENT_ID,
        US_SCIM_CLIENT_SECRET,
    )
    .unwrap();
    config.redirect_uri = crate::harness::okta_callback(4443, "closedloop");
    let mut client = OAuthClient::new(config, sim.clock().clone()).unwrap();

    // The admin's browser: authorize on the API host, consent on the app host.
    let req = client.authorize_url();
    let r = stack
        .get(US_API, &path_of(req.url.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let consent = r.headers()["location"].to_str().unwrap().to_owned();
    let html = stack
        .get(US_APP, &path_of(&consent))
        .header("cookie", &admin_cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = stack
        .request(reqwest::Method::POST, US_APP, "/oauth/consent")
        .header("cookie", &admin_cookie)
        .form(&[
            ("request", hidden(&html, "request").unwrap()),
            ("csrf", hidden(&html, "csrf").unwrap()),
            ("decision", "approve".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    client.complete(&back).await.unwrap();
    let tokens = client.tokens().unwrap().clone();
    assert!(tokens.refresh_token.is_some());
    let first = tokens.access_token.expose().to_owned();

    // Past the access token's lifetime on both sides, the token is refreshed.
    let ttl = tokens.expires_at.unwrap() - sim.clock().now();
    let ttl = Duration::from_secs(u64::try_from(ttl).unwrap());
    sim.clock().advance(ttl);
    stack.advance_clock(Region::Us, ttl);
    let second = client.access_token().await.unwrap();
    assert_ne!(second, first);

    // A provisioning job with it.
    let app = sim.app();
    let base = Upstream::via(
        &format!("http://{US_API}/api/scim/v2/{}", ws.team_id),
        &stack.gateway.url(),
    )
    .unwrap();
    app.connect_scim(ScimSettings::new(base, ScimAuth::OAuth(Box::new(client))))
        .unwrap();
    let u = sim
        .add_user(NewUser::new("jane@acme.test", "Jane", "Doe"))
        .unwrap();
    assert!(matches!(
        app.assign(&u).await.unwrap(),
        Provisioned::Created(_)
    ));
}
