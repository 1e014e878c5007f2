//! Hostile input (issue 10): credentials of one workspace or region used elsewhere,
//! open redirects, CSRF on every form, session fixation, cookie flags, secrets in logs,
//! constant-time comparisons, rate limits on the credential-checking endpoints,
//! oversized and deeply nested bodies, and `X-Forwarded-*` headers sent by clients.
//!
//! What other modules already prove is not repeated here: SCIM listing across
//! workspaces and regions (`isolation`), OAuth codes, refresh tokens and clients across
//! regions (`oauth`), Universal Logout forgeries (`universal_logout`).

use std::sync::{Arc, Mutex};

use closedloop_tests::harness::{
    EU_API, EU_APP, EU_INTROSPECTION_CLIENT_ID, EU_INTROSPECTION_SECRET, RegionStores, TestStack,
    TestWorker, US_API, US_APP, US_INTROSPECTION_CLIENT_ID, US_INTROSPECTION_SECRET,
    US_SCIM_CLIENT_ID, US_SCIM_CLIENT_SECRET, Workspace, pg_connect, worker_config_from,
};
use closedloop_tests::okta_sim::OktaSim;
use closedloop_tests::okta_sim::logout::Subject;
use closedloop_tests::okta_world::{connect, okta_user, provision};
use closedloop_tests::region::Region;
use region_worker::config::RateLimit;
use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, RETRY_AFTER, SET_COOKIE};
use serde_json::{Value, json};

use closedloop_tests::okta_page::{Setup, save_setup};
use closedloop_tests::redirect::{callback, location, path_of, query_of};
use closedloop_tests::session::{get_page, post_form};
use closedloop_tests::tokens::{self, create_on_page};
use closedloop_tests::web::{Page, Web, hidden};

const APP: &str = "http://app.closedloop.localhost";
const API: &str = "http://api.closedloop.localhost";
const AUTHORIZE: &str = "/api/okta/scim/oauth/authorize";
const TOKEN: &str = "/api/okta/scim/oauth/token";
const SCIM_ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

// ---------------------------------------------------------------------------------
// Helpers

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

