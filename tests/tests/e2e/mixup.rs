//! The OIDC mix-up of issue 14 §1 (RFC 9700 §4.4), played end to end: the attacker
//! administers workspace A and points its Okta domain at a hostile authorization
//! server (the `hostile-as` process), the victim's org is the simulated Okta org, and
//! the worker and gateway are real. Every workspace shares one callback, so only the
//! authorization response's `iss` (RFC 9207) and the Okta domain policy stand between
//! the victim's code and the attacker's token endpoint.
//!
//! Also the domain policy and the reachability oracle (issue 14 §6) outside the
//! development switch: custom domains need an operator's allowance, at save time and at
//! sign-in time, and domains leading to private addresses are refused, on the page with
//! a short reason and in the HTTP client at connect time (DNS rebinding).

use closedloop_tests::harness::{TestStack, Workspace, binary, pg_connect};
use closedloop_tests::hostile_as::{HostileAsProcess, Recorded};
use closedloop_tests::okta_sim::OktaSim;
use closedloop_tests::okta_world::{connect, okta_user, provision, sign_in_failures};
use closedloop_tests::region::Region;
use closedloop_tests::web::{Page, Web, hidden};
use region_worker::okta::http::Resolver;
use serde_json::{Value, json};

const API: &str = "http://api.closedloop.localhost";
const APP: &str = "http://app.closedloop.localhost";
const OKTA_PAGE: &str = "http://app.closedloop.localhost/integrations/okta";

fn login_url(team_id: &str) -> String {
    format!("{API}/api/okta/oidc/login?team_id={team_id}")
}

/// A query parameter of `url`.
fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A browser whose admin signed in with the workspace's one-time link.
async fn admin_browser(stack: &TestStack, ws: &Workspace) -> Web {
    let mut web = Web::new(&stack.gateway.url());
    let code = ws.sign_in_url.split("code=").nth(1).unwrap_or_default();
    let p = web
        .post(&format!("{APP}/auth/link"), &[("code", code)])
        .await
        .unwrap();
    assert_eq!(p.status, 303, "{}", p.body);
    web
}

/// Saves the Okta page's form as the signed-in admin of `web`.
async fn save_okta_page(web: &mut Web, domain: &str, client_id: &str, secret: &str) -> Page {
    let page = web.get(OKTA_PAGE).await.unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    let form = &page.body[page.body.find("action=\"/integrations/okta\"").unwrap()..];
    let csrf = hidden(form, "csrf").unwrap();
    web.post(
        OKTA_PAGE,
        &[
            ("csrf", csrf.as_str()),
            ("okta_domain", domain),
            ("client_id", client_id),
            ("client_secret", secret),
            ("sign_in_enabled", "on"),
        ],
    )
    .await
    .unwrap()
}

/// Browser sessions of `team_id`'s users other than its first admin.
async fn okta_sessions(stack: &TestStack, team_id: &str) -> i64 {
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let team = uuid::Uuid::parse_str(team_id).unwrap();
    db.query_one(
        "SELECT count(*) FROM browser_sessions WHERE team_id = $1 AND method <> 'sign-in-link'",
        &[&team],
    )
    .await
    .unwrap()
    .get(0)
}

/// The victim's workspace V connected to the simulated org, and a victim provisioned
/// there, assigned to the app and signed in at Okta (so authorize answers silently).
async fn victim_workspace(stack: &TestStack, sim: &OktaSim) -> Workspace {
    let ws = stack
        .workspace(Region::Us, "Victim Corp", "admin@victim.test")
        .await;
    connect(stack, &ws.team_id, sim).await;
    let jane = okta_user(sim, "jane@victim.test").await;
    provision(stack, &ws, "jane@victim.test", jane.as_str()).await;
    ws
}

/// Whatever authorization codes the hostile server was sent, anywhere.
fn codes_sent_to(log: &[Recorded]) -> Vec<String> {
    log.iter().filter_map(|r| r.param("code")).collect()
}

