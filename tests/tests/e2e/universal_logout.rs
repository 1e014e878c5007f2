//! Universal Logout (Global Token Revocation, OKTA.md §7; the seed's Step 4 and the
//! last step of its Testing section) through the gateway, with the simulated Okta org
//! signing: the whole story in both regions (a user signed in through Okta with two API
//! tokens and an MCP token is logged out by Okta, everything of theirs stops at once,
//! the same email in the other region is untouched, SCIM grants stay valid), every
//! forgery refused, the status codes Okta reads, the audit trail, replay and rate
//! limits, and Okta's keys unreachable.

use closedloop_tests::harness::{TestStack, US_SCIM_CLIENT_ID, US_SCIM_CLIENT_SECRET, pg_connect};
use closedloop_tests::okta_sim::directory::{NewUser, UserId};
use closedloop_tests::okta_sim::logout::{Forgery, Subject};
use closedloop_tests::okta_sim::seed::SeedApp;
use closedloop_tests::okta_sim::{AppHandle, OktaSim};
use closedloop_tests::okta_world::audit_count;
use closedloop_tests::region::Region;
use region_worker::config::RateLimit;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde_json::{Value, json};

use closedloop_tests::harness::flush_redis;
use closedloop_tests::scim_grant::scim_grant;
use closedloop_tests::session::get_page;
use closedloop_tests::tokens::{call, create_on_page, introspect, me, whoami};
use closedloop_tests::web::Web;

const JANE: &str = "jane@acme.test";
const BOB: &str = "bob@acme.test";

/// One region's end of the Okta org: its app instance and its workspace.
struct Tenant {
    region: Region,
    app: AppHandle,
    team_id: String,
}

/// The org's EU app instance (the seed: one Okta app per region, never mixed).
fn eu_app(sim: &OktaSim) -> AppHandle {
    sim.add_app(SeedApp {
        name: "closedloop-eu".into(),
        client_id: None,
        client_secret: None,
        redirect_uris: vec!["http://eu.api.closedloop.localhost/api/okta/oidc/callback".into()],
        post_logout_redirect_uris: vec!["http://eu.app.closedloop.localhost/auth".into()],
    })
    .expect("app added")
}

/// A workspace in `region` whose first admin is `admin_email`, connected to `app`.
async fn tenant(
    stack: &TestStack,
    sim: &OktaSim,
    region: Region,
    app: AppHandle,
    admin_email: &str,
) -> Tenant {
    let ws = stack.workspace(region, "Acme", admin_email).await;
    stack
        .configure_okta(
            region,
            &ws.team_id,
            sim.base_url(),
            app.client_id(),
            &app.client_secret(),
        )
        .await;
    Tenant {
        region,
        app,
        team_id: ws.team_id,
    }
}

/// Provisions `email` in the tenant with SCIM as Okta would, its Okta id as
/// `externalId`; returns the SCIM id.
async fn provision(stack: &TestStack, t: &Tenant, email: &str, okta_id: &str) -> String {
    let scim = stack.scim(t.region, &t.team_id, "").await;
    let (status, user) = scim
        .post(
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": email, "externalId": okta_id,
                "name": { "givenName": "Bob", "familyName": "Doe" },
                "emails": [{ "value": email, "primary": true, "type": "work" }],
                "active": true
            }),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    user["id"].as_str().unwrap().to_owned()
}

/// Signs `email` in through Okta in `region` (email discovery, the org's sign-in, the
/// callback, the hand-off); returns the session's `Cookie` header value.
async fn okta_sign_in(stack: &TestStack, region: Region, email: &str) -> String {
    let mut web = Web::new(&stack.gateway.url());
    let started = web
        .post(
            &format!("http://{}/auth", region.app()),
            &[("email", email)],
        )
        .await
        .unwrap();
    let home = web.follow(started).await.unwrap();
    assert_eq!(home.status, 200, "signed in through Okta: {}", home.body);
    let name = "clk_session";
    let value = web
        .cookie(region.app(), name)
        .unwrap_or_else(|| panic!("no session cookie on {}", region.app()));
    format!("{name}={value}")
}

/// What one user holds in one region.
struct Holdings {
    session: String,
    api: [String; 2],
    mcp: String,
}

async fn holdings(stack: &TestStack, region: Region, session: String) -> Holdings {
    let api = [
        create_on_page(stack, region, &session, "CI", "api").await,
        create_on_page(stack, region, &session, "laptop", "api").await,
    ];
    let mcp = create_on_page(stack, region, &session, "Claude", "mcp").await;
    Holdings { session, api, mcp }
}

