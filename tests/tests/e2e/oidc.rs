//! Okta sign-in (OKTA.md §8, the seed's Steps 2–3 and the first half of its Testing
//! section) through the gateway, against the simulated Okta org and against an
//! independent, OpenID-certified provider (`oidc-provider` on Node): the Integrations >
//! Okta page, email discovery, the code flow with PKCE, the hand-off to the app host,
//! sign-out through Okta's logout, just-in-time provisioning and its SCIM linking, key
//! rotation, every bad ID token, Okta errors, replays, an unreachable Okta, and session
//! lifetimes.
//!
//! [`Web`] plays the browser: a cookie jar per host, redirects followed, region hosts
//! reached through the gateway with their `Host` header, everything else directly.

use std::collections::HashMap;
use std::time::Duration;

use closedloop_tests::harness::{TestStack, Workspace, pg_connect};
use closedloop_tests::okta_page::{Setup, save_setup};
use closedloop_tests::okta_sim::faults::{IdTokenFault, TokenFault};
use closedloop_tests::okta_sim::{OktaSim, SimConfig};
use closedloop_tests::okta_world::{audit, failure_reasons, okta_user, provision, session_count};
use closedloop_tests::region::Region;
use closedloop_tests::web::{Page, Web, hidden};
use serde_json::{Value, json};

const APP: &str = "http://app.closedloop.localhost";
const API: &str = "http://api.closedloop.localhost";
const OKTA_PAGE: &str = "http://app.closedloop.localhost/integrations/okta";

/// The sim's org domain as typed on the page (development switch: loopback).
fn sim_domain(sim: &OktaSim) -> String {
    sim.base_url().trim_start_matches("http://").to_owned()
}

/// A stack, a US workspace whose admin is signed in, and a sim org connected to it.
struct World {
    admin: Web,
    ws: Workspace,
    sim: OktaSim,
}