#[tokio::test]
async fn a_mixup_through_a_hostile_org_never_gets_the_victims_code_or_session() {
    let stack = TestStack::start().await.unwrap();
    let sim = OktaSim::start().await.unwrap();
    let hostile = HostileAsProcess::spawn(&binary("hostile-as"))
        .await
        .unwrap();
    let victim_ws = victim_workspace(&stack, &sim).await;

    // 1. The attacker, admin of workspace A, points A's Okta domain at their server
    //    (a loopback org: this stack runs under the development switch).
    let attacker_ws = stack
        .workspace(Region::Us, "Attacker Inc", "mallory@attacker.test")
        .await;
    let mut attacker = admin_browser(&stack, &attacker_ws).await;
    let saved = save_okta_page(
        &mut attacker,
        hostile.base_url().trim_start_matches("http://"),
        "0oaattacker",
        "attacker-secret-attacker-secret-0123456789",
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.body);

    // 2. In their own browser they start a sign-in to V and keep the authorize URL.
    let started = attacker.get(&login_url(&victim_ws.team_id)).await.unwrap();
    let kept = started.location.clone().expect("a redirect to V's org");
    assert!(kept.starts_with(sim.base_url()), "{kept}");
    let state_v = param(&kept, "state").unwrap();
    hostile.lure(&kept).await.unwrap();

    // 3. The victim opens A's sign-in link; A's "org" sends them to V's real org with
    //    V's client id, nonce and challenge but A's state; Okta answers silently.
    let mut victim = Web::new(&stack.gateway.url());
    let first = victim.get(&login_url(&attacker_ws.team_id)).await.unwrap();
    let (trail, landed) = victim.trail(first).await.unwrap();
    let at_okta = trail
        .iter()
        .find(|u| u.starts_with(&format!("{}/oauth2/v1/authorize", sim.base_url())))
        .unwrap_or_else(|| panic!("the victim never reached V's org: {trail:?}"));
    assert_eq!(
        param(at_okta, "client_id").as_deref(),
        Some(sim.app().client_id())
    );
    let callback = trail
        .iter()
        .find(|u| u.starts_with(&format!("{API}/api/okta/oidc/callback")))
        .unwrap_or_else(|| panic!("no callback: {trail:?}"));
    let code_v = param(callback, "code").expect("V's org issued a code");
    assert_ne!(param(callback, "state").as_deref(), Some(state_v.as_str()));
    assert_eq!(
        param(callback, "iss").as_deref(),
        Some(sim.issuer()),
        "Okta names itself in the response (RFC 9207)"
    );

    let log = hostile.log().await.unwrap();
    let stolen = codes_sent_to(&log);

    // 4–5. With a stolen code the attacker would replay it with V's state (and V's
    //      issuer as `iss`) in their own browser, and confirm if asked. Played
    //      whenever anything was stolen.
    for code in &stolen {
        let mut replay = url::Url::parse(&format!("{API}/api/okta/oidc/callback")).unwrap();
        replay
            .query_pairs_mut()
            .append_pair("code", code)
            .append_pair("state", &state_v)
            .append_pair("iss", sim.issuer());
        let replay = attacker.get(replay.as_str()).await.unwrap();
        let (_, page) = attacker.trail(replay).await.unwrap();
        if page.body.contains("action=\"/auth/complete\"") {
            let csrf = hidden(&page.body, "csrf").unwrap();
            attacker
                .post(
                    &format!("{APP}/auth/complete"),
                    &[("csrf", csrf.as_str()), ("decision", "continue")],
                )
                .await
                .unwrap();
        }
    }
    assert_eq!(
        okta_sessions(&stack, &victim_ws.team_id).await,
        0,
        "nobody is signed in to V (stolen codes: {})",
        stolen.len()
    );
    assert!(
        !log.iter().any(|r| r.path == "/oauth2/v1/token"),
        "the hostile token endpoint was called: {log:?}"
    );
    assert!(stolen.is_empty(), "a code reached the hostile server");
    // The worker refused before sending the code anywhere, and said so.
    assert_eq!(landed.status, 400, "{}", landed.body);
    assert!(
        landed
            .body
            .contains("The sign-in answer came from the wrong place"),
        "{}",
        landed.body
    );
    assert!(
        !log.iter()
            .any(|r| r.body.contains(&code_v)
                || r.query.as_deref().is_some_and(|q| q.contains(&code_v))),
        "V's code never reaches the hostile server"
    );

    // Audited under A (whose state it was) and under V (whose org answered).
    let under_a = sign_in_failures(&stack, &attacker_ws.team_id).await;
    let refusal = under_a
        .iter()
        .find(|d| d["reason"] == "iss_mismatch")
        .unwrap_or_else(|| panic!("no iss_mismatch under A: {under_a:?}"));
    assert_eq!(refusal["expected_issuer"], hostile.base_url());
    assert_eq!(refusal["iss"], sim.issuer());
    let under_v = sign_in_failures(&stack, &victim_ws.team_id).await;
    assert!(
        under_v
            .iter()
            .any(|d| d["reason"] == "iss_mismatch" && d["state_workspace"] == attacker_ws.team_id),
        "{under_v:?}"
    );
    assert!(
        !under_a
            .iter()
            .chain(&under_v)
            .any(|d| d.to_string().contains(&code_v)),
        "no code in the audit trail"
    );
    hostile.stop().await;
}