/// Every credential of `h` works (`true`) or is refused (`false`), each its own way.
async fn assert_holdings(stack: &TestStack, region: Region, h: &Holdings, live: bool) {
    let ok = |s: u16| if live { s == 200 } else { s == 401 };
    for t in &h.api {
        assert!(
            ok(me(stack, region, t).await),
            "{} API token live={live}",
            region
        );
        assert_eq!(introspect(stack, region, t).await["active"], live);
    }
    assert!(
        ok(whoami(stack, region, &h.mcp).await),
        "{} MCP token live={live}",
        region
    );
    assert_eq!(introspect(stack, region, &h.mcp).await["active"], live);
    let page = get_page(stack, region, &h.session, "/tokens").await;
    if live {
        assert_eq!(page.status, 200, "{} session live", region);
    } else {
        assert_eq!(page.status, 303, "{} session ended", region);
        assert_eq!(page.location, "/auth?return_to=%2Ftokens");
        let home = get_page(stack, region, &h.session, "/").await;
        assert_eq!((home.status, home.location.as_str()), (303, "/auth"));
    }
}

async fn scim_status(stack: &TestStack, region: Region, team_id: &str, token: &str) -> u16 {
    stack
        .get(
            region.api(),
            &format!("/api/scim/v2/{team_id}/Users?count=1"),
        )
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn okta_logs_a_user_out_of_everything_in_one_region_and_only_there() {
    let stack = TestStack::start().await.unwrap();
    let sim = OktaSim::start().await.unwrap();
    let jane = sim.add_user(NewUser::new(JANE, "Jane", "Doe")).unwrap();
    let us = tenant(&stack, &sim, Region::Us, sim.app(), JANE).await;
    let eu = tenant(&stack, &sim, Region::Eu, eu_app(&sim), JANE).await;
    for t in [&us, &eu] {
        t.app.assign(&jane).await.unwrap();
    }
    sim.set_auto_sign_in(Some(&jane));

    // Jane, the same email in both regions, signs in through Okta in each and takes
    // two API tokens and an MCP token; as her workspaces' admin she connected Okta's
    // provisioning (a SCIM OAuth grant) in each.
    let mut held = Vec::new();
    for t in [&us, &eu] {
        let session = okta_sign_in(&stack, t.region, JANE).await;
        let grant = scim_grant(&stack, t.region, &session).await;
        let operator = stack.scim(t.region, &t.team_id, "").await.token;
        held.push((holdings(&stack, t.region, session).await, grant, operator));
    }
    for ((h, grant, operator), t) in held.iter().zip([&us, &eu]) {
        assert_holdings(&stack, t.region, h, true).await;
        assert_eq!(
            scim_status(&stack, t.region, &t.team_id, &grant.0).await,
            200
        );
        assert_eq!(
            scim_status(&stack, t.region, &t.team_id, operator).await,
            200
        );
    }

    // Okta logs Jane out of the US: everything of hers there stops on the very next
    // request; the EU is untouched; the SCIM grant and tokens stay valid.
    let sent = us
        .app
        .universal_logout(
            &stack.universal_logout_endpoint(Region::Us),
            &Subject::Email(JANE.into()),
        )
        .await
        .unwrap();
    assert_eq!(sent.status, 204, "{}", sent.body);
    assert!(sent.body.is_empty());
    assert_holdings(&stack, Region::Us, &held[0].0, false).await;
    assert_holdings(&stack, Region::Eu, &held[1].0, true).await;
    assert_eq!(
        scim_status(&stack, Region::Us, &us.team_id, &held[0].1.0).await,
        200,
        "the grant stays"
    );
    assert_eq!(
        scim_status(&stack, Region::Us, &us.team_id, &held[0].2).await,
        200
    );
    let refreshed = stack
        .request(Method::POST, Region::Us.api(), "/api/okta/scim/oauth/token")
        .basic_auth(US_SCIM_CLIENT_ID, Some(US_SCIM_CLIENT_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", held[0].1.1.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        refreshed.status(),
        200,
        "the grant's refresh token stays valid"
    );

    // A flushed Redis forgets nothing of the logout.
    flush_redis(&stack, Region::Us).await;
    assert_holdings(&stack, Region::Us, &held[0].0, false).await;
    assert_holdings(&stack, Region::Eu, &held[1].0, true).await;

    // Jane must sign in again, and then works as before.
    let again = okta_sign_in(&stack, Region::Us, JANE).await;
    let fresh = create_on_page(&stack, Region::Us, &again, "after", "api").await;
    assert_eq!(me(&stack, Region::Us, &fresh).await, 200);
    let listed = get_page(&stack, Region::Us, &again, "/tokens").await;
    assert!(
        !listed.body.contains("<td>CI</td>"),
        "revoked tokens are no longer listed"
    );

    // Now the EU, through its own app instance and endpoint.
    let sent = eu
        .app
        .universal_logout(
            &stack.universal_logout_endpoint(Region::Eu),
            &Subject::Email(JANE.into()),
        )
        .await
        .unwrap();
    assert_eq!(sent.status, 204, "{}", sent.body);
    assert_holdings(&stack, Region::Eu, &held[1].0, false).await;
    assert_eq!(
        scim_status(&stack, Region::Eu, &eu.team_id, &held[1].1.0).await,
        200
    );
    assert_eq!(
        me(&stack, Region::Us, &fresh).await,
        200,
        "the US is untouched by the EU logout"
    );

    // Audited in the workspace, with the verified client, never the JWT.
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let rows = db
        .query(
            "SELECT actor, target, detail FROM audit_events WHERE action = 'okta.universal_logout'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let detail: Value = rows[0].get(2);
    assert_eq!(
        rows[0].get::<_, String>(0),
        format!("okta:{}", us.app.client_id())
    );
    assert_eq!(detail["status"], 204);
    assert_eq!(detail["verified"], true);
    assert_eq!(detail["format"], "email");
    assert_eq!(detail["subject"], JANE);
    assert!(!detail.to_string().contains(&sent.jwt[..40]));
}

/// A US tenant with Jane (its admin) holding a session and an API token, and Bob
/// provisioned with his Okta id.
struct Fixture {
    stack: TestStack,
    sim: OktaSim,
    t: Tenant,
    jane_session: String,
    jane_token: String,
    bob: UserId,
    bob_scim_id: String,
}

async fn fixture_with(adjust: impl Fn(&mut region_worker::config::WorkerConfig)) -> Fixture {
    let stack = TestStack::start_configured(1, false, adjust).await.unwrap();
    let sim = OktaSim::start().await.unwrap();
    let t = tenant(&stack, &sim, Region::Us, sim.app(), JANE).await;
    let ws_admin: String = {
        let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
        db.query_one("SELECT id::text FROM users WHERE user_name = $1", &[&JANE])
            .await
            .unwrap()
            .get(0)
    };
    let jane_session = stack
        .session_cookie(Region::Us, &t.team_id, &ws_admin)
        .await;
    let jane_token = create_on_page(&stack, Region::Us, &jane_session, "CI", "api").await;
    let bob = sim.add_user(NewUser::new(BOB, "Bob", "Doe")).unwrap();
    let bob_scim_id = provision(&stack, &t, BOB, bob.as_str()).await;
    Fixture {
        stack,
        sim,
        t,
        jane_session,
        jane_token,
        bob,
        bob_scim_id,
    }
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

impl Fixture {
    fn endpoint(&self) -> closedloop_tests::okta_sim::upstream::Upstream {
        self.stack.universal_logout_endpoint(Region::Us)
    }

    /// Jane's session and token still work.
    async fn jane_untouched(&self) {
        assert_eq!(me(&self.stack, Region::Us, &self.jane_token).await, 200);
        let page = get_page(&self.stack, Region::Us, &self.jane_session, "/tokens").await;
        assert_eq!(page.status, 200);
    }

    /// Sends `body` as is with `authorization` (a full header value) to the US endpoint.
    async fn raw(&self, authorization: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = self
            .stack
            .request(Method::POST, Region::Us.api(), "/api/okta/universal-logout")
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_owned());
        if let Some(a) = authorization {
            req = req.header(AUTHORIZATION, a);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A genuine JWT for the US endpoint, for a hand-made body.
    fn jwt(&self) -> String {
        self.t
            .app
            .logout_jwt(self.endpoint().public_str(), None)
            .unwrap()
    }

    /// Refused requests' audit details, oldest first.
    async fn refusals(&self) -> Vec<Value> {
        let db = pg_connect(&self.stack.us_stores.pg_url).await.unwrap();
        db.query(
            "SELECT detail FROM audit_events WHERE action = 'okta.universal_logout.refused' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    }
}

#[tokio::test]
async fn every_forgery_and_replay_is_refused_with_401_and_audited() {
    let f = fixture().await;
    let app = &f.t.app;
    // A genuine request (Bob), then the same request again: a replay.
    let sent = app
        .universal_logout(&f.endpoint(), &Subject::Email(BOB.into()))
        .await
        .unwrap();
    assert_eq!(sent.status, 204, "{}", sent.body);
    let replayed = app.replay_last_logout().await.unwrap();
    assert_eq!(replayed.status, 401, "a replayed request is refused");

    let mut jwts = vec![sent.jwt.clone()];
    for forgery in Forgery::ALL {
        if forgery == Forgery::ReplayedJti {
            // The forgery reuses the previous request's `jti`: make that one a genuine,
            // accepted request, so the forgery is a replay of a `jti` already used.
            let genuine = app
                .universal_logout(&f.endpoint(), &Subject::Email(BOB.into()))
                .await
                .unwrap();
            assert_eq!(genuine.status, 204);
            jwts.push(genuine.jwt);
        }
        let r = app
            .forged_logout(&f.endpoint(), &Subject::Email(JANE.into()), forgery)
            .await
            .unwrap();
        assert_eq!(r.status, 401, "{forgery:?}: {}", r.body);
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["error"], "invalid_token", "{forgery:?}");
        jwts.push(r.jwt);
    }
    f.jane_untouched().await;

    // A genuine US request sent to the EU endpoint (its `aud` is the US URL, and no EU
    // workspace uses this app): refused.
    let to_eu = app
        .universal_logout(
            &f.stack.universal_logout_endpoint(Region::Eu),
            &Subject::Email(JANE.into()),
        )
        .await
        .unwrap();
    assert_eq!(to_eu.status, 401);
    f.jane_untouched().await;

    // Every one audited with its reason; no JWT, nor any part of one, is stored.
    let reasons: Vec<String> = f
        .refusals()
        .await
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        reasons,
        [
            "replayed_jti",
            "unknown_key",
            "bad_signature",
            "wrong_audience",
            "unknown_issuer_or_client",
            "expired",
            "replayed_jti",
            "unsupported_algorithm",
            "unsupported_algorithm",
            "wrong_type",
        ]
    );
    let db = pg_connect(&f.stack.us_stores.pg_url).await.unwrap();
    let all: Vec<String> = db
        .query(
            "SELECT detail::text || coalesce(target, '') || actor FROM audit_events",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for jwt in &jwts {
        let parts: Vec<&str> = jwt.split('.').collect();
        for text in &all {
            for part in parts.iter().filter(|p| p.len() > 16) {
                assert!(
                    !text.contains(part),
                    "a JWT part is in the audit trail: {text}"
                );
            }
        }
    }
    let eu_db = pg_connect(&f.stack.eu_stores.pg_url).await.unwrap();
    let eu_refused: i64 = eu_db
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = 'okta.universal_logout.refused' AND team_id IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(eu_refused, 1, "the EU audits the request it refused");
}

#[tokio::test]
async fn status_codes_are_exactly_those_okta_reads() {
    let f = fixture().await;
    let app = &f.t.app;
    let endpoint = f.endpoint();
    let send = |s: Subject| {
        let endpoint = endpoint.clone();
        async move { app.universal_logout(&endpoint, &s).await.unwrap().status }
    };

    // 404: nobody by this email (or id).
    assert_eq!(send(Subject::Email("nobody@acme.test".into())).await, 404);
    assert_eq!(send(Subject::Opaque("00u-unknown".into())).await, 404);
    // 403: an iss_sub naming another issuer.
    let foreign = Subject::IssSub {
        iss: "https://other.okta.com".into(),
        sub: f.bob.as_str().into(),
    };
    assert_eq!(send(foreign).await, 403);
    // 400: an unknown format, a malformed body.
    let bearer = |jwt: String| format!("Bearer {jwt}");
    for body in [
        json!({ "sub_id": { "format": "phone_number", "phone_number": "+15555550100" } })
            .to_string(),
        json!({ "sub_id": { "format": "account", "uri": "acct:jane@acme.test" } }).to_string(),
        json!({ "sub_id": { "format": "email" } }).to_string(),
        json!({ "user": JANE }).to_string(),
        "not json".to_owned(),
        format!(
            "{{\"sub_id\":{{\"format\":\"email\",\"email\":\"{}@acme.test\"}}}}",
            "a".repeat(20_000)
        ),
    ] {
        let (status, e) = f.raw(Some(&bearer(f.jwt())), &body).await;
        assert_eq!(status, 400, "{}", &body[..body.len().min(80)]);
        assert_eq!(e["error"], "invalid_request");
    }
    // 401: no JWT, not a JWT, another scheme, an unknown org.
    for auth in [
        None,
        Some("Bearer not-a-jwt".to_owned()),
        Some(format!("Basic {}", f.jwt())),
    ] {
        let body = json!({ "sub_id": { "format": "email", "email": JANE } }).to_string();
        let (status, e) = f.raw(auth.as_deref(), &body).await;
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(e["error"], "invalid_token");
    }
    let other = OktaSim::start().await.unwrap();
    let stranger = other
        .app()
        .universal_logout(&endpoint, &Subject::Email(JANE.into()))
        .await
        .unwrap();
    assert_eq!(stranger.status, 401, "an org no workspace connected");
    f.jane_untouched().await;

    // 204 for each accepted form: iss_sub (Okta's user id at this org), opaque (our
    // SCIM id), and the older `subject` key.
    let bob_session = f
        .stack
        .session_cookie(Region::Us, &f.t.team_id, &f.bob_scim_id)
        .await;
    let bob_token = create_on_page(&f.stack, Region::Us, &bob_session, "bob", "mcp").await;
    let iss_sub = Subject::IssSub {
        iss: f.sim.issuer().into(),
        sub: f.bob.as_str().into(),
    };
    assert_eq!(send(iss_sub).await, 204);
    assert_eq!(whoami(&f.stack, Region::Us, &bob_token).await, 401);
    let bob_token = {
        let s = f
            .stack
            .session_cookie(Region::Us, &f.t.team_id, &f.bob_scim_id)
            .await;
        create_on_page(&f.stack, Region::Us, &s, "bob", "mcp").await
    };
    assert_eq!(send(Subject::Opaque(f.bob_scim_id.clone())).await, 204);
    assert_eq!(whoami(&f.stack, Region::Us, &bob_token).await, 401);
    f.jane_untouched().await;
    assert_eq!(send(Subject::LegacyEmail(JANE.to_uppercase())).await, 204);
    assert_eq!(
        me(&f.stack, Region::Us, &f.jane_token).await,
        401,
        "emails match case-insensitively"
    );
    let (s, body) = call(&f.stack, Region::Us, "/api/me", &f.jane_token).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_token")));

    // Every request was audited: 3 refused subjects, 6 bad bodies (one over the size
    // limit), 4 bad JWTs, and 3 revocations.
    assert_eq!(f.refusals().await.len(), 2 + 1 + 6 + 4);
    assert_eq!(
        audit_count(&f.stack.us_stores.pg_url, "okta.universal_logout").await,
        3
    );
}

#[tokio::test]
async fn a_workspace_sending_too_many_logouts_is_slowed_down() {
    let f = fixture_with(|c| {
        c.universal_logout_rate_limit = RateLimit {
            per_second: 1,
            burst: 2,
        }
    })
    .await;
    // Two requests fit the burst; the next ones, sent at once, are limited (at one per
    // second a refill needs a whole second, which a few requests never take together).
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let r = f
            .stack
            .request(Method::POST, Region::Us.api(), "/api/okta/universal-logout")
            .bearer_auth(f.jwt())
            .json(&json!({ "sub_id": { "format": "email", "email": "nobody@acme.test" } }))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get(RETRY_AFTER)
                .map(|v| v.to_str().unwrap().to_owned());
        }
    }
    assert_eq!(&statuses[..2], [404, 404], "{statuses:?}");
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    // Okta is told when to come back.
    let wait: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    f.jane_untouched().await;
}

#[tokio::test]
async fn an_unreachable_okta_is_unable_to_log_out_not_unauthorized() {
    let f = fixture().await;
    // Sign first, then take the org's keys away before the worker ever fetched them.
    let jwt = f.jwt();
    f.sim.stop().await.unwrap();
    let r = f
        .stack
        .request(Method::POST, Region::Us.api(), "/api/okta/universal-logout")
        .bearer_auth(&jwt)
        .json(&json!({ "sub_id": { "format": "email", "email": JANE } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.headers().contains_key(RETRY_AFTER));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unable_to_logout");
    assert_eq!(me(&f.stack, Region::Us, &f.jane_token).await, 200);
}

#[tokio::test]
async fn a_replay_after_redis_forgot_the_jti_is_refused_by_postgres() {
    let f = fixture().await;
    let sent =
        f.t.app
            .universal_logout(&f.endpoint(), &Subject::Email(BOB.into()))
            .await
            .unwrap();
    assert_eq!(sent.status, 204, "{}", sent.body);
    // Redis flushed (or replaced by an empty one): its record of the jti is gone.
    flush_redis(&f.stack, Region::Us).await;
    let replayed = f.t.app.replay_last_logout().await.unwrap();
    assert_eq!(replayed.status, 401, "{}", replayed.body);
    let body: Value = serde_json::from_str(&replayed.body).unwrap();
    assert_eq!(body["error"], "invalid_token");
    // Revoked once, not twice.
    assert_eq!(
        audit_count(&f.stack.us_stores.pg_url, "okta.universal_logout").await,
        1
    );
    f.jane_untouched().await;
}

#[tokio::test]
async fn an_address_sending_forgeries_is_turned_away_and_genuine_requests_never_count() {
    let f = fixture_with(|c| {
        c.auth_rate_limit = RateLimit {
            per_second: 1,
            burst: 3,
        }
    })
    .await;
    let send = |bearer: String| {
        f.stack
            .request(Method::POST, Region::Us.api(), "/api/okta/universal-logout")
            .bearer_auth(bearer)
            .json(&json!({ "sub_id": { "format": "email", "email": BOB } }))
            .send()
    };
    // Genuine requests, more than the burst: none is counted.
    for i in 0..5 {
        let r = send(f.jwt()).await.unwrap();
        assert_eq!(r.status(), 204, "genuine request {i}");
    }
    // Forgeries: refused with 401 until the address's bucket is empty…
    let forged = "eyJhbGciOiJSUzI1NiIsInR5cCI6Imdsb2JhbC10b2tlbi1yZXZvY2F0aW9uK2p3dCJ9.e30.c2ln";
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(send(forged.to_owned()).await.unwrap().status().as_u16());
    }
    assert_eq!(&statuses[..4], [401, 401, 401, 401], "{statuses:?}");
    // …then turned away before any verification or audit, told when to come back.
    assert_eq!(&statuses[4..], [429, 429], "{statuses:?}");
    let r = send(forged.to_owned()).await.unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(
        f.refusals().await.len(),
        4,
        "blocked requests are not audited"
    );
}

/// Issue 14, section 4: a stranger's unknown `kid` used to spend the worker's one
/// refetch per 30 s, so a genuine logout signed with a key Okta had just published was
/// refused with `401` for the rest of that window. Now such a request waits for the
/// next fetch of the key set (at most the refetch interval) and is accepted.
#[tokio::test]
async fn a_forged_kid_right_before_a_key_rotation_never_refuses_a_genuine_logout() {
    let f = fixture().await;
    let app = &f.t.app;
    // The org's keys are cached by a first genuine request.
    let first = app
        .universal_logout(&f.endpoint(), &Subject::Email(BOB.into()))
        .await
        .unwrap();
    assert_eq!(first.status, 204, "{}", first.body);
    // A forgery under a key the org never published: it makes the worker fetch again.
    let forged = app
        .forged_logout(
            &f.endpoint(),
            &Subject::Email(JANE.into()),
            Forgery::UnpublishedKey,
        )
        .await
        .unwrap();
    assert_eq!(forged.status, 401, "{}", forged.body);
    f.jane_untouched().await;
    // Okta rotates at once (publishes a key and signs with it), and logs Jane out.
    let new_kid = f.sim.keys().rotate().await.unwrap();
    let genuine = app
        .universal_logout(&f.endpoint(), &Subject::Email(JANE.into()))
        .await
        .unwrap();
    assert_eq!(genuine.status, 204, "{}", genuine.body);
    assert_eq!(me(&f.stack, Region::Us, &f.jane_token).await, 401);
    let jwks = url::Url::parse(&format!("{}/oauth2/v1/keys", f.sim.issuer())).unwrap();
    let cached = f
        .stack
        .worker(Region::Us)
        .state
        .okta
        .jwks
        .cached_kids(&jwks);
    assert!(cached.contains(&new_kid), "{cached:?}");
}