async fn world(stack: &TestStack, jit: bool) -> World {
    let sim = OktaSim::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let mut admin = Web::new(&stack.gateway.url());
    admin.sign_in_with_link(&ws.sign_in_url).await.unwrap();
    let app = sim.app();
    let secret = app.client_secret();
    let saved = save_setup(
        &mut admin,
        &Setup {
            domain: &sim_domain(&sim),
            client_id: app.client_id(),
            secret: &secret,
            enabled: true,
            jit,
        },
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    World { admin, ws, sim }
}

#[tokio::test]
async fn the_okta_page_saves_the_setup_and_a_provisioned_user_signs_in_and_out() {
    let stack = TestStack::start().await.unwrap();
    let sim = OktaSim::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let mut admin = Web::new(&stack.gateway.url());
    admin.sign_in_with_link(&ws.sign_in_url).await.unwrap();

    // The page: team_id, the form with the seed's defaults, the region's values.
    let page = admin.get(OKTA_PAGE).await.unwrap();
    assert_eq!(page.status, 200);
    for text in [
        ws.team_id.as_str(),
        "Okta domain",
        "Client ID",
        "Client secret",
        "Enable Okta sign-in",
        "Just-in-time provisioning",
        "Save Okta setup",
        "http://api.closedloop.localhost/api/okta/oidc/callback",
        "http://api.closedloop.localhost/api/okta/oidc/login?team_id={app.team_id}",
        "http://app.closedloop.localhost/auth",
        "http://api.closedloop.localhost/api/okta/universal-logout",
        "SIGNED_JWT",
        "&#39;http://api.closedloop.localhost/api/scim/v2/&#39; + app.team_id",
        "http://api.closedloop.localhost/api/okta/scim/oauth/authorize",
        "http://api.closedloop.localhost/api/okta/scim/oauth/token",
        "scim.read, scim.write, entitlements.read",
        "ClosedLoop AI workspace roles",
        "Provisioning connections",
    ] {
        assert!(page.body.contains(text), "the page lacks {text:?}");
    }
    assert!(page.body.contains(
        "id=\"sign_in_enabled\" name=\"sign_in_enabled\" type=\"checkbox\" value=\"on\" checked"
    ));
    assert!(!page.body.contains(
        "id=\"jit_provisioning\" name=\"jit_provisioning\" type=\"checkbox\" value=\"on\" checked"
    ));

    let app = sim.app();
    let secret = app.client_secret();
    let saved = save_setup(
        &mut admin,
        &Setup {
            domain: &format!("http://{}/", sim_domain(&sim)),
            client_id: app.client_id(),
            secret: &secret,
            enabled: true,
            jit: false,
        },
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let page = admin.follow(saved).await.unwrap();
    assert!(page.body.contains("Okta setup saved"));
    assert!(
        page.body
            .contains(&format!("<code id=\"issuer\">{}</code>", sim.issuer()))
    );
    assert!(!page.body.contains(&secret), "the secret is write-only");

    // Stored sealed, never in clear; audited without it.
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let row = db
        .query_one(
            "SELECT client_secret_sealed, key_id, issuer FROM okta_settings",
            &[],
        )
        .await
        .unwrap();
    let sealed: Vec<u8> = row.get(0);
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
    assert!(row.get::<_, String>(1).starts_with("k1-"));
    assert_eq!(row.get::<_, String>(2), sim.issuer());
    let events = audit(&stack, Some(&ws.team_id)).await;
    let created = events
        .iter()
        .find(|(a, _, _)| a == "okta.settings.created")
        .expect("audited");
    assert!(!created.2.to_string().contains(&secret));

    // The seed's Testing: assign, provision, sign in with the email, land signed in.
    let jane = okta_user(&sim, "jane@acme.test").await;
    provision(&stack, &ws, "jane@acme.test", jane.as_str()).await;
    let mut browser = Web::new(&stack.gateway.url());
    let start = browser
        .post(&format!("{APP}/auth"), &[("email", "Jane@Acme.TEST")])
        .await
        .unwrap();
    assert_eq!(start.status, 303);
    let (trail, home) = browser.trail(start).await.unwrap();
    assert!(
        trail[1].starts_with(&format!("{API}/api/okta/oidc/login?team_id={}", ws.team_id)),
        "{trail:?}"
    );
    let authorize = url::Url::parse(&trail[2]).unwrap();
    assert!(trail[2].starts_with(&format!("{}/oauth2/v1/authorize", sim.issuer())));
    let q: HashMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["redirect_uri"], format!("{API}/api/okta/oidc/callback"));
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["login_hint"], "Jane@Acme.TEST");
    assert!(q.contains_key("nonce") && q.contains_key("state"));
    assert!(trail[3].starts_with(&format!("{API}/api/okta/oidc/callback?")));
    assert!(trail[4].starts_with(&format!("{APP}/auth/complete?code=clk_us_otc_")));
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(
        home.body
            .contains("Signed in as <strong>jane@acme.test</strong>"),
        "{}",
        home.body
    );
    assert!(
        browser
            .cookie("app.closedloop.localhost", "clk_session")
            .is_some()
    );
    assert!(
        browser
            .cookie("api.closedloop.localhost", "clk_session")
            .is_none(),
        "the session cookie lives on the app host only"
    );
    // The hand-off code works once.
    let again = browser.get(&trail[4]).await.unwrap();
    assert_eq!(again.status, 400);
    assert!(again.body.contains("expired"));

    // Sign-out: Okta's logout with the ID token hint, back to /auth.
    let csrf = hidden(&home.body, "csrf").unwrap();
    let out = browser
        .post(&format!("{APP}/auth/sign-out"), &[("csrf", &csrf)])
        .await
        .unwrap();
    assert_eq!(out.status, 303);
    let logout = out.location.clone().unwrap();
    assert!(
        logout.starts_with(&format!("{}/oauth2/v1/logout?id_token_hint=", sim.issuer())),
        "{logout}"
    );
    assert!(
        logout.contains("post_logout_redirect_uri=http%3A%2F%2Fapp.closedloop.localhost%2Fauth")
    );
    let landed = browser.follow(out).await.unwrap();
    assert!(
        landed.url.starts_with(&format!("{APP}/auth?state=")),
        "{}",
        landed.url
    );
    assert!(landed.body.contains("You are signed out"));
    let logouts = sim.logouts();
    assert_eq!(logouts.len(), 1);
    assert_eq!(logouts[0].client_id, app.client_id());
    assert_eq!(logouts[0].user, jane.as_str());
    // The session is gone.
    let home = browser.get(&format!("{APP}/")).await.unwrap();
    assert_eq!(home.location.as_deref(), Some(&*format!("{APP}/auth")));
    let actions: Vec<String> = audit(&stack, Some(&ws.team_id))
        .await
        .into_iter()
        .map(|(a, _, _)| a)
        .collect();
    assert!(
        actions.contains(&"session.signed_in.okta".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"session.signed_out".to_owned()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_login_from_the_okta_dashboard_checks_iss_and_lands_on_the_target() {
    let stack = TestStack::start().await.unwrap();
    let w = world(&stack, false).await;
    let jane = okta_user(&w.sim, "jane@acme.test").await;
    provision(&stack, &w.ws, "jane@acme.test", jane.as_str()).await;
    let mut browser = Web::new(&stack.gateway.url());
    let iss = url::form_urlencoded::byte_serialize(w.sim.issuer().as_bytes()).collect::<String>();
    let target = url::form_urlencoded::byte_serialize(format!("{APP}/?from=okta").as_bytes())
        .collect::<String>();
    let start = browser
        .get(&format!(
            "{API}/api/okta/oidc/login?team_id={}&iss={iss}&target_link_uri={target}",
            w.ws.team_id
        ))
        .await
        .unwrap();
    // Begun at Okta's dashboard, not on the app host: the person confirms (issue 14).
    let asked = browser.follow(start).await.unwrap();
    let landed = browser.confirm(asked).await.unwrap();
    assert_eq!(landed.url, format!("{APP}/?from=okta"));
    assert!(landed.body.contains("jane@acme.test"));

    // `iss` alone finds the workspace; another org's `iss` is refused.
    let mut other = Web::new(&stack.gateway.url());
    let p = other
        .go_confirmed(&format!("{API}/api/okta/oidc/login?iss={iss}"))
        .await
        .unwrap();
    assert!(p.body.contains("jane@acme.test"), "{}", p.body);
    let p = other
        .get(&format!(
            "{API}/api/okta/oidc/login?team_id={}&iss=https%3A%2F%2Fevil.okta.com",
            w.ws.team_id
        ))
        .await
        .unwrap();
    assert_eq!(p.status, 400);
    assert!(p.body.contains("another Okta org"));
    // Unknown workspaces.
    for q in [
        "team_id=not-a-uuid",
        "team_id=6f9619ff-8b86-d011-b42d-00c04fc964ff",
        "",
    ] {
        let p = other
            .get(&format!("{API}/api/okta/oidc/login?{q}"))
            .await
            .unwrap();
        assert_eq!(p.status, 404, "{q}");
    }
    let reasons = failure_reasons(&audit(&stack, Some(&w.ws.team_id)).await);
    assert_eq!(reasons, ["issuer_mismatch"]);
}

#[tokio::test]
async fn jit_creates_a_member_whom_scim_later_links_without_a_duplicate() {
    let stack = TestStack::start().await.unwrap();
    let w = world(&stack, true).await;
    let bob = okta_user(&w.sim, "bob@acme.test").await;
    // Not provisioned: /auth cannot find an unknown email; the dashboard login can.
    let mut browser = Web::new(&stack.gateway.url());
    let p = browser
        .post(&format!("{APP}/auth"), &[("email", "bob@acme.test")])
        .await
        .unwrap();
    assert_eq!(p.status, 404);
    let landed = browser
        .go_confirmed(&format!(
            "{API}/api/okta/oidc/login?team_id={}",
            w.ws.team_id
        ))
        .await
        .unwrap();
    assert!(
        landed
            .body
            .contains("Signed in as <strong>bob@acme.test</strong>"),
        "{}",
        landed.body
    );
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let row = db
        .query_one(
            "SELECT u.id, u.source, u.external_id, r.key FROM users u
               JOIN user_roles ur ON ur.team_id = u.team_id AND ur.user_id = u.id
               JOIN roles r ON r.team_id = ur.team_id AND r.id = ur.role_id
              WHERE lower(u.user_name) = 'bob@acme.test'",
            &[],
        )
        .await
        .unwrap();
    let jit_id: uuid::Uuid = row.get(0);
    assert_eq!(row.get::<_, String>(1), "jit");
    assert_eq!(row.get::<_, Option<String>>(2), None);
    assert_eq!(row.get::<_, String>(3), "member");
    let actions: Vec<String> = audit(&stack, Some(&w.ws.team_id))
        .await
        .into_iter()
        .map(|(a, _, _)| a)
        .collect();
    assert!(actions.contains(&"oidc.user.jit_created".to_owned()));

    // Okta provisions him later: the same person, linked, no 409.
    let scim_id = provision(&stack, &w.ws, "BOB@acme.test", bob.as_str()).await;
    assert_eq!(scim_id, jit_id.to_string());
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM users WHERE lower(user_name) = 'bob@acme.test'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // And signs in again as that user.
    let mut again = Web::new(&stack.gateway.url());
    let home = again
        .sign_in_with_email(APP, "bob@acme.test")
        .await
        .unwrap();
    assert!(
        home.body
            .to_lowercase()
            .contains("signed in as <strong>bob@acme.test</strong>"),
        "{}",
        home.body
    );
}

#[tokio::test]
async fn unprovisioned_deactivated_and_disabled_users_get_a_clear_page_and_no_session() {
    let stack = TestStack::start().await.unwrap();
    let w = world(&stack, false).await;
    let before = session_count(&stack).await;
    // Unknown, JIT off.
    let carol = okta_user(&w.sim, "carol@acme.test").await;
    let mut browser = Web::new(&stack.gateway.url());
    let p = browser
        .go(&format!(
            "{API}/api/okta/oidc/login?team_id={}",
            w.ws.team_id
        ))
        .await
        .unwrap();
    assert_eq!(p.status, 403);
    assert!(
        p.body.contains("do not have an account in this"),
        "{}",
        p.body
    );
    assert!(p.body.contains("Just-in-time provisioning"));
    // Provisioned, then deactivated by SCIM.
    let scim_id = provision(&stack, &w.ws, "carol@acme.test", carol.as_str()).await;
    let scim = stack.scim(Region::Us, &w.ws.team_id, "").await;
    let (status, _) = scim
        .patch(
            &format!("/Users/{scim_id}"),
            &json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{ "op": "replace", "value": { "active": false } }] }),
        )
        .await;
    assert_eq!(status, 200);
    let p = browser
        .sign_in_with_email(APP, "carol@acme.test")
        .await
        .unwrap();
    assert_eq!(p.status, 403);
    assert!(p.body.contains("deactivated"), "{}", p.body);
    // Sign-in turned off: /auth says so, and so does the login endpoint.
    let app = w.sim.app();
    let mut admin = w.admin;
    let saved = save_setup(
        &mut admin,
        &Setup {
            domain: &sim_domain(&w.sim),
            client_id: app.client_id(),
            secret: "",
            enabled: false,
            jit: false,
        },
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let p = browser
        .post(&format!("{APP}/auth"), &[("email", "admin@acme.test")])
        .await
        .unwrap();
    assert_eq!(p.status, 403);
    assert!(p.body.contains("turned off"));
    let p = browser
        .get(&format!(
            "{API}/api/okta/oidc/login?team_id={}",
            w.ws.team_id
        ))
        .await
        .unwrap();
    assert_eq!(p.status, 403);
    assert_eq!(
        session_count(&stack).await,
        before,
        "no refusal creates a session"
    );
    let reasons = failure_reasons(&audit(&stack, Some(&w.ws.team_id)).await);
    assert_eq!(
        reasons,
        ["not_provisioned", "user_deactivated", "sign_in_disabled"]
    );
}

/// Starts a sign-in of `email` and stops at the callback; returns the callback URL.
async fn callback_url(web: &mut Web, ws: &Workspace) -> String {
    let mut p = web
        .get(&format!("{API}/api/okta/oidc/login?team_id={}", ws.team_id))
        .await
        .unwrap();
    for _ in 0..4 {
        let next = p.location.clone().expect("a redirect");
        if next.starts_with(&format!("{API}/api/okta/oidc/callback")) {
            return next;
        }
        p = web.get(&next).await.unwrap();
    }
    panic!("no callback");
}

#[tokio::test]
async fn every_bad_id_token_is_refused_audited_and_creates_no_session() {
    let stack = TestStack::start().await.unwrap();
    let w = world(&stack, true).await;
    okta_user(&w.sim, "dave@acme.test").await;
    let before = session_count(&stack).await;
    let mut browser = Web::new(&stack.gateway.url());
    for fault in [
        IdTokenFault::WrongAudience,
        IdTokenFault::WrongIssuer,
        IdTokenFault::WrongNonce,
        IdTokenFault::Expired,
        IdTokenFault::UnpublishedKey,
    ] {
        w.sim.faults().id_token(Some(fault));
        let cb = callback_url(&mut browser, &w.ws).await;
        let p = browser.get(&cb).await.unwrap();
        assert_eq!(p.status, 400, "{fault:?}: {}", p.body);
        assert!(p.body.contains("could not be verified"), "{fault:?}");
        assert!(p.set_cookies.is_empty(), "{fault:?}");
    }
    assert_eq!(
        failure_reasons(&audit(&stack, Some(&w.ws.team_id)).await),
        [
            "bad_id_token:wrong_audience",
            "bad_id_token:wrong_issuer",
            "bad_id_token:wrong_nonce",
            "bad_id_token:expired",
            "bad_id_token:unknown_key",
        ]
    );
    assert_eq!(session_count(&stack).await, before);
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let n: i64 = db
        .query_one("SELECT count(*) FROM users WHERE source = 'jit'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "no bad token creates a user");
    // Good tokens again.
    w.sim.faults().clear();
    let cb = callback_url(&mut browser, &w.ws).await;
    let asked = browser.go(&cb).await.unwrap();
    let home = browser.confirm(asked).await.unwrap();
    assert!(home.body.contains("dave@acme.test"));
}

/// A full sign-in from the Initiate login URI in a fresh browser, confirmed on the
/// app host when it gets that far.
async fn sign_in(stack: &TestStack, ws: &Workspace) -> Page {
    let mut web = Web::new(&stack.gateway.url());
    let p = web
        .go(&format!("{API}/api/okta/oidc/login?team_id={}", ws.team_id))
        .await
        .unwrap();
    if p.body.contains("<h1>Continue as ") {
        web.confirm(p).await.unwrap()
    } else {
        p
    }
}

#[tokio::test]
async fn signing_keys_rotate_without_breaking_sign_in() {
    let stack = TestStack::start().await.unwrap();
    let w = world(&stack, true).await;
    okta_user(&w.sim, "erin@acme.test").await;
    assert!(sign_in(&stack, &w.ws).await.body.contains("erin@acme.test"));
    let keys = w.sim.keys();
    let old = keys.signing_kid();
    let jwks = url::Url::parse(&format!("{}/oauth2/v1/keys", w.sim.issuer())).unwrap();
    let cache = &stack.worker(Region::Us).state.okta.jwks;
    assert_eq!(cache.cached_kids(&jwks), [old.as_str()]);

    // Okta's three steps: publish (the cache still has the old set), sign with it
    // (unknown kid: one refetch, at once), retire.
    let new = keys.publish_new().await.unwrap();
    assert!(sign_in(&stack, &w.ws).await.body.contains("erin@acme.test"));
    keys.activate(&new).unwrap();
    assert!(sign_in(&stack, &w.ws).await.body.contains("erin@acme.test"));
    assert_eq!(cache.cached_kids(&jwks), [old.as_str(), new.as_str()]);
    keys.retire(&old).unwrap();
    assert!(sign_in(&stack, &w.ws).await.body.contains("erin@acme.test"));

    // An abrupt rotation right after a fetch: the sign-in waits for the next refetch
    // (at most the refetch interval) instead of failing (issue 14, section 4).
    let abrupt = keys.rotate().await.unwrap();
    assert!(sign_in(&stack, &w.ws).await.body.contains("erin@acme.test"));
    assert!(cache.cached_kids(&jwks).contains(&abrupt));
}

#[tokio::test]
async fn okta_errors_replays_foreign_browsers_and_an_unreachable_okta_get_pages() {
    let stack = TestStack::start().await.unwrap();
    let w = world(&stack, true).await;
    okta_user(&w.sim, "fay@acme.test").await;
    let before = session_count(&stack).await;
    let mut browser = Web::new(&stack.gateway.url());

    // Okta denies.
    w.sim.faults().deny_authorize(true);
    let cb = callback_url(&mut browser, &w.ws).await;
    let p = browser.get(&cb).await.unwrap();
    assert_eq!(p.status, 403);
    assert!(p.body.contains("access_denied"));
    w.sim.faults().clear();

    // A replayed callback, and one with an unknown state.
    let cb = callback_url(&mut browser, &w.ws).await;
    let first = browser.get(&cb).await.unwrap();
    assert_eq!(first.status, 303);
    let asked = browser.follow(first).await.unwrap();
    assert!(
        browser
            .confirm(asked)
            .await
            .unwrap()
            .body
            .contains("fay@acme.test")
    );
    let replay = browser.get(&cb).await.unwrap();
    assert_eq!(replay.status, 400);
    assert!(replay.body.contains("already used"));
    let p = browser
        .get(&format!(
            "{API}/api/okta/oidc/callback?code=x&state=never-issued"
        ))
        .await
        .unwrap();
    assert_eq!(p.status, 400);
    assert!(p.body.contains("expired"));

    // A callback delivered to another browser (no flow cookie).
    let cb = callback_url(&mut browser, &w.ws).await;
    let mut stranger = Web::new(&stack.gateway.url());
    let p = stranger.get(&cb).await.unwrap();
    assert_eq!(p.status, 400);
    assert!(p.body.contains("another browser"));

    // The token endpoint fails, then Okta is gone.
    w.sim.faults().token_endpoint(TokenFault::Fail {
        status: 503,
        error: "temporarily_unavailable".into(),
    });
    let cb = callback_url(&mut browser, &w.ws).await;
    let p = browser.get(&cb).await.unwrap();
    assert_eq!(p.status, 400);
    assert!(p.body.contains("callback failed"));
    w.sim.faults().clear();
    let cb = callback_url(&mut browser, &w.ws).await;
    w.sim.stop().await.unwrap();
    let p = browser.get(&cb).await.unwrap();
    assert_eq!(p.status, 502, "{}", p.body);
    assert!(p.body.contains("cannot be reached"));
    assert_eq!(
        session_count(&stack).await,
        before + 1,
        "only the one good sign-in"
    );

    let team = failure_reasons(&audit(&stack, Some(&w.ws.team_id)).await);
    assert_eq!(
        team,
        [
            "okta_error",
            "state_replayed",
            "browser_mismatch",
            "token_refused",
            "okta_unreachable"
        ]
    );
    assert_eq!(
        failure_reasons(&audit(&stack, None).await),
        ["state_unknown"]
    );
}

#[tokio::test]
async fn an_okta_that_does_not_answer_times_out_into_a_page() {
    let stack = TestStack::start_configured(1, false, |c| {
        c.sign_in.okta_timeout = Duration::from_secs(1);
    })
    .await
    .unwrap();
    let w = world(&stack, true).await;
    okta_user(&w.sim, "fay@acme.test").await;
    let mut browser = Web::new(&stack.gateway.url());
    w.sim.faults().token_endpoint(TokenFault::Hang);
    let cb = callback_url(&mut browser, &w.ws).await;
    let p = browser.get(&cb).await.unwrap();
    assert_eq!(p.status, 502);
    assert!(p.body.contains("cannot be reached"));
    assert!(p.set_cookies.is_empty());
    // The sim is dropped, not stopped: a graceful stop would wait for the hung request.
}

#[tokio::test]
async fn sessions_end_when_idle_after_their_absolute_lifetime_and_on_deactivation() {
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let home = format!("{APP}/");
    // Deactivation by SCIM ends a live session at once (before the clock moves: the
    // sim's ID tokens carry real times).
    let w = world(&stack, false).await;
    let gus = okta_user(&w.sim, "gus@acme.test").await;
    let scim_id = provision(&stack, &w.ws, "gus@acme.test", gus.as_str()).await;
    let mut c = Web::new(&stack.gateway.url());
    assert!(
        c.sign_in_with_email(APP, "gus@acme.test")
            .await
            .unwrap()
            .body
            .contains("gus@acme.test")
    );
    let (status, _) = stack
        .scim(Region::Us, &w.ws.team_id, "")
        .await
        .patch(
            &format!("/Users/{scim_id}"),
            &json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{ "op": "replace", "value": { "active": false } }] }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(c.get(&home).await.unwrap().status, 303);

    // Sliding idle: used every 7 h, alive until the 12 h absolute limit.
    let mut a = Web::new(&stack.gateway.url());
    a.sign_in_with_link(&ws.sign_in_url).await.unwrap();
    stack.advance_clock(Region::Us, Duration::from_secs(7 * 3600));
    assert_eq!(a.get(&home).await.unwrap().status, 200);
    stack.advance_clock(Region::Us, Duration::from_secs(4 * 3600));
    assert_eq!(a.get(&home).await.unwrap().status, 200);
    stack.advance_clock(Region::Us, Duration::from_secs(3600 + 60));
    assert_eq!(a.get(&home).await.unwrap().status, 303, "past 12 h");

    // Idle for more than 8 h.
    let w_ws = stack.workspace(Region::Us, "Beta", "admin@beta.test").await;
    let mut b = Web::new(&stack.gateway.url());
    b.sign_in_with_link(&w_ws.sign_in_url).await.unwrap();
    stack.advance_clock(Region::Us, Duration::from_secs(8 * 3600 + 61));
    assert_eq!(b.get(&home).await.unwrap().status, 303, "idle for 8 h");
}

#[tokio::test]
async fn the_okta_page_validates_each_field_and_is_for_admins_only() {
    let stack = TestStack::start().await.unwrap();
    let w = world(&stack, true).await;
    let mut admin = w.admin;
    let app = w.sim.app();
    let domain = sim_domain(&w.sim);
    let check = |page: &Page, field: &str, text: &str| {
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(
            page.body.contains(&format!("id=\"{field}-error\"")),
            "{field}: {}",
            page.body
        );
        assert!(page.body.contains(text), "{text}: {}", page.body);
    };
    let p = save_setup(
        &mut admin,
        &Setup {
            domain: "acme-admin.okta.com",
            client_id: app.client_id(),
            secret: "",
            enabled: true,
            jit: true,
        },
    )
    .await;
    check(&p, "okta_domain", "acme.okta.com");
    let p = save_setup(
        &mut admin,
        &Setup {
            domain: "user@acme.okta.com",
            client_id: app.client_id(),
            secret: "",
            enabled: true,
            jit: true,
        },
    )
    .await;
    check(&p, "okta_domain", "without a user name");
    let p = save_setup(
        &mut admin,
        &Setup {
            domain: "acme.okta.invalid",
            client_id: app.client_id(),
            secret: "",
            enabled: true,
            jit: true,
        },
    )
    .await;
    // A custom domain needs an operator's allowance first (issue 14 §1).
    check(&p, "okta_domain", "allow-okta-domain");
    assert!(
        p.body.contains("value=\"acme.okta.invalid\""),
        "entered values are kept"
    );
    let p = save_setup(
        &mut admin,
        &Setup {
            domain: &domain,
            client_id: "",
            secret: "",
            enabled: true,
            jit: true,
        },
    )
    .await;
    check(&p, "client_id", "Client ID");
    let p = save_setup(
        &mut admin,
        &Setup {
            domain: &domain,
            client_id: "0oa-other",
            secret: "",
            enabled: true,
            jit: true,
        },
    )
    .await;
    check(&p, "client_secret", "Client ID changed");

    // A discovery document naming another issuer (an org reached by another name).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let renamed = OktaSim::start_on(
        listener,
        SimConfig {
            base_url: Some(format!("http://localhost:{port}")),
            ..SimConfig::default()
        },
    )
    .await
    .unwrap();
    let p = save_setup(
        &mut admin,
        &Setup {
            domain: &format!("127.0.0.1:{port}"),
            client_id: app.client_id(),
            secret: "x",
            enabled: true,
            jit: true,
        },
    )
    .await;
    check(&p, "okta_domain", "names the issuer http://localhost:");
    drop(renamed);

    // CSRF: a missing or foreign token is refused.
    let p = admin
        .post(
            OKTA_PAGE,
            &[
                ("okta_domain", &domain),
                ("client_id", app.client_id()),
                ("csrf", "0"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(p.status, 403);

    // A member (JIT-created) gets 403; a signed-out browser goes to /auth.
    okta_user(&w.sim, "hal@acme.test").await;
    let mut member = Web::new(&stack.gateway.url());
    member
        .go_confirmed(&format!(
            "{API}/api/okta/oidc/login?team_id={}",
            w.ws.team_id
        ))
        .await
        .unwrap();
    assert_eq!(member.get(OKTA_PAGE).await.unwrap().status, 403);
    let p = Web::new(&stack.gateway.url()).get(OKTA_PAGE).await.unwrap();
    assert_eq!(
        p.location.as_deref(),
        Some("http://app.closedloop.localhost/auth?return_to=%2Fintegrations%2Fokta")
    );
}

#[tokio::test]
async fn an_email_in_several_workspaces_lets_the_user_pick() {
    let stack = TestStack::start().await.unwrap();
    let w = world(&stack, false).await;
    let ivy = okta_user(&w.sim, "ivy@acme.test").await;
    provision(&stack, &w.ws, "ivy@acme.test", ivy.as_str()).await;
    // A second workspace knows her too, without Okta.
    let other = stack
        .workspace(Region::Us, "Zeta", "zeta-admin@acme.test")
        .await;
    provision(&stack, &other, "ivy@acme.test", "x").await;
    let mut b = Web::new(&stack.gateway.url());
    let p = b
        .post(&format!("{APP}/auth"), &[("email", "ivy@acme.test")])
        .await
        .unwrap();
    assert_eq!(p.status, 200);
    assert!(p.body.contains("Sign in to Acme"));
    assert!(p.body.contains("Zeta <small>(Okta sign-in is not enabled)"));
    let p = b
        .post(
            &format!("{APP}/auth"),
            &[("email", "ivy@acme.test"), ("team_id", &w.ws.team_id)],
        )
        .await
        .unwrap();
    assert!(b.follow(p).await.unwrap().body.contains("ivy@acme.test"));
    let p = b
        .post(&format!("{APP}/auth"), &[("email", "nobody@acme.test")])
        .await
        .unwrap();
    assert_eq!(p.status, 404);
    assert!(
        p.body
            .contains("No ClosedLoop AI workspace in the US region")
    );
    let p = b
        .post(&format!("{APP}/auth"), &[("email", "not an email")])
        .await
        .unwrap();
    assert_eq!(p.status, 422);
}

/// The independent OpenID Provider (`tests/oidc-provider`), started with `node` on a
/// free port, or `None` when Node is missing and the run does not require it.
struct Provider {
    child: tokio::process::Child,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start_provider(client_id: &str, secret: &str) -> Option<Provider> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-provider");
    let required = std::env::var_os("CLOSEDLOOP_REQUIRE_NODE").is_some();
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        assert!(
            !required,
            "node is required (CLOSEDLOOP_REQUIRE_NODE is set)"
        );
        eprintln!("skipped: node is not installed");
        return None;
    }
    if !dir.join("node_modules/oidc-provider").exists() {
        let status = tokio::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .await
            .expect("npm runs");
        assert!(status.success(), "npm ci in {}", dir.display());
    }
    let mut child = tokio::process::Command::new("node")
        .arg("provider.mjs")
        .current_dir(&dir)
        .env("CLIENT_ID", client_id)
        .env("CLIENT_SECRET", secret)
        .env("REDIRECT_URI", format!("{API}/api/okta/oidc/callback"))
        .env("POST_LOGOUT_REDIRECT_URI", format!("{APP}/auth"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // Node.js starts in a second or two; a loaded CI machine may take far longer.
    let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .expect("the provider reports in time")
        .unwrap()
        .expect("a ready line");
    // Keep draining its output: a closed pipe would kill it on its next write.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line}"));
    Some(Provider {
        child,
        issuer: ready["issuer"].as_str().unwrap().to_owned(),
    })
}

#[tokio::test]
async fn an_independent_certified_openid_provider_signs_a_user_in_and_out() {
    let client_id = "closedloop-rp-test";
    let secret = "an-independent-provider-client-secret-0123456789";
    let Some(op) = start_provider(client_id, secret).await else {
        return;
    };
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let mut admin = Web::new(&stack.gateway.url());
    admin.sign_in_with_link(&ws.sign_in_url).await.unwrap();
    let saved = save_setup(
        &mut admin,
        &Setup {
            domain: op.issuer.trim_start_matches("http://"),
            client_id,
            secret,
            enabled: true,
            jit: true,
        },
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.body);

    // The provider signs in whoever `login_hint` names (its interaction is automatic),
    // puts no email in the ID token (claims come from userinfo) and signs RS256.
    let mut b = Web::new(&stack.gateway.url());
    let p = b
        .get(&format!(
            "{API}/api/okta/oidc/login?team_id={}&login_hint=kim%40acme.test",
            ws.team_id
        ))
        .await
        .unwrap();
    let (trail, asked) = b.trail(p).await.unwrap();
    let home = b.confirm(asked).await.unwrap();
    assert_eq!(home.status, 200, "{trail:?}\n{}", home.body);
    assert!(
        home.body
            .contains("Signed in as <strong>kim@acme.test</strong>"),
        "{}",
        home.body
    );
    assert!(
        trail
            .iter()
            .any(|u| u.starts_with(&format!("{}/oauth2/v1/authorize", op.issuer)))
    );

    // Sign-out through its end-session endpoint, confirmed on its page, back to /auth.
    let csrf = hidden(&home.body, "csrf").unwrap();
    let out = b
        .post(&format!("{APP}/auth/sign-out"), &[("csrf", &csrf)])
        .await
        .unwrap();
    let logout = out.location.clone().unwrap();
    assert!(
        logout.starts_with(&format!("{}/oauth2/v1/logout?id_token_hint=", op.issuer)),
        "{logout}"
    );
    let confirm = b.follow(out).await.unwrap();
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let xsrf = hidden(&confirm.body, "xsrf").unwrap();
    let action = confirm
        .body
        .split("action=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the confirmation form");
    let action = url::Url::parse(&op.issuer)
        .unwrap()
        .join(action)
        .unwrap()
        .to_string();
    let done = b
        .post(&action, &[("xsrf", &xsrf), ("logout", "yes")])
        .await
        .unwrap();
    let landed = b.follow(done).await.unwrap();
    assert!(
        landed.url.starts_with(&format!("{APP}/auth")),
        "{}",
        landed.url
    );
    assert!(landed.body.contains("You are signed out"));
    assert_eq!(b.get(&format!("{APP}/")).await.unwrap().status, 303);
}

#[tokio::test]
async fn an_okta_app_connects_to_one_workspace_only() {
    let stack = TestStack::start().await.unwrap();
    let w = world(&stack, false).await;
    let other = stack.workspace(Region::Us, "Beta", "admin@beta.test").await;
    let mut admin = Web::new(&stack.gateway.url());
    admin.sign_in_with_link(&other.sign_in_url).await.unwrap();
    let app = w.sim.app();
    let secret = app.client_secret();
    let domain = sim_domain(&w.sim);
    let setup = |client_id| Setup {
        domain: &domain,
        client_id,
        secret: &secret,
        enabled: true,
        jit: false,
    };
    // The app Acme connected: refused, with what to do instead, and nothing saved.
    let page = save_setup(&mut admin, &setup(app.client_id())).await;
    assert_eq!(page.status, 409, "{}", page.body);
    assert!(
        page.body
            .contains("already connected to another ClosedLoop workspace"),
        "{}",
        page.body
    );
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let team = uuid::Uuid::parse_str(&other.team_id).unwrap();
    let saved = db
        .query_opt("SELECT 1 FROM okta_settings WHERE team_id = $1", &[&team])
        .await
        .unwrap();
    assert!(saved.is_none());
    // Its own app (another client id of the same org) is fine.
    let page = save_setup(&mut admin, &setup("0oa-beta-own-app")).await;
    assert_eq!(page.status, 303, "{}", page.body);
}

/// A first admin made without a name takes the one in Okta's ID token
/// (`given_name`/`family_name`) at their first Okta sign-in, so Okta's SCIM SPEC list
/// test finds `name.givenName`/`familyName` on the first user; a name is never
/// overwritten, and a SCIM-provisioned user's name stays the one Okta sent over SCIM.
#[tokio::test]
async fn an_empty_name_is_filled_from_the_id_token_and_no_name_is_overwritten() {
    let stack = TestStack::start().await.unwrap();
    let w = world(&stack, false).await;
    let scim = stack.scim(Region::Us, &w.ws.team_id, "").await;
    let (status, list) = scim.get("/Users?count=1").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["Resources"][0]["name"], Value::Null, "{list}");

    let admin =
        closedloop_tests::okta_world::assigned_user(&w.sim, "admin@acme.test", "Ada", "Lovelace")
            .await;
    w.sim.set_auto_sign_in(Some(&admin));
    let home = sign_in(&stack, &w.ws).await;
    assert!(home.body.contains("admin@acme.test"), "{}", home.body);
    let (_, list) = scim.get("/Users?count=1").await;
    let first = &list["Resources"][0];
    assert_eq!(first["userName"], "admin@acme.test", "{list}");
    assert_eq!(
        first["name"],
        json!({ "givenName": "Ada", "familyName": "Lovelace" })
    );
    assert_eq!(
        first["displayName"],
        Value::Null,
        "the resource gains only `name`"
    );
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let row = db
        .query_one(
            "SELECT display_name, given_name, family_name FROM users WHERE id = $1::text::uuid",
            &[&w.ws.admin_user_id],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, Option<String>>(0),
            row.get::<_, Option<String>>(1),
            row.get::<_, Option<String>>(2)
        ),
        (
            Some("Ada Lovelace".to_owned()),
            Some("Ada".to_owned()),
            Some("Lovelace".to_owned())
        )
    );

    // Okta renames her: the name she has is kept (only an empty name is filled).
    w.sim
        .update_profile(&admin, |p| p.given_name = "Augusta".into())
        .await
        .unwrap();
    sign_in(&stack, &w.ws).await;
    let (_, list) = scim.get("/Users?count=1").await;
    assert_eq!(list["Resources"][0]["name"]["givenName"], "Ada", "{list}");

    // A SCIM-provisioned user's name is Okta's over SCIM, never the ID token's.
    let carol =
        closedloop_tests::okta_world::assigned_user(&w.sim, "carol@acme.test", "Caroline", "Jones")
            .await;
    let id = provision_scim_user_named(&stack, &w.ws, "carol@acme.test", carol.as_str()).await;
    w.sim.set_auto_sign_in(Some(&carol));
    let home = sign_in(&stack, &w.ws).await;
    assert!(home.body.contains("carol@acme.test"), "{}", home.body);
    let (_, user) = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(
        user["name"],
        json!({ "givenName": "Carol", "familyName": "Smith" })
    );
}

/// Provisions `email` as Carol Smith, as Okta would over SCIM.
async fn provision_scim_user_named(
    stack: &TestStack,
    ws: &Workspace,
    email: &str,
    external_id: &str,
) -> String {
    closedloop_tests::okta_world::provision_named(
        stack,
        &ws.team_id,
        email,
        external_id,
        "Carol",
        "Smith",
    )
    .await
}