/// `name=value` of a `Set-Cookie` value.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// The value of a `Set-Cookie`.
fn value(set_cookie: &str) -> String {
    pair(set_cookie)
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

/// The hidden field `name` of the form posting to `action` in `html`.
fn form_field(html: &str, action: &str, name: &str) -> String {
    let at = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form for {action} in {html}"));
    hidden(&html[at..], name).unwrap()
}

fn code_of(ws: &Workspace) -> String {
    ws.sign_in_url
        .split("code=")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

/// A workspace of `region` and its first admin's session cookie.
async fn signed_in(stack: &TestStack, region: Region, name: &str) -> (Workspace, String) {
    let ws = stack
        .workspace(region, name, &format!("admin@{}.test", name.to_lowercase()))
        .await;
    let cookie = stack.sign_in_with_link(region, &ws).await;
    (ws, cookie)
}

/// Whether the session `cookie` of `app` is live (the home page shows who it is).
async fn home(stack: &TestStack, app: &str, cookie: &str) -> (u16, String) {
    let r = stack
        .get(app, "/")
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// A US workspace connected to a simulated Okta org (sign-in on), with Jane assigned,
/// signed in at Okta, and provisioned with SCIM.
struct Org {
    sim: OktaSim,
    ws: Workspace,
    okta_secret: String,
    /// Jane's id in the workspace.
    jane: String,
}

async fn okta_org(stack: &TestStack) -> Org {
    let sim = OktaSim::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    connect(stack, &ws.team_id, &sim).await;
    let okta_secret = sim.app().client_secret();
    let jane = okta_user(&sim, "jane@acme.test").await;
    let jane = provision(stack, &ws, "jane@acme.test", jane.as_str()).await;
    Org {
        sim,
        ws,
        okta_secret,
        jane,
    }
}

/// Follows a redirect chain from `url`, refusing to leave the region's hosts and the
/// simulated org: returns every URL visited and the last page.
async fn walk(web: &mut Web, url: &str, sim: &OktaSim) -> (Vec<String>, Page) {
    let mut urls = vec![url.to_owned()];
    let mut page = web.get(url).await.unwrap();
    for _ in 0..12 {
        let Some(next) = page.location.clone().filter(|_| page.status / 100 == 3) else {
            if page.status == 200 && page.body.contains("<h1>Continue as ") {
                // Begun outside the app host: the person confirms (issue 14).
                let csrf = hidden(&page.body, "csrf").unwrap();
                let confirm = format!("{APP}/auth/complete");
                page = web
                    .post(&confirm, &[("csrf", &csrf), ("decision", "continue")])
                    .await
                    .unwrap();
                urls.push(confirm);
                continue;
            }
            return (urls, page);
        };
        let ours = next.starts_with(&format!("{APP}/"))
            || next.starts_with(&format!("{API}/"))
            || next.starts_with(&format!("{}/", sim.base_url()));
        assert!(ours, "redirected off our hosts to {next:?} after {urls:?}");
        urls.push(next.clone());
        page = web.get(&next).await.unwrap();
    }
    panic!("too many redirects: {urls:?}");
}

/// Runs `/authorize` (with a PKCE `challenge`) and opens the consent page as `cookie`.
async fn consent_page(stack: &TestStack, cookie: &str, challenge: Option<&str>) -> String {
    let mut q = vec![
        ("response_type", "code".to_owned()),
        ("client_id", US_SCIM_CLIENT_ID.to_owned()),
        ("redirect_uri", callback()),
        ("state", "okta-state".to_owned()),
        ("scope", "scim.read scim.write entitlements.read".to_owned()),
    ];
    if let Some(c) = challenge {
        q.push(("code_challenge", c.to_owned()));
        q.push(("code_challenge_method", "S256".to_owned()));
    }
    let r = stack.get(US_API, AUTHORIZE).query(&q).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let page = stack
        .get(US_APP, &path_of(&location(&r)))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

/// Approves the consent page `html`: the authorization code.
async fn approve(stack: &TestStack, cookie: &str, html: &str) -> String {
    let r = stack
        .request(Method::POST, US_APP, "/oauth/consent")
        .header(COOKIE, cookie)
        .form(&[
            ("request", hidden(html, "request").unwrap()),
            ("csrf", hidden(html, "csrf").unwrap()),
            ("decision", "approve".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let back = location(&r);
    assert!(back.starts_with(&callback()), "{back}");
    query_of(&back)["code"].clone()
}

/// A token-endpoint request with `client_secret_basic`.
async fn token_request(stack: &TestStack, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = stack
        .request(Method::POST, US_API, TOKEN)
        .basic_auth(US_SCIM_CLIENT_ID, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn audit_count(stack: &TestStack, team: &str, action: &str) -> i64 {
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    db.query_one(
        "SELECT count(*) FROM audit_events WHERE team_id = $1 AND action = $2",
        &[&uuid::Uuid::parse_str(team).unwrap(), &action],
    )
    .await
    .unwrap()
    .get(0)
}

// ---------------------------------------------------------------------------------
// Credentials across workspaces and regions

#[tokio::test]
async fn personal_tokens_and_sessions_open_nothing_of_another_workspace_or_region() {
    let stack = TestStack::start().await.unwrap();
    let (a, a_cookie) = signed_in(&stack, Region::Us, "Alpha").await;
    let (_b, b_cookie) = signed_in(&stack, Region::Us, "Bravo").await;
    let a_api = create_on_page(&stack, Region::Us, &a_cookie, "a", "api").await;
    let a_mcp = create_on_page(&stack, Region::Us, &a_cookie, "a", "mcp").await;
    let b_api = create_on_page(&stack, Region::Us, &b_cookie, "b", "api").await;
    let (s, listed) = tokens::call(&stack, Region::Us, "/api/tokens", &b_api).await;
    assert_eq!(s, 200);
    let b_id = listed["tokens"][0]["id"].as_str().unwrap().to_owned();

    // A's API token cannot revoke B's token: 404 in the token API's format, and B's
    // token still works.
    let r = stack
        .request(Method::DELETE, US_API, &format!("/api/tokens/{b_id}"))
        .bearer_auth(&a_api)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "not_found", "message": "no such token"})
    );
    assert_eq!(tokens::me(&stack, Region::Us, &b_api).await, 200);

    // A's session cannot revoke B's token on the page either (valid CSRF token of A).
    let page = get_page(&stack, Region::Us, &a_cookie, "/tokens").await;
    let csrf = hidden(&page.body, "csrf").unwrap();
    let r = post_form(
        &stack,
        Region::Us,
        &a_cookie,
        "/tokens/revoke",
        &[("id", &b_id), ("csrf", &csrf)],
    )
    .await;
    assert_ne!(r.status / 100, 2, "{}", r.body);
    assert_ne!(r.status / 100, 3, "{}", r.location);
    assert_eq!(tokens::me(&stack, Region::Us, &b_api).await, 200);

    // Each token kind only where it belongs: an API token is no MCP token, no SCIM
    // token, and nothing at the other region's host.
    let (s, body) = tokens::call(&stack, Region::Us, "/api/mcp/whoami", &a_api).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_token")));
    let (s, body) = tokens::call(&stack, Region::Us, "/api/me", &a_mcp).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_token")));
    for token in [&a_api, &a_mcp] {
        let (s, body) = tokens::call(&stack, Region::Eu, "/api/me", token).await;
        assert_eq!((s, body["error"].as_str()), (401, Some("invalid_token")));
        let (s, body) = tokens::call(&stack, Region::Eu, "/api/mcp/whoami", token).await;
        assert_eq!((s, body["error"].as_str()), (401, Some("invalid_token")));
        let r = stack
            .get(US_API, &format!("/api/scim/v2/{}/Users", a.team_id))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["schemas"][0], SCIM_ERROR);
        assert_eq!(body["status"], "401");
    }
    // A session token is a cookie, never a bearer.
    let session_secret = a_cookie.split_once('=').unwrap().1.to_owned();
    let (s, _) = tokens::call(&stack, Region::Us, "/api/me", &session_secret).await;
    assert_eq!(s, 401);

    // A US session cookie is nobody at the EU app host.
    let (eu_ws, eu_cookie) = signed_in(&stack, Region::Eu, "Echo").await;
    let r = stack
        .get(EU_APP, "/tokens")
        .header(COOKIE, &a_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/auth"), "{}", location(&r));
    let (s, body) = home(&stack, EU_APP, &a_cookie).await;
    assert_eq!(s, 303, "{body}");
    // And the EU session is nobody at the US host.
    let (s, _) = home(&stack, US_APP, &eu_cookie).await;
    assert_eq!(s, 303);
    let (s, body) = home(&stack, EU_APP, &eu_cookie).await;
    assert_eq!(s, 200);
    assert!(body.contains(&eu_ws.team_id));
    assert!(!body.contains("Alpha"));
}

#[tokio::test]
async fn service_credentials_operator_tokens_and_links_stay_in_their_workspace_and_region() {
    let stack = TestStack::start().await.unwrap();
    let (a, a_cookie) = signed_in(&stack, Region::Us, "Alpha").await;
    let b = stack
        .workspace(Region::Us, "Bravo", "admin@bravo.test")
        .await;
    let a_api = create_on_page(&stack, Region::Us, &a_cookie, "a", "api").await;

    // Introspection: the US service credential is refused at the EU host with the
    // OAuth error; the EU one learns nothing about a US token.
    let r = stack
        .request(Method::POST, EU_API, "/api/tokens/introspect")
        .basic_auth(US_INTROSPECTION_CLIENT_ID, Some(US_INTROSPECTION_SECRET))
        .form(&[("token", a_api.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(!body.to_string().contains(&a.team_id));
    let r = stack
        .request(Method::POST, EU_API, "/api/tokens/introspect")
        .basic_auth(EU_INTROSPECTION_CLIENT_ID, Some(EU_INTROSPECTION_SECRET))
        .form(&[("token", a_api.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"active": false}));
    // The EU secret under the US client id (and the reverse) is no credential.
    let r = stack
        .request(Method::POST, US_API, "/api/tokens/introspect")
        .basic_auth(US_INTROSPECTION_CLIENT_ID, Some(EU_INTROSPECTION_SECRET))
        .form(&[("token", a_api.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        tokens::introspect(&stack, Region::Us, &a_api).await["active"],
        true
    );

    // An operator SCIM token of A reads nothing of B, even by B's resource id, and
    // A's path with B's user id finds nothing.
    let scim_a = stack.scim(Region::Us, &a.team_id, "").await;
    let scim_b = stack.scim(Region::Us, &b.team_id, "").await;
    let (s, secret_user) = scim_b
        .post(
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "secret.person@bravo.test",
                "name": { "givenName": "Secret", "familyName": "Person" },
                "active": true
            }),
        )
        .await;
    assert_eq!(s, 201);
    let b_user = secret_user["id"].as_str().unwrap();
    let mut cross = scim_a.clone();
    cross.team_id = b.team_id.clone();
    for path in [
        format!("/Users/{b_user}"),
        "/Users?filter=userName%20eq%20%22secret.person@bravo.test%22".to_owned(),
        "/Groups".to_owned(),
        "/Roles".to_owned(),
    ] {
        let (s, body) = cross.get(&path).await;
        assert_eq!(s, 401, "{path}: {body}");
        assert_eq!(body["schemas"][0], SCIM_ERROR);
        assert!(!body.to_string().contains("secret.person"), "{body}");
    }
    let (s, body) = cross
        .patch(
            &format!("/Users/{b_user}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "value": {"active": false}}]}),
        )
        .await;
    assert_eq!(s, 401, "{body}");
    let (s, body) = scim_a.get(&format!("/Users/{b_user}")).await;
    assert_eq!((s, body["status"].as_str()), (404, Some("404")));
    let (s, body) = scim_a.delete(&format!("/Users/{b_user}")).await;
    assert_eq!((s, body["status"].as_str()), (404, Some("404")));
    let (s, body) = scim_b.get(&format!("/Users/{b_user}")).await;
    assert_eq!((s, body["active"].as_bool()), (200, Some(true)));
    // The SCIM token is no personal token.
    assert_eq!(tokens::me(&stack, Region::Us, &scim_a.token).await, 401);

    // A first-admin link of the US region is no link at the EU app host, and trying
    // it there does not spend it.
    let fresh = stack
        .workspace(Region::Us, "Charlie", "admin@charlie.test")
        .await;
    let r = stack
        .request(Method::POST, EU_APP, "/auth/link")
        .form(&[("code", code_of(&fresh))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(set_cookies(&r).is_empty());
    let cookie = stack.sign_in_with_link(Region::Us, &fresh).await;
    let (s, body) = home(&stack, US_APP, &cookie).await;
    assert_eq!(s, 200);
    assert!(body.contains("Charlie"));
}

#[tokio::test]
async fn a_universal_logout_ends_nothing_in_another_workspace() {
    let stack = TestStack::start().await.unwrap();
    // Two workspaces of one region, each with its own org, both knowing Jane.
    let a = okta_org(&stack).await;
    let b = okta_org(&stack).await;
    let mut held = Vec::new();
    for org in [&a, &b] {
        let session = stack
            .session_cookie(Region::Us, &org.ws.team_id, &org.jane)
            .await;
        let token = create_on_page(&stack, Region::Us, &session, "jane", "api").await;
        held.push((session, token));
    }
    // A's org logs Jane out: only A's Jane.
    let sent = a
        .sim
        .app()
        .universal_logout(
            &stack.universal_logout_endpoint(Region::Us),
            &Subject::Email("jane@acme.test".into()),
        )
        .await
        .unwrap();
    assert_eq!(sent.status, 204, "{}", sent.body);
    assert_eq!(tokens::me(&stack, Region::Us, &held[0].1).await, 401);
    assert_eq!(home(&stack, US_APP, &held[0].0).await.0, 303);
    assert_eq!(tokens::me(&stack, Region::Us, &held[1].1).await, 200);
    assert_eq!(home(&stack, US_APP, &held[1].0).await.0, 200);
    // The same request to the EU endpoint is refused (its audience is the US one).
    let sent = b
        .sim
        .app()
        .universal_logout(
            &stack.universal_logout_endpoint(Region::Eu),
            &Subject::Email("jane@acme.test".into()),
        )
        .await
        .unwrap();
    assert_eq!(sent.status, 401, "{}", sent.body);
    assert_eq!(tokens::me(&stack, Region::Us, &held[1].1).await, 200);
}

// ---------------------------------------------------------------------------------
// Open redirects

/// Targets a redirect parameter must never send a browser to.
const HOSTILE_TARGETS: &[&str] = &[
    "https://evil.test/",
    "http://evil.test",
    "//evil.test/",
    "///evil.test/",
    "/\\evil.test/",
    "\\\\evil.test",
    "https:evil.test",
    "http:/evil.test",
    "/\t/evil.test",
    "/\n/evil.test",
    " //evil.test",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.test",
    "%2F%2Fevil.test",
    "http://app.closedloop.localhost@evil.test/",
    "http://app.closedloop.localhost.evil.test/",
    "http://eu.app.closedloop.localhost/",
    "http://api.closedloop.localhost/api/ping",
    "http://app.closedloop.localhost//evil.test",
    "http://app.closedloop.localhost/\\evil.test",
];

/// Whether a `Location` keeps the browser on the US app host.
fn stays_home(location: &str) -> bool {
    if let Some(rest) = location.strip_prefix(APP) {
        return rest.starts_with('/') && !rest.starts_with("//") && !rest.contains('\\');
    }
    location.starts_with('/')
        && !location.starts_with("//")
        && !location.contains('\\')
        && !location.bytes().any(|b| b <= b' ')
}

#[tokio::test]
async fn return_to_on_the_app_host_never_leaves_it() {
    let stack = TestStack::start().await.unwrap();
    let org = okta_org(&stack).await;
    let (_, cookie) = signed_in(&stack, Region::Us, "Bravo").await;

    for target in HOSTILE_TARGETS {
        // A signed-in browser at `/auth?return_to=…` is redirected only to a path of ours.
        let r = stack
            .get(US_APP, "/auth")
            .query(&[("return_to", target)])
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        if r.status().is_redirection() {
            assert!(stays_home(&location(&r)), "{target:?} → {}", location(&r));
        } else {
            assert_eq!(r.status(), 200, "{target:?}");
            let body = r.text().await.unwrap();
            assert!(!body.contains("evil.test"), "{target:?} echoed: {body}");
        }

        // A link sign-in lands on `/`.
        let ws = stack.workspace(Region::Us, "Link", "admin@link.test").await;
        let r = stack
            .request(Method::POST, US_APP, "/auth/link")
            .form(&[("code", code_of(&ws).as_str()), ("return_to", target)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{target:?}");
        assert_eq!(location(&r), "/", "{target:?}");

        // The email form passes no hostile `return_to` on to the login.
        let r = stack
            .request(Method::POST, US_APP, "/auth")
            .form(&[("email", "jane@acme.test"), ("return_to", target)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{target:?}");
        let login = location(&r);
        assert!(
            login.starts_with(&format!("{API}/api/okta/oidc/login?")),
            "{login}"
        );
        let q = query_of(&login);
        assert_eq!(q["team_id"], org.ws.team_id);
        assert!(!q.contains_key("return_to"), "{target:?} → {login}");
    }
    // The control: a path of ours is kept.
    let r = stack
        .request(Method::POST, US_APP, "/auth")
        .form(&[("email", "jane@acme.test"), ("return_to", "/tokens?x=1")])
        .send()
        .await
        .unwrap();
    assert_eq!(query_of(&location(&r))["return_to"], "/tokens?x=1");
    let r = stack
        .get(US_APP, "/auth?return_to=%2Ftokens")
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), location(&r)),
        (303, "/tokens".to_owned())
    );
}

#[tokio::test]
async fn okta_sign_in_lands_only_on_the_app_host_whatever_the_target() {
    let stack = TestStack::start().await.unwrap();
    let org = okta_org(&stack).await;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    for target in HOSTILE_TARGETS {
        for param in ["target_link_uri", "return_to"] {
            let mut web = Web::new(&stack.gateway.url());
            let url = format!(
                "{API}/api/okta/oidc/login?team_id={}&{param}={}",
                org.ws.team_id,
                enc(target)
            );
            let (urls, landed) = walk(&mut web, &url, &org.sim).await;
            assert_eq!(landed.status, 200, "{param}={target:?}: {urls:?}");
            assert_eq!(
                landed.url,
                format!("{APP}/"),
                "{param}={target:?} landed elsewhere: {urls:?}"
            );
            assert!(landed.body.contains("jane@acme.test"));
        }
    }
    // Also with the target double-encoded, and the control: a target on our app host
    // is honoured, so the assertions above can fail.
    let mut web = Web::new(&stack.gateway.url());
    let url = format!(
        "{API}/api/okta/oidc/login?team_id={}&target_link_uri={}",
        org.ws.team_id,
        enc(&enc("https://evil.test/"))
    );
    let (_, landed) = walk(&mut web, &url, &org.sim).await;
    assert_eq!(landed.url, format!("{APP}/"));
    let mut web = Web::new(&stack.gateway.url());
    let url = format!(
        "{API}/api/okta/oidc/login?team_id={}&target_link_uri={}",
        org.ws.team_id,
        enc(&format!("{APP}/tokens?from=okta"))
    );
    let (_, landed) = walk(&mut web, &url, &org.sim).await;
    assert_eq!(landed.url, format!("{APP}/tokens?from=okta"));
}

// ---------------------------------------------------------------------------------
// CSRF

/// The three ways a forged form arrives: no token, a token of another session (or
/// purpose), the right token posted from another origin.
#[derive(Debug, Clone, Copy)]
enum Forgery {
    Missing,
    Wrong,
    ForeignOrigin,
}

const FORGERIES: [Forgery; 3] = [Forgery::Missing, Forgery::Wrong, Forgery::ForeignOrigin];

/// Posts `form` (whose `csrf` field is `good`) to `path` as `cookie`, forged as `how`;
/// returns status and body.
async fn forged(
    stack: &TestStack,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
    good: &str,
    wrong: &str,
    how: Forgery,
) -> (u16, String) {
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    let origin = match how {
        Forgery::Missing => None,
        Forgery::Wrong => {
            fields.push(("csrf", wrong));
            None
        }
        Forgery::ForeignOrigin => {
            fields.push(("csrf", good));
            Some("https://evil.test")
        }
    };
    let mut req = stack
        .request(Method::POST, US_APP, path)
        .header(COOKIE, cookie)
        .form(&fields);
    if let Some(o) = origin {
        req = req.header(ORIGIN, o);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn every_form_refuses_a_forged_post_and_changes_nothing() {
    let stack = TestStack::start().await.unwrap();
    let (a, cookie) = signed_in(&stack, Region::Us, "Alpha").await;
    let (_, other_cookie) = signed_in(&stack, Region::Us, "Other").await;
    let api = create_on_page(&stack, Region::Us, &cookie, "kept", "api").await;
    let tokens_page = get_page(&stack, Region::Us, &cookie, "/tokens").await.body;
    let csrf_tokens = form_field(&tokens_page, "/tokens", "csrf");
    let wrong_tokens = form_field(
        &get_page(&stack, Region::Us, &other_cookie, "/tokens")
            .await
            .body,
        "/tokens",
        "csrf",
    );
    let token_id = form_field(&tokens_page, "/tokens/revoke", "id");
    let live_tokens = || async {
        tokens::call(&stack, Region::Us, "/api/tokens", &api)
            .await
            .1["tokens"]
            .as_array()
            .map_or(0, Vec::len)
    };

    // A connected grant, for the disconnect form, and a pending consent.
    let code = approve(&stack, &cookie, &consent_page(&stack, &cookie, None).await).await;
    let (s, issued) = token_request(
        &stack,
        US_SCIM_CLIENT_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &callback()),
        ],
    )
    .await;
    assert_eq!(s, 200, "{issued}");
    let access = issued["access_token"].as_str().unwrap().to_owned();
    let grants = get_page(
        &stack,
        Region::Us,
        &cookie,
        "/integrations/okta/provisioning",
    )
    .await;
    assert_eq!(grants.status, 200);
    let disconnect = "/integrations/okta/provisioning/disconnect";
    let grant_id = form_field(&grants.body, disconnect, "grant_id");
    let csrf_grants = form_field(&grants.body, disconnect, "csrf");
    let consent = consent_page(&stack, &cookie, None).await;
    let request = form_field(&consent, "/oauth/consent", "request");
    let csrf_consent = form_field(&consent, "/oauth/consent", "csrf");
    let okta_page = get_page(&stack, Region::Us, &cookie, "/integrations/okta")
        .await
        .body;
    let csrf_okta = form_field(&okta_page, "/integrations/okta", "csrf");
    let home_page = home(&stack, US_APP, &cookie).await.1;
    let csrf_sign_out = form_field(&home_page, "/auth/sign-out", "csrf");

    for how in FORGERIES {
        let what = format!("{how:?}");
        // Create a token.
        let before = live_tokens().await;
        let (s, body) = forged(
            &stack,
            &cookie,
            "/tokens",
            &[
                ("name", "forged"),
                ("kind", "api"),
                ("expires_in_days", "30"),
            ],
            &csrf_tokens,
            &wrong_tokens,
            how,
        )
        .await;
        assert_eq!(s, 403, "{what}: {body}");
        assert!(!body.contains("new-token-value"));
        assert_eq!(live_tokens().await, before, "{what}");
        // Revoke a token.
        let (s, _) = forged(
            &stack,
            &cookie,
            "/tokens/revoke",
            &[("id", &token_id)],
            &csrf_tokens,
            &wrong_tokens,
            how,
        )
        .await;
        assert_eq!(s, 403, "{what}");
        assert_eq!(tokens::me(&stack, Region::Us, &api).await, 200, "{what}");
        // Save the Okta settings (turn sign-in on with another org).
        let (s, _) = forged(
            &stack,
            &cookie,
            "/integrations/okta",
            &[
                ("okta_domain", "evil.okta.com"),
                ("client_id", "0oaevil"),
                ("client_secret", "evil-secret-evil-secret-evil-secret-0123"),
                ("sign_in_enabled", "on"),
            ],
            &csrf_okta,
            &wrong_tokens,
            how,
        )
        .await;
        assert_eq!(s, 403, "{what}");
        let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
        let saved: i64 = db
            .query_one("SELECT count(*) FROM okta_settings", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(saved, 0, "{what}");
        // Approve a consent.
        let (s, body) = forged(
            &stack,
            &cookie,
            "/oauth/consent",
            &[("request", &request), ("decision", "approve")],
            &csrf_consent,
            &wrong_tokens,
            how,
        )
        .await;
        assert_eq!(s, 403, "{what}: {body}");
        // Disconnect the grant.
        let (s, _) = forged(
            &stack,
            &cookie,
            "/integrations/okta/provisioning/disconnect",
            &[("grant_id", &grant_id)],
            &csrf_grants,
            &wrong_tokens,
            how,
        )
        .await;
        assert_eq!(s, 403, "{what}");
        let scim = closedloop_tests::harness::Scim {
            token: access.clone(),
            ..stack.scim(Region::Us, &a.team_id, "").await
        };
        assert_eq!(scim.get("/Users").await.0, 200, "{what}");
        // Sign out.
        let (s, _) = forged(
            &stack,
            &cookie,
            "/auth/sign-out",
            &[],
            &csrf_sign_out,
            &wrong_tokens,
            how,
        )
        .await;
        assert_eq!(s, 403, "{what}");
        assert_eq!(home(&stack, US_APP, &cookie).await.0, 200, "{what}");
    }
    assert_eq!(
        audit_count(&stack, &a.team_id, "scim_oauth.grant.disconnected").await,
        0
    );
    let scim = closedloop_tests::harness::Scim {
        token: access.clone(),
        ..stack.scim(Region::Us, &a.team_id, "").await
    };
    // Another workspace's admin, with a valid form of their own, cannot disconnect it.
    let their_code = approve(
        &stack,
        &other_cookie,
        &consent_page(&stack, &other_cookie, None).await,
    )
    .await;
    let (s, _) = token_request(
        &stack,
        US_SCIM_CLIENT_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &their_code),
            ("redirect_uri", &callback()),
        ],
    )
    .await;
    assert_eq!(s, 200);
    let theirs = get_page(
        &stack,
        Region::Us,
        &other_cookie,
        "/integrations/okta/provisioning",
    )
    .await;
    let r = post_form(
        &stack,
        Region::Us,
        &other_cookie,
        disconnect,
        &[
            ("grant_id", &grant_id),
            ("csrf", &form_field(&theirs.body, disconnect, "csrf")),
        ],
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(scim.get("/Users").await.0, 200);
    // The genuine form disconnects, and its `return_to` cannot leave the host.
    let r = stack
        .request(Method::POST, US_APP, disconnect)
        .header(COOKIE, &cookie)
        .header(ORIGIN, APP)
        .form(&[
            ("grant_id", grant_id.as_str()),
            ("csrf", csrf_grants.as_str()),
            ("return_to", "//evil.test/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        location(&r),
        "/integrations/okta/provisioning?disconnected=1"
    );
    assert_eq!(scim.get("/Users").await.0, 401);
    // The pending consent is still approvable with its own token: the forgeries
    // neither approved nor spent it.
    let r = stack
        .request(Method::POST, US_APP, "/oauth/consent")
        .header(COOKIE, &cookie)
        .header(ORIGIN, APP)
        .form(&[
            ("request", request.as_str()),
            ("csrf", csrf_consent.as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with(&callback()));

    // The forms before a session: a foreign origin cannot sign a browser in (login
    // CSRF) nor start a sign-in, and the link stays unspent.
    let ws = stack
        .workspace(Region::Us, "Victim", "admin@victim.test")
        .await;
    for (path, form) in [
        ("/auth/link", vec![("code", code_of(&ws))]),
        ("/auth", vec![("email", "admin@victim.test".to_owned())]),
    ] {
        let r = stack
            .request(Method::POST, US_APP, path)
            .header(ORIGIN, "https://evil.test")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert!(set_cookies(&r).is_empty(), "{path}");
        assert!(!r.headers().contains_key(LOCATION), "{path}");
    }
    let r = stack
        .request(Method::POST, US_APP, "/auth/link")
        .header(ORIGIN, APP)
        .form(&[("code", code_of(&ws))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the link was not spent by the forgery");
}

// ---------------------------------------------------------------------------------
// Session fixation and cookie flags

#[tokio::test]
async fn signing_in_always_issues_a_new_session_whatever_cookie_came_before() {
    let stack = TestStack::start().await.unwrap();
    let org = okta_org(&stack).await;
    let (_, attacker) = signed_in(&stack, Region::Us, "Mallory").await;
    let planted = [
        attacker.clone(),
        "clk_session=clk_us_ses_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "clk_session=attacker-chosen".to_owned(),
    ];
    for fixed in &planted {
        // The first-admin link.
        let ws = stack
            .workspace(Region::Us, "Victim", "admin@victim.test")
            .await;
        let r = stack
            .request(Method::POST, US_APP, "/auth/link")
            .header(COOKIE, fixed)
            .form(&[("code", code_of(&ws))])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let issued = pair(&set_cookies(&r)[0]);
        assert!(issued.starts_with("clk_session=clk_us_ses_"), "{issued}");
        assert_ne!(&issued, fixed);
        let (s, body) = home(&stack, US_APP, &issued).await;
        assert_eq!(s, 200);
        assert!(body.contains("admin@victim.test"));

        // Okta sign-in: the hand-off sets a fresh cookie too.
        let mut web = Web::new(&stack.gateway.url());
        let mut page = web
            .get(&format!(
                "{API}/api/okta/oidc/login?team_id={}",
                org.ws.team_id
            ))
            .await
            .unwrap();
        let complete = loop {
            let next = page.location.clone().expect("a redirect");
            if next.starts_with(&format!("{APP}/auth/complete")) {
                break next;
            }
            page = web.get(&next).await.unwrap();
        };
        let r = stack
            .get(US_APP, &path_of(&complete))
            .header(COOKIE, fixed)
            .send()
            .await
            .unwrap();
        // Begun at the Initiate login URI, not on the app host: confirmed first.
        assert_eq!(r.status(), 200);
        let confirm_cookie = pair(&set_cookies(&r)[0]);
        assert!(
            confirm_cookie.starts_with("clk_confirm="),
            "{confirm_cookie}"
        );
        let csrf = hidden(&r.text().await.unwrap(), "csrf").unwrap();
        let r = stack
            .request(Method::POST, US_APP, "/auth/complete")
            .header(COOKIE, format!("{fixed}; {confirm_cookie}"))
            .form(&[("csrf", csrf.as_str()), ("decision", "continue")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let issued = pair(&set_cookies(&r)[0]);
        assert!(issued.starts_with("clk_session=clk_us_ses_"), "{issued}");
        assert_ne!(&issued, fixed);
        let (_, body) = home(&stack, US_APP, &issued).await;
        assert!(body.contains("jane@acme.test"));
    }
    // The planted cookies gained nothing: the forged ones are nobody, and the
    // attacker's own session ended when the browser holding it signed in with Okta
    // (a new session ends the browser's previous one, issue 14).
    for fixed in &planted {
        assert_eq!(home(&stack, US_APP, fixed).await.0, 303);
    }
}

/// A region map whose public URLs are `https://` (TLS at the gateway), development on
/// (a loopback Okta org).
fn tls_map() -> shared::regions::RegionMap {
    shared::regions::RegionMap::parse(
        r#"development = true
[regions.us]
app_url = "https://app.closedloop.localhost"
api_url = "https://api.closedloop.localhost"
workers = ["127.0.0.1:9"]
postgres = { env = "US_PG" }
redis = { env = "US_REDIS" }
encryption_key = { env = "US_ENCRYPTION_KEY" }
"#,
    )
    .expect("valid map")
}

#[tokio::test]
async fn cookies_carry_exactly_the_flags_they_need() {
    // Under TLS: `__Host-` session cookie, `__Secure-` flow binding, all `Secure`.
    let stores = RegionStores::fresh().await.unwrap();
    let worker = TestWorker::start(worker_config_from(&tls_map(), Region::Us, &stores))
        .await
        .unwrap();
    let http = closedloop_tests::harness::client();
    let ws = region_worker::cli::workspace_create(&worker.state, "Acme", "admin@acme.test")
        .await
        .unwrap();
    let code = ws.sign_in_url.split("code=").nth(1).unwrap();
    let r = http
        .post(format!("{}/auth/link", worker.url()))
        .header("host", US_APP)
        .form(&[("code", code)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // An HTTPS region tells browsers to stay on HTTPS.
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    let cookies = set_cookies(&r);
    assert_eq!(cookies.len(), 1);
    let session = value(&cookies[0]);
    assert_eq!(
        cookies[0],
        format!(
            "__Host-clk_session={session}; Path=/; HttpOnly; SameSite=Lax; Max-Age=43200; Secure"
        )
    );
    // Sign-out clears it with the same flags.
    let home = http
        .get(format!("{}/", worker.url()))
        .header("host", US_APP)
        .header(COOKIE, pair(&cookies[0]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = http
        .post(format!("{}/auth/sign-out", worker.url()))
        .header("host", US_APP)
        .header(COOKIE, pair(&cookies[0]))
        .form(&[("csrf", form_field(&home, "/auth/sign-out", "csrf"))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        set_cookies(&r),
        ["__Host-clk_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure"]
    );
    // The OIDC flow binding on the API host.
    let sim = OktaSim::start().await.unwrap();
    {
        use region_worker::okta::domain::OktaDomain;
        use region_worker::okta::settings::{self, NewSettings};
        let domain = OktaDomain::parse(sim.base_url(), true).unwrap();
        let client = worker.state.pg.get().await.unwrap();
        settings::save(
            &client,
            &worker.state.config.encryption_key,
            &NewSettings {
                team_id: ws.team_id,
                okta_domain: domain.as_str(),
                issuer: &domain.issuer(),
                client_id: sim.app().client_id(),
                client_secret: Some(&sim.app().client_secret()),
                sign_in_enabled: true,
                jit_provisioning: false,
                updated_by: "test",
            },
        )
        .await
        .unwrap();
    }
    let r = http
        .get(format!(
            "{}/api/okta/oidc/login?team_id={}",
            worker.url(),
            ws.team_id
        ))
        .header("host", US_API)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookies = set_cookies(&r);
    let binding = value(&cookies[0]);
    assert_eq!(binding.len(), 43);
    assert_eq!(
        cookies,
        [format!(
            "__Secure-clk_oidc={binding}; Path=/api/okta/oidc; HttpOnly; SameSite=Lax; Max-Age=600; Secure"
        )]
    );

    // Plain HTTP (the development stack): the same without `Secure` and prefixes, even
    // when a client claims `X-Forwarded-Proto: https` through the gateway.
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let r = stack
        .request(Method::POST, US_APP, "/auth/link")
        .header("x-forwarded-proto", "https")
        .form(&[("code", code_of(&ws))])
        .send()
        .await
        .unwrap();
    let cookies = set_cookies(&r);
    assert_eq!(
        cookies,
        [format!(
            "clk_session={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=43200",
            value(&cookies[0])
        )]
    );
}

// ---------------------------------------------------------------------------------
// Secrets in logs

/// What the worker and gateway log during a test, captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The process-wide log capture, installed once. A thread-scoped subscriber would be
/// hermetic, but `tracing` caches callsite interest across threads, so it misses
/// events that tests running beside it hit first. Capturing everything is stricter:
/// another test's credential in the logs fails the grep as well.
fn captured_logs() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(install_capture)
}

fn install_capture() -> Captured {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        )
        .with(
            Targets::new()
                .with_target("region_worker", LevelFilter::TRACE)
                .with_target("gateway", LevelFilter::TRACE)
                .with_target("shared", LevelFilter::TRACE)
                .with_target("axum", LevelFilter::TRACE)
                .with_target("tower_http", LevelFilter::TRACE)
                .with_target("hyper", LevelFilter::DEBUG)
                .with_target("h2", LevelFilter::DEBUG),
        );
    tracing::subscriber::set_global_default(subscriber)
        .expect("no other test installs a global subscriber");
    captured
}

#[tokio::test]
async fn no_credential_reaches_a_log_line() {
    let captured = captured_logs();

    let stack = TestStack::start().await.unwrap();
    let mut secrets: Vec<(&str, String)> = vec![
        ("SCIM OAuth client secret", US_SCIM_CLIENT_SECRET.to_owned()),
        ("introspection secret", US_INTROSPECTION_SECRET.to_owned()),
    ];

    // First-admin link, session, personal tokens, the protected endpoints.
    let org = okta_org(&stack).await;
    secrets.push(("Okta client secret", org.okta_secret.clone()));
    let ws = stack.workspace(Region::Us, "Logs", "admin@logs.test").await;
    secrets.push(("first-admin link", code_of(&ws)));
    let cookie = stack.sign_in_with_link(Region::Us, &ws).await;
    secrets.push(("session", cookie.split_once('=').unwrap().1.to_owned()));
    let api = create_on_page(&stack, Region::Us, &cookie, "ci", "api").await;
    let mcp = create_on_page(&stack, Region::Us, &cookie, "mcp", "mcp").await;
    assert_eq!(tokens::me(&stack, Region::Us, &api).await, 200);
    assert_eq!(tokens::whoami(&stack, Region::Us, &mcp).await, 200);
    assert_eq!(
        tokens::introspect(&stack, Region::Us, &mcp).await["active"],
        true
    );
    let r = stack
        .request(Method::POST, US_API, "/api/tokens/introspect")
        .basic_auth(
            US_INTROSPECTION_CLIENT_ID,
            Some("wrong-introspection-secret-0123456789"),
        )
        .form(&[("token", api.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    secrets.push((
        "wrong introspection secret",
        "wrong-introspection-secret-0123456789".into(),
    ));
    secrets.push(("API token", api));
    secrets.push(("MCP token", mcp));

    // An operator SCIM token, and a bearer that is not one.
    let scim = stack.scim(Region::Us, &org.ws.team_id, "").await;
    assert_eq!(scim.get("/Users").await.0, 200);
    let mut bad = scim.clone();
    bad.token = "not-a-token-but-a-secret-guess-4242".into();
    assert_eq!(bad.get("/Users").await.0, 401);
    secrets.push(("SCIM token", scim.token.clone()));
    secrets.push(("guessed bearer", bad.token.clone()));

    // The SCIM OAuth flow with PKCE, a refresh, a code replay and a wrong secret.
    let verifier = "log-test-pkce-verifier-0123456789-abcdefghijklmnopq";
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
    };
    let code = approve(
        &stack,
        &cookie,
        &consent_page(&stack, &cookie, Some(&challenge)).await,
    )
    .await;
    let (s, issued) = token_request(
        &stack,
        US_SCIM_CLIENT_SECRET,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &callback()),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(s, 200, "{issued}");
    let refresh = issued["refresh_token"].as_str().unwrap().to_owned();
    let (s, rotated) = token_request(
        &stack,
        US_SCIM_CLIENT_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(s, 200, "{rotated}");
    let (s, _) = token_request(
        &stack,
        "wrong-client-secret-wrong-client-secret",
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(s, 401);
    // Replays revoke the grant (and log a warning about it).
    let (s, _) = token_request(
        &stack,
        US_SCIM_CLIENT_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(s, 400);
    secrets.push(("authorization code", code));
    secrets.push(("PKCE verifier", verifier.to_owned()));
    secrets.push((
        "access token",
        issued["access_token"].as_str().unwrap().into(),
    ));
    secrets.push(("refresh token", refresh));
    secrets.push((
        "rotated refresh token",
        rotated["refresh_token"].as_str().unwrap().into(),
    ));
    secrets.push((
        "wrong client secret",
        "wrong-client-secret-wrong-client-secret".into(),
    ));

    // Okta sign-in and sign-out: Okta's code and state, the hand-off code, the binding.
    let mut web = Web::new(&stack.gateway.url());
    let (urls, landed) = walk(
        &mut web,
        &format!("{API}/api/okta/oidc/login?team_id={}", org.ws.team_id),
        &org.sim,
    )
    .await;
    assert!(landed.body.contains("jane@acme.test"), "{urls:?}");
    for url in &urls {
        for (k, v) in query_of(url) {
            if ["code", "state", "nonce", "code_challenge"].contains(&k.as_str()) {
                secrets.push(("sign-in parameter", v));
            }
        }
    }
    if let Some(binding) = web.cookie("api.closedloop.localhost", "clk_oidc") {
        secrets.push(("OIDC binding", binding));
    }
    let okta_session = web
        .cookie("app.closedloop.localhost", "clk_session")
        .unwrap();
    secrets.push(("Okta-started session", okta_session));
    let home_page = web.get(&format!("{APP}/")).await.unwrap();
    let out = web
        .post(
            &format!("{APP}/auth/sign-out"),
            &[(
                "csrf",
                &form_field(&home_page.body, "/auth/sign-out", "csrf"),
            )],
        )
        .await
        .unwrap();
    assert_eq!(out.status, 303);
    for (k, v) in query_of(out.location.as_deref().unwrap()) {
        if k == "id_token_hint" {
            secrets.push(("ID token", v));
        }
    }

    // A Universal Logout request with a forged JWT.
    let forged_jwt =
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmb3JnZWQtbG9nLXRlc3QifQ.c2lnbmF0dXJlLWxvZy10ZXN0";
    let r = stack
        .request(Method::POST, US_API, "/api/okta/universal-logout")
        .bearer_auth(forged_jwt)
        .json(&json!({"sub_id": {"format": "email", "email": "jane@acme.test"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    secrets.push(("Universal Logout JWT", forged_jwt.to_owned()));

    // An admin types an Okta client secret on the Integrations > Okta page.
    let typed = "typed-okta-client-secret-for-the-log-test-0123";
    let settings_ws = stack
        .workspace(Region::Us, "Settings", "admin@settings.test")
        .await;
    let mut admin = Web::new(&stack.gateway.url());
    admin
        .sign_in_with_link(&settings_ws.sign_in_url)
        .await
        .unwrap();
    let other_org = OktaSim::start().await.unwrap();
    let saved = save_setup(
        &mut admin,
        &Setup {
            domain: other_org.base_url().trim_start_matches("http://"),
            client_id: other_org.app().client_id(),
            secret: typed,
            enabled: true,
            jit: false,
        },
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    secrets.push(("typed Okta client secret", typed.to_owned()));

    // The audit trail keeps no credential either.
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let audit: Vec<String> = db
        .query(
            "SELECT concat_ws(' ', actor, action, target, detail::text) FROM audit_events",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(audit.len() > 5, "{audit:?}");
    let audit = audit.join("\n");
    for (what, secret) in &secrets {
        assert!(
            !audit.contains(secret.as_str()),
            "the {what} is in the audit trail"
        );
    }

    let logs = captured.text();
    // The capture works: this test's flows were logged.
    let ours = |needle: &str| {
        logs.lines()
            .any(|l| l.contains(needle) && l.contains(&org.ws.team_id))
    };
    assert!(ours("Okta sign-in started"), "{logs}");
    assert!(ours("signed in with Okta"), "{logs}");
    assert!(
        logs.lines()
            .any(|l| l.contains("SCIM OAuth grant approved") && l.contains(&ws.team_id)),
        "{logs}"
    );
    for (what, secret) in &secrets {
        assert!(secret.len() >= 16, "{what} is a real secret: {secret}");
        assert!(!logs.contains(secret.as_str()), "the {what} is in the logs");
        // Nor its URL-encoded form.
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        assert!(
            !logs.contains(&encoded),
            "the {what} is in the logs, encoded"
        );
    }
    let lower = logs.to_ascii_lowercase();
    for header in ["authorization: ", "cookie: ", "set-cookie: ", "basic "] {
        assert!(!lower.contains(header), "a raw {header:?} header is logged");
    }
}

// ---------------------------------------------------------------------------------
// Constant-time comparisons

/// Every comparison of a secret in the worker's source (client secrets, CSRF tokens,
/// PKCE, the flow binding, the ID token's nonce) is constant time: the helpers use
/// `subtle`, and no `==` / `!=` has a secret-looking operand.
#[test]
fn secret_comparisons_are_constant_time() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    // The helpers that compare secrets, each with `ct_eq` (or the JWT's own).
    for (file, helper) in [
        ("region-worker/src/web/csrf.rs", "pub fn verify("),
        ("region-worker/src/pkce.rs", "pub fn verify("),
        ("region-worker/src/config.rs", "pub fn secret_matches("),
        ("region-worker/src/config.rs", "pub fn matches("),
        ("region-worker/src/routes/oidc/callback.rs", "let bound = "),
    ] {
        let text = read(file);
        let at = text
            .find(helper)
            .unwrap_or_else(|| panic!("{helper} in {file}"));
        let body = &text[at..at + text[at..].find("\n    }\n").unwrap_or(400).min(600)];
        assert!(
            body.contains("ct_eq"),
            "{file} {helper} compares in constant time"
        );
    }
    assert!(read("shared/src/jwt.rs").contains("constant_time_eq(n.as_bytes(), nonce.as_bytes())"));

    // No `==`/`!=` on a secret anywhere else.
    let secretish = [
        "secret", "csrf", "verifier", "binding", "nonce", "password", "digest", "passcode",
    ];
    // Reviewed: compares two spellings of the same client-sent secret, not ours.
    let allowed = ["decoded != b.secret"];
    let mut offenders = Vec::new();
    let mut stack = vec![
        root.join("region-worker/src"),
        root.join("gateway/src"),
        root.join("shared/src"),
    ];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests compare freely.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (n, line) in code.lines().enumerate() {
                let l = line.trim();
                if l.starts_with("//") || !(l.contains(" == ") || l.contains(" != ")) {
                    continue;
                }
                if allowed.iter().any(|a| l.contains(a)) {
                    continue;
                }
                let lower = l.to_ascii_lowercase();
                for op in [" == ", " != "] {
                    for side in lower.split(op).collect::<Vec<_>>().windows(2) {
                        let left = side[0]
                            .rsplit(['(', ' ', '!', '&', '|'])
                            .next()
                            .unwrap_or("");
                        let right = side[1]
                            .split([')', ' ', ';', '{', ','])
                            .next()
                            .unwrap_or("");
                        // A comparison with a literal names an attribute, not a secret.
                        let literal = |o: &str| o.starts_with('"') || o.starts_with("b\"");
                        let named =
                            |o: &str| !literal(o) && secretish.iter().any(|s| o.contains(s));
                        if named(left) || named(right) {
                            offenders.push(format!("{}:{}: {l}", path.display(), n + 1));
                        }
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "non-constant-time secret comparisons: {offenders:#?}"
    );
}

// ---------------------------------------------------------------------------------
// Rate limits

/// Sends `send(i)` until it answers 429, at most `limit` times; returns that answer's
/// position and the response.
async fn until_limited<F, Fut>(limit: usize, mut send: F) -> (usize, reqwest::Response)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    for i in 0..limit {
        let r = send(i).await.unwrap();
        if r.status() == 429 {
            return (i, r);
        }
    }
    panic!("no 429 after {limit} requests");
}

fn retry_after_secs(r: &reqwest::Response) -> u64 {
    r.headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("an integer Retry-After")
}

#[tokio::test]
async fn credential_endpoints_are_rate_limited_per_client_whatever_it_claims() {
    const BURST: u32 = 5;
    let stack = TestStack::start_configured(1, false, |c| {
        c.auth_rate_limit = RateLimit {
            per_second: 1,
            burst: BURST,
        };
    })
    .await
    .unwrap();
    let org = okta_org(&stack).await;
    // Each request claims another client address: the gateway replaces the claim.
    let spoof = |i: usize| format!("203.0.113.{}", i % 250);
    let limit = BURST as usize + 4;

    // Introspection: guessing the service secret.
    let (at, r) = until_limited(limit, |i| {
        stack
            .request(Method::POST, US_API, "/api/tokens/introspect")
            .header("x-forwarded-for", spoof(i))
            .basic_auth(US_INTROSPECTION_CLIENT_ID, Some(format!("guess-{i}")))
            .form(&[("token", "clk_us_api_x")])
            .send()
    })
    .await;
    assert!(at >= BURST as usize, "limited after {at}");
    assert!(retry_after_secs(&r) >= 1);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");
    assert!(body["error_description"].is_string());

    // The token endpoint: guessing the client secret or a refresh token.
    let (at, r) = until_limited(limit, |i| {
        stack
            .request(Method::POST, US_API, TOKEN)
            .header("x-forwarded-for", spoof(i))
            .basic_auth(US_SCIM_CLIENT_ID, Some(format!("guess-{i}")))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
            .send()
    })
    .await;
    assert!(at >= BURST as usize, "limited after {at}");
    assert!(retry_after_secs(&r) >= 1);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");

    // Sign-in: the email form, the first-admin link, the OIDC login.
    let (at, r) = until_limited(limit, |i| {
        stack
            .request(Method::POST, US_APP, "/auth")
            .header("x-forwarded-for", spoof(i))
            .form(&[("email", format!("guess{i}@acme.test"))])
            .send()
    })
    .await;
    assert!(at >= BURST as usize, "limited after {at}");
    assert!(retry_after_secs(&r) >= 1);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Too many sign-in attempts")
    );
    // `/auth/link` shares the sign-in bucket: it is limited (almost) at once, long
    // before a bucket of its own would be empty.
    let (at, r) = until_limited(3, |i| {
        stack
            .request(Method::POST, US_APP, "/auth/link")
            .header("x-forwarded-for", spoof(i))
            .form(&[("code", "clk_us_otc_guess")])
            .send()
    })
    .await;
    assert!(at < BURST as usize);
    assert!(retry_after_secs(&r) >= 1);
    let (at, r) = until_limited(limit, |i| {
        stack
            .get(
                US_API,
                &format!("/api/okta/oidc/login?team_id={}", org.ws.team_id),
            )
            .header("x-forwarded-for", spoof(i))
            .send()
    })
    .await;
    assert!(at >= BURST as usize, "limited after {at}");
    assert!(retry_after_secs(&r) >= 1);
    assert!(set_cookies(&r).is_empty());

    // Only failures count on the service endpoints: a product API server that
    // introspects far more often than the burst, with the right secret, is never
    // slowed down.
    for i in 0..(3 * BURST as usize) {
        let r = stack
            .request(Method::POST, US_API, "/api/tokens/introspect")
            .basic_auth(US_INTROSPECTION_CLIENT_ID, Some(US_INTROSPECTION_SECRET))
            .form(&[("token", "clk_us_api_x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
    }

    // The limit is the client's: another address (as the gateway states it, to the
    // worker directly) is not slowed down by the first one's flood.
    let w = stack.worker(Region::Us);
    let r = stack
        .http
        .post(format!("{}/api/tokens/introspect", w.url()))
        .header("host", US_API)
        .header("x-forwarded-for", "198.51.100.7")
        .basic_auth(US_INTROSPECTION_CLIENT_ID, Some(US_INTROSPECTION_SECRET))
        .form(&[("token", "clk_us_api_x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // And the EU region keeps its own buckets.
    let r = stack
        .request(Method::POST, EU_API, "/api/tokens/introspect")
        .basic_auth(EU_INTROSPECTION_CLIENT_ID, Some(EU_INTROSPECTION_SECRET))
        .form(&[("token", "clk_eu_api_x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

// ---------------------------------------------------------------------------------
// Oversized and deeply nested bodies

fn deep_json(depth: usize) -> String {
    "[".repeat(depth)
}

#[tokio::test]
async fn oversized_and_deeply_nested_bodies_get_the_protocols_errors() {
    let stack = TestStack::start().await.unwrap();
    let (ws, cookie) = signed_in(&stack, Region::Us, "Alpha").await;
    let scim = stack.scim(Region::Us, &ws.team_id, "").await;
    let api = create_on_page(&stack, Region::Us, &cookie, "ci", "api").await;
    let worker = stack.worker(Region::Us).url();
    let deep = deep_json(100_000);
    let nested_object = format!("{{\"a\":{}", "{\"a\":".repeat(50_000));
    let big = format!("{{\"userName\":\"{}\"}}", "a".repeat(9 * 1024 * 1024));

    for base in [stack.gateway.url(), worker.clone()] {
        let via = if base == worker { "worker" } else { "gateway" };
        // A POST on the US API host, to the worker or through the gateway.
        let post = |url: String, content_type: &str| {
            stack
                .http
                .post(url)
                .header("host", US_API)
                .header("content-type", content_type)
        };
        let url = format!("{base}/api/scim/v2/{}/Users", ws.team_id);
        for body in [&deep, &nested_object] {
            let r = post(url.clone(), "application/scim+json")
                .bearer_auth(&scim.token)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{via}");
            assert_eq!(r.headers()["content-type"], "application/scim+json");
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["schemas"][0], SCIM_ERROR, "{via}");
            assert_eq!(e["status"], "400");
            assert_eq!(e["scimType"], "invalidSyntax");
        }
        let r = post(url.clone(), "application/scim+json")
            .bearer_auth(&scim.token)
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{via}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["schemas"][0], SCIM_ERROR, "{via}");
        assert_eq!(e["status"], "413");

        // The token API: our JSON error, never the framework's text.
        let r = post(format!("{base}/api/tokens"), "application/json")
            .bearer_auth(&api)
            .body(deep_json(10_000))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{via}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], "invalid_request", "{via}");
        let r = post(format!("{base}/api/tokens"), "application/json")
            .bearer_auth(&api)
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{via}");
        let e: Value = r.json().await.unwrap();
        assert!(e["error"].is_string(), "{via}: {e}");

        // The OAuth token endpoint and introspection: RFC 6749 error JSON.
        for path in [TOKEN, "/api/tokens/introspect"] {
            let r = post(format!("{base}{path}"), "application/x-www-form-urlencoded")
                .basic_auth(US_SCIM_CLIENT_ID, Some(US_SCIM_CLIENT_SECRET))
                .body(format!(
                    "grant_type=refresh_token&refresh_token={}",
                    "a".repeat(9 << 20)
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 413, "{via} {path}");
            let e: Value = r.json().await.unwrap();
            assert!(e["error"].is_string(), "{via} {path}: {e}");
        }

        // Universal Logout: a body over its small limit is refused in its own format
        // (a forged JWT is refused first).
        let r = post(
            format!("{base}/api/okta/universal-logout"),
            "application/json",
        )
        .bearer_auth("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
        .body(deep.clone())
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 401, "{via}");
        let e: Value = r.json().await.unwrap();
        assert!(e["error"].is_string(), "{via}: {e}");
    }
    // Over the gateway's own limit: its JSON 413, the worker never sees it.
    let r = stack
        .http
        .post(format!(
            "{}/api/scim/v2/{}/Users",
            stack.gateway.url(),
            ws.team_id
        ))
        .header("host", US_API)
        .bearer_auth(&scim.token)
        .body(vec![b' '; 11 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "payload_too_large");
    // Nothing broke: the worker still serves.
    assert_eq!(scim.get("/Users").await.0, 200);
}

// ---------------------------------------------------------------------------------
// X-Forwarded-* from clients

#[tokio::test]
async fn forwarded_headers_sent_by_clients_steer_nothing() {
    let stack = TestStack::start().await.unwrap();
    let org = okta_org(&stack).await;
    let spoofed = |req: reqwest::RequestBuilder| {
        req.header("x-forwarded-host", "evil.test")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-for", "6.6.6.6")
            .header("forwarded", "for=6.6.6.6;host=evil.test;proto=https")
            .header("x-forwarded-port", "443")
            .header("x-original-host", "evil.test")
    };

    // Redirects the worker builds use the region's configured URLs.
    let r = spoofed(stack.request(Method::POST, US_APP, "/auth"))
        .form(&[("email", "jane@acme.test")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        location(&r).starts_with(&format!("{API}/api/okta/oidc/login?team_id=")),
        "{}",
        location(&r)
    );
    let r = spoofed(stack.get(
        US_API,
        &format!("/api/okta/oidc/login?team_id={}", org.ws.team_id),
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 303);
    let to_okta = location(&r);
    assert!(to_okta.starts_with(org.sim.base_url()), "{to_okta}");
    assert_eq!(
        query_of(&to_okta)["redirect_uri"],
        format!("{API}/api/okta/oidc/callback")
    );
    assert!(!set_cookies(&r)[0].contains("Secure"));
    let r = spoofed(stack.get(US_API, AUTHORIZE))
        .query(&[
            ("response_type", "code"),
            ("client_id", US_SCIM_CLIENT_ID),
            ("redirect_uri", &callback()),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        location(&r).starts_with(&format!("{APP}/oauth/consent")),
        "{}",
        location(&r)
    );

    // The cookie's `Secure` follows the configuration, not the client's claim.
    let ws = stack
        .workspace(Region::Us, "Acme2", "admin@acme2.test")
        .await;
    let r = spoofed(stack.request(Method::POST, US_APP, "/auth/link"))
        .form(&[("code", code_of(&ws))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = &set_cookies(&r)[0];
    assert!(
        cookie.starts_with("clk_session=") && !cookie.contains("Secure"),
        "{cookie}"
    );

    // Forms posted with our Origin are ours whatever the forwarded host says, and a
    // foreign Origin is refused whatever it claims.
    let cookie = pair(cookie);
    let page = get_page(&stack, Region::Us, &cookie, "/tokens").await;
    let csrf = hidden(&page.body, "csrf").unwrap();
    let r = spoofed(stack.request(Method::POST, US_APP, "/tokens"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, "https://evil.test")
        .form(&[
            ("name", "x"),
            ("kind", "api"),
            ("expires_in_days", "30"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The host a request is routed and served by is its `Host`, never a forwarded one.
    let r = spoofed(stack.get(EU_API, "/api/ping"))
        .header("x-forwarded-host", US_API)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["region"], "eu");
}

/// Every inline `<tag>…</tag>` block of `html`.
fn inline_blocks<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut blocks = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let end = after.find(&close).expect("closed block");
        blocks.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    blocks
}

#[tokio::test]
async fn pages_allow_only_their_own_inline_code_and_refuse_framing() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let cookie = stack.sign_in_with_link(Region::Us, &ws).await;
    let mut seen_script = false;
    for path in [
        "/auth",
        "/",
        "/integrations/okta",
        "/tokens",
        "/no-such-page",
    ] {
        let r = stack
            .get(US_APP, path)
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        let expected = if path == "/no-such-page" { 404 } else { 200 };
        assert_eq!(r.status(), expected, "{path}");
        let h = r.headers().clone();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        // Plain-HTTP development URLs: no HSTS (it would pin localhost to HTTPS).
        assert!(h.get("strict-transport-security").is_none(), "{path}");
        let html = h
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
        assert!(html, "{path} answers a page: {h:?}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap().to_owned();
        for directive in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        // Each inline stylesheet and script of the page is one the policy allows.
        let body = r.text().await.unwrap();
        for tag in ["style", "script"] {
            for block in inline_blocks(&body, tag) {
                let hash = base64::engine::general_purpose::STANDARD
                    .encode(sha2::Sha256::digest(block.as_bytes()));
                assert!(
                    csp.contains(&format!("'sha256-{hash}'")),
                    "{path}: a <{tag}> the policy does not allow: {block}"
                );
                seen_script |= tag == "script";
            }
        }
    }
    assert!(seen_script, "the Okta page's copy script was checked");
    // JSON answers carry the plain headers, not a page policy.
    let r = stack.get(US_API, "/api/ping").send().await.unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.headers().get("content-security-policy").is_none());
}

#[tokio::test]
async fn an_unauthenticated_large_body_gets_the_apis_401_through_the_gateway() {
    let stack = TestStack::start().await.unwrap();
    // 2 MiB: over the worker's 64 KiB, under the gateway's limit, still being sent
    // when the worker has its answer.
    let body = format!("{{\"name\":\"{}\"}}", "a".repeat(2 << 20));
    for _ in 0..3 {
        let r = stack
            .request(Method::POST, US_API, "/api/tokens")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], "invalid_token", "{e}");
    }
}

/// Issue 14, section 6: a well-formed but unknown `clk_…` bearer or session cookie costs
/// a store lookup. A client whose credentials keep being refused is turned away with
/// `429`, in each protocol's format, before any lookup; valid credentials never count,
/// and other clients are not affected.
#[tokio::test]
async fn a_client_presenting_made_up_credentials_is_turned_away_before_any_lookup() {
    const BURST: u32 = 5;
    let stack = TestStack::start_configured(1, false, |c| {
        c.auth_rate_limit = RateLimit {
            per_second: 1,
            burst: BURST,
        };
        // Answered at once here (the tarpit is the next test's).
        c.failed_auth_hold = std::time::Duration::ZERO;
    })
    .await
    .unwrap();
    let state = &stack.worker(Region::Us).state;
    let scim =
        closedloop_tests::harness::Scim::operator_workspace(state, &stack.gateway.url()).await;
    let (_, cookie) = signed_in(&stack, Region::Us, "Flood").await;
    let api_token = create_on_page(&stack, Region::Us, &cookie, "CI", "api").await;
    let users = |token: &str| {
        scim.with_token(token)
            .request(Method::GET, "/Users?count=1")
            .send()
    };

    // Valid credentials, many more than the burst: never counted.
    for _ in 0..(BURST * 3) {
        assert_eq!(users(&scim.token).await.unwrap().status(), 200);
    }
    // Made-up SCIM tokens: 401 until the client's bucket is empty, then 429 with a SCIM
    // error and Retry-After.
    let fake = |i: usize| format!("clk_us_scim_{i:0>43}");
    let (at, r) = until_limited(BURST as usize + 4, |i| users(&fake(i))).await;
    assert!(at >= BURST as usize, "limited after {at}");
    assert!(retry_after_secs(&r) >= 1);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["schemas"][0], SCIM_ERROR);
    assert_eq!(body["status"], "429");
    // Blocked: what only Postgres could answer is not asked; the token API and a page
    // answer 429 in their formats.
    let r = stack
        .request(Method::GET, US_API, "/api/me")
        .bearer_auth(format!("clk_us_api_{:0>43}", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");
    let r = stack
        .request(Method::GET, US_APP, "/tokens")
        .header(COOKIE, format!("clk_session=clk_us_ses_{:0>43}", 2))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("Too many"));
    // Another client is not affected (straight to the worker, from loopback: a trusted
    // proxy naming the client), and a request with no credential is never turned away.
    let direct = closedloop_tests::harness::Scim {
        gateway: stack.worker(Region::Us).url(),
        ..scim.clone()
    };
    let r = direct
        .request(Method::GET, "/Users?count=1")
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "another client's valid token");
    assert_eq!(
        stack
            .get(US_API, "/api/ping")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        tokens::me(&stack, Region::Us, &api_token).await,
        200,
        "a valid token Redis knows keeps working while its client is blocked"
    );
}

/// A blocked client's requests are held before their `429` (a tarpit), so that a flood
/// over a few connections runs at their pace rather than the worker's full speed.
#[tokio::test]
async fn a_blocked_client_is_held_before_its_429() {
    const HOLD: std::time::Duration = std::time::Duration::from_millis(300);
    let stack = TestStack::start_configured(1, false, |c| {
        c.auth_rate_limit = RateLimit {
            per_second: 1,
            burst: 2,
        };
        c.failed_auth_hold = HOLD;
    })
    .await
    .unwrap();
    let state = &stack.worker(Region::Us).state;
    let scim =
        closedloop_tests::harness::Scim::operator_workspace(state, &stack.gateway.url()).await;
    let mut statuses = Vec::new();
    let mut held = None;
    for i in 0..4 {
        // A new made-up token each time (a repeated one is answered by the negative
        // cache, without Postgres, and does not count).
        let made_up = scim.with_token(&format!("clk_us_scim_{i:0>43}"));
        let started = std::time::Instant::now();
        let r = made_up.request(Method::GET, "/Users").send().await.unwrap();
        if r.status() == 429 && held.is_none() {
            held = Some(started.elapsed());
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..2], [401, 401], "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    let held = held.expect("a 429");
    assert!(
        held >= HOLD,
        "answered after {held:?}, before the hold of {HOLD:?}"
    );
}
