//! Personal API and MCP tokens through the gateway: the `/tokens` page (sessions, CSRF,
//! the secret shown once), the JSON token API on the API host, the protected endpoints
//! (`/api/me`, `/api/mcp/whoami`), RFC 7662 introspection with the service credential,
//! expiry by the worker's clock, last-use recording, and checks that lose nothing when
//! Redis is flushed.

use std::time::Duration;

use closedloop_tests::harness::flush_redis;
use closedloop_tests::harness::{
    EU_API, EU_APP, EU_INTROSPECTION_CLIENT_ID, EU_INTROSPECTION_SECRET, TestStack, US_API, US_APP,
    US_INTROSPECTION_CLIENT_ID, US_INTROSPECTION_SECRET, pg_connect,
};
use closedloop_tests::region::Region;
use closedloop_tests::session::{get_page, post_form};
use closedloop_tests::tokens::{call, create_on_page, introspect, me, whoami};
use closedloop_tests::web::hidden;
use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, WWW_AUTHENTICATE};
use serde_json::{Value, json};

/// A JSON API call with an API token.
async fn api(
    stack: &TestStack,
    region: Region,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = stack.request(method, region.api(), path).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A workspace in `region` with its first admin signed in: `(team_id, admin id, cookie)`.
async fn signed_in(stack: &TestStack, region: Region) -> (String, String, String) {
    let ws = stack.workspace(region, "Acme", "admin@acme.test").await;
    let cookie = stack.sign_in_with_link(region, &ws).await;
    (ws.team_id, ws.admin_user_id, cookie)
}

#[tokio::test]
async fn the_tokens_page_creates_lists_and_revokes_with_the_secret_shown_once() {
    let stack = TestStack::start().await.unwrap();
    let (team, admin, cookie) = signed_in(&stack, Region::Us).await;

    let page = get_page(&stack, Region::Us, &cookie, "/tokens").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("You hold no live token"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<label for=\"token-name\">Name</label>"));

    let api_token = create_on_page(&stack, Region::Us, &cookie, "CI <deploy>", "api").await;
    let mcp_token = create_on_page(&stack, Region::Us, &cookie, "Claude desktop", "mcp").await;
    assert_ne!(api_token, mcp_token);

    // The list: names escaped, kinds, no secret anywhere.
    let page = get_page(&stack, Region::Us, &cookie, "/tokens").await;
    assert!(page.body.contains("CI &lt;deploy&gt;"), "{}", page.body);
    assert!(page.body.contains("Claude desktop"));
    assert!(page.body.contains("API token") && page.body.contains("MCP token"));
    assert!(!page.body.contains(&api_token) && !page.body.contains(&mcp_token));
    assert!(!page.body.contains("new-token-value"), "shown once");

    // The protected endpoints, each with its kind only.
    let (s, body) = call(&stack, Region::Us, "/api/me", &api_token).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["user_id"], admin.as_str());
    assert_eq!(body["team_id"], team.as_str());
    assert_eq!(body["region"], "us");
    assert_eq!(body["token_kind"], "api");
    assert_eq!(whoami(&stack, Region::Us, &mcp_token).await, 200);
    assert_eq!(
        me(&stack, Region::Us, &mcp_token).await,
        401,
        "an MCP token is not an API token"
    );
    assert_eq!(whoami(&stack, Region::Us, &api_token).await, 401);

    // Revoke the API token on the page: the very next request is refused.
    let csrf = hidden(&page.body, "csrf").unwrap();
    let row = page.body.find("CI &lt;deploy&gt;").unwrap();
    let id = hidden(&page.body[row..], "id").unwrap();
    let revoked = post_form(
        &stack,
        Region::Us,
        &cookie,
        "/tokens/revoke",
        &[("id", &id), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(revoked.status, 303);
    assert_eq!(revoked.location, "/tokens?revoked=1");
    assert_eq!(me(&stack, Region::Us, &api_token).await, 401);
    assert_eq!(
        whoami(&stack, Region::Us, &mcp_token).await,
        200,
        "the other token lives"
    );
    let page = get_page(&stack, Region::Us, &cookie, "/tokens?revoked=1").await;
    assert!(page.body.contains("Revoked."));
    assert!(!page.body.contains("CI &lt;deploy&gt;"));
    let again = post_form(
        &stack,
        Region::Us,
        &cookie,
        "/tokens/revoke",
        &[("id", &id), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(again.status, 404);

    // Audited, by id, never with the secret.
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let rows = db
        .query(
            "SELECT action, detail::text FROM audit_events WHERE action LIKE 'token.%' ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let actions: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(actions, ["token.created", "token.created", "token.revoked"]);
    for r in &rows {
        let detail: String = r.get(1);
        assert!(!detail.contains("clk_"), "{detail}");
    }
    // Only hashes are stored.
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM tokens WHERE id IS NOT NULL AND length(hash) = 32",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 2);
}

#[tokio::test]
async fn the_page_needs_a_session_a_valid_form_and_our_origin() {
    let stack = TestStack::start().await.unwrap();
    let (_, _, cookie) = signed_in(&stack, Region::Us).await;

    let r = stack.get(US_APP, "/tokens").send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/auth?return_to=%2Ftokens");

    let page = get_page(&stack, Region::Us, &cookie, "/tokens").await;
    let csrf = hidden(&page.body, "csrf").unwrap();
    let form = |c: &'static str| {
        [
            ("name", "x"),
            ("kind", "api"),
            ("expires_in_days", "30"),
            ("csrf", c),
        ]
    };
    let refused = post_form(&stack, Region::Us, &cookie, "/tokens", &form("forged")).await;
    assert_eq!(refused.status, 403);
    let foreign = stack
        .request(Method::POST, US_APP, "/tokens")
        .header(COOKIE, &cookie)
        .header(ORIGIN, "http://evil.test")
        .form(&[
            ("name", "x"),
            ("kind", "api"),
            ("expires_in_days", "30"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);

    for (name, kind, days) in [
        ("", "api", "30"),
        ("x", "ses", "30"),
        ("x", "api", "0"),
        ("x", "api", "400"),
    ] {
        let bad = post_form(
            &stack,
            Region::Us,
            &cookie,
            "/tokens",
            &[
                ("name", name),
                ("kind", kind),
                ("expires_in_days", days),
                ("csrf", &csrf),
            ],
        )
        .await;
        assert_eq!(bad.status, 400, "{name} {kind} {days}");
        assert!(bad.body.contains("role=\"alert\""));
    }
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let n: i64 = db
        .query_one("SELECT count(*) FROM tokens WHERE id IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "nothing was created");

    // Another region's app host knows nothing of this session.
    let eu = stack
        .get(EU_APP, "/tokens")
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(eu.status(), 303);
}

#[tokio::test]
async fn the_json_api_lists_creates_and_revokes_with_an_api_token() {
    let stack = TestStack::start().await.unwrap();
    let (_, _, cookie) = signed_in(&stack, Region::Eu).await;
    let bootstrap = create_on_page(&stack, Region::Eu, &cookie, "bootstrap", "api").await;

    let (s, created) = api(
        &stack,
        Region::Eu,
        Method::POST,
        "/api/tokens",
        &bootstrap,
        Some(json!({ "name": "IDE", "kind": "mcp", "expires_in_days": 7 })),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let mcp = created["token"].as_str().unwrap().to_owned();
    assert!(mcp.starts_with("clk_eu_mcp_"));
    assert_eq!(created["kind"], "mcp");
    assert_eq!(created["name"], "IDE");
    let mcp_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(whoami(&stack, Region::Eu, &mcp).await, 200);

    let (s, default) = api(
        &stack,
        Region::Eu,
        Method::POST,
        "/api/tokens",
        &bootstrap,
        Some(json!({ "name": "scripts", "kind": "api" })),
    )
    .await;
    assert_eq!(s, 201);
    let rfc3339 = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let week = rfc3339(&created["expires_at"]) - rfc3339(&created["created_at"]);
    assert_eq!(week.whole_days(), 7);
    let default_expiry = rfc3339(&default["expires_at"]);

    let (s, list) = api(
        &stack,
        Region::Eu,
        Method::GET,
        "/api/tokens",
        &bootstrap,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let names: Vec<&str> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["scripts", "IDE", "bootstrap"], "newest first");
    // The default lifetime is 90 days, but a token made with a token never outlives it
    // (the bootstrap token lives 30 days).
    let bootstrap_expiry = rfc3339(&list["tokens"][2]["expires_at"]);
    assert_eq!(
        default_expiry.unix_timestamp(),
        bootstrap_expiry.unix_timestamp()
    );
    assert_eq!(list["has_more"], false);
    assert!(!list.to_string().contains("clk_"), "no secret in lists");
    for t in list["tokens"].as_array().unwrap() {
        for key in [
            "id",
            "name",
            "kind",
            "created_at",
            "last_used_at",
            "expires_at",
        ] {
            assert!(t.get(key).is_some(), "{key} in {t}");
        }
    }
    // Paging.
    let (_, first) = api(
        &stack,
        Region::Eu,
        Method::GET,
        "/api/tokens?limit=2",
        &bootstrap,
        None,
    )
    .await;
    assert_eq!(first["tokens"].as_array().unwrap().len(), 2);
    assert_eq!(first["has_more"], true);
    let last = first["tokens"][1]["id"].as_str().unwrap();
    let (_, rest) = api(
        &stack,
        Region::Eu,
        Method::GET,
        &format!("/api/tokens?limit=2&starting_after={last}"),
        &bootstrap,
        None,
    )
    .await;
    assert_eq!(rest["tokens"][0]["name"], "bootstrap");
    assert_eq!(rest["has_more"], false);

    // Revocation: the very next request is refused; a second one is 404.
    let (s, _) = api(
        &stack,
        Region::Eu,
        Method::DELETE,
        &format!("/api/tokens/{mcp_id}"),
        &bootstrap,
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(whoami(&stack, Region::Eu, &mcp).await, 401);
    let (s, _) = api(
        &stack,
        Region::Eu,
        Method::DELETE,
        &format!("/api/tokens/{mcp_id}"),
        &bootstrap,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = api(
        &stack,
        Region::Eu,
        Method::DELETE,
        "/api/tokens/not-an-id",
        &bootstrap,
        None,
    )
    .await;
    assert_eq!(s, 404);

    // Our error format for bad bodies and parameters.
    for body in [
        json!({ "name": "x" }),
        json!({ "name": "x", "kind": "ses" }),
        json!({ "name": "", "kind": "api" }),
        json!({ "name": "x", "kind": "api", "expires_in_days": 0 }),
        json!({ "name": "x", "kind": "api", "scopes": ["all"] }),
    ] {
        let (s, e) = api(
            &stack,
            Region::Eu,
            Method::POST,
            "/api/tokens",
            &bootstrap,
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(e["error"], "invalid_request", "{e}");
    }
    let (s, e) = api(
        &stack,
        Region::Eu,
        Method::GET,
        "/api/tokens?limit=0",
        &bootstrap,
        None,
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_request")));

    // Only an API token of this region opens the API.
    let (s, e) = api(&stack, Region::Eu, Method::GET, "/api/tokens", &mcp, None).await;
    assert_eq!((s, e["error"].as_str()), (401, Some("invalid_token")));
    let (_, other) = api(
        &stack,
        Region::Eu,
        Method::POST,
        "/api/tokens",
        &bootstrap,
        Some(json!({ "name": "mcp2", "kind": "mcp" })),
    )
    .await;
    let mcp2 = other["token"].as_str().unwrap();
    let (s, _) = api(&stack, Region::Eu, Method::GET, "/api/tokens", mcp2, None).await;
    assert_eq!(s, 401, "an MCP token does not manage tokens");
    let r = stack.get(EU_API, "/api/tokens").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    // An EU token at the US API host: refused without a lookup.
    assert_eq!(me(&stack, Region::Us, &bootstrap).await, 401);
}

#[tokio::test]
async fn introspection_answers_the_products_servers_with_the_service_credential() {
    let stack = TestStack::start().await.unwrap();
    let (team, admin, cookie) = signed_in(&stack, Region::Us).await;
    let api_token = create_on_page(&stack, Region::Us, &cookie, "api", "api").await;
    let mcp_token = create_on_page(&stack, Region::Us, &cookie, "mcp", "mcp").await;

    let active = introspect(&stack, Region::Us, &api_token).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["sub"], admin.as_str());
    assert_eq!(active["user_id"], admin.as_str());
    assert_eq!(active["team_id"], team.as_str());
    assert_eq!(active["kind"], "api");
    assert!(active["exp"].as_i64().unwrap() > time::OffsetDateTime::now_utc().unix_timestamp());
    assert_eq!(
        introspect(&stack, Region::Us, &mcp_token).await["kind"],
        "mcp"
    );

    // Inactive: garbage, another kind, another region, a session.
    let session = cookie.split_once('=').unwrap().1;
    for token in [
        "nope",
        session,
        "clk_eu_api_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        assert_eq!(
            introspect(&stack, Region::Us, token).await,
            json!({ "active": false }),
            "{token}"
        );
    }
    assert_eq!(
        introspect(&stack, Region::Eu, &api_token).await,
        json!({ "active": false })
    );

    // The credential is required and checked.
    let bad = [
        (Some((US_INTROSPECTION_CLIENT_ID, "wrong-secret")), 401),
        (
            Some((EU_INTROSPECTION_CLIENT_ID, EU_INTROSPECTION_SECRET)),
            401,
        ),
        (None, 401),
    ];
    for (creds, status) in bad {
        let mut req = stack
            .request(Method::POST, US_API, "/api/tokens/introspect")
            .form(&[("token", api_token.as_str())]);
        if let Some((id, secret)) = creds {
            req = req.basic_auth(id, Some(secret));
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        assert!(
            r.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
    let r = stack
        .request(Method::POST, US_API, "/api/tokens/introspect")
        .basic_auth(US_INTROSPECTION_CLIENT_ID, Some(US_INTROSPECTION_SECRET))
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A revoked token is inactive at once.
    let (_, list) = api(
        &stack,
        Region::Us,
        Method::GET,
        "/api/tokens",
        &api_token,
        None,
    )
    .await;
    let id = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "mcp")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api(
        &stack,
        Region::Us,
        Method::DELETE,
        &format!("/api/tokens/{id}"),
        &api_token,
        None,
    )
    .await;
    assert_eq!(
        introspect(&stack, Region::Us, &mcp_token).await,
        json!({ "active": false })
    );
}

#[tokio::test]
async fn tokens_expire_by_the_workers_clock_and_record_their_last_use() {
    let stack = TestStack::start().await.unwrap();
    let (_, _, cookie) = signed_in(&stack, Region::Us).await;
    let bootstrap = create_on_page(&stack, Region::Us, &cookie, "bootstrap", "api").await;
    let (_, week) = api(
        &stack,
        Region::Us,
        Method::POST,
        "/api/tokens",
        &bootstrap,
        Some(json!({ "name": "week", "kind": "api", "expires_in_days": 7 })),
    )
    .await;
    let week = week["token"].as_str().unwrap().to_owned();

    // Last use: recorded off the request path, to the minute; poll with a deadline.
    assert_eq!(me(&stack, Region::Us, &week).await, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = api(
            &stack,
            Region::Us,
            Method::GET,
            "/api/tokens",
            &bootstrap,
            None,
        )
        .await;
        let used = list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "week")
            .map(|t| !t["last_used_at"].is_null())
            .unwrap_or(false);
        if used {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "last use never recorded: {list}"
        );
        tokio::task::yield_now().await;
    }
    let page = get_page(&stack, Region::Us, &cookie, "/tokens").await;
    let row = &page.body[page.body.find("<td>week</td>").expect("listed")..];
    let row = &row[..row.find("</tr>").expect("row end")];
    assert!(!row.contains("Never"), "last use shown: {row}");

    // Eight days later the week token is dead; the 30-day one lives.
    stack.advance_clock(Region::Us, Duration::from_secs(8 * 86_400));
    assert_eq!(me(&stack, Region::Us, &week).await, 401);
    assert_eq!(
        introspect(&stack, Region::Us, &week).await,
        json!({ "active": false })
    );
    assert_eq!(me(&stack, Region::Us, &bootstrap).await, 200);
    let (_, list) = api(
        &stack,
        Region::Us,
        Method::GET,
        "/api/tokens",
        &bootstrap,
        None,
    )
    .await;
    assert_eq!(
        list["tokens"].as_array().unwrap().len(),
        1,
        "expired tokens are not listed"
    );
}

#[tokio::test]
async fn a_flushed_redis_loses_no_token_and_no_revocation() {
    let stack = TestStack::start().await.unwrap();
    let (_, _, cookie) = signed_in(&stack, Region::Us).await;
    let keep = create_on_page(&stack, Region::Us, &cookie, "keep", "api").await;
    let drop = create_on_page(&stack, Region::Us, &cookie, "drop", "mcp").await;
    let (_, list) = api(&stack, Region::Us, Method::GET, "/api/tokens", &keep, None).await;
    let drop_id = list["tokens"][0]["id"].as_str().unwrap().to_owned();
    let (s, _) = api(
        &stack,
        Region::Us,
        Method::DELETE,
        &format!("/api/tokens/{drop_id}"),
        &keep,
        None,
    )
    .await;
    assert_eq!(s, 204);

    flush_redis(&stack, Region::Us).await;
    assert_eq!(
        me(&stack, Region::Us, &keep).await,
        200,
        "re-read from Postgres"
    );
    assert_eq!(
        whoami(&stack, Region::Us, &drop).await,
        401,
        "the revocation is durable"
    );
    assert_eq!(introspect(&stack, Region::Us, &drop).await["active"], false);
    // And again with the hot entries primed anew.
    assert_eq!(me(&stack, Region::Us, &keep).await, 200);
    assert_eq!(whoami(&stack, Region::Us, &drop).await, 401);
    let page = get_page(&stack, Region::Us, &cookie, "/tokens").await;
    assert_eq!(page.status, 200, "the session survives too");
}