#[tokio::test]
async fn a_response_without_iss_from_an_org_that_promises_it_is_refused_before_the_exchange() {
    let stack = TestStack::start().await.unwrap();
    let sim = OktaSim::start().await.unwrap();
    let ws = victim_workspace(&stack, &sim).await;
    let mut web = Web::new(&stack.gateway.url());
    let first = web.get(&login_url(&ws.team_id)).await.unwrap();
    let at_okta = web.get(first.location.as_deref().unwrap()).await.unwrap();
    let callback = at_okta.location.clone().expect("Okta redirects back");
    assert!(param(&callback, "iss").is_some(), "{callback}");

    // The same response with `iss` removed (what a relay in the middle would send).
    let mut stripped = url::Url::parse(&callback).unwrap();
    let kept: Vec<(String, String)> = stripped
        .query_pairs()
        .filter(|(k, _)| k != "iss")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    stripped.query_pairs_mut().clear().extend_pairs(kept);
    let page = web.get(stripped.as_str()).await.unwrap();
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.body.contains("came from the wrong place"),
        "{}",
        page.body
    );
    let failures = sign_in_failures(&stack, &ws.team_id).await;
    assert!(
        failures.iter().any(|d| d["reason"] == "iss_missing"),
        "{failures:?}"
    );
    assert_eq!(okta_sessions(&stack, &ws.team_id).await, 0);

    // A wrong `iss` on an otherwise genuine response is refused the same way.
    let first = web.get(&login_url(&ws.team_id)).await.unwrap();
    let at_okta = web.get(first.location.as_deref().unwrap()).await.unwrap();
    let mut forged = url::Url::parse(at_okta.location.as_deref().unwrap()).unwrap();
    let kept: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "iss" {
                "https://evil.okta.com".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(kept);
    let page = web.get(forged.as_str()).await.unwrap();
    assert_eq!(page.status, 400, "{}", page.body);
    assert_eq!(okta_sessions(&stack, &ws.team_id).await, 0);

    // And the genuine response, `iss` and all, still signs the user in.
    let first = web.get(&login_url(&ws.team_id)).await.unwrap();
    let (trail, _) = web.trail(first).await.unwrap();
    assert!(
        trail.iter().any(|u| u.contains("/auth/complete")),
        "the genuine sign-in reaches the hand-off: {trail:?}"
    );
}

#[tokio::test]
async fn outside_development_custom_and_private_okta_domains_are_refused() {
    // A deployment without the development switch, whose resolver makes two names
    // lead inside the network (as a DNS answer could, at any time).
    let stack = TestStack::start_configured(1, false, |c| {
        c.development = false;
        c.sign_in.okta_resolver = Resolver::fixed([
            ("sso.private.test", "10.0.0.8".parse().unwrap()),
            ("sso.rebound.test", "127.0.0.1".parse().unwrap()),
            ("acme.okta.com", "169.254.169.254".parse().unwrap()),
        ]);
    })
    .await
    .unwrap();
    let state = &stack.worker(Region::Us).state;
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let mut admin = admin_browser(&stack, &ws).await;
    let secret = "acme-secret-acme-secret-acme-secret-0123";

    // A custom domain without an operator's allowance: refused, saying how to ask.
    let p = save_okta_page(&mut admin, "sso.private.test", "0oaacme", secret).await;
    assert_eq!(p.status, 422, "{}", p.body);
    for text in [
        "id=\"okta_domain-error\"",
        "sso.private.test is not an Okta domain",
        "region-worker workspace allow-okta-domain",
        "--domain sso.private.test",
    ] {
        assert!(p.body.contains(text), "{text}: {}", p.body);
    }

    // Allowed by an operator, it is checked for where it leads: a private address.
    let allowed =
        region_worker::cli::workspace_allow_okta_domain(state, &ws.team_id, "sso.private.test")
            .await
            .unwrap();
    assert!(allowed.changed);
    let p = save_okta_page(&mut admin, "https://sso.private.test/", "0oaacme", secret).await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(
        p.body
            .contains("sso.private.test leads to a private or local network address"),
        "{}",
        p.body
    );
    for internal in ["10.0.0.8", "tcp connect", "os error", "client error"] {
        assert!(!p.body.contains(internal), "{internal}: {}", p.body);
    }
    // Okta's own domains need no allowance, but must lead to the internet too.
    let p = save_okta_page(&mut admin, "acme.okta.com", "0oaacme", secret).await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(
        p.body.contains("private or local network address"),
        "{}",
        p.body
    );
    // Loopback orgs need the development switch.
    let p = save_okta_page(&mut admin, "127.0.0.1:8080", "0oaacme", secret).await;
    assert_eq!(p.status, 422, "{}", p.body);
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let saved: i64 = db
        .query_one("SELECT count(*) FROM okta_settings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(saved, 0, "nothing was saved");

    // At sign-in time: a workspace whose saved custom domain is not (or no longer)
    // allowed gets no sign-in request; an allowed one whose name now leads to a
    // loopback address (DNS rebinding after the save) is refused at connect time.
    let other = stack
        .workspace(Region::Us, "Other", "admin@other.test")
        .await;
    stack
        .configure_okta(
            Region::Us,
            &other.team_id,
            "sso.rebound.test",
            "0oaother",
            secret,
        )
        .await;
    let mut web = Web::new(&stack.gateway.url());
    let refused = web.get(&login_url(&other.team_id)).await.unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("This workspace&#39;s Okta domain is not allowed")
            || refused
                .body
                .contains("This workspace's Okta domain is not allowed"),
        "{}",
        refused.body
    );
    region_worker::cli::workspace_allow_okta_domain(state, &other.team_id, "sso.rebound.test")
        .await
        .unwrap();
    let unreachable = web.get(&login_url(&other.team_id)).await.unwrap();
    assert_eq!(unreachable.status, 502, "{}", unreachable.body);
    assert!(
        !unreachable.body.contains("127.0.0.1"),
        "{}",
        unreachable.body
    );
    region_worker::cli::workspace_disallow_okta_domain(state, &other.team_id, "sso.rebound.test")
        .await
        .unwrap();
    let again = web.get(&login_url(&other.team_id)).await.unwrap();
    assert_eq!(
        again.status, 403,
        "disallowed stops working: {}",
        again.body
    );
    let reasons: Vec<String> = sign_in_failures(&stack, &other.team_id)
        .await
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        reasons,
        [
            "okta_domain_not_allowed",
            "okta_unreachable",
            "okta_domain_not_allowed"
        ]
    );

    // Universal Logout follows the same rule: the keys of an org the workspace may no
    // longer use are never fetched (before: a fetch from the rebound name, `422`).
    let b64 = |v: Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let jwt = format!(
        "{}.{}.c2ln",
        b64(json!({ "alg": "RS256", "kid": "k1", "typ": "global-token-revocation+jwt" })),
        b64(
            json!({ "iss": "https://sso.rebound.test", "sub": "0oaother", "aud": "x", "jti": "j1" })
        ),
    );
    let logout = reqwest::Client::new()
        .post(format!("{}/api/okta/universal-logout", stack.gateway.url()))
        .header(reqwest::header::HOST, "api.closedloop.localhost")
        .bearer_auth(jwt)
        .json(&json!({ "sub_id": { "format": "email", "email": "admin@other.test" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 401);
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let reason: String = db
        .query_one(
            "SELECT detail->>'reason' FROM audit_events
              WHERE action = 'okta.universal_logout.refused' AND team_id = $1::text::uuid",
            &[&other.team_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason, "okta_domain_not_allowed");
}
